"""Deduplication at scale: the exact and partitioned searches from 100k to 3M texts, the end-to-end
command line at 1M (with a kill and a resume), semhash on the same texts, and the Dask path.

Corpora come from `make_scale_corpus.py` (real train-allowed texts, WordNet, GCIDE and Python
documentation paragraphs, two-text compositions above the real pool, 10% planted near-duplicates),
built once per size under `--cache` (default /tmp/lightembed_scale). Threshold 0.9 everywhere.
Every measurement runs in a fresh Python process.

Parts (`--parts`, all by default):

- `search`: per size, `deduplicate_vectors(vectors, 0.9, search=SearchOptions(mode))` on the
  vectors of the default model (embedded once per size and cached), for the exact mode up to
  `--exact-max` texts and the partitioned mode at every size: seconds, peak RSS (VmHWM, which
  counts the vectors themselves), removals, planted recall, and where both ran, the agreement.
- `probes`: at the first size, the partitioned search with 2, 4, 6 and 8 probes against the exact
  mode: seconds and planted recall.
- `e2e`: `lightembed dedup corpus.txt -o kept.txt --work-dir W` at `--e2e-size` (read, embed,
  dedup, write): wall seconds and the command's peak RSS.
- `resume`: the same command killed (SIGKILL) once midway through embedding and once midway
  through the search, then run to the end; its output must equal the uninterrupted run's.
- `semhash`: at `--semhash-sizes`, texts to result: `lightembed.load().deduplicate(texts, 0.9)`
  (auto mode) against `SemHash.from_records(texts, model=<model2vec copy of lightembed's own
  codebook>).self_deduplicate(threshold=0.9)` (its default approximate usearch backend): seconds,
  planted recall.
- `dask`: at `--dask-size`, `lightembed.dask.deduplicate` on a Bag over a LocalCluster of two
  worker processes against `LightEmbed.deduplicate(texts, mode="partitioned")`: same kept set?

Usage:
    .venv/bin/python benchmarks/scale.py                       # everything (about 1.5 hours on 2 quiet cores)
    .venv/bin/python benchmarks/scale.py --parts search --sizes 100000 300000
    .venv/bin/python benchmarks/scale.py --plot                # benchmarks/results/scale.png from the JSON
Results are merged into benchmarks/results/scale.json (each part replaces its own entry).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common
from make_scale_corpus import ensure_corpus

SCRIPT = Path(__file__).resolve()
OUT = common.RESULTS_DIR / "scale.json"
PARTS = ("search", "probes", "e2e", "resume", "semhash", "dask")
THRESHOLD = 0.9


# --------------------------------------------------------------------------- helpers
def corpus(cache: Path, size: int) -> tuple[Path, np.ndarray, dict]:
    path, meta = ensure_corpus(cache / f"corpus-{size}.txt", size)
    return path, np.load(path.with_name(path.name + ".pairs.npz"))["pairs"], meta


def planted_recall(removed: np.ndarray, pairs: np.ndarray, n: int) -> float:
    """Share of planted (copy, original) pairs of which the copy or the original was removed."""
    mask = np.zeros(n, dtype=bool)
    mask[removed] = True
    return float((mask[pairs[:, 0]] | mask[pairs[:, 1]]).mean())


def vectors_file(cache: Path, size: int) -> Path:
    return cache / f"vectors-{size}.npy"


def worker_env(blas_threads: int | None) -> dict[str, str]:
    env = dict(os.environ)
    if blas_threads:
        env["OPENBLAS_NUM_THREADS"] = str(blas_threads)
    return env


def run_worker(args: list[str], blas_threads: int | None) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), *args], check=False, capture_output=True, text=True, env=worker_env(blas_threads)
    )
    if proc.returncode:
        sys.stderr.write(proc.stderr[-4000:])
        raise RuntimeError(f"worker failed: {args}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def cpu_seconds(who: int = resource.RUSAGE_SELF) -> float:
    """User + system CPU seconds (of this process, or of its waited-for children)."""
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --------------------------------------------------------------------------- workers (fresh processes)
def work_embed(texts_path: str, out: str) -> dict[str, Any]:
    import lightembed

    texts = common.read_lines(Path(texts_path))
    start = time.perf_counter()
    vectors = lightembed.load().embed(texts)
    seconds = time.perf_counter() - start
    np.save(out, vectors)
    return {"embed_s": seconds, "texts": len(texts)}


def work_search(vectors_path: str, mode: str, result_path: str, probes: str = "0") -> dict[str, Any]:
    from lightembed.dedup import SearchOptions, deduplicate_vectors

    vectors = np.load(vectors_path)
    options = SearchOptions(mode=mode, probes=int(probes)) if int(probes) else SearchOptions(mode=mode)
    rss_before = common.peak_rss_mb()
    start, cpu = time.perf_counter(), cpu_seconds()
    result = deduplicate_vectors(vectors, THRESHOLD, search=options)
    seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    np.save(result_path, result.removed)
    return {
        "mode": result.mode,
        "probes": options.probes,
        "seconds": seconds,
        "cpu_s": cpu,
        "peak_rss_mb": common.peak_rss_mb(),
        "rss_with_vectors_mb": rss_before,
        "vectors_mb": vectors.nbytes / 2**20,
        "removed": len(result.removed),
    }


def work_texts_to_result(tool: str, texts_path: str, result_path: str, m2v: str) -> dict[str, Any]:
    texts = common.read_lines(Path(texts_path))
    start = time.perf_counter()
    if tool == "lightembed":
        import lightembed

        result = lightembed.load().deduplicate(texts, THRESHOLD)
        removed = result.removed
        call = "lightembed.load().deduplicate(texts, 0.9)"
    else:
        from model2vec import StaticModel
        from semhash import SemHash

        found = SemHash.from_records(texts, model=StaticModel.from_pretrained(m2v)).self_deduplicate(
            threshold=THRESHOLD
        )
        index = {t: i for i, t in enumerate(texts)}
        removed = np.array(sorted(index[d.record] for d in found.filtered), dtype=np.int64)
        call = "SemHash.from_records(texts, model=StaticModel(copy)).self_deduplicate(threshold=0.9)"
    seconds = time.perf_counter() - start
    np.save(result_path, removed)
    return {
        "tool": tool,
        "call": call,
        "seconds": seconds,
        "removed": len(removed),
        "peak_rss_mb": common.peak_rss_mb(),
    }


def work_cli(args: list[str]) -> dict[str, Any]:
    """Run `lightembed ARGS` as a child process; its wall time and peak RSS (ru_maxrss of children)."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "lightembed", *args], check=False, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode:
        raise RuntimeError(proc.stderr[-3000:])
    return {
        "seconds": seconds,
        "cpu_s": cpu_seconds(resource.RUSAGE_CHILDREN),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
        "summary": proc.stderr.strip().splitlines()[-1],
    }


def work_dask(texts_path: str) -> dict[str, Any]:
    import dask.bag as db
    from distributed import Client, LocalCluster

    import lightembed
    import lightembed.dask as led

    texts = common.read_lines(Path(texts_path))
    start = time.perf_counter()
    local = lightembed.load().deduplicate(texts, THRESHOLD, mode="partitioned")
    local_s = time.perf_counter() - start
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster, Client(cluster):
        start = time.perf_counter()
        result = led.deduplicate(db.from_sequence(texts, npartitions=8), THRESHOLD)
        dask_s = time.perf_counter() - start
    return {
        "texts": len(texts),
        "single_machine_s": local_s,
        "dask_s": dask_s,
        "single_machine_removed": len(local.removed),
        "dask_removed": len(result.removed),
        "same_kept_set": bool(np.array_equal(local.kept, result.kept)),
        "same_duplicate_of": bool(np.array_equal(local.duplicate_of, result.duplicate_of)),
        "call": "lightembed.dask.deduplicate(dask.bag.from_sequence(texts, npartitions=8), 0.9) "
        "on LocalCluster(n_workers=2, threads_per_worker=1)",
    }


# --------------------------------------------------------------------------- parts
def part_search(args: argparse.Namespace) -> dict[str, Any]:
    rows = []
    for size in args.sizes:
        path, pairs, meta = corpus(args.cache, size)
        vpath = vectors_file(args.cache, size)
        embed = run_worker(["--worker", "embed", str(path), str(vpath)], args.blas_threads)
        removed: dict[str, np.ndarray] = {}
        for mode in ("exact", "partitioned"):
            if mode == "exact" and size > args.exact_max:
                continue
            common.wait_for_quiet(args.max_busy, args.quiet_timeout)
            out = args.cache / f"removed-{size}-{mode}.npy"
            info = run_worker(["--worker", "search", str(vpath), mode, str(out)], args.blas_threads)
            removed[mode] = np.load(out)
            info.update(size=size, embed_s=embed["embed_s"], planted_recall=planted_recall(removed[mode], pairs, size))
            rows.append(info)
            print(
                f"search {size} {mode}: {info['seconds']:.1f} s, recall {info['planted_recall']:.4f}", file=sys.stderr
            )
        if len(removed) == 2:
            exact, part = set(removed["exact"].tolist()), set(removed["partitioned"].tolist())
            rows[-1]["agreement_with_exact"] = {
                "removed_by_both": len(exact & part),
                "exact_only": len(exact - part),
                "partitioned_only": len(part - exact),
                "recall_ratio_planted": rows[-1]["planted_recall"] / rows[-2]["planted_recall"],
            }
        vpath.unlink(missing_ok=True)
        rows[-1]["corpus"] = meta
    return {"rows": rows}


def part_probes(args: argparse.Namespace) -> dict[str, Any]:
    """Planted recall and time of the partitioned search against its probes, at the first size, with exact as reference."""
    size = args.sizes[0]
    path, pairs, _ = corpus(args.cache, size)
    vpath = vectors_file(args.cache, size)
    run_worker(["--worker", "embed", str(path), str(vpath)], args.blas_threads)
    rows = []
    for mode, probes in [("exact", 0)] + [("partitioned", p) for p in (2, 4, 6, 8)]:
        common.wait_for_quiet(args.max_busy, args.quiet_timeout)
        out = args.cache / f"removed-probes-{size}-{mode}-{probes}.npy"
        info = run_worker(["--worker", "search", str(vpath), mode, str(out), str(probes)], args.blas_threads)
        info.update(size=size, planted_recall=planted_recall(np.load(out), pairs, size))
        rows.append(info)
        print(f"probes {mode} {probes}: {info['seconds']:.1f} s, recall {info['planted_recall']:.4f}", file=sys.stderr)
    vpath.unlink(missing_ok=True)
    return {"rows": rows}


def part_e2e(args: argparse.Namespace) -> dict[str, Any]:
    path, _, _ = corpus(args.cache, args.e2e_size)
    work, out = args.cache / "e2e-work", args.cache / "e2e-kept.txt"
    shutil.rmtree(work, ignore_errors=True)
    common.wait_for_quiet(args.max_busy, args.quiet_timeout)
    command = ["dedup", str(path), "-o", str(out), "--work-dir", str(work), "--no-progress"]
    info = run_worker(["--worker", "cli", *command], args.blas_threads)
    kept = sum(1 for _ in out.open(encoding="utf-8"))
    info.update(
        size=args.e2e_size,
        command="lightembed " + " ".join(command),
        kept=kept,
        output_sha256=sha256(out),
        work_dir_mb=sum(f.stat().st_size for f in work.rglob("*") if f.is_file()) / 2**20,
    )
    shutil.rmtree(work, ignore_errors=True)
    return info


def part_resume(args: argparse.Namespace) -> dict[str, Any]:
    path, _, _ = corpus(args.cache, args.e2e_size)
    reference = args.cache / "e2e-kept.txt"
    if not reference.exists():
        raise SystemExit("run the e2e part first (its output is the reference)")
    work, out = args.cache / "resume-work", args.cache / "resume-kept.txt"
    shutil.rmtree(work, ignore_errors=True)
    out.unlink(missing_ok=True)
    command = [sys.executable, "-m", "lightembed", "dedup", str(path), "-o", str(out), "--work-dir", str(work)]
    command.append("--no-progress")
    total_chunks = -(-args.e2e_size // 65536)
    kills = []
    start = time.perf_counter()
    for stage, ready in (
        ("embedding", lambda: len(list((work / "chunks").glob("vectors-*.npy"))) >= total_chunks // 2),
        ("search", lambda: len(list((work / "pairs").glob("group-*.npz"))) >= 32),
    ):
        proc = subprocess.Popen(command, stderr=subprocess.DEVNULL, env=worker_env(args.blas_threads))
        while proc.poll() is None and not ready():
            time.sleep(0.2)
        if proc.poll() is not None:
            raise SystemExit(f"the run ended before it could be killed during {stage}")
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills.append({"stage": stage, "after_s": time.perf_counter() - start, "output_exists": out.exists()})
    proc = subprocess.run(command, check=False, stderr=subprocess.PIPE, text=True, env=worker_env(args.blas_threads))
    if proc.returncode:
        raise RuntimeError(proc.stderr[-3000:])
    info = {
        "size": args.e2e_size,
        "kills": kills,
        "total_s_with_kills": time.perf_counter() - start,
        "same_output_as_uninterrupted": sha256(out) == sha256(reference),
        "command": "lightembed dedup corpus.txt -o kept.txt --work-dir W (killed twice with SIGKILL, then run again)",
    }
    shutil.rmtree(work, ignore_errors=True)
    return info


def part_semhash(args: argparse.Namespace) -> dict[str, Any]:
    from throughput import write_model2vec_copy

    from lightembed.resolve import resolve_model

    m2v = write_model2vec_copy(Path(resolve_model(None)), args.cache / "m2v")
    rows = []
    for size in args.semhash_sizes:
        path, pairs, _ = corpus(args.cache, size)
        for tool in ("lightembed", "semhash"):
            common.wait_for_quiet(args.max_busy, args.quiet_timeout)
            out = args.cache / f"semhash-{size}-{tool}.npy"
            info = run_worker(["--worker", "texts", tool, str(path), str(out), str(m2v)], args.blas_threads)
            info.update(size=size, planted_recall=planted_recall(np.load(out), pairs, size))
            rows.append(info)
            print(f"{tool} {size}: {info['seconds']:.1f} s, recall {info['planted_recall']:.4f}", file=sys.stderr)
    return {"rows": rows}


def part_dask(args: argparse.Namespace) -> dict[str, Any]:
    path, _, _ = corpus(args.cache, args.dask_size)
    common.wait_for_quiet(args.max_busy, args.quiet_timeout)
    return run_worker(["--worker", "dask", str(path)], args.blas_threads)


# --------------------------------------------------------------------------- report
def render(payload: dict[str, Any]) -> str:
    lines = []
    search = payload.get("search")
    if search:
        lines.append(
            common.markdown_table(
                ["texts", "mode", "dedup s", "peak RSS MiB (vectors MiB)", "removed", "planted recall"],
                [
                    [
                        f"{r['size']:,}",
                        r["mode"],
                        f"{r['seconds']:.1f}",
                        f"{r['peak_rss_mb']:,.0f} ({r['vectors_mb']:,.0f})",
                        f"{r['removed']:,}",
                        f"{r['planted_recall']:.2%}",
                    ]
                    for r in search["rows"]
                ],
            )
        )
    for key in ("e2e", "resume", "dask"):
        if key in payload:
            lines.append(f"\n{key}: " + json.dumps({k: v for k, v in payload[key].items() if k != "corpus"}))
    sem = payload.get("semhash")
    if sem:
        lines.append(
            "\n"
            + common.markdown_table(
                ["texts", "tool", "seconds (texts to result)", "removed", "planted recall"],
                [
                    [
                        f"{r['size']:,}",
                        r["tool"],
                        f"{r['seconds']:.1f}",
                        f"{r['removed']:,}",
                        f"{r['planted_recall']:.2%}",
                    ]
                    for r in sem["rows"]
                ],
            )
        )
    return "\n".join(lines)


def plot(payload: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = payload["search"]["rows"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for mode, style in (("exact", "o--"), ("partitioned", "s-")):
        sizes = [r["size"] for r in rows if r["mode"] == mode]
        left.plot(sizes, [r["seconds"] for r in rows if r["mode"] == mode], style, label=mode)
        right.plot(sizes, [r["peak_rss_mb"] for r in rows if r["mode"] == mode], style, label=mode)
    sizes = sorted({r["size"] for r in rows})
    first = next(r for r in rows if r["mode"] == "partitioned")
    left.plot(sizes, [first["seconds"] * s / first["size"] for s in sizes], ":", color="gray", label="linear")
    right.plot(sizes, [r["vectors_mb"] for r in rows if r["mode"] == "partitioned"], ":", label="the vectors alone")
    for axis, label in ((left, "dedup seconds (vectors given)"), (right, "peak RSS, MiB")):
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xlabel("texts")
        axis.set_ylabel(label)
        axis.grid(True, which="both", alpha=0.3)
        axis.legend()
    fig.suptitle("lightembed dedup at threshold 0.9, 2-core CPU")
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument("--sizes", nargs="+", type=int, default=[100_000, 300_000, 1_000_000, 3_000_000])
    parser.add_argument("--exact-max", type=int, default=300_000)
    parser.add_argument("--e2e-size", type=int, default=1_000_000)
    parser.add_argument("--semhash-sizes", nargs="+", type=int, default=[100_000, 300_000, 1_000_000])
    parser.add_argument("--dask-size", type=int, default=200_000)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/lightembed_scale"))
    parser.add_argument("--blas-threads", type=int, default=None, help="OPENBLAS_NUM_THREADS for the workers")
    parser.add_argument("--max-busy", type=float, default=0.2)
    parser.add_argument("--quiet-timeout", type=float, default=60.0)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--plot", action="store_true", help="only draw benchmarks/results/scale.png from --out")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args(argv)
    if args.worker:
        work = {"embed": work_embed, "search": work_search, "texts": work_texts_to_result, "cli": work_cli}
        if args.worker == "dask":
            result = work_dask(*rest)
        elif args.worker == "cli":
            result = work_cli(rest)
        else:
            result = work[args.worker](*rest)
        common.emit(result)
        return 0
    payload = json.loads(args.out.read_text()) if args.out.exists() else {}
    if args.plot:
        plot(payload, args.out.with_suffix(".png"))
        return 0
    args.cache.mkdir(parents=True, exist_ok=True)
    run = {
        "search": part_search,
        "probes": part_probes,
        "e2e": part_e2e,
        "resume": part_resume,
        "semhash": part_semhash,
        "dask": part_dask,
    }
    for part in args.parts:
        started = time.perf_counter()
        payload[part] = run[part](args)
        payload[part]["part_wall_s"] = time.perf_counter() - started
        payload[part]["blas_threads"] = args.blas_threads
        payload[part]["machine"] = common.machine_info()
        payload[part]["benchmark_command"] = "python benchmarks/scale.py " + " ".join(
            argv if argv is not None else sys.argv[1:]
        )
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(payload, indent=2) + "\n")
    print(render(payload))
    return 0


if __name__ == "__main__":
    sys.exit(main())
