"""Semantic deduplication: exact copies first, then a non-transitive greedy pass over similar pairs.

Items are walked in order; an item is removed only when it is similar (score >= threshold)
to an item that was *kept*, so chains A~B~C never remove C because of A through B. Which pairs
are compared depends on the mode:

- `exact`: all pairs, in blocks (memory bounded by the block size; time quadratic).
- `partitioned`: pairs inside k-means clusters and their nearest clusters (`lightembed.partition`),
  near-exact recall in about linear time.
- `ann`: pairs among each item's nearest neighbours in a usearch index (`lightembed.ann`, extra `[ann]`).
- `auto`: exact up to `EXACT_LIMIT` distinct items, partitioned above.

Every mode applies the same rule to the pairs it finds and returns the same `DedupResult`.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import NamedTuple

import numpy as np
from tqdm.auto import tqdm

from .checks import check_threshold, positive_int, random_seed
from .pairs import KEPT, REMOVED, UNKNOWN, Pairs
from .partition import DEFAULT_PROBES, partitioned_pairs
from .scoring import at_least, blocks, similarity_matrix

DEFAULT_BLOCK_SIZE = 2048
MODES = ("auto", "exact", "partitioned", "ann")
EXACT_LIMIT = 50_000  # distinct items up to which `auto` compares all pairs
ANN_NEEDS_FLOATS = "the 'ann' dedup mode takes float vectors; use mode 'partitioned' for binary codes"
WAVE_ROUNDS = 64  # vectorised rounds of the greedy pass over pairs before it walks the rest item by item


class Duplicate(NamedTuple):
    """One removed item: its index, the kept item it duplicates, their similarity, and whether it was an exact copy."""

    index: int
    duplicate_of: int
    score: float
    exact: bool


@dataclass
class DedupResult:
    """Which items were kept and which were removed, and why.

    `duplicate_of[i]` and `scores[i]` describe `removed[i]`. Keep the result to re-threshold
    without embedding again.
    """

    kept: np.ndarray
    removed: np.ndarray
    duplicate_of: np.ndarray
    scores: np.ndarray
    exact: np.ndarray
    threshold: float
    items: Sequence[str] | None = None
    mode: str = "exact"
    _vectors: np.ndarray | None = field(default=None, repr=False)  # one row per distinct item
    _first: np.ndarray | None = field(default=None, repr=False)  # item -> its first exact copy
    _bits: int | None = field(default=None, repr=False)
    _block_size: int = field(default=DEFAULT_BLOCK_SIZE, repr=False)
    _search: SearchOptions | None = field(default=None, repr=False)

    @property
    def kept_items(self) -> list[str]:
        """The kept texts in their original order (texts input only)."""
        return [self._items()[i] for i in self.kept]

    @property
    def removed_items(self) -> list[str]:
        """The removed texts in their original order (texts input only)."""
        return [self._items()[i] for i in self.removed]

    @property
    def duplicates(self) -> list[Duplicate]:
        """Every removed item with the kept item it duplicates and the score."""
        return [
            Duplicate(int(i), int(j), float(s), bool(e))
            for i, j, s, e in zip(self.removed, self.duplicate_of, self.scores, self.exact)
        ]

    @property
    def removed_fraction(self) -> float:
        """Share of the items that were removed."""
        total = len(self.kept) + len(self.removed)
        return len(self.removed) / total if total else 0.0

    def rethreshold(self, threshold: float) -> DedupResult:
        """The same deduplication at another threshold, from the stored vectors (no re-embedding)."""
        if self._vectors is None:
            raise ValueError(
                "this result holds no vectors to re-threshold (it was computed by lightembed.dask or a CLI job): "
                "deduplicate again at the new threshold"
            )
        return deduplicate_vectors(
            self._vectors,
            threshold,
            bits=self._bits,
            block_size=self._block_size,
            items=self.items,
            first_copy=self._first,
            search=self._search,
        )

    def _items(self) -> Sequence[str]:
        if self.items is None:
            raise ValueError(
                "this result holds no texts (it was computed from vectors, by lightembed.dask or a CLI job): "
                "index your items with result.kept, or use lightembed.dask.select_kept"
            )
        return self.items


@dataclass(frozen=True)
class SearchOptions:
    """How to find similar pairs: the mode, and for the partitioned mode the clusters, probes and seed.

    `clusters=None` picks about one fine cluster per 256 items; `probes` is how many of its nearest
    clusters each item is compared with (its own included).
    """

    mode: str = "auto"
    clusters: int | None = None
    probes: int = DEFAULT_PROBES
    seed: int = 0
    neighbours: int = 32  # ann: neighbours asked of the index per item

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown dedup mode {self.mode!r} (expected one of {', '.join(MODES)})")
        for name in ("clusters", "probes", "neighbours"):
            value = getattr(self, name)
            if value is not None or name != "clusters":
                positive_int(name, value)
        random_seed(self.seed)

    def resolved(self, n: int) -> str:
        """The mode to run for `n` distinct items (`auto`: exact up to EXACT_LIMIT)."""
        if self.mode == "auto":
            return "exact" if n <= EXACT_LIMIT else "partitioned"
        return self.mode


def first_copies(items: Sequence[str]) -> np.ndarray:
    """For each item the index of its first identical copy (itself when it is the first)."""
    seen: dict[str, int] = {}
    return np.fromiter((seen.setdefault(text, i) for i, text in enumerate(items)), dtype=np.int64, count=len(items))


def text_hashes(texts: Iterable[str]) -> np.ndarray:
    """A 128-bit BLAKE2b digest of each text's UTF-8 bytes: [n, 2] uint64 (exact copies at scale, without the texts)."""
    digests = b"".join(hashlib.blake2b(t.encode("utf-8", "surrogatepass"), digest_size=16).digest() for t in texts)
    return np.frombuffer(digests, dtype=np.uint64).reshape(-1, 2)


def first_copies_of_hashes(hashes: np.ndarray) -> np.ndarray:
    """For each item the index of the first item with the same hash (itself when it is the first)."""
    n = len(hashes)
    order = np.lexsort((np.arange(n), hashes[:, 1], hashes[:, 0]))
    ordered = hashes[order]
    starts = np.ones(n, dtype=bool)
    starts[1:] = (ordered[1:] != ordered[:-1]).any(axis=1)
    first = np.empty(n, dtype=np.int64)
    first[order] = order[np.maximum.accumulate(np.where(starts, np.arange(n), 0))]
    return first


def deduplicate_vectors(
    vectors: np.ndarray,
    threshold: float,
    *,
    bits: int | None = None,
    block_size: int = DEFAULT_BLOCK_SIZE,
    items: Sequence[str] | None = None,
    first_copy: np.ndarray | None = None,
    progress: bool = False,
    search: SearchOptions | None = None,
) -> DedupResult:
    """Deduplicate items given one vector (unit rows) or packed code per *distinct* item.

    `first_copy` maps every item to its first exact copy; `vectors` then has one row per
    distinct item, in order of first appearance. Without it every row is its own item.
    `search` chooses how similar pairs are found (default: `SearchOptions()`, mode auto).
    """
    threshold = check_threshold(threshold)
    if block_size < 1:
        raise ValueError(f"block_size must be at least 1, got {block_size}")
    search = search or SearchOptions()
    n_items = len(first_copy) if first_copy is not None else len(vectors)
    if first_copy is None:
        first_copy = np.arange(n_items)
    distinct = np.flatnonzero(first_copy == np.arange(n_items))
    if len(distinct) != len(vectors):
        raise ValueError(f"{len(vectors)} vectors for {len(distinct)} distinct items")
    mode = search.resolved(len(vectors))

    def pairs() -> Pairs:
        return partitioned_pairs(
            vectors,
            threshold,
            n_clusters=search.clusters,
            probes=search.probes,
            seed=search.seed,
            bits=bits,
            block_size=block_size,
        )

    match, score = find_matches(vectors, threshold, search, pairs, bits=bits, block_size=block_size, progress=progress)
    result = result_from_matches(match, score, first_copy, threshold, mode=mode, items=items)
    return replace(result, _vectors=vectors, _bits=bits, _block_size=block_size, _search=search)


def result_from_matches(
    match: np.ndarray,
    score: np.ndarray,
    first_copy: np.ndarray,
    threshold: float,
    *,
    mode: str,
    items: Sequence[str] | None = None,
) -> DedupResult:
    """The result over items, from the match of each distinct row (-1: kept) and exact copies' first copies."""
    n_items = len(first_copy)
    distinct = np.flatnonzero(first_copy == np.arange(n_items))

    # Map distinct-row results back to items; exact copies follow their first copy.
    row_of_item = np.cumsum(first_copy == np.arange(n_items)) - 1
    row = row_of_item[first_copy]
    is_copy = first_copy != np.arange(n_items)
    first_kept = match[row] < 0
    target = np.where(first_kept, first_copy, distinct[np.maximum(match[row], 0)])
    item_score = np.where(first_kept, 1.0, score[row]).astype(np.float32)
    removed_mask = is_copy | ~first_kept
    removed = np.flatnonzero(removed_mask)
    return DedupResult(
        kept=np.flatnonzero(~removed_mask),
        removed=removed,
        duplicate_of=target[removed],
        scores=item_score[removed],
        exact=(is_copy & first_kept)[removed],
        threshold=threshold,
        items=items,
        mode=mode,
        _first=first_copy,
    )


def find_matches(
    vectors: np.ndarray,
    threshold: float,
    search: SearchOptions,
    partitioned: Callable[[], Pairs],
    *,
    bits: int | None,
    block_size: int,
    progress: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """The greedy rule's match and score of each row (see `greedy_matches`), the pairs found by the mode `search`
    resolves to for these rows; `partitioned()` gives the partitioned search's pairs."""
    mode = search.resolved(len(vectors))
    if mode == "exact":
        return greedy_matches(vectors, threshold, bits=bits, block_size=block_size, progress=progress)
    if mode == "partitioned":
        return greedy_from_pairs(len(vectors), partitioned())
    from .ann import ann_matches

    return ann_matches(np.asarray(vectors), threshold, neighbours=search.neighbours)


def greedy_matches(
    vectors: np.ndarray,
    threshold: float,
    *,
    bits: int | None = None,
    block_size: int = DEFAULT_BLOCK_SIZE,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """For each row, the earlier *kept* row it is most similar to (>= threshold), or -1 when kept.

    Returns (match [n] int64, score [n] float32; score is meaningful where match >= 0).
    """
    n = len(vectors)
    match = np.full(n, -1, dtype=np.int64)
    score = np.zeros(n, dtype=np.float32)
    kept_rows = np.empty(n, dtype=np.int64)
    n_kept = 0
    bar = tqdm(total=n, unit="item", desc="deduplicating", disable=not progress, file=sys.stderr)
    for start, stop in blocks(n, block_size):
        bar.update(stop - start)
        block = vectors[start:stop]
        best = np.full(stop - start, -np.inf, dtype=np.float32)
        best_row = np.full(stop - start, -1, dtype=np.int64)
        for k_start, k_stop in blocks(n_kept, block_size):
            sims = similarity_matrix(block, vectors[kept_rows[k_start:k_stop]], bits)
            arg = sims.argmax(axis=1)
            top = sims[np.arange(len(arg)), arg]
            better = top > best
            best[better] = top[better]
            best_row[better] = kept_rows[k_start + arg[better]]
        removed = at_least(best, threshold)
        match[start:stop][removed] = best_row[removed]
        score[start:stop][removed] = best[removed]
        kept_here = _resolve_within_block(block, ~removed, threshold, bits, match, score, start)
        rows = start + np.flatnonzero(kept_here)
        kept_rows[n_kept : n_kept + len(rows)] = rows
        n_kept += len(rows)
    bar.close()
    return match, score


@lru_cache(maxsize=4)
def _not_earlier(n: int) -> np.ndarray:
    """[n, n] mask of the pairs (i, j) with j >= i (made once per block size)."""
    mask = np.triu(np.ones((n, n), dtype=bool))
    mask.flags.writeable = False
    return mask


def _resolve_within_block(
    block: np.ndarray,
    alive: np.ndarray,
    threshold: float,
    bits: int | None,
    match: np.ndarray,
    score: np.ndarray,
    offset: int,
) -> np.ndarray:
    """Greedy pass inside one block among rows not already removed; returns the kept mask.

    Rows already removed by an earlier block are re-pointed to an earlier kept row of this
    block when that one is more similar, so `match` is always the most similar kept row.
    """
    sims = similarity_matrix(block, block, bits)
    np.copyto(sims, -np.inf, where=_not_earlier(len(block)) | ~alive[None, :])  # only earlier alive rows count
    kept = alive.copy()
    # Only rows with an earlier alive row above the threshold can change: walk just those.
    for i in np.flatnonzero(at_least(sims, threshold).any(axis=1)):
        row = np.where(kept[:i], sims[i, :i], -np.inf)
        j = int(row.argmax())
        if not at_least(row[j], threshold):
            continue
        if alive[i]:
            kept[i] = False
        elif row[j] <= score[offset + i]:
            continue  # removed by an earlier block's row that is at least as similar (ties: lower index)
        match[offset + i] = offset + j
        score[offset + i] = row[j]
    return kept


def greedy_from_pairs(n: int, pairs: Pairs, rounds: int = WAVE_ROUNDS) -> tuple[np.ndarray, np.ndarray]:
    """The greedy rule of `greedy_matches`, given every pair at or above the threshold.

    Returns (match [n] int64, score [n] float32) like `greedy_matches`: the most similar earlier
    kept row (ties: the lower row), or -1 for a kept row. Rows are decided in vectorised rounds:
    a row is removed once one earlier neighbour is known kept, and kept once all of them are
    known removed. After `rounds` rounds (long chains), the rest is walked row by row.
    """
    later, earlier, score = pairs
    order = np.lexsort((earlier, later))
    later, earlier, score = later[order], earlier[order], score[order]
    status = np.full(n, KEPT, dtype=np.int8)
    status[later] = UNKNOWN
    live_later, live_earlier = later, earlier
    for _ in range(rounds):
        if not len(live_later):
            break
        status[live_later[status[live_earlier] == KEPT]] = REMOVED
        live = status[live_later] == UNKNOWN
        live_later, live_earlier = live_later[live], live_earlier[live]
        blocked = np.unique(live_later[status[live_earlier] != REMOVED])
        status[np.setdiff1d(live_later, blocked, assume_unique=False)] = KEPT
        live = status[live_later] == UNKNOWN
        live_later, live_earlier = live_later[live], live_earlier[live]
    if len(live_later):
        _walk(status, live_later, live_earlier)
    chosen = (status[later] == REMOVED) & (status[earlier] == KEPT)
    later, earlier, score = later[chosen], earlier[chosen], score[chosen]
    best = np.lexsort((earlier, -score, later))
    first = np.ones(len(best), dtype=bool)
    first[1:] = later[best][1:] != later[best][:-1]
    best = best[first]
    match = np.full(n, -1, dtype=np.int64)
    out_score = np.zeros(n, dtype=np.float32)
    match[later[best]] = earlier[best]
    out_score[later[best]] = score[best]
    return match, out_score


def _walk(status: np.ndarray, later: np.ndarray, earlier: np.ndarray) -> None:
    """Decide the remaining rows one by one in order (`later` sorted); one step per row, not per pair."""
    rows, starts = np.unique(later, return_index=True)
    ends = np.append(starts[1:], len(later))
    for row, start, end in zip(rows.tolist(), starts.tolist(), ends.tolist()):
        status[row] = REMOVED if (status[earlier[start:end]] == KEPT).any() else KEPT
