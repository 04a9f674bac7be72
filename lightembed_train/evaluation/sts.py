"""Semantic textual similarity: Spearman correlation of pair cosines with gold scores."""

from __future__ import annotations

import numpy as np
from scipy.stats import spearmanr

from ..datasets import ScoredPairs
from .base import Task, pair_cosines


def spearman(predicted: np.ndarray, gold: np.ndarray) -> float:
    """Spearman rank correlation x100; 0 where either side is constant (scores that are all equal rank nothing)."""
    if np.ptp(predicted) == 0 or np.ptp(gold) == 0:
        return 0.0
    return 100.0 * float(spearmanr(predicted, gold).statistic)


class StsTask(Task):
    """Spearman x100 of cosine against the gold similarity of each pair."""

    family = "STS"
    metrics = ("Spearman",)

    def __init__(self, name: str, pairs: ScoredPairs) -> None:
        super().__init__()
        self.name = name
        self.left = self.index.add(pairs.texts1)
        self.right = self.index.add(pairs.texts2)
        self.gold = np.asarray(pairs.scores, dtype=np.float64)

    def score(self, vectors: np.ndarray) -> dict[str, float]:
        return {"Spearman": spearman(pair_cosines(vectors, self.left, self.right), self.gold)}
