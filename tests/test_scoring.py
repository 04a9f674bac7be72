"""comparable_rows: unit rows without a copy when they already are, a clear error on NaN."""

from __future__ import annotations

import numpy as np
import pytest

from lightembed.scoring import comparable_rows, unit_rows


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
