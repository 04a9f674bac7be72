"""Deduplication at scale: the partitioned and ANN searches, the greedy rule over pairs, resumable jobs, Parquet."""

from __future__ import annotations

import builtins
import io
import json
import os
import re
import threading
from pathlib import Path

import numpy as np
import pytest
from tiny import WORDS, write_tiny_model

import lightembed
from lightembed import ann as ann_module
from lightembed import dedup as dedup_module
from lightembed import jobs, parquetio, textio
from lightembed import pairs as pairs_module
from lightembed import partition as partition_module
from lightembed.cli import main
from lightembed.dedup import (
    SearchOptions,
    deduplicate_vectors,
    first_copies,
    first_copies_of_hashes,
    greedy_from_pairs,
    greedy_matches,
    text_hashes,
)
from lightembed.pairs import DECIDE, Pairs, Sweep, bounded_pairs, sweep, wanted_pairs
from lightembed.partition import (
    cluster_groups,
    fit_partitioning,
    nearest_clusters,
    partitioned_pairs,
    plan_clusters,
    sample_rows,
    sample_size,
    search_clusters,
)
from lightembed.scoring import SCORE_TOLERANCE, comparable_rows, unit_rows


def clustered_vectors(n_bases: int = 400, n_copies: int = 300, dim: int = 32, noise: float = 0.2, seed: int = 0):
    """Random unit vectors plus noisy copies of some of them, shuffled; returns (vectors, [(copy, base)])."""
    rng = np.random.default_rng(seed)
    bases = rng.standard_normal((n_bases, dim)).astype(np.float32)
    of = rng.integers(0, n_bases, n_copies)
    copies = bases[of] + noise * rng.standard_normal((n_copies, dim)).astype(np.float32)
    order = rng.permutation(n_bases + n_copies)
    position = np.argsort(order)
    planted = [(int(position[n_bases + k]), int(position[of[k]])) for k in range(n_copies)]
    return unit_rows(np.concatenate([bases, copies])[order]), planted


def brute_force_pairs(vectors: np.ndarray, threshold: float) -> Pairs:
    sims = vectors @ vectors.T
    later, earlier = np.nonzero(np.tril(sims >= threshold, k=-1))
    return Pairs(later, earlier, sims[later, earlier])


def same_result(a: lightembed.DedupResult, b: lightembed.DedupResult) -> bool:
    return all(
        np.array_equal(getattr(a, name), getattr(b, name)) for name in ("kept", "removed", "duplicate_of", "exact")
    )


# --------------------------------------------------------------------- the greedy rule over pairs
@pytest.mark.parametrize("threshold", [0.6, 0.8, 0.9])
def test_greedy_over_all_pairs_equals_the_blocked_exact_pass(threshold: float) -> None:
    vectors, _ = clustered_vectors(noise=0.5)
    expected_match, expected_score = greedy_matches(vectors, threshold, block_size=64)
    match, score = greedy_from_pairs(len(vectors), brute_force_pairs(vectors, threshold))
    assert (expected_match >= 0).sum() > 50
    np.testing.assert_array_equal(match, expected_match)
    np.testing.assert_allclose(score, expected_score, atol=1e-6)


def test_greedy_over_pairs_is_not_transitive_and_walks_long_chains() -> None:
    # A chain 0~1~2~...: each item is similar only to the one before; the greedy rule keeps every other one.
    n = 301
    chain = Pairs(np.arange(1, n), np.arange(n - 1), np.full(n - 1, 0.95, dtype=np.float32))
    match, _ = greedy_from_pairs(n, chain)
    np.testing.assert_array_equal(match[1::2], np.arange(0, n - 1, 2))
    assert (match[::2] == -1).all()
    walked, _ = greedy_from_pairs(n, chain, rounds=2)  # most of it decided row by row
    np.testing.assert_array_equal(walked, match)


def test_greedy_names_the_most_similar_kept_item_lower_index_on_ties() -> None:
    pairs = Pairs(np.array([3, 3, 3]), np.array([0, 1, 2]), np.array([0.91, 0.95, 0.95], dtype=np.float32))
    match, score = greedy_from_pairs(4, pairs)
    assert match.tolist() == [-1, -1, -1, 1] and score[3] == pytest.approx(0.95)


def test_pairs_concat_keeps_each_pair_once_with_its_best_score() -> None:
    a = Pairs(np.array([5, 2]), np.array([1, 0]), np.array([0.9, 0.95], dtype=np.float32))
    b = Pairs(np.array([5]), np.array([1]), np.array([0.92], dtype=np.float32))
    merged = Pairs.concat([a, b])
    assert merged.later.tolist() == [2, 5] and merged.earlier.tolist() == [0, 1]
    assert merged.score.tolist() == pytest.approx([0.95, 0.92])


# --------------------------------------------------------------------- pair lists bounded by search passes
def near_copy_vectors(seed: int = 0) -> np.ndarray:
    """Clustered vectors, a tight group of 300 near-copies (about G²/2 pairs) and a loose group of 300 that chains."""
    rng = np.random.default_rng(seed)
    vectors, _ = clustered_vectors(noise=0.4, seed=seed)
    groups = []
    for noise in (0.05, 0.35):
        base = rng.standard_normal(vectors.shape[1]).astype(np.float32)
        groups.append(base + noise * rng.standard_normal((300, vectors.shape[1])).astype(np.float32))
    every = unit_rows(np.concatenate([vectors, *groups]))
    return every[rng.permutation(len(every))]


def shuffled_passes(pairs: Pairs, seed: int):
    """A `run_pass` that finds `pairs` in 40 shuffled parts, in one sweep, counting its calls."""
    calls = []

    def run_pass(number: int, status: np.ndarray, budget: int | None) -> list[Sweep]:
        calls.append(budget)
        order = np.random.default_rng(seed + number).permutation(len(pairs.later))
        parts = (pairs.where(rows) for rows in np.array_split(order, 40))
        return [sweep(parts, status, budget)]

    return run_pass, calls


def test_the_pair_budget_is_2m_pairs_or_4_per_row() -> None:
    assert pairs_module.pair_budget(1000) == pairs_module.pair_budget(524_288) == 1 << 21
    assert pairs_module.pair_budget(3_000_000) == 12_000_000


@pytest.mark.parametrize("threshold", [0.8, 0.9])
def test_bounded_pairs_give_the_greedy_result_of_every_pair(threshold: float) -> None:
    vectors = near_copy_vectors()
    every = brute_force_pairs(vectors, threshold)
    expected_match, expected_score = greedy_from_pairs(len(vectors), every)
    run_pass, calls = shuffled_passes(every, seed=1)
    kept = bounded_pairs(run_pass, len(vectors), budget=2000)
    match, score = greedy_from_pairs(len(vectors), kept)
    np.testing.assert_array_equal(match, expected_match)
    np.testing.assert_array_equal(score, expected_score)
    assert len(every.later) > 40_000 and len(kept.later) <= 2000 and len(calls) >= 2


def test_bounded_pairs_keep_every_pair_within_the_budget_in_one_pass() -> None:
    vectors, _ = clustered_vectors(noise=0.4)
    every = brute_force_pairs(vectors, 0.85)
    run_pass, calls = shuffled_passes(every, seed=2)
    kept = bounded_pairs(run_pass, len(vectors), budget=len(every.later))
    assert calls == [len(every.later)] and len(kept.later) == len(every.later)


def test_bounded_pairs_keep_what_is_left_after_the_last_pass() -> None:
    vectors = near_copy_vectors()
    every = brute_force_pairs(vectors, 0.8)
    run_pass, calls = shuffled_passes(every, seed=3)
    kept = bounded_pairs(run_pass, len(vectors), budget=10, max_passes=2)
    assert calls == [10, None] and 10 < len(kept.later) < len(every.later)
    np.testing.assert_array_equal(greedy_from_pairs(len(vectors), kept)[0], greedy_from_pairs(len(vectors), every)[0])


def test_bounded_pairs_decide_every_row_then_hold_only_the_pairs_to_kept_rows() -> None:
    # Rows 0-9 are kept (no earlier neighbour); rows 10-109 each have all ten as equally similar neighbours.
    later, earlier = np.repeat(np.arange(10, 110), 10), np.tile(np.arange(10), 100)
    every = Pairs(later, earlier, np.full(1000, 0.9, dtype=np.float32))
    run_pass, calls = shuffled_passes(every, seed=6)
    kept = bounded_pairs(run_pass, 110, budget=100)
    assert calls == [100, DECIDE, None] and len(kept.later) == 1000  # ties with the best kept row stay


def test_a_pair_at_the_threshold_that_the_last_pass_misses_keeps_the_passes_decisions() -> None:
    # (1, 0) sits at the threshold: the deciding passes find it, the last pass, scoring it in other
    # blocks, does not. Row 1 stays removed, so row 2 (near row 1 only) stays kept: the greedy
    # result of the pairs with (1, 0). Without the removal pairs rows 1 and 2 would both be kept.
    at_threshold = Pairs(np.array([1]), np.array([0]), np.array([0.9], dtype=np.float32))
    clear = Pairs(np.array([2]), np.array([1]), np.array([0.95], dtype=np.float32))
    calls = []

    def run_pass(number: int, status: np.ndarray, budget: int | None) -> list[Sweep]:
        calls.append(budget)
        found = [at_threshold, clear] if budget is not None else [clear]
        wanted = wanted_pairs(status, budget)
        found = [p.where(wanted.of(p.later)[0] & wanted.of(p.earlier)[1]) for p in found]
        return [sweep(found, status, budget)]

    kept = bounded_pairs(run_pass, 3, budget=1)
    assert calls == [1, DECIDE, None]
    match, _ = greedy_from_pairs(3, kept)
    assert match.tolist() == [-1, 0, -1]


def test_a_group_of_near_copies_keeps_one_pair_per_copy_in_the_partitioned_search(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = np.random.default_rng(4)
    copies = unit_rows(1 + 0.01 * rng.standard_normal((2000, 16)).astype(np.float32))
    assert len(brute_force_pairs(copies, 0.95).later) == 2000 * 1999 // 2
    monkeypatch.setattr(pairs_module, "pair_budget", lambda n: 5000)
    found = partitioned_pairs(copies, 0.95, n_clusters=4)
    assert found.earlier.tolist() == [0] * 1999 and found.later.tolist() == list(range(1, 2000))
    result = deduplicate_vectors(copies, 0.95, search=SearchOptions(mode="partitioned", clusters=4))
    assert result.kept.tolist() == [0] and (result.duplicate_of == 0).all()


@pytest.mark.parametrize("entries", [1 << 22, 500])
def test_a_pass_finds_exactly_the_pairs_it_wants(entries: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(partition_module, "SEARCH_ENTRIES", entries)  # 500: a few rows per block
    vectors = near_copy_vectors(seed=7)
    part = fit_partitioning(vectors[sample_rows(len(vectors), sample_size(8), 0)], 8)
    plan = plan_clusters(nearest_clusters(vectors, part, 3), part.n_clusters)
    every = Pairs.concat(search_clusters(vectors, plan, range(plan.n_clusters), 0.8, block_size=64))
    status = np.random.default_rng(7).integers(0, 3, len(vectors)).astype(np.int8)
    for budget in (DECIDE, None):
        wanted = wanted_pairs(status, budget)
        found = Pairs.concat(search_clusters(vectors, plan, range(plan.n_clusters), 0.8, wanted=wanted, block_size=64))
        expected = every.where(wanted.later[every.later] & wanted.earlier[every.earlier])
        assert len(expected.later) > 1000
        np.testing.assert_array_equal(found.later, expected.later)
        np.testing.assert_array_equal(found.earlier, expected.earlier)


@pytest.mark.parametrize("mode", ["partitioned", "ann"])
def test_a_small_pair_budget_gives_the_same_dedup(mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if mode == "ann":  # built on one thread, the index is the same in both runs
        index = pytest.importorskip("usearch.index")
        add = index.Index.add
        monkeypatch.setattr(index.Index, "add", lambda self, *args, **kwargs: add(self, *args, **kwargs, threads=1))
    vectors = near_copy_vectors(seed=5)
    search = SearchOptions(mode=mode, clusters=8)
    whole = deduplicate_vectors(vectors, 0.8, search=search)
    found = {}

    def counting(*args, **kwargs):
        found["pairs"] = real(*args, **kwargs)
        return found["pairs"]

    real = ann_module.ann_pairs if mode == "ann" else dedup_module.partitioned_pairs
    monkeypatch.setattr(pairs_module, "pair_budget", lambda n: 3000)
    monkeypatch.setattr(ann_module if mode == "ann" else dedup_module, f"{mode}_pairs", counting)
    bounded = deduplicate_vectors(vectors, 0.8, search=search)
    assert len(whole.removed) > 500 and same_result(whole, bounded)
    np.testing.assert_allclose(whole.scores, bounded.scores, atol=1e-6)  # some found in other blocks: other rounding
    assert len(found["pairs"].later) <= 3000


# --------------------------------------------------------------------- the partitioned search
@pytest.mark.parametrize("clusters", [1, 6, 24])
def test_partitioned_equals_exact_when_every_cluster_is_probed(clusters: int) -> None:
    vectors, _ = clustered_vectors(noise=0.4)
    exact = deduplicate_vectors(vectors, 0.85, search=SearchOptions(mode="exact"))
    probed = deduplicate_vectors(
        vectors, 0.85, search=SearchOptions(mode="partitioned", clusters=clusters, probes=clusters)
    )
    assert probed.mode == "partitioned" and exact.mode == "exact"
    assert len(exact.removed) > 100 and same_result(exact, probed)
    np.testing.assert_allclose(probed.scores, exact.scores, atol=1e-6)


def test_probes_covering_the_clusters_asked_for_cover_a_fit_that_made_more() -> None:
    vectors, _ = clustered_vectors(noise=0.4)
    more = [k for k in range(8, 40) if fit_partitioning(vectors[sample_rows(700, sample_size(k), 0)], k).n_clusters > k]
    assert len(more) >= 2  # the fit rounds each coarse cluster's share: some counts come out higher
    for k in more[-2:]:
        found = partitioned_pairs(vectors, 0.0, n_clusters=k, probes=k)
        expected = brute_force_pairs(vectors, -SCORE_TOLERANCE)  # a score this close below counts as reaching it
        assert len(found.later) == len(expected.later) > 100_000


def test_partitioned_pairs_are_all_pairs_when_every_cluster_is_probed() -> None:
    vectors, _ = clustered_vectors(noise=0.4)
    found = partitioned_pairs(vectors, 0.8, n_clusters=10, probes=10)
    expected = brute_force_pairs(vectors, 0.8)
    assert set(zip(found.later.tolist(), found.earlier.tolist())) == set(
        zip(expected.later.tolist(), expected.earlier.tolist())
    )


def test_partitioned_finds_planted_duplicates_with_default_probes() -> None:
    vectors, planted = clustered_vectors(n_bases=3000, n_copies=1000, dim=48, noise=0.25, seed=1)
    exact = deduplicate_vectors(vectors, 0.9, search=SearchOptions(mode="exact"))
    part = deduplicate_vectors(vectors, 0.9, search=SearchOptions(mode="partitioned", clusters=40))

    def found(result: lightembed.DedupResult) -> int:
        removed = set(result.removed.tolist())
        return sum(c in removed or o in removed for c, o in planted)

    assert found(exact) > 900
    assert found(part) >= 0.99 * found(exact)


def test_partitioned_binary_codes_equal_exact_when_every_cluster_is_probed() -> None:
    vectors, _ = clustered_vectors(noise=0.3, dim=64)
    codes = np.packbits(vectors > 0, axis=1)
    exact = deduplicate_vectors(codes, 0.7, bits=64, search=SearchOptions(mode="exact"))
    part = deduplicate_vectors(codes, 0.7, bits=64, search=SearchOptions(mode="partitioned", clusters=5, probes=5))
    assert len(exact.removed) > 50 and same_result(exact, part)


def test_auto_mode_picks_exact_for_small_inputs_and_partitioned_above_the_limit() -> None:
    assert SearchOptions().resolved(1000) == "exact"
    assert SearchOptions().resolved(10_000_000) == "partitioned"
    assert SearchOptions(mode="exact").resolved(10_000_000) == "exact"


def test_cluster_groups_cover_every_cluster_once() -> None:
    nearest = np.array([[0, 1], [1, 0], [2, -1], [2, 0], [4, 2]], dtype=np.int32)
    plan = plan_clusters(nearest, 5)
    assert plan.members(2).tolist() == [2, 3] and plan.queries(0).tolist() == [1, 3]
    groups = cluster_groups(plan, 3)
    assert [c for g in groups for c in g] == [0, 1, 2, 3, 4]


def test_model_deduplicate_takes_the_search_options(tiny: lightembed.LightEmbed) -> None:
    texts = [f"the {a} {b} sat on the mat" for a in WORDS[:12] for b in WORDS[12:24]]
    texts += texts[:30]
    exact = tiny.deduplicate(texts, 0.95, mode="exact")
    part = tiny.deduplicate(texts, 0.95, mode="partitioned", clusters=4, probes=4)
    assert same_result(exact, part) and part.mode == "partitioned"
    assert same_result(part.rethreshold(0.95), part)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"mode": "fast"}, "unknown dedup mode 'fast'"),
        ({"probes": 0}, "probes must be a positive integer"),
        ({"clusters": -3}, "clusters must be a positive integer"),
    ],
)
def test_bad_search_options_are_named(options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SearchOptions(**options)


# --------------------------------------------------------------------- the ANN search
def test_ann_mode_finds_the_exact_pairs_on_small_data() -> None:
    """The index is built on every core, so a run may rarely miss a pair (see `lightembed.ann`):
    every pair it reports is a true one with its exact score, and it finds nearly all of them."""
    pytest.importorskip("usearch")
    vectors, _ = clustered_vectors(noise=0.3)
    truth = brute_force_pairs(vectors, 0.85)
    expected = set(zip(truth.later.tolist(), truth.earlier.tolist()))
    found = ann_module.ann_pairs(vectors, 0.85)
    pairs = set(zip(found.later.tolist(), found.earlier.tolist()))
    assert len(expected) > 300 and pairs <= expected and len(pairs) >= 0.99 * len(expected)
    np.testing.assert_allclose(found.score, (vectors[found.later] * vectors[found.earlier]).sum(1), atol=1e-6)
    exact = deduplicate_vectors(vectors, 0.85, search=SearchOptions(mode="exact"))
    ann = deduplicate_vectors(vectors, 0.85, search=SearchOptions(mode="ann"))
    assert ann.mode == "ann" and len(set(ann.removed.tolist()) ^ set(exact.removed.tolist())) <= 4


def test_ann_mode_without_usearch_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def no_usearch(name: str, *args, **kwargs):
        if name.startswith("usearch"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_usearch)
    vectors, _ = clustered_vectors(n_bases=10, n_copies=5)
    with pytest.raises(ImportError, match=r"lightembed\[ann\]"):
        deduplicate_vectors(vectors, 0.9, search=SearchOptions(mode="ann"))


# --------------------------------------------------------------------- exact copies by hash
def test_hashes_find_the_same_first_copies_as_the_texts() -> None:
    texts = ["a", "b", "a", "", "b", "\ud800 lone surrogate", "", "a"]
    np.testing.assert_array_equal(first_copies_of_hashes(text_hashes(texts)), first_copies(texts))


def test_hashes_that_share_one_word_are_different() -> None:
    hashes = np.array([[1, 2], [1, 3], [1, 2], [4, 3]], dtype=np.uint64)
    assert first_copies_of_hashes(hashes).tolist() == [0, 1, 0, 3]


# --------------------------------------------------------------------- resumable jobs
def corpus_lines(n: int = 900, seed: int = 0) -> list[str]:
    """Random sentences of the tiny model's words, with exact copies and one-word-dropped near copies."""
    rng = np.random.default_rng(seed)
    lines = [" ".join(rng.choice(WORDS, rng.integers(5, 10))) for _ in range(n)]
    for k in range(0, n, 7):
        lines[k] = lines[rng.integers(0, n)]
    for k in range(3, n, 11):
        words = lines[rng.integers(0, n)].split()
        lines[k] = " ".join(words[:-1])
    return lines


@pytest.fixture()
def corpus_file(tmp_path: Path) -> Path:
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(corpus_lines()) + "\n", encoding="utf-8")
    return path


def run_cli(*args: str) -> int:
    return main([*args, "--no-progress"])


class Killed(BaseException):
    """Stands for the process being killed (it is not an Exception, so nothing catches it)."""


def kill_after(monkeypatch: pytest.MonkeyPatch, calls: int, match: str) -> None:
    """Make the `calls`-th atomic save of a file whose name contains `match` die before it is renamed."""
    real = jobs.save_array if match != "group" else jobs.save_arrays
    seen = {"n": 0}

    def dying(path: Path, *args, **kwargs):
        if match in path.name:
            seen["n"] += 1
            if seen["n"] == calls:
                raise Killed
        return real(path, *args, **kwargs)

    monkeypatch.setattr(jobs, "save_array" if match != "group" else "save_arrays", dying)


@pytest.mark.parametrize("stage", ["vectors", "group"])
def test_a_killed_dedup_resumes_to_the_same_output(
    stage: str, corpus_file: Path, tiny_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    common = ["--model", str(tiny_dir), "--threshold", "0.9", "--mode", "partitioned", "--chunk-size", "128"]
    assert run_cli("dedup", str(corpus_file), "-o", str(tmp_path / "whole.txt"), *common) == 0

    work, out, report = tmp_path / "work", tmp_path / "kept.txt", tmp_path / "report.jsonl"
    args = ["dedup", str(corpus_file), "-o", str(out), "--report", str(report), "--work-dir", str(work), *common]
    with monkeypatch.context() as patch:
        kill_after(patch, 3, stage)
        with pytest.raises(Killed):
            run_cli(*args)
    assert not out.exists() and not report.exists()  # nothing that looks finished
    assert not list(work.rglob("*.part"))  # no half-written state either
    done = len(list((work / "chunks").glob("vectors-*.npy")))
    assert done == (2 if stage == "vectors" else 8)
    assert run_cli(*args) == 0
    assert out.read_bytes() == (tmp_path / "whole.txt").read_bytes()
    rows = [json.loads(line) for line in report.read_text().splitlines()]
    lines = corpus_file.read_text().splitlines()
    assert len(rows) + len(out.read_text().splitlines()) == len(lines)
    assert all(lines[r["index"]] == r["text"] and lines[r["duplicate_of"]] == r["duplicate_text"] for r in rows)


def test_a_job_killed_in_a_second_search_pass_resumes_to_the_same_output(
    corpus_file: Path, tiny_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    common = ["--model", str(tiny_dir), "--threshold", "0.7", "--mode", "partitioned", "--chunk-size", "128"]
    assert run_cli("dedup", str(corpus_file), "-o", str(tmp_path / "whole.txt"), *common) == 0
    monkeypatch.setattr(pairs_module, "pair_budget", lambda n: 30)
    work, out = tmp_path / "work", tmp_path / "kept.txt"
    args = ["dedup", str(corpus_file), "-o", str(out), "--work-dir", str(work), *common]
    real = jobs.save_arrays

    def dying(path: Path, **arrays: np.ndarray) -> None:
        if path.parent.name == "pass-1" and path.name == "group-000001.npz":
            raise Killed
        real(path, **arrays)

    with monkeypatch.context() as patch:
        patch.setattr(jobs, "save_arrays", dying)
        with pytest.raises(Killed):
            run_cli(*args)
    assert [p.name for p in sorted((work / "pairs" / "pass-1").iterdir())] == ["group-000000.npz"]
    assert run_cli(*args) == 0
    assert out.read_bytes() == (tmp_path / "whole.txt").read_bytes()
    assert len(list((work / "pairs").iterdir())) >= 3  # over the budget: passes that decide, then the last


def test_a_work_folder_refuses_another_input_or_model(corpus_file: Path, tiny_dir: Path, tmp_path: Path) -> None:
    model = lightembed.load(tiny_dir)
    job = jobs.Job(tmp_path / "w", textio.InputSpec(str(corpus_file)), model, chunk_rows=256)
    job.embed()
    other = tmp_path / "other.txt"
    other.write_text("the cat\n")
    with pytest.raises(jobs.JobError, match="holds a job for another input, model or chunk size"):
        jobs.Job(tmp_path / "w", textio.InputSpec(str(other)), model, chunk_rows=256)
    with pytest.raises(jobs.JobError, match="chunk_rows: 256 -> 100"):
        jobs.Job(tmp_path / "w", textio.InputSpec(str(corpus_file)), model, chunk_rows=100)


def test_a_new_threshold_reuses_the_embeddings(corpus_file: Path, tiny_dir: Path, tmp_path: Path) -> None:
    model = lightembed.load(tiny_dir)
    job = jobs.Job(tmp_path / "w", textio.InputSpec(str(corpus_file)), model, chunk_rows=256)
    loose = job.deduplicate(0.8, SearchOptions(mode="exact"))
    chunk = tmp_path / "w" / "chunks" / "vectors-000000.npy"
    stamp = chunk.stat().st_mtime_ns
    strict = job.deduplicate(0.95, SearchOptions(mode="exact"))
    assert chunk.stat().st_mtime_ns == stamp and len(strict.removed) < len(loose.removed)
    texts = corpus_file.read_text().splitlines()
    assert same_result(strict, model.deduplicate(texts, 0.95, mode="exact"))


def test_naming_the_default_field_reuses_the_work_folder(tiny_dir: Path, tmp_path: Path) -> None:
    source = tmp_path / "docs.jsonl"
    source.write_text("".join(json.dumps({"text": line}) + "\n" for line in corpus_lines(50)), encoding="utf-8")
    args = ["dedup", str(source), "-o", str(tmp_path / "kept.jsonl"), "--work-dir", str(tmp_path / "w")]
    assert run_cli(*args, "--model", str(tiny_dir)) == 0
    assert run_cli(*args, "--field", "text", "--model", str(tiny_dir)) == 0


def test_embed_with_a_work_dir_resumes_and_writes_npy(
    corpus_file: Path, tiny_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out, work = tmp_path / "vectors.npy", tmp_path / "work"
    args = ["embed", str(corpus_file), "-o", str(out), "--model", str(tiny_dir), "--work-dir", str(work)]
    with monkeypatch.context() as patch:
        kill_after(patch, 4, "vectors")
        with pytest.raises(Killed):
            run_cli(*args, "--chunk-size", "200")
    assert not out.exists()
    assert run_cli(*args, "--chunk-size", "200") == 0
    expected = lightembed.load(tiny_dir).embed(corpus_file.read_text().splitlines())
    np.testing.assert_array_equal(np.load(out), expected)


def test_job_options_need_a_file_input(tiny_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dedup", "-", "--work-dir", str(tmp_path / "w"), "--model", str(tiny_dir)]) == 2
    assert "--work-dir needs an input file" in capsys.readouterr().err


def test_dedup_cli_bad_mode_is_a_usage_error(tiny_dir: Path, corpus_file: Path, capsys) -> None:
    assert main(["dedup", str(corpus_file), "--mode", "fast", "--model", str(tiny_dir)]) == 2
    assert "invalid choice: 'fast'" in capsys.readouterr().err


# --------------------------------------------------------------------- Parquet
def test_parquet_dedup_keeps_rows_and_embeddings_round_trip(tiny_dir: Path, tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    lines = corpus_lines(200)
    source = tmp_path / "in.parquet"
    pq.write_table(pa.table({"id": list(range(len(lines))), "body": lines}), source, row_group_size=64)
    out = tmp_path / "kept.parquet"
    assert run_cli("dedup", str(source), "--column", "body", "-o", str(out), "--model", str(tiny_dir)) == 0
    kept = pq.read_table(out)
    expected = lightembed.load(tiny_dir).deduplicate(lines, 0.9)
    assert kept.column("id").to_pylist() == expected.kept.tolist()
    assert kept.column("body").to_pylist() == expected.kept_items

    vectors = tmp_path / "v.parquet"
    assert run_cli("embed", str(source), "--column", "body", "-o", str(vectors), "--model", str(tiny_dir)) == 0
    np.testing.assert_array_equal(parquetio.read_embeddings(vectors), lightembed.load(tiny_dir).embed(lines))
    codes = tmp_path / "c.parquet"
    assert (
        run_cli("embed", str(source), "--column", "body", "-o", str(codes), "--binary", "--model", str(tiny_dir)) == 0
    )
    binary = lightembed.load(tiny_dir, binary=True).embed(lines)
    np.testing.assert_array_equal(parquetio.read_embeddings(codes), binary)


@pytest.mark.parametrize("index", [None, (5, 2, "row"), "labels"])
def test_parquet_dedup_keeps_the_pandas_row_labels(index, tiny_dir: Path, tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    lines = corpus_lines(300)
    if index is None:
        frame = pd.DataFrame({"text": lines})  # a RangeIndex 0, 1, ... kept as metadata only
    elif index == "labels":
        frame = pd.DataFrame({"text": lines}, index=[f"r{k}" for k in range(len(lines))])
    else:
        start, step, name = index
        frame = pd.DataFrame({"text": lines}, index=pd.RangeIndex(start, start + step * len(lines), step, name=name))
    frame.to_parquet(tmp_path / "in.parquet")
    assert (
        run_cli("dedup", str(tmp_path / "in.parquet"), "-o", str(tmp_path / "kept.parquet"), "--model", str(tiny_dir))
        == 0
    )
    kept = pd.read_parquet(tmp_path / "kept.parquet")
    expected = frame.iloc[lightembed.load(tiny_dir).deduplicate(lines, 0.9).kept]
    assert 0 < len(kept) < len(frame)
    pd.testing.assert_frame_equal(kept, expected, check_index_type=False)


def test_parquet_bad_inputs_are_named(tiny_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    source = tmp_path / "in.parquet"
    pq.write_table(pa.table({"n": [1, 2], "text": ["a", None]}), source)
    for column, message in [("body", "no column 'body' (columns: n, text)"), ("n", "column 'n' holds int64")]:
        assert main(["dedup", str(source), "--column", column, "-o", str(tmp_path / "o.parquet")]) == 2
        assert message in capsys.readouterr().err
    assert main(["dedup", str(source), "-o", str(tmp_path / "o.parquet"), "--model", str(tiny_dir)]) == 2
    assert "row 1: column 'text' is null" in capsys.readouterr().err
    (tmp_path / "junk.parquet").write_text("not parquet")
    assert main(["embed", str(tmp_path / "junk.parquet"), "--model", str(tiny_dir)]) == 2
    assert "not a readable Parquet file" in capsys.readouterr().err


def test_parquet_without_pyarrow_says_how_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    real_import = builtins.__import__

    def no_pyarrow(name: str, *args, **kwargs):
        if name.startswith("pyarrow"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pyarrow)
    with pytest.raises(parquetio.ParquetError, match=r"pip install 'lightembed\[parquet\]'"):
        list(parquetio.read_texts(tmp_path / "x.parquet", "text"))


def test_a_run_killed_after_its_last_short_chunk_resumes(
    corpus_file: Path, tiny_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = lightembed.load(tiny_dir)
    spec = textio.InputSpec(str(corpus_file))
    real = jobs.save_json

    def dying(path: Path, value: object) -> None:
        if path.name == "count.json":
            raise Killed
        real(path, value)

    with monkeypatch.context() as patch:
        patch.setattr(jobs, "save_json", dying)
        with pytest.raises(Killed):
            jobs.Job(tmp_path / "w", spec, model, chunk_rows=128).embed()
    assert jobs.Job(tmp_path / "w", spec, model, chunk_rows=128).embed() == 900  # 7 full chunks and one of 4


def test_a_job_compares_unit_rows_of_a_model_that_does_not_normalise(corpus_file: Path, tmp_path: Path) -> None:
    model = lightembed.load(write_tiny_model(tmp_path / "raw", normalize=False))
    job = jobs.Job(tmp_path / "w", textio.InputSpec(str(corpus_file)), model, chunk_rows=300)
    result = job.deduplicate(0.9, SearchOptions(mode="partitioned", clusters=3, probes=3))
    texts = corpus_file.read_text().splitlines()
    assert same_result(result, model.deduplicate(texts, 0.9, mode="partitioned", clusters=3, probes=3))


def test_a_job_compares_the_same_rows_as_the_python_api(corpus_file: Path, tiny_dir: Path, tmp_path: Path) -> None:
    """Rows normalised twice differ in the last bits, which can move k-means and so a partitioned result."""
    model = lightembed.load(tiny_dir)
    job = jobs.Job(tmp_path / "w", textio.InputSpec(str(corpus_file)), model, chunk_rows=300)
    job.deduplicate(0.9, SearchOptions(mode="exact"))
    texts = list(dict.fromkeys(corpus_file.read_text().splitlines()))
    np.testing.assert_array_equal(np.load(tmp_path / "w" / "vectors.npy"), comparable_rows(model.embed(texts)))


def test_dedup_of_stdin_names_stdin_in_errors(
    tiny_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b'{"text": "a"}\n{bad\n')))
    assert main(["dedup", "--format", "jsonl", "--model", str(tiny_dir)]) == 2
    assert "<stdin>:2: not valid JSON" in capsys.readouterr().err


# --------------------------------------------------------------------- streams, foreign folders, damage
def test_dedup_of_a_pipe_reads_it_once(corpus_file: Path, tiny_dir: Path, tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.txt"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_bytes(corpus_file.read_bytes()), daemon=True)
    writer.start()
    out, report = tmp_path / "kept.txt", tmp_path / "report.jsonl"
    assert run_cli("dedup", str(fifo), "-o", str(out), "--report", str(report), "--model", str(tiny_dir)) == 0
    writer.join(timeout=30)
    expected = lightembed.load(tiny_dir).deduplicate(corpus_lines(), 0.9)
    assert out.read_text(encoding="utf-8").splitlines() == expected.kept_items
    assert len(report.read_text(encoding="utf-8").splitlines()) == len(expected.removed)


def test_a_work_folder_with_other_files_is_refused_and_left_alone(
    corpus_file: Path, tiny_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "mine"
    (folder / "pairs").mkdir(parents=True)
    (folder / "pairs" / "important.tsv").write_text("keep me")
    np.save(folder / "vectors.npy", np.zeros((3, 16), np.float32))
    args = ["dedup", str(corpus_file), "-o", str(tmp_path / "o.txt"), "--work-dir", str(folder)]
    assert main([*args, "--model", str(tiny_dir)]) == 2
    assert "is not empty (pairs, vectors.npy) and holds no job" in capsys.readouterr().err
    assert (folder / "pairs" / "important.tsv").read_text() == "keep me"
    assert sorted(p.name for p in folder.iterdir()) == ["pairs", "vectors.npy"]


def test_a_search_pass_of_an_older_version_says_what_to_delete(tmp_path: Path) -> None:
    path = tmp_path / "pairs" / "pass-1" / "group-000000.npz"
    path.parent.mkdir(parents=True)
    empty = np.zeros(0, np.int64)
    np.savez(path, held=np.array(False), later=empty, earlier=empty, score=empty, alive=empty, removed=empty)
    with pytest.raises(jobs.JobError, match=f"older lightembed; delete {tmp_path / 'pairs'} to search again"):
        jobs.read_sweep(path)


@pytest.mark.parametrize(
    ("name", "content"), [("job.json", "[1, 2]"), ("chunks/count.json", "{}"), ("chunks/count.json", "garbage")]
)
def test_a_damaged_work_file_is_named(
    corpus_file: Path, tiny_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, content: str
) -> None:
    folder = tmp_path / "w"
    args = [
        "dedup",
        str(corpus_file),
        "-o",
        str(tmp_path / "o.txt"),
        "--work-dir",
        str(folder),
        "--model",
        str(tiny_dir),
    ]
    assert run_cli(*args) == 0
    (folder / name).write_text(content)
    assert run_cli(*args) == 2
    assert f"{folder / name}: damaged work file" in capsys.readouterr().err


def test_a_second_pass_that_sees_another_input_is_an_error(tiny_dir: Path, tmp_path: Path) -> None:
    source = tmp_path / "in.txt"
    source.write_text("a cat\nthe dog\n", encoding="utf-8")
    result = lightembed.load(tiny_dir).deduplicate(["a cat", "the dog", "a bird"], 0.9)
    with pytest.raises(jobs.JobError, match="2 items on the second pass, 3 on the first"):
        jobs.write_kept(textio.InputSpec(str(source)), result, str(tmp_path / "o.txt"), None)


def test_parquet_output_over_its_input_with_a_report(tiny_dir: Path, tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    lines = corpus_lines(200)
    source = tmp_path / "same.parquet"
    pq.write_table(pa.table({"text": lines}), source)
    report = tmp_path / "report.jsonl"
    assert run_cli("dedup", str(source), "-o", str(source), "--report", str(report), "--model", str(tiny_dir)) == 0
    expected = lightembed.load(tiny_dir).deduplicate(lines, 0.9)
    rows = [json.loads(line) for line in report.read_text(encoding="utf-8").splitlines()]
    assert [row["index"] for row in rows] == expected.removed.tolist()
    assert [row["text"] for row in rows] == [lines[i] for i in expected.removed]
    assert pq.read_table(source).column("text").to_pylist() == expected.kept_items


def test_parquet_with_two_columns_of_the_text_name(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    source = tmp_path / "twice.parquet"
    pq.write_table(pa.table([pa.array(["a"]), pa.array(["b"])], names=["text", "text"]), source)
    with pytest.raises(parquetio.ParquetError, match="2 columns are named 'text'"):
        list(parquetio.read_texts(source, "text"))


def test_parquet_categorical_text_column_is_read_as_strings(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    source = tmp_path / "categorical.parquet"
    pq.write_table(pa.table({"text": pa.array(["a cat", "a dog", "a cat"]).dictionary_encode()}), source)
    assert list(parquetio.read_texts(source, "text")) == ["a cat", "a dog", "a cat"]


def test_parquet_string_view_text_column_is_read_as_strings(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    if not hasattr(pa, "string_view"):
        pytest.skip("pyarrow before 16 has no string_view")
    source = tmp_path / "view.parquet"
    pq.write_table(pa.table({"text": pa.array(["a cat", "a dog"], pa.string_view())}), source)
    assert list(parquetio.read_texts(source, "text")) == ["a cat", "a dog"]
    # pyarrow cannot write a dictionary of string_view to Parquet: its decoding is checked alone
    categories = pa.DictionaryArray.from_arrays(pa.array([1, 0, 1]), pa.array(["a cat", "a dog"], pa.string_view()))
    assert parquetio._decoded(categories).to_pylist() == ["a dog", "a cat", "a dog"]


def test_parquet_invalid_utf8_names_the_file_row_and_column(
    tiny_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    source = tmp_path / "bad.parquet"
    texts = pa.array([b"ok", b"fine", b"\xff\xfebad", b"good"]).view(pa.string())
    pq.write_table(pa.table({"text": texts}), source, row_group_size=2)
    for batch_rows in (1, 2, 100):  # the row is counted over the whole file
        with pytest.raises(parquetio.ParquetError, match=r"bad.parquet: row 2: column 'text' is not valid UTF-8"):
            list(parquetio.read_texts(source, "text", batch_rows))
    assert main(["embed", str(source), "--model", str(tiny_dir)]) == 2
    assert "row 2: column 'text' is not valid UTF-8" in capsys.readouterr().err
    categories = pa.DictionaryArray.from_arrays(pa.array([0, 1, 2, 3], pa.int8()), texts)  # int8 codes, as pandas'
    pq.write_table(pa.table({"text": categories}), source)  # pyarrow checks these as it reads them
    with pytest.raises(parquetio.ParquetError, match=r"bad.parquet: column 'text' cannot be read from row 0"):
        list(parquetio.read_texts(source, "text"))


def test_parquet_embeddings_read_back_as_float32_and_bad_columns_are_named(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    source = tmp_path / "e.parquet"
    pq.write_table(pa.table({"embedding": pa.array([[1.0, 2.0], [3.0, 4.0]], pa.list_(pa.float64(), 2))}), source)
    vectors = parquetio.read_embeddings(source)
    assert vectors.dtype == np.float32
    np.testing.assert_array_equal(vectors, [[1, 2], [3, 4]])
    pairs = pa.list_(pa.float32(), 2)
    bad = [
        ({"vec": [1.0]}, "no column 'embedding' (columns: vec)"),
        ({"embedding": pa.array([[1.0, 2.0], [3.0]])}, "column 'embedding' holds list<"),
        ({"embedding": ["a", "b"]}, "column 'embedding' holds string, expected a fixed-size list"),
        ({"embedding": pa.array([[1.0, 2.0], None], pairs)}, "row 1: column 'embedding' is null"),
        ({"embedding": pa.array([[1.0, 2.0], [3.0, None]], pairs)}, "row 1: column 'embedding' holds a null"),
        ({"embedding": pa.array([b"ab", None, b"cd"], pa.binary(2))}, "row 1: column 'embedding' is null"),
    ]
    for columns, message in bad:
        pq.write_table(pa.table(columns), source)
        with pytest.raises(parquetio.ParquetError, match=re.escape(f"e.parquet: {message}")):
            parquetio.read_embeddings(source)


@pytest.mark.parametrize("rows_per_ask", [1, 256])
def test_ann_mode_finds_every_pair_of_a_dense_group_and_a_lone_last_row(
    rows_per_ask: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A dense group's rows ask the index again and again (1), or, past n / ROWS_PER_ASK, are compared exactly (256)."""
    pytest.importorskip("usearch")
    rng = np.random.default_rng(0)
    dense = rng.standard_normal((1, 32)) + 0.01 * rng.standard_normal((120, 32))  # 120 near copies of one text
    vectors = unit_rows(np.concatenate([dense, rng.standard_normal((81, 32))]).astype(np.float32))
    monkeypatch.setattr(ann_module, "SEARCH_ENTRIES", 50 * 9)  # 201 rows asking for 9: the last block holds one
    monkeypatch.setattr(ann_module, "SCORE_ENTRIES", 32 * 7)  # pairs re-scored 7 at a time
    monkeypatch.setattr(ann_module, "ROWS_PER_ASK", rows_per_ask)
    compared, exact_pairs = [], ann_module._exact_pairs
    monkeypatch.setattr(
        ann_module, "_exact_pairs", lambda v, rows, *a: compared.append(rows) or exact_pairs(v, rows, *a)
    )
    exact = deduplicate_vectors(vectors, 0.9, search=SearchOptions(mode="exact"))
    ann = deduplicate_vectors(vectors, 0.9, search=SearchOptions(mode="ann", neighbours=8))
    assert same_result(exact, ann) and len(exact.removed) >= 119
    dense_rows = np.isin(np.concatenate(compared), np.arange(120)).sum()
    assert dense_rows >= 120 if rows_per_ask == 256 else dense_rows < 10  # the index may rarely lose a row


def test_ann_mode_searches_identical_vectors_once() -> None:
    # Texts that differ only in letter case embed identically; an HNSW index asked about one of
    # 500 copies answers short, and copies went missing (most kept). Group 0 has a near item
    # before its first copy, so all of its copies are removed as duplicates of that item.
    pytest.importorskip("usearch")
    rng = np.random.default_rng(3)
    bases = unit_rows(rng.standard_normal((20, 16)).astype(np.float32))
    near = unit_rows(bases[:1] + 0.1 * unit_rows(rng.standard_normal((1, 16)).astype(np.float32)))
    vectors = np.concatenate([near, np.repeat(bases, 500, axis=0)[rng.permutation(10_000)]])
    exact = deduplicate_vectors(vectors, 0.95, search=SearchOptions(mode="exact"))
    ann = deduplicate_vectors(vectors, 0.95, search=SearchOptions(mode="ann"))
    assert same_result(exact, ann) and len(ann.kept) == 20
    group_0 = np.flatnonzero((vectors == bases[0]).all(axis=1))
    assert (ann.duplicate_of[np.searchsorted(ann.removed, group_0)] == 0).all()
    assert ann.scores.min() > 0.95 and ann.scores.max() <= 1.0
    assert ann_module.same_vector_rows(np.zeros((3, 4), np.float32)).tolist() == [0, 1, 2]  # zero rows stay apart


def test_ann_mode_leaves_zero_rows_out_of_the_index() -> None:
    pytest.importorskip("usearch")
    vectors, _ = clustered_vectors(noise=0.3)
    with_zeros = np.concatenate([np.zeros((2000, vectors.shape[1]), np.float32), vectors])  # texts with no tokens
    exact = deduplicate_vectors(with_zeros, 0.85, search=SearchOptions(mode="exact"))
    for _ in range(3):  # the index is built on every core: repeat to catch a run that misses pairs
        ann = deduplicate_vectors(with_zeros, 0.85, search=SearchOptions(mode="ann"))
        assert len(set(ann.removed.tolist()) ^ set(exact.removed.tolist())) <= 4
    assert not np.isin(np.arange(2000), exact.removed).any() and not np.isin(np.arange(2000), ann.removed).any()


def test_ann_mode_compares_a_row_the_index_does_not_reach_with_every_row(monkeypatch: pytest.MonkeyPatch) -> None:
    # An index built on several threads can leave a group of rows out of its graph: no answer
    # names them, not even the answers about themselves. Here the index never names rows 7, 50, 120.
    pytest.importorskip("usearch")
    search = ann_module._search

    def without_the_group(index: object, queries: np.ndarray, k: int):
        keys, sims, counts = search(index, queries, k)
        hidden = np.isin(keys, [7, 50, 120])
        keys[hidden], sims[hidden] = -1, -np.inf
        return keys, sims, counts

    monkeypatch.setattr(ann_module, "_search", without_the_group)
    rng = np.random.default_rng(8)
    vectors = unit_rows(rng.standard_normal((200, 32)).astype(np.float32))
    vectors[[50, 120]] = unit_rows(vectors[7] + 0.05 * rng.standard_normal((2, 32)).astype(np.float32))
    exact = deduplicate_vectors(vectors, 0.9, search=SearchOptions(mode="exact"))
    ann = deduplicate_vectors(vectors, 0.9, search=SearchOptions(mode="ann"))
    assert exact.removed.tolist() == [50, 120] and exact.duplicate_of.tolist() == [7, 7]
    assert same_result(exact, ann)


def test_ann_mode_names_the_most_similar_kept_row_for_a_copy_of_a_removed_row() -> None:
    # Rows m, f, r, f: f is removed by m (0.91), r is kept (0.86 to m); the copy of f has two
    # earlier kept rows, m at 0.91 and r at 0.95, and is a duplicate of r.
    pytest.importorskip("usearch")
    f, m, r = np.zeros((3, 8), np.float32)
    f[0] = 1.0
    m[:2] = 0.91, np.sqrt(1 - 0.91**2)
    y = (0.86 - 0.91 * 0.95) / np.sqrt(1 - 0.91**2)
    r[:3] = 0.95, y, np.sqrt(1 - 0.95**2 - y**2)
    vectors = np.stack([m, f, r, f])
    exact = deduplicate_vectors(vectors, 0.9, search=SearchOptions(mode="exact"))
    ann = deduplicate_vectors(vectors, 0.9, search=SearchOptions(mode="ann"))
    assert exact.duplicate_of.tolist() == [0, 2] and same_result(exact, ann)
    np.testing.assert_allclose(ann.scores, [0.91, 0.95], atol=1e-6)


def test_ann_mode_refuses_binary_codes() -> None:
    codes = np.packbits(np.random.default_rng(0).random((20, 64)) > 0.5, axis=1)
    with pytest.raises(ValueError, match="'ann' dedup mode takes float vectors"):
        deduplicate_vectors(codes, 0.9, bits=64, search=SearchOptions(mode="ann"))


def test_ann_mode_keeps_zero_rows_where_a_score_of_0_reaches_the_threshold() -> None:
    pytest.importorskip("usearch")
    vectors = unit_rows(np.random.default_rng(5).standard_normal((6, 8)).astype(np.float32))
    vectors[0] = 0  # scores 0 with every row: within the 1e-5 tolerance of a threshold of 1e-6
    exact = deduplicate_vectors(vectors, 1e-6, search=SearchOptions(mode="exact"))
    ann = deduplicate_vectors(vectors, 1e-6, search=SearchOptions(mode="ann"))
    assert same_result(exact, ann) and exact.kept.tolist() == [0]


def test_ann_mode_without_usearch_is_one_line_in_the_cli(
    monkeypatch: pytest.MonkeyPatch, corpus_file: Path, tiny_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    real_import = builtins.__import__

    def no_usearch(name: str, *args, **kwargs):
        if name.startswith("usearch"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_usearch)
    assert main(["dedup", str(corpus_file), "--mode", "ann", "--model", str(tiny_dir)]) == 2
    assert capsys.readouterr().err.startswith("lightembed: error: the 'ann' dedup mode needs usearch")


def test_auto_mode_is_exact_up_to_its_documented_limit() -> None:
    assert dedup_module.EXACT_LIMIT == 50_000
    assert SearchOptions().resolved(50_000) == "exact" and SearchOptions().resolved(50_001) == "partitioned"


def test_ann_mode_does_not_index_zero_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    index = pytest.importorskip("usearch.index")
    added, add = [], index.Index.add
    monkeypatch.setattr(
        index.Index, "add", lambda self, keys, *a, **k: added.append(np.array(keys)) or add(self, keys, *a, **k)
    )
    rng = np.random.default_rng(0)
    vectors = np.concatenate(
        [np.zeros((50, 8), np.float32), unit_rows(rng.standard_normal((50, 8)).astype(np.float32))]
    )
    deduplicate_vectors(vectors, 0.9, search=SearchOptions(mode="ann"))
    assert np.array_equal(np.sort(np.concatenate(added)), np.arange(50, 100))
