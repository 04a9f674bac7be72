"""Candidate pairs from an approximate nearest-neighbour index: usearch (extra `lightembed[ann]`).

Each item asks the index for its `neighbours` nearest items; pairs the index reports at or near
the threshold are re-scored exactly with numpy, so every kept pair has the same score as in the
exact search. An item with more near-duplicates than `neighbours` can miss some of them.
"""

from __future__ import annotations

import numpy as np

from .partition import Pairs
from .scoring import at_least, blocks, is_codes, paired_similarity

SEARCH_BLOCK = 65536
SLACK = 1e-3  # index scores are computed in another order of sums: re-check those this close below the threshold


def ann_pairs(vectors: np.ndarray, threshold: float, *, neighbours: int = 32, bits: int | None = None) -> Pairs:
    """Pairs at or above `threshold` among each row's `neighbours` nearest rows in a usearch HNSW index."""
    try:
        from usearch.index import Index
    except ImportError:
        raise ImportError("the 'ann' dedup mode needs usearch: pip install 'lightembed[ann]'") from None
    if is_codes(vectors):
        raise ValueError("the 'ann' dedup mode takes float vectors; use mode 'partitioned' for binary codes")
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    n = len(vectors)
    if n < 2:
        return Pairs.empty()
    index = Index(ndim=vectors.shape[1], metric="ip", dtype="f32")
    index.add(np.arange(n, dtype=np.uint64), vectors)
    k = min(neighbours + 1, n)
    parts = []
    for start, stop in blocks(n, SEARCH_BLOCK):
        found = index.search(vectors[start:stop], k)
        keys = np.asarray(found.keys, dtype=np.int64).reshape(stop - start, -1)
        sims = 1.0 - np.asarray(found.distances, dtype=np.float32).reshape(stop - start, -1)
        counts = np.asarray(found.counts).reshape(-1)
        rows = np.arange(start, stop)[:, None]
        valid = (np.arange(keys.shape[1])[None, :] < counts[:, None]) & (keys != rows) & (sims >= threshold - SLACK)
        r, c = np.nonzero(valid)
        a, b = rows[r, 0], keys[r, c]
        score = paired_similarity(vectors[a], vectors[b], bits)
        keep = at_least(score, threshold)
        parts.append(Pairs(np.maximum(a, b)[keep], np.minimum(a, b)[keep], score[keep]))
    return Pairs.concat(parts)
