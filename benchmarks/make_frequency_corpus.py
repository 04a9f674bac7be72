"""Extract the train-allowed texts of the shared data folder into one plain-text file.

One text per line, exact duplicates removed, order kept. Files marked *eval only* in the
data README are never read; the STS-B dev file is also left out so that it stays a clean
sanity check for distilled models. A sidecar `<out>.meta.json` records the command and the
sources; `lightembed-train distill --corpus <out>` copies it into the model card.

Usage: python benchmarks/make_frequency_corpus.py [--data DIR] [--out FILE]
The data folder defaults to $LIGHTEMBED_DATA, else ../shared/data relative to the repository root.
"""

from __future__ import annotations

import argparse
import ast
import csv
import io
import json
import os
import shlex
import sys
import tokenize
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = Path("/tmp/lightembed_frequency_corpus.txt")

csv.field_size_limit(1 << 24)


def data_dir() -> Path:
    """$LIGHTEMBED_DATA, else ../shared/data beside the repository."""
    return Path(os.environ.get("LIGHTEMBED_DATA") or REPO_ROOT.parent / "shared" / "data")


def _lines(path: Path, encoding: str = "utf-8") -> Iterator[str]:
    with path.open(encoding=encoding, errors="replace") as handle:
        for line in handle:
            yield line.rstrip("\n")


def _tsv_columns(columns: Sequence[int], unquote: bool = False) -> Callable[[Path], Iterator[str]]:
    def read(path: Path) -> Iterator[str]:
        for line in _lines(path):
            fields = line.split("\t")
            for c in columns:
                if c < len(fields):
                    text = fields[c]
                    if unquote and len(text) >= 2 and text[0] == text[-1] == '"':
                        text = text[1:-1].replace('""', '"')
                    yield text

    return read


def _plain(path: Path) -> Iterator[str]:
    yield from _lines(path)


def _sst(path: Path) -> Iterator[str]:
    for line in _lines(path):
        yield line.rsplit("\t", 1)[0]


def _sick_train(path: Path) -> Iterator[str]:
    rows = _lines(path)
    header = next(rows).split("\t")
    a, b, split = header.index("sentence_A"), header.index("sentence_B"), header.index("SemEval_set")
    for line in rows:
        fields = line.split("\t")
        if len(fields) > split and fields[split] in ("TRAIN", "TRIAL"):
            yield fields[a]
            yield fields[b]


def _banking(path: Path) -> Iterator[str]:
    with path.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            yield row["text"]


def _trec_qc(path: Path) -> Iterator[str]:
    for line in _lines(path, encoding="latin-1"):
        yield line.split(" ", 1)[1] if " " in line else ""


def _scifact_corpus(path: Path) -> Iterator[str]:
    with path.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            yield row["title"]
            yield from _string_literals(row["abstract"])


def _scifact_claims(path: Path) -> Iterator[str]:
    with path.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            yield row["claim"]


def _string_literals(text: str) -> Iterator[str]:
    """The string literals of a printed list such as `['a.'\\n 'b.']` (no commas between them)."""
    try:
        for token in tokenize.generate_tokens(io.StringIO(text).readline):
            if token.type == tokenize.STRING:
                yield ast.literal_eval(token.string)
    except (tokenize.TokenError, SyntaxError, ValueError):
        return


@dataclass(frozen=True)
class Source:
    """One train-allowed file, how to read its texts, and its licence."""

    path: str
    read: Callable[[Path], Iterator[str]]
    licence: str


SOURCES: tuple[Source, ...] = (
    Source("snli_devtest/s1.dev", _plain, "CC BY-SA 4.0"),
    Source("snli_devtest/s2.dev", _plain, "CC BY-SA 4.0"),
    Source("stsbenchmark/sts-train.csv", _tsv_columns((5, 6)), "CC BY-SA 4.0"),
    Source("sick/SICK.txt", _sick_train, "CC BY-NC-SA 3.0 (TRAIN and TRIAL rows only)"),
    Source("mrpc/train.txt", _tsv_columns((0, 1), unquote=True), "MSR research"),
    Source("quora_pairs_bimpm/dev.txt", _tsv_columns((0, 1)), "Quora terms"),
    Source("senteval_classification/SST/Binary/sentiment-train", _sst, "research"),
    Source("wikiqa/train.txt", _tsv_columns((0, 1)), "MSR research"),
    Source("wikiqa/dev.txt", _tsv_columns((0, 1)), "MSR research"),
    Source("trecqa/train.txt", _tsv_columns((0, 1)), "research"),
    Source("trecqa/dev.txt", _tsv_columns((0, 1)), "research"),
    Source("banking77/train.csv", _banking, "CC BY 4.0"),
    Source("trec_qc/train_5500.label", _trec_qc, "research"),
    Source("scifact/corpus_train.csv", _scifact_corpus, "CC BY-NC 2.0"),
    Source("scifact/claims_train.csv", _scifact_claims, "CC BY-NC 2.0"),
)


def build_corpus(data: Path, out: Path, command: str) -> dict[str, object]:
    """Write the deduplicated texts to `out` and the metadata to `<out>.meta.json`; returns the metadata."""
    missing = [s.path for s in SOURCES if not (data / s.path).is_file()]
    if missing:
        raise FileNotFoundError(f"{data}: missing data files {missing} (set LIGHTEMBED_DATA)")
    seen: set[str] = set()
    sources = []
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as handle:
        for source in SOURCES:
            written = 0
            for raw in source.read(data / source.path):
                text = " ".join(raw.split())
                if text and text not in seen:
                    seen.add(text)
                    handle.write(text + "\n")
                    written += 1
            sources.append({"file": source.path, "texts": written, "licence": source.licence})
    meta: dict[str, object] = {"command": command, "texts": len(seen), "deduplicated": True, "sources": sources}
    out.with_name(out.name + ".meta.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return meta


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit code."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", type=Path, default=None, help="data folder (default $LIGHTEMBED_DATA or ../shared/data)"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output text file (default {DEFAULT_OUT})")
    args = parser.parse_args(args_list)
    command = shlex.join(["python", "benchmarks/make_frequency_corpus.py", *args_list])
    try:
        meta = build_corpus(args.data or data_dir(), args.out, command)
    except (FileNotFoundError, UnicodeDecodeError) as exc:
        print(f"make_frequency_corpus: error: {exc}", file=sys.stderr)
        return 2
    print(f"{args.out}: {meta['texts']} texts", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
