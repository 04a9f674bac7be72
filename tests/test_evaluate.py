"""Tests of the benchmark suite: each metric on a tiny case with a known answer, the cache, the
report, and the dataset readers on the real files of the shared data folder (when it is there)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("sklearn", reason="the benchmark suite needs scikit-learn (pip install scikit-learn)")
pytest.importorskip("scipy", reason="the benchmark suite needs scipy (pip install scipy)")

from lightembed_train import datasets as ds
from lightembed_train.evaluate import (
    EmbeddingCache,
    EncoderReport,
    TaskResult,
    default_tasks,
    encoder_from_spec,
    evaluate,
    markdown_table,
)
from lightembed_train.evaluation import (
    ClassificationTask,
    DuplicateGroupsTask,
    RerankingTask,
    RetrievalTask,
    StsTask,
    TextIndex,
)
from lightembed_train.evaluation.classification import holdout_split, probe_accuracy
from lightembed_train.evaluation.clustering import kmeans_v_measure
from lightembed_train.evaluation.duplicates import leave_one_out, union_find_groups
from lightembed_train.evaluation.pairs import average_precision
from lightembed_train.evaluation.reranking import rank_by_score, ranked_average_precision
from lightembed_train.evaluation.retrieval import ndcg_at_k, top_k
from lightembed_train.evaluation.sts import spearman


def angles(*degrees: float) -> np.ndarray:
    """Unit vectors in the plane at the given angles: their cosines order by angular distance."""
    radians = np.deg2rad(np.asarray(degrees, dtype=np.float64))
    return np.stack([np.cos(radians), np.sin(radians)], axis=1).astype(np.float32)


class FakeEncoder:
    """Looks each text up in a table; counts how many texts it was asked for."""

    def __init__(self, table: dict[str, np.ndarray], fingerprint: str = "v1") -> None:
        self.table = table
        self.name = "fake"
        self.fingerprint = fingerprint
        self.calls = 0

    def encode(self, texts: list[str]) -> np.ndarray:
        self.calls += len(texts)
        return np.stack([self.table[t] for t in texts])


# ------------------------------------------------------------------------------ metrics
def test_spearman_known_answers() -> None:
    assert spearman(np.array([1.0, 2.0, 3.0, 4.0]), np.array([10.0, 20.0, 30.0, 40.0])) == pytest.approx(100.0)
    assert spearman(np.array([4.0, 3.0, 2.0, 1.0]), np.array([1.0, 2.0, 3.0, 4.0])) == pytest.approx(-100.0)
    # one adjacent swap among 4: rho = 1 - 6 * 2 / (4 * 15) = 0.8
    assert spearman(np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 3.0, 2.0, 4.0])) == pytest.approx(80.0)
    assert spearman(np.ones(4), np.array([1.0, 3.0, 2.0, 4.0])) == 0.0  # all scores equal: undefined, not NaN


def test_sts_task_scores_cosines() -> None:
    pairs = ds.ScoredPairs(["a", "a", "a"], ["b", "c", "d"], [5.0, 3.0, 1.0])
    task = StsTask("toy", pairs)
    assert task.texts == ["a", "b", "c", "d"]
    vectors = angles(0, 10, 40, 80)  # cos(a, .) falls as the gold score falls
    assert task.score(vectors) == {"Spearman": pytest.approx(100.0)}


def test_average_precision_known_answer() -> None:
    # ranked: pos, neg, pos, neg -> (1/1 + 2/3) / 2
    value = average_precision(np.array([0.9, 0.8, 0.7, 0.6]), np.array([1, 0, 1, 0]))
    assert value == pytest.approx(100 * (1 + 2 / 3) / 2)


def test_ranked_average_precision_known_answers() -> None:
    assert ranked_average_precision(np.array([1, 0, 1, 0])) == pytest.approx((1 + 2 / 3) / 2)
    assert ranked_average_precision(np.array([0, 0])) == 0.0
    # relevant items outside the list still count in the divisor
    assert ranked_average_precision(np.array([0, 1, 0, 1]), n_relevant=3, k=50) == pytest.approx((1 / 2 + 2 / 4) / 3)
    # @k: only the first k ranks count, divided by min(n_relevant, k)
    assert ranked_average_precision(np.array([1, 0, 1]), n_relevant=5, k=2) == pytest.approx(0.5)


def test_rank_by_score_orders_ties_apart_from_the_input_order() -> None:
    assert rank_by_score(np.array([0.5, 0.9, 0.5, 0.1])).tolist()[::3] == [1, 3]
    ties = np.zeros(40)
    assert sorted(rank_by_score(ties).tolist()) == list(range(40)) and rank_by_score(ties).tolist() != list(range(40))
    assert rank_by_score(ties).tolist() == rank_by_score(ties).tolist()  # a fixed order: runs repeat
    # a scorer that ties everything gets what a random order gets, not the file's right-answers-first order
    labels = np.array([True, True] + [False] * 38)
    assert ranked_average_precision(labels[rank_by_score(ties)]) < 0.5


def test_reranking_task_map() -> None:
    queries = [
        ds.RankingQuery("q", ["a", "b", "c"], [1, 0, 1]),
        ds.RankingQuery("only positives", ["a"], [1]),  # dropped: ranks nothing
    ]
    task = RerankingTask("toy", queries)
    assert task.texts == ["q", "a", "b", "c"]
    vectors = angles(0, 20, 10, 30)  # order by cosine to q: b, a, c
    assert task.score(vectors) == {"MAP": pytest.approx(100 * (1 / 2 + 2 / 3) / 2)}


def test_ndcg_at_10_known_answers() -> None:
    assert ndcg_at_k(np.array([1, 1, 0]), n_relevant=2) == pytest.approx(1.0)
    assert ndcg_at_k(np.array([0, 1, 0]), n_relevant=1) == pytest.approx(1 / math.log2(3))
    expected = (1 / math.log2(4)) / (1 + 1 / math.log2(3))
    assert ndcg_at_k(np.array([0, 0, 1]), n_relevant=2) == pytest.approx(expected)
    # a relevant document below rank 10 gains nothing
    assert ndcg_at_k(np.array([0] * 10 + [1]), n_relevant=1) == 0.0


def test_top_k_rows_best_first() -> None:
    scores = np.array([[0.1, 0.9, 0.5, 0.7], [0.4, 0.3, 0.2, 0.1]])
    assert top_k(scores, 3).tolist() == [[1, 3, 2], [0, 1, 2]]
    assert top_k(scores, 10).shape == (2, 4)


def test_retrieval_task_ndcg() -> None:
    data = ds.RetrievalSet(
        queries={"1": "q1", "2": "q2", "3": "no relevant document"},
        corpus={"d1": "x", "d2": "y", "d3": "z"},
        relevant={"1": {"d1"}, "2": {"d3", "missing"}},
    )
    task = RetrievalTask("toy", data)
    assert task.texts == ["q1", "q2", "x", "y", "z"]
    vectors = angles(0, 90, 5, 50, 10)  # q1: x first (hit at 1); q2: y, z, x (hit at 2)
    assert task.score(vectors) == {"nDCG@10": pytest.approx(100 * (1 + 1 / math.log2(3)) / 2)}


def test_retrieval_ties_do_not_favour_the_first_documents() -> None:
    corpus = {f"d{i}": f"doc {i}" for i in range(60)}
    data = ds.RetrievalSet(queries={"1": "q"}, corpus=corpus, relevant={"1": {"d0"}})
    task = RetrievalTask("ties", data)
    vectors = np.ones((len(task.texts), 2), np.float32)  # every document ties with every other
    assert task.score(vectors)["nDCG@10"] < 100.0  # in file order, d0 would come first
    assert task.score(vectors) == task.score(vectors)


def test_kmeans_v_measure_passthrough() -> None:
    rng = np.random.default_rng(0)
    centres = np.array([[10.0, 0.0], [0.0, 10.0], [-10.0, -10.0]])
    labels = np.repeat(np.array(["x", "y", "z"]), 20)
    points = centres[np.repeat(np.arange(3), 20)] + rng.normal(scale=0.1, size=(60, 2))
    assert kmeans_v_measure(points, labels) == pytest.approx(100.0)
    # a labelling that k-means cannot follow scores below 100
    assert kmeans_v_measure(points, np.tile(np.array(["x", "y", "z"]), 20)) < 10.0


def test_union_find_groups() -> None:
    pairs = [("a", "b"), ("c", "d"), ("e", "f"), ("b", "c"), ("g", "g"), ("f", "e")]
    assert union_find_groups(pairs) == [["a", "b", "c", "d"], ["e", "f"]]
    assert union_find_groups([]) == []


def test_leave_one_out_map50_and_r1() -> None:
    vectors = angles(0, 10, 25, 90)
    groups = np.array([0, 0, 1, 1])
    # item 2's group partner (item 3) comes third; every other item finds its partner first
    mean_ap, recall = leave_one_out(vectors, groups)
    assert mean_ap == pytest.approx((1 + 1 + 1 / 3 + 1) / 4)
    assert recall == pytest.approx(0.75)
    mean_ap_k2, _ = leave_one_out(vectors, groups, k=2)
    assert mean_ap_k2 == pytest.approx(0.75)
    # a row alone in its group is a distractor, not a query
    alone = leave_one_out(angles(0, 10, 25, 90, 170), np.array([0, 0, 1, 1, 2]))
    assert alone == (pytest.approx((1 + 1 + 1 / 3 + 1) / 4), pytest.approx(0.75))


def test_duplicate_groups_task() -> None:
    task = DuplicateGroupsTask("toy", [["a", "b"], ["c", "d"]])
    assert task.texts == ["a", "b", "c", "d"]
    scores = task.score(angles(0, 10, 25, 90))
    assert scores == {"MAP@50": pytest.approx(100 * (1 + 1 + 1 / 3 + 1) / 4), "R@1": pytest.approx(75.0)}
    with pytest.raises(ValueError, match="disjoint"):
        DuplicateGroupsTask("toy", [["a", "b"], ["b", "c"]])


def test_probe_accuracy_on_separable_data() -> None:
    rng = np.random.default_rng(0)
    train_x = np.concatenate([rng.normal(-3, 1, (50, 4)), rng.normal(3, 1, (50, 4))])
    test_x = np.concatenate([rng.normal(-3, 1, (20, 4)), rng.normal(3, 1, (20, 4))])
    train_y, test_y = np.repeat(["neg", "pos"], 50), np.repeat(["neg", "pos"], 20)
    assert probe_accuracy(train_x, train_y, test_x, test_y) == pytest.approx(100.0)


def test_classification_task_and_holdout_split() -> None:
    texts = [f"t{i}" for i in range(50)]
    labels = ["a"] * 25 + ["b"] * 25
    train, test = holdout_split(ds.LabelledTexts(texts, labels))
    assert (len(train), len(test)) == (40, 10)
    assert sorted(test.labels) == ["a"] * 5 + ["b"] * 5
    assert holdout_split(ds.LabelledTexts(texts, labels)) == (train, test)  # fixed seed
    table = {t: np.array([-1.0, 0.2]) if label == "a" else np.array([1.0, 0.2]) for t, label in zip(texts, labels)}
    task = ClassificationTask("toy", train, test)
    vectors = np.stack([table[t] for t in task.texts])
    assert task.score(vectors) == {"accuracy": pytest.approx(100.0)}


def test_text_index_dedups_in_first_seen_order() -> None:
    index = TextIndex()
    assert index.add(["b", "a", "b"]).tolist() == [0, 1, 0]
    assert index.add(["a", "c"]).tolist() == [1, 2]
    assert index.texts == ["b", "a", "c"]


def test_string_literals_splits_printed_arrays() -> None:
    text = "['First sentence.'\n 'It\\'s the second.' \"Third's.\"]"
    assert ds.string_literals(text) == ["First sentence.", "It's the second.", "Third's."]


# ------------------------------------------------------------------------------ suite
def toy_task() -> StsTask:
    return StsTask("toy", ds.ScoredPairs(["a", "a", "a"], ["b", "c", "d"], [5.0, 3.0, 1.0]))


def test_evaluate_caches_embeddings_and_timings(tmp_path: Path) -> None:
    table = dict(zip("abcd", 3 * angles(0, 10, 40, 80)))  # not unit: evaluate normalises
    encoder = FakeEncoder(table)
    cache = EmbeddingCache(tmp_path)
    first = evaluate(encoder, [toy_task()], cache)
    assert encoder.calls == 4 and not first.results[0].cached
    second = evaluate(encoder, [toy_task()], cache)
    assert encoder.calls == 4 and second.results[0].cached
    assert second.results[0].seconds == pytest.approx(first.results[0].seconds)
    assert second.results[0].scores == first.results[0].scores == {"Spearman": pytest.approx(100.0)}
    evaluate(FakeEncoder(table, fingerprint="v2"), [toy_task()], cache)  # another model: a miss
    assert len(list(tmp_path.rglob("*.npy"))) == 2
    assert not list(tmp_path.rglob("*.tmp"))

    for meta in tmp_path.rglob("*.json"):  # a write cut short: embedded again, not a crash
        meta.write_text('{"encoder": "x", "sec', encoding="utf-8")
    third = evaluate(encoder, [toy_task()], cache)
    assert encoder.calls == 8 and not third.results[0].cached
    assert evaluate(encoder, [toy_task()], cache).results[0].cached


def test_evaluate_rejects_wrong_row_count() -> None:
    class Short(FakeEncoder):
        def encode(self, texts: list[str]) -> np.ndarray:
            return np.zeros((1, 2), dtype=np.float32)

    with pytest.raises(ValueError, match="shape"):
        evaluate(Short({}), [toy_task()])


def test_report_average_throughput_and_table() -> None:
    report = EncoderReport(
        "enc",
        "fp",
        [
            TaskResult("A", "STS", {"Spearman": 80.0}, texts=100, seconds=1.0, cached=False),
            TaskResult("B", "Duplicate groups", {"MAP@50": 60.0, "R@1": 10.0}, texts=300, seconds=1.0, cached=True),
        ],
    )
    assert report.average == pytest.approx(70.0)  # main metrics only
    assert report.throughput == pytest.approx(200.0)
    table = markdown_table([report])
    assert "| B | Duplicate groups | R@1 (not averaged) | 10.00 |" in table
    assert "| **average** | | 2 tasks | **70.00** |" in table
    assert "| throughput | | texts/s | 200 |" in table
    assert report.to_json()["average"] == pytest.approx(70.0)


def test_encoder_from_spec_lightembed(tiny_dir: Path) -> None:
    encoder = encoder_from_spec(str(tiny_dir), tiny_dir.parent)
    vectors = encoder.encode(["a text", "another"])
    assert vectors.dtype == np.float32 and vectors.shape[0] == 2
    truncated = encoder_from_spec(f"{tiny_dir}@2", tiny_dir.parent)
    assert truncated.encode(["a text"]).shape == (1, 2)
    assert truncated.fingerprint != encoder.fingerprint and truncated.name.endswith("@2")


def test_truncated_encoder_keeps_the_first_columns() -> None:
    from lightembed_train.evaluation.encoders import TruncatedEncoder

    inner = FakeEncoder({"a": np.arange(4, dtype=np.float32)})
    cut = TruncatedEncoder(inner, 3)
    assert cut.encode(["a"]).tolist() == [[0.0, 1.0, 2.0]]
    assert cut.name == "fake [:3]" and cut.fingerprint != inner.fingerprint
    with pytest.raises(ValueError, match="fewer than 5"):
        TruncatedEncoder(inner, 5).encode(["a"])


def test_default_tasks_rejects_unknown_names(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown task"):
        default_tasks(tmp_path, ["nope"])
    with pytest.raises(FileNotFoundError, match="LIGHTEMBED_DATA"):
        default_tasks(tmp_path / "missing")


# ------------------------------------------------------------------------------ readers on the real files
def test_read_sts_and_sick(data_dir: Path) -> None:
    sts = ds.read_sts_benchmark(data_dir, "test")
    assert len(sts) == 1379 and min(sts.scores) >= 0 and max(sts.scores) <= 5
    assert all(t and t[0] != "\t" for t in sts.texts1 + sts.texts2)
    sick = ds.read_sick(data_dir, "TEST")
    assert len(sick) == 4906 and 1 <= min(sick.scores) and max(sick.scores) <= 5
    with pytest.raises(ValueError):
        ds.read_sick(data_dir, "test")


def test_read_pair_files(data_dir: Path) -> None:
    mrpc = ds.read_labelled_pairs(data_dir / "mrpc" / "test.txt")
    assert len(mrpc) == 1725 and sum(mrpc.scores) == 1147
    assert mrpc.texts1[17].startswith('Moroccan Interior Minister Al Mustapha Sahel said the investigation "points')
    quora = ds.read_labelled_pairs(data_dir / "quora_pairs_bimpm" / "test.txt")
    assert len(quora) == 10000 and sum(quora.scores) == 5000
    groups = union_find_groups([(a, b) for a, b, y in zip(quora.texts1, quora.texts2, quora.scores) if y])
    assert len(groups) == 4230 and sum(map(len, groups)) == 9217


def test_read_classification_files(data_dir: Path) -> None:
    banking = ds.read_banking77(data_dir, "test")
    assert len(banking) == 3080 and len(banking.classes) == 77
    assert len(ds.read_banking77(data_dir, "train")) == 10003
    trec = ds.read_trec(data_dir, "test")
    assert len(trec) == 500 and trec.classes == ["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"]
    assert len(ds.read_trec(data_dir, "train")) == 5452
    sizes = {name: len(ds.read_senteval(data_dir, name)) for name in ds.SENTEVAL_FILES}
    assert sizes == {"MR": 10662, "CR": 3771, "SUBJ": 10000, "MPQA": 10603}  # blank lines skipped
    ag = ds.read_ag_news(data_dir)
    assert len(ag) == 7600 and ag.classes == ["1", "2", "3", "4"]


def test_read_answer_selection(data_dir: Path) -> None:
    wikiqa = ds.read_answer_selection(data_dir / "wikiqa" / "test.txt")
    assert sum(q.has_both_labels for q in wikiqa) == 237
    trecqa = ds.read_answer_selection(data_dir / "trecqa" / "test.txt")
    assert sum(q.has_both_labels for q in trecqa) == 68


def test_read_scifact_beir_test(data_dir: Path) -> None:
    data = ds.read_scifact(data_dir, "claims_validation.csv")
    assert len(data.queries) == 300 and len(data.corpus) == 5183
    assert sum(len(v) for v in data.relevant.values()) == 339
    assert all(docs <= data.corpus.keys() for docs in data.relevant.values())
    # title, then the abstract's sentences each separated by a space
    assert data.corpus["4983"].startswith(
        "Microstructural development of human newborn cerebral white matter assessed in vivo by diffusion "
        "tensor magnetic resonance imaging. Alterations of the architecture"
    )
    assert "disabilities. A line scan" in data.corpus["4983"]


def test_default_tasks_on_real_files(data_dir: Path) -> None:
    tasks = default_tasks(data_dir, ["SciFact", "Quora groups", "TrecQA"])
    assert [t.name for t in tasks] == ["TrecQA", "SciFact", "Quora groups"]
    assert len(tasks[1].texts) == 300 + 5183 and len(tasks[2].texts) == 9217
