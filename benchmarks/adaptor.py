"""Matryoshka adaptor on SciFact: nDCG@10 of short prefixes, plain truncation against the adaptor.

Protocol (the BEIR SciFact split):
- corpus: the 5,183 abstracts (title + " " + abstract sentences, as the suite embeds them);
  unsupervised use is allowed;
- training: `claims_train.csv` (809 claims, their cited abstracts are the relevant documents); a
  group-disjoint fifth of them (claims that share a cited abstract stay together) is the dev split
  that chooses every setting and the kept epochs; the rest trains the supervised stage;
- test: `claims_validation.csv` (300 claims = the BEIR test queries), evaluation only.

Two encoders: all-MiniLM-L6-v2 (the teacher, through `lightembed_train.teacher`, vectors cached in
`--cache`), and the bundled lightembed model (its pooled vectors; the adaptor written into a new
model folder). Every test score is computed through the numpy runtime: the MiniLM adaptor is saved
as a transform file and applied with `lightembed.load_transform(...).apply(vectors, dim=m)`; the
lightembed adaptor is loaded with `lightembed.load(folder, dim=m)` and embeds the texts itself.

Prints a markdown table and writes the results JSON (`--out`) and a plot of score against
dimension (`--plot`, needs matplotlib).

Usage (one encoder per run, as the README's figures were made; both in one run by default):
    .venv/bin/python benchmarks/adaptor.py --cache /work/cache/teacher --threads 1 --encoders minilm \
        --out benchmarks/results/adaptor-minilm.json --plot benchmarks/results/adaptor-minilm.png
The data folder is $LIGHTEMBED_DATA, else ../shared/data. Nothing touches the network.
"""

from __future__ import annotations

import argparse
import csv
import logging
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import common
import numpy as np
import torch

import lightembed
from lightembed_train.adapt import AdaptSettings, retrieval_ndcg
from lightembed_train.adapt_fit import (
    AdaptResult,
    fit_adaptor,
    plot_scores,
    pooled_vectors,
    write_adapted_model,
)
from lightembed_train.datasets import RetrievalSet, read_scifact, string_literals
from lightembed_train.targets import teacher_embeddings
from lightembed_train.teacher import Teacher

MINILM_DIMS = (16, 32, 64, 128, 384)
DEFAULT_DIMS = (16, 32, 64, 128, 256)
# The public Matryoshka-Adaptor implementation's SciFact nDCG@10 with all-MiniLM-L6-v2 (from the issue).
REFERENCE = {
    "truncation": {32: 33.7, 64: 48.4, 384: 64.5},
    "unsupervised": {32: 43.0, 64: 52.8},
    "supervised": {32: 49.7, 64: 56.1},
}
# Chosen on the dev split of the train claims (see the README); epochs capped for a 2-core CPU. An epoch
# whose full-width dev score falls more than 1 point below the input's is never kept (the allowance).
SETTINGS = AdaptSettings(epochs=10, supervised_epochs=6, patience=3, full_width_tolerance=1.0)


def relevance_pairs(data: RetrievalSet, doc_ids: list[str]) -> tuple[np.ndarray, list[np.ndarray]]:
    """(query row, doc row) pairs of `data`, and the relevant doc rows of each query, in `data.queries` order."""
    column = {doc: i for i, doc in enumerate(doc_ids)}
    relevant = [np.asarray(sorted(column[d] for d in data.relevant[q] if d in column)) for q in data.queries]
    pairs = np.asarray([(q, d) for q, docs in enumerate(relevant) for d in docs.tolist()], dtype=np.int64)
    return pairs, relevant


def corpus_sentences(data_dir: Path) -> list[str]:
    """Titles and abstract sentences of the SciFact corpus (unlabelled text, unsupervised use allowed)."""
    texts: list[str] = []
    with (data_dir / "scifact" / "corpus_train.csv").open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            texts.append(row["title"])
            texts.extend(string_literals(row["abstract"]))
    return list(dict.fromkeys(t for t in texts if t.strip()))


def test_scores(apply: Any, queries: Any, corpus: Any, relevant: list[np.ndarray], dims: tuple[int, ...]) -> dict:
    """nDCG@10 of the test claims at each dim, with `apply(items, dim)` giving the vectors at that dim."""
    return {m: retrieval_ndcg(apply(queries, m), apply(corpus, m), relevant, (m,))[m] for m in dims}


def run_minilm(args: argparse.Namespace, train: RetrievalSet, test: RetrievalSet, work: Path) -> dict[str, Any]:
    """The adaptor on all-MiniLM-L6-v2 vectors, scored through a saved transform file."""
    teacher = Teacher(device=args.device)

    def embed(texts: list[str]) -> np.ndarray:
        return teacher_embeddings(teacher, texts, args.cache, progress=not args.quiet)

    doc_ids = list(train.corpus)
    corpus = embed(list(train.corpus.values()))
    train_queries, test_queries = embed(list(train.queries.values())), embed(list(test.queries.values()))
    extra = embed(corpus_sentences(args.data)) if args.sentences else None
    pairs, _ = relevance_pairs(train, doc_ids)
    result = fit_adaptor(
        corpus, train_queries, pairs, extra=extra, settings=SETTINGS, device=args.device, progress=not args.quiet
    )
    _, relevant = relevance_pairs(test, doc_ids)
    rows = {"truncation": test_scores(_truncate, test_queries, corpus, relevant, MINILM_DIMS)}
    equality = []
    for stage in result.stages:
        path = lightembed.save_transform(work / f"minilm-{stage.name}.safetensors", result.stage_transform(stage.name))
        transform = lightembed.load_transform(path)
        rows[stage.name] = test_scores(transform.apply, test_queries, corpus, relevant, MINILM_DIMS)
        equality.append(_torch_difference(result, stage.name, transform, test_queries))
    return _report("all-MiniLM-L6-v2", result, rows, max(equality), len(test.queries))


def run_default(args: argparse.Namespace, train: RetrievalSet, test: RetrievalSet, work: Path) -> dict[str, Any]:
    """The adaptor on the bundled lightembed model, written as model folders and run by `lightembed.load`."""
    model = lightembed.load()
    doc_texts, test_texts = list(train.corpus.values()), list(test.queries.values())
    pairs, _ = relevance_pairs(train, list(train.corpus))
    extra = pooled_vectors(model, corpus_sentences(args.data)) if args.sentences else None
    result = fit_adaptor(
        pooled_vectors(model, doc_texts),
        pooled_vectors(model, list(train.queries.values())),
        pairs,
        extra=extra,
        settings=SETTINGS,
        normalize=model.config.normalize,
        device=args.device,
        progress=not args.quiet,
    )
    _, relevant = relevance_pairs(test, list(train.corpus))

    def runtime(folder: Path | None) -> Any:
        return lambda texts, dim: lightembed.load(folder, dim=dim).embed(texts)

    rows = {"truncation": test_scores(runtime(None), test_texts, doc_texts, relevant, DEFAULT_DIMS)}
    equality = []
    for stage in result.stages:
        folder = write_adapted_model(model, result, work / f"default-{stage.name}", args.command, stage.name)
        rows[stage.name] = test_scores(runtime(folder), test_texts, doc_texts, relevant, DEFAULT_DIMS)
        adapted = lightembed.load(folder).parts.transform
        equality.append(_torch_difference(result, stage.name, adapted, pooled_vectors(model, test_texts)))
    return _report("lightembed default (256)", result, rows, max(equality), len(test.queries))


def _truncate(vectors: np.ndarray, dim: int) -> np.ndarray:
    return vectors[:, :dim]


def _torch_difference(result: AdaptResult, stage: str, transform: lightembed.Transform, vectors: np.ndarray) -> float:
    """Largest |numpy - torch| of the stage's adaptor on `vectors` (the runtime's forward pass against torch's)."""
    with torch.no_grad():
        expected = result.stage_adaptor(stage).cpu()(torch.as_tensor(vectors)).numpy()
    return float(np.abs(transform.forward(vectors.astype(np.float32)) - expected).max())


def _report(name: str, result: AdaptResult, rows: dict, difference: float, test_queries: int) -> dict[str, Any]:
    return {
        "encoder": name,
        "test_ndcg10": rows,
        "dev": result.summary(),
        "test_queries": test_queries,
        "max_abs_numpy_vs_torch": difference,
    }


def markdown(report: dict[str, Any]) -> str:
    """One table per encoder: nDCG@10 on the test claims by dimension."""
    rows = report["test_ndcg10"]
    dims = sorted(next(iter(rows.values())))
    header = ["method", *map(str, dims)]
    body = [[method, *(f"{scores[m]:.1f}" for m in dims)] for method, scores in rows.items()]
    if report["encoder"].startswith("all-MiniLM"):
        for method, scores in REFERENCE.items():
            body.append([f"reference {method}", *(f"{scores[m]:.1f}" if m in scores else "" for m in dims)])
    return f"**{report['encoder']}** (SciFact test, nDCG@10)\n\n" + common.markdown_table(header, body)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="shared data folder (default $LIGHTEMBED_DATA)")
    parser.add_argument("--cache", default=None, help="folder for the teacher's vectors (reused across runs)")
    parser.add_argument("--out", type=Path, default=common.RESULTS_DIR / "adaptor.json")
    parser.add_argument("--plot", type=Path, default=common.RESULTS_DIR / "adaptor.png")
    parser.add_argument("--work", type=Path, default=None, help="folder for the exported adaptors (default: temporary)")
    parser.add_argument("--encoders", default="minilm,default", help="which encoders (comma separated)")
    parser.add_argument("--sentences", action="store_true", help="add the corpus titles and sentences, unlabelled")
    parser.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's own)")
    parser.add_argument("-q", "--quiet", action="store_true")
    args = parser.parse_args(argv)
    args.data = args.data or common.data_dir()
    common.check_data(args.data)
    args.command = shlex.join(["python", "benchmarks/adaptor.py", *(sys.argv[1:] if argv is None else argv)])
    if args.threads:
        torch.set_num_threads(args.threads)
    if not args.quiet:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    train = read_scifact(args.data, "claims_train.csv")
    test = read_scifact(args.data, "claims_validation.csv")
    runners = {"minilm": run_minilm, "default": run_default}
    started = time.perf_counter()
    reports = []
    with tempfile.TemporaryDirectory() as scratch:
        work = args.work or Path(scratch)
        for name in args.encoders.split(","):
            begun = time.perf_counter()
            report = runners[name](args, train, test, work)
            report["seconds"] = round(time.perf_counter() - begun, 1)
            reports.append(report)
            print(markdown(report) + "\n", flush=True)
    payload = {
        "command": args.command,
        "protocol": __doc__,
        "settings": SETTINGS.__dict__,
        "sentences": args.sentences,
        "reports": reports,
        "seconds": round(time.perf_counter() - started, 1),
        "machine": common.machine_info(),
    }
    print(common.write_json(args.out.stem, payload, args.out.parent))
    try:
        curves = {
            f"{r['encoder'].split(' (')[0]} {method}": scores
            for r in reports
            for method, scores in r["test_ndcg10"].items()
        }
        print(plot_scores(curves, args.plot, "SciFact nDCG@10 (test claims)", "Matryoshka adaptor"))
    except ImportError as exc:
        print(f"no plot: {exc}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
