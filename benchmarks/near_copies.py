"""Deduplication of text with large groups of near-copies: `lightembed dedup` time and peak memory.

The base file is the 100,000-text corpus of `make_scale_corpus.py` (real train-allowed texts with
10% planted near-duplicates). Into it go near-copies of one boilerplate line, one after every k-th
text: "Page {i} of 100000 - Copyright ACME Corporation, all rights reserved.", i being the text's
position. Their page numbers differ, so they are near-copies of each other, not exact copies: a
dense group of pairs for the partitioned and ANN searches (see `lightembed.pairs`). For each
count of such lines, a fresh process runs

    python -m lightembed dedup FILE -o KEPT              (auto: partitioned at these sizes)
    python -m lightembed dedup FILE -o KEPT --mode ann   (for the `--ann-copies` counts)

and the benchmark records its wall and CPU time, its peak RSS (ru_maxrss of the child), its
summary line, and the sha256 of the kept lines, to compare two versions of lightembed: `--code
PATH` runs the `lightembed` package of the checkout at PATH (another commit) instead.

Usage:
    .venv/bin/python benchmarks/near_copies.py [--copies 0 10000 50000] [--ann-copies 10000] [--code PATH] [--out FILE]
Writes benchmarks/results/near_copies.json (or --out) and prints a markdown table.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common
from make_scale_corpus import ensure_corpus

SCRIPT = Path(__file__).resolve()
OUT = common.RESULTS_DIR / "near_copies.json"
BASE_SIZE = 100_000
BOILERPLATE = "Page {} of 100000 - Copyright ACME Corporation, all rights reserved."


def with_copies(base: Path, copies: int, out: Path) -> Path:
    """`base` with `copies` boilerplate near-copies spread evenly through it (written once)."""
    if out.is_file():
        return out
    texts = common.read_lines(base)
    if copies > len(texts):
        raise SystemExit(f"--copies {copies}: at most one near-copy per text of the {len(texts)}")
    after = {k * len(texts) // copies for k in range(copies)}  # the texts a copy follows, evenly spaced
    lines = []
    for i, text in enumerate(texts):
        lines.append(text)
        if i in after:
            lines.append(BOILERPLATE.format(i))
    common.write_lines(out, lines)
    return out


def work_cli(code: str, args: list[str]) -> dict[str, Any]:
    """Run `python -m lightembed ARGS` (from `code` when given) as a child: wall and CPU time, peak RSS."""
    env = common.clean_env()
    if code:
        env["PYTHONPATH"] = code
    start = time.perf_counter()
    proc = subprocess.run(  # run from / so that `-m` does not find the package in the working folder first
        [sys.executable, "-m", "lightembed", *args], check=False, capture_output=True, text=True, env=env, cwd="/"
    )
    seconds = time.perf_counter() - start
    if proc.returncode:
        raise RuntimeError(proc.stderr[-3000:])
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "seconds": round(seconds, 2),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        "peak_rss_mb": round(usage.ru_maxrss / 1024),
        "summary": proc.stderr.strip().splitlines()[-1],
    }


def run(path: Path, mode: str, code: str, scratch: Path) -> dict[str, Any]:
    kept = scratch / f"kept-{mode}-{path.stem}.txt"
    command = ["dedup", str(path), "-o", str(kept), "--no-progress"] + (["--mode", mode] if mode != "auto" else [])
    result = common.run_worker(SCRIPT, ["--worker", code, *command])
    result["kept_sha256"] = hashlib.sha256(kept.read_bytes()).hexdigest()[:16]
    kept.unlink()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", nargs="*", type=int, default=[0, 10_000, 50_000])
    parser.add_argument("--ann-copies", nargs="*", type=int, default=[10_000])
    parser.add_argument("--code", type=Path, default=None, help="a checkout whose lightembed package runs instead")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/lightembed_scale"))
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args(argv)
    if args.worker is not None:
        common.emit(work_cli(args.worker, rest))
        return 0
    args.cache.mkdir(parents=True, exist_ok=True)
    base, _ = ensure_corpus(args.cache / f"corpus-{BASE_SIZE}.txt", BASE_SIZE)
    code = str(args.code.resolve()) if args.code else ""
    rows = []
    for mode, counts in (("auto", args.copies), ("ann", args.ann_copies)):
        for copies in counts:
            path = with_copies(base, copies, args.cache / f"near-copies-{BASE_SIZE}-{copies}.txt")
            lines = len(common.read_lines(path))
            result = {"mode": mode, "copies": copies, "lines": lines, **run(path, mode, code, args.cache)}
            print(json.dumps(result), file=sys.stderr)
            rows.append(result)
    payload = {
        "code": code or str(common.REPO_ROOT),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": common.machine_info(),
        "runs": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2) + "\n")
    print("| mode | boilerplate near-copies | lines | wall s | CPU s | peak RSS MB | kept (sha256) |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for r in rows:
        kept = r["summary"].split(", ")[1]
        print(
            f"| {r['mode']} | {r['copies']:,} | {r['lines']:,} | {r['seconds']} | {r['cpu_s']} | {r['peak_rss_mb']:,} "
            f"| {kept} ({r['kept_sha256']}) |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
