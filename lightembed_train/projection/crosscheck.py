"""Choosing among the search's finalists by k-fold scores over train + val.

The best recipes of a grid differ on validation by hundredths of a MAP@50 point, about as much
as the validation split's own noise, so the single best on validation is partly luck, and the
more recipes searched, the more so. `cross_check` takes the `finalists` of the search (the TOP
best recipes, each at its best validation width), fits each on k - 1 folds of train + val and
scores it on the k-th, for every fold; `fit_projection` keeps the best mean fold score (of a
tie, the better on validation). Every row of train + val is scored once, with statistics of
(k - 1) / k of the data; before, only the validation rows were.

`fit_projection` adds the input vectors themselves (`INPUT`, at full width) to the finalists, and
a tie goes to them: when no recipe beats them over the folds, the projection keeps the input's
cosines rather than shipping a change that does not hold up on data it was not fitted to. Then it
checks, over the same folds, the best fitted finalist shrunk towards the input (`blends`, the
`input_blend` finish at each of `BLEND_WEIGHTS`): a gain that is half noise is kept in part.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .data import GroupedVectors, split_groups
from .methods import Recipe, solve
from .metrics import RetrievalScorer, Scores
from .search import SearchResult
from .stats import Moments

logger = logging.getLogger(__name__)

FOLDS = 4
TOP = 5
INPUT = Recipe.of(("identity", {}))  # the input vectors: what every finalist must beat
BLEND_WEIGHTS = (0.25, 0.5, 0.75)  # the fitted projection's share of a blend with the input


@dataclass(frozen=True)
class Finalist:
    """A finalist recipe at its best validation width, with its MAP@k on each fold."""

    recipe: Recipe
    width: int
    val: Scores
    folds: tuple[float, ...]

    @property
    def mean(self) -> float:
        """Mean MAP@k over the folds."""
        return float(np.mean(self.folds))

    def to_json(self) -> dict[str, object]:
        """The finalist as JSON-ready data (scores in percent)."""
        return {
            "recipe": str(self.recipe),
            "width": self.width,
            "val": self.val.to_json(),
            "fold_MAP": [100 * score for score in self.folds],
            "mean_MAP": 100 * self.mean,
        }


def finalists(result: SearchResult, top: int = TOP) -> list[tuple[Recipe, int, Scores]]:
    """The `top` recipes with the best validation MAP@k (grid and zoom trials), each at its best width."""
    best: dict[Recipe, tuple[int, Scores]] = {}
    for trial in [*result.trials, *result.zoomed]:
        if trial.best is None:
            continue
        width, scores = trial.best
        if trial.recipe not in best or scores.map_at_k > best[trial.recipe][1].map_at_k:
            best[trial.recipe] = (width, scores)
    ranked = sorted(best.items(), key=lambda item: -item[1][1].map_at_k)
    return [(recipe, width, scores) for recipe, (width, scores) in ranked[:top]]


def blends(best: Finalist) -> list[Recipe]:
    """`best` (a fitted finalist) shrunk towards the input at each of `BLEND_WEIGHTS`; none when its
    recipe already ends in a finish."""
    if best.recipe.finished or best.recipe == INPUT:
        return []
    return [best.recipe.then("input_blend", {"weight": weight, "width": best.width}) for weight in BLEND_WEIGHTS]


def choose(checked: Sequence[Finalist]) -> Finalist:
    """The finalist with the best mean fold score; the input wins a tie (a projection must beat it
    over the folds to be worth shipping), else the earlier one."""
    return max(checked, key=lambda finalist: (finalist.mean, finalist.recipe == INPUT))


def fold_parts(data: GroupedVectors, folds: int, seed: int) -> list[tuple[GroupedVectors, GroupedVectors]]:
    """(fit part, scored part) per fold, split by whole group; empty when a fold would hold no positive pair."""
    parts = split_groups(data, [1 / folds] * folds, seed)
    if any(part.n_positive_pairs() == 0 for part in parts):
        return []
    out = []
    for i, scored in enumerate(parts):
        others = [part for j, part in enumerate(parts) if j != i]
        fitted = others[0]
        for part in others[1:]:
            fitted = fitted.join(part)
        out.append((fitted, scored))
    return out


def cross_check(
    candidates: Sequence[tuple[Recipe, int, Scores]],
    data: GroupedVectors,
    moments_of: Callable[[GroupedVectors], Moments],
    *,
    folds: int = FOLDS,
    seed: int = 0,
    device: torch.device | None = None,
) -> list[Finalist]:
    """Fold scores of each (recipe, width, validation scores) candidate over `data` (train + val);
    [] when the data is too small to give every fold a positive pair. A recipe that fails on a
    fold is dropped."""
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        raise ValueError(f"folds must be an integer of at least 2, got {folds!r}")
    split = fold_parts(data, folds, seed)
    if not split:
        logger.warning("too few groups for %d folds: keeping the best recipe on validation", folds)
        return []
    scores: dict[tuple[Recipe, int], list[float]] = {(recipe, width): [] for recipe, width, _ in candidates}
    for fitted, scored in split:
        moments = moments_of(fitted)
        scorer = RetrievalScorer(scored.vectors, scored.groups, device=device)
        cache: dict = {}
        for key in list(scores):
            recipe, width = key
            try:
                scores[key].append(scorer.score(solve(recipe, moments, cache), [width])[width].map_at_k)
            except (ValueError, np.linalg.LinAlgError) as exc:
                logger.warning("%s failed on a fold: %s", recipe, exc)
                del scores[key]
    return [Finalist(r, m, val, tuple(scores[r, m])) for r, m, val in candidates if (r, m) in scores]
