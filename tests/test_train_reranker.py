"""Training the learned reranker: torch equals numpy, the loss, a pattern it must learn, the triples
from a data folder that holds only train-allowed files, and `lightembed-train reranker` end to end."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from tiny import WORDS, random_scorer, tiny_codebook, tiny_tokenizer, write_tiny_model

import lightembed
from lightembed.config import ModelConfig
from lightembed.folder import write_model
from lightembed.model import capped_tokens
from lightembed.reranker import pooled_cosines
from lightembed_train.cli import RERANK_DEFAULTS
from lightembed_train.cli import main as train_main
from lightembed_train.datasets import RankingQuery
from lightembed_train.rerank_data import DevRanking, RerankData, Triple, answer_selection_triples, rerank_data
from lightembed_train.reranker import (
    LiteModule,
    RerankSettings,
    batch_tensors,
    text_ids,
    train_model_reranker,
    train_reranker,
    triple_loss,
)
from lightembed_train.tune import tokenize

SMALL = RerankSettings(
    query_length=4,
    doc_length=6,
    max_windows=2,
    projection_dim=8,
    row_hidden=16,
    row_width=4,
    column_hidden=8,
    column_width=4,
    batch_size=32,
    learning_rate=1e-2,
)


def random_texts(count: int, seed: int, low: int = 0, high: int = 16) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=rng.integers(low, high))) for _ in range(count)]


def test_cli_defaults_are_the_settings_defaults() -> None:
    defaults = RerankSettings()
    assert {key: getattr(defaults, key) for key in RERANK_DEFAULTS} == RERANK_DEFAULTS


@pytest.mark.parametrize(
    "pooled,projection,normalize,sort_rows", [(True, 8, True, False), (False, 0, False, False), (True, 8, True, True)]
)
def test_torch_forward_equals_the_numpy_scorer(
    tiny: lightembed.LightEmbed, pooled: bool, projection: int, normalize: bool, sort_rows: bool
) -> None:
    settings = dataclasses.replace(
        SMALL, pooled=pooled, projection_dim=projection, normalize=normalize, sort_rows=sort_rows
    )
    codebook = np.asarray(tiny.parts.embeddings, dtype=np.float32)
    torch.manual_seed(0)
    module = LiteModule(codebook, settings)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn_like(p) * 0.3)  # away from the identity start
    texts = random_texts(40, 0)
    tokens = tokenize(capped_tokens(tiny.parts, settings.doc_length * settings.max_windows), texts)
    queries, docs = np.arange(20), np.arange(20, 40)
    query_ids, window_ids, owner = batch_tensors(tokens, queries, docs, settings, module.pad)
    scorer = module.to_scorer()
    table = scorer.token_table(codebook)
    expected = []
    cosines = []
    for q, d in zip(queries, docs):
        flat = text_ids(tokens, d)
        cosine = pooled_cosines(codebook, text_ids(tokens, q), flat, np.array([len(flat)]))
        cosines.append(cosine[0])
        expected.append(scorer.scores(table, text_ids(tokens, q), flat, np.array([len(flat)]), cosine)[0])
    with torch.no_grad():
        got = module(query_ids, window_ids, owner, len(docs), torch.tensor(np.asarray(cosines, dtype=np.float32)))
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-5, rtol=1e-5)
    assert owner.max().item() == len(docs) - 1  # every document got at least one window


def test_triple_loss_known_values() -> None:
    positive, negative = torch.tensor([0.5, 0.2]), torch.tensor([0.1, 0.4])
    teacher = torch.tensor([0.3, 0.0])
    settings = RerankSettings(temperature=0.5)
    mse = ((0.4 - 0.3) ** 2 + (-0.2 - 0.0) ** 2) / 2
    assert triple_loss(positive, negative, teacher, settings).item() == pytest.approx(mse, abs=1e-7)
    # the KL term vanishes when the student's margins are the teacher's
    kl = dataclasses.replace(settings, kl_weight=1.0)
    assert triple_loss(torch.tensor([0.3, 1.0]), torch.tensor([0.0, 1.0]), teacher, kl).item() == pytest.approx(
        0.0, abs=1e-7
    )
    label = dataclasses.replace(settings, label_weight=2.0)
    softplus = np.log1p(np.exp(-np.array([0.4, -0.2]) / 0.5)).mean()
    assert triple_loss(positive, negative, teacher, label).item() == pytest.approx(mse + 2 * softplus, abs=1e-6)


def synthetic_ranking(tiny: lightembed.LightEmbed, count: int, seed: int) -> tuple[list[Triple], list[RankingQuery]]:
    """Relevant documents hold the query's word somewhere in their second window; others never hold it."""
    rng = np.random.default_rng(seed)
    triples, queries = [], []
    for _ in range(count):
        word = str(rng.choice(WORDS[2:]))
        others = [w for w in WORDS[2:] if w != word]
        positive = " ".join([*rng.choice(others, size=8), word, *rng.choice(others, size=3)])
        negatives = [" ".join(rng.choice(others, size=12)) for _ in range(4)]
        triples.append(Triple(word, positive, negatives[0], "synthetic"))
        queries.append(RankingQuery(word, [*negatives, positive], [0, 0, 0, 0, 1]))
    return triples, queries


def planted_training(tiny: lightembed.LightEmbed, settings: RerankSettings) -> dict:
    """The arguments of `train_reranker` on the planted pattern: 300 training triples, 40 dev queries."""
    train, _ = synthetic_ranking(tiny, 300, 0)
    _, dev_queries = synthetic_ranking(tiny, 40, 1)
    texts = sorted(
        {t for tr in train for t in (tr.query, tr.positive, tr.negative)}
        | {t for q in dev_queries for t in (q.query, *q.candidates)}
    )
    return {
        "codebook": np.asarray(tiny.parts.embeddings, dtype=np.float32),
        "tokens": tokenize(capped_tokens(tiny.parts, settings.doc_length * settings.max_windows), texts),
        "index": {t: i for i, t in enumerate(texts)},
        "triples": train,
        "teacher_scores": np.tile([1.0, 0.0], (len(train), 1)),
        "dev": [DevRanking("synthetic dev", "MAP", dev_queries, [1] * len(dev_queries))],
        "settings": settings,
    }


@pytest.mark.parametrize("sort_rows,ema_decay", [(False, 0.0), (True, 0.0), (True, 0.9)])
def test_training_finds_a_planted_pattern(tiny: lightembed.LightEmbed, sort_rows: bool, ema_decay: float) -> None:
    """A few seconds each: six epochs over 300 triples, each followed by a dev pass in numpy."""
    settings = dataclasses.replace(SMALL, epochs=6, patience=6, sort_rows=sort_rows, ema_decay=ema_decay)
    result = train_reranker(**planted_training(tiny, settings), device="cpu", progress=False)
    start, best = result.history[0]["dev"], result.history[result.best_epoch]["dev"]
    assert best >= 95.0 > start
    assert result.best_epoch > 0
    assert result.scorer.max_windows == 2 and result.scorer.projection.shape == (8, 16)
    assert result.scorer.sort_rows == sort_rows


def test_weight_average_trails_the_trained_weights(tiny: lightembed.LightEmbed) -> None:
    """With a decay near 1 the averaged (exported) weights stay at the initial ones; without, they move."""
    settings = dataclasses.replace(SMALL, epochs=1, patience=1)
    torch.manual_seed(settings.seed)
    initial = LiteModule(np.asarray(tiny.parts.embeddings, dtype=np.float32), settings).to_scorer().row[0][0]
    for decay, moved in ((0.0, True), (1.0 - 1e-9, False)):
        args = {**planted_training(tiny, dataclasses.replace(settings, ema_decay=decay)), "dev": []}
        result = train_reranker(**args, device="cpu", progress=False)  # no dev: the last epoch is kept
        change = float(np.abs(result.scorer.row[0][0] - initial).max())
        assert (change > 1e-2) if moved else (change < 1e-6)


def test_training_cosines_come_from_the_training_codebook(tiny: lightembed.LightEmbed) -> None:
    """A zero codebook gives zero pooled cosines, so the pooled input's weight gets no gradient."""
    settings = dataclasses.replace(SMALL, epochs=1, patience=1, pooled=True)
    args = {**planted_training(tiny, settings), "dev": []}
    flat = train_reranker(**args, device="cpu", progress=False, training_codebook=np.zeros_like(args["codebook"]))
    assert flat.scorer.output[0][0, -1] == 1.0  # its starting value
    own = train_reranker(**args, device="cpu", progress=False)
    assert abs(own.scorer.output[0][0, -1] - 1.0) > 1e-3


def test_pooled_from_must_match_the_vocabulary(tmp_path: Path, tiny_dir: Path) -> None:
    table = np.concatenate([tiny_codebook(), np.ones((3, 16), np.float32)])  # three more rows than the base
    config = ModelConfig(dim=16, vocab_size=len(table), ignore_token_ids=(0, 1), matryoshka_dims=(4, 8))
    other = write_model(tmp_path / "other", config, table, tiny_tokenizer())
    settings = dataclasses.replace(SMALL, pooled=True)
    data = RerankData([Triple("a", "b", "c", "x")], [])
    with pytest.raises(ValueError, match="pooled cosine input"):
        train_model_reranker(tiny_dir, tmp_path / "out", data, settings=SMALL, pooled_from=other)
    with pytest.raises(ValueError, match="same vocabulary"):
        train_model_reranker(tiny_dir, tmp_path / "out", data, settings=settings, pooled_from=other)


def test_answer_selection_triples(tmp_path: Path) -> None:
    path = tmp_path / "train.txt"
    path.write_text("q1\ta\t1\nq1\tb\t0\nq1\tc\t0\nq2\td\t0\nq3\te\t1\nq3\tf\t1\nq3\tg\t0\n")
    triples = answer_selection_triples(path, "x", per_query=64, rng=np.random.default_rng(0))
    got = sorted((t.query, t.positive, t.negative) for t in triples)
    assert got == [("q1", "a", "b"), ("q1", "a", "c"), ("q3", "e", "g"), ("q3", "f", "g")]
    assert len(answer_selection_triples(path, "x", per_query=1, rng=np.random.default_rng(0))) == 2


# --------------------------------------------------------------------- a data folder of train-allowed files
def write_train_data(folder: Path) -> Path:
    """The train-allowed files rerank_data reads, in their real formats, and no evaluation-only file."""
    rng = np.random.default_rng(0)

    def sentence(n: int = 6) -> str:
        return " ".join(rng.choice(WORDS, size=n))

    for name in ("wikiqa", "trecqa"):
        (folder / name).mkdir(parents=True)
        for split in ("train", "dev"):
            lines = []
            for q in range(6):
                question = f"{split} {sentence(3)} {q}"
                lines += [f"{question}\t{sentence()}\t{int(c == 0)}" for c in range(4)]
            (folder / name / f"{split}.txt").write_text("\n".join(lines) + "\n")
    (folder / "scifact").mkdir()
    corpus = ["doc_id,title,abstract,structured"]
    corpus += [f"{100 + d},{sentence(2)},\"['{sentence()}.' '{sentence()}.']\",False" for d in range(30)]
    (folder / "scifact" / "corpus_train.csv").write_text("\n".join(corpus) + "\n")
    claims = ["id,claim,evidence_doc_id,evidence_label,evidence_sentences,cited_doc_ids"]
    claims += [f"{c},{sentence(4)},{100 + c},SUPPORT,[0],[{100 + c}]" for c in range(10)]
    (folder / "scifact" / "claims_train.csv").write_text("\n".join(claims) + "\n")
    (folder / "quora_pairs_bimpm").mkdir()
    quora = [f"{sentence(4)} {i}\t{sentence(4)}\t{i % 2}" for i in range(20)]
    (folder / "quora_pairs_bimpm" / "dev.txt").write_text("\n".join(quora) + "\n")
    (folder / "snli_devtest").mkdir()
    premises = [sentence() for _ in range(5)]
    labels = ["entailment", "contradiction", "neutral"]
    (folder / "snli_devtest" / "s1.dev").write_text("".join(f"{p}\n" * 3 for p in premises))
    (folder / "snli_devtest" / "s2.dev").write_text("".join(f"{sentence(3)}\n" for _ in range(15)))
    (folder / "snli_devtest" / "labels.dev").write_text("\n".join(labels * 5) + "\n")
    return folder


def test_rerank_data_reads_only_train_allowed_files(tmp_path: Path, tiny: lightembed.LightEmbed) -> None:
    data = rerank_data(write_train_data(tmp_path / "data"), tiny, scifact_depth=5, dev_candidates=10)
    counts = data.counts()
    assert counts["WikiQA train"] == 6 * 3 and counts["TrecQA train"] == 6 * 3
    assert counts["Quora dev"] == 2 * 10 and counts["SNLI dev"] == 5
    assert counts["SciFact train"] == 8 * 5  # 8 of the 10 claims train, 5 negatives each
    assert [d.name for d in data.dev] == ["WikiQA dev", "TrecQA dev", "SciFact held-out train claims"]
    assert len(data.dev[2].queries) == 2 and all(len(q.candidates) == 10 for q in data.dev[2].queries)
    train_claims = {t.query for t in data.triples if t.source == "SciFact train"}
    assert not train_claims & {q.query for q in data.dev[2].queries}
    for t in data.triples:
        assert t.positive != t.negative


@pytest.mark.parametrize("fraction", [0.0, 0.01, 1.0])
def test_a_scifact_dev_fraction_that_holds_out_no_claim_or_every_claim_is_refused(
    tmp_path: Path, tiny: lightembed.LightEmbed, fraction: float
) -> None:
    data = write_train_data(tmp_path / "data")
    with pytest.raises(ValueError, match="at least one must be held out and one kept"):
        rerank_data(data, tiny, scifact_dev_fraction=fraction)


def test_cli_trains_and_writes_a_folder(
    tmp_path: Path, tiny_dir: Path, tiny_teacher: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_train_data(tmp_path / "data")
    out = write_tiny_model(tmp_path / "ranked", dim=8)  # another model was there: its files and card go
    (out / "README.md").write_text("# a stale card of another model\n", encoding="utf-8")
    args = ["-q", "reranker", "--base", str(tiny_dir), "--out", str(out), "--data", str(data)]
    args += ["--teacher", str(tiny_teacher), "--cache", str(tmp_path / "cache"), "--device", "cpu", "--epochs", "2"]
    args += ["--query-length", "4", "--doc-length", "6", "--max-windows", "2", "--projection-dim", "8", "--pooled"]
    args += ["--pooled-from", str(tiny_dir)]
    assert train_main(args) == 0
    assert capsys.readouterr().out.strip() == str(out)
    model = lightembed.load(out)
    assert model.config.reranker and model.parts.reranker.pooled
    assert model.parts.reranker.query_length == 4
    provenance = model.config.provenance["reranker"]
    assert provenance["pooled_from"] == str(tiny_dir)
    assert provenance["triples"]["WikiQA train"] == 18 and len(provenance["history"]) >= 2
    assert not lightembed.load(tiny_dir).config.reranker  # the base folder is left as it was
    hits = model.rerank("the cat", ["a cat sat", "piano song", ""])
    assert sorted(h.index for h in hits) == [0, 1, 2]
    np.testing.assert_array_equal(model.embed(["a cat sat"]), lightembed.load(tiny_dir).embed(["a cat sat"]))
    assert list((tmp_path / "cache").glob("teacher-*.npy"))
    assert json.loads((out / "config.json").read_text())["reranker"] is True
    card = (out / "README.md").read_text(encoding="utf-8")
    assert "stale card" not in card and card.count("Learned reranker") == 1

    again = ["-q", "reranker", "--base", str(out), "--out", str(out), "--data", str(data), "--epochs", "1"]
    again += ["--teacher", str(tiny_teacher), "--cache", str(tmp_path / "cache"), "--device", "cpu"]
    again += ["--query-length", "4", "--doc-length", "6", "--max-windows", "2", "--projection-dim", "4", "--pooled"]
    assert train_main(again) == 0  # in place: the earlier scorer's section is replaced, not stacked
    card = (out / "README.md").read_text(encoding="utf-8")
    assert card.count("Learned reranker") == 1 and "projected to 4 dims" in card


def test_an_interrupted_reranker_write_leaves_the_folder_as_it_was(
    tmp_path: Path, tiny_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lightembed_train import reranker as reranker_module

    out = write_tiny_model(tmp_path / "out", dim=8)
    before = {f.name: f.read_bytes() for f in out.iterdir()}
    copy = shutil.copyfile

    def interrupted_after_one_copy(source: Path, target: Path) -> None:
        copy(source, target)
        raise KeyboardInterrupt

    monkeypatch.setattr(reranker_module.shutil, "copyfile", interrupted_after_one_copy)
    with pytest.raises(KeyboardInterrupt):
        reranker_module.write_reranker_folder(lightembed.load(tiny_dir), out, random_scorer(dim=16), {})
    assert {f.name: f.read_bytes() for f in out.iterdir()} == before
    assert lightembed.load(out).config.dim == 8


def test_cli_reports_a_missing_data_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert train_main(["reranker", "--out", str(tmp_path / "x"), "--data", str(tmp_path / "none")]) == 2
    assert "data folder not found" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("flag", "value", "setting"),
    [
        ("--epochs", "-2", "epochs"),
        ("--batch-size", "0", "batch_size"),
        ("--query-length", "0", "query_length"),
        ("--projection-dim", "-1", "projection_dim"),
        ("--ema-decay", "2", "ema_decay"),
        ("--ema-decay", "nan", "ema_decay"),
        ("--kl-weight", "nan", "kl_weight"),
        ("--lr", "0", "learning_rate"),
    ],
)
def test_cli_rejects_settings_before_reading_data(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str, value: str, setting: str
) -> None:
    args = ["reranker", "--out", str(tmp_path / "x"), "--data", str(tmp_path), flag, value]
    assert train_main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("lightembed-train: error: ") and setting in err and err.count("\n") == 1


def test_cli_rejects_a_negative_seed_and_an_unknown_device(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert train_main(["reranker", "--out", str(tmp_path / "x"), "--data", str(tmp_path), "--seed", "-1"]) == 2
    assert "seed must be an integer of at least 0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        train_main(["tune", "--corpus", "c.txt", "--out", str(tmp_path / "x"), "--seed", "-1"])
    assert "argument --seed: must be an integer of at least 0" in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown torch device 'foo'"):
        train_reranker(**planted_training(lightembed.load(), SMALL), device="foo", progress=False)


def test_a_diverging_run_stops_with_an_error(tiny: lightembed.LightEmbed) -> None:
    settings = dataclasses.replace(SMALL, epochs=1, learning_rate=1e30)
    with pytest.raises(ValueError, match="training loss became nan in epoch 1"):
        train_reranker(**planted_training(tiny, settings), device="cpu", progress=False)


def test_cli_rejects_a_query_length_beyond_the_base_and_a_cache_that_is_a_file(
    tmp_path: Path, tiny_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_train_data(tmp_path / "data")
    base = ["reranker", "--base", str(tiny_dir), "--out", str(tmp_path / "x"), "--data", str(data)]
    max_length = lightembed.load(tiny_dir).config.max_length
    assert train_main([*base, "--query-length", str(max_length + 1)]) == 2
    assert f"longer than the base model reads ({max_length} tokens)" in capsys.readouterr().err
    cache = tmp_path / "cache-file"
    cache.write_text("x")
    assert train_main([*base, "--cache", str(cache)]) == 2
    assert "is a file, expected a folder" in capsys.readouterr().err
    assert train_main([*base, "--cache", str(cache / "sub")]) == 2  # under a file
    assert f"{cache} is a file, expected a folder" in capsys.readouterr().err
    assert train_main([*base, "--cache", str(tmp_path / "x" / "cache")]) == 2  # the model folder would hold it
    assert "is inside the model folder --out" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_cli_checks_pooled_from_before_building_the_triples(
    tmp_path: Path, tiny_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from lightembed_train import rerank_data as rerank_data_module

    monkeypatch.setattr(rerank_data_module, "rerank_data", lambda *a, **k: pytest.fail("triples built first"))
    data = write_train_data(tmp_path / "data")
    base = ["reranker", "--base", str(tiny_dir), "--out", str(tmp_path / "x"), "--data", str(data)]
    assert train_main([*base, "--pooled-from", str(tiny_dir)]) == 2
    assert (
        "--pooled-from) needs the scorer's pooled cosine input (settings.pooled, --pooled)" in capsys.readouterr().err
    )
    assert train_main([*base, "--pooled", "--pooled-from", str(tmp_path / "missing")]) == 2
    assert "missing" in capsys.readouterr().err
