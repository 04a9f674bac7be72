"""Sufficient statistics of positive (and negative) pairs: every projection is solved from these alone.

A `PairStats` holds plain sums over ordered pairs (x, y): the count, the sums of x and of y,
and the sums of x x^T, y y^T and x y^T, in float64. Sums add up, so statistics of two
splits merge with `+` (train + val for the final refit costs nothing).

Three ways to get them, all exact:

- `group_stats`: every pair inside each group, both ways round. No pair is ever formed: with
  s_g the sum of a group's rows, the pairs' cross term is sum_g s_g s_g^T - sum_i v_i v_i^T and
  each row counts (group size - 1) times in x x^T. One pass over the rows in blocks.
- `pair_stats`: explicit pairs of row indices, in chunks (a million pairs never sit in
  memory as vectors): x x^T sums are count-weighted row outer products, and the cross term is
  V^T (A V) where A counts the pairs.
- `stream_stats`: batches of (x rows, y rows) from anywhere (memory-mapped files, a generator).

`Moments` centres them and derives what the methods use (the pairs' total and cross covariance,
the scale for trace-relative ridges, eigendecompositions shared by many grid entries).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import scipy.sparse as sp

from .data import GroupedVectors

ROW_BLOCK = 8192
PAIR_CHUNK = 1 << 16


@dataclass(frozen=True)
class PairStats:
    """Sums over ordered pairs (x, y): count, sum of x, sum of y, and x x^T, y y^T, x y^T (float64)."""

    count: float
    sum_x: np.ndarray
    sum_y: np.ndarray
    xx: np.ndarray
    yy: np.ndarray
    xy: np.ndarray

    @classmethod
    def zeros(cls, dim: int) -> PairStats:
        """No pairs yet."""
        vector, matrix = np.zeros(dim), np.zeros((dim, dim))
        return cls(0.0, vector, vector.copy(), matrix, matrix.copy(), matrix.copy())

    @property
    def dim(self) -> int:
        """Width of the vectors."""
        return len(self.sum_x)

    def __add__(self, other: PairStats) -> PairStats:
        if other.dim != self.dim:
            raise ValueError(f"cannot add statistics of {self.dim} and {other.dim} dims")
        return PairStats(
            self.count + other.count,
            self.sum_x + other.sum_x,
            self.sum_y + other.sum_y,
            self.xx + other.xx,
            self.yy + other.yy,
            self.xy + other.xy,
        )

    def swapped(self) -> PairStats:
        """The same pairs as (y, x)."""
        return PairStats(self.count, self.sum_y, self.sum_x, self.yy, self.xx, self.xy.T.copy())

    def symmetric(self) -> PairStats:
        """Every pair both ways round (what an unordered pair means)."""
        return self + self.swapped()

    def cross_about(self, mean: np.ndarray) -> np.ndarray:
        """E[(x-m)(y-m)^T + (y-m)(x-m)^T] over the pairs, about the point `mean`."""
        n = self.count
        xy = self.xy / n - np.outer(self.sum_x / n, mean) - np.outer(mean, self.sum_y / n) + np.outer(mean, mean)
        return xy + xy.T


def _checked(vectors: np.ndarray) -> np.ndarray:
    if vectors.ndim != 2 or not np.isfinite(vectors).all():
        raise ValueError("vectors must be a finite 2-D array")
    return vectors


def group_stats(data: GroupedVectors, block: int = ROW_BLOCK) -> PairStats:
    """Statistics of every pair of rows inside each group, both ways round (exact, no pair formed)."""
    if data.pairs is not None:
        return pair_stats(data.vectors, data.pairs, symmetric=True)
    vectors, groups = _checked(data.vectors), data.groups
    dim, n_groups = data.dim, data.n_groups
    degree = (np.bincount(groups, minlength=n_groups) - 1)[groups].astype(np.float64)
    group_sums = np.zeros((n_groups, dim))
    weighted, outer = np.zeros((dim, dim)), np.zeros((dim, dim))
    sum_x = np.zeros(dim)
    for start in range(0, len(vectors), block):
        rows = vectors[start : start + block].astype(np.float64)
        w = degree[start : start + block]
        weighted += rows.T @ (rows * w[:, None])
        outer += rows.T @ rows
        sum_x += w @ rows
        np.add.at(group_sums, groups[start : start + block], rows)
    cross = group_sums.T @ group_sums - outer
    count = float(degree.sum())
    return PairStats(count, sum_x, sum_x.copy(), weighted, weighted.copy(), cross)


def pair_stats(vectors: np.ndarray, pairs: np.ndarray, *, symmetric: bool = True, chunk: int = PAIR_CHUNK) -> PairStats:
    """Statistics of explicit pairs [p, 2] of row indices (x = first, y = second), `chunk` pairs at a time."""
    vectors = _checked(vectors)
    pairs = np.asarray(pairs, dtype=np.int64)
    n, dim = vectors.shape
    if pairs.ndim != 2 or pairs.shape[1] != 2 or len(pairs) == 0:
        raise ValueError(f"pairs must be a non-empty [p, 2] array of row indices, got shape {pairs.shape}")
    if pairs.min() < 0 or pairs.max() >= n:
        raise ValueError(f"pair indices must lie in [0, {n}), got {pairs.min()}..{pairs.max()}")
    count_x = np.bincount(pairs[:, 0], minlength=n).astype(np.float64)
    count_y = np.bincount(pairs[:, 1], minlength=n).astype(np.float64)
    partner_sums = np.zeros((n, dim))  # row i: sum of the y rows paired with x = row i, i.e. (A V)[i]
    rows64 = vectors.astype(np.float64)
    for start in range(0, len(pairs), chunk):
        part = pairs[start : start + chunk]
        counts = sp.csr_matrix((np.ones(len(part)), (part[:, 0], part[:, 1])), shape=(n, n))
        partner_sums += counts @ rows64
    stats = PairStats(
        float(len(pairs)),
        count_x @ rows64,
        count_y @ rows64,
        rows64.T @ (rows64 * count_x[:, None]),
        rows64.T @ (rows64 * count_y[:, None]),
        rows64.T @ partner_sums,
    )
    return stats.symmetric() if symmetric else stats


def stream_stats(batches: Iterable[tuple[object, object]], *, symmetric: bool = True) -> PairStats:
    """Statistics of pairs that arrive as batches of (x rows, y rows), e.g. from memory-mapped files."""
    total: PairStats | None = None
    for index, (x_rows, y_rows) in enumerate(batches):
        x = np.asarray(x_rows, dtype=np.float64)
        y = np.asarray(y_rows, dtype=np.float64)
        if x.ndim != 2 or x.shape != y.shape:
            raise ValueError(f"batch {index}: x and y must be 2-D arrays of one shape, got {x.shape} and {y.shape}")
        if not (np.isfinite(x).all() and np.isfinite(y).all()):
            raise ValueError(f"batch {index}: NaN or infinite values")
        part = PairStats(float(len(x)), x.sum(0), y.sum(0), x.T @ x, y.T @ y, x.T @ y)
        total = part if total is None else total + part
    if total is None or total.count == 0:
        raise ValueError("the pair batches hold no pairs")
    return total.symmetric() if symmetric else total


@dataclass(frozen=True)
class Moments:
    """Centred second moments of the positive pairs (and of mined negatives), as the methods use them.

    All matrices are about the positive pairs' mean. `total` = Sxx + Syy, `cross` = Sxy + Syx,
    `negative_cross` likewise for the negative pairs (None without them). `scale` is
    trace(total) / dim: ridges are multiples of it, so one grid fits embeddings of any scale.
    """

    positive: PairStats
    negative: PairStats | None = None

    def __post_init__(self) -> None:
        if self.positive.count <= 0:
            raise ValueError("no positive pairs: every group has fewer than two items")

    @property
    def dim(self) -> int:
        """Width of the vectors."""
        return self.positive.dim

    @cached_property
    def mean(self) -> np.ndarray:
        """Mean of all pair members."""
        p = self.positive
        return (p.sum_x + p.sum_y) / (2 * p.count)

    @cached_property
    def _centred(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        p, m = self.positive, self.mean
        sxx = p.xx / p.count - np.outer(p.sum_x / p.count, m) - np.outer(m, p.sum_x / p.count) + np.outer(m, m)
        syy = p.yy / p.count - np.outer(p.sum_y / p.count, m) - np.outer(m, p.sum_y / p.count) + np.outer(m, m)
        sxy = p.xy / p.count - np.outer(p.sum_x / p.count, m) - np.outer(m, p.sum_y / p.count) + np.outer(m, m)
        return _sym(sxx), _sym(syy), sxy

    @property
    def sxx(self) -> np.ndarray:
        """Covariance of the x side."""
        return self._centred[0]

    @property
    def syy(self) -> np.ndarray:
        """Covariance of the y side."""
        return self._centred[1]

    @property
    def sxy(self) -> np.ndarray:
        """Cross-covariance of x with y."""
        return self._centred[2]

    @cached_property
    def total(self) -> np.ndarray:
        """Sxx + Syy."""
        return self.sxx + self.syy

    @cached_property
    def cross(self) -> np.ndarray:
        """Sxy + Syx (symmetric)."""
        return self.sxy + self.sxy.T

    @cached_property
    def negative_cross(self) -> np.ndarray | None:
        """The negative pairs' cross term about the positive mean (None without negatives)."""
        return None if self.negative is None else _sym(self.negative.cross_about(self.mean))

    @cached_property
    def scale(self) -> float:
        """trace(total) / dim: the unit of every ridge."""
        value = float(np.trace(self.total)) / self.dim
        if not value > 0:
            raise ValueError("the pairs' vectors do not vary (zero total covariance)")
        return value

    @cached_property
    def total_eigen(self) -> tuple[np.ndarray, np.ndarray]:
        """Eigenvalues (descending) and eigenvectors of `total`."""
        values, vectors = np.linalg.eigh(self.total)
        return values[::-1], vectors[:, ::-1]

    @cached_property
    def cross_eigen(self) -> tuple[np.ndarray, np.ndarray]:
        """Eigenvalues and eigenvectors of `cross`, largest magnitude first."""
        values, vectors = np.linalg.eigh(self.cross)
        order = np.argsort(-np.abs(values), kind="stable")
        return values[order], vectors[:, order]


def _sym(matrix: np.ndarray) -> np.ndarray:
    return (matrix + matrix.T) / 2
