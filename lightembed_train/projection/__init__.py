"""Closed-form projections fitted to labelled embeddings (which items belong together).

    from lightembed_train.projection import fit

    report = fit(embeddings, ids, groups=id_to_group)   # numpy or torch [n, d]; or pairs=[(a, b), ...]
    print(report.table())                               # MAP@50 / R@1 before and after, per split
    report.projection.save("proj.safetensors")          # lightembed.load_transform(...).apply(x)
    report.projection.bake("default", "my-model")       # a model folder: lightembed.load("my-model")
    layer = report.projection.to_linear()               # torch.nn.Linear

One pass over the data gives the pairs' sufficient statistics (`stats`); each method of
`methods` is a pure function from those statistics to a matrix, and recipes chain them; a
grid (`grid`) of recipes is searched on a validation split (`search`, then `zoom` on the
widths), the finalists are compared over folds of train + val (`crosscheck`) and the best is
refitted on train + val (`fit`). The command line is `lightembed-train project`.
"""

from __future__ import annotations

from .data import GroupedVectors, from_groups, from_pairs, split_groups
from .export import Projection
from .fit import FitReport, fit, fit_projection, moments_of
from .grid import fast_grid, full_grid, named_grid
from .methods import Recipe, solve
from .metrics import RetrievalScorer, Scores
from .stats import Moments, PairStats, group_stats, pair_stats, stream_stats

__all__ = [
    "FitReport",
    "GroupedVectors",
    "Moments",
    "PairStats",
    "Projection",
    "Recipe",
    "RetrievalScorer",
    "Scores",
    "fast_grid",
    "fit",
    "fit_projection",
    "from_groups",
    "from_pairs",
    "full_grid",
    "group_stats",
    "moments_of",
    "named_grid",
    "pair_stats",
    "solve",
    "split_groups",
    "stream_stats",
]
