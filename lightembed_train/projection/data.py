"""Labelled vectors for fitting projections: embeddings, which items belong together, and splits.

Items come with ids and either a group per id (every pair inside a group is a positive pair)
or explicit positive pairs of ids (their connected components are the groups that splits and
the leave-one-out evaluation use). Every input is checked up front, so that a bad id, a
length mismatch or a NaN fails here with a message that names it, not deep inside a solver.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..evaluation.duplicates import union_find_groups

logger = logging.getLogger(__name__)

_SHOWN = 5  # how many offending ids an error message lists


@dataclass(frozen=True)
class GroupedVectors:
    """Vectors [n, d] with a group index per row; optionally explicit positive pairs of rows.

    `groups` holds 0..G-1. Without `pairs`, every pair of rows in one group is a positive
    pair; with `pairs` ([p, 2] row indices), only those are. A group of one row adds no pair
    and only serves as a distractor when evaluating.
    """

    vectors: np.ndarray
    groups: np.ndarray
    pairs: np.ndarray | None = None

    @property
    def dim(self) -> int:
        """Width of the vectors."""
        return int(self.vectors.shape[1])

    @property
    def n_groups(self) -> int:
        """Number of groups (a singleton counts as one)."""
        return int(self.groups.max()) + 1 if len(self.groups) else 0

    def __len__(self) -> int:
        return len(self.vectors)

    def n_positive_pairs(self) -> int:
        """Unordered positive pairs: the explicit pairs, else all pairs inside each group."""
        if self.pairs is not None:
            return len(self.pairs)
        sizes = np.bincount(self.groups)
        return int((sizes * (sizes - 1) // 2).sum())

    def subset(self, group_mask: np.ndarray) -> GroupedVectors:
        """The rows of the groups where `group_mask` [G] is true, groups renumbered 0..G'-1."""
        rows = np.flatnonzero(group_mask[self.groups])
        renumber = np.cumsum(group_mask) - 1
        pairs = None
        if self.pairs is not None:
            position = np.full(len(self), -1, dtype=np.int64)
            position[rows] = np.arange(len(rows))
            kept = self.pairs[group_mask[self.groups[self.pairs[:, 0]]]]
            pairs = position[kept]
        return GroupedVectors(self.vectors[rows], renumber[self.groups[rows]], pairs)

    def join(self, other: GroupedVectors) -> GroupedVectors:
        """These rows followed by `other`'s, with `other`'s groups kept apart from these."""
        if other.dim != self.dim:
            raise ValueError(f"cannot join vectors of {self.dim} and {other.dim} dims")
        if (self.pairs is None) != (other.pairs is None):
            raise ValueError("cannot join grouped data with explicit-pair data")
        pairs = None
        if self.pairs is not None and other.pairs is not None:
            pairs = np.concatenate([self.pairs, other.pairs + len(self)])
        return GroupedVectors(
            np.concatenate([self.vectors, other.vectors]),
            np.concatenate([self.groups, other.groups + self.n_groups]),
            pairs,
        )


VALUE_RANGE = (1e-15, 1e15)  # the largest absolute value of the embeddings: squares stay within float32


def as_float_matrix(embeddings: object, name: str = "embeddings") -> np.ndarray:
    """Embeddings (numpy, torch or nested lists) as a finite float32 [n, d] array, or a clear error."""
    if hasattr(embeddings, "detach"):  # a torch tensor, without importing torch here
        embeddings = embeddings.detach().cpu().float().numpy()
    array = np.asarray(embeddings)
    if array.dtype.kind not in "fiu":
        raise ValueError(f"{name} must be numbers, got dtype {array.dtype}")
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"{name} must be a non-empty 2-D array [items, dims], got shape {array.shape}")
    array = np.ascontiguousarray(array, dtype=np.float32)
    bad = ~np.isfinite(array).all(axis=1)
    if bad.any():
        rows = np.flatnonzero(bad)
        raise ValueError(f"{name} hold NaN or infinite values in {len(rows)} rows, e.g. rows {rows[:_SHOWN].tolist()}")
    if not (array != array[0]).any():
        raise ValueError(f"all {len(array)} rows of the {name} are the same vector: there is nothing to fit")
    largest = float(np.abs(array).max())
    if not VALUE_RANGE[0] <= largest <= VALUE_RANGE[1]:
        raise ValueError(
            f"the largest value of the {name} is {largest:.3g}: scale them into [{VALUE_RANGE[0]:g}, {VALUE_RANGE[1]:g}] "
            "(dividing by the largest value changes no cosine); float32 scores overflow or underflow out there"
        )
    return array


def _row_of(ids: Sequence[Hashable], n: int) -> dict[Hashable, int]:
    if len(ids) != n:
        raise ValueError(f"got {len(ids)} ids for {n} embedding rows: they must match one to one")
    rows: dict[Hashable, int] = {}
    for row, item in enumerate(ids):
        if item in rows:
            raise ValueError(f"id {item!r} appears twice (rows {rows[item]} and {row}); ids must be unique")
        rows[item] = row
    return rows


def _unknown(found: Sequence[Hashable], where: str, ids: Sequence[Hashable]) -> ValueError:
    example = f" (ids look like {list(ids[:2])!r})" if len(ids) else ""
    return ValueError(f"{len(found)} {where} not among the ids, e.g. {list(found[:_SHOWN])!r}{example}")


def _check_singletons(groups: np.ndarray, ids: Sequence[Hashable], allow: bool) -> None:
    sizes = np.bincount(groups)
    lonely = np.flatnonzero(sizes < 2)
    if len(lonely) == len(sizes):
        raise ValueError("every group has a single item, so there is no positive pair to fit on")
    if len(lonely) and not allow:
        shown = [ids[row] for row in np.flatnonzero(np.isin(groups, lonely[:_SHOWN]))]
        raise ValueError(
            f"{len(lonely)} groups have a single item (e.g. ids {shown!r}): a group needs two or more items; "
            "drop them, or allow them as distractors (allow_singletons=True, --allow-singletons)"
        )


def from_groups(
    embeddings: object,
    ids: Sequence[Hashable],
    id_to_group: Mapping[Hashable, Hashable],
    *,
    allow_singletons: bool = False,
) -> GroupedVectors:
    """Rows of `embeddings` labelled by `id_to_group[ids[row]]`; every pair in a group is positive.

    Every id needs a group and every key of `id_to_group` must be an id. A group of one item
    is an error unless `allow_singletons` (then it only serves as a distractor).
    """
    vectors = as_float_matrix(embeddings)
    rows = _row_of(ids, len(vectors))
    missing = [item for item in ids if item not in id_to_group]
    if missing:
        raise ValueError(f"{len(missing)} ids have no group, e.g. {missing[:_SHOWN]!r}")
    unknown = [item for item in id_to_group if item not in rows]
    if unknown:
        raise _unknown(unknown, "ids of the group mapping are", list(ids))
    labels: dict[Hashable, int] = {}
    groups = np.array([labels.setdefault(id_to_group[item], len(labels)) for item in ids], dtype=np.int64)
    _check_singletons(groups, ids, allow_singletons)
    return GroupedVectors(vectors, groups)


def from_pairs(
    embeddings: object,
    ids: Sequence[Hashable],
    pairs: Sequence[tuple[Hashable, Hashable]],
    *,
    allow_singletons: bool = False,
) -> GroupedVectors:
    """Rows of `embeddings` with explicit positive pairs of ids; groups are the pairs' connected components.

    An id that is in no pair is a group of one: an error unless `allow_singletons`. Pairs of
    an id with itself are dropped (with a warning).
    """
    vectors = as_float_matrix(embeddings)
    rows = _row_of(ids, len(vectors))
    pair_list = [tuple(pair) for pair in pairs]
    if not pair_list:
        raise ValueError("no positive pairs given")
    bad_shape = [pair for pair in pair_list if len(pair) != 2]
    if bad_shape:
        raise ValueError(f"each pair must hold two ids, got e.g. {bad_shape[0]!r}")
    unknown = list(dict.fromkeys(item for pair in pair_list for item in pair if item not in rows))
    if unknown:
        raise _unknown(unknown, "ids of the pairs are", list(ids))
    index = np.array([(rows[a], rows[b]) for a, b in pair_list], dtype=np.int64)
    same = index[:, 0] == index[:, 1]
    if same.any():
        example = pair_list[int(np.flatnonzero(same)[0])]
        logger.warning("dropping %d pairs that join an id with itself (they say nothing), e.g. %r", same.sum(), example)
        index = index[~same]
        if len(index) == 0:
            raise ValueError("every pair joins an id with itself: no positive pair to fit on")
    groups = np.full(len(vectors), -1, dtype=np.int64)
    for label, members in enumerate(union_find_groups((int(a), int(b)) for a, b in index)):
        groups[members] = label
    alone = np.flatnonzero(groups < 0)
    groups[alone] = groups.max() + 1 + np.arange(len(alone))
    _check_singletons(groups, ids, allow_singletons)
    return GroupedVectors(vectors, groups, index)


def check_fractions(fractions: Sequence[float]) -> np.ndarray:
    """Split fractions as an array, or a ValueError unless they are non-negative and sum to 1."""
    shares = np.asarray(fractions, dtype=np.float64)
    if shares.ndim != 1 or len(shares) < 1 or not ((shares >= 0).all() and np.isclose(shares.sum(), 1.0)):
        raise ValueError(f"split fractions must be non-negative and sum to 1, got {list(fractions)}")
    return shares


def split_groups(data: GroupedVectors, fractions: Sequence[float], seed: int = 0) -> tuple[GroupedVectors, ...]:
    """Group-aware split: shuffled whole groups cut by `fractions` (which sum to 1), one part per fraction.

    No group has rows in two parts. Groups of one row (distractors) are shared out like any other.
    """
    shares = check_fractions(fractions)
    order = np.random.default_rng(seed).permutation(data.n_groups)
    cuts = np.round(np.cumsum(shares)[:-1] * data.n_groups).astype(int)
    parts = []
    for chosen in np.split(order, cuts):
        mask = np.zeros(data.n_groups, dtype=bool)
        mask[chosen] = True
        parts.append(data.subset(mask))
    return tuple(parts)
