"""Dev-split scores of lightembed model folders, for choosing training settings.

Only train-allowed dev splits are read (never an evaluation-only file): STS-B dev and SICK trial
(Spearman x100), WikiQA dev and TrecQA dev (MAP x100), SciFact train claims against the corpus
(nDCG@10 x100; not a clean check for a model tuned with `--pairs`, which trains on those claims),
and probe accuracy x100 on a fixed stratified 20% held out of the TREC and Banking77 train splits
(the probe fitted on the other 80%; `--pairs` never trains on the held-out 20%).
Prints one markdown row per model and dimension.

Usage: .venv/bin/python benchmarks/dev_scores.py FOLDER [FOLDER ...] [--dims 64,128,256]
The data folder is $LIGHTEMBED_DATA, else ../shared/data.
"""

from __future__ import annotations

import argparse
import sys

import lightembed
from lightembed.scoring import unit_rows
from lightembed_train.datasets import (
    data_dir,
    read_answer_selection,
    read_banking77,
    read_scifact,
    read_sick,
    read_sts_benchmark,
    read_trec,
)
from lightembed_train.evaluation.base import Task
from lightembed_train.evaluation.classification import ClassificationTask, holdout_split
from lightembed_train.evaluation.reranking import RerankingTask
from lightembed_train.evaluation.retrieval import RetrievalTask
from lightembed_train.evaluation.sts import StsTask


def dev_tasks() -> list[Task]:
    """The dev tasks, read from the shared data folder."""
    data = data_dir()
    return [
        StsTask("STS-B dev", read_sts_benchmark(data, "dev")),
        StsTask("SICK trial", read_sick(data, "TRIAL")),
        RerankingTask("WikiQA dev", read_answer_selection(data / "wikiqa" / "dev.txt")),
        RerankingTask("TrecQA dev", read_answer_selection(data / "trecqa" / "dev.txt")),
        RetrievalTask("SciFact train claims", read_scifact(data, "claims_train.csv")),
        ClassificationTask("TREC train holdout", *holdout_split(read_trec(data, "train"))),
        ClassificationTask("Banking77 train holdout", *holdout_split(read_banking77(data, "train"))),
    ]


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", help="lightembed model folders")
    parser.add_argument("--dims", default="64,128,256", help="comma-separated dimensions (default 64,128,256)")
    args = parser.parse_args(argv)
    dims = [int(d) for d in args.dims.split(",")]
    tasks = dev_tasks()
    print("| model | dim | " + " | ".join(t.name for t in tasks) + " |")
    print("|---|---:|" + "---:|" * len(tasks))
    for folder in args.folders:
        model = lightembed.load(folder)
        vectors = [model.embed(task.texts) for task in tasks]
        for dim in dims:
            scores = [next(iter(t.score(unit_rows(v[:, :dim])).values())) for t, v in zip(tasks, vectors)]
            print(f"| {folder} | {dim} | " + " | ".join(f"{s:.2f}" for s in scores) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
