"""Binary codes: sign bits packed MSB-first with np.packbits, compared by Hamming similarity.

Distances are computed on uint64 words, in tiles of code rows that stay in the CPU cache: one
vectorised XOR and popcount (`np.bitwise_count`) per word column, summed into a small integer
counter. Top-k selection works on those integer distances directly.
"""

from __future__ import annotations

import numpy as np

from .checks import positive_int

# Code rows of `b` per tile, and bytes of the uint64 XOR temporary per tile (query rows x tile rows x 8).
_TILE_ROWS = 4096
_TILE_BYTES = 1 << 18
# Bytes of distances held at once by `hamming_topk` (query rows x code rows).
_TOPK_BLOCK_BYTES = 1 << 26


def pack_signs(vectors: np.ndarray) -> np.ndarray:
    """Pack the bit `value > 0` of each component, MSB first: [n, d] floats -> [n, ceil(d/8)] uint8."""
    return np.packbits(np.asarray(vectors) > 0, axis=-1)


def unpack_signs(codes: np.ndarray, bits: int) -> np.ndarray:
    """The ±1 float32 vectors that `codes` stand for."""
    signs = np.unpackbits(codes, axis=-1, count=bits).astype(np.float32)
    return signs * 2.0 - 1.0


def as_words(codes: np.ndarray) -> np.ndarray:
    """View [n, bytes] codes as [n, words] uint64, zero-padding the bytes (padding never changes a distance)."""
    codes = np.ascontiguousarray(codes, dtype=np.uint8)
    pad = (-codes.shape[1]) % 8
    if pad:
        codes = np.concatenate([codes, np.zeros((codes.shape[0], pad), dtype=np.uint8)], axis=1)
    return codes.view(np.uint64)


def _check_codes(a: np.ndarray, b: np.ndarray) -> None:
    for name, codes in (("a", a), ("b", b)):
        if codes.dtype != np.uint8 or codes.ndim != 2:
            raise TypeError(f"{name} must be packed codes, a 2-D uint8 array; got {codes.ndim}-D {codes.dtype}")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"codes of {a.shape[1]} and {b.shape[1]} bytes cannot be compared")


def _distance_tiles(wa: np.ndarray, wb: np.ndarray, out: np.ndarray) -> None:
    """Fill `out` [len(wa), len(wb)] with the bit differences of the uint64 word rows `wa` and `wb`."""
    words = wa.shape[1]
    counter = np.uint16 if words * 64 <= np.iinfo(np.uint16).max else np.int32
    tile = min(_TILE_ROWS, max(1, len(wb)))
    rows = max(1, _TILE_BYTES // (8 * tile))
    for start in range(0, len(wb), tile):
        block = wb[start : start + tile]
        for first in range(0, len(wa), rows):
            queries = wa[first : first + rows, None, :]
            total = np.bitwise_count(queries[..., 0] ^ block[None, :, 0]).astype(counter)
            for j in range(1, words):
                total += np.bitwise_count(queries[..., j] ^ block[None, :, j])
            out[first : first + rows, start : start + tile] = total


def hamming_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bit differences between every code of `a` [n, bytes] and of `b` [m, bytes]: [n, m] int32."""
    _check_codes(a, b)
    out = np.empty((len(a), len(b)), dtype=np.int32)
    _distance_tiles(as_words(a), as_words(b), out)
    return out


def hamming_similarity(a: np.ndarray, b: np.ndarray, bits: int) -> np.ndarray:
    """`1 - 2 * hamming / bits`, the cosine of the ±1 vectors: [n, m] float32."""
    if bits < 1:
        raise ValueError(f"bits must be at least 1, got {bits}")
    return similarity_of_distances(hamming_distance(a, b), bits)


def similarity_of_distances(distances: np.ndarray, bits: int) -> np.ndarray:
    """`1 - 2 * distances / bits` as float32: Hamming distances of `bits`-bit codes as similarities."""
    return 1.0 - (2.0 / bits) * distances.astype(np.float32)


def smallest_indices(distances: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k smallest non-negative integer distances, nearest first, ties by lower index.

    A histogram of the distances gives the k-th smallest value, so only the items at or below
    it are sorted: linear in the number of items, whatever k.
    """
    k = min(k, len(distances))
    if k == 0:
        return np.zeros(0, dtype=np.int64)
    counts = np.bincount(distances)
    cutoff = int(np.searchsorted(np.cumsum(counts), k))
    candidates = np.flatnonzero(distances <= cutoff)
    order = np.argsort(distances[candidates], kind="stable")[:k]
    return candidates[order]


def hamming_topk(queries: np.ndarray, codes: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k codes nearest to each query by Hamming distance: (indices, distances), both [n, min(k, m)].

    Nearest first, ties by lower index. Memory stays bounded: queries are taken in blocks so
    that a block's distances fit in `_TOPK_BLOCK_BYTES`.
    """
    _check_codes(queries, codes)
    k = min(positive_int("k", k), len(codes))
    indices = np.zeros((len(queries), k), dtype=np.int64)
    distances = np.zeros((len(queries), k), dtype=np.int32)
    if k == 0:
        return indices, distances
    wq, wc = as_words(queries), as_words(codes)
    rows = max(1, _TOPK_BLOCK_BYTES // (4 * len(codes)))
    block = np.empty((min(rows, len(queries)), len(codes)), dtype=np.int32)
    for start in range(0, len(queries), rows):
        part = block[: len(wq[start : start + rows])]
        _distance_tiles(wq[start : start + rows], wc, part)
        for offset, row in enumerate(part):
            best = smallest_indices(row, k)
            indices[start + offset] = best
            distances[start + offset] = row[best]
    return indices, distances
