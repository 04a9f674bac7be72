"""The task verbs: similarity, rank, topk, filter, key, deduplicate, cluster, rerank, split."""

from __future__ import annotations

import math
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from tiny import SPECIALS, WORDS, tiny_tokenizer

import lightembed
from lightembed import cluster as cluster_module
from lightembed import rerank as rerank_module
from lightembed.binary import hamming_similarity, pack_signs, unpack_signs
from lightembed.config import ModelConfig
from lightembed.dedup import deduplicate_vectors, greedy_matches
from lightembed.folder import write_model
from lightembed.rerank import maxsim_scores
from lightembed.scoring import unit_rows

DOCS = [
    "the cat sat on the mat",
    "a dog ran in the park",
    "play a happy song on the piano",
    "red car drove down the road",
    "the bird flew over the tree",
]


def angles(*degrees: float) -> np.ndarray:
    """Unit vectors in the plane at the given angles, float32 [n, 2]."""
    a = np.deg2rad(np.array(degrees, dtype=np.float64))
    return np.stack([np.cos(a), np.sin(a)], axis=1).astype(np.float32)


@pytest.fixture(scope="module")
def binary_model(tiny_dir: Path) -> lightembed.LightEmbed:
    return lightembed.load(tiny_dir, binary=True)


@pytest.fixture()
def embed_calls(tiny: lightembed.LightEmbed, monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Record every call to `tiny.embed` (the texts it was given)."""
    calls: list[list[str]] = []
    original = tiny.embed

    def counting(texts, **kwargs):
        texts = [texts] if isinstance(texts, str) else list(texts)
        calls.append(texts)
        return original(texts, **kwargs)

    monkeypatch.setattr(tiny, "embed", counting)
    return calls


# --------------------------------------------------------------------- similarity
def test_similarity_of_two_texts_is_a_float_cosine(tiny: lightembed.LightEmbed) -> None:
    score = tiny.similarity("the cat sat", "a dog ran")
    assert type(score) is float
    a, b = tiny.embed("the cat sat"), tiny.embed("a dog ran")
    assert score == pytest.approx(float(a @ b), abs=1e-6)
    assert tiny.similarity("the cat sat", "the cat sat") == pytest.approx(1.0, abs=1e-6)


def test_similarity_matrix_shape_and_symmetry(tiny: lightembed.LightEmbed) -> None:
    a, b = DOCS[:2], DOCS[2:]
    ab = tiny.similarity(a, b)
    assert ab.shape == (2, 3)
    np.testing.assert_allclose(tiny.similarity(b, a), ab.T, atol=1e-6)
    square = tiny.similarity(DOCS, DOCS)
    np.testing.assert_allclose(square, square.T, atol=1e-6)
    np.testing.assert_allclose(np.diag(square), 1.0, atol=1e-5)
    assert np.all(np.abs(square) <= 1.0 + 1e-5)


def test_similarity_one_against_many_is_1d(tiny: lightembed.LightEmbed) -> None:
    row = tiny.similarity("cat", DOCS)
    assert row.shape == (len(DOCS),)
    column = tiny.similarity(DOCS, "cat")
    assert column.shape == (len(DOCS),)
    np.testing.assert_allclose(row, column, atol=1e-6)
    np.testing.assert_allclose(row, tiny.similarity(["cat"], DOCS)[0], atol=1e-6)


def test_pair_similarity_is_the_diagonal_of_the_matrix(
    tiny: lightembed.LightEmbed, binary_model: lightembed.LightEmbed
) -> None:
    a, b = DOCS[:3], DOCS[2:5]
    for model in (tiny, binary_model):
        pairs = model.pair_similarity(a, b)
        assert pairs.shape == (3,)
        np.testing.assert_allclose(pairs, np.diag(model.similarity(a, b)), atol=1e-6)
    with pytest.raises(ValueError, match="as many items"):
        tiny.pair_similarity(DOCS[:2], DOCS[:3])


def test_similarity_with_an_empty_text_is_zero(tiny: lightembed.LightEmbed) -> None:
    assert tiny.similarity("", "cat") == 0.0


def test_similarity_of_codes_and_floats_raises(tiny: lightembed.LightEmbed) -> None:
    floats = np.ones((2, 2), dtype=np.float32)
    codes = np.ones((2, 2), dtype=np.uint8)
    with pytest.raises(TypeError, match="binary codes"):
        tiny.similarity(floats, codes)
    with pytest.raises(TypeError, match="binary codes"):  # whatever the widths
        tiny.similarity(tiny.embed(DOCS), np.packbits(tiny.embed(DOCS) > 0, axis=1))


def test_similarity_of_different_widths_raises(tiny: lightembed.LightEmbed) -> None:
    with pytest.raises(ValueError, match="width"):
        tiny.similarity(np.ones((2, 3), dtype=np.float32), np.ones((2, 4), dtype=np.float32))


def test_vectors_with_nan_raise(tiny: lightembed.LightEmbed) -> None:
    bad = np.array([[1.0, np.nan]], dtype=np.float32)
    with pytest.raises(ValueError, match="NaN"):
        tiny.similarity(bad, bad)


# --------------------------------------------------------------------- rank, topk, filter
def test_rank_orders_every_document_by_similarity(tiny: lightembed.LightEmbed) -> None:
    query = "the cat sat on a mat"
    hits = tiny.rank(query, DOCS)
    expected = tiny.similarity(query, DOCS)
    assert sorted(h.index for h in hits) == list(range(len(DOCS)))
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert hits[0].index == 0
    for hit in hits:
        assert hit.text == DOCS[hit.index]
        assert hit.score == pytest.approx(float(expected[hit.index]), abs=1e-6)


def test_rank_without_sorting_keeps_input_order(tiny: lightembed.LightEmbed) -> None:
    hits = tiny.rank("cat", DOCS, sort=False)
    assert [h.index for h in hits] == list(range(len(DOCS)))


def test_rank_works_with_a_single_document(tiny: lightembed.LightEmbed) -> None:
    hits = tiny.rank("cat", ["the cat sat"])
    assert len(hits) == 1
    assert hits[0].index == 0
    assert hits[0].text == "the cat sat"
    assert hits[0].score == pytest.approx(tiny.similarity("cat", "the cat sat"), abs=1e-6)
    assert [h.index for h in tiny.rank("cat", "the cat sat")] == [0]


def test_rank_with_no_documents_is_empty(tiny: lightembed.LightEmbed) -> None:
    assert tiny.rank("cat", []) == []


def test_rank_needs_one_query(tiny: lightembed.LightEmbed) -> None:
    with pytest.raises(ValueError, match="one query"):
        tiny.rank(["cat", "dog"], DOCS)


def test_topk_returns_the_k_best_sorted(tiny: lightembed.LightEmbed) -> None:
    scores = tiny.similarity("dog park", DOCS)
    hits = tiny.topk("dog park", DOCS, k=2)
    assert [h.index for h in hits] == list(np.argsort(-scores)[:2])
    assert hits[0].score >= hits[1].score


@pytest.mark.parametrize("k", [len(DOCS), len(DOCS) + 1, 100])
def test_topk_with_k_at_least_n_returns_all_sorted(tiny: lightembed.LightEmbed, k: int) -> None:
    hits = tiny.topk("dog park", DOCS, k=k)
    assert len(hits) == len(DOCS)
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)
    assert sorted(h.index for h in hits) == list(range(len(DOCS)))


@pytest.mark.parametrize("k", [0, -1, True, 2.5])
def test_topk_with_bad_k_raises(tiny: lightembed.LightEmbed, k: object) -> None:
    with pytest.raises(ValueError, match="k must be"):
        tiny.topk("cat", DOCS, k=k)


def test_topk_ties_keep_input_order(tiny: lightembed.LightEmbed) -> None:
    docs = angles(0, 90, 0, 90, 0)
    hits = tiny.topk(angles(0), docs, k=3)
    assert [h.index for h in hits] == [0, 2, 4]


def test_filter_keeps_scores_at_or_above_the_threshold_in_input_order(tiny: lightembed.LightEmbed) -> None:
    query = np.array([1.0, 0.0], dtype=np.float32)
    docs = np.array([[0.0, 1.0], [1.0, 0.0], [0.6, 0.8], [-1.0, 0.0], [3.0, 0.0]], dtype=np.float32)
    # cosines: 0, 1, 0.6, -1, 1
    assert [h.index for h in tiny.filter(query, docs, threshold=0.0)] == [0, 1, 2, 4]
    assert [h.index for h in tiny.filter(query, docs, threshold=0.5)] == [1, 2, 4]
    assert [h.index for h in tiny.filter(query, docs, threshold=0.7)] == [1, 4]
    assert [h.index for h in tiny.filter(query, docs, threshold=1.0)] == [1, 4]
    assert [h.index for h in tiny.filter(query, docs, threshold=-1.0)] == [0, 1, 2, 3, 4]
    assert all(h.text is None for h in tiny.filter(query, docs, threshold=-1.0))


def test_filter_on_texts_matches_similarity(tiny: lightembed.LightEmbed) -> None:
    scores = tiny.similarity("the cat", DOCS)
    threshold = float(np.median(scores))
    hits = tiny.filter("the cat", DOCS, threshold=threshold)
    assert [h.index for h in hits] == list(np.flatnonzero(scores >= threshold))
    assert [h.text for h in hits] == [DOCS[h.index] for h in hits]


@pytest.mark.parametrize("threshold", [1.0001, -1.5, 2, math.nan, math.inf, -math.inf])
def test_thresholds_outside_minus_one_to_one_raise(tiny: lightembed.LightEmbed, threshold: float) -> None:
    with pytest.raises(ValueError, match="threshold"):
        tiny.filter("cat", DOCS, threshold=threshold)
    with pytest.raises(ValueError, match="threshold"):
        tiny.deduplicate(DOCS, threshold=threshold)
    with pytest.raises(ValueError, match="threshold"):
        deduplicate_vectors(angles(0, 10), threshold)
    with pytest.raises(ValueError, match="threshold"):
        tiny.deduplicate(DOCS, threshold=0.9).rethreshold(threshold)


# --------------------------------------------------------------------- key
def test_key_sorts_and_picks_the_max_by_similarity(tiny: lightembed.LightEmbed) -> None:
    key = tiny.key("dog park")
    scores = tiny.similarity("dog park", DOCS)
    assert sorted(DOCS, key=key) == [DOCS[i] for i in np.argsort(scores, kind="stable")]
    assert max(DOCS, key=key) == DOCS[int(np.argmax(scores))]
    assert key(DOCS[1]) == pytest.approx(float(scores[1]), abs=1e-6)
    with pytest.raises(TypeError, match=r"a similarity key scores texts \(str\), got int"):
        key(5)


def test_key_caches_each_text(tiny: lightembed.LightEmbed, embed_calls: list[list[str]]) -> None:
    key = tiny.key("dog park")
    assert len(embed_calls) == 1  # the query
    first = key(DOCS[0])
    assert len(embed_calls) == 2
    assert key(DOCS[0]) == first
    assert len(embed_calls) == 2
    sorted(DOCS, key=key)
    calls_after_sort = len(embed_calls)
    assert calls_after_sort == 2 + len(DOCS) - 1
    max(DOCS, key=key)
    sorted(DOCS, key=key)
    assert len(embed_calls) == calls_after_sort


def test_key_with_candidates_embeds_them_in_one_batch(
    tiny: lightembed.LightEmbed, embed_calls: list[list[str]]
) -> None:
    key = tiny.key("dog park", DOCS + DOCS[:2])
    assert len(embed_calls) == 2
    assert embed_calls[1] == DOCS  # de-duplicated, in order
    best = max(DOCS, key=key)
    assert len(embed_calls) == 2
    assert best == DOCS[1]


# --------------------------------------------------------------------- vectors and codes as input
def test_verbs_accept_vectors_and_give_the_same_answers(tiny: lightembed.LightEmbed) -> None:
    vectors = tiny.embed(DOCS)
    query = tiny.embed("dog park")
    np.testing.assert_allclose(tiny.similarity(vectors, vectors), tiny.similarity(DOCS, DOCS), atol=1e-6)
    assert tiny.similarity(query, vectors[1]) == pytest.approx(tiny.similarity("dog park", DOCS[1]), abs=1e-6)
    from_texts = tiny.rank("dog park", DOCS)
    from_vectors = tiny.rank(query, vectors)
    assert [h.index for h in from_vectors] == [h.index for h in from_texts]
    np.testing.assert_allclose([h.score for h in from_vectors], [h.score for h in from_texts], atol=1e-6)
    assert all(h.text is None for h in from_vectors)
    assert [h.index for h in tiny.topk(query, vectors, k=2)] == [h.index for h in tiny.topk("dog park", DOCS, k=2)]
    threshold = from_texts[2].score
    assert [h.index for h in tiny.filter(query, vectors, threshold)] == [
        h.index for h in tiny.filter("dog park", DOCS, threshold)
    ]


def test_vectors_need_not_be_unit_length(tiny: lightembed.LightEmbed) -> None:
    vectors = tiny.embed(DOCS)
    scaled = vectors * np.arange(1, len(DOCS) + 1, dtype=np.float32)[:, None]
    np.testing.assert_allclose(tiny.similarity(scaled, scaled), tiny.similarity(vectors, vectors), atol=1e-5)


def test_binary_model_verbs_on_texts_equal_verbs_on_codes(
    binary_model: lightembed.LightEmbed, tiny: lightembed.LightEmbed
) -> None:
    codes = binary_model.embed(DOCS)
    query = binary_model.embed("dog park")
    by_text = binary_model.similarity(DOCS, DOCS)
    np.testing.assert_array_equal(binary_model.similarity(codes, codes), by_text)
    signs = unpack_signs(codes, 16)
    np.testing.assert_allclose(by_text, signs @ signs.T / 16, atol=1e-6)
    # a float model handed the same codes gives the same Hamming similarities
    np.testing.assert_array_equal(tiny.similarity(codes, codes), by_text)
    ranked_text = binary_model.rank("dog park", DOCS)
    ranked_codes = binary_model.rank(query, codes)
    assert [(h.index, h.score) for h in ranked_text] == [(h.index, h.score) for h in ranked_codes]
    assert [h.index for h in binary_model.topk(query, codes, k=3)] == [h.index for h in ranked_text[:3]]
    assert binary_model.topk("dog park", DOCS, k=4) == ranked_text[:4]  # same hits, scores and texts
    threshold = ranked_text[1].score
    assert [h.index for h in binary_model.filter(query, codes, threshold)] == [
        h.index for h in binary_model.filter("dog park", DOCS, threshold)
    ]


def test_binary_model_with_odd_dim_uses_that_many_bits(tiny_dir: Path) -> None:
    model = lightembed.load(tiny_dir, binary=True, dim=13)
    codes = model.embed(DOCS)
    assert codes.shape == (len(DOCS), 2)
    signs = unpack_signs(codes, 13)
    expected = signs @ signs.T / 13
    np.testing.assert_allclose(model.similarity(DOCS, DOCS), expected, atol=1e-6)
    np.testing.assert_allclose(model.similarity(codes, codes), expected, atol=1e-6)
    assert model.topk(codes[0], codes, k=len(DOCS) + 5) == model.rank(codes[0], codes)


# --------------------------------------------------------------------- deduplicate
def test_exact_duplicates_are_reported_as_exact_with_score_one(tiny: lightembed.LightEmbed) -> None:
    texts = ["the cat sat", "a dog ran", "the cat sat", "play the piano", "a dog ran", "the cat sat"]
    result = tiny.deduplicate(texts, threshold=0.999)
    assert list(result.kept) == [0, 1, 3]
    assert list(result.removed) == [2, 4, 5]
    assert list(result.duplicate_of) == [0, 1, 0]
    np.testing.assert_array_equal(result.scores, [1.0, 1.0, 1.0])
    assert list(result.exact) == [True, True, True]
    assert result.kept_items == ["the cat sat", "a dog ran", "play the piano"]
    assert result.removed_items == ["the cat sat", "a dog ran", "the cat sat"]
    assert result.duplicates == [
        lightembed.Duplicate(2, 0, 1.0, True),
        lightembed.Duplicate(4, 1, 1.0, True),
        lightembed.Duplicate(5, 0, 1.0, True),
    ]
    assert result.removed_fraction == pytest.approx(0.5)
    assert result.threshold == 0.999


def test_exact_duplicates_embed_each_distinct_text_once(
    tiny: lightembed.LightEmbed, embed_calls: list[list[str]]
) -> None:
    tiny.deduplicate(["x cat", "y dog", "x cat", "x cat"], threshold=0.9)
    assert embed_calls == [["x cat", "y dog"]]


def test_near_duplicates_are_removed_and_not_exact(tiny: lightembed.LightEmbed) -> None:
    # unknown words are ignored, so these embed identically but are different strings
    texts = ["the cat sat", "a dog ran", "xyzzy the cat sat"]
    result = tiny.deduplicate(texts, threshold=0.99)
    assert list(result.kept) == [0, 1]
    assert result.duplicates[0].index == 2
    assert result.duplicates[0].duplicate_of == 0
    assert result.duplicates[0].score == pytest.approx(1.0, abs=1e-5)
    assert result.duplicates[0].exact is False


def test_deduplicate_is_not_transitive() -> None:
    # A~B (cos 30 deg), B~C (cos 30 deg) but A !~ C (cos 60 deg = 0.5)
    vectors = angles(0, 30, 60)
    result = deduplicate_vectors(vectors, 0.8)
    assert list(result.kept) == [0, 2]
    assert list(result.removed) == [1]
    assert list(result.duplicate_of) == [0]
    assert result.scores[0] == pytest.approx(math.cos(math.radians(30)), abs=1e-6)
    assert list(result.exact) == [False]


def test_model_deduplicate_on_hand_made_vectors_is_not_transitive(tiny: lightembed.LightEmbed) -> None:
    result = tiny.deduplicate(angles(0, 30, 60), threshold=0.8)
    assert list(result.kept) == [0, 2]
    assert list(result.duplicate_of) == [0]
    with pytest.raises(ValueError, match="vectors"):
        _ = result.kept_items


def test_duplicate_of_is_the_most_similar_kept_item_across_blocks() -> None:
    # block_size=2: item 3 matches item 0 (cos 30) from the first block, but item 2
    # in its own block is kept and more similar (cos 20)
    vectors = angles(0, 90, 50, 30)
    for block_size in (1, 2, 3, 4):
        result = deduplicate_vectors(vectors, 0.8, block_size=block_size)
        assert list(result.kept) == [0, 1, 2]
        assert list(result.duplicate_of) == [2]
        assert result.scores[0] == pytest.approx(math.cos(math.radians(20)), abs=1e-6)


def test_rethreshold_equals_a_fresh_run(tiny: lightembed.LightEmbed, embed_calls: list[list[str]]) -> None:
    rng = np.random.default_rng(5)
    texts = [" ".join(rng.choice(WORDS[:10], size=3)) for _ in range(40)]
    texts += texts[:5]  # exact copies too
    first = tiny.deduplicate(texts, threshold=0.95)
    calls = len(embed_calls)
    for threshold in (0.5, 0.8, 0.95, 1.0):
        again = first.rethreshold(threshold)
        fresh = tiny.deduplicate(texts, threshold=threshold)
        for name in ("kept", "removed", "duplicate_of", "scores", "exact"):
            np.testing.assert_array_equal(getattr(again, name), getattr(fresh, name), err_msg=name)
        assert again.threshold == threshold
        assert again.kept_items == fresh.kept_items
    assert len(embed_calls) == calls + 4  # only the fresh runs embedded
    assert len(first.rethreshold(0.5).kept) < len(first.kept)


def test_deduplicate_texts_equals_deduplicate_vectors(tiny: lightembed.LightEmbed) -> None:
    rng = np.random.default_rng(6)
    texts = list(dict.fromkeys(" ".join(rng.choice(WORDS[:8], size=2)) for _ in range(30)))
    by_text = tiny.deduplicate(texts, threshold=0.85)
    by_vector = tiny.deduplicate(tiny.embed(texts), threshold=0.85)
    np.testing.assert_array_equal(by_text.kept, by_vector.kept)
    np.testing.assert_array_equal(by_text.duplicate_of, by_vector.duplicate_of)
    assert len(by_text.removed) > 0


def test_deduplicate_with_binary_codes(binary_model: lightembed.LightEmbed) -> None:
    texts = ["the cat sat", "a dog ran", "the cat sat", "xyzzy a dog ran", "play the piano"]
    result = binary_model.deduplicate(texts, threshold=0.99)
    assert list(result.kept) == [0, 1, 4]
    assert list(result.removed) == [2, 3]
    assert list(result.duplicate_of) == [0, 1]
    assert list(result.exact) == [True, False]
    np.testing.assert_array_equal(result.scores, [1.0, 1.0])
    codes = binary_model.embed(texts)
    from_codes = binary_model.deduplicate(codes, threshold=0.99)
    assert list(from_codes.kept) == [0, 1, 4]
    assert list(from_codes.exact) == [False, False]
    for threshold in (-1.0, 0.0, 0.5):
        again, fresh = result.rethreshold(threshold), binary_model.deduplicate(texts, threshold=threshold)
        for name in ("kept", "removed", "duplicate_of", "scores", "exact"):
            np.testing.assert_array_equal(getattr(again, name), getattr(fresh, name), err_msg=name)
    assert list(result.rethreshold(-1.0).kept) == [0]


def test_deduplicate_empty_input(tiny: lightembed.LightEmbed) -> None:
    result = tiny.deduplicate([], threshold=0.9)
    assert len(result.kept) == 0
    assert len(result.removed) == 0
    assert result.removed_fraction == 0.0


def brute_force_greedy(sims: np.ndarray, threshold: float) -> tuple[list[int], dict[int, int]]:
    """Walk items in order; remove i when its best kept item scores >= threshold."""
    kept: list[int] = []
    duplicate_of: dict[int, int] = {}
    for i in range(len(sims)):
        if kept:
            scores = sims[i, kept]
            j = int(np.argmax(scores))  # first maximum: the lowest kept index on ties
            if scores[j] >= threshold:
                duplicate_of[i] = kept[j]
                continue
        kept.append(i)
    return kept, duplicate_of


@settings(max_examples=150, deadline=None)
@given(
    n=st.integers(0, 25),
    dim=st.integers(2, 4),
    threshold=st.floats(0.2, 0.98),
    block_size=st.integers(1, 5),
    seed=st.integers(0, 2**32 - 1),
)
def test_deduplicate_vectors_equals_brute_force_greedy(
    n: int, dim: int, threshold: float, block_size: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, dim))
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    sims = vectors.astype(np.float64) @ vectors.T.astype(np.float64)
    off_diagonal = sims[~np.eye(n, dtype=bool)]
    assume(np.all(np.abs(off_diagonal - threshold) > 1e-5))
    kept, duplicate_of = brute_force_greedy(sims, threshold)
    for i, j in duplicate_of.items():  # the best kept item must be unambiguous
        others = sims[i, [k for k in kept if k < i and k != j]]
        assume(np.all(sims[i, j] - others > 1e-5))
    result = deduplicate_vectors(vectors, threshold, block_size=block_size)
    assert list(result.kept) == kept
    assert list(result.removed) == sorted(duplicate_of)
    assert list(result.duplicate_of) == [duplicate_of[i] for i in result.removed]
    np.testing.assert_allclose(result.scores, [sims[i, duplicate_of[i]] for i in result.removed], atol=1e-5)
    assert not result.exact.any()


def test_exact_dedup_holds_no_second_copy_of_the_vectors() -> None:
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((8_000, 512)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)  # 16 MB, all kept
    tracemalloc.start()
    try:
        match, _ = greedy_matches(vectors, 0.9, block_size=512)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (match == -1).all()
    assert peak < vectors.nbytes // 3, peak  # blocks of 512 rows: 1 MiB of similarities, 1 MiB of kept rows


@settings(max_examples=150, deadline=None)
@given(
    n=st.integers(0, 30),
    bits=st.integers(3, 12),
    level=st.integers(0, 12),
    block_size=st.integers(1, 5),
    seed=st.integers(0, 2**32 - 1),
)
def test_deduplicate_binary_codes_equals_brute_force_greedy(
    n: int, bits: int, level: int, block_size: int, seed: int
) -> None:
    # few bits: many ties, which must go to the lowest kept index, as in the reference
    rng = np.random.default_rng(seed)
    codes = pack_signs(rng.standard_normal((n, bits)))
    sims = hamming_similarity(codes, codes, bits)
    threshold = 1.0 - 2.0 * min(level, bits) / bits + 1e-3  # between two attainable scores
    threshold = min(threshold, 1.0)
    kept, duplicate_of = brute_force_greedy(sims, threshold)
    result = deduplicate_vectors(codes, threshold, bits=bits, block_size=block_size)
    assert list(result.kept) == kept
    assert list(result.duplicate_of) == [duplicate_of[i] for i in result.removed]


PHRASES = ["cat", "dog", "cat dog", "dog cat xyzzy", "piano", "piano song", "song", "the cat", "red car", "car"]


@settings(max_examples=60, deadline=None)
@given(
    picks=st.lists(st.integers(0, len(PHRASES) - 1), max_size=30),
    threshold=st.sampled_from([0.3, 0.6, 0.8, 0.95, 0.999]),
)
def test_deduplicate_texts_with_copies_equals_reference(tiny_dir: Path, picks: list[int], threshold: float) -> None:
    model = _cached_model(tiny_dir, block_size=3)
    texts = [PHRASES[i] for i in picks]
    result = model.deduplicate(texts, threshold=threshold)
    # reference: exact copies first, then the greedy walk over distinct texts
    distinct = list(dict.fromkeys(texts))
    vectors = model.embed(distinct)
    sims = vectors.astype(np.float64) @ vectors.T.astype(np.float64)
    assume(np.all(np.abs(sims - threshold) > 1e-5))
    kept, duplicate_of = brute_force_greedy(sims, threshold)
    expected_removed, expected_of, expected_exact = [], [], []
    first_index = {}
    for i, text in enumerate(texts):
        row = distinct.index(text)
        if text in first_index:
            expected_removed.append(i)
            if row in kept:
                expected_of.append(first_index[text])
                expected_exact.append(True)
            else:
                expected_of.append(texts.index(distinct[duplicate_of[row]]))
                expected_exact.append(False)
            continue
        first_index[text] = i
        if row not in kept:
            expected_removed.append(i)
            expected_of.append(texts.index(distinct[duplicate_of[row]]))
            expected_exact.append(False)
    assert list(result.removed) == expected_removed
    assert list(result.duplicate_of) == expected_of
    assert list(result.exact) == expected_exact
    assert sorted(result.kept.tolist() + result.removed.tolist()) == list(range(len(texts)))
    np.testing.assert_array_equal(result.scores[result.exact], 1.0)


# --------------------------------------------------------------------- cluster
def planted_clusters(k: int = 3, per: int = 15, dim: int = 8, noise: float = 0.05, seed: int = 0):
    rng = np.random.default_rng(seed)
    centers = np.eye(dim)[:k]
    truth = np.repeat(np.arange(k), per)
    points = centers[truth] + noise * rng.standard_normal((k * per, dim))
    order = rng.permutation(len(points))
    return points[order].astype(np.float32), truth[order]


def same_partition(labels: np.ndarray, truth: np.ndarray) -> bool:
    pairs = set(zip(labels.tolist(), truth.tolist()))
    return len(pairs) == len(set(labels.tolist())) == len(set(truth.tolist()))


@pytest.mark.parametrize("seed", [0, 1, 2, None])
def test_cluster_separates_planted_clusters(tiny: lightembed.LightEmbed, seed: int | None) -> None:
    points, truth = planted_clusters()
    result = tiny.cluster(points, 3, seed=seed)
    assert isinstance(result, lightembed.ClusterResult)
    assert result.labels.shape == (len(points),)
    assert same_partition(result.labels, truth)
    assert sorted(result.sizes.tolist()) == [15, 15, 15]
    np.testing.assert_allclose(np.linalg.norm(result.centroids, axis=1), 1.0, atol=1e-5)
    assert set(result.members(int(result.labels[0]))) == set(np.flatnonzero(result.labels == result.labels[0]))


def test_cluster_seed_zero_is_deterministic(tiny: lightembed.LightEmbed) -> None:
    points, _ = planted_clusters(k=4, per=10, noise=0.4, seed=3)
    a = tiny.cluster(points, 4, seed=0)
    b = tiny.cluster(points, 4, seed=0)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.centroids, b.centroids)
    assert a.inertia == b.inertia


@pytest.mark.parametrize("k", [0, -2, 46, True])
def test_cluster_with_k_out_of_range_raises(tiny: lightembed.LightEmbed, k: int) -> None:
    points, _ = planted_clusters()
    with pytest.raises(ValueError, match="k"):
        tiny.cluster(points, k)


def test_cluster_with_k_equal_to_n(tiny: lightembed.LightEmbed) -> None:
    points = angles(0, 100, 200, 300)
    result = tiny.cluster(points, 4, seed=0)
    assert sorted(result.labels.tolist()) == [0, 1, 2, 3]
    assert result.inertia == pytest.approx(0.0, abs=1e-5)


def test_cluster_inertia_is_non_negative_and_matches_the_labels(tiny: lightembed.LightEmbed) -> None:
    points, _ = planted_clusters(k=3, per=12, noise=0.5, seed=4)
    result = tiny.cluster(points, 3, seed=0)
    unit = points / np.linalg.norm(points, axis=1, keepdims=True)
    own = np.sum(unit * result.centroids[result.labels], axis=1)
    assert result.inertia >= 0.0
    assert result.inertia == pytest.approx(float(np.sum(1.0 - own)), rel=1e-4, abs=1e-5)
    np.testing.assert_array_equal(result.labels, np.argmax(unit @ result.centroids.T, axis=1))


def test_cluster_returns_the_best_of_n_init(tiny: lightembed.LightEmbed, monkeypatch: pytest.MonkeyPatch) -> None:
    points, _ = planted_clusters(k=5, per=8, noise=0.8, seed=7)
    seen: list[float] = []
    original = cluster_module._lloyd

    def recording(*args, **kwargs):
        result = original(*args, **kwargs)
        seen.append(result.inertia)
        return result

    monkeypatch.setattr(cluster_module, "_lloyd", recording)
    best = tiny.cluster(points, 5, n_init=6, seed=11)
    assert len(seen) == 6
    assert best.inertia == min(seen)
    single = tiny.cluster(points, 5, n_init=1, seed=11)
    assert best.inertia <= single.inertia
    assert single.inertia == seen[0]  # the first restart uses the same random stream


def test_cluster_texts_and_binary_codes(tiny: lightembed.LightEmbed, binary_model: lightembed.LightEmbed) -> None:
    texts = ["cat dog", "dog cat", "cat dog bird", "piano song", "song piano", "guitar piano song"]
    by_text = tiny.cluster(texts, 2, seed=0)
    by_vector = tiny.cluster(tiny.embed(texts), 2, seed=0)
    np.testing.assert_array_equal(by_text.labels, by_vector.labels)
    codes = binary_model.embed(texts)
    by_codes = binary_model.cluster(codes, 2, seed=0)
    assert by_codes.centroids.shape == (2, 16)
    np.testing.assert_array_equal(by_codes.labels, binary_model.cluster(texts, 2, seed=0).labels)


def test_cluster_bad_n_init_raises(tiny: lightembed.LightEmbed) -> None:
    with pytest.raises(ValueError, match="n_init"):
        tiny.cluster(angles(0, 90), 1, n_init=0)


def test_cluster_of_no_items_says_so(tiny: lightembed.LightEmbed) -> None:
    for k in (1, 3):
        with pytest.raises(ValueError, match="the input has no items"):
            tiny.cluster([], k)
        with pytest.raises(ValueError, match="the input has no items"):
            cluster_module.spherical_kmeans(np.zeros((0, 4), dtype=np.float32), k)


@pytest.mark.parametrize("k", [1, 5, 300])
def test_cluster_sums_add_each_row_to_its_label(k: int) -> None:
    rng = np.random.default_rng(k)
    rows = rng.normal(size=(500, 6)).astype(np.float32)
    labels = rng.integers(0, k, 500)
    sums = np.ones((k, 6), dtype=np.float32)
    cluster_module._add_cluster_sums(sums, rows, labels)
    expected = np.ones((k, 6))
    np.add.at(expected, labels, rows.astype(np.float64))
    np.testing.assert_allclose(sums, expected, rtol=1e-5, atol=1e-4)


def test_cluster_inertia_is_never_negative() -> None:
    rng = np.random.default_rng(0)
    unit = unit_rows(rng.standard_normal((300, 16)).astype(np.float32))
    result = cluster_module.spherical_kmeans(unit, 300, n_init=1, seed=0)  # every row its own centroid
    assert 0.0 <= result.inertia < 1e-4  # float32 cosines of a row with itself can round above 1


def test_cluster_memory_does_not_grow_with_k_times_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    points = rng.normal(size=(2048, 8)).astype(np.float32)
    unit = points / np.linalg.norm(points, axis=1, keepdims=True)
    expected = cluster_module.spherical_kmeans(unit, 1024, n_init=1, max_iter=3, seed=0)
    monkeypatch.setattr(cluster_module, "ASSIGN_ENTRIES", 1 << 14, raising=False)  # blocks of 16 rows
    tracemalloc.start()
    try:
        result = cluster_module.spherical_kmeans(unit, 1024, n_init=1, max_iter=3, seed=0)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2**21, peak  # [2048 x 1024] float32 similarities alone take 8 MiB
    np.testing.assert_array_equal(result.labels, expected.labels)
    np.testing.assert_allclose(result.centroids, expected.centroids, atol=1e-6)


# --------------------------------------------------------------------- rerank
def test_maxsim_scores_hand_computed(monkeypatch: pytest.MonkeyPatch) -> None:
    query = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    doc_tokens = np.array(
        [
            [1.0, 0.0],  # doc 0
            [0.6, 0.8],  # doc 1
            [0.0, 1.0],  # doc 1
            # doc 2 has no tokens
            [-1.0, 0.0],  # doc 3
            [0.8, -0.6],  # doc 4
            [0.6, 0.8],  # doc 4
        ],
        dtype=np.float32,
    )
    lengths = np.array([1, 2, 0, 1, 2])
    expected = [
        (1.0 + 0.0) / 2,
        (max(0.6, 0.0) + max(0.8, 1.0)) / 2,
        0.0,
        (-1.0 + 0.0) / 2,
        (max(0.8, 0.6) + max(-0.6, 0.8)) / 2,
    ]
    scores = maxsim_scores(query, doc_tokens, lengths)
    assert scores.dtype == np.float32
    np.testing.assert_allclose(scores, expected, atol=1e-6)
    monkeypatch.setattr(rerank_module, "MAXSIM_BLOCK", 2)  # one document per block
    np.testing.assert_allclose(maxsim_scores(query, doc_tokens, lengths), expected, atol=1e-6)


def test_maxsim_reads_document_token_rows_a_block_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    tokens = rng.standard_normal((500, 8)).astype(np.float32)
    tokens /= np.linalg.norm(tokens, axis=1, keepdims=True)
    query, lengths = tokens[:3], rng.integers(0, 12, size=80)
    lengths[-1] = 500 - lengths[:-1].sum()  # the last document takes the rest (the lengths cover every row)
    assert lengths[-1] > 0
    whole = maxsim_scores(query, tokens, lengths)

    class Recorded:
        def __init__(self) -> None:
            self.sizes: list[int] = []

        def __getitem__(self, rows: slice) -> np.ndarray:
            self.sizes.append(rows.stop - rows.start)
            return tokens[rows]

    monkeypatch.setattr(rerank_module, "MAXSIM_BLOCK", 8 * 20)  # 20 rows of width 8 at a time
    recorded = Recorded()
    np.testing.assert_allclose(maxsim_scores(query, recorded, lengths), whole, atol=1e-6)
    assert len(recorded.sizes) > 10 and max(recorded.sizes) <= max(20, lengths.max())


def test_maxsim_scores_stay_within_one() -> None:
    query = np.array([[1.0, 0.0]], dtype=np.float32)
    doc_tokens = np.array(
        [[np.nextafter(np.float32(1.0), np.float32(2.0)), 0.0]], dtype=np.float32
    )  # rounded unit rows
    assert maxsim_scores(query, doc_tokens, np.array([1]))[0] == np.float32(1.0)


def test_maxsim_with_empty_query_or_no_docs() -> None:
    tokens = np.eye(2, dtype=np.float32)
    np.testing.assert_array_equal(maxsim_scores(np.zeros((0, 2), np.float32), tokens, np.array([2])), [0.0])
    assert maxsim_scores(tokens, np.zeros((0, 2), np.float32), np.zeros(0, dtype=np.int64)).shape == (0,)
    np.testing.assert_array_equal(maxsim_scores(tokens, np.zeros((0, 2), np.float32), np.array([0, 0])), [0, 0])


def test_rerank_scores_are_maxsim_over_token_vectors(tiny: lightembed.LightEmbed) -> None:
    query = "cat sat on the mat"
    docs = ["the cat sat", "piano song", "", "xyzzy plugh", "a dog sat on a mat"]
    hits = tiny.rerank(query, docs)
    q = tiny.token_vectors(query)
    assert q.shape == (5, 16)
    expected = []
    for doc in docs:
        d = tiny.token_vectors(doc)
        expected.append(float((q @ d.T).max(axis=1).mean()) if len(d) else 0.0)
    by_index = {h.index: h.score for h in hits}
    np.testing.assert_allclose([by_index[i] for i in range(len(docs))], expected, atol=1e-5)
    assert by_index[2] == 0.0
    assert by_index[3] == 0.0
    assert [h.score for h in hits] == sorted(by_index.values(), reverse=True)
    assert all(h.text == docs[h.index] for h in hits)


def test_rerank_single_doc_and_top_k(tiny: lightembed.LightEmbed) -> None:
    hits = tiny.rerank("cat", ["the cat"])
    assert len(hits) == 1
    assert hits[0].index == 0
    assert hits[0].score == pytest.approx(1.0, abs=1e-5)
    top = tiny.rerank("cat sat", DOCS, k=2)
    assert len(top) == 2
    assert top[0].index == 0
    assert tiny.rerank("cat", []) == []
    with pytest.raises(ValueError, match="k must be"):
        tiny.rerank("cat", DOCS, k=0)
    with pytest.raises(TypeError):
        tiny.rerank("cat", tiny.embed(DOCS))


# --------------------------------------------------------------------- split
ANIMALS = [
    "The cat sat on the mat.",
    "A dog ran in the park.",
    "The bird flew over the tree.",
    "The small cat and the big dog ran.",
    "A bird sat in the tree.",
    "The dog sat on the mat.",
]
MUSIC = [
    "Play a happy song on the piano.",
    "The guitar music is slow.",
    "A sad song on the guitar.",
    "Play the piano music fast.",
    "A happy song and a sad song.",
    "Guitar and piano music.",
]


@pytest.fixture(scope="module")
def topic_model(tmp_path_factory: pytest.TempPathFactory) -> lightembed.LightEmbed:
    """The tiny vocabulary with a codebook where animal words and music words point two ways."""
    rng = np.random.default_rng(0)
    vocab = SPECIALS + WORDS
    table = 0.1 * rng.standard_normal((len(vocab), 8)).astype(np.float32)
    for word in ("cat", "dog", "bird", "sat", "mat", "ran", "park", "flew", "tree"):
        table[vocab.index(word), 0] += 1.0
    for word in ("music", "song", "play", "guitar", "piano", "happy", "sad", "slow", "fast"):
        table[vocab.index(word), 1] += 1.0
    config = ModelConfig(dim=8, vocab_size=len(vocab), ignore_token_ids=(0, 1))
    folder = write_model(tmp_path_factory.mktemp("topic") / "model", config, table, tiny_tokenizer())
    return lightembed.load(folder)


def test_split_cuts_at_the_topic_boundary(topic_model: lightembed.LightEmbed) -> None:
    animals, music = " ".join(ANIMALS) + " ", " ".join(MUSIC)
    text = animals + music
    for target in (len(text) - 1, len(text) // 2 + 40, max(len(animals), len(music)) + 5):
        chunks = topic_model.split(text, target_size=target)
        assert chunks == [animals, music], target


def test_split_chunks_concatenate_to_the_text_and_fit_the_target(tiny: lightembed.LightEmbed) -> None:
    text = " ".join(ANIMALS + MUSIC) + "\n\n" + "cat " * 300 + "\nend"
    for target in (1, 7, 25, 60, 200, 1000):
        chunks = tiny.split(text, target_size=target)
        assert "".join(chunks) == text
        assert all(0 < len(c) <= target for c in chunks)


def test_split_short_and_empty_text(tiny: lightembed.LightEmbed) -> None:
    assert tiny.split("", target_size=10) == []
    assert tiny.split("the cat sat.", target_size=100) == ["the cat sat."]


def test_split_bad_arguments_raise(tiny: lightembed.LightEmbed) -> None:
    with pytest.raises(ValueError, match="target_size"):
        tiny.split("the cat", target_size=0)
    with pytest.raises(ValueError, match="window"):
        tiny.split("the cat sat. the dog ran.", target_size=5, window=0)
    with pytest.raises(TypeError):
        tiny.split(["the cat"])


def test_split_with_a_binary_model(binary_model: lightembed.LightEmbed) -> None:
    text = " ".join(ANIMALS + MUSIC)
    chunks = binary_model.split(text, target_size=100)
    assert "".join(chunks) == text
    assert all(len(c) <= 100 for c in chunks)


@settings(max_examples=60, deadline=None)
@given(
    words=st.lists(st.sampled_from(WORDS + ["xyzzy", ".", "!", "\n", "?", "  ", "\t"]), max_size=80),
    target=st.integers(1, 120),
)
def test_split_property_concatenation_and_size(tiny_dir: Path, words: list[str], target: int) -> None:
    model = _cached_model(tiny_dir)
    text = " ".join(words)
    chunks = model.split(text, target_size=target)
    assert "".join(chunks) == text
    assert all(0 < len(c) <= target for c in chunks)


_MODELS: dict[tuple[Path, int], lightembed.LightEmbed] = {}


def _cached_model(folder: Path, block_size: int = 2048) -> lightembed.LightEmbed:
    """One model per folder and block size across hypothesis examples (fixtures are not reset there)."""
    key = (folder, block_size)
    if key not in _MODELS:
        _MODELS[key] = lightembed.load(folder, block_size=block_size)
    return _MODELS[key]


def test_cluster_with_fewer_distinct_items_than_k_stops_early() -> None:
    unit = np.repeat(np.eye(3, dtype=np.float32), 4, axis=0)  # 12 items, 3 distinct
    result = cluster_module.spherical_kmeans(unit, 5, seed=0, max_iter=50)
    assert result.n_iter < 50
    assert result.inertia == pytest.approx(0.0, abs=1e-6)
    np.testing.assert_allclose(np.linalg.norm(result.centroids, axis=1), 1.0, atol=1e-6)


def test_pair_similarity_of_codes_whose_bits_are_not_whole_bytes(tiny_dir: Path) -> None:
    model = lightembed.load(tiny_dir, binary=True, dim=13)
    a, b = DOCS[:3], DOCS[2:5]
    np.testing.assert_allclose(model.pair_similarity(a, b), np.diag(model.similarity(a, b)), atol=1e-6)


def test_an_exact_copy_of_a_removed_item_reports_its_first_copys_score(tiny: lightembed.LightEmbed) -> None:
    result = tiny.deduplicate(["the cat sat on a mat", "the cat sat on the mat", "the cat sat on the mat"], 0.8)
    assert result.removed.tolist() == [1, 2] and result.exact.tolist() == [False, False]  # not copies of a kept item
    assert result.scores[1] == pytest.approx(result.scores[0]) and result.scores[0] < 1.0 - 1e-4


def test_documented_default_thresholds(tiny: lightembed.LightEmbed) -> None:
    assert tiny.deduplicate(DOCS).threshold == 0.9
    query = np.array([1.0, 0.0], np.float32)
    docs = np.array([[1.0, 0.0], [0.55, math.sqrt(1 - 0.55**2)], [0.45, math.sqrt(1 - 0.45**2)]], np.float32)
    assert [hit.index for hit in tiny.filter(query, docs)] == [0, 1]  # filter: 0.5


def test_token_vectors_follow_the_model2vec_mapping(tmp_path: Path) -> None:
    from safetensors.numpy import load_file
    from test_folder import write_model2vec

    folder = write_model2vec(tmp_path / "m2v", weights=False, mapping=True)
    model = lightembed.load(folder)
    tensors = load_file(str(folder / "model.safetensors"))
    ids = model.tokens.encode(["the cat sat"])[0]
    expected = unit_rows(tensors["embeddings"][tensors["mapping"][ids]])
    np.testing.assert_allclose(model.token_vectors("the cat sat"), expected, atol=1e-6)


def test_token_vectors_go_through_the_projection_weight(tmp_path: Path) -> None:
    from test_folder import stored_table, write_with_parts

    rng = np.random.default_rng(1)
    weight, bias = rng.standard_normal((6, 16)).astype(np.float32), rng.standard_normal(6).astype(np.float32)
    folder = write_with_parts(tmp_path, {"projection.weight": weight, "projection.bias": bias}, projection=True)
    model = lightembed.load(folder)
    ids = model.tokens.encode(["the cat sat"])[0]
    expected = unit_rows(stored_table()[ids] @ weight.T)  # a bias added to every token would only pull them together
    np.testing.assert_allclose(model.token_vectors("the cat sat"), expected, atol=1e-5)


def test_split_links_compare_a_window_of_sentences_on_each_side() -> None:
    from lightembed.split import _link_similarity

    vectors = np.array([[1, 0], [1, 0], [0, 1], [1, 0]], np.float64)
    assert _link_similarity(vectors, 2)[1] == pytest.approx(1 / math.sqrt(2))  # (2, 0) against (1, 1)


def test_split_links_beside_a_sentence_without_tokens_are_full_and_a_chunk_of_the_target_size_is_kept() -> None:
    from lightembed.split import _link_similarity, semantic_split

    # a sentence of no known tokens (a zero vector) is no reason to cut beside it
    assert _link_similarity(np.array([[1.0, 0.0], [0.0, 0.0], [1.0, 0.0]]), 1).tolist() == [1.0, 1.0]

    def embed(sentences: list[str]) -> np.ndarray:
        return np.array([[1.0, 0.0] if s[0] in "ab" else [0.0, 1.0] for s in sentences])

    # sentences of 6, 6, 6 and 5 characters: two chunks of exactly 12 and 11, not cut again
    assert semantic_split("aaaa. bbbb. cccc. dddd.", embed, target_size=12) == ["aaaa. bbbb. ", "cccc. dddd."]


@pytest.mark.parametrize("window", [1, 3, 40])
def test_split_links_are_computed_in_blocks_with_bounded_memory(monkeypatch: pytest.MonkeyPatch, window: int) -> None:
    from lightembed import split

    rng = np.random.default_rng(0)
    vectors = unit_rows(rng.standard_normal((3000, 64))).astype(np.float32)
    cumulative = np.vstack([np.zeros((1, 64)), np.cumsum(vectors, axis=0, dtype=np.float64)])
    b = np.arange(1, 3000)
    left = cumulative[b] - cumulative[np.maximum(b - window, 0)]
    right = cumulative[np.minimum(b + window, 3000)] - cumulative[b]
    expected = (left * right).sum(1) / (np.linalg.norm(left, axis=1) * np.linalg.norm(right, axis=1))
    monkeypatch.setattr(split, "LINK_BLOCK", 100)
    tracemalloc.start()
    try:
        links = split._link_similarity(vectors, window)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    np.testing.assert_allclose(links, expected, rtol=1e-12, atol=1e-12)
    assert peak < vectors.nbytes // 2, peak  # blocks of 100 boundaries, not float64 sums of every row


def test_split_penalises_slivers() -> None:
    from lightembed.split import _balanced

    assert int(np.argmin(_balanced(np.array([0.0, 0.3]), np.array([5, 50]), 100))) == 1


def test_kmeans_ends_at_a_fixed_point() -> None:
    rng = np.random.default_rng(4)
    points = unit_rows(np.eye(8)[rng.integers(0, 4, 200)] + 0.6 * rng.standard_normal((200, 8)))
    result = cluster_module.spherical_kmeans(points, 4, n_init=1, seed=0)
    means = unit_rows(np.stack([points[result.labels == c].sum(0) for c in range(4)]))
    np.testing.assert_allclose(result.centroids, means, atol=1e-5)  # each centroid is its members' direction


def test_kmeans_reseeds_a_centre_that_wins_no_item() -> None:
    noise = 0.05 * np.random.default_rng(0).standard_normal((30, 3))
    points = unit_rows(np.abs(np.eye(3).repeat(10, 0) + noise).astype(np.float32))
    start = unit_rows(np.array([[1, 0, 0], [0, 1, 0], [-1, -1, -1]], np.float32))  # the third is nearest to nothing
    result = cluster_module._lloyd(points, start, np.ones(len(points), bool), 50, 1e-6)
    assert (result.sizes > 0).all()


def test_kmeans_plus_plus_seeds_far_apart() -> None:
    rng = np.random.default_rng(0)
    groups = [np.eye(3)[[g] * size] + 0.01 * rng.standard_normal((size, 3)) for g, size in enumerate([100, 2, 2])]
    points = unit_rows(np.concatenate(groups).astype(np.float32))
    for seed in range(5):  # uniform seeding would mostly pick two centres in the large group
        centres = cluster_module._kmeans_plus_plus(points, 3, np.random.default_rng(seed), np.ones(len(points), bool))
        assert sorted(np.argmax(centres, axis=1).tolist()) == [0, 1, 2]


def test_split_of_uniform_text_cuts_in_the_middle(tiny: lightembed.LightEmbed) -> None:
    text = "the cat sat. " * 800  # every link the same: only the size penalties choose
    chunks = tiny.split(text, target_size=1500)
    assert "".join(chunks) == text and len(chunks) == 8  # 10,400 characters halved three times
    assert min(map(len, chunks)) > 1200


@pytest.mark.parametrize("block_size", [1, 2, 3, 4])
def test_a_tie_between_a_kept_row_of_an_earlier_block_and_one_of_the_same_block_goes_to_the_first(
    block_size: int,
) -> None:
    # row 3 scores exactly 0.6 with rows 0 and 2 (0.53 with row 1): it names row 0, however the blocks fall
    vectors = np.array([[1, 0, 0], [0, 0, 1], [0, 1, 0], [0.6, 0.6, np.sqrt(0.28)]], dtype=np.float32)
    result = deduplicate_vectors(vectors, 0.55, block_size=block_size)
    assert result.kept.tolist() == [0, 1, 2] and result.duplicate_of.tolist() == [0]
