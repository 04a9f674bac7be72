"""How many pairs the partitioned search finds per item on ordinary text, against its pair budget.

For each size, the corpus of `make_scale_corpus.py` (built once under `--cache`) is embedded with
the default model in a fresh process; the distinct texts then go through
`deduplicate_vectors(vectors, 0.9, search=SearchOptions(mode="partitioned"))` with the search passes
of `lightembed.pairs` recorded: how many there were, the pairs the first one found (when it held
them) and `pair_budget(n)`. Ordinary text should take one pass.

Usage:
    .venv/bin/python benchmarks/pair_counts.py [--sizes 1000000 3000000] [--out FILE]
Writes benchmarks/results/pair_counts.json (or --out) and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common
from make_scale_corpus import ensure_corpus

SCRIPT = Path(__file__).resolve()
OUT = common.RESULTS_DIR / "pair_counts.json"
THRESHOLD = 0.9


def work(corpus: str) -> dict[str, Any]:
    import lightembed
    from lightembed import partition
    from lightembed.dedup import SearchOptions, deduplicate_vectors, first_copies_of_hashes, text_hashes
    from lightembed.pairs import pair_budget

    texts = common.read_lines(Path(corpus))
    vectors = lightembed.load().embed(texts)
    distinct = first_copies_of_hashes(text_hashes(texts))
    vectors = vectors[distinct == np.arange(len(distinct))]
    del texts
    passes = []
    real_sweep = partition.sweep

    def recorded(found, status, budget):  # the sweep of each pass, counted
        result = real_sweep(found, status, budget)
        passes.append({"budget": budget, "pairs_held": None if result.pairs is None else len(result.pairs.later)})
        return result

    partition.sweep = recorded
    start = time.perf_counter()
    result = deduplicate_vectors(vectors, THRESHOLD, search=SearchOptions(mode="partitioned"))
    return {
        "distinct": len(vectors),
        "pair_budget": pair_budget(len(vectors)),
        "passes": passes,
        "dedup_s": round(time.perf_counter() - start, 1),
        "removed": len(result.removed),
        "peak_rss_mb": round(common.peak_rss_mb()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", type=int, default=[1_000_000, 3_000_000])
    parser.add_argument("--cache", type=Path, default=Path("/tmp/lightembed_scale"))
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        common.emit(work(args.worker))
        return 0
    rows = []
    for size in args.sizes:
        corpus, _ = ensure_corpus(args.cache / f"corpus-{size}.txt", size)
        rows.append({"texts": size, **common.run_worker(SCRIPT, ["--worker", str(corpus)])})
        print(json.dumps(rows[-1]), file=sys.stderr)
    payload = {"command": " ".join(["python", *sys.argv]), "machine": common.machine_info(), "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2) + "\n")
    print("| texts | distinct | pair budget | passes | pairs of the first pass | per distinct text | dedup s |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        held = r["passes"][0]["pairs_held"]
        per = f"{held / r['distinct']:.2f}" if held is not None else "over the budget"
        print(
            f"| {r['texts']:,} | {r['distinct']:,} | {r['pair_budget']:,} | {len(r['passes'])} "
            f"| {held if held is None else f'{held:,}'} | {per} | {r['dedup_s']} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
