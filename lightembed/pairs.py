"""Pair lists of the partitioned and ANN searches, kept small by passes that leave out pairs the greedy rule ignores.

The greedy rule (`lightembed.dedup`) removes a row when an earlier *kept* row is similar to it and
names the most similar one. A pair whose earlier row is removed changes nothing, and neither does
one less similar than a kept earlier row of the same later row. A group of G near-copies has about
G²/2 pairs, and only G - 1 of them point at its kept row.

The first search pass holds every pair while they number at most `pair_budget(rows)` (2M, or 4
per row above 524,288 rows), which is all that ordinary data needs. Past the budget it stops
holding them, and the search runs again, deciding rows as the greedy rule would from what the
passes before it learnt:

- a row whose earlier neighbours are all known removed is kept (after the first pass, the rows
  that have no earlier neighbour);
- a row with a kept earlier neighbour is removed, as soon as the pair is seen.

These deciding passes hold no pairs and search only the pairs of undecided rows with earlier rows
not removed, so they get cheaper as rows are decided; each decides at least the first undecided
row. Once every row is decided (or after `MAX_PASSES`), a last pass holds the pairs that still
count: for each removed row, those with its most similar kept rows (and with rows still
undecided). Every decision is the greedy rule's own, so these pairs give the same result as all
of them. The partitioned search then computes some similarities in other blocks than a single
pass would, so a reported score may differ from that pass's in the last bit (about 1e-7), and a
pair at the threshold to the last bit may count in one pass and not in another. The pair that
removed each row is therefore kept beside the last pass's pairs: the passes' decisions stand.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

MIN_PAIR_BUDGET = 1 << 21  # pairs the first search pass may hold at least (about 40 MB) ...
PAIRS_PER_ROW = 4  # ... and per row (text at threshold 0.9: 0.75 and 1.44 in benchmarks/pair_counts.py)
MAX_PASSES = 24  # search passes at most, the first and the last included
DECIDE = -1  # the budget of a pass that holds no pairs and only decides rows
UNKNOWN, KEPT, REMOVED = 0, 1, 2  # the status of a row as the passes learn it


def pair_budget(n: int) -> int:
    """The pairs the first search pass over `n` rows may hold."""
    return max(MIN_PAIR_BUDGET, PAIRS_PER_ROW * n)


class Pairs(NamedTuple):
    """Pairs of rows at or above a threshold: `later` > `earlier`, with their similarity."""

    later: np.ndarray
    earlier: np.ndarray
    score: np.ndarray

    @staticmethod
    def empty() -> Pairs:
        return Pairs(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32))

    @staticmethod
    def concat(parts: Iterable[Pairs]) -> Pairs:
        """All pairs of `parts`, each pair once (the highest score is kept where it was found twice), by row ids.

        Row ids must be below 2**32 (a pair's sort key is one 64-bit number).
        """
        parts = [Pairs.empty(), *parts]
        later = np.concatenate([p.later for p in parts]).astype(np.int64, copy=False)
        earlier = np.concatenate([p.earlier for p in parts]).astype(np.int64, copy=False)
        score = np.concatenate([p.score for p in parts]).astype(np.float32, copy=False)
        if not len(later):
            return Pairs.empty()
        if later.max() >= 1 << 32:
            raise ValueError(f"row {later.max()} is beyond the 2**32 rows a pair list can hold")
        key = later.astype(np.uint64) * np.uint64(earlier.max() + 1) + earlier.astype(np.uint64)
        order = np.argsort(key)
        key = key[order]
        starts = np.flatnonzero(np.concatenate([[True], key[1:] != key[:-1]]))
        first = order[starts]
        return Pairs(later[first], earlier[first], np.maximum.reduceat(score[order], starts))

    def where(self, keep: np.ndarray) -> Pairs:
        """The pairs where `keep` is true."""
        return Pairs(self.later[keep], self.earlier[keep], self.score[keep])


@dataclass(frozen=True)
class Sweep:
    """What one search pass learnt from the pairs of some clusters (or some index rows)."""

    pairs: Pairs | None  # the pairs that may still count (see `needed`); None past the budget
    alive: np.ndarray  # rows with an earlier neighbour not known removed when the pair was seen
    removals: Pairs  # one pair per row this sweep found removed: the row (later) and a kept earlier row


def sweep(found: Iterable[Pairs], status: np.ndarray, budget: int | None) -> Sweep:
    """One pass over `found` given the `status` of every row from the passes before.

    Pairs are held while they number at most `budget` (all of them when None, none when DECIDE).
    """
    status = status.copy()
    alive = np.zeros(len(status), dtype=bool)
    best = np.full(len(status), -np.inf, dtype=np.float32)  # each row's most similar kept earlier row so far
    held: list[Pairs] | None = None if budget == DECIDE else []
    removals: list[Pairs] = []
    count = 0
    for pairs in found:
        to_kept = status[pairs.earlier] == KEPT
        removals.append(_first_per_row(pairs.where(to_kept & (status[pairs.later] != REMOVED))))
        status[pairs.later[to_kept]] = REMOVED
        np.maximum.at(best, pairs.later[to_kept], pairs.score[to_kept])
        live = status[pairs.earlier] != REMOVED
        alive[pairs.later[live]] = True
        if held is not None:
            held.append(pairs.where(live & (pairs.score >= best[pairs.later])))
            count += len(held[-1].later)
            if budget is not None and count > budget:
                held = None
    kept_pairs = None if held is None else needed(Pairs.concat(held), status)
    return Sweep(kept_pairs, np.flatnonzero(alive), Pairs.concat(removals))


def _first_per_row(pairs: Pairs) -> Pairs:
    """The first of `pairs` for each later row."""
    _, first = np.unique(pairs.later, return_index=True)
    return pairs.where(first)


def budget_left(budget: int | None, sweeps: Sequence[Sweep]) -> int | None:
    """What `sweeps` leave of `budget` to the next part of a pass: None without a limit, DECIDE once one went past."""
    if budget is None or budget == DECIDE:
        return budget
    if any(part.pairs is None for part in sweeps):
        return DECIDE
    return budget - sum(len(part.pairs.later) for part in sweeps)


def needed(pairs: Pairs, status: np.ndarray) -> Pairs:
    """The pairs that may still count: the earlier row is not known removed, and no known kept earlier row of the
    later row is more similar.

    A row with a kept earlier row is removed, and its match is the most similar kept one, so a
    less similar pair can never be it.
    """
    pairs = pairs.where(status[pairs.earlier] != REMOVED)
    to_kept = status[pairs.earlier] == KEPT
    best = np.full(len(status), -np.inf, dtype=np.float32)
    np.maximum.at(best, pairs.later[to_kept], pairs.score[to_kept])
    return pairs.where(pairs.score >= best[pairs.later])


class Wanted(NamedTuple):
    """The pairs a pass must find: later row marked in `later`, earlier row in `earlier` (bool per row; None: all)."""

    later: np.ndarray | None = None
    earlier: np.ndarray | None = None

    @property
    def everything(self) -> bool:
        return self.later is None and self.earlier is None

    def of(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Whether each of `rows` may be a pair's later row, and whether it may be its earlier row."""
        every = np.ones(len(rows), dtype=bool)
        later = every if self.later is None else self.later[rows]
        return later, every if self.earlier is None else self.earlier[rows]


EVERY_PAIR = Wanted()


def wanted_pairs(status: np.ndarray, budget: int | None) -> Wanted:
    """The pairs a pass needs: those of undecided rows when it only decides, else of every row but the kept ones (a kept
    row's earlier neighbours are all removed); in both, only with an earlier row not removed.
    """
    later = status == UNKNOWN if budget == DECIDE else status != KEPT
    earlier = status != REMOVED
    return Wanted(None if later.all() else later, None if earlier.all() else earlier)


def bounded_pairs(
    run_pass: Callable[[int, np.ndarray, int | None], list[Sweep]],
    n: int,
    *,
    budget: int | None = None,
    max_passes: int = MAX_PASSES,
) -> Pairs:
    """Every pair among `n` rows if they number at most `budget` (default `pair_budget(n)`), else the pairs that count.

    `run_pass(number, status, budget)` searches the pairs once more and returns the `sweep`s of its
    parts, given the status of each row (`number` counts the passes from 0, for work files).
    Together they may hold at most `budget` pairs (no limit when None); a pass given DECIDE holds
    none. A pass may leave out the pairs that `wanted_pairs` does not name.
    """
    status = np.full(n, UNKNOWN, dtype=np.int8)
    first = run_pass(0, status, pair_budget(n) if budget is None else budget)
    if all(part.pairs is not None for part in first):
        return _joined(first)  # within the budget: every pair
    removals = _learn(status, first)
    number = 1
    while number < max_passes - 1 and (status == UNKNOWN).any():
        removals += _learn(status, run_pass(number, status, DECIDE))
        number += 1
    last = run_pass(number, status, None)
    # A pair scored in other blocks may round to the other side of the threshold in the last pass:
    # the pairs that removed rows keep those rows removed, as the passes that found them decided.
    return needed(Pairs.concat([*(part.pairs for part in last), *removals]), status)


def _joined(sweeps: list[Sweep]) -> Pairs:
    """The pairs the sweeps of one pass hold, each once (one sweep's are already)."""
    return sweeps[0].pairs if len(sweeps) == 1 else Pairs.concat(part.pairs for part in sweeps)


def _learn(status: np.ndarray, sweeps: list[Sweep]) -> list[Pairs]:
    """Update `status` with what a pass found: rows removed, and rows kept whose earlier neighbours were all removed.

    Returns the pairs that removed rows.
    """
    alive = np.zeros(len(status), dtype=bool)
    for part in sweeps:
        status[part.removals.later] = REMOVED
        alive[part.alive] = True
    status[(status == UNKNOWN) & ~alive] = KEPT
    return [part.removals for part in sweeps]
