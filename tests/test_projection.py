"""Closed-form projections (lightembed_train.projection): statistics, methods, search, metrics, exports."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

import scipy.linalg
import torch

import lightembed
from lightembed.scoring import unit_rows
from lightembed_train.evaluation.duplicates import leave_one_out
from lightembed_train.projection import (
    GroupedVectors,
    Moments,
    PairStats,
    Projection,
    Recipe,
    RetrievalScorer,
    Scores,
    crosscheck,
    fast_grid,
    fit,
    fit_projection,
    from_groups,
    from_pairs,
    full_grid,
    group_stats,
    methods,
    moments_of,
    pair_stats,
    solve,
    split_groups,
    stream_stats,
)
from lightembed_train.projection.crosscheck import BLEND_WEIGHTS, INPUT, cross_check, fold_parts
from lightembed_train.projection.methods import asym_rayleigh, input_blend, order_columns, rayleigh
from lightembed_train.projection.negatives import mine_negatives
from lightembed_train.projection.search import Schedule, choose_dims, search, zoom

DIM = 24
SIGNAL = 4


def planted(groups: int = 120, seed: int = 0, scale: float = 1.0) -> tuple[GroupedVectors, np.ndarray]:
    """Groups of 2-4 rows around centres that differ only along SIGNAL planted directions.

    The rows also carry strong noise along other directions (two of them much stronger than the
    signal), so plain cosine mixes groups up and a projection must find the planted subspace.
    Returns the data and the planted basis [DIM, SIGNAL].
    """
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.normal(size=(DIM, DIM)))[0]
    signal, loud = basis[:, :SIGNAL], basis[:, SIGNAL : SIGNAL + 2]
    sizes = rng.integers(2, 5, groups)
    ids = np.repeat(np.arange(groups), sizes)
    centres = rng.normal(size=(groups, SIGNAL))
    rows = centres[ids] @ signal.T
    rows += 0.35 * rng.normal(size=(len(ids), DIM)) + 3.0 * rng.normal(size=(len(ids), 2)) @ loud.T
    return GroupedVectors((scale * rows).astype(np.float32), ids), signal


def naive_pairs(data: GroupedVectors) -> np.ndarray:
    """Every ordered pair (i, j), i != j, of rows in one group."""
    return np.array(
        [(i, j) for i in range(len(data)) for j in range(len(data)) if i != j and data.groups[i] == data.groups[j]]
    )


def naive_stats(vectors: np.ndarray, pairs: np.ndarray) -> PairStats:
    x, y = vectors[pairs[:, 0]].astype(np.float64), vectors[pairs[:, 1]].astype(np.float64)
    return PairStats(float(len(pairs)), x.sum(0), y.sum(0), x.T @ x, y.T @ y, x.T @ y)


def assert_stats_equal(a: PairStats, b: PairStats) -> None:
    assert a.count == b.count
    for name in ("sum_x", "sum_y", "xx", "yy", "xy"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=1e-10, atol=1e-9, err_msg=name)


# --------------------------------------------------------------------------- statistics
def test_group_stats_equal_the_naive_sum_over_all_pairs() -> None:
    data, _ = planted(30)
    naive = naive_stats(data.vectors, naive_pairs(data))
    assert_stats_equal(group_stats(data, block=7), naive)
    assert data.n_positive_pairs() * 2 == naive.count


def test_pair_stats_in_chunks_and_streamed_batches_equal_the_naive_sums() -> None:
    data, _ = planted(30)
    rng = np.random.default_rng(1)
    pairs = rng.integers(0, len(data), size=(500, 2))
    pairs = np.concatenate([pairs, pairs[:5]])  # a repeated pair counts twice
    naive = naive_stats(data.vectors, pairs)
    assert_stats_equal(pair_stats(data.vectors, pairs, symmetric=False, chunk=64), naive)
    assert_stats_equal(pair_stats(data.vectors, pairs, chunk=64), naive.symmetric())
    batches = ((data.vectors[pairs[i : i + 37, 0]], data.vectors[pairs[i : i + 37, 1]]) for i in range(0, 505, 37))
    assert_stats_equal(stream_stats(batches, symmetric=False), naive)


def test_stats_add_up_across_splits() -> None:
    data, _ = planted(40)
    a, b = split_groups(data, (0.5, 0.5), seed=3)
    assert_stats_equal(group_stats(a) + group_stats(b), group_stats(a.join(b)))


def test_moments_are_the_pair_covariances() -> None:
    data, _ = planted(30)
    pairs = naive_pairs(data)
    x, y = data.vectors[pairs[:, 0]].astype(np.float64), data.vectors[pairs[:, 1]].astype(np.float64)
    mean = np.concatenate([x, y]).mean(0)
    m = Moments(group_stats(data))
    np.testing.assert_allclose(m.mean, mean, atol=1e-10)
    np.testing.assert_allclose(m.sxx, (x - mean).T @ (x - mean) / len(x), atol=1e-9)
    cross = (x - mean).T @ (y - mean) / len(x)
    np.testing.assert_allclose(m.cross, cross + cross.T, atol=1e-9)
    np.testing.assert_allclose(m.total, m.sxx + m.syy, atol=1e-12)
    assert m.scale == pytest.approx(np.trace(m.total) / DIM)


# --------------------------------------------------------------------------- methods
def test_rayleigh_solves_the_generalised_eigenproblem() -> None:
    data, _ = planted()
    m = Moments(group_stats(data))
    ridge = 0.3
    b = m.total + ridge * m.scale * np.eye(DIM)
    w = rayleigh(m, ridge)
    values = np.diag(w.T @ m.cross @ w)
    np.testing.assert_allclose(m.cross @ w, b @ w * values, atol=1e-8)  # C w = lambda B w
    np.testing.assert_allclose(w.T @ b @ w, np.eye(DIM), atol=1e-8)  # B-orthonormal
    assert np.all(np.diff(values) <= 1e-12)  # most important first
    np.testing.assert_allclose(values, scipy.linalg.eigh(m.cross, b, eigvals_only=True)[::-1], atol=1e-8)


def test_rayleigh_recovers_the_planted_directions() -> None:
    data, signal = planted()
    w = rayleigh(Moments(group_stats(data)), 0.1)
    cosines = scipy.linalg.svdvals(signal.T @ np.linalg.qr(w[:, :SIGNAL])[0])  # principal angles
    assert cosines.min() > 0.95


EVERY_METHOD = [
    INPUT,
    Recipe.of(("rayleigh", {"ridge": 0.3})),
    Recipe.of(("ridge", {"ridge": 0.3})),
    Recipe.of(("asym", {"ridge": 0.3})),
    Recipe.of(("split_rank", {"frac_cross": 0.5, "frac_total": 0.5, "ridge": 0.3})),
    Recipe.of(("contrastive", {"alpha": 0.1, "beta": 0.1, "ridge": 0.3})),
    Recipe.of(("rayleigh", {"ridge": 1}), ("mse", {"ridge": 0.1}), ("asym_refine", {"ridge": 0.1})),
    Recipe.of(("rayleigh", {"ridge": 1}), ("contrastive_mse", {"alpha": 0.1, "ridge": 0.1})),
    Recipe.of(("rayleigh", {"ridge": 1}), ("input_blend", {"weight": 0.5, "width": SIGNAL})),
]


@pytest.mark.parametrize("recipe", EVERY_METHOD, ids=str)
def test_every_method_is_scale_free_and_ordered(recipe: Recipe) -> None:
    """Trace-relative ridges: scaling the embeddings by s scales W by 1/s and leaves every cosine alone."""
    data, _ = planted(60)
    negatives = mine_negatives(data, 2)
    scaled = GroupedVectors(data.vectors * 1000.0, data.groups)
    w = solve(recipe, Moments(group_stats(data), pair_stats(data.vectors, negatives)))
    w_scaled = solve(recipe, Moments(group_stats(scaled), pair_stats(scaled.vectors, negatives)))
    assert w.shape == (DIM, DIM) and np.isfinite(w).all()
    for width in (SIGNAL, DIM):
        a = unit_rows((data.vectors @ w[:, :width]).astype(np.float32))
        b = unit_rows((scaled.vectors @ w_scaled[:, :width]).astype(np.float32))
        np.testing.assert_allclose(a @ a.T, b @ b.T, atol=1e-4)


def test_order_columns_puts_the_shared_variance_first_without_changing_cosines() -> None:
    data, _ = planted()
    m = Moments(group_stats(data))
    w = np.random.default_rng(0).normal(size=(DIM, DIM))
    ordered = order_columns(w, m)
    shared = ordered.T @ m.cross @ ordered
    np.testing.assert_allclose(shared, np.diag(np.diag(shared)), atol=1e-8)
    assert np.all(np.diff(np.diag(shared)) <= 1e-10)
    np.testing.assert_allclose(ordered @ ordered.T, w @ w.T, atol=1e-8)  # an orthogonal rotation


def test_input_blend_mixes_the_fitted_inner_products_with_the_input_ones() -> None:
    data, _ = planted()
    m = Moments(group_stats(data))
    w = rayleigh(m, 0.1)
    fitted = w[:, :SIGNAL]
    scale = np.trace(fitted.T @ m.total @ fitted) / np.trace(m.total)
    x = data.vectors.astype(np.float64)
    for weight in (0.0, 0.3, 1.0):
        blended = input_blend(w, m, weight, SIGNAL)
        assert blended.shape == (DIM, DIM)
        expected = (1 - weight) * scale * (x @ x.T) + weight * (x @ fitted) @ (x @ fitted).T
        np.testing.assert_allclose((x @ blended) @ (x @ blended).T, expected, rtol=1e-8, atol=1e-8 * scale)
        shared = np.diag(blended.T @ m.cross @ blended)
        assert np.all(np.diff(shared) <= 1e-10)  # columns ordered like every method's
    np.testing.assert_allclose(input_blend(w, m, 0.5, 0), input_blend(w, m, 0.5, DIM), atol=1e-10)
    with pytest.raises(ValueError, match="weight must lie in"):
        input_blend(w, m, 1.5)
    for width in (2.5, DIM + 1, -1, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="width must be a whole number"):
            input_blend(w, m, 0.5, width)
    with pytest.raises(ValueError, match="no variance to blend"):
        input_blend(np.zeros((DIM, 2)), m, 0.5)


def test_mse_refine_of_rayleigh_reweights_by_correlation() -> None:
    """Unridged, the Rayleigh basis makes both projected covariances diagonal (W^T T W = I,
    W^T C W = diag(lambda)), so the refine M = diag(lambda) only scales the columns."""
    data, _ = planted()
    m = Moments(group_stats(data))
    w = rayleigh(m, 0.0)
    np.testing.assert_allclose(w.T @ m.total @ w, np.eye(DIM), atol=1e-8)
    refined = solve(Recipe.of(("rayleigh", {"ridge": 0.0}), ("mse", {"ridge": 0.0})), m)
    np.testing.assert_allclose(np.abs(refined), np.abs(w * np.diag(w.T @ m.cross @ w)), atol=1e-8)


def test_recipes_check_their_steps_and_round_trip_as_json() -> None:
    recipe = Recipe.of(("rayleigh", {"ridge": 1}), ("mse", {"ridge": 0.1}))
    assert Recipe.from_json(recipe.to_json()) == recipe
    assert recipe.family == "rayleigh>mse" and str(recipe) == "rayleigh(ridge=1) > mse(ridge=0.1)"
    with pytest.raises(ValueError, match="must begin with"):
        Recipe.of(("mse", {"ridge": 1}))
    with pytest.raises(ValueError, match="only refines"):
        Recipe.of(("rayleigh", {}), ("rayleigh", {}))
    finished = recipe.then("input_blend", {"weight": 0.5, "width": 8})
    assert finished.finished and not recipe.finished and Recipe.from_json(finished.to_json()) == finished
    moments = Moments(group_stats(planted(40)[0]))
    np.testing.assert_array_equal(solve(Recipe.from_json(finished.to_json()), moments), solve(finished, moments))
    assert str(finished) == "rayleigh(ridge=1) > mse(ridge=0.1) > input_blend(weight=0.5, width=8)"
    with pytest.raises(ValueError, match="only as the last step"):
        finished.then("mse", {"ridge": 1})
    with pytest.raises(ValueError, match="must begin with"):
        Recipe.of(("input_blend", {}))
    with pytest.raises(ValueError, match="needs mined negative pairs"):
        solve(Recipe.of(("contrastive", {})), Moments(group_stats(planted(20)[0])))


def test_grids_are_plain_data_of_the_promised_sizes() -> None:
    assert 30 <= len(fast_grid()) <= 45 and len(fast_grid(True)) <= 50 and len(set(fast_grid())) == len(fast_grid())
    assert 300 <= len(full_grid(negatives=True)) <= 1000
    assert not any(r.needs_negatives for r in full_grid()) and any(r.needs_negatives for r in full_grid(True))
    assert set(fast_grid(True)) <= set(full_grid(True)) and set(fast_grid()) <= set(full_grid())


# --------------------------------------------------------------------------- metrics and search
def test_scorer_matches_the_suite_leave_one_out_at_every_width() -> None:
    data, _ = planted(80, seed=4)
    scorer = RetrievalScorer(data.vectors, data.groups, block=50)
    w = np.random.default_rng(2).normal(size=(DIM, DIM))
    scores = scorer.score(w, [3, 10, DIM])
    for width, got in scores.items():
        mean_ap, recall = leave_one_out(unit_rows((data.vectors @ w[:, :width]).astype(np.float32)), data.groups)
        assert got.map_at_k == pytest.approx(mean_ap, abs=1e-6)
        assert got.recall_at_1 == pytest.approx(recall, abs=1e-9)


def test_scorer_counting_ranks_equals_the_partial_sort_with_ties_and_a_large_group() -> None:
    rng = np.random.default_rng(5)
    groups = np.concatenate([np.repeat(np.arange(30), 2), np.full(40, 30), [31, 31, 31, 32]])
    vectors = rng.normal(size=(len(groups), 6)).astype(np.float32)
    vectors[1] = vectors[2]  # row 0's mate ties with a row of another group
    vectors[-2] = vectors[-3]  # two mates of row -4 tie with each other
    scorer = RetrievalScorer(vectors, groups)
    assert scorer.mates.shape[1] == 2  # the group of 40 has more mates than MATE_SLOTS: sorted instead
    units = torch.from_numpy(unit_rows(vectors))
    negated = -(units @ units.T)
    negated.fill_diagonal_(torch.inf)
    rows = scorer.queries
    counted = scorer._block_scores(negated[rows].clone(), 0)
    partial = scorer._sorted_scores(negated[rows].clone(), rows)
    for a, b in zip(counted, partial):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-9)
    assert 0 < counted[0].mean() < 1


def test_scorer_skips_lonely_rows_as_queries_but_keeps_them_as_distractors() -> None:
    vectors = np.array([[1, 0], [0.9, 0.1], [0.95, 0.05], [0, 1]], dtype=np.float32)
    groups = np.array([0, 0, 1, 2])  # rows 2 and 3 are alone
    scores = RetrievalScorer(vectors, groups).baseline()
    # queries 0 and 1 only; row 2 sits between them, so each finds it first, then its partner
    assert scores.recall_at_1 == 0.0
    assert scores.map_at_k == pytest.approx(0.5)


def test_choose_dims_brackets_the_plateau() -> None:
    curve = {
        w: type("S", (), {"map_at_k": s})() for w, s in zip(range(4, 33, 4), [0.1, 0.5, 0.8, 0.9, 0.9, 0.85, 0.8, 0.7])
    }
    dims = choose_dims(curve, baseline=0.6, d=32)  # type: ignore[arg-type]
    assert dims == (4, 8, 16, 20, 32)  # smallest, below the plateau (16-20 reach 0.87), the plateau, full


def test_schedule_tries_each_family_first_then_everything_once() -> None:
    grid = fast_grid()
    schedule = Schedule(grid, seed=1)
    families = len({r.family for r in grid})
    seen = []
    for recipe in schedule:
        seen.append(recipe)
        schedule.report(recipe, 0.5 if recipe.family == "rayleigh" else 0.1)
    assert len({r.family for r in seen[:families]}) == families
    assert sorted(map(str, seen)) == sorted(map(str, grid))


def test_search_records_failures_and_honours_max_trials() -> None:
    data, _ = planted(40)
    m = Moments(group_stats(data))
    scorer = RetrievalScorer(data.vectors, data.groups)
    bad = Recipe.of(("split_rank", {"frac_cross": 2.0}))
    result = search([bad, *fast_grid()[:5]], m, scorer, [4, DIM], max_trials=3)
    assert len(result.trials) == 3
    failed = [t for t in search([bad, fast_grid()[0]], m, scorer, [DIM]).trials if t.error]
    assert len(failed) == 1 and "frac_cross" in failed[0].error
    assert result.best[0] in fast_grid()[:5]


def test_search_limits_are_checked_and_a_time_limit_still_runs_one_recipe() -> None:
    data, _ = planted(40)
    m = Moments(group_stats(data))
    scorer = RetrievalScorer(data.vectors, data.groups)
    for bad in (0, -3):
        with pytest.raises(ValueError, match="max_trials"):
            search(fast_grid(), m, scorer, [DIM], max_trials=bad)
    with pytest.raises(ValueError, match="time_limit"):
        search(fast_grid(), m, scorer, [DIM], time_limit=-1)
    assert len(search(fast_grid(), m, scorer, [DIM], time_limit=0).trials) == 1


def test_zoom_scores_the_best_recipes_between_the_neighbouring_widths() -> None:
    data, _ = planted(60)
    m = Moments(group_stats(data))
    scorer = RetrievalScorer(data.vectors, data.groups)
    dims = [2, 8, 16, DIM]
    result = search(fast_grid(), m, scorer, dims)
    zoomed = zoom(result, m, scorer, dims, top=3, steps=12)  # a lattice step of 24 // 12 = 2 columns
    assert zoomed.trials is result.trials and len(zoomed.zoomed) == 3
    ranked = sorted({t.best[1].map_at_k for t in result.trials if t.best}, reverse=True)
    assert all(t.best[1].map_at_k >= top for t, top in zip(zoomed.zoomed, ranked))
    for trial in zoomed.zoomed:
        searched = next(t for t in result.trials if t.recipe == trial.recipe).best[0]
        at = dims.index(searched)
        low, high = (dims[at - 1] if at else 2), (dims[at + 1] if at + 1 < len(dims) else searched)
        assert sorted(trial.scores) == sorted({*range(low, high + 1, 2), searched, high})
        fresh = scorer.score(solve(trial.recipe, m), [searched])[searched]
        assert trial.scores[searched] == fresh
    assert zoomed.best[2].map_at_k >= result.best[2].map_at_k


def test_mined_negatives_are_nearest_rows_of_other_groups() -> None:
    data, _ = planted(30)
    pairs = mine_negatives(data, 2, block=7)
    assert len(pairs) == 2 * len(data)
    assert np.all(data.groups[pairs[:, 0]] != data.groups[pairs[:, 1]])
    unit = unit_rows(data.vectors)
    cosines = unit @ unit.T
    cosines[data.groups[:, None] == data.groups[None, :]] = -np.inf
    np.testing.assert_array_equal(pairs[::2, 1], cosines.argmax(1))


# --------------------------------------------------------------------------- data and splits
def test_split_is_group_disjoint_and_covers_everything() -> None:
    data, _ = planted(100)
    parts = split_groups(data, (0.6, 0.2, 0.2), seed=5)
    assert sum(len(p) for p in parts) == len(data)
    assert [p.n_groups for p in parts] == [60, 20, 20]
    rows = [{tuple(r) for r in p.vectors.tolist()} for p in parts]
    assert not (rows[0] & rows[1]) and not (rows[0] & rows[2]) and not (rows[1] & rows[2])
    again = split_groups(data, (0.6, 0.2, 0.2), seed=5)
    np.testing.assert_array_equal(parts[1].vectors, again[1].vectors)


def test_pairs_become_groups_and_splits_keep_only_their_own_pairs() -> None:
    vectors = np.random.default_rng(0).normal(size=(6, 3))
    data = from_pairs(vectors, list("abcdef"), [("a", "b"), ("b", "c"), ("d", "e"), ("f", "e")])
    assert data.groups.tolist() == [0, 0, 0, 1, 1, 1]
    assert data.n_positive_pairs() == 4
    first, second = split_groups(data, (0.5, 0.5), seed=0)
    for part in (first, second):
        assert part.pairs is not None and len(part.pairs) == 2 and part.pairs.max() < 3


def test_bad_inputs_give_clear_errors() -> None:
    vectors = np.eye(4, dtype=np.float32)
    groups = {"a": 1, "b": 1, "c": 2, "d": 2}
    with pytest.raises(ValueError, match="3 ids for 4 embedding rows"):
        from_groups(vectors, ["a", "b", "c"], groups)
    with pytest.raises(ValueError, match=r"ids of the group mapping are not among the ids.*\['x'\]"):
        from_groups(vectors, list("abcd"), {**groups, "x": 3})
    with pytest.raises(ValueError, match="ids look like"):
        from_pairs(vectors, [0, 1, 2, 3], [("0", "1")])  # strings where the ids are ints
    with pytest.raises(ValueError, match="1 ids have no group"):
        from_groups(vectors, list("abcd"), {"a": 1, "b": 1, "c": 2})
    with pytest.raises(ValueError, match="single item.*'d'.*allow_singletons"):
        from_groups(vectors, list("abcd"), {"a": 1, "b": 1, "c": 1, "d": 2})
    lonely = from_groups(vectors, list("abcd"), {"a": 1, "b": 1, "c": 1, "d": 2}, allow_singletons=True)
    assert lonely.n_positive_pairs() == 3
    with pytest.raises(ValueError, match="every group has a single item"):
        from_groups(vectors, list("abcd"), {k: k for k in "abcd"}, allow_singletons=True)
    nan = vectors.copy()
    nan[2, 1] = np.nan
    with pytest.raises(ValueError, match=r"NaN or infinite values in 1 rows, e.g. rows \[2\]"):
        from_groups(nan, list("abcd"), groups)
    for scale in (1e20, 1e-30):  # float32 squares overflow or underflow: wrong scores, so refused
        with pytest.raises(ValueError, match="the largest value of the embeddings is .*changes no cosine"):
            from_groups(vectors * scale, list("abcd"), groups)
    with pytest.raises(ValueError, match="appears twice"):
        from_groups(vectors, list("abca"), groups)
    with pytest.raises(ValueError, match="every pair joins an id with itself"):
        from_pairs(vectors, list("abcd"), [("a", "a")])
    kept = from_pairs(vectors, list("abcd"), [("a", "b"), ("c", "d"), ("d", "d")])
    assert kept.n_positive_pairs() == 2
    with pytest.raises(ValueError, match="2-D"):
        from_groups(np.ones(4), list("abcd"), groups)
    with pytest.raises(ValueError, match="sum to 1"):
        split_groups(from_groups(vectors, list("abcd"), groups), (0.5, 0.2))
    with pytest.raises(ValueError, match="either groups"):
        fit(vectors)


# --------------------------------------------------------------------------- end to end and exports
def test_fit_finds_the_planted_structure_on_held_out_groups() -> None:
    data, signal = planted(300)
    report = fit(torch.from_numpy(data.vectors), groups=dict(enumerate(data.groups.tolist())), seed=1)
    assert report.scores["test"].map_at_k > report.baseline["test"].map_at_k + 0.2
    assert len(report.search.zoomed) == 1  # one recipe in 100 searched, at least one
    assert len(report.checked) == 9 and all(len(finalist.folds) == 4 for finalist in report.checked)
    fitted, given, blended = report.checked[:5], report.checked[5], report.checked[6:]
    assert given.recipe == INPUT and given.width == DIM
    assert given.mean < report.checked[0].mean - 0.2  # the planted projection beats the input
    best = max(fitted, key=lambda finalist: finalist.mean)
    assert [(f.recipe.steps[:-1], f.recipe.steps[-1], f.width) for f in blended] == [
        (best.recipe.steps, ("input_blend", (("weight", w), ("width", best.width))), DIM) for w in BLEND_WEIGHTS
    ]
    assert given.mean < blended[0].mean < blended[-1].mean  # the more of the projection, the better here
    chosen = max(report.checked, key=lambda finalist: finalist.mean)
    assert (report.recipe, report.dim, report.scores["val"]) == (chosen.recipe, chosen.width, chosen.val)
    assert report.to_json()["cross_check"][0]["mean_MAP"] == pytest.approx(100 * report.checked[0].mean)
    top = np.linalg.qr(report.projection.matrix[:, : min(SIGNAL, report.dim)])[0]
    assert scipy.linalg.svdvals(signal.T @ top).min() > 0.9
    assert "| test |" in report.table()
    assert report.to_json()["recipe"] == report.recipe.to_json()


def test_fit_with_negatives_a_fixed_width_and_no_refit() -> None:
    data, _ = planted(120)
    train, val, test = split_groups(data, (0.6, 0.2, 0.2))
    report = fit_projection(train, val, test, grid=full_grid(True)[-6:], negatives=2, dim=6, refit=False)
    assert report.dim == 6 and report.recipe.needs_negatives
    assert not report.search.zoomed  # a fixed width leaves nothing to zoom
    assert all(finalist.width == 6 for finalist in report.checked)
    assert report.projection.info["fitted_on"] == "train"
    for bad in (DIM + 1, 3.5):
        with pytest.raises(ValueError, match="dim must be an integer between"):
            fit_projection(train, val, dim=bad)


def test_without_cross_check_the_best_on_validation_is_kept() -> None:
    data, _ = planted(300)
    train, val, test = split_groups(data, (0.6, 0.2, 0.2), seed=1)
    report = fit_projection(train, val, test, folds=0)
    assert not report.checked and report.projection.info["cross_check_folds"] == 0
    assert report.scores["val"].map_at_k == max(t.best[1].map_at_k for t in report.search.trials if t.best)
    for folds in (1, -2, 2.0, True):
        with pytest.raises(ValueError, match="folds must be 0"):
            fit_projection(train, val, folds=folds)


def test_cross_check_ranks_by_fold_scores_not_by_validation() -> None:
    data, _ = planted(200)
    recipe = Recipe.of(("rayleigh", {"ridge": 0.1}))
    flattered, plain = Scores(0.99, 0.99), Scores(0.1, 0.1)  # made-up validation scores
    checked = cross_check([(recipe, 1, flattered), (recipe, SIGNAL, plain)], data, moments_of)
    assert [len(finalist.folds) for finalist in checked] == [4, 4]
    assert checked[1].mean > checked[0].mean + 0.2  # the planted width beats one column on every fold
    assert checked[0].val is flattered
    parts = fold_parts(data, 4, seed=0)
    for fitted_part, scored in parts:
        assert len(fitted_part) + len(scored) == len(data) and fitted_part.n_groups + scored.n_groups == data.n_groups
    assert sum(scored.n_groups for _, scored in parts) == data.n_groups


def spread(groups: int = 80, seed: int = 0) -> GroupedVectors:
    """Groups of 2-4 rows around centres spread evenly over every direction, with even noise:
    the input cosines are already as good as any linear map makes them."""
    rng = np.random.default_rng(seed)
    ids = np.repeat(np.arange(groups), rng.integers(2, 5, groups))
    rows = rng.normal(size=(groups, DIM))[ids] + 0.6 * rng.normal(size=(len(ids), DIM))
    return GroupedVectors(rows.astype(np.float32), ids)


def test_the_input_is_kept_when_no_recipe_beats_it_over_the_folds() -> None:
    train, val, test = split_groups(spread(), (0.6, 0.2, 0.2), seed=1)
    report = fit_projection(train, val, test)
    assert report.recipe == INPUT and report.dim == DIM
    given = next(finalist for finalist in report.checked if finalist.recipe == INPUT)
    blended = [finalist for finalist in report.checked if finalist.recipe.finished]
    fitted = [finalist for finalist in report.checked if finalist is not given and finalist not in blended]
    assert max(finalist.mean for finalist in fitted) < given.mean - 0.003
    assert len(blended) == len(BLEND_WEIGHTS) and max(finalist.mean for finalist in blended) <= given.mean
    projected = unit_rows(test.vectors @ report.projection.matrix)
    plain = unit_rows(test.vectors)
    np.testing.assert_allclose(projected @ projected.T, plain @ plain.T, atol=1e-5)
    assert report.scores["test"].map_at_k == pytest.approx(report.baseline["test"].map_at_k, abs=1e-6)
    fixed = fit_projection(train, val, dim=DIM // 2)  # a fixed narrower width has no input to keep
    assert all(finalist.recipe != INPUT for finalist in fixed.checked)
    gridded = fit_projection(train, val, grid=[INPUT, Recipe.of(("rayleigh", {"ridge": 1}))])
    assert [(f.recipe, f.width) for f in gridded.checked].count((INPUT, DIM)) == 1


def test_the_blends_at_the_ends_score_as_the_input_and_the_best_finalist(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(crosscheck, "BLEND_WEIGHTS", (0.0, 1.0))
    train, val, _ = split_groups(planted(200)[0], (0.6, 0.2, 0.2), seed=1)
    report = fit_projection(train, val, grid=[Recipe.of(("rayleigh", {"ridge": 0.1}))])
    given = next(finalist for finalist in report.checked if finalist.recipe == INPUT)
    best = max((f for f in report.checked if f.recipe != INPUT and not f.recipe.finished), key=lambda f: f.mean)
    none_of_it, all_of_it = report.checked[-2:]
    assert best.width < DIM and all_of_it.width == DIM  # a blend is full width even of a narrower finalist
    np.testing.assert_allclose(none_of_it.folds, given.folds, atol=1e-9)  # the same folds, the input's cosines
    np.testing.assert_allclose(all_of_it.folds, best.folds, atol=1e-9)  # the same folds, the finalist's cosines
    assert all_of_it.val.map_at_k == pytest.approx(best.val.map_at_k, abs=1e-9)  # validation: train statistics
    assert none_of_it.val.map_at_k == pytest.approx(report.scan.baseline.map_at_k, abs=1e-9)


def test_blends_are_not_searched_nor_blended_again() -> None:
    train, val, _ = split_groups(planted(60)[0], (0.6, 0.2, 0.2), seed=1)
    recipe = Recipe.of(("rayleigh", {"ridge": 1}))
    finished = recipe.then("input_blend", {"weight": 0.5, "width": SIGNAL})
    with pytest.raises(ValueError, match="leave input_blend out of the grid"):
        fit_projection(train, val, grid=[recipe, finished])
    assert crosscheck.blends(crosscheck.Finalist(finished, DIM, Scores(0.5, 0.5), (0.5,))) == []
    assert len(crosscheck.blends(crosscheck.Finalist(recipe, SIGNAL, Scores(0.5, 0.5), (0.5,)))) == 3


def test_a_blend_that_fails_is_left_out(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    def broken(w: np.ndarray, moments: Moments, **params: float) -> np.ndarray:
        raise ValueError("no blend here")

    monkeypatch.setitem(methods.AFTER_START, "input_blend", broken)
    train, val, _ = split_groups(planted(120)[0], (0.6, 0.2, 0.2), seed=1)
    report = fit_projection(train, val)
    assert len(report.checked) == 6 and not any(finalist.recipe.finished for finalist in report.checked)
    assert "no blend here" in caplog.text


def test_the_input_wins_a_tie_over_the_folds() -> None:
    rng = np.random.default_rng(0)
    ids = np.repeat(np.arange(40), 3)
    tight = rng.normal(size=(40, DIM))[ids] + 1e-3 * rng.normal(size=(len(ids), DIM))  # every ranking is perfect
    train, val, _ = split_groups(GroupedVectors(tight.astype(np.float32), ids), (0.6, 0.2, 0.2), seed=1)
    report = fit_projection(train, val)
    assert len({finalist.mean for finalist in report.checked}) == 1 and len(report.checked) > 1
    assert report.recipe == INPUT and report.dim == DIM


def test_cross_check_needs_a_positive_pair_in_every_fold() -> None:
    data, _ = planted(3)
    assert cross_check([(Recipe.of(("rayleigh", {"ridge": 0.1})), SIGNAL, Scores(0.5, 0.5))], data, moments_of) == []
    with pytest.raises(ValueError, match="folds must be an integer"):
        cross_check([], data, moments_of, folds=1)


@pytest.fixture(scope="module")
def fitted() -> Projection:
    data, _ = planted(100)
    return fit(data.vectors, groups=dict(enumerate(data.groups.tolist())), split=(0.8, 0.2)).projection


def test_transform_file_linear_layer_and_apply_agree(fitted: Projection, tmp_path) -> None:
    x = np.random.default_rng(0).normal(size=(7, DIM)).astype(np.float32)
    expected = unit_rows((x.astype(np.float64) @ fitted.matrix).astype(np.float32))
    path = fitted.save(tmp_path / "p.safetensors")
    np.testing.assert_allclose(lightembed.load_transform(path).apply(x), expected, atol=1e-5)
    np.testing.assert_allclose(fitted.apply(x), expected, atol=1e-5)
    linear = fitted.to_linear(3)
    np.testing.assert_allclose(linear(torch.from_numpy(x)).detach().numpy(), x @ fitted.matrix[:, :3], atol=1e-5)
    back = Projection.load(path)
    np.testing.assert_array_equal(back.matrix, fitted.matrix)
    assert back.recipe == fitted.recipe and back.info["train_rows"] == fitted.info["train_rows"]
    with pytest.raises(ValueError, match="dim must be"):
        fitted.save(tmp_path / "q.safetensors", dim=fitted.out_dim + 1)


@pytest.mark.parametrize("dtype, tolerance", [("float32", 1e-5), ("int8", 3e-2)])
def test_baked_model_embeds_the_projected_vectors(tiny_dir, tmp_path, dtype: str, tolerance: float) -> None:
    base = lightembed.load(tiny_dir)
    texts = ["the cat sat on the mat", "a dog ran in the park", "music song play guitar", "", "red car"]
    w = np.random.default_rng(3).normal(size=(base.dim, 5)).astype(np.float32)
    folder = Projection(w).bake(tiny_dir, tmp_path / "baked", dtype=dtype)
    baked = lightembed.load(folder)
    expected = Projection(w).apply(base.embed(texts))
    np.testing.assert_allclose(baked.embed(texts), expected, atol=tolerance)
    assert baked.dim == 5 and baked.config.provenance["method"] == "project"
    assert "# Projected lightembed model" in (folder / "README.md").read_text()
    np.testing.assert_allclose(
        lightembed.load(folder, dim=2).embed(texts), unit_rows(expected[:, :2]), atol=tolerance * 2
    )
    twice = lightembed.load(
        Projection(np.eye(5, 3, dtype=np.float32)).bake(folder, tmp_path / "twice", dtype="float32")
    )
    np.testing.assert_allclose(twice.embed(texts), unit_rows(expected[:, :3]), atol=tolerance * 2)


def test_bake_refuses_a_wrong_width_and_a_non_linear_model(tiny_dir, tmp_path) -> None:
    from tiny import tiny_codebook, tiny_tokenizer

    from lightembed.config import AdaptorConfig, ModelConfig

    with pytest.raises(ValueError, match="takes 7-dim vectors"):
        Projection(np.ones((7, 2), dtype=np.float32)).bake(tiny_dir, tmp_path / "x")
    table = tiny_codebook(16)
    config = ModelConfig(dim=16, vocab_size=len(table), adaptor=AdaptorConfig(layers=1))
    adaptor = {"adaptor.0.weight": np.eye(16, dtype=np.float32), "adaptor.0.bias": np.zeros(16, dtype=np.float32)}
    folder = lightembed.write_model(tmp_path / "adapted", config, table, tiny_tokenizer(), adaptor)
    with pytest.raises(ValueError, match="adaptor"):
        Projection(np.eye(16, dtype=np.float32)).bake(folder, tmp_path / "y")


def test_bake_drops_the_base_models_reranker(tmp_path) -> None:
    import json

    from test_reranker import random_scorer
    from tiny import write_tiny_model

    from lightembed.reranker import save_reranker

    folder = write_tiny_model(tmp_path / "model")
    save_reranker(folder / "reranker.safetensors", random_scorer(), 16)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "reranker": True}))
    assert lightembed.load(folder).parts.reranker is not None
    baked = lightembed.load(Projection(np.eye(16, 4, dtype=np.float32)).bake(folder, tmp_path / "baked"))
    assert baked.parts.reranker is None and not baked.config.reranker
    dropped = baked.config.provenance["dropped"]
    assert "reranker" in dropped and "binary" not in dropped  # only what the base had


def test_bake_drops_the_base_models_binary_codebook(tmp_path) -> None:
    from tiny import tiny_codebook, tiny_tokenizer

    from lightembed.config import ModelConfig

    table = tiny_codebook()
    config = ModelConfig(dim=16, vocab_size=len(table), ignore_token_ids=(0, 1), binary_codebook=True)
    folder = lightembed.write_model(
        tmp_path / "model", config, table.astype(np.float16), tiny_tokenizer(), {"binary_embeddings": -table}
    )
    baked = lightembed.load(Projection(np.eye(16, 4, dtype=np.float32)).bake(folder, tmp_path / "baked"))
    assert baked.parts.binary_embeddings is None and not baked.config.binary_codebook
    dropped = baked.config.provenance["dropped"]
    assert "binary codebook" in dropped and "reranker" not in dropped


def test_bake_never_writes_over_another_kind_of_folder(tmp_path) -> None:
    from tiny import write_tiny_model

    folder = write_tiny_model(tmp_path / "model")
    other = tmp_path / "hf-model"
    other.mkdir()
    (other / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(ValueError, match="exists and is not a lightembed model folder"):
        Projection(np.eye(16, 4, dtype=np.float32)).bake(folder, other)
    assert (other / "config.json").read_text() == '{"model_type": "bert"}' and len(list(other.iterdir())) == 1


# --------------------------------------------------------------------------- command lines
def run_train_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    from lightembed_train.cli import main

    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_project_cli_on_embeddings_writes_a_transform_file(tmp_path, capsys) -> None:
    data, _ = planted(90)
    np.save(tmp_path / "x.npy", data.vectors)
    (tmp_path / "ids.txt").write_text("".join(f"q{i}\n" for i in range(len(data))))
    (tmp_path / "groups.tsv").write_text("".join(f"q{i}\tg{g}\n" for i, g in enumerate(data.groups)))
    out = tmp_path / "proj.safetensors"
    code, stdout, err = run_train_cli(
        capsys,
        "-q",
        "project",
        "--embeddings",
        str(tmp_path / "x.npy"),
        "--ids",
        str(tmp_path / "ids.txt"),
        "--groups",
        str(tmp_path / "groups.tsv"),
        "--out",
        str(out),
        "--report",
        str(tmp_path / "r.json"),
    )
    assert code == 0, err
    assert stdout.startswith("best: ") and "| test |" in stdout and f"transform file: {out}" in stdout
    transform = lightembed.load_transform(out)
    assert transform.in_dim == DIM and transform.normalize
    import json

    from safetensors import safe_open

    with safe_open(str(out), framework="numpy") as handle:
        info = json.loads(handle.metadata()["lightembed_train.projection"])["info"]
    assert [f["option"] for f in info["input_files"]] == ["--embeddings", "--ids", "--groups"]
    assert info["input_files"][2]["lines"] == len(data) and len(info["input_files"][2]["sha256"]) == 64
    even = spread()
    np.save(tmp_path / "spread.npy", even.vectors)
    (tmp_path / "spread.tsv").write_text("".join(f"{i}\tg{g}\n" for i, g in enumerate(even.groups)))
    code, stdout, err = run_train_cli(
        capsys, "-q", "project", "--embeddings", str(tmp_path / "spread.npy"), "--groups", str(tmp_path / "spread.tsv"),
        "--out", str(tmp_path / "spread.safetensors"),
    )  # fmt: skip
    assert code == 0, err
    assert stdout.startswith("best: the input vectors (40 recipes tried, none better over the folds)")
    assert lightembed.load_transform(tmp_path / "spread.safetensors").out_dim == DIM

    from lightembed.cli import main as runtime_main

    assert (
        runtime_main(["transform", str(out), str(tmp_path / "x.npy"), "-o", str(tmp_path / "y.npy"), "--dim", "2"]) == 0
    )
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), transform.apply(data.vectors, dim=2), atol=1e-6)
    assert runtime_main(["transform", str(out), str(tmp_path / "groups.tsv"), "-o", str(tmp_path / "z.npy")]) == 2
    assert "not a .npy file" in capsys.readouterr().err


def test_project_cli_on_a_model_bakes_a_model_folder(tiny_dir, tmp_path, capsys) -> None:
    words = ["cat", "dog", "bird", "car", "music", "tree", "road", "piano"]
    lines = []
    for i, word in enumerate(words * 3):  # pairs of texts about the same word, as Quora-style labelled lines
        lines.append(f"the {word} sat on the mat\ta {word} ran in the park\t1\n")
        lines.append(f"the {word} flew over the {words[(i + 1) % 8]}\tred green blue\t0\n")
    lines.append("the cat sat\tthe cat sat\t1\n")  # a text paired with itself: skipped
    (tmp_path / "pairs.tsv").write_text("".join(lines))
    code, stdout, err = run_train_cli(
        capsys,
        "-q",
        "project",
        "--model",
        str(tiny_dir),
        "--pairs",
        str(tmp_path / "pairs.tsv"),
        "--out",
        str(tmp_path / "model"),
        "--split",
        "0.5,0.5",
        "--dim",
        "4",
        "--dtype",
        "float32",
        "--transform",
        str(tmp_path / "p.safetensors"),
    )
    assert code == 0, err
    baked = lightembed.load(tmp_path / "model")
    transform = lightembed.load_transform(tmp_path / "p.safetensors")
    texts = ["the cat sat on the mat", "a dog ran"]
    np.testing.assert_allclose(baked.embed(texts), transform.apply(lightembed.load(tiny_dir).embed(texts)), atol=1e-5)
    assert baked.dim == 4 and "lightembed-train project" in (tmp_path / "model" / "README.md").read_text()
    assert f"model folder: {tmp_path / 'model'}" in stdout and "at 4 of 16 dims" in stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["--groups", "G"], "give either --model"),
        (["--embeddings", "X", "--groups", "G", "--pairs", "G"], "give either --groups"),
        (["--embeddings", "X", "--groups", "missing.tsv"], "groups file not found"),
        (["--embeddings", "X", "--groups", "G", "--split", "a,b"], "--split must be"),
        (["--embeddings", "X", "--groups", "BAD"], "expected 2 tab-separated fields"),
        (["--embeddings", "X", "--groups", "LONELY"], "single item"),
        (["--embeddings", "X", "--groups", "G", "--folds", "1"], "folds must be 0"),
        (["--embeddings", "X", "--groups", "G", "--dtype", "int8"], "--dtype goes with --model"),
        (["--embeddings", "X", "--groups", "G", "--transform", "T"], "--transform goes with --model"),
    ],
)
def test_project_cli_bad_input(tmp_path, capsys, args: list[str], message: str) -> None:
    np.save(tmp_path / "x.npy", np.eye(4, dtype=np.float32))
    (tmp_path / "g.tsv").write_text("0\ta\n1\ta\n2\tb\n3\tb\n")
    (tmp_path / "bad.tsv").write_text("0\ta\n1\n")
    (tmp_path / "lonely.tsv").write_text("0\ta\n1\ta\n2\tb\n3\tc\n")
    files = {"X": "x.npy", "G": "g.tsv", "BAD": "bad.tsv", "LONELY": "lonely.tsv", "T": "t.safetensors"}
    argv = [str(tmp_path / files[a]) if a in files else a for a in args]
    code, stdout, err = run_train_cli(capsys, "-q", "project", *argv, "--out", str(tmp_path / "o.safetensors"))
    assert code == 2 and stdout == ""
    assert err.startswith("lightembed-train: error: ") and message in err, err


def test_encoder_spec_with_a_transform_file(tiny_dir, fitted: Projection, tmp_path) -> None:
    from lightembed_train.evaluate import encoder_from_spec

    path = Projection(np.eye(16, 6, dtype=np.float32)).save(tmp_path / "cut.safetensors")
    encoder = encoder_from_spec(f"{tiny_dir}+{path}", tmp_path)
    plain = encoder_from_spec(str(tiny_dir), tmp_path)
    texts = ["the cat sat", "a dog ran in the park"]
    np.testing.assert_allclose(encoder.encode(texts), unit_rows(plain.encode(texts)[:, :6]), atol=1e-6)
    assert encoder.fingerprint != plain.fingerprint and encoder.name.endswith("+ cut")


def test_scorer_reuses_scores_of_equivalent_projections() -> None:
    """Full-width Rayleigh is whitening whatever the numerator: W W^T = (T + ridge)^-1."""
    data, _ = planted(60)
    m = Moments(group_stats(data))
    scorer = RetrievalScorer(data.vectors, data.groups)
    a = solve(Recipe.of(("split_rank", {"frac_cross": 0.3, "frac_total": 1.0, "ridge": 0.5})), m)
    b = solve(Recipe.of(("split_rank", {"frac_cross": 1.0, "frac_total": 1.0, "ridge": 0.5})), m)
    first = scorer.score(a, [4, DIM])
    assert len(scorer._seen) == 2
    second = scorer.score(b, [4, DIM])
    assert len(scorer._seen) == 3  # the 4-wide prefixes differ, the full widths do not
    assert second[DIM] == first[DIM]
    rotated = a @ np.linalg.qr(np.random.default_rng(0).normal(size=(DIM, DIM)))[0]
    assert scorer.score(rotated, [DIM])[DIM] == first[DIM] and len(scorer._seen) == 3


def test_transformed_encoder_embeds_through_the_inner_cache(tiny_dir, tmp_path) -> None:
    from lightembed_train.evaluate import EmbeddingCache, embed_task, encoder_from_spec
    from lightembed_train.evaluation.duplicates import DuplicateGroupsTask

    path = Projection(np.eye(16, 6, dtype=np.float32)).save(tmp_path / "cut.safetensors")
    task = DuplicateGroupsTask("tiny groups", [["the cat sat", "a cat sat"], ["a dog ran", "the dog ran"]])
    cache = EmbeddingCache(tmp_path / "cache")
    plain = embed_task(encoder_from_spec(str(tiny_dir), tmp_path), task, cache)
    transformed = embed_task(encoder_from_spec(f"{tiny_dir}+{path}", tmp_path), task, cache)
    assert transformed.cached and len(list((tmp_path / "cache").iterdir())) == 1
    np.testing.assert_allclose(transformed.vectors, unit_rows(plain.vectors[:, :6]), atol=1e-6)


def test_schedule_copes_when_every_family_failed() -> None:
    grid = fast_grid()[:3] + full_grid()[-3:]
    schedule = Schedule(grid, seed=0)
    tried = []
    for recipe in schedule:
        tried.append(recipe)
        schedule.report(recipe, -np.inf)
    assert sorted(map(str, tried)) == sorted(map(str, grid))


def test_per_query_scores_average_to_the_scores() -> None:
    data, _ = planted(50, seed=6)
    scorer = RetrievalScorer(data.vectors, data.groups, block=17)
    w = np.random.default_rng(1).normal(size=(DIM, 5))
    ap, hit = scorer.per_query(w)
    scores = scorer.score(w, [5])[5]
    assert len(ap) == len(scorer.query_rows) == len(data)
    assert ap.mean() == pytest.approx(scores.map_at_k) and hit.mean() == pytest.approx(scores.recall_at_1)


def test_asym_rayleigh_gives_both_sides_equal_variance() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4000, 12))
    y = 0.6 * x + 0.3 * rng.standard_normal((4000, 12))
    y[:, :6] *= 3.0  # the y side varies more
    vectors = np.concatenate([x, y]).astype(np.float32)
    pairs = np.stack([np.arange(4000), np.arange(4000) + 4000], axis=1)
    moments = Moments(pair_stats(vectors, pairs, symmetric=False))
    w = asym_rayleigh(moments, ridge=0.1)
    assert np.trace(w.T @ moments.sxx @ w) / np.trace(w.T @ moments.syy @ w) == pytest.approx(1.0, abs=1e-6)
    symmetric = Moments(pair_stats(vectors, pairs))  # equal sides already: plain Rayleigh with the same ridge
    np.testing.assert_allclose(asym_rayleigh(symmetric, ridge=0.1), rayleigh_with_trace_ridge(symmetric, 0.1))


def rayleigh_with_trace_ridge(moments: Moments, ridge: float) -> np.ndarray:
    """The generalised eigenvectors of C against Sxx + Syy plus `ridge` times their mean diagonal."""
    total = moments.sxx + moments.syy
    return scipy.linalg.eigh(moments.cross, total + ridge * np.trace(total) / len(total) * np.eye(len(total)))[1][
        :, ::-1
    ]


@pytest.mark.parametrize("scale", [0.5, 2.0, 1.1])
def test_asym_rayleigh_keeps_gamma_one_when_no_gamma_balances_the_sides(scale: float) -> None:
    """One side a multiple of the other: every gamma gives the same variance ratio, so none balances them."""
    y = np.random.default_rng(1).standard_normal((2000, 6))
    vectors = np.concatenate([scale * y, y]).astype(np.float32)
    pairs = np.stack([np.arange(2000), np.arange(2000) + 2000], axis=1)
    moments = Moments(pair_stats(vectors, pairs, symmetric=False))
    np.testing.assert_allclose(asym_rayleigh(moments, ridge=0.1), rayleigh_with_trace_ridge(moments, 0.1), atol=1e-8)
