"""Odd and bad input to the verbs: a clear error naming the argument, or a documented result."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import lightembed
from lightembed.cluster import spherical_kmeans
from lightembed.dedup import deduplicate_vectors
from lightembed.scoring import paired_similarity, similarity_matrix, unit_rows

DOCS = ["the cat sat on the mat", "a dog ran in the park", "red car drove down the road"]


def unit_vectors_with_rounding(n: int = 64, d: int = 256) -> np.ndarray:
    """Random float32 unit rows, some of whose self-cosines round below 1 and some above."""
    vectors = unit_rows(np.random.default_rng(0).normal(size=(n, d)))
    self_cosines = np.einsum("ij,ij->i", vectors, vectors)
    assert (self_cosines < 1.0).any() and (self_cosines > 1.0).any()  # the case the tests are about
    return vectors


# --------------------------------------------------------------------- texts given as arrays
def test_a_zero_dimensional_text_array_is_refused_not_split_into_characters(tiny: lightembed.LightEmbed) -> None:
    one = np.array("the cat")
    for call in (
        lambda: tiny.embed(one),
        lambda: tiny.similarity(one, "the cat"),
        lambda: tiny.rank("cat", one),
        lambda: tiny.deduplicate(one),
        lambda: tiny.rerank("cat", one),
    ):
        with pytest.raises(TypeError, match="1-D array of texts"):
            call()


def test_similarity_of_a_text_array_has_one_score_per_text(tiny: lightembed.LightEmbed) -> None:
    as_array = tiny.similarity(np.array(DOCS), DOCS[0])
    np.testing.assert_allclose(as_array, tiny.similarity(DOCS, DOCS[0]))
    assert as_array.shape == (3,)
    assert tiny.similarity(np.array(DOCS), DOCS[:2]).shape == (3, 2)


@pytest.mark.parametrize("shape", [(1, 2, 8), (4, 2, 8), ()])
def test_vector_arrays_that_are_not_one_or_two_dimensional_raise(tiny: lightembed.LightEmbed, shape: tuple) -> None:
    array = np.ones(shape, dtype=np.float32)
    with pytest.raises(ValueError, match="shape"):
        tiny.similarity(array, np.ones(16, dtype=np.float32))
    with pytest.raises(ValueError, match="shape"):
        tiny.deduplicate(array)


def test_iter_embed_takes_a_bare_string_as_one_text(tiny: lightembed.LightEmbed) -> None:
    blocks = list(tiny.iter_embed("the cat"))
    assert len(blocks) == 1 and blocks[0].shape == (1, tiny.dim)
    np.testing.assert_array_equal(blocks[0][0], tiny.embed("the cat"))
    with pytest.raises(TypeError, match="None"):
        list(tiny.iter_embed(None))


def test_key_primed_with_a_bare_string_caches_that_text(tiny: lightembed.LightEmbed) -> None:
    key = tiny.key("cat", "the cat")
    assert list(key.cache) == ["the cat"]


def test_finite_float64_vectors_beyond_float32_range_keep_their_direction(tiny: lightembed.LightEmbed) -> None:
    huge = np.zeros(16)
    huge[:2] = [3e300, 4e300]
    direction = np.zeros(16, dtype=np.float32)
    direction[:2] = [0.6, 0.8]
    assert tiny.similarity(huge, direction) == pytest.approx(1.0, abs=1e-6)


# --------------------------------------------------------------------- numbers
@pytest.mark.parametrize("batch_size", [1.5, None, 0, True])
def test_bad_batch_sizes_raise(tiny_dir: Path, tiny: lightembed.LightEmbed, batch_size: object) -> None:
    with pytest.raises(ValueError, match="batch_size"):
        tiny.embed(DOCS, batch_size=batch_size if batch_size is not None else 0)
    if batch_size is not None:
        with pytest.raises(ValueError, match="batch_size"):
            lightembed.load(tiny_dir, batch_size=batch_size)


@pytest.mark.parametrize("threshold", ["0.5", None, np.array([0.5]), True])
def test_thresholds_that_are_not_numbers_raise(tiny: lightembed.LightEmbed, threshold: object) -> None:
    with pytest.raises(ValueError, match="threshold"):
        tiny.filter("cat", DOCS, threshold=threshold)
    with pytest.raises(ValueError, match="threshold"):
        tiny.deduplicate(DOCS, threshold=threshold)


@pytest.mark.parametrize("seed", [-1, 1.5, "0"])
def test_bad_seeds_raise(tiny: lightembed.LightEmbed, seed: object) -> None:
    with pytest.raises(ValueError, match="seed"):
        tiny.cluster(DOCS, 2, seed=seed)
    with pytest.raises(ValueError, match="seed"):
        tiny.deduplicate(DOCS, mode="partitioned", seed=seed)


@pytest.mark.parametrize(("name", "value"), [("n_init", 1.5), ("max_iter", None), ("max_iter", 0)])
def test_bad_cluster_counts_raise(tiny: lightembed.LightEmbed, name: str, value: object) -> None:
    with pytest.raises(ValueError, match=name):
        tiny.cluster(DOCS, 2, **{name: value})


@pytest.mark.parametrize(("name", "value"), [("target_size", 1.5), ("target_size", None), ("window", 2.0)])
def test_bad_split_sizes_raise(tiny: lightembed.LightEmbed, name: str, value: object) -> None:
    with pytest.raises(ValueError, match=name):
        tiny.split("the cat sat. the dog ran.", **{name: value})


# --------------------------------------------------------------------- float32 rounding
def test_cosines_never_leave_minus_one_to_one() -> None:
    vectors = unit_vectors_with_rounding()
    assert similarity_matrix(vectors, vectors).max() <= 1.0
    assert similarity_matrix(vectors, -vectors).min() >= -1.0
    assert paired_similarity(vectors, vectors).max() <= 1.0


def test_threshold_one_finds_every_identical_vector() -> None:
    vectors = unit_vectors_with_rounding()
    copies = np.concatenate([vectors, vectors])
    result = deduplicate_vectors(copies, 1.0)
    np.testing.assert_array_equal(result.kept, np.arange(len(vectors)))
    np.testing.assert_array_equal(result.duplicate_of, np.arange(len(vectors)))


def test_filter_at_threshold_one_keeps_identical_texts() -> None:
    model = lightembed.load()  # the bundled default: its cosine of "cat" with itself rounds below 1 here
    docs = ["cat", "dog", "car", "", "cat"]
    assert [hit.index for hit in model.filter("cat", docs, threshold=1.0)] == [0, 4]


# --------------------------------------------------------------------- empty texts
def test_clustering_empty_texts_converges_with_unit_centroids(tiny: lightembed.LightEmbed) -> None:
    result = tiny.cluster(["", "", "the cat"], 2, seed=0, max_iter=50)
    assert result.n_iter < 50
    np.testing.assert_array_equal(result.labels, [0, 0, 0])
    np.testing.assert_allclose(np.linalg.norm(result.centroids, axis=1), 1.0, atol=1e-6)


def test_clustering_only_zero_rows_gives_zero_centroids() -> None:
    result = spherical_kmeans(np.zeros((4, 8), dtype=np.float32), 2, seed=0, max_iter=50)
    assert result.n_iter < 50
    np.testing.assert_array_equal(result.labels, 0)
    np.testing.assert_array_equal(result.centroids, 0.0)


def test_binary_codes_of_empty_texts_are_all_zero_and_match_each_other(tiny_dir: Path) -> None:
    binary = lightembed.load(tiny_dir, binary=True)
    np.testing.assert_array_equal(binary.embed(["", "   "]), 0)
    assert binary.similarity("", "   ") == 1.0


# --------------------------------------------------------------------- long texts, ties, arrays
@pytest.mark.parametrize("padding", ["\n" * 9_000, "\u200b" * 20_000, " " * 100_000])
def test_words_after_a_long_run_of_blanks_are_still_read(padding: str) -> None:
    model = lightembed.load()  # the character pre-cut (16 per allowed token) ends inside the padding
    text = "the moon causes the tides"
    assert model.similarity(padding + text, text) == pytest.approx(1.0, abs=1e-6)
    _, lengths = model.tokens.encode([padding + (text + " ") * 200, text])
    assert lengths.tolist() == [model.tokens.max_length, 5]  # the token cap still holds


def test_a_text_is_read_up_to_1024_characters_per_allowed_token() -> None:
    model = lightembed.load()  # 512 tokens: 524,288 characters
    _, lengths = model.tokens.encode([" " * 524_000 + "the moon", " " * 525_000 + "the moon"])
    assert lengths.tolist() == [2, 0]  # the words after 524,288 characters are not read


def test_identical_documents_tie_and_keep_their_order() -> None:
    model = lightembed.load()
    docs = ["a cat sat"] * 7
    assert [hit.index for hit in model.rank("cat", docs)] == list(range(7))
    assert model.topk("cat", docs, k=1)[0].index == 0
    assert len({hit.score for hit in model.rank("cat", docs)}) == 1


def test_binary_codes_with_padding_bits_set_are_refused() -> None:
    nine_bits = lightembed.load(binary=True, dim=9)
    codes = nine_bits.embed(["a cat sat on the mat", "football tonight"])
    assert codes.shape == (2, 2) and not (codes[:, 1] & 0x7F).any()
    assert -1.0 <= nine_bits.similarity(codes[0], codes[1]) <= 1.0
    sixteen_bits = lightembed.load(binary=True, dim=16).embed(["a cat sat on the mat", "football tonight"])
    with pytest.raises(ValueError, match="bits set after bit 9"):
        nine_bits.similarity(sixteen_bits, sixteen_bits)
    with pytest.raises(ValueError, match="bits set after bit 9"):
        nine_bits.topk(codes[0], np.array([[0xFF, 0xFF]], np.uint8))


@pytest.mark.parametrize(
    "array", [np.array([b"hello", b"world"]), np.ones(16, complex), np.array(["2020-01-01"], "datetime64[D]")]
)
def test_arrays_that_are_neither_texts_nor_real_vectors_are_refused(tiny: lightembed.LightEmbed, array) -> None:
    for call in (lambda: tiny.similarity(array, "the cat"), lambda: tiny.embed(array), lambda: tiny.rank("cat", array)):
        with pytest.raises(TypeError, match=re.escape(f"array of dtype {array.dtype}")):
            call()


def test_zero_width_vectors_and_codes_are_refused(tiny: lightembed.LightEmbed) -> None:
    for empty in (np.zeros((3, 0), np.uint8), np.zeros((3, 0), np.float32)):
        with pytest.raises(ValueError, match="width 0"):
            tiny.topk(empty[0], empty, k=2)


def test_bad_arguments_fail_at_the_call_not_later(tiny: lightembed.LightEmbed) -> None:
    with pytest.raises(TypeError, match="got None"):
        tiny.iter_embed(None)
    with pytest.raises(ValueError, match="batch_size"):
        tiny.iter_embed(["the cat"], batch_size=0)
    with pytest.raises(ValueError, match="expected one query, got 2"):
        tiny.key(["the cat", "a dog"])


def test_windows_line_endings_are_not_part_of_the_texts(tmp_path: Path) -> None:
    from lightembed.textio import InputSpec, read_pairs, read_texts

    path = tmp_path / "in.txt"
    path.write_bytes(b"the cat\r\na dog\r\n")
    assert read_texts(InputSpec(str(path))) == ["the cat", "a dog"]
    pairs = tmp_path / "pairs.tsv"
    pairs.write_bytes(b"a\tb\r\n")
    assert read_pairs(InputSpec(str(pairs))) == [("a", "b")]
