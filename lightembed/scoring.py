"""Similarity between vectors or binary codes, in blocks, and top-k selection."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from .binary import as_words, hamming_similarity, similarity_of_distances


def is_codes(x: np.ndarray) -> bool:
    """Packed binary codes are uint8 matrices; everything else is a float vector matrix."""
    return x.dtype == np.uint8


# Row lengths outside this range lose precision in float32 (squares underflow or overflow): such
# rows are scaled by their largest entry before normalising.
SAFE_NORMS = (1e-18, 1e18)


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length as float32; zero rows stay zero (never NaN)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    with np.errstate(over="ignore", under="ignore"):
        norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    out = np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)
    unsafe = np.flatnonzero(~((norms > SAFE_NORMS[0]) & (norms < SAFE_NORMS[1])))  # zero rows too: they stay zero
    if len(unsafe):  # only those rows are done again, from a copy scaled by their largest entry
        rows = _scaled_by_largest(vectors.reshape(-1, vectors.shape[-1])[unsafe])
        lengths = np.linalg.norm(rows, axis=-1, keepdims=True)
        out.reshape(-1, vectors.shape[-1])[unsafe] = np.divide(
            rows, lengths, out=np.zeros_like(rows), where=lengths > 0
        )
    return out


def _scaled_by_largest(vectors: np.ndarray) -> np.ndarray:
    """Each row divided by its largest absolute entry (zero rows stay zero)."""
    largest = np.abs(vectors).max(axis=-1, keepdims=True)
    return np.divide(vectors, largest, out=np.zeros(vectors.shape, dtype=np.float32), where=largest > 0)


# Rows whose length is within this of 1 count as unit rows (float32 rounding of normalised vectors is ~1e-7).
UNIT_TOLERANCE = 1e-5


def comparable_rows(vectors: np.ndarray) -> np.ndarray:
    """Float32 unit rows for comparing: rows of unit (or zero) length as they are, the others normalised.

    One read pass (the row norms) and no copy when every row is settled, so scoring a query
    against a million stored vectors stays cheap. The result may be the input itself: treat it as
    read-only. Row by row, so a block of rows gives the same rows as the whole matrix.
    Raises ValueError on NaN or infinite values.
    """
    vectors = _narrowed(np.asarray(vectors))
    with np.errstate(over="ignore", under="ignore"):
        norms = np.sqrt(np.einsum("ij,ij->i", vectors, vectors))
    if not np.isfinite(norms).all() and not np.isfinite(vectors).all():
        raise ValueError("vectors contain NaN or infinite values")
    settled = np.abs(norms - 1.0) <= UNIT_TOLERANCE
    zero = np.flatnonzero(norms == 0)
    settled[zero] = ~vectors[zero].any(axis=1)  # a norm of 0 may be tiny entries whose squares underflow
    if settled.all():
        return vectors
    out = unit_rows(vectors)
    np.copyto(out, vectors, where=settled[:, None])  # settled rows as they were, bit for bit
    return out


def _narrowed(array: np.ndarray) -> np.ndarray:
    """float32 rows pointing the same way: rows of wider floats beyond float32's range (either way) are scaled first.

    Each row is scaled or not by its own entries, so the other rows keep their bits.
    """
    if array.dtype.kind == "f" and array.dtype.itemsize > 4 and array.size:
        largest = np.maximum(array.max(axis=-1, keepdims=True), -array.min(axis=-1, keepdims=True))
        tiny = (largest > 0) & (largest < SAFE_NORMS[0])
        out_of_range = np.isfinite(largest) & ((largest > np.finfo(np.float32).max) | tiny)
        if out_of_range.any():
            array = array / np.where(out_of_range, largest, 1.0)
    return array.astype(np.float32, copy=False)


def similarity_matrix(a: np.ndarray, b: np.ndarray, bits: int | None = None) -> np.ndarray:
    """Cosine similarity of float rows, or Hamming similarity of packed codes: [len(a), len(b)] float32.

    Float inputs are expected to be unit rows already (see `unit_rows`); `bits` defaults to
    8 x the code width.
    """
    if is_codes(a) != is_codes(b):
        raise TypeError("cannot compare binary codes with float vectors")
    if is_codes(a):
        return hamming_similarity(a, b, bits or a.shape[1] * 8)
    if len(a) == 1:
        # One query: numpy's own dot product gives identical rows identical scores, which BLAS's
        # matrix-vector kernel does not (its row groups round differently), so ties stay ties.
        return _cosine_range(np.einsum("ij,j->i", b, a[0])[None])
    return _cosine_range(a @ b.T)


def paired_similarity(a: np.ndarray, b: np.ndarray, bits: int | None = None) -> np.ndarray:
    """Similarity of a[i] and b[i] for each i (cosine of unit rows, or Hamming similarity of codes)."""
    if a.shape != b.shape:
        raise ValueError(f"paired inputs must have the same shape, got {a.shape} and {b.shape}")
    if is_codes(a) != is_codes(b):
        raise TypeError("cannot compare binary codes with float vectors")
    if is_codes(a):
        differing = np.bitwise_count(as_words(a) ^ as_words(b)).sum(axis=1, dtype=np.int64)
        return similarity_of_distances(differing, bits or a.shape[1] * 8)
    return _cosine_range(np.einsum("ij,ij->i", a, b))


def _cosine_range(scores: np.ndarray) -> np.ndarray:
    """Float32 rounding can put the dot product of unit rows just outside [-1, 1]: clip it, in place."""
    return np.clip(scores, -1.0, 1.0, out=scores)


# Float32 cosines carry rounding of about 1e-7 per dimension summed: the same vector compared with
# itself may score 0.99999994. Scores this close below a threshold count as reaching it.
SCORE_TOLERANCE = 1e-5


def at_least(scores: np.ndarray | float, threshold: float) -> np.ndarray | bool:
    """`scores >= threshold`, forgiving float32 rounding (see SCORE_TOLERANCE)."""
    return scores >= threshold - SCORE_TOLERANCE


def blocks(n: int, size: int) -> Iterator[tuple[int, int]]:
    """(start, stop) ranges covering 0..n in steps of `size`."""
    for start in range(0, n, size):
        yield start, min(n, start + size)


def top_indices(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest scores, best first (ties keep the lower index first)."""
    k = min(k, len(scores))
    if k == 0:
        return np.zeros(0, dtype=np.int64)
    if k < len(scores):
        kth = scores[np.argpartition(-scores, k - 1)[k - 1]]
        above = np.flatnonzero(scores > kth)
        candidates = np.concatenate([above, np.flatnonzero(scores == kth)[: k - len(above)]])
    else:
        candidates = np.arange(len(scores))
    order = np.lexsort((candidates, -scores[candidates]))
    return candidates[order]
