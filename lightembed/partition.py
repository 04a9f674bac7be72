"""Candidate pairs by partitioning, for deduplication beyond an all-pairs search (as SemDedup does).

The vectors are clustered with a two-level spherical k-means fitted on a sample: a few coarse
centroids, each with its own fine centroids. Every item belongs to its nearest fine cluster and
*probes* its few nearest fine clusters. Each cluster is then searched exactly: its members against
the earlier members, and the items that probe it against its members. A pair is found when one
item's cluster is among the other's probes, which holds for almost every near-duplicate pair, so
the recall is near-exact while the work per item stays bounded by the cluster size. When a
group of near-copies gives more pairs than a budget, the search runs again to keep only the pairs
that count (`lightembed.pairs`).

Every function here is deterministic for the same inputs and seed, so a job split into steps (a
resumed run, a Dask graph) finds the same pairs as one call.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import pairwise
from typing import Protocol

import numpy as np

from .binary import unpack_signs
from .cluster import spherical_kmeans
from .pairs import EVERY_PAIR, Pairs, Sweep, Wanted, bounded_pairs, sweep, wanted_pairs
from .scoring import at_least, blocks, is_codes, similarity_matrix, unit_rows

DEFAULT_PROBES = 6
DEFAULT_CLUSTER_SIZE = 256  # items per fine cluster on average
SAMPLE_PER_CLUSTER = 24  # sample items per fine centroid for the k-means fit
KMEANS_ITERATIONS = 10
COARSE_PROBES = 4  # coarse clusters whose children are compared with each item
ASSIGN_BLOCK = 8192
SEARCH_ENTRIES = 1 << 22  # similarities computed at once inside one cluster (fewer rows per block in a large cluster)


class RowSource(Protocol):
    """Vectors gathered by an array of row ids: an array, or rows held elsewhere (`lightembed.dask`)."""

    def __getitem__(self, rows: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class Partitioning:
    """Two-level centroids: fine centroids `fine[offsets[a]:offsets[a + 1]]` are the children of `coarse[a]`."""

    coarse: np.ndarray
    fine: np.ndarray
    offsets: np.ndarray

    @property
    def n_clusters(self) -> int:
        return len(self.fine)


def default_clusters(n: int, cluster_size: int = DEFAULT_CLUSTER_SIZE) -> int:
    """Fine clusters for `n` items: about `cluster_size` items each."""
    return max(1, round(n / cluster_size))


def sample_rows(n: int, size: int, seed: int) -> np.ndarray:
    """`size` distinct rows of `n` (all of them when size >= n), sorted, chosen with `seed`."""
    if size >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size, replace=False))


def sample_size(n_clusters: int) -> int:
    """Sample items the k-means fit uses for `n_clusters` fine clusters."""
    return n_clusters * SAMPLE_PER_CLUSTER


def float_rows(rows: np.ndarray, bits: int | None) -> np.ndarray:
    """Unit float rows to cluster: float vectors as they are, binary codes as their ±1 vectors."""
    if is_codes(rows):
        return unit_rows(unpack_signs(rows, bits or rows.shape[1] * 8))
    return np.asarray(rows, dtype=np.float32)


def fit_partitioning(sample: np.ndarray, n_clusters: int, seed: int = 0) -> Partitioning:
    """Fit about `n_clusters` fine centroids on unit rows: coarse k-means, then k-means inside each coarse cluster.

    Each coarse cluster gets fine centroids in proportion to its share of the sample.
    """
    if n_clusters < 1:
        raise ValueError(f"the number of clusters must be at least 1, got {n_clusters}")
    if len(sample) == 0:
        raise ValueError("cannot fit clusters on an empty sample")
    n_clusters = min(n_clusters, len(sample))
    k1 = max(1, min(round(math.sqrt(n_clusters)), len(sample)))
    coarse = spherical_kmeans(sample, k1, n_init=1, max_iter=KMEANS_ITERATIONS, seed=seed)
    children, offsets = [], [0]
    for a in range(len(coarse.centroids)):
        members = sample[coarse.labels == a]
        if not len(members):
            children.append(coarse.centroids[a : a + 1])
        else:
            k = max(1, min(len(members), round(n_clusters * len(members) / len(sample))))
            children.append(spherical_kmeans(members, k, n_init=1, max_iter=KMEANS_ITERATIONS, seed=seed).centroids)
        offsets.append(offsets[-1] + len(children[-1]))
    return Partitioning(coarse.centroids, np.concatenate(children), np.asarray(offsets, dtype=np.int64))


def covering_probes(probes: int, n_clusters: int, partitioning: Partitioning) -> int:
    """`probes`, or all fitted fine clusters when `probes` covers the `n_clusters` asked for.

    The fit gives each coarse cluster a rounded share, so it can make a few more clusters than
    asked: `probes >= clusters` still means every pair is compared.
    """
    return partitioning.n_clusters if probes >= n_clusters else probes


def nearest_clusters(
    vectors: np.ndarray, partitioning: Partitioning, probes: int, *, bits: int | None = None
) -> np.ndarray:
    """The `probes` nearest fine clusters of each row, nearest first: [n, probes] int32, -1 where there are fewer.

    Only the children of each row's nearest coarse clusters are compared; when `probes` covers
    every fine cluster, every one is (and `probes` is cut to the number of clusters).
    """
    if probes < 1:
        raise ValueError(f"probes must be at least 1, got {probes}")
    probes = min(probes, partitioning.n_clusters)
    k1 = len(partitioning.coarse)
    coarse_probes = k1 if probes >= partitioning.n_clusters else min(k1, COARSE_PROBES)
    out = np.empty((len(vectors), probes), dtype=np.int32)
    for start, stop in blocks(len(vectors), ASSIGN_BLOCK):
        out[start:stop] = _nearest_block(float_rows(vectors[start:stop], bits), partitioning, probes, coarse_probes)
    return out


def _nearest_block(rows: np.ndarray, part: Partitioning, probes: int, coarse_probes: int) -> np.ndarray:
    coarse_sims = rows @ part.coarse.T
    if coarse_probes < len(part.coarse):
        top_coarse = np.argpartition(-coarse_sims, coarse_probes - 1, axis=1)[:, :coarse_probes]
    else:
        top_coarse = np.broadcast_to(np.arange(len(part.coarse)), coarse_sims.shape)
    best = np.full((len(rows), probes), -np.inf, dtype=np.float32)
    best_id = np.full((len(rows), probes), -1, dtype=np.int64)
    for a in range(len(part.coarse)):
        which = np.flatnonzero((top_coarse == a).any(axis=1))
        if not len(which):
            continue
        lo, hi = part.offsets[a], part.offsets[a + 1]
        sims = np.concatenate([best[which], rows[which] @ part.fine[lo:hi].T], axis=1)
        ids = np.concatenate([best_id[which], np.broadcast_to(np.arange(lo, hi), (len(which), hi - lo))], axis=1)
        top = np.argpartition(-sims, probes - 1, axis=1)[:, :probes]  # sims has more than `probes` columns
        best[which] = np.take_along_axis(sims, top, axis=1)
        best_id[which] = np.take_along_axis(ids, top, axis=1)
    order = np.argsort(-best, axis=1, kind="stable")
    return np.take_along_axis(best_id, order, axis=1).astype(np.int32)


@dataclass(frozen=True)
class ClusterPlan:
    """Which rows each fine cluster holds (by their nearest cluster) and which rows probe it besides."""

    member_rows: np.ndarray
    member_starts: np.ndarray
    query_rows: np.ndarray
    query_starts: np.ndarray

    @property
    def n_clusters(self) -> int:
        return len(self.member_starts) - 1

    def members(self, cluster: int) -> np.ndarray:
        """Rows whose nearest cluster is `cluster`, in increasing order."""
        return self.member_rows[self.member_starts[cluster] : self.member_starts[cluster + 1]]

    def queries(self, cluster: int) -> np.ndarray:
        """Rows of other clusters that probe `cluster`, in increasing order."""
        return self.query_rows[self.query_starts[cluster] : self.query_starts[cluster + 1]]

    def costs(self) -> np.ndarray:
        """Similarities computed per cluster (members x members / 2 + queries x members)."""
        members = np.diff(self.member_starts).astype(np.float64)
        return members * members / 2 + np.diff(self.query_starts) * members


def plan_clusters(nearest: np.ndarray, n_clusters: int) -> ClusterPlan:
    """Group rows by their nearest cluster (column 0) and by the other clusters they probe."""
    primary = nearest[:, 0].astype(np.int64)
    member_rows = np.argsort(primary, kind="stable")
    member_starts = np.searchsorted(primary[member_rows], np.arange(n_clusters + 1))
    rows, columns = np.nonzero(nearest[:, 1:] >= 0)
    probed = nearest[:, 1:][rows, columns].astype(np.int64)
    order = np.argsort(probed, kind="stable")
    query_starts = np.searchsorted(probed[order], np.arange(n_clusters + 1))
    return ClusterPlan(member_rows, member_starts, rows[order].astype(np.int64), query_starts)


def cluster_groups(plan: ClusterPlan, n_groups: int) -> list[range]:
    """Consecutive ranges of clusters with about equal search cost (for steps that can be resumed or spread)."""
    cumulative = np.cumsum(plan.costs())
    total = cumulative[-1] if len(cumulative) else 0.0
    cuts = np.searchsorted(cumulative, total * np.arange(1, n_groups) / n_groups, side="right")
    edges = np.unique(np.concatenate([[0], cuts, [plan.n_clusters]]))
    return [range(int(a), int(b)) for a, b in pairwise(edges.tolist()) if b > a]


def search_cluster(
    members: np.ndarray,
    member_rows: np.ndarray,
    queries: np.ndarray,
    query_rows: np.ndarray,
    threshold: float,
    *,
    wanted: Wanted = EVERY_PAIR,
    bits: int | None = None,
    block_size: int = 2048,
) -> Iterator[Pairs]:
    """Exact search inside one cluster, block by block: members against earlier members, and queries against members.

    `members` / `queries` are the vectors (or codes) of `member_rows` / `query_rows`, rows in
    increasing order. Each pair is found once; only those `wanted` names. A block has at most
    `block_size` rows and, in a large cluster, fewer, so that its similarities stay bounded (SEARCH_ENTRIES).
    """
    later_members, earlier_members = wanted.of(member_rows)
    later_queries, earlier_queries = wanted.of(query_rows)
    rows = np.flatnonzero(later_members)
    columns = np.flatnonzero(earlier_members)
    candidates = members if wanted.earlier is None else members[columns]
    for start, stop in blocks(len(rows), _rows_per_block(len(candidates), block_size)):
        block = rows[start:stop]
        width = np.searchsorted(columns, block[-1], side="right")  # the candidates up to the block's last row
        sims = similarity_matrix(members[block], candidates[:width], bits)
        r, c = np.nonzero(at_least(sims, threshold))
        keep = columns[c] < block[r]
        r, c = r[keep], c[keep]
        yield Pairs(member_rows[block[r]], member_rows[columns[c]], sims[r, c])
    if wanted.everything:
        yield from _cross_pairs(queries, query_rows, members, member_rows, threshold, None, bits, block_size)
        return
    # The pairs whose later row is a query, then those whose later row is a member.
    a, b = later_queries, earlier_members
    yield from _cross_pairs(queries[a], query_rows[a], members[b], member_rows[b], threshold, True, bits, block_size)
    a, b = earlier_queries, later_members
    yield from _cross_pairs(queries[a], query_rows[a], members[b], member_rows[b], threshold, False, bits, block_size)


def _rows_per_block(columns: int, block_size: int) -> int:
    """Rows per block against `columns` candidates: at most `block_size`, and at most SEARCH_ENTRIES similarities."""
    return max(1, min(block_size, SEARCH_ENTRIES // max(1, columns)))


def _cross_pairs(
    x: np.ndarray,
    x_rows: np.ndarray,
    y: np.ndarray,
    y_rows: np.ndarray,
    threshold: float,
    x_later: bool | None,
    bits: int | None,
    block_size: int,
) -> Iterator[Pairs]:
    """Pairs of an x row and a y row, block by block: all, or those whose later row is x's (x_later) or y's."""
    if not len(y):
        return
    for start, stop in blocks(len(x), _rows_per_block(len(y), block_size)):
        sims = similarity_matrix(x[start:stop], y, bits)
        hit = at_least(sims, threshold)
        if x_later is not None:
            hit &= (x_rows[start:stop, None] > y_rows) == x_later
        r, c = np.nonzero(hit)
        a, b = x_rows[start + r], y_rows[c]
        yield Pairs(np.maximum(a, b), np.minimum(a, b), sims[r, c])


def search_clusters(
    vectors: RowSource,
    plan: ClusterPlan,
    clusters: Iterable[int],
    threshold: float,
    *,
    wanted: Wanted = EVERY_PAIR,
    bits: int | None = None,
    block_size: int = 2048,
) -> Iterator[Pairs]:
    """`search_cluster` over each of `clusters`, rows gathered from `vectors` (a pair in two clusters comes twice)."""
    for cluster in clusters:
        members, queries = plan.members(cluster), plan.queries(cluster)
        if not len(members) or len(members) + len(queries) < 2:
            continue
        if wanted.later is not None and not (wanted.later[members].any() or wanted.later[queries].any()):
            continue
        yield from search_cluster(
            vectors[members],
            members,
            vectors[queries],
            queries,
            threshold,
            wanted=wanted,
            bits=bits,
            block_size=block_size,
        )


def sweep_clusters(
    vectors: RowSource,
    plan: ClusterPlan,
    clusters: Iterable[int],
    threshold: float,
    status: np.ndarray,
    budget: int | None,
    *,
    bits: int | None = None,
    block_size: int = 2048,
) -> Sweep:
    """One pass of `lightembed.pairs` over the pairs of `clusters` (those `wanted_pairs` names)."""
    wanted = wanted_pairs(status, budget)
    found = search_clusters(vectors, plan, clusters, threshold, wanted=wanted, bits=bits, block_size=block_size)
    return sweep(found, status, budget)


def partitioned_pairs(
    vectors: np.ndarray,
    threshold: float,
    *,
    n_clusters: int | None = None,
    probes: int = DEFAULT_PROBES,
    seed: int = 0,
    bits: int | None = None,
    block_size: int = 2048,
) -> Pairs:
    """The pairs at or above `threshold` that share a cluster or a probed cluster, in one call.

    All of them while they number at most `pair_budget(n)`; past it, those that still count (`lightembed.pairs`).
    """
    n = len(vectors)
    if n < 2:
        return Pairs.empty()
    n_clusters = default_clusters(n) if n_clusters is None else n_clusters
    sample = sample_rows(n, sample_size(n_clusters), seed)
    partitioning = fit_partitioning(float_rows(vectors[sample], bits), n_clusters, seed)
    nearest = nearest_clusters(vectors, partitioning, covering_probes(probes, n_clusters, partitioning), bits=bits)
    plan = plan_clusters(nearest, partitioning.n_clusters)
    everything = range(plan.n_clusters)

    def run_pass(number: int, status: np.ndarray, budget: int | None) -> list[Sweep]:
        return [sweep_clusters(vectors, plan, everything, threshold, status, budget, bits=bits, block_size=block_size)]

    return bounded_pairs(run_pass, n)
