"""Model folders: round trips, validation errors that name the file, optional parts, other formats."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file
from tiny import SPECIALS, WORDS, add_reranker, tiny_codebook, tiny_tokenizer, write_tiny_model
from tokenizers import Tokenizer, models

import lightembed
from lightembed import ModelFormatError, read_model, write_model
from lightembed.config import AdaptorConfig, ModelConfig
from lightembed.tensorfile import usual_file_mode

VOCAB = {token: i for i, token in enumerate(SPECIALS + WORDS)}
V = len(VOCAB)
TEXTS = ["the cat sat on the mat", "play the piano", "xyzzy dog", "", "Big RED car!"]


def token_ids(text: str) -> list[int]:
    return [VOCAB[w] for w in re.findall(r"\w+|[^\w\s]+", text.lower()) if w in VOCAB and VOCAB[w] >= 2]


def naive_pooled(table: np.ndarray, text: str, weights: np.ndarray | None = None) -> np.ndarray:
    ids = token_ids(text)
    if not ids:
        return np.zeros(table.shape[1])
    rows = table[ids].astype(np.float64)
    if weights is not None:
        rows = rows * weights[ids, None]
    return rows.mean(axis=0)


def unit(v: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(v, axis=-1, keepdims=True)
    return np.divide(v, norm, out=np.zeros_like(v, dtype=np.float64), where=norm > 0)


def stored_table(dim: int = 16) -> np.ndarray:
    """The tiny codebook as `write_tiny_model` stores it (float16)."""
    return tiny_codebook(dim).astype(np.float16).astype(np.float64)


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    return write_tiny_model(tmp_path / "model")


def edit_config(folder: Path, **changes: object) -> None:
    path = folder / "config.json"
    raw = json.loads(path.read_text())
    raw.update(changes)
    path.write_text(json.dumps(raw))


def edit_tensors(folder: Path, drop: tuple[str, ...] = (), **tensors: np.ndarray) -> None:
    path = folder / "model.safetensors"
    current = {k: v for k, v in load_file(str(path)).items() if k not in drop}
    current.update(tensors)
    save_file(current, str(path))


def assert_format_error(folder: Path, file_name: str, message: str) -> None:
    with pytest.raises(ModelFormatError) as info:
        lightembed.load(folder)
    text = str(info.value)
    assert str(folder / file_name) in text, text
    assert re.search(message, text), text


# --------------------------------------------------------------------- round trip
def test_write_read_round_trip_keeps_config_and_float16(tmp_path: Path) -> None:
    config = ModelConfig(
        dim=16,
        vocab_size=V,
        normalize=False,
        max_length=64,
        matryoshka_dims=(4, 8),
        ignore_token_ids=(0, 1),
        provenance={"teacher": "none", "seed": 3},
        metrics={"sts": 0.5},
    )
    table = tiny_codebook().astype(np.float16)
    folder = write_model(tmp_path / "m", config, table, tiny_tokenizer(), card="# tiny\n")
    parts = read_model(folder)
    assert parts.config == config
    assert parts.config.source == "lightembed"
    assert parts.embeddings.dtype == np.float16
    np.testing.assert_array_equal(parts.embeddings, table)
    assert parts.path == folder
    assert (folder / "README.md").read_text() == "# tiny\n"
    raw = json.loads((folder / "config.json").read_text())
    assert raw["format"] == "lightembed"
    assert raw["format_version"] == 1
    assert raw["matryoshka_dims"] == [4, 8]
    assert "source" not in raw
    model = lightembed.load(folder)
    assert model.config.max_length == 64
    assert model.embed(TEXTS).dtype == np.float32


def test_weights_that_overflow_float32_in_use_name_the_model(folder: Path) -> None:
    edit_tensors(folder, embeddings=np.full((V, 16), 3e38, dtype=np.float32))  # finite, but sums overflow
    model = lightembed.load(folder)
    with pytest.raises(ModelFormatError, match="overflow float32 in use") as info:
        model.embed(["cat dog"])
    assert str(folder) in str(info.value)
    assert (model.embed([""]) == 0).all()  # no tokens: nothing summed


def test_a_folder_without_a_config_file_says_so(folder: Path) -> None:
    (folder / "config.json").unlink()
    with pytest.raises(ModelFormatError, match="no config.json, so read as a WordLlama codebook: .*embedding.weight"):
        lightembed.load(folder)
    (folder / "config.json").mkdir()
    assert_format_error(folder, "config.json", "not a regular file")


def test_write_read_round_trip_keeps_float32(tmp_path: Path) -> None:
    table = tiny_codebook()
    folder = write_model(tmp_path / "m", ModelConfig(dim=16, vocab_size=V), table, tiny_tokenizer())
    parts = read_model(folder)
    assert parts.embeddings.dtype == np.float32
    np.testing.assert_array_equal(parts.embeddings, table)


def test_a_failed_write_leaves_the_folder_as_it_was(tmp_path: Path) -> None:
    folder = write_tiny_model(tmp_path / "m")
    before = {path.name: path.read_bytes() for path in folder.iterdir()}
    declares_weights = ModelConfig(dim=16, vocab_size=V, token_weights=True)  # but writes no token_weights
    with pytest.raises(ModelFormatError, match="token_weights"):
        write_model(folder, declares_weights, tiny_codebook().astype(np.float16), tiny_tokenizer())
    assert {path.name: path.read_bytes() for path in folder.iterdir()} == before
    assert [path.name for path in tmp_path.iterdir()] == ["m"]  # no staging folder left behind
    with pytest.raises(ValueError, match="pass the reranker file"):
        write_model(folder, ModelConfig(dim=16, vocab_size=V, reranker=True), tiny_codebook(), tiny_tokenizer())


def test_a_failed_write_of_a_new_folder_leaves_nothing_and_names_the_target(tmp_path: Path) -> None:
    declares_weights = ModelConfig(dim=16, vocab_size=V, token_weights=True)
    with pytest.raises(ModelFormatError, match=re.escape(str(tmp_path / "new" / "model.safetensors"))):
        write_model(tmp_path / "new", declares_weights, tiny_codebook(), tiny_tokenizer())
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(TypeError, match="config must be a ModelConfig, got dict"):
        write_model(tmp_path / "new", {"dim": 16}, tiny_codebook(), tiny_tokenizer())
    with pytest.raises(TypeError, match="tokenizer must be a tokenizers.Tokenizer, got NoneType"):
        write_model(tmp_path / "new", ModelConfig(dim=16, vocab_size=V), tiny_codebook(), None)
    assert list(tmp_path.iterdir()) == []


def test_rewriting_a_folder_without_its_reranker_removes_the_old_scorer(tmp_path: Path) -> None:
    folder = add_reranker(write_tiny_model(tmp_path / "m"))
    config = ModelConfig(dim=16, vocab_size=V, ignore_token_ids=(0, 1))
    write_model(folder, config, tiny_codebook().astype(np.float16), tiny_tokenizer())
    assert not (folder / "reranker.safetensors").exists() and not lightembed.load(folder).config.reranker


def test_written_files_get_the_usual_mode(tmp_path: Path) -> None:
    folder = add_reranker(write_tiny_model(tmp_path / "m"))
    for path in folder.iterdir():
        assert os.stat(path).st_mode & 0o777 == usual_file_mode(), path.name


def test_config_to_dict_and_back(tmp_path: Path) -> None:
    config = ModelConfig(dim=16, vocab_size=V, adaptor=AdaptorConfig(layers=2, activation="tanh"))
    again = ModelConfig.from_dict(json.loads(json.dumps(config.to_dict())), "x")
    assert again == config


# --------------------------------------------------------------------- errors naming the file
def test_missing_safetensors(folder: Path) -> None:
    (folder / "model.safetensors").unlink()
    assert_format_error(folder, "model.safetensors", "missing")


def test_truncated_safetensors(folder: Path) -> None:
    path = folder / "model.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert_format_error(folder, "model.safetensors", "safetensors")


def test_corrupted_safetensors_header(folder: Path) -> None:
    path = folder / "model.safetensors"
    data = bytearray(path.read_bytes())
    data[8:40] = b"\xff" * 32
    path.write_bytes(bytes(data))
    assert_format_error(folder, "model.safetensors", "safetensors")


def test_garbage_header_length(folder: Path) -> None:
    path = folder / "model.safetensors"
    data = bytearray(path.read_bytes())
    data[:8] = b"\xff" * 8
    path.write_bytes(bytes(data))
    assert_format_error(folder, "model.safetensors", "safetensors")


@pytest.mark.parametrize(("key", "value"), [("dim", 8), ("dim", 32), ("vocab_size", V + 5), ("vocab_size", V - 1)])
def test_config_that_disagrees_with_the_tensors(folder: Path, key: str, value: int) -> None:
    edit_config(folder, **{key: value}, matryoshka_dims=[4], ignore_token_ids=[0, 1])
    assert_format_error(folder, "model.safetensors", "shape")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values_in_the_codebook(folder: Path, bad: float) -> None:
    table = tiny_codebook()
    table[5, 3] = bad
    edit_tensors(folder, embeddings=table)
    assert_format_error(folder, "model.safetensors", "NaN or infinite")


def test_unknown_config_key(folder: Path) -> None:
    edit_config(folder, colour="blue")
    assert_format_error(folder, "config.json", "unknown keys.*colour")


@pytest.mark.parametrize("version", [0, 2, "1", None, True, 1.0])
def test_wrong_format_version(folder: Path, version: object) -> None:
    edit_config(folder, format_version=version)
    assert_format_error(folder, "config.json", "format_version")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"dim": 0}, "'dim' must be a positive integer"),
        ({"dim": "16"}, "'dim' must be a positive integer"),
        ({"max_length": -1}, "'max_length'"),
        ({"normalize": "yes"}, "'normalize' must be true or false"),
        ({"pooling": "max"}, "unsupported pooling"),
        ({"matryoshka_dims": [4, 99]}, "matryoshka dim 99"),
        ({"ignore_token_ids": [V]}, "ignore_token_ids"),
        ({"adaptor": {"layers": "two"}}, "adaptor"),
        ({"adaptor": {"layers": True}}, "an integer 'layers'"),
        ({"adaptor": {"layers": 10**8}}, "adaptor 'layers' must be between 1 and 64"),
        ({"matryoshka_dims": 2}, "'matryoshka_dims' must be a list"),
        ({"ignore_token_ids": None}, "'ignore_token_ids' must be a list"),
        ({"max_length": 10**30}, "'max_length' must be at most"),
        ({"format": "lightembed "}, "'format' must be 'lightembed'"),
        ({"provenance": []}, "provenance"),
    ],
)
def test_invalid_config_values(folder: Path, changes: dict, message: str) -> None:
    edit_config(folder, **changes)
    assert_format_error(folder, "config.json", re.escape(message))


@pytest.mark.parametrize(
    "text", ['{"dim": ' + "9" * 5000 + "}", '{"provenance": ' + "[" * 100_000 + "]" * 100_000 + "}"]
)
def test_config_json_that_python_cannot_decode(folder: Path, text: str) -> None:
    (folder / "config.json").write_text(text)
    assert_format_error(folder, "config.json", "not readable JSON")


def test_missing_required_config_key(folder: Path) -> None:
    path = folder / "config.json"
    raw = json.loads(path.read_text())
    del raw["vocab_size"]
    path.write_text(json.dumps(raw))
    assert_format_error(folder, "config.json", "vocab_size")


def test_config_that_is_not_json(folder: Path) -> None:
    (folder / "config.json").write_text("{not json")
    assert_format_error(folder, "config.json", "JSON")


def test_tensors_not_declared_in_config(folder: Path) -> None:
    edit_tensors(folder, **{"projection.weight": np.eye(16, dtype=np.float32)})
    assert_format_error(folder, "model.safetensors", r"projection\.weight.*not declared")


def test_tensors_declared_but_missing(folder: Path) -> None:
    edit_config(folder, token_weights=True)
    assert_format_error(folder, "model.safetensors", "token_weights")


def test_missing_tokenizer(folder: Path) -> None:
    (folder / "tokenizer.json").unlink()
    assert_format_error(folder, "tokenizer.json", "missing")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
@pytest.mark.parametrize("kind", ["pipe", "device"])
@pytest.mark.parametrize("file_name", ["model.safetensors", "tokenizer.json", "reranker.safetensors"])
def test_a_model_file_that_is_a_pipe_or_a_device_is_not_a_regular_file(folder: Path, kind: str, file_name: str) -> None:
    add_reranker(folder)
    path = folder / file_name
    path.unlink()
    if kind == "pipe":
        os.mkfifo(path)
    else:
        path.symlink_to("/dev/null")  # a device that ends at once: a regression fails rather than reads forever
    with readers_unblocked(path):  # a regression that opened the pipe fails here instead of hanging
        assert_format_error(folder, file_name, "not a regular file")
        with pytest.raises(lightembed.ModelNotFoundError, match="not a regular file or a folder"):
            lightembed.load(path)


UNBLOCK_READERS = """
import os, sys, time
while True:
    try:
        os.close(os.open(sys.argv[1], os.O_WRONLY | os.O_NONBLOCK))  # fails while no one reads
    except OSError:
        pass
    time.sleep(0.05)
"""


@contextlib.contextmanager
def readers_unblocked(path: Path) -> Iterator[None]:
    """While inside, anything that opens the pipe `path` to read gets end of file soon, not a wait.

    A separate process does it: a reader blocked in a native call may hold the GIL."""
    helper = subprocess.Popen([sys.executable, "-c", UNBLOCK_READERS, str(path)])
    try:
        yield
    finally:
        helper.kill()
        helper.wait()


def test_a_tokenizer_that_is_a_folder_says_so(folder: Path) -> None:
    (folder / "tokenizer.json").unlink()
    (folder / "tokenizer.json").mkdir()
    assert_format_error(folder, "tokenizer.json", "is a folder, expected a tokenizer file")


def test_corrupt_tokenizer(folder: Path) -> None:
    (folder / "tokenizer.json").write_text('{"model": 42}')
    assert_format_error(folder, "tokenizer.json", "tokenizers file")


def test_tokenizer_larger_than_the_codebook(folder: Path) -> None:
    vocab = {f"w{i}": i for i in range(V + 10)}
    Tokenizer(models.WordLevel(vocab=vocab, unk_token="w0")).save(str(folder / "tokenizer.json"))
    assert_format_error(folder, "tokenizer.json", r"ids go up to 43 but the codebook has 34 rows")


def test_tokenizer_ids_beyond_the_codebook(folder: Path) -> None:
    vocab = {f"w{i}": i for i in range(V - 1)} | {"far": V}  # no more tokens than rows, but one id past them
    Tokenizer(models.WordLevel(vocab=vocab, unk_token="w0")).save(str(folder / "tokenizer.json"))
    assert_format_error(folder, "tokenizer.json", rf"ids go up to {V} but the codebook has {V} rows")


def test_tokenizer_whose_unknown_token_is_not_in_its_vocabulary(folder: Path) -> None:
    Tokenizer(models.WordLevel(vocab=VOCAB, unk_token="[NOPE]")).save(str(folder / "tokenizer.json"))
    assert_format_error(folder, "tokenizer.json", r"unknown token '\[NOPE\]' is not in the vocabulary")


def test_tensor_of_a_dtype_numpy_cannot_hold(folder: Path) -> None:
    header = json.dumps({"embeddings": {"dtype": "BF16", "shape": [V, 16], "data_offsets": [0, V * 16 * 2]}}).encode()
    (folder / "model.safetensors").write_bytes(len(header).to_bytes(8, "little") + header + bytes(V * 16 * 2))
    assert_format_error(folder, "model.safetensors", r"numpy cannot hold: embeddings \(BF16\)")


def test_scale_beside_a_float_codebook(folder: Path) -> None:
    edit_tensors(folder, embeddings_scale=np.full(1, 100.0, np.float32))
    assert_format_error(folder, "model.safetensors", "embeddings_scale belongs to an int8 'embeddings'")


def test_model_path_that_is_a_file(folder: Path) -> None:
    with pytest.raises(lightembed.ModelNotFoundError, match="is a file; give the model folder"):
        lightembed.load(folder / "config.json")


def test_wrong_codebook_dtype(folder: Path) -> None:
    edit_tensors(folder, embeddings=np.ones((V, 16), dtype=np.int32))
    assert_format_error(folder, "model.safetensors", "dtype")


def test_int8_codebook_without_scale(folder: Path) -> None:
    edit_tensors(folder, embeddings=np.ones((V, 16), dtype=np.int8))
    assert_format_error(folder, "model.safetensors", "embeddings_scale")


def test_int8_codebook_with_a_wrong_sized_scale(folder: Path) -> None:
    edit_tensors(folder, embeddings=np.ones((V, 16), dtype=np.int8), embeddings_scale=np.ones(3, dtype=np.float32))
    assert_format_error(folder, "model.safetensors", "embeddings_scale")


@pytest.mark.parametrize("per_row", [False, True])
def test_int8_codebook_with_scale_is_dequantised(folder: Path, per_row: bool) -> None:
    rng = np.random.default_rng(0)
    quantised = rng.integers(-127, 128, size=(V, 16)).astype(np.int8)
    scale = rng.uniform(0.001, 0.02, size=V if per_row else 1).astype(np.float32)
    edit_tensors(folder, embeddings=quantised, embeddings_scale=scale)
    parts = read_model(folder)
    expected = quantised.astype(np.float32) * scale.reshape(-1, 1)
    assert parts.embeddings.dtype == np.float32
    np.testing.assert_allclose(parts.embeddings, expected, rtol=1e-6)
    model = lightembed.LightEmbed(parts, dim=None)
    np.testing.assert_allclose(model.embed("cat dog"), unit(naive_pooled(expected, "cat dog")), atol=1e-6)


def test_reranker_declared_but_missing(folder: Path) -> None:
    edit_config(folder, reranker=True)
    assert_format_error(folder, "reranker.safetensors", "reranker")


def test_reranker_file_is_validated_on_load(folder: Path) -> None:
    edit_config(folder, reranker=True)
    save_file({"w": np.zeros(1, dtype=np.float32)}, str(folder / "reranker.safetensors"))
    assert_format_error(folder, "reranker.safetensors", "format")


def test_not_a_model_folder(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelFormatError, match="empty"):
        read_model(tmp_path / "empty")


# --------------------------------------------------------------------- optional parts
def write_with_parts(tmp_path: Path, tensors: dict[str, np.ndarray], **config: object) -> Path:
    settings = {"dim": 16, "vocab_size": V, "ignore_token_ids": (0, 1)}
    settings.update(config)
    table = tiny_codebook().astype(np.float16)
    return write_model(tmp_path / "m", ModelConfig(**settings), table, tiny_tokenizer(), extra_tensors=tensors)


def test_projection_is_applied_after_pooling(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    weight = rng.standard_normal((6, 16)).astype(np.float32)
    bias = rng.standard_normal(6).astype(np.float32)
    folder = write_with_parts(tmp_path, {"projection.weight": weight, "projection.bias": bias}, projection=True)
    model = lightembed.load(folder)
    assert model.dim == 6
    out = model.embed(TEXTS)
    assert out.shape == (len(TEXTS), 6)
    for text, row in zip(TEXTS, out):
        if not token_ids(text):
            np.testing.assert_array_equal(row, 0.0)  # empty text: zeros, not the bias
            continue
        expected = unit(naive_pooled(stored_table(), text) @ weight.T + bias)
        np.testing.assert_allclose(row, expected, rtol=1e-5, atol=1e-5)
    truncated = lightembed.load(folder, dim=4).embed("the cat sat")
    expected = unit((naive_pooled(stored_table(), "the cat sat") @ weight.T + bias)[:4])
    np.testing.assert_allclose(truncated, expected, rtol=1e-5, atol=1e-5)


def test_projection_with_wrong_shape(tmp_path: Path) -> None:
    with pytest.raises(ModelFormatError, match=r"projection\.weight"):
        write_with_parts(
            tmp_path,
            {"projection.weight": np.ones((6, 15), np.float32), "projection.bias": np.ones(6, np.float32)},
            projection=True,
        )


def gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x**3)))


ACTIVATIONS = {"relu": lambda x: np.maximum(x, 0.0), "gelu": gelu, "tanh": np.tanh}


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_adaptor_adds_a_residual_mlp(tmp_path: Path, activation: str) -> None:
    rng = np.random.default_rng(2)
    w0, b0 = rng.standard_normal((10, 16)).astype(np.float32), rng.standard_normal(10).astype(np.float32)
    w1, b1 = rng.standard_normal((16, 10)).astype(np.float32), rng.standard_normal(16).astype(np.float32)
    tensors = {"adaptor.0.weight": w0, "adaptor.0.bias": b0, "adaptor.1.weight": w1, "adaptor.1.bias": b1}
    folder = write_with_parts(tmp_path, tensors, adaptor=AdaptorConfig(layers=2, activation=activation))
    model = lightembed.load(folder)
    act = ACTIVATIONS[activation]
    for text, row in zip(TEXTS, model.embed(TEXTS)):
        if not token_ids(text):
            np.testing.assert_array_equal(row, 0.0)
            continue
        e = naive_pooled(stored_table(), text)
        expected = unit(e + (act(e @ w0.T + b0) @ w1.T + b1))
        np.testing.assert_allclose(row, expected, rtol=1e-4, atol=1e-5)
    e = naive_pooled(stored_table(), "the cat sat")
    full = e + (act(e @ w0.T + b0) @ w1.T + b1)
    np.testing.assert_allclose(lightembed.load(folder, dim=5).embed("the cat sat"), unit(full[:5]), atol=1e-5)
    codes = lightembed.load(folder, binary=True, dim=12).embed("the cat sat")
    np.testing.assert_array_equal(codes, np.packbits(full[:12] > 0))


def test_projection_then_adaptor(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    pw, pb = rng.standard_normal((8, 16)).astype(np.float32), rng.standard_normal(8).astype(np.float32)
    aw, ab = rng.standard_normal((8, 8)).astype(np.float32), rng.standard_normal(8).astype(np.float32)
    tensors = {"projection.weight": pw, "projection.bias": pb, "adaptor.0.weight": aw, "adaptor.0.bias": ab}
    folder = write_with_parts(tmp_path, tensors, projection=True, adaptor=AdaptorConfig(layers=1))
    p = naive_pooled(stored_table(), "a dog ran") @ pw.T + pb
    expected = unit(p + p @ aw.T + ab)  # a single layer has no activation
    np.testing.assert_allclose(lightembed.load(folder).embed("a dog ran"), expected, rtol=1e-4, atol=1e-5)


def test_adaptor_that_does_not_return_to_the_width(tmp_path: Path) -> None:
    tensors = {"adaptor.0.weight": np.ones((5, 16), np.float32), "adaptor.0.bias": np.ones(5, np.float32)}
    with pytest.raises(ModelFormatError, match="adaptor"):
        write_with_parts(tmp_path, tensors, adaptor=AdaptorConfig(layers=1))


def test_token_weights_scale_each_token(tmp_path: Path) -> None:
    weights = np.linspace(0.1, 3.0, V).astype(np.float32)
    folder = write_with_parts(tmp_path, {"token_weights": weights}, token_weights=True, normalize=False)
    out = lightembed.load(folder).embed(TEXTS)
    expected = np.stack([naive_pooled(stored_table(), t, weights) for t in TEXTS])
    np.testing.assert_allclose(out, expected, rtol=2e-3, atol=2e-3)  # weights are baked in at float16


def test_token_weights_beyond_the_float16_range(tmp_path: Path) -> None:
    with pytest.raises(ModelFormatError, match="token weights push the codebook beyond float16's range"):
        write_with_parts(tmp_path, {"token_weights": np.full(V, 1e5, np.float32)}, token_weights=True)


def test_binary_codebook_with_a_row_count_other_than_the_vocabulary(tmp_path: Path) -> None:
    folder = write_with_parts(tmp_path, {"binary_embeddings": np.ones((V, 24), np.float32)}, binary_codebook=True)
    edit_tensors(folder, binary_embeddings=np.ones((V - 1, 24), np.float32))
    assert_format_error(folder, "model.safetensors", rf"'binary_embeddings' has {V - 1} rows, expected {V}")


def test_binary_codebook_is_used_for_binary_output(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    binary_table = rng.standard_normal((V, 24)).astype(np.float32)
    folder = write_with_parts(tmp_path, {"binary_embeddings": binary_table}, binary_codebook=True)
    model = lightembed.load(folder, binary=True)
    assert model.dim == 24
    codes = model.embed(TEXTS[:3])
    assert codes.shape == (3, 3)
    expected = np.packbits(np.stack([naive_pooled(binary_table, t) for t in TEXTS[:3]]) > 0, axis=1)
    np.testing.assert_array_equal(codes, expected)
    floats = lightembed.load(folder).embed("the cat sat")
    np.testing.assert_allclose(floats, unit(naive_pooled(stored_table(), "the cat sat")), atol=1e-6)


# --------------------------------------------------------------------- model2vec folders
def write_model2vec(folder: Path, *, weights: bool, mapping: bool, int8: bool = False) -> Path:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(5)
    tensors: dict[str, np.ndarray] = {}
    rows = 12 if mapping else V
    tensors["embeddings"] = rng.standard_normal((rows, 16)).astype(np.float32)
    if int8:  # model2vec's int8 quantisation stores no scale
        tensors["embeddings"] = np.clip(np.round(tensors["embeddings"] * 40), -127, 127).astype(np.int8)
    if mapping:
        tensors["mapping"] = rng.integers(0, rows, size=V).astype(np.int64)
    if weights:
        tensors["weights"] = rng.uniform(0.2, 2.0, size=V).astype(np.float32)
    save_file(tensors, str(folder / "model.safetensors"))
    tiny_tokenizer().save(str(folder / "tokenizer.json"))
    config = {
        "model_type": "model2vec",
        "architectures": ["StaticModel"],
        "tokenizer_name": "tiny",
        "apply_pca": None,
        "apply_zipf": weights,
        "hidden_dim": 16,
        "seq_length": 1000000,
        "normalize": True,
    }
    (folder / "config.json").write_text(json.dumps(config))
    return folder


M2V_CASES = [(False, False, False), (True, False, False), (True, True, False), (False, False, True), (True, True, True)]


@pytest.mark.parametrize(("weights", "mapping", "int8"), M2V_CASES)
def test_model2vec_folder_loads_and_pools_like_its_definition(
    tmp_path: Path, weights: bool, mapping: bool, int8: bool
) -> None:
    folder = write_model2vec(tmp_path / "m2v", weights=weights, mapping=mapping, int8=int8)
    model = lightembed.load(folder)
    assert model.config.source == "model2vec"
    assert model.config.normalize is True
    tensors = load_file(str(folder / "model.safetensors"))
    table = tensors["embeddings"].astype(np.float64)
    table = table[tensors["mapping"]] if mapping else table
    expected = np.stack([unit(naive_pooled(table, t, tensors.get("weights"))) for t in TEXTS])
    np.testing.assert_allclose(model.embed(TEXTS), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("weights", "mapping", "int8"), M2V_CASES)
def test_model2vec_folder_matches_model2vec(tmp_path: Path, weights: bool, mapping: bool, int8: bool) -> None:
    model2vec = pytest.importorskip("model2vec", reason="model2vec is not installed")
    folder = write_model2vec(tmp_path / "m2v", weights=weights, mapping=mapping, int8=int8)
    theirs = model2vec.StaticModel.from_pretrained(str(folder)).encode(TEXTS)
    ours = lightembed.load(folder).embed(TEXTS)
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)


def test_model2vec_folder_with_bad_mapping(tmp_path: Path) -> None:
    folder = write_model2vec(tmp_path / "m2v", weights=False, mapping=True)
    tensors = load_file(str(folder / "model.safetensors"))
    tensors["mapping"][3] = len(tensors["embeddings"])  # one past the last row
    save_file(tensors, str(folder / "model.safetensors"))
    with pytest.raises(ModelFormatError, match="mapping") as info:
        lightembed.load(folder)
    assert str(folder / "model.safetensors") in str(info.value)


@pytest.mark.parametrize(
    ("changes", "message"),
    [({"normalize": "false"}, "'normalize' must be true or false"), ({"max_length": "abc"}, "'max_length'")],
)
def test_model2vec_config_values_are_checked(tmp_path: Path, changes: dict, message: str) -> None:
    folder = write_model2vec(tmp_path / "m2v", weights=False, mapping=False)
    edit_config(folder, **changes)
    assert_format_error(folder, "config.json", message)
    edit_config(folder, normalize=None, max_length=None)
    assert (lightembed.load(folder).config.normalize, lightembed.load(folder).config.max_length) == (False, 512)


def test_model2vec_mapping_of_floats(tmp_path: Path) -> None:
    folder = write_model2vec(tmp_path / "m2v", weights=False, mapping=True)
    tensors = load_file(str(folder / "model.safetensors"))
    tensors["mapping"] = tensors["mapping"].astype(np.float32) + 0.5
    save_file(tensors, str(folder / "model.safetensors"))
    assert_format_error(folder, "model.safetensors", "'mapping' must hold integers")


def test_model2vec_folder_with_too_few_rows(tmp_path: Path) -> None:
    folder = write_model2vec(tmp_path / "m2v", weights=False, mapping=False)
    save_file({"embeddings": np.ones((5, 16), np.float32)}, str(folder / "model.safetensors"))
    with pytest.raises(ModelFormatError, match="rows"):
        lightembed.load(folder)


# --------------------------------------------------------------------- WordLlama codebooks
def test_wordllama_style_folder_with_the_tiny_vocabulary(tmp_path: Path) -> None:
    folder = tmp_path / "wl"
    (folder / "weights").mkdir(parents=True)
    (folder / "tokenizers").mkdir()
    table = tiny_codebook()
    save_file({"embedding.weight": table}, str(folder / "weights" / "tiny_16.safetensors"))
    tiny_tokenizer().save(str(folder / "tokenizers" / "tiny_tokenizer_config.json"))
    by_file = lightembed.load(folder / "weights" / "tiny_16.safetensors")
    by_folder = lightembed.load(folder / "weights")
    assert by_file.config.source == "wordllama"
    np.testing.assert_array_equal(by_file.embed(TEXTS), by_folder.embed(TEXTS))
    # WordLlama keeps every token (no ignored ids): [UNK] rows are zero in this codebook
    expected = unit(table[[VOCAB["cat"], VOCAB["dog"]]].astype(np.float64).mean(axis=0))
    np.testing.assert_allclose(by_file.embed("cat dog"), expected, atol=1e-6)


def test_wordllama_codebook_without_tokenizer(tmp_path: Path) -> None:
    path = tmp_path / "lonely.safetensors"
    save_file({"embedding.weight": tiny_codebook()}, str(path))
    with pytest.raises(ModelFormatError, match="tokenizer") as info:
        lightembed.load(path)
    assert str(path) in str(info.value)


WORDLLAMA_TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "Numpy makes array programming fast.",
    "I went to the bank to deposit a cheque.",
    "Ünïcödé and emoji 🎉 survive too",
    "a",
]


def test_real_wordllama_codebook_matches_wordllama(tmp_path: Path) -> None:
    wordllama = pytest.importorskip("wordllama", reason="the wordllama package is not installed")
    root = Path(wordllama.__file__).parent
    codebook = root / "weights" / "l2_supercat_256.safetensors"
    tokenizer_file = root / "tokenizers" / "l2_supercat_tokenizer_config.json"
    if not codebook.is_file() or not tokenizer_file.is_file():
        pytest.skip(f"wordllama's bundled l2_supercat files are not at {root}")
    ours = lightembed.load(codebook)
    assert ours.config.source == "wordllama"
    assert ours.dim == 256
    # WordLlama looks for its bundled tokenizer under cache_dir/tokenizers/ only (offline)
    (tmp_path / "tokenizers").mkdir()
    shutil.copy(tokenizer_file, tmp_path / "tokenizers" / tokenizer_file.name)
    theirs = wordllama.WordLlama.load(config="l2_supercat", dim=256, cache_dir=tmp_path, disable_download=True)
    a = ours.embed(WORDLLAMA_TEXTS)
    b = theirs.embed(WORDLLAMA_TEXTS, norm=True)
    cosine = np.sum(unit(a) * unit(b), axis=1)
    assert np.all(cosine > 0.999), cosine


def test_model2vec_folder_truncates_like_model2vec_not_at_seq_length(tmp_path: Path) -> None:
    # model2vec ignores the legacy `seq_length` (1000000 in its configs) and truncates at
    # `max_length`, 512 by default; a 10 MB string must stay cheap
    folder = write_model2vec(tmp_path / "m2v", weights=False, mapping=False)
    model = lightembed.load(folder)
    assert model.config.max_length == 512
    rng = np.random.default_rng(8)
    head = " ".join(WORDS[i] for i in rng.integers(len(WORDS), size=512))
    start = time.perf_counter()
    vector = model.embed(head + " piano" * 2_000_000)
    assert time.perf_counter() - start < 3.0
    np.testing.assert_allclose(vector, model.embed(head), atol=1e-6)
    edit = json.loads((folder / "config.json").read_text())
    edit["max_length"] = 8
    (folder / "config.json").write_text(json.dumps(edit))
    short = lightembed.load(folder)
    assert short.config.max_length == 8
    np.testing.assert_allclose(short.embed(head), short.embed(" ".join(head.split()[:8])), atol=1e-6)


def test_write_model_takes_a_folder_empty_but_for_hidden_files_and_refuses_any_other(tmp_path: Path) -> None:
    from tiny import write_tiny_model

    hidden = tmp_path / "hidden"
    hidden.mkdir()
    (hidden / ".gitkeep").write_text("")
    assert lightembed.load(write_tiny_model(hidden)).config.dim == 16
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "README.md").write_text("my notes")
    with pytest.raises(ValueError, match="exists and is not a lightembed model folder"):
        write_tiny_model(notes)
    assert (notes / "README.md").read_text() == "my notes" and len(list(notes.iterdir())) == 1
