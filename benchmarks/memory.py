"""Bounded memory when streaming: 1,000,000 texts from a file through `iter_embed` into a .npy memmap.

The texts: real train-allowed texts of the shared data folder (all distinct texts of every
train-allowed file, SciFact documents whole), cycled and varied (every pass after the first
lower-cases, drops a word, or joins two texts) until `--texts` lines are written to a temporary
text file (outside the repository). Then a fresh Python process runs

    model = lightembed.load()
    out = np.lib.format.open_memmap(path, mode="w+", dtype=model.output_dtype, shape=(n, model.output_width))
    for block in model.iter_embed(line.rstrip("\\n") for line in open(text_file)):
        out[i : i + len(block)] = block

and reports the wall time, texts/s and peak memory: VmHWM (peak resident set, which also counts
the pages of the output memmap that sit in memory), ru_maxrss, and the peak of RssAnon (the
process's own heap, sampled every 20 ms by a thread) and of RssFile (file-backed pages, mostly
the output memmap).

Usage:
    .venv/bin/python benchmarks/memory.py [--texts 1000000] [--keep-files]
Writes benchmarks/results/memory.json and prints a markdown table. Target: peak < 2 GB.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common

SCRIPT = Path(__file__).resolve()
TARGET_MB = 2048


def write_texts(data: Path, path: Path, count: int, seed: int) -> dict[str, Any]:
    """Write `count` real-ish texts, one per line; returns a small description."""
    rng = common.seeded(seed)
    per_source = common.unique_texts(
        [*common.SENTENCE_SOURCES, ("scifact/corpus_train.csv title+abstract", common.scifact_documents)], data
    )
    pool = [t for texts in per_source.values() for t in texts]
    rng.shuffle(pool)
    written = chars = 0
    passes = 0
    with path.open("w", encoding="utf-8") as handle:
        while written < count:
            for i, text in enumerate(pool):
                if written >= count:
                    break
                if passes > 0:
                    kind = (i + passes) % 3
                    if kind == 0:
                        text = text.lower()
                    elif kind == 1:
                        words = text.split(" ")
                        if len(words) > 1:
                            del words[rng.randrange(len(words))]
                        text = " ".join(words)
                    else:
                        text = text + " " + pool[rng.randrange(len(pool))]
                handle.write(text + "\n")
                written += 1
                chars += len(text)
            passes += 1
    return {"texts": written, "chars": chars, "distinct_source_texts": len(pool), "passes": passes}


class RssSampler(threading.Thread):
    """Samples RssAnon / RssFile / VmRSS of this process every `interval` seconds; keeps the peaks."""

    def __init__(self, interval: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.interval = interval
        self.peaks: dict[str, int] = {"RssAnon": 0, "RssFile": 0, "VmRSS": 0}
        self._stop_event = threading.Event()

    def sample(self) -> None:
        try:
            for line in Path("/proc/self/status").read_text().splitlines():
                key = line.split(":", 1)[0]
                if key in self.peaks:
                    self.peaks[key] = max(self.peaks[key], int(line.split()[1]))
        except OSError:
            pass

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.sample()
            time.sleep(self.interval)

    def stop(self) -> dict[str, float]:
        self._stop_event.set()
        self.join()
        self.sample()
        return {k + "_peak_mb": v / 1024 for k, v in self.peaks.items()}


def worker(args: argparse.Namespace) -> dict[str, Any]:
    """Stream the text file through iter_embed into a .npy memmap; measure time and memory."""
    import resource

    import numpy as np

    sampler = RssSampler()
    sampler.start()
    start = time.perf_counter()
    import lightembed

    model = lightembed.load(args.model) if args.model else lightembed.load()
    loaded = time.perf_counter()
    rss_after_load = common.peak_rss_mb()
    n = args.count
    out = np.lib.format.open_memmap(args.output, mode="w+", dtype=model.output_dtype, shape=(n, model.output_width))
    written = 0
    t0 = time.perf_counter()
    with open(args.texts, encoding="utf-8") as handle:
        lines = (line.rstrip("\n") for line in handle)
        for block in model.iter_embed(lines):
            out[written : written + len(block)] = block
            written += len(block)
    out.flush()
    elapsed = time.perf_counter() - t0
    del out
    peaks = sampler.stop()
    if written != n:
        raise SystemExit(f"wrote {written} rows, expected {n}")
    check = np.load(args.output, mmap_mode="r")
    finite = bool(np.isfinite(check[:: max(1, n // 1000)]).all())
    return {
        "texts": written,
        "dim": model.output_width,
        "batch_size": model.batch_size,
        "load_s": loaded - start,
        "stream_s": elapsed,
        "texts_per_s": written / elapsed,
        "peak_rss_after_load_mb": rss_after_load,
        "vmhwm_mb": common.peak_rss_mb(),
        "ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        **peaks,
        "output_mb": Path(args.output).stat().st_size / 2**20,
        "output_finite": finite,
    }


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=1_000_000, help="number of texts to stream")
    parser.add_argument("--model", default="", help="lightembed model folder (default: the bundled default)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--tmp", type=Path, default=None, help="folder for the text file and the .npy (default: system temp)"
    )
    parser.add_argument("--keep-files", action="store_true", help="keep the temporary text and .npy files")
    parser.add_argument("--max-busy", type=float, default=0.2)
    parser.add_argument("--quiet-timeout", type=float, default=180.0)
    parser.add_argument("--out", type=Path, default=common.RESULTS_DIR / "memory.json")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--text-file", dest="text_file", help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        args.texts = args.text_file
        common.emit(worker(args))
        return 0

    data = common.data_dir()
    common.check_data(data)
    tmp = Path(tempfile.mkdtemp(prefix="lightembed_memory_", dir=args.tmp))
    try:
        text_file = tmp / "texts.txt"
        start = time.perf_counter()
        described = write_texts(data, text_file, args.texts, args.seed)
        print(
            f"wrote {described['texts']:,} texts to {text_file} in {time.perf_counter() - start:.1f}s", file=sys.stderr
        )
        busy = common.wait_for_quiet(args.max_busy, args.quiet_timeout)
        info = common.run_worker(
            SCRIPT,
            [
                "--worker",
                "--text-file",
                str(text_file),
                "--output",
                str(tmp / "vectors.npy"),
                "--count",
                str(described["texts"]),
                "--model",
                args.model,
            ],
        )
        info["cpu_busy_before"] = round(busy, 3)
    finally:
        if not args.keep_files:
            for f in tmp.iterdir():
                f.unlink()
            tmp.rmdir()
    from lightembed.resolve import resolve_model

    model_dir = Path(resolve_model(args.model or None))
    payload = {
        "benchmark": "memory",
        "model_files": common.model_fingerprint(model_dir),
        "command": "python benchmarks/memory.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": common.machine_info(),
        "dataset": described,
        "result": info,
        "target_peak_mb": TARGET_MB,
        "target_met": info["vmhwm_mb"] < TARGET_MB,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    print(render(payload))
    print(f"\nwritten: {args.out}", file=sys.stderr)
    return 0


def render(payload: dict[str, Any]) -> str:
    """The markdown summary."""
    m = payload["machine"]
    r = payload["result"]
    ds = payload["dataset"]
    lines = [
        f"### Streaming memory ({m['date']}, {m['cores']}-core {m['cpu']})",
        "",
        (
            f"{ds['texts']:,} texts ({ds['chars'] / ds['texts']:.0f} chars on average) streamed from a text file "
            f"through `iter_embed` into a {r['output_mb']:.0f} MiB .npy memmap, fresh process."
        ),
        "",
    ]
    rows = [
        ["wall time (stream)", f"{r['stream_s']:.1f} s"],
        ["texts/s", f"{r['texts_per_s']:,.0f}"],
        ["peak RSS (VmHWM, includes memmap pages)", f"{r['vmhwm_mb']:,.0f} MiB"],
        ["peak RssAnon (own heap, sampled)", f"{r['RssAnon_peak_mb']:,.0f} MiB"],
        ["peak RssFile (mapped files, sampled)", f"{r['RssFile_peak_mb']:,.0f} MiB"],
        ["RSS after load", f"{r['peak_rss_after_load_mb']:,.0f} MiB"],
        ["model load", f"{r['load_s'] * 1000:.0f} ms"],
    ]
    lines.append(common.markdown_table(["measure", "value"], rows))
    lines.append("")
    lines.append(f"- target peak < {payload['target_peak_mb']} MiB: {'met' if payload['target_met'] else 'MISSED'}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
