"""Grids of recipes: plain lists of `Recipe`s, built from small tables of settings.

Ridges are relative (multiples of the regularised covariance's mean eigenvalue, see
`methods`), so these grids suit embeddings of any scale: unit vectors and raw pooled sums alike.

`fit` always uses symmetric statistics (each pair both ways round), under which `asym`
equals `rayleigh`, so the grids leave it out; it is there for asymmetric statistics
(`pair_stats(..., symmetric=False)`) and grids of your own.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from itertools import product

from .methods import Recipe

StepGrid = tuple[str, Mapping[str, Sequence[float]]]


def chains(*steps: StepGrid) -> list[Recipe]:
    """Every combination of the settings of each step: `chains(("rayleigh", {"ridge": [1, 10]}), ...)`."""
    options = []
    for name, settings in steps:
        keys = list(settings)
        options.append([(name, dict(zip(keys, values))) for values in product(*(settings[k] for k in keys))])
    return [Recipe.of(*combination) for combination in product(*options)]


def _unique(recipes: Iterable[Recipe]) -> list[Recipe]:
    return list(dict.fromkeys(recipes))


def fast_grid(negatives: bool = False) -> list[Recipe]:
    """40 recipes (47 with negatives): the families and settings that do well on most data."""
    recipes = [
        *chains(("rayleigh", {"ridge": [0.3, 1, 3, 10, 30, 100, 1000]})),
        *chains(("ridge", {"ridge": [0.1, 1, 10]})),
        *chains(("rayleigh", {"ridge": [1, 10, 100]}), ("asym_refine", {"ridge": [0.1, 1, 10]})),
        *chains(("rayleigh", {"ridge": [1, 10, 100]}), ("mse", {"ridge": [0.1, 1, 10]})),
        *chains(("rayleigh", {"ridge": [1, 10]}), ("mse", {"ridge": [0.1, 1]}), ("asym_refine", {"ridge": [1]})),
        *chains(("split_rank", {"frac_cross": [0.5, 0.8], "frac_total": [0.5, 1.0], "ridge": [3, 30]})),
    ]
    if negatives:
        recipes += [
            *chains(("contrastive", {"alpha": [0.1], "beta": [0.1], "ridge": [1, 10, 100]})),
            *chains(
                ("contrastive", {"alpha": [0.1], "beta": [0.1], "ridge": [1, 10]}),
                ("contrastive_mse", {"alpha": [0.1], "ridge": [0.1, 1]}),
            ),
        ]
    return _unique(recipes)


def full_grid(negatives: bool = False) -> list[Recipe]:
    """Several hundred recipes: every family over a wide range of each setting (the fast grid included)."""
    ridges = [0.1, 0.3, 1, 3, 10, 30, 100, 300, 1000]
    refine = [0.01, 0.1, 1, 10, 100]
    short = [1, 10, 100]
    fractions = [0.15, 0.3, 0.5, 0.6, 0.7, 0.8, 1.0]
    split_ridges = [1, 2, 5, 10, 20, 50, 100]  # split-rank winners sit at ridges of 1-30: a denser series
    recipes = [
        *fast_grid(negatives),
        *chains(("rayleigh", {"ridge": ridges})),
        *chains(("ridge", {"ridge": ridges})),
        *chains(("rayleigh", {"ridge": ridges}), ("mse", {"ridge": refine})),
        *chains(("rayleigh", {"ridge": ridges}), ("asym_refine", {"ridge": refine})),
        *chains(("rayleigh", {"ridge": short}), ("mse", {"ridge": refine}), ("asym_refine", {"ridge": refine})),
        *chains(("rayleigh", {"ridge": short}), ("asym_refine", {"ridge": refine}), ("mse", {"ridge": refine})),
        *chains(("split_rank", {"frac_cross": fractions, "frac_total": fractions, "ridge": split_ridges})),
        *chains(
            ("split_rank", {"frac_cross": [0.3, 0.5, 0.7], "frac_total": [0.3, 0.5, 0.7], "ridge": [1, 10]}),
            ("mse", {"ridge": [0.1, 1, 10]}),
        ),
    ]
    if negatives:
        weights = [0.05, 0.1, 0.3]
        recipes += [
            *chains(("contrastive", {"alpha": weights, "beta": weights, "ridge": short})),
            *chains(
                ("contrastive", {"alpha": weights, "beta": weights, "ridge": [1, 10]}),
                ("contrastive_mse", {"alpha": [0.0, 0.1, 0.3], "ridge": [0.1, 1]}),
            ),
        ]
    return _unique(recipes)


GRIDS = {"fast": fast_grid, "full": full_grid}


def named_grid(name: str, negatives: bool = False) -> list[Recipe]:
    """The grid called `name` ("fast" or "full")."""
    if name not in GRIDS:
        raise ValueError(f"unknown grid {name!r}; expected one of {sorted(GRIDS)}")
    return GRIDS[name](negatives)
