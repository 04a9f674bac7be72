"""Reranking: mean average precision of the candidates of each query, ordered by cosine."""

from __future__ import annotations

import numpy as np

from ..datasets import RankingQuery
from .base import Task


def ranked_average_precision(relevance: np.ndarray, n_relevant: int | None = None, k: int | None = None) -> float:
    """Average precision (0-1) of a 0/1 relevance list given in rank order.

    The sum of precision@rank over the relevant hits is divided by `n_relevant` (default: the
    relevant items in the list). With `k`, only the first `k` ranks count and the divisor is
    min(n_relevant, k), which is MAP@k as litfit and MTEB compute it.
    """
    hits = np.asarray(relevance, dtype=bool)
    total = int(hits.sum()) if n_relevant is None else int(n_relevant)
    if k is not None:
        hits = hits[:k]
        total = min(total, k)
    if total <= 0:
        return 0.0
    ranks = np.flatnonzero(hits) + 1
    return float(np.sum(np.arange(1, len(ranks) + 1) / ranks) / total)


TIE_SEED = 0  # seeds the fixed order of tied scores


def tie_order(n: int) -> np.ndarray:
    """A fixed pseudo-random order of `n` positions, which breaks ties between equal scores.

    Not the input order: answer-selection files list the right answers first, so input order would
    rank every tie their way (a scorer that gives every candidate the same score would reach TrecQA
    MAP 100 instead of about 40).
    """
    return np.random.default_rng(TIE_SEED).permutation(n)


def rank_by_score(scores: np.ndarray) -> np.ndarray:
    """Indices from the highest score down; tied scores in the fixed order of `tie_order`."""
    scores = np.asarray(scores)
    return np.lexsort((tie_order(len(scores)), -scores))


class RerankingTask(Task):
    """MAP x100 over the queries that have both a relevant and an irrelevant candidate."""

    family = "Reranking"
    metrics = ("MAP",)

    def __init__(self, name: str, queries: list[RankingQuery]) -> None:
        super().__init__()
        self.name = name
        kept = [q for q in queries if q.has_both_labels]
        self.query_rows = self.index.add(q.query for q in kept)
        self.candidate_rows = [self.index.add(q.candidates) for q in kept]
        self.labels = [np.asarray(q.labels, dtype=bool) for q in kept]

    def score(self, vectors: np.ndarray) -> dict[str, float]:
        precisions = []
        for query, candidates, labels in zip(self.query_rows, self.candidate_rows, self.labels):
            order = rank_by_score(vectors[candidates] @ vectors[query])
            precisions.append(ranked_average_precision(labels[order]))
        return {"MAP": 100.0 * float(np.mean(precisions))}
