"""Mean pooling of codebook rows without padding: texts are bucketed by token count."""

from __future__ import annotations

import numpy as np

GATHER_ENTRIES = 1 << 22  # codebook values gathered at once (texts x length x dim): long texts go a few at a time


def mean_pool(
    table: np.ndarray,
    flat_ids: np.ndarray,
    lengths: np.ndarray,
    token_rows: np.ndarray | None = None,
    token_weights: np.ndarray | None = None,
) -> np.ndarray:
    """Mean of the rows of `table` for each text; an empty text gives a zero vector.

    `flat_ids` holds the ids of all texts one after another, `lengths` the count per text.
    `token_rows` maps token ids to rows (shared rows), `token_weights` scales each token.
    Texts of one length are gathered together, at most GATHER_ENTRIES values at a time.
    """
    n, dim = len(lengths), table.shape[1]
    out = np.zeros((n, dim), dtype=np.float32)
    if n == 0 or len(flat_ids) == 0:
        return out
    rows = token_rows[flat_ids] if token_rows is not None else flat_ids
    weights = token_weights[flat_ids] if token_weights is not None else None
    starts = np.zeros(n, dtype=np.int64)
    np.cumsum(lengths[:-1], out=starts[1:])
    order = np.argsort(lengths, kind="stable")
    sorted_lengths = lengths[order]
    bounds = np.flatnonzero(np.diff(sorted_lengths)) + 1
    for lo, hi in zip(np.r_[0, bounds], np.r_[bounds, n]):
        length = int(sorted_lengths[lo])
        if length == 0:
            continue
        step = max(1, GATHER_ENTRIES // (length * dim))
        for first in range(lo, hi, step):
            texts = order[first : min(first + step, hi)]
            positions = (starts[texts, None] + np.arange(length)).ravel()
            gathered = np.take(table, rows[positions], axis=0).reshape(len(texts), length, dim)
            if weights is not None:
                gathered = gathered * weights[positions].reshape(len(texts), length, 1)
            out[texts] = gathered.sum(axis=1, dtype=np.float32)
    nonzero = lengths > 0
    out[nonzero] /= lengths[nonzero, None].astype(np.float32)
    return out
