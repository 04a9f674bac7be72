"""Choosing a projection on a validation split: a width scan, a grid searched explore/exploit, a width zoom.

1. `scan_dims`: Rayleigh at a few ridges, scored at evenly spaced prefix widths, shows where
   projecting helps; the widths tried later are picked around that plateau (plus full width).
2. `search`: every recipe of a grid is solved on the training statistics and scored on the
   validation rows at those widths. The order is explore/exploit: one recipe of each family
   first, then mostly recipes of the families that scored best so far, so that a run cut
   short by `max_trials` or `time_limit` has already tried the promising ones.
3. `zoom`: the best recipes (1 in 100 searched) are scored again at every width of a fine
   lattice between the searched widths on either side of their best one (scores move by a
   few hundredths from one width to the next, which the coarse widths alone leave untried).
"""

from __future__ import annotations

import logging
import math
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from tqdm.auto import tqdm

from .methods import Recipe, rayleigh, solve
from .metrics import RetrievalScorer, Scores
from .stats import Moments

logger = logging.getLogger(__name__)

SCAN_RIDGES = (1.0, 10.0, 100.0)  # Rayleigh at smaller ridges rarely beats the input's own cosines
SCAN_POINTS = 16
PLATEAU_SHARE = 0.9  # widths whose gain is at least this share of the best gain form the plateau
EXPLORE = 0.3
GREED = 20.0  # sharpness of the softmax over family bests (scores are 0-1)
ZOOM_SHARE = 0.01  # `zoom` re-scores this share of the recipes searched (at least one)
ZOOM_STEPS = 64  # the zoom lattice's step is the vectors' width / ZOOM_STEPS


@dataclass(frozen=True)
class DimScan:
    """The width scan: best Rayleigh score per scanned width, and the widths chosen for the search."""

    baseline: Scores
    curve: dict[int, Scores]
    dims: tuple[int, ...]


def scan_dims(moments: Moments, scorer: RetrievalScorer, points: int = SCAN_POINTS) -> DimScan:
    """Score Rayleigh projections at `points` evenly spaced widths and pick the widths worth searching."""
    d = moments.dim
    step = max(1, d // points)
    widths = sorted({*range(step, d, step), d})
    curve: dict[int, Scores] = {}
    for ridge in SCAN_RIDGES:
        for width, scores in scorer.score(rayleigh(moments, ridge), widths).items():
            if width not in curve or scores.map_at_k > curve[width].map_at_k:
                curve[width] = scores
    baseline = scorer.baseline()
    return DimScan(baseline, curve, choose_dims(curve, baseline.map_at_k, d))


def choose_dims(curve: dict[int, Scores], baseline: float, d: int) -> tuple[int, ...]:
    """Widths to search: the smallest scanned, one below the plateau, up to five scanned widths
    spread across it (the widths within PLATEAU_SHARE of the best gain), and full width."""
    peak = max(s.map_at_k for s in curve.values())
    widths = sorted(curve)
    if peak <= baseline:
        return tuple(sorted({max(1, round(d * f)) for f in (0.1, 0.25, 0.5, 1.0)}))
    cutoff = baseline + PLATEAU_SHARE * (peak - baseline)
    inside = [w for w in widths if curve[w].map_at_k >= cutoff]
    plateau = [w for w in widths if inside[0] <= w <= inside[-1]]
    spread = {plateau[round(i * (len(plateau) - 1) / 4)] for i in range(5)}
    below = [w for w in widths if w < plateau[0]]
    chosen = {widths[0], d, *spread}
    if below:
        chosen.add(below[len(below) // 2])
    return tuple(sorted(chosen))


@dataclass
class Trial:
    """One recipe's validation scores per width (empty when it failed), and the seconds it took."""

    recipe: Recipe
    scores: dict[int, Scores]
    seconds: float
    error: str | None = None

    @property
    def best(self) -> tuple[int, Scores] | None:
        """(width, scores) with the highest MAP@k, or None for a failed recipe."""
        if not self.scores:
            return None
        width = max(self.scores, key=lambda m: (self.scores[m].map_at_k, -m))
        return width, self.scores[width]


@dataclass
class SearchResult:
    """All grid trials in the order they ran, the zoom's trials, and the best (recipe, width) on validation."""

    trials: list[Trial] = field(default_factory=list)
    zoomed: list[Trial] = field(default_factory=list)

    @property
    def best(self) -> tuple[Recipe, int, Scores]:
        """The recipe and width with the highest validation MAP@k (grid and zoom trials alike)."""
        done = [(trial, trial.best) for trial in [*self.trials, *self.zoomed] if trial.best is not None]
        if not done:
            raise ValueError("every recipe of the grid failed; see the log")
        trial, (width, scores) = max(done, key=lambda item: item[1][1].map_at_k)  # type: ignore[index]
        return trial.recipe, width, scores


class Schedule:
    """Explore/exploit order over the families of a grid (see the module docstring)."""

    def __init__(self, grid: Sequence[Recipe], seed: int = 0, explore: float = EXPLORE) -> None:
        self.rng = random.Random(seed)
        self.explore = explore
        self.queues: dict[str, list[Recipe]] = {}
        for recipe in grid:
            self.queues.setdefault(recipe.family, []).append(recipe)
        for queue in self.queues.values():
            self.rng.shuffle(queue)
        self.best: dict[str, float] = {}

    def __iter__(self) -> Schedule:
        return self

    def __next__(self) -> Recipe:
        active = [family for family, queue in self.queues.items() if queue]
        if not active:
            raise StopIteration
        fresh = [family for family in active if family not in self.best]
        if fresh:
            family = self.rng.choice(fresh)
        elif self.rng.random() < self.explore or max(self.best[f] for f in active) == -math.inf:
            family = self.rng.choice(active)
        else:
            top = max(self.best[f] for f in active)
            weights = [math.exp(GREED * (self.best[f] - top)) for f in active]
            family = self.rng.choices(active, weights=weights)[0]
        return self.queues[family].pop()

    def report(self, recipe: Recipe, score: float) -> None:
        """Tell the schedule how a recipe scored."""
        family = recipe.family
        self.best[family] = max(self.best.get(family, -math.inf), score)


def check_limits(max_trials: int | None, time_limit: float | None) -> None:
    """Raise ValueError for a search limit out of range."""
    if max_trials is not None and (isinstance(max_trials, bool) or not isinstance(max_trials, int) or max_trials < 1):
        raise ValueError(f"max_trials must be a positive integer or None, got {max_trials!r}")
    if time_limit is not None and not time_limit >= 0:
        raise ValueError(f"time_limit must be a number of seconds of at least 0, got {time_limit!r}")


def search(
    grid: Sequence[Recipe],
    moments: Moments,
    scorer: RetrievalScorer,
    dims: Sequence[int],
    *,
    seed: int = 0,
    max_trials: int | None = None,
    time_limit: float | None = None,
    progress: bool = False,
) -> SearchResult:
    """Solve and score the recipes of `grid` in explore/exploit order (all of them unless cut short)."""
    usable = [recipe for recipe in grid if moments.negative is not None or not recipe.needs_negatives]
    if not usable:
        raise ValueError("no recipe of the grid can run (they all need negatives)")
    check_limits(max_trials, time_limit)
    schedule = Schedule(usable, seed)
    result = SearchResult()
    cache: dict = {}
    started = time.perf_counter()
    total = min(len(usable), max_trials) if max_trials else len(usable)
    best = -math.inf
    with tqdm(total=total, desc="projections", unit="fit", disable=not progress, file=sys.stderr) as bar:
        for recipe in schedule:
            out_of_time = time_limit is not None and time.perf_counter() - started > time_limit
            if len(result.trials) >= total or (result.trials and out_of_time):  # always at least one recipe
                break
            tic = time.perf_counter()
            try:
                scores = scorer.score(solve(recipe, moments, cache), dims)
            except (ValueError, np.linalg.LinAlgError) as exc:
                logger.warning("%s failed: %s", recipe, exc)
                result.trials.append(Trial(recipe, {}, time.perf_counter() - tic, str(exc)))
                schedule.report(recipe, -math.inf)
                bar.update(1)
                continue
            trial = Trial(recipe, scores, time.perf_counter() - tic)
            result.trials.append(trial)
            top = trial.best[1].map_at_k  # type: ignore[index]
            schedule.report(recipe, top)
            best = max(best, top)
            bar.set_postfix_str(f"best MAP {100 * best:.2f}", refresh=False)
            bar.update(1)
    return result


def zoom(
    result: SearchResult,
    moments: Moments,
    scorer: RetrievalScorer,
    dims: Sequence[int],
    *,
    top: int | None = None,
    steps: int = ZOOM_STEPS,
) -> SearchResult:
    """`result` plus its `top` best recipes (distinct validation scores; default ZOOM_SHARE of those searched)
    re-scored at every width between the searched widths on either side of each one's best, every
    `moments.dim // steps` columns."""
    top = max(1, math.ceil(ZOOM_SHARE * len(result.trials))) if top is None else top
    searched = sorted(set(dims))
    step = max(1, moments.dim // steps)
    ranked = sorted((t for t in result.trials if t.best is not None), key=lambda t: -t.best[1].map_at_k)  # type: ignore[index]
    seen: set[float] = set()
    zoomed: list[Trial] = []
    cache: dict = {}
    for trial in ranked:
        if len(zoomed) == top:
            break
        width, scores = trial.best  # type: ignore[misc]
        if scores.map_at_k in seen:
            continue
        seen.add(scores.map_at_k)
        at = searched.index(width)
        low = searched[at - 1] if at > 0 else step
        high = searched[at + 1] if at + 1 < len(searched) else width
        tic = time.perf_counter()
        found = scorer.score(solve(trial.recipe, moments, cache), sorted({*range(low, high + 1, step), width, high}))
        zoomed.append(Trial(trial.recipe, found, time.perf_counter() - tic))
    return SearchResult(result.trials, zoomed)
