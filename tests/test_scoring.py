"""comparable_rows: unit rows without a copy when they already are, a clear error on NaN; top-k ties."""

from __future__ import annotations

import numpy as np
import pytest

from lightembed.scoring import comparable_rows, similarity_matrix, top_indices, unit_rows


def test_unit_rows_come_back_without_a_copy() -> None:
    rows = unit_rows(np.random.default_rng(0).standard_normal((50, 8)))
    rows[3] = 0.0  # a zero row (an empty text) counts as ready too
    assert comparable_rows(rows) is rows


def test_other_rows_are_normalised_into_a_new_array() -> None:
    rows = np.array([[3.0, 4.0], [0.0, 0.0], [1.0, 0.0]], dtype=np.float32)
    out = comparable_rows(rows)
    assert out is not rows
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 0.0], [1.0, 0.0]], rtol=1e-6)
    np.testing.assert_array_equal(rows[0], [3.0, 4.0])  # the input is untouched


def test_rows_are_settled_one_by_one_so_blocks_agree_with_the_whole() -> None:
    rng = np.random.default_rng(0)
    rows = unit_rows(rng.standard_normal((40, 8)))
    rows[::3] *= 2.5  # a mix: unit rows stay bit for bit, the others are normalised
    whole = comparable_rows(rows)
    np.testing.assert_array_equal(whole[1::3], rows[1::3])
    np.testing.assert_array_equal(np.concatenate([comparable_rows(rows[i : i + 7]) for i in range(0, 40, 7)]), whole)
    np.testing.assert_array_equal(comparable_rows(rows[1:3]), rows[1:3])  # a block of unit rows alone: as they are


@pytest.mark.parametrize("extreme", [1e300, 1e-300])
def test_one_float64_row_beyond_float32_range_leaves_the_other_rows_as_they_are(extreme: float) -> None:
    rng = np.random.default_rng(0)
    rows = rng.standard_normal((30, 8))
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    alone = comparable_rows(rows)
    rows_and_extreme = np.vstack([rows, np.full((1, 8), extreme)])
    whole = comparable_rows(rows_and_extreme)
    np.testing.assert_array_equal(whole[:30], alone)
    np.testing.assert_allclose(whole[30], np.full(8, 8**-0.5), rtol=1e-6)


def test_float64_input_gives_float32() -> None:
    assert comparable_rows(np.eye(3)).dtype == np.float32


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_infinite_values_are_refused(bad: float) -> None:
    rows = np.eye(3, dtype=np.float32)
    rows[1, 2] = bad
    with pytest.raises(ValueError, match="NaN or infinite"):
        comparable_rows(rows)


def test_huge_finite_values_are_not_mistaken_for_infinite() -> None:
    rows = np.array([[3e30, 4e30]], dtype=np.float32)  # the squared norm overflows float32
    np.testing.assert_allclose(comparable_rows(rows), [[0.6, 0.8]], rtol=1e-6)
    np.testing.assert_allclose(unit_rows(rows), [[0.6, 0.8]], rtol=1e-6)


@pytest.mark.parametrize("scale", [1e-25, 1e-45])
def test_tiny_rows_are_normalised_not_taken_for_zero_rows(scale: float) -> None:
    rows = np.array([[3.0, 4.0], [0.0, 0.0]], dtype=np.float32) * np.float32(scale)
    expected = [[0.6, 0.8], [0.0, 0.0]]
    np.testing.assert_allclose(unit_rows(rows), expected, rtol=1e-6)
    np.testing.assert_allclose(comparable_rows(rows), expected, rtol=1e-6)
    np.testing.assert_allclose(comparable_rows(rows.astype(np.float64) * 1e-30), expected, rtol=1e-6)


def test_top_indices_break_ties_by_lower_index_at_the_cut() -> None:
    rng = np.random.default_rng(0)
    for _ in range(300):
        scores = rng.integers(0, 4, size=int(rng.integers(1, 40))).astype(np.float32)
        k = int(rng.integers(1, len(scores) + 1))
        expected = np.lexsort((np.arange(len(scores)), -scores))[:k]
        np.testing.assert_array_equal(top_indices(scores, k), expected)


@pytest.mark.parametrize("width", [9, 64, 256, 384])
def test_one_query_gives_identical_rows_identical_scores(width: int) -> None:
    rng = np.random.default_rng(width)
    rows = np.tile(unit_rows(rng.standard_normal((1, width))), (37, 1))
    query = unit_rows(rng.standard_normal((1, width)))
    scores = similarity_matrix(query, rows)
    assert scores.shape == (1, 37) and np.ptp(scores) == 0.0


def test_rows_slightly_off_unit_length_are_normalised() -> None:
    rows = unit_rows(np.random.default_rng(0).standard_normal((4, 8))) * np.float32(1.001)
    np.testing.assert_allclose(np.linalg.norm(comparable_rows(rows), axis=1), 1.0, atol=1e-6)


@pytest.mark.parametrize("same_rows", [False, True])
def test_one_query_scores_are_the_dot_products(same_rows: bool) -> None:
    rng = np.random.default_rng(1)
    rows = unit_rows(rng.standard_normal((1 if same_rows else 37, 64)))
    rows = np.tile(rows, (37, 1)) if same_rows else rows
    query = unit_rows(rng.standard_normal((1, 64)))
    np.testing.assert_allclose(similarity_matrix(query, rows)[0], rows @ query[0], atol=1e-6)


def test_rows_beyond_float32_keep_their_direction_when_mostly_negative() -> None:
    wide = comparable_rows(np.array([[-1e300, -1e300], [-3e-300, -4e-300]]))  # float64, beyond float32's range
    np.testing.assert_allclose(wide, [[-(2**-0.5), -(2**-0.5)], [-0.6, -0.8]], rtol=1e-6)
    narrow = np.array([[-3e30, -4e30], [0.0, -4e30], [-3e-40, -4e-40]], dtype=np.float32)  # squares overflow or vanish
    np.testing.assert_allclose(unit_rows(narrow), [[-0.6, -0.8], [0.0, -1.0], [-0.6, -0.8]], rtol=1e-5)
