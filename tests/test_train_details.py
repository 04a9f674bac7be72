"""Training internals pinned to known values: pair statistics, the contrastive methods, baking,
probe and tie handling in the evaluation, the adaptor's stages and losses, the binary codes'
losses and epoch choice, the reranker's loss, dev scores and patience, and the teacher caches.

Each test fails when the step it names is computed another way (a sign, a side, an order, a
check left out), which the end-to-end tests of those modules would not notice.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import lightembed
from lightembed.scoring import unit_rows
from lightembed_train.projection import GroupedVectors, Moments, Projection, group_stats, pair_stats
from lightembed_train.projection.methods import (
    Recipe,
    contrastive_mse_refine,
    contrastive_rayleigh,
    rayleigh,
)
from lightembed_train.projection.metrics import Scores
from lightembed_train.projection.negatives import mine_negatives
from lightembed_train.projection.search import Trial


def planted(groups: int = 60, seed: int = 0, dim: int = 12) -> GroupedVectors:
    """Groups of 2-4 noisy copies of random centres, away from the origin."""
    rng = np.random.default_rng(seed)
    ids = np.repeat(np.arange(groups), rng.integers(2, 5, groups))
    rows = rng.normal(size=(groups, dim))[ids] + 0.5 * rng.normal(size=(len(ids), dim)) + 2.0  # off-centre
    return GroupedVectors(rows.astype(np.float32), ids)


# --------------------------------------------------------------------------- projection
def test_negative_cross_is_the_negative_pairs_cross_covariance_about_the_positive_mean() -> None:
    data = planted()
    negatives = mine_negatives(data, 2)
    m = Moments(group_stats(data), pair_stats(data.vectors, negatives))
    x = data.vectors[negatives[:, 0]].astype(np.float64) - m.mean
    y = data.vectors[negatives[:, 1]].astype(np.float64) - m.mean
    c = x.T @ y / len(x)
    np.testing.assert_allclose(m.negative_cross, c + c.T, atol=1e-9)


def test_eigendecompositions_are_ordered_as_documented() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((500, 6))
    y = x * np.array([2.0, 1.0, 0.5, -2.5, -0.2, 0.1]) + 0.3 * rng.standard_normal((500, 6))
    pairs = np.stack([np.arange(500), np.arange(500) + 500], axis=1)  # y anti-correlates with x in two directions
    m = Moments(pair_stats(np.concatenate([x, y]), pairs))
    values, vectors = m.total_eigen
    assert np.all(np.diff(values) <= 1e-12)  # descending
    np.testing.assert_allclose((vectors * values) @ vectors.T, m.total, atol=1e-9)
    values, vectors = m.cross_eigen
    assert values.min() < 0 < values.max()  # the cross term has both signs here, so the orders differ
    assert np.all(np.diff(np.abs(values)) <= 1e-12)  # largest magnitude first
    np.testing.assert_allclose((vectors * values) @ vectors.T, m.cross, atol=1e-9)


def test_contrastive_methods_subtract_the_negatives() -> None:
    """Both subtract alpha times the negative pairs' cross covariance."""
    data = planted()
    m = Moments(group_stats(data), pair_stats(data.vectors, mine_negatives(data, 2)))
    alpha, beta, ridge = 0.7, 0.2, 0.05
    w = contrastive_rayleigh(m, alpha, beta, ridge)
    a = m.cross - alpha * m.negative_cross
    b = m.total + beta * m.negative_cross
    b = b + ridge * np.trace(b) / len(b) * np.eye(len(b))
    values = np.diag(w.T @ a @ w)
    np.testing.assert_allclose(a @ w, b @ w * values, atol=1e-8)  # (C - alpha N) w = lambda (T + beta N + ridge) w
    start = rayleigh(m, 1.0)[:, :5]
    refined = contrastive_mse_refine(start, m, alpha, ridge)
    inner = start.T @ m.total @ start
    inner = inner + ridge * np.trace(inner) / len(inner) * np.eye(len(inner))
    mapped = start @ np.linalg.solve(inner, start.T @ a @ start)
    np.testing.assert_allclose(refined @ refined.T, mapped @ mapped.T, rtol=1e-7, atol=1e-10)


def test_trial_best_prefers_the_narrower_width_on_a_tie() -> None:
    trial = Trial(
        Recipe.of(("rayleigh", {"ridge": 1})), {4: Scores(0.5, 0.4), 8: Scores(0.5, 0.6), 2: Scores(0.3, 1)}, 0.0
    )
    assert trial.best == (4, Scores(0.5, 0.4))


def test_baking_through_a_projection_with_a_bias_keeps_the_bias(tiny_dir: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    parts = lightembed.read_model(tiny_dir)
    weight, bias = rng.standard_normal((10, 16)).astype(np.float32), 3 * rng.standard_normal(10).astype(np.float32)
    config = dataclasses.replace(parts.config, projection=True, matryoshka_dims=(4, 8))
    base = lightembed.write_model(
        tmp_path / "base",
        config,
        parts.embeddings,
        parts.tokenizer,
        {"projection.weight": weight, "projection.bias": bias},
    )
    texts = ["the cat sat on the mat", "a dog ran in the park", "music song play guitar"]
    w = rng.standard_normal((10, 4)).astype(np.float32)
    baked = lightembed.load(Projection(w).bake(base, tmp_path / "baked", dtype="float32"))
    np.testing.assert_allclose(baked.embed(texts), Projection(w).apply(lightembed.load(base).embed(texts)), atol=1e-5)


def test_baking_a_model2vec_folder_keeps_its_token_weights(tmp_path: Path) -> None:
    from test_folder import write_model2vec

    base = write_model2vec(tmp_path / "m2v", weights=True, mapping=True)  # weights stay separate from shared rows
    texts = ["the cat sat on the mat", "a dog ran in the park", "music song play guitar"]
    w = np.random.default_rng(1).standard_normal((16, 5)).astype(np.float32)
    baked = lightembed.load(Projection(w).bake(base, tmp_path / "baked", dtype="float32"))
    np.testing.assert_allclose(baked.embed(texts), Projection(w).apply(lightembed.load(base).embed(texts)), atol=1e-5)


# --------------------------------------------------------------------------- evaluation
def test_probe_standardises_so_a_small_scale_signal_still_counts() -> None:
    """Unscaled, a C=1 probe on 1e-4-scale features underfits."""
    from lightembed_train.evaluation.classification import probe_accuracy

    rng = np.random.default_rng(0)

    def split(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = np.repeat([0, 1], n)
        x = np.c_[(2 * y - 1) * 1e-4 + 2e-5 * rng.standard_normal(2 * n), rng.standard_normal(2 * n)]
        return x, y

    (train_x, train_y), (test_x, test_y) = split(100), split(40)
    assert probe_accuracy(train_x, train_y, test_x, test_y) == pytest.approx(100.0)


def test_ties_favour_neither_end_of_the_input_order() -> None:
    from lightembed_train.evaluation.reranking import rank_by_score, ranked_average_precision

    ties = np.zeros(40)
    first = np.array([True, True] + [False] * 38)
    assert ranked_average_precision(first[rank_by_score(ties)]) < 0.5
    assert ranked_average_precision(first[::-1][rank_by_score(ties)]) < 0.5


def test_spearman_of_a_constant_gold_is_zero_not_nan() -> None:
    from lightembed_train.evaluation.sts import spearman

    assert spearman(np.array([1.0, 2.0, 3.0]), np.ones(3)) == 0.0


# --------------------------------------------------------------------------- adaptor
def test_adaptor_scores_are_measured_on_the_dev_queries_only() -> None:
    from lightembed_train.adapt import AdaptSettings, group_split, relevance_lists, retrieval_ndcg
    from lightembed_train.adapt_fit import fit_adaptor

    rng = np.random.default_rng(0)
    corpus = rng.standard_normal((100, 8)).astype(np.float32)
    relevance = np.stack([np.arange(100), np.arange(100)], axis=1)
    settings = AdaptSettings(dims=(4,), epochs=0, supervised_epochs=0)
    _, dev = group_split(relevance_lists(relevance, 100, 100), 0.2, settings.seed)
    queries = corpus.copy()
    queries[dev] = rng.standard_normal((len(dev), 8))  # dev queries miss; training queries are their documents
    result = fit_adaptor(corpus, queries, relevance, settings=settings, progress=False)
    expected = retrieval_ndcg(queries[dev], corpus, [np.array([q]) for q in dev], (4, 8))
    assert result.truncation == pytest.approx(expected) and expected[8] < 50


def test_held_out_corpus_rows_are_not_trained_on() -> None:
    from lightembed_train.adapt import AdaptSettings
    from lightembed_train.adapt_fit import fit_adaptor

    corpus = np.random.default_rng(0).standard_normal((200, 8)).astype(np.float32)
    result = fit_adaptor(corpus, settings=AdaptSettings(dims=(4,), epochs=0, supervised_epochs=0), progress=False)
    assert result.counts["holdout_rows"] == 20 and result.counts["unsupervised_rows"] == 180


def test_a_stage_keeps_the_best_eligible_epoch() -> None:
    from lightembed_train.adapt import AdaptSettings, MatryoshkaAdaptor, Scorer, _run_stage, _Stage

    class Scripted(Scorer):
        def __init__(self, plain: dict, sequence: list) -> None:
            self.dims, self.available, self.by_queries, self.name = (4, 8), True, True, "scripted"
            self.plain, self.sequence = plain, iter(sequence)

        def __call__(self, transform):  # type: ignore[override]
            return next(self.sequence)

    sequence = [
        {4: 10.0, 8: 50.0},  # epoch 0, the start
        {4: 30.0, 8: 50.0},  # 1: better, eligible -> kept
        {4: 20.0, 8: 50.0},  # 2: worse
        {4: 90.0, 8: 40.0},  # 3: better mean, but full width 10 below the input's: never kept
    ]
    adaptor = MatryoshkaAdaptor(8, 8)

    def batches(model, generator):
        yield model(torch.ones(2, 8)).pow(2).sum()

    stage = _Stage("unsupervised", 3, batches)
    result = _run_stage(adaptor, stage, AdaptSettings(patience=8), Scripted(sequence[0], sequence), None, False)
    assert result.best_epoch == 1


def test_unsupervised_loss_distils_the_original_cosines_into_the_prefixes() -> None:
    from lightembed_train.adapt import (
        AdaptSettings,
        MatryoshkaAdaptor,
        _UnsupervisedTerms,
        similarity_distillation_loss,
    )

    rng = np.random.default_rng(0)
    x = rng.standard_normal((30, 8)).astype(np.float32)
    settings = AdaptSettings(
        dims=(2, 4), pair_weight=0, neighbour_weight=0, reconstruction_weight=0, distill_weight=1, neighbours=3
    )
    terms = _UnsupervisedTerms(x, settings, (2, 4, 8), torch.device("cpu"))
    torch.manual_seed(0)
    adaptor = MatryoshkaAdaptor(8, 8)
    for p in adaptor.parameters():
        torch.nn.init.normal_(p, std=0.5)
    anchors = torch.arange(10)
    got = terms.loss(adaptor, anchors, torch.Generator().manual_seed(3))
    picks = torch.rand((10, 3), generator=torch.Generator().manual_seed(3)).argsort(dim=1)[:, :3]
    rows = torch.cat([anchors, torch.gather(terms.neighbours[anchors], 1, picks).reshape(-1)])
    original = torch.as_tensor(x)[rows]
    expected = similarity_distillation_loss(original, adaptor(original), (2, 4, 8), settings.distill_temperature)
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)


# --------------------------------------------------------------------------- binary codes
def reference_listwise(
    codes: np.ndarray, targets: np.ndarray, prefixes: tuple[int, ...], temperature: float, scale: float
) -> float:
    """The listwise loss written out: per prefix, KL(teacher || codes) of each row's softmax over the other rows."""

    def log_softmax(z: np.ndarray) -> np.ndarray:
        z = np.where(np.eye(len(z), dtype=bool), -np.inf, z)
        top = z.max(axis=1, keepdims=True)
        return z - top - np.log(np.exp(z - top).sum(axis=1, keepdims=True))

    teacher = log_softmax(targets @ targets.T / temperature)
    off = ~np.eye(len(codes), dtype=bool)
    losses = []
    with np.errstate(invalid="ignore"):  # -inf - -inf on the diagonal, left out below
        for m in prefixes:
            student = log_softmax(scale * (codes[:, :m] @ codes[:, :m].T) / m)
            losses.append((np.exp(teacher) * (teacher - student))[off].reshape(len(codes), -1).sum(axis=1).mean())
    return float(np.mean(losses))


def test_listwise_distillation_known_value() -> None:
    from lightembed_train.binary import listwise_distillation

    rng = np.random.default_rng(0)
    codes = np.where(rng.standard_normal((6, 8)) > 0, 1.0, -1.0)
    targets = unit_rows(rng.standard_normal((6, 3)))
    got = listwise_distillation(
        torch.tensor(codes), torch.tensor(targets, dtype=torch.float64), (2, 8), 0.5, torch.tensor(3.0)
    )
    assert got.item() == pytest.approx(reference_listwise(codes, targets, (2, 8), 0.5, 3.0), rel=1e-6)


def test_code_info_nce_is_symmetric() -> None:
    from lightembed_train.binary import code_info_nce

    left = torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, -1.0]])
    right = torch.tensor([[1.0, -1.0], [-1.0, 1.0], [-1.0, 1.0]])
    ce = torch.nn.functional.cross_entropy
    labels = torch.arange(3)
    expected = []
    for m in (1, 2):
        logits = 2.0 * left[:, :m] @ right[:, :m].T / m
        expected.append((ce(logits, labels) + ce(logits.T, labels)).item() / 2)
    assert ce(logits, labels).item() != pytest.approx(ce(logits.T, labels).item())  # at m = 2: not symmetric
    assert code_info_nce(left, right, (1, 2), torch.tensor(2.0)).item() == pytest.approx(np.mean(expected))


def test_neighbour_groups_with_an_untrainable_text_are_dropped() -> None:
    from lightembed_train.binary import _neighbour_rows

    kept = _neighbour_rows(np.array([[0, 1], [1, 5], [5, 4]]), np.array([0, 1, 2, 4]), 6)
    assert kept.tolist() == [[0, 1]]


def test_code_dev_spearman_ranks_by_the_hamming_similarity(tiny) -> None:
    from lightembed_train.binary import CodeDevPairs
    from lightembed_train.datasets import ScoredPairs
    from lightembed_train.evaluation.sts import spearman
    from lightembed_train.tune import pooled

    left_texts = ["the cat sat", "a dog ran", "music song", "red car", "the piano"]
    right_texts = ["the cat", "the dog", "play guitar", "happy song", "sad car"]
    gold = [5.0, 1.0, 3.0, 2.0, 4.0]
    pairs = CodeDevPairs.from_pairs("toy", tiny, ScoredPairs(left_texts, right_texts, gold))
    table = np.asarray(tiny.parts.embeddings, dtype=np.float32)
    a = np.where(pooled(table, pairs.left)[:, :8] > 0, 1.0, -1.0)
    b = np.where(pooled(table, pairs.right)[:, :8] > 0, 1.0, -1.0)
    expected = spearman((a * b).sum(axis=1), np.asarray(gold))
    assert expected != 0.0 and pairs.spearman(table, 8) == pytest.approx(expected)


def test_binary_training_keeps_the_best_dev_epoch(tiny) -> None:
    """With a dev gold that runs against the float cosine, training towards the float model makes
    dev worse, so an early epoch must be kept."""
    from tiny import WORDS

    from lightembed_train.binary import BinarySettings, CodeDevPairs, code_start, train_binary_codebook
    from lightembed_train.datasets import ScoredPairs
    from lightembed_train.tune import pooled, tokenize

    rng = np.random.default_rng(0)
    texts = [" ".join(rng.choice(WORDS, size=rng.integers(1, 7))) for _ in range(400)]
    scales = np.array([8.0, 4.0, 2.0, 1.0, 0.5, 0.25, 0.12, 0.06], dtype=np.float32)
    table = (rng.standard_normal((tiny.config.vocab_size, 8)) * scales).astype(np.float32)
    tokens = tokenize(tiny, texts)
    left, right = texts[:100], texts[100:200]
    floats = unit_rows(pooled(table, tokenize(tiny, left))) * unit_rows(pooled(table, tokenize(tiny, right)))
    dev = [CodeDevPairs.from_pairs("anti", tiny, ScoredPairs(left, right, list(-floats.sum(axis=1))))]
    settings = BinarySettings(bits=8, prefixes=(4, 8), epochs=4, batch_size=100, learning_rate=3e-2)
    start = code_start(8, 8, "rotation", seed=0)
    result = train_binary_codebook(
        table, start, tokens, pooled(table, tokens), dev, settings, device="cpu", progress=False
    )
    devs = [row["dev"] for row in result.history]
    assert result.best_epoch == int(np.argmax(devs)) and result.best_epoch < settings.epochs


# --------------------------------------------------------------------------- reranker
def test_triple_loss_kl_term_known_value() -> None:
    """The KL term is KL(teacher || student) over each triple's two scores."""
    from lightembed_train.reranker import RerankSettings, triple_loss

    positive, negative, margin = torch.tensor([0.5, 0.2]), torch.tensor([0.1, 0.4]), torch.tensor([0.3, 0.0])
    settings = RerankSettings(temperature=0.5, kl_weight=1.0)
    mse = ((0.4 - 0.3) ** 2 + (-0.2 - 0.0) ** 2) / 2

    def softmax(a: np.ndarray) -> np.ndarray:
        e = np.exp(a - a.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    s = softmax(np.array([[0.5, 0.1], [0.2, 0.4]]) / 0.5)
    t = softmax(np.array([[0.3, 0.0], [0.0, 0.0]]) / 0.5)
    kl = float((t * np.log(t / s)).sum(axis=1).mean())
    assert triple_loss(positive, negative, margin, settings).item() == pytest.approx(mse + kl, rel=1e-5)


def test_teacher_pair_scores_are_positive_then_negative() -> None:
    from lightembed_train.rerank_data import Triple
    from lightembed_train.reranker import teacher_pair_scores

    vectors = np.array([[1.0, 0.0], [2.0, 0.0], [0.0, 3.0], [1.0, 1.0]])
    index = {"q": 0, "p": 1, "n": 2, "m": 3}
    got = teacher_pair_scores(vectors, index, [Triple("q", "p", "n", "x"), Triple("q", "m", "n", "x")])
    np.testing.assert_allclose(got, [[1.0, 0.0], [1 / math.sqrt(2), 0.0]], atol=1e-7)


def test_reranker_dev_scores_use_the_models_own_pooled_cosines(tiny) -> None:
    """The start's dev score cannot depend on the codebook that only the training triples use."""
    from test_train_reranker import SMALL, planted_training

    from lightembed_train.reranker import train_reranker

    settings = dataclasses.replace(SMALL, epochs=1, patience=1, pooled=True)
    args = planted_training(tiny, settings)
    own = train_reranker(**args, device="cpu", progress=False)
    other = train_reranker(**args, device="cpu", progress=False, training_codebook=np.zeros_like(args["codebook"]))
    assert other.history[0]["dev"] == own.history[0]["dev"]


def test_ndcg_dev_rankings_count_relevant_documents_outside_the_candidates() -> None:
    from lightembed_train.datasets import RankingQuery
    from lightembed_train.rerank_data import DevRanking
    from lightembed_train.reranker import _ranking_score

    ranking = DevRanking("toy", "nDCG@10", [RankingQuery("q", ["a", "b"], [1, 0])], [3])
    expected = 100 / (1 + 1 / math.log2(3) + 1 / math.log2(4))
    assert _ranking_score(ranking, lambda query: np.array([1.0, 0.0])) == pytest.approx(expected)


def test_reranker_training_stops_after_patience_epochs_without_a_better_dev_score(tiny) -> None:
    """Every candidate is the same text, so the dev score never moves."""
    from test_train_reranker import SMALL, planted_training

    from lightembed_train.datasets import RankingQuery
    from lightembed_train.rerank_data import DevRanking
    from lightembed_train.reranker import train_reranker

    settings = dataclasses.replace(SMALL, epochs=5, patience=2)
    args = planted_training(tiny, settings)
    texts = list(args["index"])
    flat = [RankingQuery(texts[0], [texts[1]] * 4, [1, 0, 0, 0])]
    args["dev"] = [DevRanking("flat", "MAP", flat, [1])]
    result = train_reranker(**args, device="cpu", progress=False)
    assert len(result.history) == 1 + settings.patience and result.best_epoch == 0


# --------------------------------------------------------------------------- teacher caches
def test_texts_digest_depends_on_the_texts_and_their_order() -> None:
    from lightembed_train.targets import texts_digest

    assert len({texts_digest(["a", "b"]), texts_digest(["a", "c"]), texts_digest(["b", "a"])}) == 3


def fake_teacher(folder: Path, hidden: int = 3) -> SimpleNamespace:
    """A stand-in teacher: three files to hash and an `encode` that counts its calls."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("model.safetensors", "config.json", "tokenizer.json"):
        (folder / name).write_text(name)
    calls: list[int] = []

    def encode(texts, batch_size=64, progress=False):
        calls.append(len(texts))
        return np.arange(len(texts) * hidden, dtype=np.float32).reshape(len(texts), hidden)

    return SimpleNamespace(
        name="fake",
        weight_files=[folder / "model.safetensors"],
        model_dir=folder,
        hidden_size=hidden,
        encode=encode,
        calls=calls,
    )


@pytest.mark.parametrize("name", ["config.json", "tokenizer.json"])
def test_teacher_digest_covers_the_config_and_tokenizer(tmp_path: Path, name: str) -> None:
    from lightembed_train.targets import teacher_digest

    teacher = fake_teacher(tmp_path / "t")
    before = teacher_digest(teacher)
    (tmp_path / "t" / name).write_text("changed")
    assert teacher_digest(teacher) != before


def test_a_cache_of_the_wrong_shape_is_embedded_again(tmp_path: Path) -> None:
    from lightembed_train.targets import teacher_embeddings

    teacher = fake_teacher(tmp_path / "t")
    fresh = teacher_embeddings(teacher, ["a", "b"], tmp_path / "cache", progress=False)
    (cached,) = (tmp_path / "cache").glob("teacher-*.npy")
    np.save(cached, np.zeros((2, 5), np.float32))
    again = teacher_embeddings(teacher, ["a", "b"], tmp_path / "cache", progress=False)
    np.testing.assert_array_equal(again, fresh)
    assert teacher.calls == [2, 2]


def test_corpus_sample_depends_on_the_seed(tmp_path: Path) -> None:
    from lightembed_train.targets import corpus_sample

    path = tmp_path / "corpus.txt"
    path.write_text("".join(f"text {i}\n" for i in range(100)))
    samples = {tuple(corpus_sample([path], 10, seed)) for seed in range(3)}
    assert len(samples) == 3
