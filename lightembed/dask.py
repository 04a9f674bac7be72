"""Embedding and semantic deduplication on a Dask cluster (extra `lightembed[dask]`).

Works with whatever Dask scheduler is active: a `dask.distributed.Client` connected to a
`LocalCluster` or to a real cluster by its scheduler address, or Dask's local threads.

    from dask.distributed import Client
    import dask.bag as db
    import lightembed.dask as led

    client = Client("tcp://scheduler-host:8786")
    texts = db.read_text("texts-*.txt").map(str.rstrip)
    vectors = led.embed(texts)                            # a Dask array [n, dim]
    result = led.deduplicate(texts, threshold=0.9)        # a lightembed.DedupResult
    kept = led.select_kept(texts, result)                 # the same collection, kept items only

Tasks carry a `ModelSpec` (a name and options), never a model: each worker process loads the
model once, the first time a task needs it, and keeps it. The name must resolve on the
workers: the bundled default (None) always does; a local folder must exist there too.

`deduplicate` is the partitioned search of `lightembed.partition` spread over the cluster:
the partitions are embedded and hashed on the workers (and kept there), the k-means fit runs
on the client over a sample, every worker assigns its rows to clusters, and each group of
clusters is searched exactly by one task that gathers the rows it needs from every partition.
The client applies the greedy rule to the pairs found (searching again, as `lightembed.pairs`
describes, when the tasks find too many; the tasks of the first pass run at once, so each may hold
an equal share of the pair budget). With the same seed, clusters and probes, the result equals
`LightEmbed.deduplicate(texts, mode="partitioned")` on one machine.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import numpy as np

from .checks import check_threshold, positive_int
from .dedup import (
    DedupResult,
    SearchOptions,
    first_copies_of_hashes,
    greedy_from_pairs,
    result_from_matches,
    text_hashes,
)
from .model import LightEmbed, load
from .pairs import DECIDE, Sweep, bounded_pairs
from .partition import (
    DEFAULT_PROBES,
    ClusterPlan,
    Partitioning,
    cluster_groups,
    covering_probes,
    default_clusters,
    fit_partitioning,
    float_rows,
    nearest_clusters,
    plan_clusters,
    sample_rows,
    sample_size,
    sweep_clusters,
)
from .scoring import comparable_rows

try:
    import dask
    import dask.array as da
    import dask.bag as db
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("lightembed.dask needs Dask: pip install 'lightembed[dask]'") from exc


@dataclass(frozen=True)
class ModelSpec:
    """What `lightembed.load` gets on each worker: a name (None: the bundled default) and options."""

    name: str | None = None
    dim: int | None = None
    binary: bool = False
    revision: str | None = None

    def load(self) -> LightEmbed:
        """This process's copy of the model, loaded on first use."""
        with _LOCK:
            if self not in _MODELS:
                _MODELS[self] = load(self.name, dim=self.dim, binary=self.binary, revision=self.revision)
            return _MODELS[self]


_LOCK = threading.Lock()
_MODELS: dict[ModelSpec, LightEmbed] = {}  # per process: each worker loads a model once


def loaded_models() -> int:
    """How many models this process holds (run it on the workers with `client.run` to check)."""
    return len(_MODELS)


# --------------------------------------------------------------------- partitions
def _partitions(collection: Any, column: str | None) -> list[Any]:
    """The delayed partitions of a Bag, a DataFrame (with `column`) or a Series."""
    if isinstance(collection, db.Bag):
        if column is not None:
            raise ValueError("a Bag holds texts: leave column out")
        return list(collection.to_delayed())
    try:
        import dask.dataframe as dd
    except ImportError:  # pragma: no cover
        dd = None
    if dd is not None and isinstance(collection, dd.DataFrame):
        if column is None:
            raise ValueError("name the column that holds the texts: column=...")
        if column not in collection.columns:
            raise ValueError(f"no column {column!r} (columns: {', '.join(map(str, collection.columns))})")
        return list(collection[column].to_delayed())
    if dd is not None and isinstance(collection, dd.Series):
        if column is not None:
            raise ValueError("a Series holds texts: leave column out")
        return list(collection.to_delayed())
    raise TypeError(f"expected a Dask Bag, DataFrame or Series, got {type(collection).__name__}")


def _texts(part: Any, number: int) -> list[str]:
    """The texts of partition `number`, each checked to be a str."""
    texts = part.tolist() if hasattr(part, "tolist") else list(part)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"item {i} of partition {number} is {type(text).__name__}, expected str")
    return texts


def _embed_part(part: Any, number: int, spec: ModelSpec) -> np.ndarray:
    return spec.load().embed(_texts(part, number))


def _embed_and_hash(part: Any, number: int, spec: ModelSpec) -> tuple[np.ndarray, np.ndarray]:
    """Hashes and rows to compare (unit rows, or codes) of one partition."""
    texts = _texts(part, number)
    model = spec.load()
    vectors = model.embed(texts)
    return text_hashes(texts), vectors if model.binary else comparable_rows(vectors)


# --------------------------------------------------------------------- embedding
def embed(collection: Any, column: str | None = None, *, model: ModelSpec | None = None) -> da.Array:
    """The vectors of a Bag of texts, a DataFrame's text `column`, or a Series: a Dask array, one chunk per partition."""
    spec = model or ModelSpec()
    width, dtype = spec.load().output_width, spec.load().output_dtype
    parts = [dask.delayed(_embed_part)(part, k, spec) for k, part in enumerate(_partitions(collection, column))]
    return da.concatenate([da.from_delayed(p, shape=(np.nan, width), dtype=dtype) for p in parts])


# --------------------------------------------------------------------- deduplication
def deduplicate(
    collection: Any,
    threshold: float = 0.9,
    column: str | None = None,
    *,
    model: ModelSpec | None = None,
    clusters: int | None = None,
    probes: int = DEFAULT_PROBES,
    seed: int = 0,
    groups: int | None = None,
) -> DedupResult:
    """Semantic deduplication over the cluster: partitioned by k-means clusters, exact within each.

    Indices in the result count items in partition order. `groups` is the number of search
    tasks (default: one per partition, at least 2).
    """
    threshold = check_threshold(threshold)
    SearchOptions(mode="partitioned", clusters=clusters, probes=probes, seed=seed)  # checks them
    if groups is not None:
        positive_int("groups", groups)
    spec = model or ModelSpec()
    local = spec.load()
    bits, block_size = local.bits, local.block_size
    partitions = _partitions(collection, column)
    embedded = dask.persist(*[dask.delayed(_embed_and_hash)(p, k, spec) for k, p in enumerate(partitions)])
    hashes = dask.compute(*[dask.delayed(_hashes)(e) for e in embedded])
    first = first_copies_of_hashes(np.concatenate([np.zeros((0, 2), np.uint64), *hashes]))
    is_first = first == np.arange(len(first))
    offsets = np.cumsum([0, *(len(h) for h in hashes)])
    local_rows = [np.flatnonzero(is_first[a:b]) for a, b in pairwise(offsets.tolist())]
    row_starts = np.cumsum([0, *(len(rows) for rows in local_rows)])  # distinct row id of each partition's first
    n = int(row_starts[-1])
    if n < 2:
        return result_from_matches(np.full(n, -1), np.zeros(n, np.float32), first, threshold, mode="partitioned")

    n_clusters = clusters or default_clusters(n)
    sample = sample_rows(n, sample_size(n_clusters), seed)
    taken = dask.compute(
        *[dask.delayed(_take)(e, pick) for e, pick in zip(embedded, _split(sample, row_starts, local_rows))]
    )
    partitioning = fit_partitioning(float_rows(np.concatenate(taken), bits), n_clusters, seed)
    shared = dask.delayed(partitioning, traverse=False)
    probes = covering_probes(probes, n_clusters, partitioning)
    nearest = dask.compute(
        *[dask.delayed(_nearest)(e, rows, shared, probes, bits) for e, rows in zip(embedded, local_rows)]
    )
    plan = plan_clusters(np.concatenate(nearest), partitioning.n_clusters)

    group_ranges = cluster_groups(plan, groups or max(2, len(embedded)))
    needed = [_needed_rows(plan, g) for g in group_ranges]
    picks = [_split(rows, row_starts, local_rows) for rows in needed]  # [group][partition]
    pieces = [dask.delayed(_pieces, nout=len(needed))(e, [pick[p] for pick in picks]) for p, e in enumerate(embedded)]
    subs = [dask.delayed(_sub_plan(plan, group), traverse=False) for group in group_ranges]

    def run_pass(number: int, status: np.ndarray, budget: int | None) -> list[Sweep]:
        share = budget if budget is None or budget == DECIDE else budget // len(group_ranges)
        shared_status = dask.delayed(status, traverse=False)
        searches = [
            dask.delayed(_search_group)(
                [piece[k] for piece in pieces], needed[k], subs[k], threshold, shared_status, share, bits, block_size
            )
            for k in range(len(group_ranges))
        ]
        return list(dask.compute(*searches))

    pairs = bounded_pairs(run_pass, n)
    match, score = greedy_from_pairs(n, pairs)
    return result_from_matches(match, score, first, threshold, mode="partitioned")


def select_kept(collection: Any, result: DedupResult) -> Any:
    """The same Bag or DataFrame with only the kept items (lazily, partition by partition)."""
    sizes = dask.compute(*[dask.delayed(len)(p) for p in collection.to_delayed()])
    n = len(result.kept) + len(result.removed)
    if sum(sizes) != n:
        raise ValueError(f"the collection has {sum(sizes)} items but the result is for {n}")
    kept = np.zeros(n, dtype=bool)
    kept[result.kept] = True
    offsets = np.cumsum([0, *sizes])
    parts = [dask.delayed(_keep)(p, kept[a:b]) for p, a, b in zip(collection.to_delayed(), offsets[:-1], offsets[1:])]
    if isinstance(collection, db.Bag):
        return db.from_delayed(parts)
    import dask.dataframe as dd

    return dd.from_delayed(parts, meta=collection._meta)


# --------------------------------------------------------------------- task bodies
def _hashes(pair: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    return pair[0]


def _take(pair: tuple[np.ndarray, np.ndarray], rows: np.ndarray) -> np.ndarray:
    return np.asarray(pair[1][rows])


def _keep(part: Any, mask: np.ndarray) -> Any:
    if hasattr(part, "iloc"):
        return part.iloc[np.flatnonzero(mask)]
    return [item for item, keep in zip(part, mask) if keep]


def _nearest(
    pair: tuple[np.ndarray, np.ndarray], rows: np.ndarray, partitioning: Partitioning, probes: int, bits: int | None
) -> np.ndarray:
    return nearest_clusters(pair[1][rows], partitioning, probes, bits=bits)


def _pieces(pair: tuple[np.ndarray, np.ndarray], picks: Sequence[np.ndarray]) -> tuple[np.ndarray, ...]:
    return tuple(np.asarray(pair[1][pick]) for pick in picks)


def _split(rows: np.ndarray, row_starts: np.ndarray, local_rows: list[np.ndarray]) -> list[np.ndarray]:
    """Distinct row ids (sorted) as positions inside each partition."""
    cuts = np.searchsorted(rows, row_starts)
    return [local_rows[p][rows[cuts[p] : cuts[p + 1]] - row_starts[p]] for p in range(len(local_rows))]


def _needed_rows(plan: ClusterPlan, group: range) -> np.ndarray:
    """The rows a group of clusters compares: its members and the rows that probe it."""
    members = plan.member_rows[plan.member_starts[group.start] : plan.member_starts[group.stop]]
    queries = plan.query_rows[plan.query_starts[group.start] : plan.query_starts[group.stop]]
    return np.union1d(members, queries)


def _sub_plan(plan: ClusterPlan, group: range) -> ClusterPlan:
    """The part of `plan` for a range of clusters, renumbered from 0."""
    m0, m1 = plan.member_starts[group.start], plan.member_starts[group.stop]
    q0, q1 = plan.query_starts[group.start], plan.query_starts[group.stop]
    return ClusterPlan(
        plan.member_rows[m0:m1],
        plan.member_starts[group.start : group.stop + 1] - m0,
        plan.query_rows[q0:q1],
        plan.query_starts[group.start : group.stop + 1] - q0,
    )


class _Rows:
    """Vectors of some rows, indexed by row id (what `search_clusters` gathers from)."""

    def __init__(self, rows: np.ndarray, vectors: np.ndarray) -> None:
        self.rows, self.vectors = rows, vectors

    def __getitem__(self, wanted: np.ndarray) -> np.ndarray:
        return self.vectors[np.searchsorted(self.rows, wanted)]


def _search_group(
    pieces: Sequence[np.ndarray],
    rows: np.ndarray,
    plan: ClusterPlan,
    threshold: float,
    status: np.ndarray,
    budget: int | None,
    bits: int | None,
    block_size: int,
) -> Sweep:
    vectors = _Rows(rows, np.concatenate(pieces))
    return sweep_clusters(
        vectors, plan, range(plan.n_clusters), threshold, status, budget, bits=bits, block_size=block_size
    )
