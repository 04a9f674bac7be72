"""Semantic deduplication of 100,000 texts with planted near-duplicates: lightembed vs a brute-force
reference, WordLlama and semhash.

The texts: `--distinct` (90,000) distinct real train-allowed texts sampled from the shared data
folder, plus `--planted` (10,000) near-duplicates, each a copy of a different random original
(with at least 4 words) with one small edit: a word dropped, two adjacent words swapped, a case
change, a punctuation change, or a typo (two letters swapped, a letter dropped, doubled or
replaced). Every copy differs from every other text. All 100,000 are shuffled with a fixed seed
and the (copy, original) index pairs are recorded.

Tools, each in a fresh Python process, threshold 0.9:

- lightembed: `lightembed.load().deduplicate(texts, threshold=0.9)` (exact copies first, then
  the non-transitive greedy rule in input order over all pairs, in blocks).
- brute force (reference, run here on the vectors lightembed's worker saved, i.e. the same
  `unit_rows(model.embed(texts))`): all pairs `i > j` with cosine >= t from the full similarity
  matrix computed in blocks with numpy, then the greedy rule: walk in input order, remove an item
  when its best similarity to an earlier *kept* item is >= t. lightembed must keep exactly the
  same set.
- WordLlama l2_supercat 256: `WordLlama.deduplicate(texts, threshold=0.9, return_indices=True)`
  (its own model; its rule is `sim > t`, removing the later item of a pair when the earlier
  one is not already removed).
- semhash: `SemHash.from_records(texts, model=StaticModel)` then `self_deduplicate(threshold=0.9)`,
  with the model2vec-format copy of lightembed's *own* codebook and tokenizer, so the vectors are
  the same and only the algorithm differs (semhash finds neighbours with an approximate
  usearch index by default).

Planted near-duplicate recall. A planted pair (copy, original) counts as *found* when the copy or
its original is among the removed items (removed as a duplicate of anything). It counts as
*found as a pair* when the removed one of the two is reported as a duplicate of the other (tools
that name the kept item: lightembed, brute force, semhash).

Usage:
    .venv/bin/python benchmarks/dedup.py [--tools lightembed wordllama semhash] [--seed 0]
Writes benchmarks/results/dedup.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import string
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common
from throughput import write_model2vec_copy, write_wordllama_cache

SCRIPT = Path(__file__).resolve()
TOOLS = ("lightembed", "wordllama", "semhash")
EDITS = ("drop_word", "swap_words", "case", "punctuation", "typo")
KEYBOARD = {
    c: n
    for row in ("qwertyuiop", "asdfghjkl", "zxcvbnm")
    for i, c in enumerate(row)
    for n in [row[max(i - 1, 0)] + row[min(i + 1, len(row) - 1)]]
}


# --------------------------------------------------------------------------- planting near-duplicates
def edit(text: str, kind: str, rng: Any) -> str:
    """One small edit of `text` of the given kind (may return `text` unchanged when impossible)."""
    words = text.split(" ")
    if kind == "drop_word":
        del words[rng.randrange(len(words))]
        return " ".join(words)
    if kind == "swap_words":
        i = rng.randrange(len(words) - 1)
        words[i], words[i + 1] = words[i + 1], words[i]
        return " ".join(words)
    if kind == "case":
        choice = rng.randrange(3)
        if choice == 0:
            return text.upper() if text != text.upper() else text.lower()
        if choice == 1:
            return text.lower() if text != text.lower() else text.capitalize()
        i = rng.randrange(len(words))
        words[i] = words[i].capitalize() if words[i] != words[i].capitalize() else words[i].lower()
        return " ".join(words)
    if kind == "punctuation":
        stripped = text.rstrip(string.punctuation + " ")
        choice = rng.randrange(3)
        if choice == 0 and stripped != text:
            return stripped  # remove the final punctuation
        if choice == 1:
            return stripped + rng.choice(["!", "?", "...", " .", ";"])
        i = rng.randrange(len(words))
        words[i] = words[i] + ","
        return " ".join(words)
    if kind == "typo":
        candidates = [i for i, w in enumerate(words) if len(w) >= 3 and w.isalpha()]
        if not candidates:
            return text
        i = rng.choice(candidates)
        w = words[i]
        j = rng.randrange(len(w) - 1)
        op = rng.randrange(4)
        if op == 0:
            w = w[:j] + w[j + 1] + w[j] + w[j + 2 :]  # swap two letters
        elif op == 1:
            w = w[:j] + w[j + 1 :]  # drop a letter
        elif op == 2:
            w = w[:j] + w[j] + w[j:]  # double a letter
        else:
            c = w[j].lower()
            w = w[:j] + rng.choice(KEYBOARD.get(c, "e")) + w[j + 1 :]  # neighbouring key
        words[i] = w
        return " ".join(words)
    raise ValueError(kind)


def build_dataset(
    data: Path, distinct: int, planted: int, seed: int
) -> tuple[list[str], list[dict[str, Any]], dict[str, int]]:
    """The shuffled texts and the planted pairs [{copy, original, edit}] (indices into the texts)."""
    rng = common.seeded(seed)
    per_source = common.unique_texts(common.SENTENCE_SOURCES, data)
    pool = [t for texts in per_source.values() for t in texts]
    if len(pool) < distinct:
        raise SystemExit(f"only {len(pool)} distinct texts available, {distinct} asked")
    originals = rng.sample(pool, distinct)
    source_of = {t: name for name, texts in per_source.items() for t in texts}
    sources: dict[str, int] = {}
    for t in originals:
        sources[source_of[t]] = sources.get(source_of[t], 0) + 1
    present = set(originals)
    eligible = [i for i, t in enumerate(originals) if len(t.split(" ")) >= 4]
    chosen = rng.sample(eligible, planted)
    copies: list[tuple[str, int, str]] = []
    for i in chosen:
        for _ in range(20):
            kind = rng.choice(EDITS)
            copy = edit(originals[i], kind, rng)
            if copy and copy not in present:
                break
        else:
            continue
        present.add(copy)
        copies.append((copy, i, kind))
    texts = originals + [c for c, _, _ in copies]
    order = list(range(len(texts)))
    rng.shuffle(order)
    position = {old: new for new, old in enumerate(order)}
    shuffled = [texts[old] for old in order]
    pairs = [
        {"copy": position[distinct + k], "original": position[i], "edit": kind} for k, (_, i, kind) in enumerate(copies)
    ]
    return shuffled, pairs, sources


# --------------------------------------------------------------------------- brute force
def brute_force(vectors: np.ndarray, threshold: float, block: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Reference greedy dedup from the full similarity matrix: (removed mask, duplicate_of (-1 if kept))."""
    n = len(vectors)
    neighbours: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for start in range(0, n, block):
        stop = min(n, start + block)
        sims = vectors[start:stop] @ vectors[:stop].T
        rows = np.arange(start, stop)
        sims[np.arange(stop)[None, :] >= rows[:, None]] = -np.inf  # only earlier items count
        hit_rows, hit_cols = np.nonzero(sims >= threshold)
        for r in np.unique(hit_rows):
            cols = hit_cols[hit_rows == r]
            neighbours[start + int(r)] = (cols, sims[r, cols])
    removed = np.zeros(n, dtype=bool)
    partner = np.full(n, -1, dtype=np.int64)
    for i in sorted(neighbours):
        cols, scores = neighbours[i]
        alive = ~removed[cols]
        if alive.any():
            removed[i] = True
            partner[i] = int(cols[alive][np.argmax(scores[alive])])
    return removed, partner


# --------------------------------------------------------------------------- workers
def worker(args: argparse.Namespace) -> dict[str, Any]:
    """Run one tool on the texts file; write removed indices (and partners) to --save-result."""
    texts = common.read_lines(Path(args.texts))
    index_of = {t: i for i, t in enumerate(texts)}
    t = args.threshold
    info: dict[str, Any] = {"tool": args.worker, "texts": len(texts)}
    partner: np.ndarray | None = None
    if args.worker == "lightembed":
        import lightembed
        from lightembed.dedup import SearchOptions, deduplicate_vectors
        from lightembed.scoring import unit_rows

        start = time.perf_counter()
        model = lightembed.load(args.model)
        info["load_s"] = time.perf_counter() - start
        start = time.perf_counter()
        result = model.deduplicate(texts, threshold=t, mode="exact")
        info["total_s"] = time.perf_counter() - start
        removed = result.removed
        partner = np.full(len(texts), -1, dtype=np.int64)
        partner[result.removed] = result.duplicate_of
        info["call"] = 'lightembed.load().deduplicate(texts, threshold=0.9, mode="exact")'
        start = time.perf_counter()
        vectors = unit_rows(model.embed(texts))
        info["embed_s"] = time.perf_counter() - start
        start = time.perf_counter()
        again = deduplicate_vectors(vectors, t, block_size=model.block_size, search=SearchOptions(mode="exact"))
        info["dedup_only_s"] = time.perf_counter() - start
        info["vectors_path_same_result"] = bool(np.array_equal(again.removed, result.removed))
        if args.save_vectors:
            np.save(args.save_vectors, vectors)
    elif args.worker == "wordllama":
        from wordllama import WordLlama
        from wordllama.algorithms import deduplicate_embeddings

        start = time.perf_counter()
        wl = WordLlama.load("l2_supercat", dim=256, cache_dir=args.wordllama_cache, disable_download=True)
        info["load_s"] = time.perf_counter() - start
        start = time.perf_counter()
        removed = np.asarray(wl.deduplicate(texts, threshold=t, return_indices=True), dtype=np.int64)
        info["total_s"] = time.perf_counter() - start
        info["call"] = "WordLlama.load('l2_supercat', dim=256).deduplicate(texts, threshold=0.9, return_indices=True)"
        start = time.perf_counter()
        embeddings = wl.embed(texts, norm=True)
        info["embed_s"] = time.perf_counter() - start
        start = time.perf_counter()
        deduplicate_embeddings(embeddings, t, 5000)
        info["dedup_only_s"] = time.perf_counter() - start
    elif args.worker == "semhash":
        from model2vec import StaticModel
        from semhash import SemHash

        start = time.perf_counter()
        model = StaticModel.from_pretrained(args.model2vec_dir)
        info["load_s"] = time.perf_counter() - start
        start = time.perf_counter()
        semhash = SemHash.from_records(texts, model=model)
        built = time.perf_counter()
        result = semhash.self_deduplicate(threshold=t)
        done = time.perf_counter()
        info.update(total_s=done - start, from_records_s=built - start, self_deduplicate_s=done - built)
        info["call"] = "SemHash.from_records(texts, model=StaticModel(model2vec copy)).self_deduplicate(threshold=0.9)"
        removed = np.asarray(sorted(index_of[d.record] for d in result.filtered), dtype=np.int64)
        partner = np.full(len(texts), -1, dtype=np.int64)
        for d in result.filtered:
            partner[index_of[d.record]] = index_of[d.duplicate_of]
        start = time.perf_counter()
        model.encode(texts)
        info["embed_s"] = time.perf_counter() - start
        info["dedup_only_s"] = info["total_s"] - info["embed_s"]
        info["dedup_only_note"] = (
            "total minus a separate model.encode(texts) timing (index build + neighbour search + selection)"
        )
    else:
        raise SystemExit(f"unknown worker {args.worker!r}")
    info["removed"] = len(removed)
    info["peak_rss_mb"] = common.peak_rss_mb()
    np.savez(
        args.save_result,
        removed=np.asarray(removed, dtype=np.int64),
        partner=partner if partner is not None else np.zeros(0, dtype=np.int64),
    )
    return info


# --------------------------------------------------------------------------- scoring
def score(removed: np.ndarray, partner: np.ndarray | None, pairs: list[dict[str, Any]], n: int) -> dict[str, Any]:
    """Planted recall (both definitions) and removals outside the planted pairs."""
    mask = np.zeros(n, dtype=bool)
    mask[removed] = True
    found = 0
    found_pair = 0
    by_edit: dict[str, list[int]] = {}
    in_pairs = np.zeros(n, dtype=bool)
    for p in pairs:
        c, o = p["copy"], p["original"]
        in_pairs[c] = in_pairs[o] = True
        hit = bool(mask[c] or mask[o])
        found += hit
        stats = by_edit.setdefault(p["edit"], [0, 0])
        stats[0] += hit
        stats[1] += 1
        if partner is not None and len(partner):
            found_pair += bool((mask[c] and partner[c] == o) or (mask[o] and partner[o] == c))
    return {
        "removed": int(mask.sum()),
        "planted": len(pairs),
        "planted_found": found,
        "planted_recall": found / len(pairs) if pairs else None,
        "planted_found_as_pair": found_pair if partner is not None and len(partner) else None,
        "removed_outside_planted_pairs": int((mask & ~in_pairs).sum()),
        "recall_by_edit": {k: {"found": v[0], "of": v[1]} for k, v in sorted(by_edit.items())},
    }


# --------------------------------------------------------------------------- driver
def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tools", nargs="+", choices=TOOLS, default=list(TOOLS))
    parser.add_argument("--model", default=None, help="lightembed model folder (default: the bundled weights/default)")
    parser.add_argument("--distinct", type=int, default=90_000)
    parser.add_argument("--planted", type=int, default=10_000)
    parser.add_argument("--threshold", type=float, default=0.9)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--max-busy", type=float, default=0.2, help="wait until the CPU is at most this busy before each run"
    )
    parser.add_argument("--quiet-timeout", type=float, default=180.0)
    parser.add_argument("--out", type=Path, default=common.RESULTS_DIR / "dedup.json")
    parser.add_argument("--worker", choices=TOOLS, help=argparse.SUPPRESS)
    parser.add_argument("--texts", help=argparse.SUPPRESS)
    parser.add_argument("--save-result", help=argparse.SUPPRESS)
    parser.add_argument("--save-vectors", help=argparse.SUPPRESS)
    parser.add_argument("--model2vec-dir", help=argparse.SUPPRESS)
    parser.add_argument("--wordllama-cache", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        common.emit(worker(args))
        return 0

    from lightembed.resolve import resolve_model

    model_dir = Path(resolve_model(args.model))
    data = common.data_dir()
    common.check_data(data)
    texts, pairs, sources = build_dataset(data, args.distinct, args.planted, args.seed)
    n = len(texts)
    if len(set(texts)) != n:
        raise SystemExit("internal error: texts are not distinct")
    print(f"{n} texts, {len(pairs)} planted near-duplicates", file=sys.stderr)

    tools: dict[str, Any] = {}
    reference = None
    with tempfile.TemporaryDirectory(prefix="lightembed_dedup_") as tmp_name:
        tmp = Path(tmp_name)
        texts_file = tmp / "texts.txt"
        common.write_lines(texts_file, texts)
        extra = {
            "lightembed": ["--model", str(model_dir), "--save-vectors", str(tmp / "vectors.npy")],
            "wordllama": ["--wordllama-cache", str(write_wordllama_cache(tmp / "wl_cache"))],
            "semhash": ["--model2vec-dir", str(write_model2vec_copy(model_dir, tmp / "m2v"))],
        }
        for tool in args.tools:
            busy = common.wait_for_quiet(args.max_busy, args.quiet_timeout)
            print(f"{tool} ...", file=sys.stderr)
            result_file = tmp / f"{tool}.npz"
            info = common.run_worker(
                SCRIPT,
                [
                    "--worker",
                    tool,
                    "--texts",
                    str(texts_file),
                    "--threshold",
                    str(args.threshold),
                    "--save-result",
                    str(result_file),
                    *extra[tool],
                ],
            )
            info["cpu_busy_before"] = round(busy, 3)
            saved = np.load(result_file)
            partner = saved["partner"] if len(saved["partner"]) else None
            info.update(score(saved["removed"], partner, pairs, n))
            tools[tool] = info
            print(
                f"  total {info['total_s']:.2f}s, removed {info['removed']}, planted found {info['planted_found']}",
                file=sys.stderr,
            )
            if tool == "lightembed":
                vectors = np.load(tmp / "vectors.npy")
                start = time.perf_counter()
                ref_removed, ref_partner = brute_force(vectors, args.threshold)
                ref_s = time.perf_counter() - start
                reference = score(np.flatnonzero(ref_removed), ref_partner, pairs, n)
                reference["time_s"] = ref_s
                le_mask = np.zeros(n, dtype=bool)
                le_mask[saved["removed"]] = True
                reference["lightembed_equals_brute_force"] = bool(np.array_equal(le_mask, ref_removed))
                reference["lightembed_only"] = int((le_mask & ~ref_removed).sum())
                reference["brute_force_only"] = int((~le_mask & ref_removed).sum())
                reference["same_partners"] = bool(np.array_equal(partner, ref_partner)) if partner is not None else None
                reference["recall_vs_brute_force"] = (
                    float((le_mask & ref_removed).sum() / ref_removed.sum()) if ref_removed.any() else 1.0
                )
                ref_mask_saved = ref_removed
        if reference is not None and "semhash" in tools:
            sem = np.zeros(n, dtype=bool)
            sem[np.load(tmp / "semhash.npz")["removed"]] = True
            tools["semhash"]["agreement_with_brute_force"] = {
                "equal": bool(np.array_equal(sem, ref_mask_saved)),
                "semhash_only": int((sem & ~ref_mask_saved).sum()),
                "brute_force_only": int((~sem & ref_mask_saved).sum()),
            }

    payload = {
        "benchmark": "dedup",
        "command": "python benchmarks/dedup.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": common.machine_info(),
        "model": str(
            model_dir.relative_to(common.REPO_ROOT) if model_dir.is_relative_to(common.REPO_ROOT) else model_dir
        ),
        "model_files": common.model_fingerprint(model_dir),
        "dataset": {
            "texts": n,
            "distinct_originals": args.distinct,
            "planted": len(pairs),
            "seed": args.seed,
            "sources_of_originals": sources,
            "edits": EDITS,
        },
        "threshold": args.threshold,
        "found_definition": (
            "a planted (copy, original) pair is found when the copy or the original is among the removed items; "
            "found_as_pair when the removed one of the two is reported as a duplicate of the other"
        ),
        "tools": tools,
        "brute_force": reference,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    print(render(payload))
    print(f"\nwritten: {args.out}", file=sys.stderr)
    return 0


def render(payload: dict[str, Any]) -> str:
    """The markdown summary."""
    m = payload["machine"]
    ds = payload["dataset"]
    lines = [
        f"### Deduplication ({m['date']}, {m['cores']}-core {m['cpu']})",
        "",
        (
            f"{ds['texts']:,} texts ({ds['distinct_originals']:,} distinct real texts + {ds['planted']:,} planted "
            f"near-duplicates), threshold {payload['threshold']}, fresh process per tool."
        ),
        "",
    ]
    names = {
        "lightembed": "lightembed `deduplicate`",
        "wordllama": "WordLlama l2_supercat 256 `deduplicate`",
        "semhash": "semhash `self_deduplicate` (lightembed's codebook via model2vec)",
    }
    rows = []
    for tool, info in payload["tools"].items():
        pair = info.get("planted_found_as_pair")
        rows.append(
            [
                names[tool],
                f"{info['total_s']:.2f}",
                f"{info['embed_s']:.2f}",
                f"{info['dedup_only_s']:.2f}",
                f"{info['removed']:,}",
                f"{info['planted_found']:,} ({info['planted_recall']:.1%})",
                f"{pair:,}" if pair is not None else "n/a",
                f"{info['removed_outside_planted_pairs']:,}",
            ]
        )
    ref = payload.get("brute_force")
    if ref:
        rows.append(
            [
                "brute force reference (numpy, same vectors)",
                f"{ref['time_s']:.2f} (dedup only)",
                "",
                "",
                f"{ref['removed']:,}",
                f"{ref['planted_found']:,} ({ref['planted_recall']:.1%})",
                f"{ref['planted_found_as_pair']:,}",
                f"{ref['removed_outside_planted_pairs']:,}",
            ]
        )
    lines.append(
        common.markdown_table(
            [
                "tool",
                "total s",
                "embed s",
                "dedup-only s",
                "removed",
                "planted found",
                "found as pair",
                "other removals",
            ],
            rows,
        )
    )
    lines.append("")
    lines.append(f"- found: {payload['found_definition']}.")
    if ref:
        lines.append(
            f"- lightembed kept set equals brute force: {ref['lightembed_equals_brute_force']} "
            f"(recall vs brute force {ref['recall_vs_brute_force']:.2%}, lightembed-only {ref['lightembed_only']}, "
            f"brute-force-only {ref['brute_force_only']}, same duplicate_of: {ref['same_partners']})"
        )
    sem = payload["tools"].get("semhash", {}).get("agreement_with_brute_force")
    if sem:
        lines.append(
            f"- semhash vs brute force on the same vectors: equal {sem['equal']} "
            f"(semhash-only {sem['semhash_only']}, brute-force-only {sem['brute_force_only']})"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
