"""Tests of codebook tuning: batching, pooling, the loss, the linear start, recovery of a planted
codebook, the end-to-end run with a tiny teacher, its cache, and the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from safetensors import safe_open

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("scipy")

from tiny import WORDS, add_reranker, tiny_codebook
from tiny_teacher import WORDS as TEACHER_WORDS

import lightembed
from lightembed.scoring import unit_rows
from lightembed_train import targets as targets_module
from lightembed_train import tune as tune_module
from lightembed_train.datasets import ScoredPairs
from lightembed_train.distill import distill
from lightembed_train.tune import (
    DevPairs,
    PairTokens,
    TokenizedTexts,
    TuneSettings,
    linear_start,
    matryoshka_cosine_loss,
    matryoshka_info_nce,
    pooled,
    tokenize,
    tune_codebook,
    tune_model,
)


def random_texts(count: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=rng.integers(1, 7))) for _ in range(count)]


def test_batch_gathers_the_rows_of_each_text() -> None:
    tokens = TokenizedTexts(np.array([5, 6, 7, 8, 9, 10]), np.array([2, 0, 3, 1]))
    ids, offsets = tokens.batch(np.array([3, 0, 2]))
    assert ids.tolist() == [10, 5, 6, 7, 8, 9]
    assert offsets.tolist() == [0, 1, 3]


def test_pooled_equals_the_runtime(tiny: lightembed.LightEmbed) -> None:
    texts = [*random_texts(50, 0), "", "unknownword"]
    tokens = tokenize(tiny, texts)
    vectors = pooled(tiny.parts.embeddings, tokens)
    assert not vectors[-2:].any()  # no tokens: a zero vector
    np.testing.assert_allclose(unit_rows(vectors), tiny.embed(texts), atol=1e-6)


def test_matryoshka_cosine_loss_known_values() -> None:
    target = torch.tensor([[1.0, 0.0, 2.0, 0.0]])
    assert float(matryoshka_cosine_loss(target.clone(), target, (2, 4))) == pytest.approx(0.0, abs=1e-6)
    assert float(matryoshka_cosine_loss(-target, target, (2, 4))) == pytest.approx(2.0)
    # agrees on the first two columns, orthogonal over all four: (0 + 1) / 2
    student = torch.tensor([[1.0, 0.0, 0.0, 0.5]])
    expected = (0.0 + (1.0 - 1.0 / np.sqrt(1.25 * 5.0))) / 2
    assert float(matryoshka_cosine_loss(student, target, (2, 4))) == pytest.approx(expected, rel=1e-5)


def test_info_nce_known_values() -> None:
    left = torch.eye(3)
    # perfect pairs far apart: the loss tends to 0 as the temperature falls
    assert float(matryoshka_info_nce(left, left.clone(), (3,), temperature=0.01)) < 1e-6
    # every candidate equally similar: log(batch size)
    same = torch.ones(3, 2)
    assert float(matryoshka_info_nce(same, same, (2,), temperature=0.05)) == pytest.approx(np.log(3), rel=1e-5)


def test_pair_tokens_drop_empty_sides_and_batch(tiny: lightembed.LightEmbed) -> None:
    pairs = [("the cat", "a dog"), ("", "a dog"), ("red car", "unknownword"), ("big tree", "small tree")]
    tokens = PairTokens.from_pairs(tiny, pairs)
    assert len(tokens) == 2
    ids, offsets = tokens.right.batch(np.array([1]))
    assert ids.tolist() == tiny.tokens.encode(["small tree"])[0].tolist() and offsets.tolist() == [0]
    generator = torch.Generator().manual_seed(0)
    batches = tokens.batches(8, generator)
    assert sorted(next(batches).tolist()) == [0, 1]  # fewer pairs than the batch size: all of them


def test_contrastive_term_pulls_pairs_together(tiny: lightembed.LightEmbed) -> None:
    """Targets that ignore a pairing, and pairs that insist on it: the pairs must end up closer."""
    texts = random_texts(500, 6)
    tokens = tokenize(tiny, texts)
    goal = pooled(tiny_codebook(dim=8, seed=9), tokens)
    pairs = PairTokens.from_pairs(tiny, [("cat", "guitar"), ("dog", "piano"), ("bird", "song"), ("car", "tree")])
    start = tiny_codebook(dim=8, seed=10)

    def pair_cosine(table: np.ndarray) -> float:
        left, right = unit_rows(pooled(table, pairs.left)), unit_rows(pooled(table, pairs.right))
        return float(np.mean(np.einsum("ij,ij->i", left, right)))

    plain = TuneSettings(dims=(8,), epochs=5, batch_size=50, learning_rate=1e-2)
    with_pairs = TuneSettings(dims=(8,), epochs=5, batch_size=50, learning_rate=1e-2, contrastive_weight=10.0)
    without = tune_codebook(start, tokens, goal, [], plain, progress=False)
    pulled = tune_codebook(start, tokens, goal, [], with_pairs, pairs, progress=False)
    assert pair_cosine(pulled.table) > pair_cosine(without.table) + 0.2


def test_linear_start_fits_a_linear_target_exactly(tiny: lightembed.LightEmbed) -> None:
    tokens = tokenize(tiny, random_texts(400, 1))
    table = tiny.parts.embeddings.astype(np.float32)
    mixing = np.random.default_rng(2).standard_normal((table.shape[1], 8))
    goal = pooled(table, tokens) @ mixing
    start = linear_start(table, tokens, goal.astype(np.float32))
    cosines = np.einsum("ij,ij->i", unit_rows(pooled(start, tokens)), unit_rows(goal))
    assert cosines.min() > 0.9999


def test_tune_recovers_a_planted_codebook(tiny: lightembed.LightEmbed) -> None:
    """Targets pooled from a hidden codebook: tuning from a random start must find its geometry."""
    hidden = tiny_codebook(dim=8, seed=7)
    tokens = tokenize(tiny, random_texts(3000, 3))
    goal = pooled(hidden, tokens)
    left, right = random_texts(300, 4), random_texts(300, 5)
    gold = np.einsum(
        "ij,ij->i", unit_rows(pooled(hidden, tokenize(tiny, left))), unit_rows(pooled(hidden, tokenize(tiny, right)))
    )
    dev = [DevPairs.from_pairs("planted", tiny, ScoredPairs(left, right, gold.tolist()))]
    start = tiny_codebook(dim=8, seed=8)
    settings = TuneSettings(dims=(4, 8), epochs=15, batch_size=64, learning_rate=3e-2)
    result = tune_codebook(start, tokens, goal, dev, settings, progress=False)
    assert [row["epoch"] for row in result.history] == list(range(16))
    assert result.history[0]["loss"] is None and result.history[-1]["loss"] < 0.01
    assert result.best_epoch > 0 and result.history[result.best_epoch]["planted@8"] > 98.0
    assert result.history[0]["planted@8"] < 60.0
    cosines = np.einsum("ij,ij->i", unit_rows(pooled(result.table, tokens)), unit_rows(goal))
    assert np.mean(cosines) > 0.99


def test_tune_rejects_mismatched_inputs(tiny: lightembed.LightEmbed) -> None:
    tokens = tokenize(tiny, ["the cat", "a dog"])
    table = tiny.parts.embeddings.astype(np.float32)
    with pytest.raises(ValueError, match="targets"):
        tune_codebook(table, tokens, np.zeros((3, 16), dtype=np.float32), [], progress=False)
    with pytest.raises(ValueError, match="prefix sizes"):
        tune_codebook(table, tokens, np.zeros((2, 16), np.float32), [], TuneSettings(dims=(32,)), progress=False)


@pytest.fixture(scope="module")
def tune_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """24 distinct texts in the tiny teacher's words: more than the base model's 8 dims."""
    rng = np.random.default_rng(0)
    words = [w for w in TEACHER_WORDS if w.isalpha()]
    texts = dict.fromkeys(" ".join(rng.choice(words, 5)) for _ in range(40))
    path = tmp_path_factory.mktemp("tune-corpus") / "corpus.txt"
    path.write_text("\n".join(list(texts)[:24]) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def base_model(tiny_teacher: Path, corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("base") / "model"
    return distill(tiny_teacher, out, dim=8, corpus_files=[corpus], progress=False)


def test_tune_model_end_to_end_and_cache(
    base_model: Path, tiny_teacher: Path, tune_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dev = [("toy", ScoredPairs(["the cat sat", "a dog"], ["the cat", "bake bread"], [5.0, 0.0]))]
    settings = TuneSettings(dims=(4, 8), epochs=2, batch_size=2)
    kwargs = {"teacher_path": tiny_teacher, "dev": dev, "settings": settings, "cache_dir": tmp_path / "cache"}
    out = tune_model(base_model, [tune_corpus], tmp_path / "tuned", progress=False, command="test tune", **kwargs)
    model = lightembed.load(out)
    assert model.dim == 8 and model.parts.embeddings.dtype == np.float16
    provenance = model.config.provenance
    assert provenance["method"] == "tune" and provenance["command"] == "test tune"
    assert provenance["corpus_texts_used"] == 24 and len(provenance["history"]) == 3
    assert model.config.matryoshka_dims == (4, 8)  # the prefixes it was tuned at
    assert 0 <= provenance["best_epoch"] <= 2 and "toy@4" in provenance["history"][0]
    base = lightembed.load(base_model)
    toy, base_table = DevPairs.from_pairs("toy", base, dev[0][1]), np.asarray(base.parts.embeddings, np.float32)
    assert provenance["base_dev"] == pytest.approx(np.mean([toy.spearman(base_table, m) for m in (4, 8)]))
    assert f"| base | | {provenance['base_dev']:.2f} |" in (out / "README.md").read_text(encoding="utf-8")
    json.loads((out / "config.json").read_text())  # strict JSON: no NaN for the start's loss
    assert "test tune" in (out / "README.md").read_text()
    vectors = model.embed(["the cat sat on the mat", ""])
    assert np.isfinite(vectors).all() and not vectors[1].any()

    assert len(list((tmp_path / "cache").glob("teacher-*.npy"))) == 1

    def no_teacher(*args: object, **kwargs: object) -> np.ndarray:
        raise AssertionError("the cached teacher vectors should be used")

    monkeypatch.setattr(targets_module.Teacher, "encode", no_teacher)
    again = tune_model(base_model, [tune_corpus], tmp_path / "again", progress=False, **kwargs)
    np.testing.assert_array_equal(lightembed.load(again).parts.embeddings, model.parts.embeddings)


@pytest.mark.parametrize("damage", ["truncated", "empty", "nan"])
def test_a_damaged_teacher_cache_is_embedded_again(tiny_teacher: Path, tmp_path: Path, damage: str) -> None:
    from lightembed_train.teacher import Teacher

    teacher = Teacher(tiny_teacher, device="cpu")
    texts = ["the cat sat", "a dog plays", "bake bread"]
    fresh = targets_module.teacher_embeddings(teacher, texts, tmp_path, progress=False)
    (cached,) = tmp_path.glob("teacher-*.npy")
    if damage != "nan":
        cached.write_bytes(cached.read_bytes()[: 200 if damage == "truncated" else 0])
    else:
        bad = fresh.copy()
        bad[1, 0] = np.nan
        np.save(cached, bad)
    again = targets_module.teacher_embeddings(teacher, texts, tmp_path, progress=False)
    np.testing.assert_allclose(again, fresh, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.load(cached), fresh, rtol=1e-5, atol=1e-6)  # and written again


def test_tuning_a_model_with_a_reranker_drops_it(
    base_model: Path, tiny_teacher: Path, tune_corpus: Path, tmp_path: Path
) -> None:
    base = shutil.copytree(base_model, tmp_path / "base")
    add_reranker(base, dim=8)
    settings = TuneSettings(dims=(4, 8), epochs=1, batch_size=2)
    out = tune_model(
        base, [tune_corpus], tmp_path / "tuned", teacher_path=tiny_teacher, settings=settings, progress=False
    )
    assert not lightembed.load(out).config.reranker and not (out / "reranker.safetensors").exists()


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (TuneSettings(batch_size=-5), "batch_size"),
        (TuneSettings(epochs=-1), "epochs"),
        (TuneSettings(learning_rate=float("nan")), "learning_rate"),
        (TuneSettings(dims=(4, 99)), r"prefix sizes \(4, 99\) \(dims, --dims\) must lie in \[1, 8\]"),
        (TuneSettings(dims=(4, 8)), "more distinct corpus texts than the model's 8 dims, got 3"),
    ],
)
def test_tune_checks_settings_before_the_teacher(
    base_model: Path,
    corpus: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    settings: TuneSettings,
    message: str,
) -> None:
    monkeypatch.setattr(tune_module, "Teacher", lambda *a, **k: pytest.fail("the teacher was loaded"))
    with pytest.raises(ValueError, match=message):
        tune_model(base_model, [corpus], tmp_path / "tuned", settings=settings, progress=False)


def test_tune_needs_texts_with_known_tokens(tiny: lightembed.LightEmbed) -> None:
    tokens = tokenize(tiny, ["xyzzy", "plugh"])
    table = tiny.parts.embeddings.astype(np.float32)
    with pytest.raises(ValueError, match="no corpus text has a token the model knows"):
        tune_codebook(table, tokens, np.zeros((2, 16), np.float32), [], TuneSettings(dims=(8,)), progress=False)


def test_cli_tune(base_model: Path, tiny_teacher: Path, tune_corpus: Path, tmp_path: Path, capsys) -> None:
    from lightembed_train.cli import main

    out = tmp_path / "cli"
    common = ["-q", "tune", "--base", str(base_model), "--teacher", str(tiny_teacher), "--corpus", str(tune_corpus)]
    assert main([*common, "--out", str(out), "--no-dev", "--dims", "8,4,8", "--epochs", "1", "--dtype", "int8"]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    config = json.loads((out / "config.json").read_text())
    assert config["provenance"]["settings"]["dims"] == [4, 8] and config["provenance"]["best_epoch"] == 1
    assert config["provenance"]["dtype"] == "int8" and config["provenance"]["teacher_seconds"] >= 0
    assert [row["dev"] for row in config["provenance"]["history"]] == [None, None]  # --no-dev: no made-up scores
    assert "| 0 | start | n/a |" in (out / "README.md").read_text(encoding="utf-8")
    with safe_open(str(out / "model.safetensors"), framework="numpy") as handle:
        assert handle.get_tensor("embeddings").dtype == np.int8
        assert handle.get_tensor("embeddings_scale").shape == (config["vocab_size"],)
    narrow = tmp_path / "default-dims"  # without --dims: 32, 64, ... below the width, and the width (here 8)
    assert main([*common, "--out", str(narrow), "--no-dev", "--epochs", "1"]) == 0
    assert json.loads((narrow / "config.json").read_text())["provenance"]["settings"]["dims"] == [8]
    capsys.readouterr()
    assert main([*common, "--out", str(tmp_path / "bad"), "--no-dev", "--dims", "4,x"]) == 2
    assert "comma-separated integers" in capsys.readouterr().err


def test_default_prefix_sizes_follow_the_width() -> None:
    assert tune_module.with_dims(TuneSettings(), 256).dims == (32, 64, 128, 256)
    assert tune_module.with_dims(TuneSettings(), 100).dims == (32, 64, 100)
    assert tune_module.with_dims(TuneSettings(), 8).dims == (8,)
    assert tune_module.with_dims(TuneSettings(dims=(16, 4, 16)), 16).dims == (4, 16)
