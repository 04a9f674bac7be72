"""The learned reranker in the runtime: windows and padding, the scorer against a plain reference,
the file's validation, `rerank` with a learned scorer end to end, and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file
from tiny import SPECIALS, WORDS, add_reranker, random_scorer, tiny_codebook, tiny_tokenizer, write_tiny_model

import lightembed
from lightembed import ModelFormatError
from lightembed.cli import main
from lightembed.config import ModelConfig
from lightembed.folder import write_model
from lightembed.model import capped_tokens
from lightembed.reranker import (
    LiteScorer,
    document_windows,
    load_reranker,
    pad_ids,
    pooled_cosines,
    save_reranker,
    window_counts,
)
from lightembed.scoring import unit_rows

VOCAB = {token: i for i, token in enumerate(SPECIALS + WORDS)}
DOCS = [
    "the cat sat on the mat",
    "piano song",
    "",
    "xyzzy plugh",
    "a dog ran in the park and the cat sat on the mat by the big red car",
]


def reference_score(scorer: LiteScorer, codebook: np.ndarray, query: list[int], doc: list[int]) -> float:
    """The scorer written out for one pair, document window by window, in float64."""
    table = codebook.astype(np.float64)
    if scorer.projection is not None:
        table = table @ scorer.projection.T.astype(np.float64)
    table = unit_rows(table).astype(np.float64)
    q = np.zeros((scorer.query_length, table.shape[1]))
    q[: min(len(query), scorer.query_length)] = table[query[: scorer.query_length]]
    doc = doc[: scorer.max_tokens]  # the rest is not read
    pooled = 0.0
    if query and doc:
        a, b = codebook[query].mean(axis=0), codebook[doc].mean(axis=0)
        pooled = float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))
    best = -np.inf
    n_windows = 1 if scorer.sort_rows else min(scorer.max_windows, max(1, -(-len(doc) // scorer.doc_length)))
    for w in range(n_windows):
        if scorer.sort_rows:  # every read token; each row's doc_length largest values, descending
            s = q @ table[doc].T if doc else np.zeros((scorer.query_length, 0))
            s = np.concatenate([s, np.zeros((scorer.query_length, scorer.doc_length))], axis=1)
            s = np.concatenate([-np.sort(-s[:, : len(doc)], axis=1), s[:, len(doc) :]], axis=1)[:, : scorer.doc_length]
        else:
            part = doc[w * scorer.doc_length : (w + 1) * scorer.doc_length]
            d = np.zeros((scorer.doc_length, table.shape[1]))
            d[: len(part)] = table[part]
            s = q @ d.T
        (w1, b1), (w2, b2) = scorer.row
        h = np.maximum(0.0, s @ w1.T + b1) @ w2.T + b2  # [Lq, r]
        (v1, c1), (v2, c2) = scorer.column
        g = np.maximum(0.0, h.T @ v1.T + c1) @ v2.T + c2  # [r, c]
        features = list(g.ravel()) + ([pooled] if scorer.pooled else [])
        best = max(best, float(np.dot(features, scorer.output[0][0]) + scorer.output[1][0]))
    return best


def ids(text: str) -> list[int]:
    return [VOCAB[w] for w in text.lower().split() if w in VOCAB]


@pytest.fixture()
def learned_dir(tmp_path: Path) -> Path:
    return add_reranker(write_tiny_model(tmp_path / "model"))


# --------------------------------------------------------------------- windows and padding
def test_pad_ids_truncates_and_pads() -> None:
    assert pad_ids(np.array([5, 6, 7]), 5, 99).tolist() == [5, 6, 7, 99, 99]
    assert pad_ids(np.array([5, 6, 7]), 2, 99).tolist() == [5, 6]
    assert pad_ids(np.zeros(0, dtype=np.int64), 2, 99).tolist() == [99, 99]


def test_document_windows_split_pad_and_cap() -> None:
    flat = np.arange(10, 20)  # doc 0: 10..16 (7 ids), doc 1: none, doc 2: 17..19
    lengths = np.array([7, 0, 3])
    starts = np.array([0, 7, 7])
    windows = window_counts(lengths, 3, max_windows=2)
    assert windows.tolist() == [2, 1, 1]  # doc 0 would need 3 windows: capped, id 16 is dropped
    ids, owner = document_windows(flat, starts, lengths, 3, windows)
    assert owner.tolist() == [0, 0, 1, 2]
    assert ids.tolist() == [[10, 11, 12], [13, 14, 15], [-1, -1, -1], [17, 18, 19]]
    ids, owner = document_windows(np.zeros(0, dtype=np.int64), np.zeros(1, np.int64), np.zeros(1, np.int64), 2, [1])
    assert ids.tolist() == [[-1, -1]] and owner.tolist() == [0]


def test_token_table_has_a_zero_padding_row() -> None:
    scorer = random_scorer()
    codebook = np.random.default_rng(0).standard_normal((7, 16)).astype(np.float32)
    table = scorer.token_table(codebook)
    assert table.shape == (8, 5)
    assert not table[-1].any()
    np.testing.assert_allclose(np.linalg.norm(table[:-1], axis=1), 1.0, rtol=1e-6)


def test_matrix_scores_shapes_and_padded_rows() -> None:
    scorer = random_scorer(pooled=False)
    sims = np.random.default_rng(0).uniform(-1, 1, (5, 4, 3)).astype(np.float32)
    scores = scorer.matrix_scores(sims)
    assert scores.shape == (5,) and scores.dtype == np.float32
    # the MLPs see the padded (zero) rows: changing a zero row changes the score
    padded = sims.copy()
    padded[:, 3] = 0.0
    assert not np.allclose(scorer.matrix_scores(padded), scores)


# --------------------------------------------------------------------- the scorer
@pytest.mark.parametrize("projection,pooled,sort_rows", [(5, True, False), (0, False, False), (5, True, True)])
def test_scores_equal_a_plain_reference(projection: int, pooled: bool, sort_rows: bool) -> None:
    scorer = random_scorer(projection=projection, pooled=pooled, sort_rows=sort_rows)
    codebook = np.random.default_rng(2).standard_normal((len(VOCAB), 16)).astype(np.float32)
    table = scorer.token_table(codebook)
    query = ids("the cat sat on the mat")  # 6 ids: truncated to 4
    docs = [ids(d)[: scorer.max_tokens] for d in DOCS]  # as the capped tokenisation gives them
    flat = np.asarray([i for d in docs for i in d], dtype=np.int64)
    lengths = np.asarray([len(d) for d in docs])
    cosines = pooled_cosines(codebook, np.asarray(query), flat, lengths) if pooled else None
    scores = scorer.scores(table, np.asarray(query), flat, lengths, cosines)
    expected = [reference_score(scorer, codebook, query, d) for d in docs]
    np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-5)
    # one document per scoring block gives the same scores
    import lightembed.reranker as module

    old = module.SCORE_BLOCK
    module.SCORE_BLOCK = 1
    try:
        np.testing.assert_allclose(scorer.scores(table, np.asarray(query), flat, lengths, cosines), scores, atol=1e-6)
    finally:
        module.SCORE_BLOCK = old


def test_pooled_scorer_needs_cosines() -> None:
    scorer = random_scorer(pooled=True)
    table = scorer.token_table(np.ones((4, 16), np.float32))
    with pytest.raises(ValueError, match="pooled cosine"):
        scorer.scores(table, np.array([1]), np.array([1, 2]), np.array([2]))


# --------------------------------------------------------------------- the file
def test_save_load_round_trip(tmp_path: Path) -> None:
    scorer = random_scorer()
    loaded = load_reranker(save_reranker(tmp_path / "r.safetensors", scorer, 16), 16)
    assert (loaded.query_length, loaded.doc_length, loaded.max_windows, loaded.pooled) == (4, 3, 3, True)
    for a, b in zip(loaded.tensors().values(), scorer.tensors().values()):
        np.testing.assert_array_equal(a, b)
    assert not loaded.sort_rows
    assert load_reranker(save_reranker(tmp_path / "s.safetensors", random_scorer(sort_rows=True), 16)).sort_rows


def test_file_without_sort_rows_reads_as_positional(tmp_path: Path) -> None:
    scorer = random_scorer()
    metadata = {k: v for k, v in scorer.metadata().items() if k != "sort_rows"}
    save_file(scorer.tensors(), str(tmp_path / "r.safetensors"), metadata=metadata)
    assert not load_reranker(tmp_path / "r.safetensors").sort_rows


def _broken(tmp_path: Path, *, drop=(), metadata=None, **tensors: np.ndarray) -> Path:
    path = tmp_path / "reranker.safetensors"
    scorer = random_scorer()
    values = {k: v for k, v in scorer.tensors().items() if k not in drop}
    values.update(tensors)
    save_file(values, str(path), metadata={**scorer.metadata(), **(metadata or {})})
    return path


@pytest.mark.parametrize(
    "change,message",
    [
        ({"metadata": {"format": "other"}}, "format"),
        ({"metadata": {"format_version": "9"}}, "format_version"),
        ({"metadata": {"doc_length": "4"}}, r"row\.0\.weight"),
        ({"metadata": {"query_length": "x"}}, "query_length"),
        ({"metadata": {"max_windows": "0"}}, "max_windows"),
        ({"metadata": {"max_windows": "100000000000000000000"}}, "max_windows.*from 1 to"),
        ({"metadata": {"max_windows": "\u00b2"}}, "max_windows"),
        ({"metadata": {"activation": "swish"}}, "activation"),
        ({"metadata": {"pooled": "yes"}}, "pooled"),
        ({"metadata": {"sort_rows": "1"}}, "sort_rows"),
        ({"metadata": {"pooled": "false"}}, r"output\.weight"),
        ({"drop": ("column.1.bias",)}, r"column\.1\.bias"),
        ({"drop": ("row.0.weight", "row.0.bias", "row.1.weight", "row.1.bias")}, "row MLP"),
        ({"extra": np.zeros(2, np.float32)}, "unexpected tensors"),
        ({"projection.weight": np.zeros((5, 8), np.float32)}, r"projection\.weight"),
        ({"output.bias": np.array([np.nan], np.float32)}, "NaN"),
        ({"row.1.bias": np.zeros(2, np.int32)}, "dtype"),
        ({"output.weight": np.ones((2, 7), np.float32), "output.bias": np.ones(2, np.float32)}, r"\[1, 7\]"),
    ],
)
def test_invalid_files_name_the_file_and_the_problem(tmp_path: Path, change: dict, message: str) -> None:
    path = _broken(tmp_path, **change)
    with pytest.raises(ModelFormatError, match=message) as info:
        load_reranker(path, 16)
    assert str(path) in str(info.value)


def test_not_safetensors_and_missing(tmp_path: Path) -> None:
    path = tmp_path / "reranker.safetensors"
    path.write_bytes(b"\x80\x04 not a safetensors file")
    with pytest.raises(ModelFormatError, match="not a valid safetensors"):
        load_reranker(path)
    with pytest.raises(ModelFormatError, match="missing"):
        load_reranker(tmp_path / "none.safetensors")


def test_invalid_file_fails_when_the_folder_loads(learned_dir: Path) -> None:
    path = learned_dir / "reranker.safetensors"
    tensors = load_file(str(path))
    tensors["projection.weight"] = tensors["projection.weight"][:, :8].copy()  # the codebook has 16 dims
    save_file(tensors, str(path), metadata=random_scorer().metadata())
    with pytest.raises(ModelFormatError, match=r"projection\.weight.*\[p, 16\]") as info:
        lightembed.load(learned_dir)
    assert str(path) in str(info.value)


# --------------------------------------------------------------------- rerank end to end
def test_rerank_uses_the_learned_scorer(learned_dir: Path) -> None:
    model = lightembed.load(learned_dir)
    scorer = model.parts.reranker
    codebook = np.asarray(model.parts.embeddings, dtype=np.float32)
    query = "the cat sat on the mat"
    hits = model.rerank(query, DOCS)
    by_index = {h.index: h.score for h in hits}
    # the tokenisation is capped at max_tokens before unknown words are dropped
    tokens = capped_tokens(model.parts, scorer.max_tokens)
    assert len(tokens.encode([DOCS[4]])[0]) == 8 < len(ids(DOCS[4]))
    doc_ids = [tokens.encode([d])[0].tolist() for d in DOCS]
    assert [] in doc_ids  # a document with no tokens scores 0, as under MaxSim
    expected = [reference_score(scorer, codebook, ids(query), d) if d else 0.0 for d in doc_ids]
    np.testing.assert_allclose([by_index[i] for i in range(len(DOCS))], expected, rtol=1e-5, atol=1e-5)
    assert [h.score for h in hits] == sorted(by_index.values(), reverse=True)
    assert all(h.text == DOCS[h.index] for h in hits)
    assert [h.score for h in model.rerank(query, DOCS, k=2)] == [h.score for h in hits[:2]]
    assert model.rerank(query, DOCS, method="learned") == hits
    assert model.rerank(query, []) == []
    # MaxSim on request: the same as a folder without a reranker
    plain = lightembed.load(write_tiny_model(learned_dir.parent / "plain"))
    assert model.rerank(query, DOCS, method="maxsim") == plain.rerank(query, DOCS)


@pytest.mark.parametrize("method", ["learned", "maxsim"])
def test_copies_of_a_document_score_the_same_and_keep_their_order(method: str) -> None:
    model = lightembed.load()  # the bundled model: MaxSim scored the last copy apart (in the last bits) before
    docs = ["b text", "a text", "b text", "a text", "b text"]
    hits = model.rerank("a", docs, method=method)
    scores = {h.index: h.score for h in hits}
    assert scores[0] == scores[2] == scores[4] and scores[1] == scores[3]
    assert [h.index for h in hits] in ([1, 3, 0, 2, 4], [0, 2, 4, 1, 3])


def test_a_text_whose_tokens_have_zero_rows_is_empty_to_the_learned_scorer(tmp_path: Path) -> None:
    table = tiny_codebook()
    table[len(SPECIALS) + WORDS.index("piano")] = 0.0  # as distillation zeroes the special tokens
    config = ModelConfig(dim=16, vocab_size=len(table), ignore_token_ids=(0, 1))
    model = lightembed.load(add_reranker(write_model(tmp_path / "m", config, table, tiny_tokenizer())))
    scores = {h.index: h.score for h in model.rerank("the cat sat", ["piano", "piano piano", "", "the cat"])}
    assert scores[0] == scores[1] == scores[2] == 0.0 != scores[3]
    assert [h.score for h in model.rerank("piano", ["the cat", "a dog"])] == [0.0, 0.0]


def test_rerank_names_a_document_that_is_not_text(learned_dir: Path) -> None:
    with pytest.raises(TypeError, match=r"docs\[1\] is NoneType"):
        lightembed.load(learned_dir).rerank("cat", ["a cat", None])


def test_rerank_empty_query_scores_zero(learned_dir: Path) -> None:
    assert [h.score for h in lightembed.load(learned_dir).rerank("", DOCS)] == [0.0] * len(DOCS)


def test_rerank_with_weights_that_overflow_names_the_file(learned_dir: Path) -> None:
    path = learned_dir / "reranker.safetensors"
    tensors = load_file(str(path))
    tensors["row.0.weight"] = np.full_like(tensors["row.0.weight"], 3e38)  # finite, but the products overflow
    save_file(tensors, str(path), metadata=random_scorer().metadata())
    with pytest.raises(ModelFormatError, match="non-finite scores") as info:
        lightembed.load(learned_dir).rerank("the cat sat on the mat", DOCS)
    assert str(path) in str(info.value)


def test_rerank_method_errors(tiny: lightembed.LightEmbed, learned_dir: Path) -> None:
    with pytest.raises(ValueError, match="no learned reranker"):
        tiny.rerank("cat", DOCS, method="learned")
    with pytest.raises(ValueError, match="method must be"):
        lightembed.load(learned_dir).rerank("cat", DOCS, method="best")


def test_rerank_many_candidates_and_long_documents(learned_dir: Path) -> None:
    model = lightembed.load(learned_dir)
    rng = np.random.default_rng(0)
    docs = [" ".join(rng.choice(WORDS, size=rng.integers(0, 20))) for _ in range(500)]
    scores = {h.index: h.score for h in model.rerank("red car on the road", docs)}
    one_by_one = [model.rerank("red car on the road", [d])[0].score for d in docs[:20]]
    np.testing.assert_allclose([scores[i] for i in range(20)], one_by_one, rtol=1e-5, atol=1e-5)
    # past max_windows x doc_length tokens, the rest of a document is not read
    long_doc = "the cat sat on the mat " * 3
    assert model.rerank("cat", [long_doc + "piano"])[0].score == model.rerank("cat", [long_doc + "guitar"])[0].score


# --------------------------------------------------------------------- CLI
def test_cli_rerank_learned_and_maxsim(learned_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    docs_file = tmp_path / "docs.txt"
    docs_file.write_text("\n".join(DOCS) + "\n")
    model = lightembed.load(learned_dir)
    for method in ("auto", "maxsim"):
        code = main(["rerank", "red cat", str(docs_file), "--model", str(learned_dir), "--method", method])
        out, _ = capsys.readouterr()
        assert code == 0
        rows = [json.loads(line) for line in out.splitlines()]
        expected = model.rerank("red cat", DOCS, method="learned" if method == "auto" else "maxsim")
        assert [r["index"] for r in rows] == [h.index for h in expected]
        np.testing.assert_allclose([r["score"] for r in rows], [h.score for h in expected], atol=1e-6)
    code = main(["info", "--json", "--model", str(learned_dir)])
    assert "reranker" in json.loads(capsys.readouterr().out)["optional_parts"]
    code = main(["rerank", "cat", str(docs_file), "--model", str(learned_dir), "--method", "fancy"])
    assert code == 2
    assert "--method" in capsys.readouterr().err
