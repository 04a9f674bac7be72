"""Fit a projection end to end: statistics, width scan, grid search and width zoom on validation,
a k-fold check of the finalists, the input vectors and blends of the two over train + val, refit,
test.

    from lightembed_train.projection import fit

    report = fit(embeddings, ids, groups=id_to_group)        # or pairs=[(id_a, id_b), ...]
    print(report.table())
    report.projection.save("my-projection.safetensors")      # for lightembed.load_transform

`fit_projection` does the same on splits you made yourself (e.g. a fixed test set).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..device import resolve_device
from .crosscheck import FOLDS, INPUT, Finalist, blends, choose, cross_check, finalists
from .data import GroupedVectors, from_groups, from_pairs, split_groups
from .export import Projection
from .grid import named_grid
from .methods import Recipe, solve
from .metrics import RetrievalScorer, Scores
from .negatives import mine_negatives
from .search import DimScan, SearchResult, Trial, check_limits, scan_dims, search, zoom
from .stats import Moments, group_stats, pair_stats

logger = logging.getLogger(__name__)

DEFAULT_SPLIT = (0.7, 0.15, 0.15)


def moments_of(data: GroupedVectors, negatives: int = 0, device: torch.device | None = None) -> Moments:
    """Positive-pair statistics of `data`, with `negatives` mined hard negatives per row when > 0."""
    positive = group_stats(data)
    negative = pair_stats(data.vectors, mine_negatives(data, negatives, device=device)) if negatives > 0 else None
    return Moments(positive, negative)


@dataclass
class FitReport:
    """What `fit_projection` found: the projection, its scores, the search, and where the time went."""

    projection: Projection
    baseline: dict[str, Scores]
    scores: dict[str, Scores]
    scan: DimScan
    search: SearchResult
    checked: list[Finalist]
    seconds: dict[str, float]

    @property
    def recipe(self) -> Recipe:
        """The chosen recipe."""
        return self.projection.recipe  # type: ignore[return-value]

    @property
    def dim(self) -> int:
        """The chosen width."""
        return self.projection.out_dim

    @property
    def kept_input(self) -> bool:
        """True when no recipe beat the input vectors over the folds: the projection keeps their cosines."""
        return (self.recipe, self.dim) == (INPUT, self.projection.in_dim)

    def table(self) -> str:
        """A markdown table: MAP@50 and R@1 of the input vectors and of the projection, per split.

        The val row scores the chosen recipe fitted on train (it was chosen on val, so it flatters);
        the test row scores the returned projection, on groups that chose nothing.
        """
        lines = [
            "| split | rows | MAP@50 before | MAP@50 after | gain | R@1 before | R@1 after |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for split, after in self.scores.items():
            before = self.baseline[split]
            lines.append(
                f"| {split} | {self.projection.info.get(f'{split}_rows', '')} | {100 * before.map_at_k:.2f} | "
                f"{100 * after.map_at_k:.2f} | {100 * (after.map_at_k - before.map_at_k):+.2f} | "
                f"{100 * before.recall_at_1:.2f} | {100 * after.recall_at_1:.2f} |"
            )
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        """The report as JSON-ready data (every trial included)."""
        return {
            "recipe": self.recipe.to_json(),
            "recipe_text": str(self.recipe),
            "dim": self.dim,
            "baseline": {split: s.to_json() for split, s in self.baseline.items()},
            "scores": {split: s.to_json() for split, s in self.scores.items()},
            "scan": {
                "dims": list(self.scan.dims),
                "curve": {str(m): s.to_json() for m, s in self.scan.curve.items()},
            },
            "trials": [_trial_json(t) for t in self.search.trials],
            "zoomed": [_trial_json(t) for t in self.search.zoomed],
            "cross_check": [finalist.to_json() for finalist in self.checked],
            "seconds": {key: round(value, 3) for key, value in self.seconds.items()},
            "info": self.projection.info,
        }


def _trial_json(trial: Trial) -> dict[str, Any]:
    return {
        "recipe": str(trial.recipe),
        "seconds": round(trial.seconds, 4),
        "scores": {str(m): s.to_json() for m, s in trial.scores.items()},
        **({"error": trial.error} if trial.error else {}),
    }


def check_options(
    *, negatives: int, folds: int, max_trials: int | None, time_limit: float | None, grid: str | Sequence[Recipe]
) -> None:
    """Raise ValueError for the first option of `fit_projection` out of range (those that need no data)."""
    if isinstance(negatives, bool) or not isinstance(negatives, int) or negatives < 0:
        raise ValueError(f"negatives must be an integer of at least 0, got {negatives!r}")
    if isinstance(folds, bool) or not isinstance(folds, int) or folds == 1 or folds < 0:
        raise ValueError(f"folds must be 0 (no cross-check) or an integer of at least 2, got {folds!r}")
    check_limits(max_trials, time_limit)
    if isinstance(grid, str):
        named_grid(grid)
    elif any(isinstance(recipe, Recipe) and recipe.finished for recipe in grid):
        raise ValueError("leave input_blend out of the grid: the cross-check tries it on its best finalist")


def fit_projection(
    train: GroupedVectors,
    val: GroupedVectors,
    test: GroupedVectors | None = None,
    *,
    grid: str | Sequence[Recipe] = "fast",
    negatives: int = 0,
    dim: int | None = None,
    refit: bool = True,
    folds: int = FOLDS,
    max_trials: int | None = None,
    time_limit: float | None = None,
    seed: int = 0,
    device: torch.device | str | None = None,
    progress: bool = False,
) -> FitReport:
    """Search `grid` on `val` with statistics of `train` (then zoom in on the best recipes' widths),
    choose among the finalists, the input vectors and blends of the best finalist with the input by
    their mean score over `folds` folds of train + val (`crosscheck`; `folds=0` keeps the best on
    validation), refit the choice on train + val, score `test`. When the input wins, the projection
    is `INPUT`: a rotation that keeps the input's cosines.

    `negatives` > 0 mines that many hard negatives per row (other groups' nearest rows) for
    the contrastive recipes. `dim` fixes the output width (default: scan widths and pick the
    best on validation). With `refit=False` the returned projection is the train-only one.
    """
    check_options(negatives=negatives, folds=folds, max_trials=max_trials, time_limit=time_limit, grid=grid)
    if dim is not None and (
        isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or not 1 <= dim <= train.dim
    ):
        raise ValueError(f"dim must be an integer between 1 and the vectors' width {train.dim}, got {dim!r}")
    if train.dim != val.dim or (test is not None and test.dim != train.dim):
        raise ValueError("train, val and test vectors must have the same width")
    device = resolve_device(device)
    seconds: dict[str, float] = {}
    clock = time.perf_counter()

    moments = moments_of(train, negatives, device)
    seconds["statistics"] = time.perf_counter() - clock
    recipes = named_grid(grid, negatives > 0) if isinstance(grid, str) else list(grid)

    clock = time.perf_counter()
    val_scorer = RetrievalScorer(val.vectors, val.groups, device=device)
    scan = scan_dims(moments, val_scorer) if dim is None else DimScan(val_scorer.baseline(), {}, (dim,))
    seconds["dim_scan"] = time.perf_counter() - clock
    logger.info("width scan: baseline MAP@50 %.2f; searching widths %s", 100 * scan.baseline.map_at_k, scan.dims)

    clock = time.perf_counter()
    found = search(
        recipes,
        moments,
        val_scorer,
        scan.dims,
        seed=seed,
        max_trials=max_trials,
        time_limit=time_limit,
        progress=progress,
    )
    if dim is None:
        found = zoom(found, moments, val_scorer, scan.dims)
    recipe, width, val_scores = found.best
    seconds["search"] = time.perf_counter() - clock
    logger.info("best on validation: %s at %d dims, MAP@50 %.2f", recipe, width, 100 * val_scores.map_at_k)

    clock = time.perf_counter()
    pooled = train.join(val)

    def fold_moments(part: GroupedVectors) -> Moments:
        return moments_of(part, negatives, device)

    checked: list[Finalist] = []
    if folds:
        full_width = dim in (None, train.dim)
        candidates = finalists(found)
        if full_width and (INPUT, train.dim) not in [(r, m) for r, m, _ in candidates]:
            candidates.append((INPUT, train.dim, scan.baseline))
        checked = cross_check(candidates, pooled, fold_moments, folds=folds, seed=seed, device=device)
        fitted = [finalist for finalist in checked if finalist.recipe != INPUT]
        if full_width and fitted:
            # The same folds again (the same seed); their statistics are computed anew rather than
            # held, which would cost folds x several d x d matrices.
            shrunk = _on_validation(blends(max(fitted, key=lambda finalist: finalist.mean)), moments, val_scorer)
            checked += cross_check(shrunk, pooled, fold_moments, folds=folds, seed=seed, device=device)
    if checked:
        chosen = choose(checked)
        recipe, width, val_scores = chosen.recipe, chosen.width, chosen.val
        logger.info("best over %d folds: %s at %d dims, mean MAP@50 %.2f", folds, recipe, width, 100 * chosen.mean)
    seconds["cross_check"] = time.perf_counter() - clock

    clock = time.perf_counter()
    final = moments_of(pooled, negatives, device) if refit else moments
    matrix = solve(recipe, final)[:, :width]
    seconds["refit"] = time.perf_counter() - clock

    baseline = {"val": scan.baseline}
    scores = {"val": val_scores}
    info: dict[str, Any] = {
        "train_rows": len(train),
        "val_rows": len(val),
        "train_pairs": train.n_positive_pairs(),
        "fitted_on": "train+val" if refit else "train",
        "negatives_per_row": negatives,
        "grid": grid if isinstance(grid, str) else f"{len(recipes)} recipes",
        "trials": len(found.trials),
        "cross_check_folds": folds if checked else 0,
    }
    if test is not None:
        clock = time.perf_counter()
        test_scorer = RetrievalScorer(test.vectors, test.groups, device=device)
        baseline["test"] = test_scorer.baseline()
        scores["test"] = test_scorer.score(matrix, [width])[width]
        info["test_rows"] = len(test)
        seconds["test"] = time.perf_counter() - clock
    seconds["total"] = sum(seconds.values())
    report = FitReport(
        Projection(matrix.astype(np.float32), recipe, info), baseline, scores, scan, found, checked, seconds
    )
    if report.kept_input:
        logger.warning("no recipe beat the input vectors over the folds: keeping the input's cosines")
    return report


def _on_validation(
    recipes: Sequence[Recipe], moments: Moments, scorer: RetrievalScorer
) -> list[tuple[Recipe, int, Scores]]:
    """Each full-width recipe with its validation scores (fitted on `moments`); one that fails is dropped."""
    out = []
    for recipe in recipes:
        try:
            matrix = solve(recipe, moments)
        except (ValueError, np.linalg.LinAlgError) as exc:
            logger.warning("%s failed: %s", recipe, exc)
            continue
        out.append((recipe, moments.dim, scorer.score(matrix, [moments.dim])[moments.dim]))
    return out


def fit(
    embeddings: object,
    ids: Sequence[Hashable] | None = None,
    *,
    groups: Mapping[Hashable, Hashable] | None = None,
    pairs: Sequence[tuple[Hashable, Hashable]] | None = None,
    split: Sequence[float] = DEFAULT_SPLIT,
    allow_singletons: bool = False,
    seed: int = 0,
    **options: Any,
) -> FitReport:
    """Fit a projection to `embeddings` labelled by `groups` (id -> group) or positive `pairs` of ids.

    `ids` default to the row numbers 0..n-1. The groups are split train/val/test by `split`
    (a test fraction of 0 gives no test scores); the other options are `fit_projection`'s.
    """
    if (groups is None) == (pairs is None):
        raise ValueError("give either groups (id -> group) or pairs of ids, not both and not neither")
    n = len(embeddings)  # type: ignore[arg-type]
    ids = list(range(n)) if ids is None else list(ids)
    if groups is not None:
        data = from_groups(embeddings, ids, groups, allow_singletons=allow_singletons)
    else:
        data = from_pairs(embeddings, ids, pairs, allow_singletons=allow_singletons)  # type: ignore[arg-type]
    train, val, test = three_way_split(data, split, seed)
    return fit_projection(train, val, test, seed=seed, **options)


def three_way_split(
    data: GroupedVectors, split: Sequence[float], seed: int = 0
) -> tuple[GroupedVectors, GroupedVectors, GroupedVectors | None]:
    """Train, val and test (None when its fraction is 0 or it holds no pair) by whole group, checked."""
    if len(split) not in (2, 3):
        raise ValueError(f"split needs two fractions (train, val) or three (train, val, test), got {list(split)}")
    parts = split_groups(data, (*split, 0.0) if len(split) == 2 else split, seed)
    for name, part in zip(("train", "val"), parts):
        if part.n_positive_pairs() == 0:
            raise ValueError(f"the {name} split has no positive pair: use more groups or other split fractions")
    return parts[0], parts[1], parts[2] if parts[2].n_positive_pairs() > 0 else None
