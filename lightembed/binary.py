"""Binary codes: sign bits packed MSB-first with np.packbits, compared by Hamming similarity."""

from __future__ import annotations

import numpy as np

# Bytes of XOR work per block of a Hamming matrix (rows x cols x words x 8).
_HAMMING_BLOCK_BYTES = 1 << 25


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


def hamming_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bit differences between every code of `a` [n, bytes] and of `b` [m, bytes]: [n, m] int32."""
    wa, wb = as_words(a), as_words(b)
    out = np.empty((len(wa), len(wb)), dtype=np.int32)
    rows = max(1, _HAMMING_BLOCK_BYTES // max(1, len(wb) * wa.shape[1] * 8))
    for start in range(0, len(wa), rows):
        block = wa[start : start + rows, None, :] ^ wb[None, :, :]
        out[start : start + rows] = np.bitwise_count(block).sum(axis=-1, dtype=np.int32)
    return out


def hamming_similarity(a: np.ndarray, b: np.ndarray, bits: int) -> np.ndarray:
    """`1 - 2 * hamming / bits`, the cosine of the ±1 vectors: [n, m] float32."""
    if bits < 1:
        raise ValueError(f"bits must be at least 1, got {bits}")
    distance = hamming_distance(a, b).astype(np.float32)
    return 1.0 - (2.0 / bits) * distance
