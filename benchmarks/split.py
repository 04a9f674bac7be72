"""`split` on one long text: chunks, wall time and peak memory, in a fresh process per size.

The text: SciFact corpus documents (title and abstract; the corpus is allowed for unsupervised
use), one per line, joined and cycled to each size. Each size runs in its own process:

    model = lightembed.load()
    chunks = model.split(text, target_size=1500)

and reports the chunk count, the best wall time of `--repeats` calls, and the process's peak
resident set (VmHWM) at the end and before the timed calls (after loading the model, reading the
text and one warm-up `split` of its first 20,000 characters).

Usage:
    .venv/bin/python benchmarks/split.py [--sizes 1000000,4000000] [--repeats 3]
Writes benchmarks/results/split.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common

SCRIPT = Path(__file__).resolve()
TARGET_SIZE = 1500


def long_text(chars: int) -> str:
    """SciFact documents, one per line, cycled to `chars` characters."""
    corpus = "\n".join(common.scifact_documents(common.data_dir()))
    return (corpus * (chars // len(corpus) + 1))[:chars]


def worker(chars: int, repeats: int) -> None:
    import lightembed

    model = lightembed.load()
    text = long_text(chars)
    model.split(text[:20_000], target_size=TARGET_SIZE)  # warm up
    before = common.peak_rss_mb()
    best, times, chunks = common.best_of(lambda: model.split(text, target_size=TARGET_SIZE), repeats, warmup=False)
    if "".join(chunks) != text:
        raise RuntimeError("the chunks do not concatenate to the text")
    common.emit(
        {
            "chars": chars,
            "chunks": len(chunks),
            "longest_chunk": max(map(len, chunks)),
            "best_s": best,
            "times_s": times,
            "peak_mb_before": before,
            "peak_mb": common.peak_rss_mb(),
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000000,4000000", help="text lengths in characters, comma-separated")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        worker(args.worker, args.repeats)
        return
    common.check_data(common.data_dir())
    runs = [
        common.run_worker(SCRIPT, ["--worker", size, "--repeats", str(args.repeats)]) for size in args.sizes.split(",")
    ]
    result = {
        "command": " ".join(["python", "benchmarks/split.py", *sys.argv[1:]]),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "target_size": TARGET_SIZE,
        "runs": runs,
    }
    out = common.RESULTS_DIR / "split.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print("| characters | chunks | longest | best s | peak RSS MB (before the timed calls) |")
    print("|---:|---:|---:|---:|---:|")
    for run in runs:
        print(
            f"| {run['chars']:,} | {run['chunks']:,} | {run['longest_chunk']:,} | {run['best_s']:.2f} "
            f"| {run['peak_mb']:.0f} ({run['peak_mb_before']:.0f}) |"
        )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
