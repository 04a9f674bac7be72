"""Embedding quality: lightembed models and their peers on the evaluation-only splits, task by task.

Runs the suite of `lightembed_train.evaluate` (STS, pair classification, classification probes,
clustering, reranking, SciFact retrieval, Quora duplicate groups) on every encoder named in
`--models`, prints a markdown table (tasks as rows, encoders as columns, then the average and
the throughput) and writes the scores to a JSON file.

Encoders (`--models`, comma separated):
    default, default@64      the bundled lightembed model, optionally truncated
    PATH, PATH@128           any lightembed model folder (or model2vec / WordLlama files it reads)
    minilm                   all-MiniLM-L6-v2 (the teacher) through sentence-transformers, on the CPU
    wordllama256, wordllama64  WordLlama l2_supercat, full and truncated (its trunc_dim)
    model2vec256             model2vec's own distillation of the same teacher, PCA 256 (made once
                             into benchmarks/out/model2vec_minilm_256)

Embeddings are cached per (encoder, task) in benchmarks/out/cache, with the seconds each took,
so a re-run only scores. The teacher is slow on a CPU (about 125-250 texts/s): a first run of
all encoders takes about 20 minutes, mostly the teacher's 111k texts.

Usage:
    .venv/bin/python benchmarks/quality.py --models default,default@64,minilm,wordllama256,wordllama64,model2vec256 \\
        --out benchmarks/results/quality.json
The data folder is $LIGHTEMBED_DATA, else ../shared/data. Nothing touches the network.
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import common

from lightembed_train.evaluate import (
    TASKS,
    EmbeddingCache,
    EncoderReport,
    default_tasks,
    encoder_from_spec,
    evaluate,
    markdown_table,
)

DEFAULT_MODELS = "default,default@64,minilm,wordllama256,wordllama64,model2vec256"
WORK_DIR = common.REPO_ROOT / "benchmarks" / "out"
PACKAGES = ("torch", "sentence-transformers", "scikit-learn", "scipy", "wordllama", "model2vec", "lightembed")


def _versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def _payload(
    reports: list[EncoderReport], args: argparse.Namespace, command: str, wall: float, busy: float
) -> dict[str, object]:
    return {
        "command": command,
        "data": str(args.data),
        "tasks": [r.task for r in reports[0].results] if reports else [],
        "machine": common.machine_info(),
        "packages": _versions(),
        "default_model": common.model_fingerprint(common.DEFAULT_MODEL_DIR),
        "cpu_busy_at_start": round(busy, 3),
        "wall_seconds": round(wall, 1),
        "encoders": [r.to_json() for r in reports],
        "table": markdown_table(reports) if reports else "",
    }


CARD_HEADING = "## Benchmark"


def write_card_section(folder: Path, table: str, command: str) -> Path:
    """Put the suite's table in the model card `folder/README.md` (replacing an earlier one)."""
    card = folder / "README.md"
    if not card.is_file():
        raise FileNotFoundError(f"{card}: model card not found")
    text = card.read_text(encoding="utf-8")
    head, _, tail = text.partition(f"\n{CARD_HEADING}\n")
    rest = tail.partition("\n## ")[2] if tail else ""
    section = (
        f"\n{CARD_HEADING}\n\nThe evaluation-only splits of the shared data folder, every encoder in the same run"
        f" on the same machine (2 CPU cores):\n\n```bash\n{command}\n```\n\n{table}\n"
    )
    card.write_text(head.rstrip("\n") + "\n" + section + (f"\n## {rest}" if rest else ""), encoding="utf-8")
    return card


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=DEFAULT_MODELS, help=f"comma-separated encoders (default {DEFAULT_MODELS})")
    parser.add_argument("--tasks", default="", help=f"comma-separated tasks (default all: {', '.join(TASKS)})")
    parser.add_argument("--out", type=Path, default=common.RESULTS_DIR / "quality.json", help="JSON results file")
    parser.add_argument("--cache", type=Path, default=WORK_DIR / "cache", help="embedding cache folder")
    parser.add_argument("--no-cache", action="store_true", help="embed everything again and store nothing")
    parser.add_argument("--work", type=Path, default=WORK_DIR, help="folder for made peers (model2vec, WordLlama)")
    parser.add_argument("--data", type=Path, default=common.data_dir(), help="shared data folder")
    parser.add_argument("--card", type=Path, default=None, help="also write the table into this model folder's card")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    command = shlex.join(["python", "benchmarks/quality.py", *(sys.argv[1:] if argv is None else argv)])

    common.check_data(args.data)
    specs = [s.strip() for s in args.models.split(",") if s.strip()]
    names = [s.strip() for s in args.tasks.split(",") if s.strip()] or None
    start = time.perf_counter()
    tasks = default_tasks(args.data, names)
    cache = None if args.no_cache else EmbeddingCache(args.cache)
    busy = common.cpu_busy_fraction()
    reports: list[EncoderReport] = []
    for spec in specs:
        encoder = encoder_from_spec(spec, args.work)
        reports.append(evaluate(encoder, tasks, cache))
        print(f"{encoder.name}: average {reports[-1].average:.2f}", file=sys.stderr, flush=True)
        payload = _payload(reports, args, command, time.perf_counter() - start, busy)
        common.write_json(args.out.stem, payload, args.out.parent)  # after each encoder: partial results survive
    print(markdown_table(reports))
    if args.card is not None and reports:
        print(f"table written to {write_card_section(args.card, markdown_table(reports), command)}", file=sys.stderr)
    print(f"\n{len(tasks)} tasks, {len(reports)} encoders, {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
