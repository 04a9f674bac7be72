"""Spherical k-means with k-means++ seeding, several restarts, and blocked assignment."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .checks import positive_int, random_seed
from .scoring import blocks

ASSIGN_BLOCK = 8192
ASSIGN_ENTRIES = 1 << 22  # similarities (rows x k) computed at once: fewer rows per block when k is large
ONE_HOT_CLUSTERS = 128  # up to this k, cluster sums are a one-hot product (BLAS beats sorting); above, sort and reduce


@dataclass
class ClusterResult:
    """Labels per item, unit centroids [k, d], and inertia = sum of (1 - cosine to own centroid).

    Zero rows (empty texts) have cosine 0 to every centroid and go to cluster 0. With fewer
    distinct non-zero items than k some clusters stay empty; centroids are zero only when every
    item is.
    """

    labels: np.ndarray
    centroids: np.ndarray
    inertia: float
    n_iter: int

    @property
    def sizes(self) -> np.ndarray:
        """Number of items in each cluster."""
        return np.bincount(self.labels, minlength=len(self.centroids))

    def members(self, cluster: int) -> np.ndarray:
        """Indices of the items in one cluster."""
        return np.flatnonzero(self.labels == cluster)


def spherical_kmeans(
    unit: np.ndarray,
    k: int,
    *,
    n_init: int = 3,
    max_iter: int = 100,
    tol: float = 1e-6,
    seed: int | None = None,
) -> ClusterResult:
    """Cluster unit rows by cosine; the best of `n_init` k-means++ runs (lowest inertia)."""
    n = len(unit)
    k = positive_int("k", k)
    if n == 0:
        raise ValueError("cannot cluster: the input has no items")
    if k > n:
        raise ValueError(f"k={k} is larger than the number of items ({n})")
    n_init, max_iter = positive_int("n_init", n_init), positive_int("max_iter", max_iter)
    rng = np.random.default_rng(random_seed(seed))
    live = np.einsum("ij,ij->i", unit, unit) > 0  # zero rows (empty texts) never seed or re-seed a cluster
    best: ClusterResult | None = None
    for _ in range(n_init):
        result = _lloyd(unit, _kmeans_plus_plus(unit, k, rng, live), live, max_iter, tol)
        if best is None or result.inertia < best.inertia:
            best = result
    return best


def _kmeans_plus_plus(unit: np.ndarray, k: int, rng: np.random.Generator, live: np.ndarray) -> np.ndarray:
    """k-means++ seeding with distance 1 - cosine, among the `live` (non-zero) rows."""
    n = len(unit)
    candidates = np.flatnonzero(live)
    centers = np.zeros((k, unit.shape[1]), dtype=np.float32)
    if not len(candidates):
        return centers
    centers[0] = unit[candidates[rng.integers(len(candidates))]]
    distance = np.where(live, np.maximum(1.0 - unit @ centers[0], 0.0), 0.0)
    for c in range(1, k):
        total = float(distance.sum())
        index = rng.choice(n, p=distance / total) if total > 0 else candidates[rng.integers(len(candidates))]
        centers[c] = unit[index]
        np.minimum(distance, np.maximum(1.0 - unit @ centers[c], 0.0), out=distance)
    return centers


def _assign(unit: np.ndarray, centers: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nearest centre per row, the cosine to it, and the sum of the rows of each cluster.

    Rows go in blocks of at most ASSIGN_ENTRIES similarities, so memory stays bounded whatever k is.
    """
    labels = np.empty(len(unit), dtype=np.int64)
    similarity = np.empty(len(unit), dtype=np.float32)
    sums = np.zeros_like(centers)
    for start, stop in blocks(len(unit), _rows_per_block(len(centers))):
        sims = unit[start:stop] @ centers.T
        block_labels = sims.argmax(axis=1)
        labels[start:stop] = block_labels
        similarity[start:stop] = sims[np.arange(stop - start), block_labels]
        _add_cluster_sums(sums, unit[start:stop], block_labels)
    return labels, similarity, sums


def _rows_per_block(k: int) -> int:
    """Rows assigned at once against `k` centres: at most ASSIGN_BLOCK, and at most ASSIGN_ENTRIES similarities."""
    return max(1, min(ASSIGN_BLOCK, ASSIGN_ENTRIES // max(1, k)))


def _add_cluster_sums(sums: np.ndarray, rows: np.ndarray, labels: np.ndarray) -> None:
    """Add each row to `sums[its label]`.

    With few clusters a one-hot [k x rows] product is fastest; with more it would cost as much as
    the similarities, so the rows are sorted by label and each run of one label is summed.
    """
    k = len(sums)
    if k <= ONE_HOT_CLUSTERS:
        sums += (labels[None, :] == np.arange(k)[:, None]).astype(np.float32) @ rows
        return
    order = np.argsort(labels, kind="stable")
    sorted_labels = labels[order]
    starts = np.flatnonzero(np.r_[True, sorted_labels[1:] != sorted_labels[:-1]])
    sums[sorted_labels[starts]] += np.add.reduceat(rows[order], starts, axis=0)


def _lloyd(unit: np.ndarray, centers: np.ndarray, live: np.ndarray, max_iter: int, tol: float) -> ClusterResult:
    k = len(centers)
    inertia = np.inf
    for iteration in range(1, max_iter + 1):
        labels, similarity, sums = _assign(unit, centers)
        empty = np.flatnonzero(np.bincount(labels, minlength=k) == 0)
        # Re-seed empty clusters with the non-zero items farthest from their centroid (items sitting
        # on a centre already cannot start a new cluster: there are fewer distinct items than k).
        far = np.argsort(np.where(live, similarity, np.inf))[: len(empty)]
        far = far[live[far] & (similarity[far] < 1.0 - 1e-6)]
        sums[empty[: len(far)]] = unit[far]
        norms = np.linalg.norm(sums, axis=1, keepdims=True)
        # A cluster whose members sum to zero keeps its centre.
        centers = np.where(norms > 0, sums / np.maximum(norms, 1e-12), centers)
        new_inertia = _inertia(similarity)
        if inertia - new_inertia <= tol * max(1.0, abs(new_inertia)) and not len(far):
            inertia = new_inertia
            break
        inertia = new_inertia
    labels, similarity, _ = _assign(unit, centers)
    return ClusterResult(labels, centers.astype(np.float32), _inertia(similarity), iteration)


def _inertia(similarity: np.ndarray) -> float:
    """The sum of 1 - cosine to the own centroid (a cosine that rounds above 1 counts as 1: never negative)."""
    return float(np.sum(1.0 - np.minimum(similarity, 1.0), dtype=np.float64))
