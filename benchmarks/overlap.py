"""How much of the suite's eval-only pair tasks the default model's training saw through train-allowed files.

The shared datasets overlap across splits (STS-B's MSRpar part comes from MRPC, SICK's splits share
sentences, Quora's dev and test groups share questions). No eval-only file is read in training, but
a test pair can also appear in a train-allowed file. For each eval-only pair task this counts its
pairs (unordered, whitespace-normalised) that are also
- positives of `lightembed-train tune --pairs` (the default sources, as the shipped model used), or
- pairs of the dev sets that chose the tuning epoch (STS-B dev, SICK trial),
and its texts that also occur in those positives, and the bundled default model's score on all the
pairs against the pairs neither set holds.

Usage: .venv/bin/python benchmarks/overlap.py   (results: benchmarks/results/overlap.json)
The data folder is $LIGHTEMBED_DATA, else ../shared/data.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import common
import numpy as np

import lightembed
from lightembed_train.datasets import ScoredPairs, data_dir, read_labelled_pairs, read_sick, read_sts_benchmark
from lightembed_train.evaluation.pairs import average_precision
from lightembed_train.evaluation.sts import spearman
from lightembed_train.pairs import training_pairs

Metric = Callable[[np.ndarray, np.ndarray], float]


def normalised(text: str) -> str:
    return " ".join(text.split())


def pair_keys(pairs: ScoredPairs) -> set[frozenset[str]]:
    return {frozenset((normalised(a), normalised(b))) for a, b in zip(pairs.texts1, pairs.texts2)}


def ap(scores: np.ndarray, labels: np.ndarray) -> float:
    """Average precision x100 with label > 0 relevant (the suite's pair classification metric)."""
    return average_precision(scores, (labels > 0).astype(np.int64))


def main() -> None:
    argparse.ArgumentParser(description=__doc__.split("\n")[0]).parse_args()
    data = data_dir()
    positives, _ = training_pairs(data)
    tuned = {frozenset((normalised(a), normalised(b))) for a, b in positives}
    tuned_texts = {text for pair in tuned for text in pair}
    dev = pair_keys(read_sts_benchmark(data, "dev")) | pair_keys(read_sick(data, "TRIAL"))
    tasks: dict[str, tuple[ScoredPairs, str, Metric]] = {
        "STS-B test": (read_sts_benchmark(data, "test"), "Spearman", spearman),
        "SICK-R test": (read_sick(data, "TEST"), "Spearman", spearman),
        "MRPC test": (read_labelled_pairs(data / "mrpc" / "test.txt"), "AP", ap),
        "Quora pairs test": (read_labelled_pairs(data / "quora_pairs_bimpm" / "test.txt"), "AP", ap),
    }
    model = lightembed.load()
    rows = {}
    for name, (pairs, metric_name, metric) in tasks.items():
        keys = pair_keys(pairs)
        texts = {normalised(t) for t in pairs.texts1 + pairs.texts2}
        line_keys = [frozenset((normalised(a), normalised(b))) for a, b in zip(pairs.texts1, pairs.texts2)]
        unseen = np.array([key not in tuned and key not in dev for key in line_keys])
        scores, gold = model.pair_similarity(pairs.texts1, pairs.texts2), np.asarray(pairs.scores, dtype=np.float64)
        rows[name] = {
            "pairs": len(keys),
            "pairs_among_tune_positives": len(keys & tuned),
            "pairs_in_tuning_dev_sets": len(keys & dev),
            "texts": len(texts),
            "texts_in_tune_positives": len(texts & tuned_texts),
            "metric": metric_name,
            "default_model_all_pairs": round(metric(scores, gold), 2),
            "default_model_unseen_pairs": round(metric(scores[unseen], gold[unseen]), 2),
            "unseen_pair_lines": int(unseen.sum()),
        }
    print(
        "| task | pairs | among tune positives | in STS-B dev / SICK trial | texts in tune positives | default model: all / unseen pairs |"
    )
    print("|---|---:|---:|---:|---:|---|")
    for name, row in rows.items():
        print(
            f"| {name} | {row['pairs']:,} | {row['pairs_among_tune_positives']:,} | {row['pairs_in_tuning_dev_sets']:,}"
            f" | {row['texts_in_tune_positives']:,} of {row['texts']:,} | {row['metric']} "
            f"{row['default_model_all_pairs']:.2f} / {row['default_model_unseen_pairs']:.2f} |"
        )
    payload = {"command": "python benchmarks/overlap.py", "machine": common.machine_info(), "tasks": rows}
    print(common.write_json("overlap", payload))


if __name__ == "__main__":
    main()
