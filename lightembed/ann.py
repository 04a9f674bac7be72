"""Candidate pairs from an approximate nearest-neighbour index: usearch (extra `lightembed[ann]`).

Each item asks the index for its `neighbours` nearest items, and for more while the farthest of
them is still at the threshold; pairs the index reports at or near the threshold are re-scored
exactly with numpy (the exact search's scores to float32 rounding, about 1e-7). Like the
partitioned search, it searches again when it finds too many pairs (`lightembed.pairs`). The
index is built on every core, so its neighbours, and rarely the pairs found, can differ from run
to run. Rows with identical vectors, which an HNSW index cannot tell apart, are searched once
(`ann_matches`), and rows the index graph does not reach (its answer about a row lacks the row
itself) are compared with every row exactly.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

from .dedup import ANN_NEEDS_FLOATS, first_copies_of_hashes, greedy_from_pairs
from .pairs import Pairs, Sweep, bounded_pairs, sweep
from .scoring import at_least, blocks, is_codes, paired_similarity, similarity_matrix

if TYPE_CHECKING:
    from usearch.index import Index

SEARCH_ENTRIES = 1 << 22  # neighbour slots (rows x k) asked for at once, bounding the answer's memory
SCORE_ENTRIES = 1 << 22  # vector values gathered at once to re-score pairs
ANN_PASSES = 2  # index searches are the costly part: past the pair budget, one more holds what the first decided
SLACK = 1e-3  # index scores are computed in another order of sums: re-check those this close below the threshold
ROWS_PER_ASK = 256  # a row asks the index for at most one neighbour per this many rows, then is compared exactly


def ann_matches(vectors: np.ndarray, threshold: float, *, neighbours: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """The greedy rule's (match, score) for each row (see `greedy_from_pairs`), over the pairs of `ann_pairs`.

    An HNSW index cannot tell identical vectors apart: asked about one of many copies it answers
    short, and copies go missing (texts that differ only in letter case embed identically). So
    rows with the same non-zero vector are searched once, as the first of them, and a later copy
    follows it: a duplicate of the first row when that is kept, else of the most similar kept row
    before the copy among the first row's neighbours.
    """
    vectors = _float_rows(vectors)
    first = same_vector_rows(vectors)
    copies = np.flatnonzero(first != np.arange(len(vectors)))
    pairs = ann_pairs(vectors, threshold, neighbours=neighbours, leave_out=copies)
    match, score = greedy_from_pairs(len(vectors), pairs)  # copies have no pairs: decided below
    of = first[copies]
    kept_first = match[of] < 0
    copy_match, copy_score = _later_kept_neighbours(pairs, match, copies, of, score[of])
    match[copies] = np.where(kept_first, of, np.where(copy_match >= 0, copy_match, match[of]))
    score[copies] = np.where(kept_first, _self_similarity(vectors, copies), np.maximum(copy_score, score[of]))
    return match, score


def _float_rows(vectors: np.ndarray) -> np.ndarray:
    """Contiguous float32 rows; packed binary codes are refused (an HNSW index of floats cannot hold them)."""
    if is_codes(np.asarray(vectors)):
        raise ValueError(ANN_NEEDS_FLOATS)
    return np.ascontiguousarray(vectors, dtype=np.float32)


def _later_kept_neighbours(
    pairs: Pairs, match: np.ndarray, copies: np.ndarray, of: np.ndarray, to_beat: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """For each copy, the kept row between its first row and itself most similar to the first row, where more
    similar than `to_beat` (the first row's own match), else -1; and that similarity.

    Such a row is an earlier kept row of the copy, at the first row's similarity.
    """
    found = np.full(len(copies), -1, dtype=np.int64)
    best = np.full(len(copies), -np.inf, dtype=np.float32)
    after = pairs.where((match[pairs.later] < 0) & (match[pairs.earlier] >= 0))  # kept rows after a removed row
    if not len(after.later) or not len(copies):
        return found, best
    stride = np.int64(len(match) + 1)
    key = after.earlier * stride + after.later
    order = np.argsort(key)
    key, later, sims = key[order], after.later[order], after.score[order]
    start = np.searchsorted(key, of * stride)
    stop = np.searchsorted(key, of * stride + copies)  # neighbours of the first row before the copy
    counts = stop - start
    owner = np.repeat(np.arange(len(copies)), counts)
    position = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts) + np.repeat(start, counts)
    ranked = np.lexsort((later[position], -sims[position], owner))  # per copy: most similar, then lowest row
    winners = ranked[np.flatnonzero(np.diff(owner[ranked], prepend=-1))]
    rows, value = owner[winners], sims[position[winners]]
    better = value > to_beat[rows]
    found[rows[better]] = later[position[winners]][better]
    best[rows[better]] = value[better]
    return found, best


def same_vector_rows(vectors: np.ndarray) -> np.ndarray:
    """For each row of float32 `vectors` the first row with the same non-zero vector (itself if none is earlier).

    Rows are matched by two 64-bit hashes of their bits, then compared: a hash collision only
    leaves rows apart.
    """
    n, dim = vectors.shape
    words = vectors.view(np.uint32)
    mixers = np.random.default_rng(0).integers(1, 1 << 63, size=(2, dim), dtype=np.uint64) | np.uint64(1)
    keys = np.empty((n, 2), dtype=np.uint64)
    for start, stop in blocks(n, max(1, SCORE_ENTRIES // dim)):
        block = words[start:stop].astype(np.uint64)
        keys[start:stop] = np.stack([(block * mixer).sum(axis=1) for mixer in mixers], axis=1)  # wraps modulo 2**64
    first = first_copies_of_hashes(keys)
    for start, stop in blocks(n, max(1, SCORE_ENTRIES // dim)):
        block = vectors[start:stop]
        same = (block == vectors[first[start:stop]]).all(axis=1) & block.any(axis=1)
        first[start:stop] = np.where(same, first[start:stop], np.arange(start, stop))
    return first


def _self_similarity(vectors: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Each row's similarity with itself (about 1; the score of a copy of the same vector), in blocks."""
    out = np.empty(len(rows), dtype=np.float32)
    for start, stop in blocks(len(rows), max(1, SCORE_ENTRIES // vectors.shape[1])):
        block = vectors[rows[start:stop]]
        out[start:stop] = paired_similarity(block, block)
    return out


def ann_pairs(
    vectors: np.ndarray, threshold: float, *, neighbours: int = 32, leave_out: np.ndarray | None = None
) -> Pairs:
    """Pairs at or above `threshold` among each row's nearest rows in a usearch HNSW index.

    Each row asks for its `neighbours` nearest rows; a row whose answer is full and still at the
    threshold at its far end asks again for four times as many, until it is not. A row that would
    ask for more than one row in ROWS_PER_ASK (a member of a large group of near-copies) is compared
    with every indexed row exactly instead: a matrix product beats an index answer that long.
    The rows in `leave_out` are neither indexed nor searched. Where a score of 0 does not reach the
    threshold (above 1e-5, see `at_least`) zero rows (texts with no tokens) are left out too: they
    score 0 with every row, and in the index they would sit at the same distance from all of it,
    misleading its search.
    """
    try:
        from usearch.index import Index
    except ImportError:
        raise ImportError("the 'ann' dedup mode needs usearch: pip install 'lightembed[ann]'") from None
    vectors = _float_rows(vectors)
    searched = np.ones(len(vectors), dtype=bool)
    if leave_out is not None:
        searched[leave_out] = False
    if not at_least(0.0, threshold):
        searched &= np.einsum("ij,ij->i", vectors, vectors) > 0
    rows = np.flatnonzero(searched)
    n = len(rows)
    if n < 2:
        return Pairs.empty()
    index = Index(ndim=vectors.shape[1], metric="ip", dtype="f32")
    index.add(rows.astype(np.uint64), vectors[rows])

    def run_pass(number: int, status: np.ndarray, budget: int | None) -> list[Sweep]:
        # Every row asks again: a pair is in the answer of its later or of its earlier row, and after
        # one pass no row is known removed, so every row may be the earlier row of a pair that counts.
        return [sweep(_index_pairs(index, vectors, rows, threshold, neighbours, n), status, budget)]

    return bounded_pairs(run_pass, len(vectors), max_passes=ANN_PASSES)


def _index_pairs(
    index: Index, vectors: np.ndarray, rows: np.ndarray, threshold: float, neighbours: int, n: int
) -> Iterator[Pairs]:
    """The pairs at or above `threshold` in the answers of an index of `n` rows to `rows`, block by block.

    A pair may come twice (in the answers of both its rows). The index answers the same query the
    same way every time, so every pass finds the same pairs. A row the index does not find when
    asked about itself, and a row that would ask for more than `n / ROWS_PER_ASK` rows, is compared
    with every indexed row exactly (`_exact_pairs`).
    """
    indexed, lost = rows, []
    k = min(neighbours + 1, n)
    longest = max(n // ROWS_PER_ASK, k)  # the longest answer asked for: rows that need more are compared exactly
    while len(rows) and k <= longest:
        asking_again = []
        for start, stop in blocks(len(rows), max(1, SEARCH_ENTRIES // k)):
            block = rows[start:stop]
            keys, sims, counts = _search(index, vectors[block], k)
            near = sims >= threshold - SLACK
            itself = keys == block[:, None]
            valid = (np.arange(k)[None, :] < counts[:, None]) & ~itself & near
            # A full answer whose farthest row is still near the threshold may have missed rows.
            again = (counts == k) & near[:, -1] if k < n else np.zeros(len(block), dtype=bool)
            valid[again] = False
            lost.append(block[~again & ~itself.any(axis=1)])
            r, c = np.nonzero(valid)
            yield from _rescored(vectors, block[r], keys[r, c], threshold)
            asking_again.append(block[again])
        rows, k = np.concatenate(asking_again), min(4 * k, n)
    yield from _exact_pairs(vectors, np.concatenate([*lost, rows]), indexed, threshold)


def _exact_pairs(vectors: np.ndarray, rows: np.ndarray, others: np.ndarray, threshold: float) -> Iterator[Pairs]:
    """The pairs at or above the threshold of each of `rows` with each of `others` (itself aside), block by block.

    For the rows whose own search did not find themselves: the index graph does not reach them
    (seen in indexes built on several threads), so their neighbours are not found either.
    """
    if not len(rows):
        return
    candidates = vectors[others]  # gathered once, not once per block
    for start, stop in blocks(len(rows), max(1, SEARCH_ENTRIES // len(others))):
        block = rows[start:stop]
        sims = similarity_matrix(vectors[block], candidates)
        r, c = np.nonzero(at_least(sims, threshold) & (others[None, :] != block[:, None]))
        a, b = block[r], others[c]
        yield Pairs(np.maximum(a, b), np.minimum(a, b), sims[r, c])


def _rescored(vectors: np.ndarray, a: np.ndarray, b: np.ndarray, threshold: float) -> Iterator[Pairs]:
    """The pairs (a[i], b[i]) scored exactly, in blocks, where at or above the threshold."""
    for start, stop in blocks(len(a), max(1, SCORE_ENTRIES // vectors.shape[1])):
        x, y = a[start:stop], b[start:stop]
        score = paired_similarity(vectors[x], vectors[y])
        keep = at_least(score, threshold)
        yield Pairs(np.maximum(x, y)[keep], np.minimum(x, y)[keep], score[keep])


def _search(index: Index, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Neighbour ids [m, k], similarities [m, k] and the number found per query [m]."""
    found = index.search(queries, k)
    keys = np.full((len(queries), k), -1, dtype=np.int64)
    sims = np.full((len(queries), k), -np.inf, dtype=np.float32)
    if len(queries) == 1:  # usearch answers a single query with Matches, which has no counts
        counts = np.array([len(found.keys)])
    else:
        counts = np.asarray(found.counts, dtype=np.int64).reshape(-1)
    width = min(k, np.asarray(found.keys).reshape(len(queries), -1).shape[1])
    keys[:, :width] = np.asarray(found.keys, dtype=np.int64).reshape(len(queries), -1)[:, :width]
    with np.errstate(invalid="ignore"):  # the unfilled slots of a short answer hold no distance
        sims[:, :width] = 1.0 - np.asarray(found.distances, dtype=np.float32).reshape(len(queries), -1)[:, :width]
    sims[np.arange(k)[None, :] >= counts[:, None]] = -np.inf
    return keys, sims, counts
