"""Tests of the Matryoshka adaptor: losses on hand-checkable cases, recovery of structure that
truncation loses, numpy/torch equality, export round trips (transform file, model folder), the
CLI end to end, and bad inputs."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest
from safetensors import safe_open

torch = pytest.importorskip("torch")

from tiny import WORDS, add_reranker, write_tiny_model

import lightembed
from lightembed.scoring import unit_rows
from lightembed_train.adapt import (
    AdaptData,
    AdaptSettings,
    MatryoshkaAdaptor,
    energy_rotation,
    group_split,
    nearest_neighbours,
    neighbour_recall,
    neighbour_similarity_loss,
    pair_similarity_loss,
    ranking_loss,
    reconstruction_loss,
    relevance_lists,
    retrieval_ndcg,
    similarity_distillation_loss,
    train_adaptor,
)
from lightembed_train.adapt_fit import adapt_model, fit_adaptor, pooled_vectors, read_relevance, score_table
from lightembed_train.cli import main

FAST = AdaptSettings(
    dims=(4,), epochs=20, supervised_epochs=10, learning_rate=1e-2, batch_size=64, random_negatives=64, patience=20
)


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny models train faster on one thread, and far faster when other work shares the CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def planted_corpus(n: int = 240, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """16-dim vectors: 12 leading columns of small noise, the cluster (of 6) lives in the last 4 columns."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((6, 4)) * 3.0
    labels = rng.integers(0, 6, n)
    noise = rng.standard_normal((n, 12)) * 0.3
    signal = centres[labels] + rng.standard_normal((n, 4)) * 0.3
    return np.hstack([noise, signal]).astype(np.float32), labels


def t(values: list) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32)


# --------------------------------------------------------------------------- losses
def test_pair_similarity_loss_known_value() -> None:
    original = t([[1, 0], [0, 1]])
    assert pair_similarity_loss(original, original, (1, 2)).item() == pytest.approx(0.0)  # a zero prefix: cosine 0
    adapted = t([[1, 0], [1, 1]])
    # prefix 1: cos([1], [1]) = 1 vs 0; prefix 2: cos = 1/sqrt(2) vs 0
    assert pair_similarity_loss(original, adapted, (1, 2)).item() == pytest.approx((1 + 1 / math.sqrt(2)) / 2)
    assert pair_similarity_loss(original, original, (2,)).item() == pytest.approx(0.0)


def test_neighbour_similarity_loss_known_value() -> None:
    original, neighbours = t([[1, 0, 0]]), t([[[1, 0, 0], [0, 1, 0]]])  # targets: 1 and 0
    adapted, adapted_neighbours = t([[1, 0, 0]]), t([[[0, 1, 0], [0, 1, 0]]])  # full cosines 0 and 0
    loss = neighbour_similarity_loss(original, neighbours, adapted, adapted_neighbours, (3,))
    assert loss.item() == pytest.approx(0.5)  # (|0 - 1| + |0 - 0|) / 2


def test_similarity_distillation_loss_known_value() -> None:
    original = t([[1, 0], [0, 1], [1, 1]])
    assert similarity_distillation_loss(original, original, (2,), 0.5).item() == pytest.approx(0.0, abs=1e-6)
    # prefix 1 of `adapted`: rows 1, 0, 1 -> cosines 1 between rows 0 and 2, else 0 (the zero row)
    adapted = t([[1, 0], [0, 1], [1, 1]])
    c = 1 / math.sqrt(2)
    p = torch.softmax(t([[0, c], [0, c], [c, c]]) / 0.5, dim=1).numpy()  # full cosines to the two other rows
    q = torch.softmax(t([[0, 1], [0, 0], [1, 0]]) / 0.5, dim=1).numpy()  # prefix-1 cosines to the two other rows
    expected = float((p * np.log(p / q)).sum(axis=1).mean())
    loss = similarity_distillation_loss(original, adapted, (1,), 0.5)
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_reconstruction_loss_known_value() -> None:
    assert reconstruction_loss(t([[2, 0], [0, 2]]), t([[2, 1], [0, 2]])).item() == pytest.approx(1 / 8)


def test_ranking_loss_known_values() -> None:
    queries, docs = t([[1, 0]]), t([[1, 0], [0, 1], [-1, 0]])
    one = ranking_loss(queries, docs, torch.tensor([[True, False, False]]), (2,), temperature=1.0)
    assert one.item() == pytest.approx(-math.log(math.e / (math.e + 1 + math.exp(-1))))
    # two relevant docs: each is scored against the non-relevant ones only
    two = ranking_loss(queries, docs, torch.tensor([[True, True, False]]), (2,), temperature=1.0)
    expected = (math.log(1 + math.exp(-2)) + math.log(1 + math.exp(-1))) / 2
    assert two.item() == pytest.approx(expected)
    assert ranking_loss(queries, docs, torch.zeros((1, 3), dtype=torch.bool), (2,), 1.0).item() == 0.0


# --------------------------------------------------------------------------- helpers
def test_energy_rotation_is_orthogonal_and_orders_energy() -> None:
    x, _ = planted_corpus()
    rotation = energy_rotation(x)
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(16), atol=1e-5)
    energy = ((x @ rotation.T) ** 2).mean(axis=0)
    assert (np.diff(energy) <= 1e-4).all()
    np.testing.assert_allclose(
        unit_rows(x @ rotation.T) @ unit_rows(x @ rotation.T).T, unit_rows(x) @ unit_rows(x).T, atol=1e-5
    )


def test_nearest_neighbours_and_recall() -> None:
    x = t([[1, 0.1], [1, 0.2], [-1, 0.1], [-1, 0.2]]).numpy()
    assert nearest_neighbours(x, 1).ravel().tolist() == [1, 0, 3, 2]
    assert neighbour_recall(x, x, (1, 2), k=1) == {1: 100.0, 2: 100.0}
    swapped = t([[1], [-1], [-1], [1]]).numpy()  # every row's nearest is now a wrong one
    assert neighbour_recall(x, swapped, (1,), k=1) == {1: 0.0}


def test_group_split_keeps_queries_that_share_documents_together() -> None:
    relevant = relevance_lists(np.array([[0, 0], [1, 0], [2, 1], [3, 2], [4, 3], [5, 3], [6, 4], [7, 5]]), 9, 6)
    assert relevant[8].size == 0
    for seed in range(5):
        train, dev = group_split(relevant, 0.3, seed)
        assert set(train) | set(dev) == set(range(8)) and not set(train) & set(dev)
        for pair in ((0, 1), (4, 5)):
            assert (pair[0] in dev) == (pair[1] in dev)


def test_group_split_names_the_groups_when_one_document_joins_every_query() -> None:
    relevant = relevance_lists(np.array([[q, 0] for q in range(40)]), 40, 3)
    with pytest.raises(ValueError, match="the 40 queries with relevant documents form 1 groups"):
        group_split(relevant, 0.3, 0)


def test_retrieval_ndcg_known_value() -> None:
    queries, docs = t([[1, 0]]).numpy(), t([[0, 1], [1, 0.1], [1, 0]]).numpy()
    scores = retrieval_ndcg(queries, docs, [np.array([0])], (2,))
    assert scores[2] == pytest.approx(100.0 / math.log2(4))  # the relevant doc ranks third


# --------------------------------------------------------------------------- training restores structure
def test_unsupervised_adaptor_restores_what_truncation_loses() -> None:
    x, _ = planted_corpus()
    before = neighbour_recall(x, x, (4,))[4]
    adaptor, stages = train_adaptor(AdaptData(x, x), dataclasses.replace(FAST, rotation="none"), "cpu", False)
    with torch.no_grad():
        after = neighbour_recall(x, adaptor(torch.as_tensor(x)).numpy(), (4,))[4]
    assert before < 20 and after > before + 15
    assert stages[0].best_epoch == FAST.epochs  # no dev score: the last epoch is kept


def test_learned_rotation_alone_stays_orthogonal_and_keeps_full_width_cosines() -> None:
    """A rotation-only adaptor (layers=0) trains its rotation; the full-width cosines must stay exact."""
    x, _ = planted_corpus()
    settings = dataclasses.replace(FAST, layers=0, rotation="learned", epochs=5)
    adaptor, _ = train_adaptor(AdaptData(x, x), settings, "cpu", False)
    q = adaptor.rotation_matrix().detach().numpy()
    np.testing.assert_allclose(q @ q.T, np.eye(16), atol=1e-5)
    assert np.abs(q - energy_rotation(x)).max() > 1e-3  # it was trained, not left at the start
    with torch.no_grad():
        out = adaptor(torch.as_tensor(x)).numpy()
    np.testing.assert_allclose(unit_rows(out) @ unit_rows(out).T, unit_rows(x) @ unit_rows(x).T, atol=1e-5)
    np.testing.assert_allclose(adaptor.to_transform().apply(x), out, atol=1e-5)


def sphere(rng: np.random.Generator, n: int, width: int, radius: float) -> np.ndarray:
    """n random points on the sphere of `radius` in `width` dims."""
    x = rng.standard_normal((n, width))
    return radius * x / np.linalg.norm(x, axis=1, keepdims=True)


def test_supervised_stage_learns_relevance_that_the_corpus_does_not_show() -> None:
    """Documents carry 12 loud columns and 4 quiet ones; each query matches its document in the quiet ones only.

    The full width ranks well, but the loudest columns say nothing about the queries, so plain
    truncation (in any energy order) to 4 columns fails. The unsupervised terms are off (they keep
    the corpus cosines, which live in the loud columns): only the ranking loss can bring the quiet
    columns to the front.
    """
    rng = np.random.default_rng(1)
    docs = np.hstack([sphere(rng, 300, 12, 6.0), sphere(rng, 300, 4, 2.0)]).astype(np.float32)
    queries = np.hstack([rng.normal(0, 0.05, (300, 12)), docs[:, 12:] + rng.normal(0, 0.05, (300, 4))])
    relevance = np.stack([np.arange(300), np.arange(300)], axis=1)
    settings = dataclasses.replace(
        FAST, epochs=0, supervised_epochs=12, query_batch_size=8, hidden=64, unsupervised_weight=0
    )
    result = fit_adaptor(docs, queries.astype(np.float32), relevance, settings=settings, device="cpu", progress=False)
    assert result.counts["dev_queries"] == 60 and result.counts["train_queries"] == 240
    assert result.truncation[16] > 50 and result.truncation[4] < 5
    assert result.scores[4] > 60 and result.scores[16] >= result.truncation[16]
    assert [stage.name for stage in result.stages] == ["unsupervised", "supervised"]
    assert result.stage("supervised").best_epoch > 0


# --------------------------------------------------------------------------- numpy inference
def test_training_and_runtime_know_the_same_activations() -> None:
    from lightembed.config import ACTIVATIONS
    from lightembed.transform import ACTIVATION_FUNCTIONS
    from lightembed_train.activations import TORCH_ACTIVATIONS

    assert set(TORCH_ACTIVATIONS) == set(ACTIVATION_FUNCTIONS) == set(ACTIVATIONS) == {"relu", "gelu", "tanh"}


@pytest.mark.parametrize("activation", ["relu", "gelu", "tanh"])
def test_numpy_transform_equals_torch(activation: str, tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((50, 12)).astype(np.float32)
    adaptor = MatryoshkaAdaptor(12, 20, layers=3, activation=activation, rotation=energy_rotation(x))
    for parameter in adaptor.parameters():  # random weights everywhere, the zero-started last layer too
        torch.nn.init.normal_(parameter, std=0.5)
    with torch.no_grad():
        expected = adaptor(torch.as_tensor(x)).numpy()
    transform = adaptor.to_transform()
    np.testing.assert_allclose(transform.apply(x), expected, atol=1e-5, rtol=1e-5)
    loaded = lightembed.load_transform(
        lightembed.save_transform(tmp_path / "a.safetensors", adaptor.to_transform(True))
    )
    np.testing.assert_allclose(loaded.apply(x, dim=5), unit_rows(expected[:, :5]), atol=1e-5, rtol=1e-5)


def test_model_folder_round_trip(tmp_path: Path) -> None:
    base = write_tiny_model(tmp_path / "base", dim=16)
    model = lightembed.load(base)
    rng = np.random.default_rng(0)
    corpus = [" ".join(rng.choice(WORDS, size=rng.integers(1, 6))) for _ in range(200)]
    np.testing.assert_allclose(unit_rows(pooled_vectors(model, corpus)), model.embed(corpus), atol=1e-6)
    settings = AdaptSettings(dims=(4, 8), epochs=2, supervised_epochs=0, batch_size=64)
    folder, result = adapt_model(base, corpus, tmp_path / "adapted", settings=settings, progress=False)
    adapted = lightembed.load(folder, dim=8)
    assert adapted.config.adaptor is not None and adapted.config.matryoshka_dims == (4, 8, 16)
    with torch.no_grad():
        expected = result.adaptor(torch.as_tensor(pooled_vectors(model, corpus))).numpy()
    texts = [*corpus[:20], ""]
    np.testing.assert_allclose(adapted.embed(texts)[:-1], unit_rows(expected[:20, :8]), atol=1e-5)
    assert not adapted.embed(texts)[-1].any()  # an empty text still gives zeros
    assert "Matryoshka adaptor" in (folder / "README.md").read_text()
    with pytest.raises(ValueError, match="already has an adaptor"):
        adapt_model(folder, corpus, tmp_path / "again", settings=settings, progress=False)


def test_adapting_a_model_with_a_reranker_keeps_it(tmp_path: Path) -> None:
    base = add_reranker(write_tiny_model(tmp_path / "base", dim=16))
    rng = np.random.default_rng(0)
    corpus = [" ".join(rng.choice(WORDS, size=rng.integers(1, 6))) for _ in range(200)]
    settings = AdaptSettings(dims=(4, 8), epochs=1, supervised_epochs=0, batch_size=64)
    folder, _ = adapt_model(base, corpus, tmp_path / "adapted", settings=settings, progress=False)
    adapted, original = lightembed.load(folder), lightembed.load(base)
    assert adapted.config.reranker
    docs = ["the cat sat", "a dog ran", "piano"]
    assert adapted.rerank("the cat", docs) == original.rerank("the cat", docs)


def test_a_corpus_too_small_to_hold_out_reports_no_dev_score() -> None:
    corpus = np.random.default_rng(0).standard_normal((20, 8)).astype(np.float32)
    result = fit_adaptor(corpus, settings=AdaptSettings(dims=(4,), epochs=1, supervised_epochs=0), progress=False)
    assert result.metric.startswith("no dev score")
    assert score_table(result) == f"{result.metric}: every stage kept its last epoch"


def test_default_prefix_sizes_are_those_below_the_width() -> None:
    assert AdaptSettings().prefix_sizes(48) == (16, 32, 48)
    assert AdaptSettings().prefix_sizes(384) == (16, 32, 64, 128, 384)


def test_model_with_a_projection_keeps_it_under_the_rotation(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    parts = lightembed.read_model(write_tiny_model(tmp_path / "plain", dim=16))
    weight, bias = rng.standard_normal((10, 16)).astype(np.float32), rng.standard_normal(10).astype(np.float32)
    config = dataclasses.replace(parts.config, projection=True, matryoshka_dims=(4, 8))
    projection = {"projection.weight": weight, "projection.bias": bias}
    base = lightembed.write_model(tmp_path / "base", config, parts.embeddings, parts.tokenizer, projection)
    corpus = [" ".join(rng.choice(WORDS, size=rng.integers(1, 6))) for _ in range(150)]
    settings = AdaptSettings(dims=(4,), epochs=1, supervised_epochs=0, batch_size=64)
    folder, result = adapt_model(base, corpus, tmp_path / "adapted", settings=settings, progress=False)
    with torch.no_grad():
        expected = result.adaptor(torch.as_tensor(pooled_vectors(lightembed.load(base), corpus))).numpy()
    np.testing.assert_allclose(lightembed.load(folder).embed(corpus), unit_rows(expected), atol=1e-5)


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("corpus", "settings", "message"),
    [
        (np.eye(20, 8, dtype=np.float32), AdaptSettings(dims=(4, 9)), "between 1 and the embedding width 8"),
        (np.zeros((0, 8), np.float32), AdaptSettings(dims=(4,)), "non-empty"),
        (np.full((20, 8), np.nan, np.float32), AdaptSettings(dims=(4,)), "NaN"),
        (np.zeros((20, 8), np.float32), AdaptSettings(dims=(4,)), "every vector is zero"),
        (np.ones((20, 8), np.float32), AdaptSettings(dims=(4,)), "all 20 rows are the same vector"),
        (np.eye(20, 8, dtype=np.float32), AdaptSettings(dims=(4,), learning_rate=0), "learning_rate"),
    ],
)
def test_bad_inputs_give_clear_errors(corpus: np.ndarray, settings: AdaptSettings, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        fit_adaptor(corpus, settings=settings, progress=False)


def test_bad_relevance() -> None:
    x, _ = planted_corpus(40)
    with pytest.raises(ValueError, match="query row outside"):
        fit_adaptor(x, x[:5], np.array([[7, 0]]), settings=FAST, progress=False)
    with pytest.raises(ValueError, match="queries need relevance"):
        fit_adaptor(x, x[:5], settings=FAST, progress=False)
    with pytest.raises(ValueError, match="too few"):
        fit_adaptor(x, x[:1], np.array([[0, 0]]), settings=FAST, progress=False)


# --------------------------------------------------------------------------- CLI
def test_cli_adapt_vectors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    x, _ = planted_corpus(200)
    np.save(tmp_path / "corpus.npy", x)
    np.save(tmp_path / "queries.npy", x[:60])
    (tmp_path / "rel.tsv").write_text("# query\tdoc\n" + "".join(f"{q}\t{q}\n" for q in range(60)))
    common = ["adapt", "--corpus", str(tmp_path / "corpus.npy"), "--dims", "4,8", "--epochs", "2"]
    args = [*common, "--queries", str(tmp_path / "queries.npy"), "--relevance", str(tmp_path / "rel.tsv")]
    out = tmp_path / "adaptor.safetensors"
    options = ["--supervised-epochs", "1", "--patience", "2", "--full-width-tolerance", "0.25"]
    assert main(["-q", *args, *options, "--out", str(out), "--report", str(tmp_path / "r.json")]) == 0
    printed = capsys.readouterr().out
    assert "| dims | truncation | unsupervised | supervised |" in printed and printed.strip().endswith(str(out))
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["dims"] == [4, 8, 16] and report["counts"]["dev_queries"] > 0
    assert report["settings"]["patience"] == 2 and report["settings"]["full_width_tolerance"] == 0.25
    transform = lightembed.load_transform(out)
    assert transform.normalize and transform.in_dim == 16
    with safe_open(str(out), framework="numpy") as handle:
        provenance = json.loads(handle.metadata()["lightembed_train.adapt"])
    files = {f["option"]: f for f in provenance["input_files"]}
    assert set(files) == {"--corpus", "--queries", "--relevance"} and provenance["command"].startswith("lightembed")
    assert files["--relevance"]["sha256"] == hashlib.sha256((tmp_path / "rel.tsv").read_bytes()).hexdigest()
    assert np.isfinite(transform.apply(x, dim=4)).all()

    assert main(["-q", *common, "--dims", "4,32", "--out", str(tmp_path / "bad.safetensors")]) == 2
    assert "between 1 and the embedding width 16" in capsys.readouterr().err
    (tmp_path / "bad.tsv").write_text("0 x\n")
    assert (
        main(
            [
                "-q",
                *common,
                "--queries",
                str(tmp_path / "queries.npy"),
                "--relevance",
                str(tmp_path / "bad.tsv"),
                "--out",
                str(out),
            ]
        )
        == 2
    )
    assert "bad.tsv:1: expected" in capsys.readouterr().err
    assert main(["-q", *common, "--queries", str(tmp_path / "queries.npy"), "--out", str(out)]) == 2
    assert "go together" in capsys.readouterr().err


def test_cli_adapt_texts_writes_a_model_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib")
    base = write_tiny_model(tmp_path / "base", dim=16)
    rng = np.random.default_rng(2)
    docs = [" ".join(rng.choice(WORDS, size=rng.integers(2, 6))) for _ in range(120)]
    (tmp_path / "docs.txt").write_text("\n".join(docs) + "\n")
    (tmp_path / "queries.txt").write_text("\n".join(d.split()[0] + " " + d.split()[-1] for d in docs[:40]) + "\n")
    (tmp_path / "rel.tsv").write_text("".join(f"{q}\t{q}\n" for q in range(40)))
    out, plot = tmp_path / "adapted", tmp_path / "dims.png"
    argv = ["-q", "adapt", "--model", str(base), "--corpus", str(tmp_path / "docs.txt"), "--out", str(out)]
    argv += ["--queries", str(tmp_path / "queries.txt"), "--relevance", str(tmp_path / "rel.tsv")]
    assert main([*argv, "--dims", "4,8", "--epochs", "1", "--supervised-epochs", "1", "--plot", str(plot)]) == 0
    assert capsys.readouterr().out.strip().endswith(str(out))
    assert plot.read_bytes().startswith(b"\x89PNG")
    model = lightembed.load(out, dim=4)
    assert model.embed(docs[:3]).shape == (3, 4)
    provenance = json.loads((out / "config.json").read_text())["provenance"]
    assert provenance["command"].startswith("lightembed-train") and " adapt --model " in provenance["command"]
    docs_file = next(f for f in provenance["input_files"] if f["option"] == "--corpus")
    assert docs_file["sha256"] == hashlib.sha256((tmp_path / "docs.txt").read_bytes()).hexdigest()
    assert "`--corpus`: `docs.txt`, sha256" in (out / "README.md").read_text(encoding="utf-8")


def test_read_relevance_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_relevance(tmp_path / "missing.tsv")
    (tmp_path / "empty.tsv").write_text("# nothing\n\n")
    with pytest.raises(ValueError, match="no relevant pairs"):
        read_relevance(tmp_path / "empty.tsv")
