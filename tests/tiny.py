"""A tiny model built inside the tests: a word-level tokenizer and a random codebook."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

from lightembed.config import ModelConfig
from lightembed.folder import write_model

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
