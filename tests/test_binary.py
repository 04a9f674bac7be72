"""Binary codes: packing sign bits, unpacking, Hamming distance and similarity."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lightembed import binary
from lightembed.binary import (
    as_words,
    hamming_distance,
    hamming_similarity,
    hamming_topk,
    pack_signs,
    smallest_indices,
    unpack_signs,
)


@pytest.mark.parametrize("bits", [1, 7, 8, 13, 63, 64, 65, 200])
def test_pack_unpack_round_trip(bits: int) -> None:
    rng = np.random.default_rng(bits)
    signs = rng.choice([-1.0, 1.0], size=(5, bits)).astype(np.float32)
    codes = pack_signs(signs)
    assert codes.dtype == np.uint8
    assert codes.shape == (5, (bits + 7) // 8)
    restored = unpack_signs(codes, bits)
    assert restored.dtype == np.float32
    np.testing.assert_array_equal(restored, signs)


def test_pack_is_msb_first_and_zero_counts_as_negative() -> None:
    vector = np.array([[0.5, -1.0, 0.0, -0.0, -2.0, -3.0, -1.0, 1e-9, 3.0]], dtype=np.float32)
    codes = pack_signs(vector)
    np.testing.assert_array_equal(codes, [[0b10000001, 0b10000000]])
    np.testing.assert_array_equal(unpack_signs(codes, 9), [[1, -1, -1, -1, -1, -1, -1, 1, 1]])


def test_pack_of_a_single_vector_is_1d() -> None:
    codes = pack_signs(np.array([1.0, -1.0, 1.0]))
    np.testing.assert_array_equal(codes, [0b10100000])


def test_as_words_pads_to_whole_uint64_words() -> None:
    codes = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.uint8)
    words = as_words(codes)
    assert words.dtype == np.uint64
    assert words.shape == (2, 1)
    padded = np.zeros((2, 8), dtype=np.uint8)
    padded[:, :3] = codes
    np.testing.assert_array_equal(words, padded.view(np.uint64))


def test_hamming_distance_hand_computed() -> None:
    a = np.array([[0b10110000], [0b11111111]], dtype=np.uint8)
    b = np.array([[0b01110001], [0b10110000], [0b00000000]], dtype=np.uint8)
    # 10110000 ^ 01110001 = 11000001 -> 3; ^ 10110000 -> 0; ^ 0 -> 3
    # 11111111 ^ 01110001 = 10001110 -> 4; ^ 10110000 -> 5; ^ 0 -> 8
    expected = np.array([[3, 0, 3], [4, 5, 8]])
    np.testing.assert_array_equal(hamming_distance(a, b), expected)
    assert hamming_distance(a, b).dtype == np.int32


def test_hamming_distance_across_bytes_and_words() -> None:
    a = np.array([[0xFF, 0x00, 0x0F, 0, 0, 0, 0, 0, 0x80]], dtype=np.uint8)
    b = np.array([[0x0F, 0x01, 0x0F, 0, 0, 0, 0, 0, 0x01]], dtype=np.uint8)
    assert hamming_distance(a, b)[0, 0] == 4 + 1 + 0 + 2


def test_hamming_similarity_hand_computed() -> None:
    a = np.array([[0b10110000]], dtype=np.uint8)
    b = np.array([[0b01110001]], dtype=np.uint8)
    # distance 3 over 8 bits: 1 - 2 * 3 / 8
    assert hamming_similarity(a, b, 8)[0, 0] == pytest.approx(0.25)
    assert hamming_similarity(a, a, 8)[0, 0] == 1.0
    assert hamming_similarity(a, ~a, 8)[0, 0] == -1.0


def test_hamming_similarity_needs_a_positive_bit_count() -> None:
    codes = np.zeros((1, 1), dtype=np.uint8)
    with pytest.raises(ValueError, match="bits"):
        hamming_similarity(codes, codes, 0)


def test_hamming_distance_in_several_blocks_matches_one_block(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(3)
    a = rng.integers(0, 256, size=(37, 11), dtype=np.uint8)
    b = rng.integers(0, 256, size=(23, 11), dtype=np.uint8)
    naive = np.unpackbits(a[:, None, :] ^ b[None, :, :], axis=-1).sum(axis=-1)
    np.testing.assert_array_equal(hamming_distance(a, b), naive)
    monkeypatch.setattr(binary, "_TILE_ROWS", 5)  # tiles of 5 code rows, 1 or 3 query rows: ragged edges
    for tile_bytes in (8, 120):
        monkeypatch.setattr(binary, "_TILE_BYTES", tile_bytes)
        np.testing.assert_array_equal(hamming_distance(a, b), naive)


@settings(max_examples=200, deadline=None)
@given(
    bits=st.integers(1, 200),
    n=st.integers(1, 6),
    m=st.integers(1, 6),
    seed=st.integers(0, 2**32 - 1),
)
def test_hamming_similarity_is_the_cosine_of_the_sign_vectors(bits: int, n: int, m: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = pack_signs(rng.standard_normal((n, bits)))
    b = pack_signs(rng.standard_normal((m, bits)))
    sa, sb = unpack_signs(a, bits).astype(np.float64), unpack_signs(b, bits).astype(np.float64)
    cosine = (sa @ sb.T) / bits  # +-1 vectors all have norm sqrt(bits)
    np.testing.assert_allclose(hamming_similarity(a, b, bits), cosine, atol=1e-6)


def brute_force_topk(queries: np.ndarray, codes: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Nearest codes by Hamming distance from unpacked bits, ties by lower index."""
    differ = np.unpackbits(queries[:, None, :] ^ codes[None, :, :], axis=-1).sum(axis=-1)
    order = np.stack([np.lexsort((np.arange(len(codes)), row)) for row in differ])[:, :k]
    return order, np.take_along_axis(differ, order, axis=1)


@pytest.mark.parametrize("bits", [1, 7, 64, 65, 130, 256, 1000])
def test_hamming_topk_equals_brute_force_across_tiles_and_blocks(bits: int, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(bits)
    codes = pack_signs(rng.standard_normal((203, bits)))
    codes[50] = codes[7]  # exact ties: the lower index comes first
    queries = np.concatenate([codes[[7, 0]], pack_signs(rng.standard_normal((9, bits)))])
    expected = brute_force_topk(queries, codes, 12)
    for tile_rows, tile_bytes, block_bytes in ((4096, 1 << 18, 1 << 26), (10, 16, 203 * 4 * 3), (1, 8, 1)):
        monkeypatch.setattr(binary, "_TILE_ROWS", tile_rows)
        monkeypatch.setattr(binary, "_TILE_BYTES", tile_bytes)
        monkeypatch.setattr(binary, "_TOPK_BLOCK_BYTES", block_bytes)
        indices, distances = hamming_topk(queries, codes, 12)
        np.testing.assert_array_equal(indices, expected[0])
        np.testing.assert_array_equal(distances, expected[1])
    if bits >= 64:  # random codes this wide are all distinct: the planted copy follows its original
        assert indices[0, :2].tolist() == [7, 50] and distances[0, :2].tolist() == [0, 0]


def test_hamming_topk_clips_k_and_handles_empty_inputs() -> None:
    codes = np.array([[0b1111_0000], [0b1111_1111], [0b0000_0000]], dtype=np.uint8)
    indices, distances = hamming_topk(codes[:1], codes, 10)
    assert indices.tolist() == [[0, 1, 2]] and distances.tolist() == [[0, 4, 4]]
    assert hamming_topk(codes[:0], codes, 2)[0].shape == (0, 2)
    empty = hamming_topk(codes[:1], codes[:0], 2)
    assert empty[0].shape == (1, 0) and empty[1].shape == (1, 0)


def test_smallest_indices_orders_ties_by_index() -> None:
    distances = np.array([3, 1, 2, 1, 0, 3, 1], dtype=np.int32)
    assert smallest_indices(distances, 4).tolist() == [4, 1, 3, 6]
    assert smallest_indices(distances, 100).tolist() == [4, 1, 3, 6, 2, 0, 5]
    assert smallest_indices(distances, 0).tolist() == []


def test_hamming_functions_reject_bad_inputs() -> None:
    codes = np.zeros((3, 2), dtype=np.uint8)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        hamming_topk(codes, codes, 0)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        hamming_topk(codes, codes, True)
    with pytest.raises(ValueError, match="2 and 3 bytes"):
        hamming_topk(codes, np.zeros((3, 3), dtype=np.uint8), 1)
    with pytest.raises(TypeError, match="uint8"):
        hamming_distance(codes.astype(np.float32), codes)
    with pytest.raises(TypeError, match="2-D"):
        hamming_distance(codes[0], codes)
