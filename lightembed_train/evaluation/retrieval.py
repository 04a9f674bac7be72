"""Retrieval: nDCG@10 of ranking a document collection by cosine to each query."""

from __future__ import annotations

import numpy as np

from ..datasets import RetrievalSet
from .base import Task
from .reranking import tie_order

NDCG_K = 10


def ndcg_at_k(relevance: np.ndarray, n_relevant: int, k: int = NDCG_K) -> float:
    """nDCG@k (0-1) with binary gains: `relevance` is the 0/1 list of the ranked documents.

    The ideal ranking puts min(n_relevant, k) relevant documents first.
    """
    gains = np.asarray(relevance, dtype=np.float64)[:k]
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    ideal = discounts[: min(n_relevant, k)].sum()
    return float(gains @ discounts[: len(gains)] / ideal) if ideal > 0 else 0.0


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Column indices of the k highest scores of each row, best first: [rows, min(k, columns)]."""
    return smallest_k(-scores, k)


def smallest_k(values: np.ndarray, k: int) -> np.ndarray:
    """Column indices of the k smallest values of each row, smallest first (a partial sort, then a
    stable sort of the k, so equal values keep `np.argpartition`'s order): `top_k` of -values."""
    k = min(k, values.shape[1])
    part = np.argpartition(values, k - 1, axis=1)[:, :k]
    order = np.argsort(np.take_along_axis(values, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


class RetrievalTask(Task):
    """nDCG@10 x100 of the collection ranked by cosine, averaged over queries with a relevant document."""

    family = "Retrieval"
    metrics = ("nDCG@10",)

    def __init__(self, name: str, data: RetrievalSet) -> None:
        super().__init__()
        self.name = name
        query_ids = [q for q in data.queries if data.relevant.get(q, set()) & data.corpus.keys()]
        self.doc_ids = list(data.corpus)
        self.query_rows = self.index.add(data.queries[q] for q in query_ids)
        self.doc_rows = self.index.add(data.corpus[d] for d in self.doc_ids)
        column = {doc: i for i, doc in enumerate(self.doc_ids)}
        self.relevant = [np.asarray([column[d] for d in data.relevant[q] if d in column]) for q in query_ids]

    def score(self, vectors: np.ndarray) -> dict[str, float]:
        shuffled = tie_order(len(self.doc_rows))  # tied documents in a fixed order, not the corpus file's
        ranked = shuffled[top_k(vectors[self.query_rows] @ vectors[self.doc_rows[shuffled]].T, NDCG_K)]
        values = [ndcg_at_k(np.isin(row, relevant), len(relevant)) for row, relevant in zip(ranked, self.relevant)]
        return {"nDCG@10": 100.0 * float(np.mean(values))}
