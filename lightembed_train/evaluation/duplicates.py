"""Duplicate groups: leave-one-out retrieval inside a pool of known duplicate groups (litfit's protocol).

Positive pairs are joined into groups with union-find. Every text of a group of two or more
is a query once: all other texts of the pool are ranked by cosine, the other members of its
group are the relevant ones. Reported: MAP@50 (average precision over the top 50, divided by
min(#relevant, 50)) and R@1 (the share of queries whose nearest neighbour is in their group).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from .base import Task
from .reranking import ranked_average_precision
from .retrieval import top_k

MAP_K = 50
BLOCK_ROWS = 1024


def union_find_groups(pairs: Iterable[tuple[str, str]]) -> list[list[str]]:
    """Connected components of the pairs: groups of two or more texts, each in first-seen order.

    Groups come in the order of their first-seen member; identical texts are one item.
    """
    parent: dict[str, str] = {}

    def root(item: str) -> str:
        parent.setdefault(item, item)
        while parent[item] != item:
            parent[item] = parent[parent[item]]
            item = parent[item]
        return item

    for a, b in pairs:
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[rb] = ra
    groups: dict[str, list[str]] = {}
    for item in parent:
        groups.setdefault(root(item), []).append(item)
    return [members for members in groups.values() if len(members) >= 2]


def leave_one_out(vectors: np.ndarray, group_ids: np.ndarray, k: int = MAP_K) -> tuple[float, float]:
    """(MAP@k, R@1), both 0-1, of ranking every other row by cosine for each row of unit `vectors`.

    A row alone in its group is a distractor only, not a query (litfit's definition)."""
    group_ids = np.asarray(group_ids)
    sizes = np.unique(group_ids, return_counts=True)
    n_relevant = dict(zip(sizes[0].tolist(), (sizes[1] - 1).tolist()))
    precisions, first_hits = [], []
    for start in range(0, len(vectors), BLOCK_ROWS):
        rows = np.arange(start, min(start + BLOCK_ROWS, len(vectors)))
        scores = vectors[rows] @ vectors.T
        scores[np.arange(len(rows)), rows] = -np.inf  # never retrieve the query itself
        ranked = top_k(scores, min(k, len(vectors) - 1))  # the query itself, at -inf, is never among them
        for row, neighbours in zip(rows, ranked):
            if n_relevant[group_ids[row].item()] == 0:
                continue
            relevance = group_ids[neighbours] == group_ids[row]
            precisions.append(ranked_average_precision(relevance, n_relevant[group_ids[row].item()], k))
            first_hits.append(bool(relevance[0]))
    return float(np.mean(precisions)), float(np.mean(first_hits))


class DuplicateGroupsTask(Task):
    """MAP@50 and R@1 x100 of leave-one-out retrieval over the texts of the duplicate groups."""

    family = "Duplicate groups"
    metrics = ("MAP@50", "R@1")

    def __init__(self, name: str, groups: list[list[str]]) -> None:
        super().__init__()
        self.name = name
        texts = [text for members in groups for text in members]
        self.index.add(texts)
        if len(self.texts) != len(texts):
            raise ValueError(f"{name}: groups must be disjoint and hold distinct texts")
        self.group_ids = np.repeat(np.arange(len(groups)), [len(members) for members in groups])

    def score(self, vectors: np.ndarray) -> dict[str, float]:
        mean_ap, recall = leave_one_out(vectors, self.group_ids)
        return {"MAP@50": 100.0 * mean_ap, "R@1": 100.0 * recall}
