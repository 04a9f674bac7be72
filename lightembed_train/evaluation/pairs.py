"""Pair classification: average precision of pair cosines against 0/1 labels."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score

from ..datasets import ScoredPairs
from .base import Task, pair_cosines


def average_precision(scores: np.ndarray, labels: np.ndarray) -> float:
    """Average precision x100 of ranking the pairs by score, label 1 relevant."""
    return 100.0 * float(average_precision_score(labels, scores))


class PairClassificationTask(Task):
    """Average precision x100 of cosine for telling positive pairs from negative ones."""

    family = "Pair classification"
    metrics = ("AP",)

    def __init__(self, name: str, pairs: ScoredPairs) -> None:
        super().__init__()
        self.name = name
        self.left = self.index.add(pairs.texts1)
        self.right = self.index.add(pairs.texts2)
        self.labels = (np.asarray(pairs.scores) > 0).astype(np.int64)

    def score(self, vectors: np.ndarray) -> dict[str, float]:
        return {"AP": average_precision(pair_cosines(vectors, self.left, self.right), self.labels)}
