"""The projection family: pure functions from pair statistics to a matrix W [d, k] (project with x W).

Two kinds of step, chained by `Recipe`:

- a *start* takes the statistics and returns W: `rayleigh`, `ridge_map`, `asym_rayleigh`,
  `split_rank_rayleigh`, `contrastive_rayleigh` (the last needs mined negatives), and `identity`
  (the input itself, which the cross-check compares every finalist against);
- a *refine* takes a W and the statistics and returns a better W of the same width:
  `mse_refine`, `asym_refine`, `contrastive_mse_refine`;
- a *finish*, last step only, takes a W and returns a full-width map: `input_blend` (W's inner
  products shrunk towards the input's; the cross-check tries it on its best finalist).

Every ridge is relative: it is multiplied by the trace of the covariance it regularises
divided by its size, so `ridge=0.1` means the same on unit vectors as on raw pooled sums.
Columns come out ordered by importance (most shared variance between the members of a pair
first), so `W[:, :m]` is the best m-dimensional projection of its kind.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.optimize

from .stats import Moments

StartMethod = Callable[..., np.ndarray]
RefineMethod = Callable[..., np.ndarray]
FinishMethod = Callable[..., np.ndarray]

ASYM_LOG_RANGE = 30.0  # log gamma searched within +-this
ASYM_TOL = 1e-8
CACHED_DEPTH = 2  # how many leading steps of a recipe `solve` keeps for reuse


def _generalized_eigh(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Solutions of a v = lambda b v (b positive definite), largest lambda first; v^T b v = 1."""
    try:
        values, vectors = scipy.linalg.eigh(a, b)
    except np.linalg.LinAlgError:
        raise ValueError("the regularised covariance is not positive definite; use a larger ridge") from None
    order = np.argsort(-values, kind="stable")
    return values[order], vectors[:, order]


def _ridge(matrix: np.ndarray, ridge: float) -> np.ndarray:
    """`matrix` + ridge * (trace(matrix) / size) * I."""
    if ridge < 0:
        raise ValueError(f"ridge must be >= 0, got {ridge}")
    size = len(matrix)
    return matrix + (ridge * float(np.trace(matrix)) / size) * np.eye(size)


def order_columns(w: np.ndarray, moments: Moments) -> np.ndarray:
    """W rotated (orthogonally, so full-width cosines do not change) so that each leading block of
    columns holds as much of the pairs' shared (cross) covariance as any rotation allows."""
    values, rotation = np.linalg.eigh(w.T @ moments.cross @ w)
    return w @ rotation[:, np.argsort(-values, kind="stable")]


# --------------------------------------------------------------------------- starts
def identity(moments: Moments) -> np.ndarray:
    """The input vectors as they are, rotated so that the columns are ordered like every other
    method's: at full width the cosines are exactly the input's."""
    return order_columns(np.eye(moments.dim), moments)


def rayleigh(moments: Moments, ridge: float = 0.1) -> np.ndarray:
    """Generalised Rayleigh quotient: directions maximising w^T C w / w^T (T + ridge) w,
    with C the pairs' cross covariance and T their total covariance."""
    return _generalized_eigh(moments.cross, _ridge(moments.total, ridge))[1]


def ridge_map(moments: Moments, ridge: float = 0.1) -> np.ndarray:
    """Ridge regression of one pair member on the other: W = (T + ridge)^-1 C (the MSE solution)."""
    return order_columns(np.linalg.solve(_ridge(moments.total, ridge), moments.cross), moments)


def asym_rayleigh(moments: Moments, ridge: float = 0.1) -> np.ndarray:
    """Rayleigh with the x and y sides weighed so that both keep equal variance after projection:
    C w = lambda (gamma Sxx + Syy + ridge) w, gamma found by Brent's method (1 when none balances them)."""
    return _balanced(moments.cross, moments.sxx, moments.syy, ridge)


def split_rank_rayleigh(
    moments: Moments, frac_cross: float = 0.5, frac_total: float = 0.5, ridge: float = 0.01
) -> np.ndarray:
    """Rayleigh between low-rank versions of C (its `frac_cross` strongest eigen-directions)
    and of T (its `frac_total` largest), which drops the noisiest directions of each."""
    for name, value in (("frac_cross", frac_cross), ("frac_total", frac_total)):
        if not 0 < value <= 1:
            raise ValueError(f"{name} must be in (0, 1], got {value}")
    d = moments.dim
    c_values, c_vectors = moments.cross_eigen
    t_values, t_vectors = moments.total_eigen
    kc, kt = max(1, round(d * frac_cross)), max(1, round(d * frac_total))
    cross = (c_vectors[:, :kc] * c_values[:kc]) @ c_vectors[:, :kc].T
    total = (t_vectors[:, :kt] * t_values[:kt]) @ t_vectors[:, :kt].T
    total += ridge * moments.scale * np.eye(d)
    return _generalized_eigh(cross, total)[1]


def contrastive_rayleigh(moments: Moments, alpha: float = 0.1, beta: float = 0.1, ridge: float = 0.01) -> np.ndarray:
    """Rayleigh that also pushes hard negatives apart: (C - alpha N) w = lambda (T + beta N + ridge) w,
    N the mined negative pairs' cross covariance."""
    negative = _negative(moments)
    return _generalized_eigh(moments.cross - alpha * negative, _ridge(moments.total + beta * negative, ridge))[1]


# --------------------------------------------------------------------------- refines
def mse_refine(w: np.ndarray, moments: Moments, ridge: float = 0.1) -> np.ndarray:
    """Inside the span of W, the ridge map M = (W^T T W + ridge)^-1 W^T C W; returns W M."""
    total = w.T @ moments.total @ w
    return order_columns(w @ np.linalg.solve(_ridge(total, ridge), w.T @ moments.cross @ w), moments)


def asym_refine(w: np.ndarray, moments: Moments, ridge: float = 0.1) -> np.ndarray:
    """`asym_rayleigh` solved inside the span of W (cheap: k x k problems)."""
    rotation = _balanced(w.T @ moments.cross @ w, w.T @ moments.sxx @ w, w.T @ moments.syy @ w, ridge)
    return order_columns(w @ rotation, moments)


def contrastive_mse_refine(w: np.ndarray, moments: Moments, alpha: float = 0.1, ridge: float = 0.1) -> np.ndarray:
    """`mse_refine` towards C - alpha N: matches positives and pushes mined negatives apart."""
    target = w.T @ (moments.cross - alpha * _negative(moments)) @ w
    return order_columns(w @ np.linalg.solve(_ridge(w.T @ moments.total @ w, ridge), target), moments)


def _negative(moments: Moments) -> np.ndarray:
    if moments.negative_cross is None:
        raise ValueError("this method needs mined negative pairs (negatives > 0)")
    return moments.negative_cross


def _balanced(cross: np.ndarray, sxx: np.ndarray, syy: np.ndarray, ridge: float) -> np.ndarray:
    """Generalised eigenvectors V of `cross` against gamma Sxx + Syy + ridge, with gamma such that the two sides keep
    equal variance, tr(V^T Sxx V) = tr(V^T Syy V) (a larger gamma shrinks the x side's): Brent's method on log gamma
    within [-ASYM_LOG_RANGE, ASYM_LOG_RANGE]. When no gamma there balances them (one side a multiple of the other,
    say), gamma = 1."""
    ridge_eye = ridge * float(np.trace(sxx + syy)) / len(sxx) * np.eye(len(sxx))

    def solved(log_gamma: float) -> tuple[np.ndarray, float]:
        vectors = _generalized_eigh(cross, np.exp(log_gamma) * sxx + syy + ridge_eye)[1]
        x_side, y_side = np.trace(vectors.T @ sxx @ vectors), np.trace(vectors.T @ syy @ vectors)
        return vectors, float(np.log(max(x_side, 1e-300) / max(y_side, 1e-300)))

    vectors, imbalance = solved(0.0)
    if abs(imbalance) <= ASYM_TOL:  # symmetric statistics: gamma = 1
        return vectors
    low, high = solved(-ASYM_LOG_RANGE)[1], solved(ASYM_LOG_RANGE)[1]
    if not low > 0 > high:  # the imbalance falls as gamma grows; no sign change, no balancing gamma
        return vectors
    log_gamma = scipy.optimize.brentq(lambda t: solved(t)[1], -ASYM_LOG_RANGE, ASYM_LOG_RANGE, xtol=1e-10)
    return solved(log_gamma)[0]


# --------------------------------------------------------------------------- finishes
def input_blend(w: np.ndarray, moments: Moments, weight: float = 0.5, width: float = 0) -> np.ndarray:
    """The full-width map M with (x M).(y M) = (1 - weight) c x.y + weight (x V).(y V), V the first
    `width` columns of W (all when 0; a float because recipe settings are): the fitted inner
    products shrunk towards the input's.

    c = tr(V^T T V) / tr(T) gives both terms the pairs' variance in equal measure. weight 1 keeps
    V's cosines, 0 the input's; in between, a projection that gains little for its noise keeps
    part of its gain at less risk. M's columns are ordered like every method's.
    """
    if not 0 <= weight <= 1:
        raise ValueError(f"weight must lie in [0, 1], got {weight}")
    if not (np.isfinite(width) and width == int(width) and 0 <= width <= w.shape[1]):
        raise ValueError(f"width must be a whole number of columns in [0, {w.shape[1]}], got {width}")
    fitted = w[:, : int(width)] if width else w
    scale = float(np.trace(fitted.T @ moments.total @ fitted)) / float(np.trace(moments.total))
    if not scale > 0:
        raise ValueError("the projection leaves the pairs no variance to blend with the input")
    metric = (1 - weight) * scale * np.eye(moments.dim) + weight * (fitted @ fitted.T)
    values, vectors = np.linalg.eigh(metric)
    return order_columns(vectors * np.sqrt(np.clip(values, 0, None)), moments)


STARTS: dict[str, StartMethod] = {
    "identity": identity,
    "rayleigh": rayleigh,
    "ridge": ridge_map,
    "asym": asym_rayleigh,
    "split_rank": split_rank_rayleigh,
    "contrastive": contrastive_rayleigh,
}
REFINES: dict[str, RefineMethod] = {
    "mse": mse_refine,
    "asym_refine": asym_refine,
    "contrastive_mse": contrastive_mse_refine,
}
FINISHES: dict[str, FinishMethod] = {"input_blend": input_blend}
AFTER_START: dict[str, RefineMethod | FinishMethod] = {**REFINES, **FINISHES}
NEEDS_NEGATIVES = frozenset({"contrastive", "contrastive_mse"})

Params = tuple[tuple[str, float], ...]
Step = tuple[str, Params]


@dataclass(frozen=True)
class Recipe:
    """A chain of steps: a start, then refines, then at most one finish, each with its settings (plain,
    hashable data)."""

    steps: tuple[Step, ...]

    def __post_init__(self) -> None:
        if not self.steps:
            raise ValueError("a recipe needs at least one step")
        first, *rest = (name for name, _ in self.steps)
        if first not in STARTS:
            raise ValueError(f"a recipe must begin with one of {sorted(STARTS)}, got {first!r}")
        if rest and rest[-1] in FINISHES:
            rest.pop()
        for name in rest:
            if name not in REFINES:
                raise ValueError(
                    f"after the first step only refines {sorted(REFINES)} may follow, and a finish "
                    f"{sorted(FINISHES)} only as the last step, got {name!r}"
                )

    @classmethod
    def of(cls, *steps: tuple[str, Mapping[str, float]]) -> Recipe:
        """`Recipe.of(("rayleigh", {"ridge": 0.1}), ("mse", {"ridge": 1.0}))`."""
        return cls(tuple((name, tuple(sorted(params.items()))) for name, params in steps))

    def then(self, name: str, params: Mapping[str, float]) -> Recipe:
        """This recipe with one more step."""
        return Recipe((*self.steps, (name, tuple(sorted(params.items())))))

    @property
    def finished(self) -> bool:
        """True when the last step is a finish (nothing may follow it)."""
        return self.steps[-1][0] in FINISHES  # a finish is never the first step

    @property
    def family(self) -> str:
        """The method chain without its settings, e.g. `rayleigh>mse`."""
        return ">".join(name for name, _ in self.steps)

    @property
    def needs_negatives(self) -> bool:
        """True when a step uses mined negative pairs."""
        return any(name in NEEDS_NEGATIVES for name, _ in self.steps)

    def __str__(self) -> str:
        return " > ".join(
            f"{name}({', '.join(f'{key}={value:g}' for key, value in params)})" for name, params in self.steps
        )

    def to_json(self) -> list[dict[str, object]]:
        """[{"method": name, **settings}, ...]."""
        return [{"method": name, **dict(params)} for name, params in self.steps]

    @classmethod
    def from_json(cls, steps: Sequence[Mapping[str, object]]) -> Recipe:
        """Inverse of `to_json`."""
        out = []
        for step in steps:
            params = {key: float(value) for key, value in step.items() if key != "method"}  # type: ignore[arg-type]
            out.append((str(step["method"]), params))
        return cls.of(*out)


def solve(recipe: Recipe, moments: Moments, cache: dict[tuple[Step, ...], np.ndarray] | None = None) -> np.ndarray:
    """W for `recipe` (float64 [d, d]).

    Recipes of a grid share their first steps: with a `cache` dict, the results of the first
    `CACHED_DEPTH` steps are kept there and reused (final results are not kept).
    """
    cache = {} if cache is None else cache
    w = np.empty(0)
    for depth in range(1, len(recipe.steps) + 1):
        prefix = recipe.steps[:depth]
        if prefix in cache:
            w = cache[prefix]
            continue
        name, params = prefix[-1]
        if depth == 1:
            w = STARTS[name](moments, **dict(params))
        else:
            w = AFTER_START[name](w, moments, **dict(params))
        if depth < len(recipe.steps) and depth <= CACHED_DEPTH:
            cache[prefix] = w
    return w
