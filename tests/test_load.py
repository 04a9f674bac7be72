"""Resolving and loading models: the bundled default, local paths, and the Hub cache (offline only)."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import huggingface_hub
import huggingface_hub.constants
import numpy as np
import pytest
from tiny import write_tiny_model

import lightembed
from lightembed import ModelNotFoundError, resolve

REPO = Path(__file__).resolve().parents[1]
BUNDLED = REPO / "weights" / "default"
HASH_MAIN = "0123456789abcdef0123456789abcdef01234567"
HASH_OLD = "fedcba9876543210fedcba9876543210fedcba98"


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to open a connection fails the test loudly."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a test in test_load.py tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture()
def hub_cache(tmp_path: Path) -> Path:
    """A Hugging Face cache holding `owner/name` at two commits: main (dim 16) and an older one (dim 8)."""
    cache = tmp_path / "hub"
    repo = cache / "models--owner--name"
    write_tiny_model(repo / "snapshots" / HASH_MAIN)
    write_tiny_model(repo / "snapshots" / HASH_OLD, dim=8, matryoshka_dims=(4,))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(HASH_MAIN)
    (repo / "refs" / "v0").write_text(HASH_OLD)
    return cache


# --------------------------------------------------------------------- bundled default
def test_load_bundled_default_model() -> None:
    if not (BUNDLED / "config.json").is_file():
        pytest.skip(f"the bundled default model is not built yet ({BUNDLED / 'config.json'} does not exist)")
    model = lightembed.load()
    assert model.path.resolve() == resolve.bundled_model_path().resolve()
    vector = model.embed("hello world")
    assert vector.shape == (model.dim,)
    assert vector.dtype == np.float32
    assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-4)
    assert lightembed.load("default").path == model.path
    texts = ["a cat sat on the mat", "a kitten rested on the rug", "stock markets fell sharply today"]
    sims = model.similarity(texts, texts)
    assert sims[0, 1] > sims[0, 2]


def test_missing_bundled_model_raises_model_not_found(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(resolve, "_WEIGHTS_DIRS", (tmp_path / "a", tmp_path / "b"))
    with pytest.raises(ModelNotFoundError, match="bundled model 'default' is not installed"):
        lightembed.load()


def test_bundled_lookup_finds_a_package_weights_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    write_tiny_model(tmp_path / "pkg" / "weights" / "default")
    monkeypatch.setattr(resolve, "_WEIGHTS_DIRS", (tmp_path / "pkg" / "weights", tmp_path / "other"))
    model = lightembed.load()
    assert model.path == tmp_path / "pkg" / "weights" / "default"
    assert model.embed("cat").shape == (16,)


# --------------------------------------------------------------------- local paths
def test_load_local_folder_as_str_and_path(tiny_dir: Path) -> None:
    a = lightembed.load(str(tiny_dir))
    b = lightembed.load(tiny_dir)
    assert a.path == b.path == tiny_dir
    np.testing.assert_array_equal(a.embed("the cat"), b.embed("the cat"))


@pytest.mark.parametrize("name", ["/no/such/folder/model", "./missing-model", "a/b/c", "missing.safetensors", "-x/y"])
def test_path_that_does_not_exist_and_is_no_repo_id(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelNotFoundError, match="no such file or folder") as info:
        lightembed.load(name)
    assert name in str(info.value)
    assert isinstance(info.value, FileNotFoundError)


# --------------------------------------------------------------------- the Hub cache, offline
def test_hub_id_from_a_prepopulated_cache_offline(hub_cache: Path, tiny_dir: Path) -> None:
    model = lightembed.load("owner/name", cache_dir=hub_cache, offline=True)
    assert model.path == hub_cache / "models--owner--name" / "snapshots" / HASH_MAIN
    assert model.dim == 16
    np.testing.assert_array_equal(model.embed("the cat sat"), lightembed.load(tiny_dir).embed("the cat sat"))


def test_hub_id_with_hf_hub_offline_set(hub_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    model = lightembed.load("owner/name", cache_dir=hub_cache)
    assert model.path == hub_cache / "models--owner--name" / "snapshots" / HASH_MAIN
    with pytest.raises(ModelNotFoundError, match=r"owner/absent: .*offline \(HF_HUB_OFFLINE is set\)"):
        lightembed.load("owner/absent", cache_dir=hub_cache)


def test_hub_id_with_pinned_revision(hub_cache: Path) -> None:
    pinned = lightembed.load("owner/name", revision=HASH_OLD, cache_dir=hub_cache, offline=True)
    assert pinned.path == hub_cache / "models--owner--name" / "snapshots" / HASH_OLD
    assert pinned.dim == 8
    by_tag = lightembed.load("owner/name", revision="v0", cache_dir=hub_cache, offline=True)
    assert by_tag.path == pinned.path
    main = lightembed.load("owner/name", revision=HASH_MAIN, cache_dir=hub_cache, offline=True)
    assert main.dim == 16


def test_cached_commit_loads_without_network_when_online(hub_cache: Path) -> None:
    pinned = lightembed.load("owner/name", revision=HASH_OLD, cache_dir=hub_cache, offline=False)
    assert pinned.path == hub_cache / "models--owner--name" / "snapshots" / HASH_OLD


def test_uncached_commit_fails_fast_when_the_hub_gives_no_answer(
    hub_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_answer(*args: object, **kwargs: object) -> None:
        raise ConnectionError("network is unreachable")

    def listing(*args: object, **kwargs: object) -> None:
        raise AssertionError("the file listing (which retries for about 20 s offline) was requested")

    monkeypatch.setattr(huggingface_hub.HfApi, "repo_info", no_answer)
    monkeypatch.setattr(huggingface_hub.HfApi, "list_repo_tree", listing)
    with pytest.raises(
        ModelNotFoundError, match=r"revision '2222.*Hub could not be reached \(network is unreachable\)"
    ):
        lightembed.load("owner/name", revision="2" * 40, cache_dir=hub_cache, offline=False)


def test_revision_of_a_local_model_is_an_error(tiny_dir: Path) -> None:
    for name in (None, "default", tiny_dir):
        with pytest.raises(ValueError, match="applies to Hub repositories"):
            lightembed.load(name, revision="main")


@pytest.mark.parametrize("revision", ["", " ", "\t"])
def test_empty_or_blank_revision_is_refused_up_front(hub_cache: Path, revision: str) -> None:
    for offline in (True, False):
        with pytest.raises(ValueError, match="is empty or blank: give a Hub branch, tag or commit"):
            lightembed.load("owner/name", revision=revision, cache_dir=hub_cache, offline=offline)


def test_empty_name_and_non_bool_binary(tiny_dir: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="empty model name"):
        lightembed.load("")
    for bad in (123, ["a"]):
        with pytest.raises(TypeError, match="the model name must be a str or a path"):
            lightembed.load(bad)
    with pytest.raises(ValueError, match="binary must be True or False"):
        lightembed.load(tiny_dir, binary="no")


def test_hub_id_with_revision_not_in_cache(hub_cache: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="owner/name at revision '1111") as info:
        lightembed.load("owner/name", revision="1" * 40, cache_dir=hub_cache, offline=True)
    assert "not in the local Hugging Face cache" in str(info.value)


def test_unknown_hub_id_offline_raises_model_not_found(hub_cache: Path) -> None:
    with pytest.raises(ModelNotFoundError) as info:
        lightembed.load("someone/unknown-model", cache_dir=hub_cache, offline=True)
    message = str(info.value)
    assert "someone/unknown-model" in message
    assert "not in the local Hugging Face cache" in message
    assert "offline (offline=True)" in message
    assert "HF_HUB_OFFLINE" not in message  # it was not set; the argument was


def test_unknown_hub_id_in_an_empty_cache_dir(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="owner/name"):
        lightembed.load("owner/name", cache_dir=tmp_path / "does-not-exist", offline=True)


def test_dim_and_binary_apply_to_hub_models(hub_cache: Path) -> None:
    model = lightembed.load("owner/name", cache_dir=hub_cache, offline=True, dim=4, binary=True)
    local = lightembed.load(hub_cache / "models--owner--name" / "snapshots" / HASH_MAIN, dim=4, binary=True)
    assert model.embed("the cat").shape == (1,) and model.embed("the cat").dtype == np.uint8
    np.testing.assert_array_equal(model.embed(["the cat", "a dog ran"]), local.embed(["the cat", "a dog ran"]))
    floats = lightembed.load(hub_cache / "models--owner--name" / "snapshots" / HASH_MAIN).embed("the cat")
    assert model.embed("the cat")[0] == int("".join("1" if v > 0 else "0" for v in floats[:4]).ljust(8, "0"), 2)


def test_hub_snapshot_with_a_wordllama_layout(tmp_path: Path, tiny_dir: Path) -> None:
    from safetensors.numpy import save_file
    from tiny import tiny_codebook

    cache = tmp_path / "hub"
    snapshot = cache / "models--someone--wl" / "snapshots" / HASH_MAIN
    (snapshot / "tokenizers").mkdir(parents=True)
    save_file({"embedding.weight": tiny_codebook()}, str(snapshot / "wl_16.safetensors"))
    shutil.copy(tiny_dir / "tokenizer.json", snapshot / "tokenizers" / "wl_tokenizer_config.json")
    (cache / "models--someone--wl" / "refs").mkdir()
    (cache / "models--someone--wl" / "refs" / "main").write_text(HASH_MAIN)
    model = lightembed.load("someone/wl", cache_dir=cache, offline=True)
    assert model.config.source == "wordllama"
    assert model.embed("cat").shape == (16,)
