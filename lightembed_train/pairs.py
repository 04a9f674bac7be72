"""Positive text pairs from the train-allowed files of the shared data folder, for contrastive tuning.

Only files (and splits) that the data README allows for training are read; the evaluation-only
ones never are. Each source is named with the rule that picks its positives.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .datasets import read_labelled_pairs, read_scifact, read_sick, read_snli, read_sts_benchmark

Pairs = list[tuple[str, str]]


def _positives(texts1: list[str], texts2: list[str], scores: list[float], threshold: float) -> Pairs:
    return [(a, b) for a, b, score in zip(texts1, texts2, scores) if score >= threshold and a != b]


def _scored(read: Callable[[Path], object], threshold: float) -> Callable[[Path], Pairs]:
    def pairs(data: Path) -> Pairs:
        scored = read(data)
        return _positives(scored.texts1, scored.texts2, scored.scores, threshold)

    return pairs


def _scifact_train(data: Path) -> Pairs:
    claims = read_scifact(data, "claims_train.csv")
    return [
        (claims.queries[q], claims.corpus[d])
        for q, docs in claims.relevant.items()
        for d in sorted(docs)
        if d in claims.corpus
    ]


def _snli_dev(data: Path) -> tuple[list[str], list[str], list[float]]:
    pairs, _ = read_snli(data, "dev")
    return pairs.texts1, pairs.texts2, pairs.scores


# name -> (rule, reader); every file here is train-allowed in the data README.
SOURCES: dict[str, tuple[str, Callable[[Path], Pairs]]] = {
    "SNLI dev": ("entailment pairs", lambda data: _positives(*_snli_dev(data), 1.0)),
    "STS-B train": ("score >= 4", _scored(lambda data: read_sts_benchmark(data, "train"), 4.0)),
    "SICK train": ("relatedness >= 4", _scored(lambda data: read_sick(data, "TRAIN"), 4.0)),
    "MRPC train": ("paraphrases", _scored(lambda data: read_labelled_pairs(data / "mrpc" / "train.txt"), 1.0)),
    "Quora dev": ("duplicates", _scored(lambda data: read_labelled_pairs(data / "quora_pairs_bimpm" / "dev.txt"), 1.0)),
    "WikiQA train": (
        "question, correct answer",
        _scored(lambda data: read_labelled_pairs(data / "wikiqa" / "train.txt"), 1.0),
    ),
    "TrecQA train": (
        "question, correct answer",
        _scored(lambda data: read_labelled_pairs(data / "trecqa" / "train.txt"), 1.0),
    ),
    "SciFact train": ("claim, cited abstract", _scifact_train),
}


def training_pairs(data: Path) -> tuple[Pairs, dict[str, int]]:
    """All positive pairs of every source (exact repeats dropped) and how many each source gave."""
    seen: dict[tuple[str, str], None] = {}
    counts = {}
    for name, (_, read) in SOURCES.items():
        pairs = read(data)
        counts[name] = len(pairs)
        for pair in pairs:
            seen.setdefault(pair, None)
    return list(seen), counts
