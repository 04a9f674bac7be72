"""A tiny model built inside the tests: a word-level tokenizer and a random codebook."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

from lightembed.config import ModelConfig
from lightembed.folder import write_model
from lightembed.reranker import LiteScorer, save_reranker

WORDS = [
    "the",
    "a",
    "cat",
    "dog",
    "sat",
    "on",
    "mat",
    "ran",
    "in",
    "park",
    "bird",
    "flew",
    "over",
    "tree",
    "car",
    "drove",
    "down",
    "road",
    "red",
    "blue",
    "green",
    "big",
    "small",
    "fast",
    "slow",
    "happy",
    "sad",
    "music",
    "song",
    "play",
    "guitar",
    "piano",
]
SPECIALS = ["[PAD]", "[UNK]"]


def tiny_tokenizer() -> Tokenizer:
    """Lower-cased, whitespace/punctuation split, one id per known word, [UNK] otherwise."""
    vocab = {token: i for i, token in enumerate(SPECIALS + WORDS)}
    tokenizer = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    return tokenizer


def tiny_codebook(dim: int = 16, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    table = rng.standard_normal((len(SPECIALS) + len(WORDS), dim)).astype(np.float32)
    table[: len(SPECIALS)] = 0.0
    return table


def write_tiny_model(folder: Path, dim: int = 16, **config: object) -> Path:
    """Write a valid lightembed folder with the tiny tokenizer and a random codebook."""
    table = tiny_codebook(dim)
    settings = {"dim": dim, "vocab_size": len(table), "ignore_token_ids": (0, 1), "matryoshka_dims": (4, 8)}
    settings.update(config)
    return write_model(folder, ModelConfig(**settings), table.astype(np.float16), tiny_tokenizer())


def random_scorer(
    query_length: int = 4,
    doc_length: int = 3,
    max_windows: int = 3,
    *,
    projection: int = 5,
    pooled: bool = True,
    sort_rows: bool = False,
    dim: int = 16,
) -> LiteScorer:
    """A small learned scorer with random weights for codebooks of `dim` columns."""
    rng = np.random.default_rng(1)

    def layer(out: int, inp: int) -> tuple[np.ndarray, np.ndarray]:
        return rng.standard_normal((out, inp)).astype(np.float32), rng.standard_normal(out).astype(np.float32)

    return LiteScorer(
        row=(layer(6, doc_length), layer(2, 6)),
        column=(layer(5, query_length), layer(3, 5)),
        output=layer(1, 2 * 3 + int(pooled)),
        projection=rng.standard_normal((projection, dim)).astype(np.float32) if projection else None,
        activation="relu",
        normalize=True,
        max_windows=max_windows,
        pooled=pooled,
        sort_rows=sort_rows,
    )


def add_reranker(folder: Path, dim: int = 16) -> Path:
    """Give a model folder a random learned scorer (`reranker.safetensors`, declared in its config)."""
    save_reranker(folder / "reranker.safetensors", random_scorer(dim=dim), dim)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "reranker": True}))
    return folder
