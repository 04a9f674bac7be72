"""Embedding: shapes, dtypes, streaming, odd inputs, Matryoshka truncation, binary codes, pooling."""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tiny import SPECIALS, WORDS, tiny_codebook, write_tiny_model

import lightembed
from lightembed.pooling import mean_pool

TEXTS = [
    "the cat sat on the mat",
    "a dog ran in the park",
    "the bird flew over the tree",
    "red car drove down the road",
    "play a happy song on the piano",
    "big slow dog",
    "guitar music",
]
VOCAB = {token: i for i, token in enumerate(SPECIALS + WORDS)}


def naive_pooled(text: str, dim: int = 16) -> np.ndarray:
    """Mean of the (float16-stored) codebook rows of the known words of `text`, unnormalised."""
    table = tiny_codebook(dim).astype(np.float16).astype(np.float64)
    ids = [VOCAB[w] for w in re.findall(r"\w+|[^\w\s]+", text.lower()) if w in VOCAB]
    if not ids:
        return np.zeros(dim)
    return table[ids].mean(axis=0)


def unit(v: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(v, axis=-1, keepdims=True)
    return np.divide(v, norm, out=np.zeros_like(v, dtype=np.float64), where=norm > 0)


@pytest.fixture(scope="module")
def raw_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model without normalisation: `embed` gives the pooled mean itself."""
    return write_tiny_model(tmp_path_factory.mktemp("raw") / "model", normalize=False)


# --------------------------------------------------------------------- shapes and dtypes
def test_list_gives_float32_matrix_of_unit_rows(tiny: lightembed.LightEmbed) -> None:
    out = tiny.embed(TEXTS)
    assert out.shape == (len(TEXTS), 16)
    assert out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)


def test_single_string_gives_1d_vector_equal_to_its_row(tiny: lightembed.LightEmbed) -> None:
    one = tiny.embed(TEXTS[0])
    assert one.shape == (16,)
    assert one.dtype == np.float32
    np.testing.assert_array_equal(one, tiny.embed(TEXTS)[0])


def test_output_width_and_dtype_properties(tiny_dir: Path) -> None:
    model = lightembed.load(tiny_dir)
    assert (model.output_width, model.output_dtype) == (16, np.float32)
    binary = lightembed.load(tiny_dir, binary=True, dim=13)
    assert (binary.output_width, binary.output_dtype, binary.bits) == (2, np.uint8, 13)
    assert model.bits is None


def test_list_tuple_generator_and_array_give_identical_results(tiny: lightembed.LightEmbed) -> None:
    expected = tiny.embed(TEXTS)
    np.testing.assert_array_equal(tiny.embed(tuple(TEXTS)), expected)
    np.testing.assert_array_equal(tiny.embed(t for t in TEXTS), expected)
    np.testing.assert_array_equal(tiny.embed(np.array(TEXTS)), expected)


def test_generator_streamed_in_small_blocks_equals_one_block(tiny_dir: Path) -> None:
    one_block = lightembed.load(tiny_dir).embed(TEXTS, batch_size=len(TEXTS))
    streamed = lightembed.load(tiny_dir, batch_size=2).embed(t for t in TEXTS)
    np.testing.assert_array_equal(streamed, one_block)
    np.testing.assert_array_equal(lightembed.load(tiny_dir).embed(iter(TEXTS), batch_size=2), one_block)


class _MiscountedTexts(Sequence):
    """A sequence whose len() is not the number of items it yields."""

    def __init__(self, items: list[str], length: int) -> None:
        self.items, self.length = items, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> str:
        if i >= len(self.items):
            raise IndexError(i)
        return self.items[i]


@pytest.mark.parametrize(("items", "length", "message"), [(2, 50, "gave 2 items but its len"), (90, 3, "more items")])
def test_a_sequence_whose_len_is_wrong_is_refused(
    tiny: lightembed.LightEmbed, items: int, length: int, message: str
) -> None:
    texts = _MiscountedTexts([TEXTS[i % len(TEXTS)] for i in range(items)], length)
    with pytest.raises(ValueError, match=message):
        tiny.embed(texts, batch_size=4)


def test_iter_embed_yields_blocks_of_batch_size(tiny: lightembed.LightEmbed) -> None:
    blocks = list(tiny.iter_embed(iter(TEXTS), batch_size=2))
    assert [len(b) for b in blocks] == [2, 2, 2, 1]
    np.testing.assert_array_equal(np.concatenate(blocks), tiny.embed(TEXTS))


def test_iter_embed_streams_an_endless_generator(tiny: lightembed.LightEmbed) -> None:
    endless = itertools.cycle(TEXTS)
    blocks = list(itertools.islice(tiny.iter_embed(endless, batch_size=3), 4))
    assert [len(b) for b in blocks] == [3, 3, 3, 3]
    np.testing.assert_array_equal(np.concatenate(blocks), tiny.embed([TEXTS[i % len(TEXTS)] for i in range(12)]))


def test_batch_size_below_one_raises(tiny: lightembed.LightEmbed, tiny_dir: Path) -> None:
    for bad in (0, -1):
        with pytest.raises(ValueError, match="batch_size"):
            list(tiny.iter_embed(TEXTS, batch_size=bad))
        with pytest.raises(ValueError, match="batch_size"):
            tiny.embed(TEXTS, batch_size=bad)
    with pytest.raises(ValueError, match="batch_size"):
        lightembed.load(tiny_dir, batch_size=0)


def test_progress_bar_goes_to_stderr(tiny: lightembed.LightEmbed, capsys: pytest.CaptureFixture[str]) -> None:
    out = tiny.embed(TEXTS, progress=True)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "embedding" in captured.err
    np.testing.assert_array_equal(out, tiny.embed(TEXTS))


def test_empty_list_gives_empty_float32_matrix(tiny: lightembed.LightEmbed, tiny_dir: Path) -> None:
    out = tiny.embed([])
    assert out.shape == (0, 16)
    assert out.dtype == np.float32
    assert tiny.embed(iter([])).shape == (0, 16)
    codes = lightembed.load(tiny_dir, binary=True).embed([])
    assert codes.shape == (0, 2)
    assert codes.dtype == np.uint8


@pytest.mark.parametrize("text", ["", " ", "   \t\n  ", "xyzzy", "?!"])
def test_text_without_known_tokens_gives_zero_vector(tiny: lightembed.LightEmbed, text: str) -> None:
    out = tiny.embed(["cat", text, "dog"])
    assert np.isfinite(out).all()
    np.testing.assert_array_equal(out[1], np.zeros(16, dtype=np.float32))
    assert np.linalg.norm(out[0]) == pytest.approx(1.0, rel=1e-5)


def test_empty_text_gives_zero_vector_without_normalisation(raw_dir: Path) -> None:
    out = lightembed.load(raw_dir).embed(["", "cat"])
    np.testing.assert_array_equal(out[0], 0.0)
    assert np.isfinite(out).all()


# --------------------------------------------------------------------- long and odd inputs
def test_ten_megabyte_string_is_cut_to_max_length_tokens_quickly(tiny: lightembed.LightEmbed) -> None:
    rng = np.random.default_rng(1)
    head_words = [WORDS[i] for i in rng.integers(len(WORDS), size=tiny.config.max_length)]
    head = " ".join(head_words)
    huge = head + " music" * (10_000_000 // 6)
    assert len(huge) > 10_000_000
    start = time.perf_counter()
    vector = tiny.embed(huge)
    elapsed = time.perf_counter() - start
    assert elapsed < 3.0
    np.testing.assert_allclose(vector, tiny.embed(head), atol=1e-6)
    # the cut is at max_length tokens, not earlier: dropping the last head word changes the vector
    assert not np.allclose(vector, tiny.embed(head[: head.rfind(" ")]), atol=1e-5)


def test_lone_surrogates_embed_without_error(tiny: lightembed.LightEmbed) -> None:
    out = tiny.embed(["a\ud800b", "cat\udfffdog", "cat dog"])
    assert np.isfinite(out).all()
    # the surrogate becomes "?", which the tiny vocabulary does not know: it is ignored
    np.testing.assert_allclose(out[1], out[2], atol=1e-6)
    np.testing.assert_allclose(out[0], tiny.embed("a"), atol=1e-6)
    np.testing.assert_array_equal(tiny.embed("cat\udfffdog"), tiny.embed("cat?dog"))


def test_control_characters_embed_without_error(tiny: lightembed.LightEmbed) -> None:
    out = tiny.embed(["cat\x00dog", "cat\x1b[31mdog\x07", "\x00\x01\x02", "cat dog"])
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out[0], out[3], atol=1e-6)
    np.testing.assert_array_equal(out[2], 0.0)


# --------------------------------------------------------------------- type errors
@pytest.mark.parametrize(
    ("items", "message"),
    [
        (["a", "b", 3], r"texts\[2\] is int"),
        (["a", None], r"texts\[1\] is NoneType"),
        ([b"bytes"], r"texts\[0\] is bytes"),
        (("a", "b", "c", 4.5), r"texts\[3\] is float"),
    ],
)
def test_non_string_item_raises_type_error_naming_index_and_type(
    tiny: lightembed.LightEmbed, items: list, message: str
) -> None:
    with pytest.raises(TypeError, match=message):
        tiny.embed(items)


def test_non_string_item_in_a_later_block_names_its_global_index(tiny_dir: Path) -> None:
    model = lightembed.load(tiny_dir, batch_size=2)
    items = ["a", "b", "c", "d", "e", 5, "g"]
    with pytest.raises(TypeError, match=r"texts\[5\] is int"):
        model.embed(x for x in items)


@pytest.mark.parametrize("bad", [None, 3, b"bytes", np.zeros(3)])
def test_non_text_input_raises_type_error(tiny: lightembed.LightEmbed, bad: object) -> None:
    with pytest.raises(TypeError):
        tiny.embed(bad)


# --------------------------------------------------------------------- values
@pytest.mark.parametrize("text", TEXTS + ["The CAT, the Dog!"])
def test_pooled_vector_equals_naive_mean_of_codebook_rows(raw_dir: Path, text: str) -> None:
    raw = lightembed.load(raw_dir)
    np.testing.assert_allclose(raw.embed(text), naive_pooled(text), rtol=1e-5, atol=1e-6)


def test_normalised_vector_equals_unit_naive_mean(tiny: lightembed.LightEmbed) -> None:
    expected = np.stack([unit(naive_pooled(t)) for t in TEXTS])
    np.testing.assert_allclose(tiny.embed(TEXTS), expected, rtol=1e-5, atol=1e-6)


def test_unknown_tokens_are_ignored_in_the_mean(tiny: lightembed.LightEmbed) -> None:
    np.testing.assert_allclose(tiny.embed("cat xyzzy"), tiny.embed("cat"), atol=1e-7)
    np.testing.assert_allclose(tiny.embed("xyzzy cat plugh dog"), tiny.embed("cat dog"), atol=1e-7)
    assert not np.allclose(tiny.embed("cat dog"), tiny.embed("cat"), atol=1e-3)


@pytest.mark.parametrize("dim", [1, 4, 5, 8, 15, 16])
def test_dim_truncation_equals_slicing_the_pooled_vector_then_normalising(
    tiny_dir: Path, raw_dir: Path, dim: int
) -> None:
    full = lightembed.load(raw_dir).embed(TEXTS)
    truncated = lightembed.load(tiny_dir, dim=dim).embed(TEXTS)
    assert truncated.shape == (len(TEXTS), dim)
    np.testing.assert_allclose(truncated, unit(full[:, :dim].astype(np.float64)), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dim", [0, -1, 17, 1000])
def test_dim_outside_one_to_width_raises(tiny_dir: Path, dim: int) -> None:
    with pytest.raises(ValueError, match="dim"):
        lightembed.load(tiny_dir, dim=dim)


@pytest.mark.parametrize("dim", [True, 2.0, "4"])
def test_dim_of_wrong_type_raises(tiny_dir: Path, dim: object) -> None:
    with pytest.raises(ValueError, match="dim"):
        lightembed.load(tiny_dir, dim=dim)


@pytest.mark.parametrize("dim", [None, 1, 7, 8, 13, 16])
def test_binary_gives_packed_sign_bits_of_the_truncated_vector(tiny_dir: Path, raw_dir: Path, dim: int | None) -> None:
    full = lightembed.load(raw_dir).embed(TEXTS)
    bits = dim or 16
    codes = lightembed.load(tiny_dir, binary=True, dim=dim).embed(TEXTS)
    assert codes.dtype == np.uint8
    assert codes.shape == (len(TEXTS), (bits + 7) // 8)
    np.testing.assert_array_equal(codes, np.packbits(full[:, :bits] > 0, axis=1))


def test_binary_single_text_and_empty_text(tiny_dir: Path) -> None:
    model = lightembed.load(tiny_dir, binary=True)
    one = model.embed("cat")
    assert one.shape == (2,)
    np.testing.assert_array_equal(model.embed(""), np.zeros(2, dtype=np.uint8))


# --------------------------------------------------------------------- mean_pool against a naive loop
@st.composite
def pooling_cases(draw: st.DrawFn) -> dict:
    n_rows = draw(st.integers(1, 12))
    dim = draw(st.integers(1, 6))
    n_tokens = draw(st.integers(1, 15))
    lengths = draw(st.lists(st.integers(0, 6), min_size=0, max_size=10))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    shared = draw(st.booleans())
    weighted = draw(st.booleans())
    vocab = n_tokens if shared else n_rows
    return {
        "table": rng.standard_normal((n_rows, dim)).astype(np.float32),
        "lengths": np.array(lengths, dtype=np.int64),
        "flat_ids": rng.integers(vocab, size=sum(lengths)).astype(np.int64),
        "token_rows": rng.integers(n_rows, size=n_tokens).astype(np.int64) if shared else None,
        "token_weights": rng.uniform(0.0, 2.0, size=vocab).astype(np.float32) if weighted else None,
    }


def test_mean_pool_gathers_long_texts_a_few_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    import tracemalloc

    rng = np.random.default_rng(0)
    table = rng.standard_normal((1000, 64)).astype(np.float32)
    lengths = np.full(2000, 500, dtype=np.int64)  # 2,000 texts at a token cap: 256 MB if gathered at once
    flat = rng.integers(1000, size=int(lengths.sum()))
    tracemalloc.start()
    pooled = mean_pool(table, flat, lengths)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 64 * 2**20
    np.testing.assert_allclose(
        pooled[:3], [table[flat[i * 500 : (i + 1) * 500]].mean(axis=0) for i in range(3)], atol=1e-5
    )
    monkeypatch.setattr("lightembed.pooling.GATHER_ENTRIES", 1)  # one text at a time: the same sums
    np.testing.assert_array_equal(mean_pool(table, flat, lengths), pooled)


@settings(max_examples=150, deadline=None)
@given(pooling_cases())
def test_mean_pool_equals_naive_loop(case: dict) -> None:
    table, flat, lengths = case["table"], case["flat_ids"], case["lengths"]
    rows, weights = case["token_rows"], case["token_weights"]
    expected = np.zeros((len(lengths), table.shape[1]))
    start = 0
    for i, length in enumerate(lengths):
        ids = flat[start : start + length]
        start += length
        if length == 0:
            continue
        vectors = table[rows[ids] if rows is not None else ids].astype(np.float64)
        if weights is not None:
            vectors = vectors * weights[ids, None]
        expected[i] = vectors.mean(axis=0)
    out = mean_pool(table, flat, lengths, rows, weights)
    assert out.shape == expected.shape
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
