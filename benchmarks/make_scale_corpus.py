"""Build a large realistic text corpus with planted near-duplicates, reproducibly, for `scale.py`.

The texts, all cleaned to one line:

1. Real text: every distinct train-allowed text of the shared data folder (the sentence sources of
   `common.SENTENCE_SOURCES`, about 217k), plus, from Debian packages installed on this machine,
   WordNet 3.0 glosses and usage examples (`wordnet-base`, WordNet licence), GCIDE dictionary
   paragraphs (`dict-gcide`, GPL), and paragraphs of the Python documentation (`python3-doc`, PSF
   licence). Install them with `apt-get install wordnet-base dict-gcide python3-doc`; a missing
   package is skipped and the real pool is smaller. Only the benchmark reads them: nothing is copied
   into the repository.
2. Compositions, when the real pool is smaller than the originals asked for: two real texts
   drawn at random and joined with a space, like a short paragraph made of two sentences.
3. Planted near-duplicates: 10% of the final size (`--planted-share`), each a copy of a different
   original (with at least 4 words) with one small edit, as in `dedup.py`: a word dropped, two
   adjacent words swapped, a case change, a punctuation change, or a typo.

Everything is shuffled with `--seed`, and the (copy, original) index pairs are saved beside the
texts (`<out>.pairs.npz`, with the edit of each copy) with a `<out>.meta.json` describing the mix.

Usage: python benchmarks/make_scale_corpus.py --size 1000000 --out /tmp/lightembed_scale/corpus-1000000.txt
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import sys
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common
from dedup import EDITS, edit

WORDNET = Path("/usr/share/wordnet")
GCIDE = Path("/usr/share/dictd/gcide.dict.dz")
PYTHON_DOC = Path("/usr/share/doc/python3-doc/html")
MIN_CHARS, MAX_CHARS = 20, 600


def wordnet_glosses() -> Iterator[str]:
    """Definitions and quoted usage examples of every WordNet synset."""
    for part in ("noun", "verb", "adj", "adv"):
        path = WORDNET / f"data.{part}"
        if not path.is_file():
            continue
        for line in path.read_text(encoding="latin-1").splitlines():
            if line.startswith(" ") or " | " not in line:
                continue  # the licence header
            for piece in line.split(" | ", 1)[1].split(";"):
                yield piece.strip().strip('"')


def gcide_paragraphs() -> Iterator[str]:
    """Blank-line separated paragraphs of the GCIDE dictionary text (definitions, notes, quotations)."""
    if not GCIDE.is_file():
        return
    with gzip.open(GCIDE, "rt", encoding="utf-8", errors="replace") as handle:
        paragraph: list[str] = []
        for line in handle:
            if line.strip():
                paragraph.append(line.strip())
            elif paragraph:
                yield " ".join(paragraph)
                paragraph = []


class _Paragraphs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.depth, self.current, self.found = 0, [], []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag in ("p", "li", "dd"):
            self.depth += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("p", "li", "dd") and self.depth:
            self.depth -= 1
            if not self.depth:
                self.found.append("".join(self.current))
                self.current = []

    def handle_data(self, data: str) -> None:
        if self.depth:
            self.current.append(data)


def python_doc_paragraphs() -> Iterator[str]:
    """Paragraphs and list items of the Python documentation's HTML pages."""
    if not PYTHON_DOC.is_dir():
        return
    for page in sorted(PYTHON_DOC.rglob("*.html")):
        parser = _Paragraphs()
        parser.feed(page.read_text(encoding="utf-8", errors="replace"))
        yield from parser.found


REAL_SOURCES = (
    ("Debian wordnet-base: WordNet 3.0 glosses and examples (WordNet licence)", wordnet_glosses),
    ("Debian dict-gcide: GCIDE dictionary paragraphs (GPL)", gcide_paragraphs),
    ("Debian python3-doc: Python documentation paragraphs (PSF licence)", python_doc_paragraphs),
)


def real_pool(data: Path) -> tuple[list[str], dict[str, int]]:
    """Distinct cleaned real texts of MIN_CHARS..MAX_CHARS characters (train-allowed files first), and counts per source."""
    pool: list[str] = []
    seen: set[str] = set()
    counts: dict[str, int] = {}

    def add(name: str, texts: Iterator[str]) -> None:
        before = len(pool)
        for raw in texts:
            text = common.clean(raw)
            if MIN_CHARS <= len(text) <= MAX_CHARS and re.search("[A-Za-z]", text) and text not in seen:
                seen.add(text)
                pool.append(text)
        counts[name] = len(pool) - before

    for name, texts in common.unique_texts(common.SENTENCE_SOURCES, data).items():
        add(f"train-allowed: {name}", iter(texts))
    for name, read in REAL_SOURCES:
        add(name, read())
    return pool, counts


def build(data: Path, size: int, planted_share: float, seed: int) -> tuple[list[str], np.ndarray, dict]:
    """The shuffled texts, the planted pairs [k, 3] (copy, original, edit number) and a description."""
    rng = common.seeded(seed)
    pool, counts = real_pool(data)
    rng.shuffle(pool)
    n_planted = round(size * planted_share)
    n_originals = size - n_planted
    originals = pool[:n_originals]
    present = set(originals)
    composed = 0
    while len(originals) < n_originals:
        text = f"{rng.choice(pool)} {rng.choice(pool)}"
        if text not in present:
            present.add(text)
            originals.append(text)
            composed += 1
    eligible = [i for i, t in enumerate(originals) if len(t.split(" ")) >= 4]
    copies: list[tuple[str, int, int]] = []
    for i in rng.sample(eligible, min(n_planted, len(eligible))):
        for _ in range(20):
            kind = rng.randrange(len(EDITS))
            copy = edit(originals[i], EDITS[kind], rng)
            if copy and copy not in present:
                present.add(copy)
                copies.append((copy, i, kind))
                break
    texts = originals + [c for c, _, _ in copies]
    order = list(range(len(texts)))
    rng.shuffle(order)
    position = np.empty(len(texts), dtype=np.int64)
    position[order] = np.arange(len(texts))
    pairs = np.array(
        [(position[n_originals + k], position[i], kind) for k, (_, i, kind) in enumerate(copies)], dtype=np.int64
    ).reshape(-1, 3)
    meta = {
        "texts": len(texts),
        "real_texts_available": len(pool),
        "real_texts_used": min(len(pool), n_originals),
        "real_sources": counts,
        "compositions": composed,
        "planted": len(copies),
        "edits": list(EDITS),
        "seed": seed,
    }
    return [texts[k] for k in order], pairs, meta


def ensure_corpus(out: Path, size: int, planted_share: float = 0.1, seed: int = 0) -> tuple[Path, dict]:
    """Build the corpus unless `out` and its pairs and meta files exist already; returns (path, meta)."""
    meta_file = out.with_name(out.name + ".meta.json")
    if out.is_file() and meta_file.is_file():
        return out, json.loads(meta_file.read_text())
    texts, pairs, meta = build(common.data_dir(), size, planted_share, seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    common.write_lines(out, texts)
    np.savez(out.with_name(out.name + ".pairs.npz"), pairs=pairs)
    meta_file.write_text(json.dumps(meta, indent=2) + "\n")
    return out, meta


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--planted-share", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    _, meta = ensure_corpus(args.out, args.size, args.planted_share, args.seed)
    print(json.dumps(meta, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
