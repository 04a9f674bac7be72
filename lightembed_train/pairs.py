"""Positive text pairs from the train-allowed files of the shared data folder, for contrastive tuning.

Only files (and splits) that the data README allows for training are read; the evaluation-only
ones never are. Each source is named with the rule that picks its positives.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from .datasets import (
    LabelledTexts,
    ScoredPairs,
    read_banking77,
    read_labelled_pairs,
    read_scifact,
    read_sick,
    read_snli,
    read_sts_benchmark,
    read_trec,
)
from .evaluation.classification import holdout_split

Pairs = list[tuple[str, str]]


def _positives(texts1: list[str], texts2: list[str], scores: list[float], threshold: float) -> Pairs:
    return [(a, b) for a, b, score in zip(texts1, texts2, scores) if score >= threshold and a != b]


def _scored(read: Callable[[Path], ScoredPairs], threshold: float) -> Callable[[Path], Pairs]:
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


def same_label_pairs(data: LabelledTexts, seed: int = 0) -> Pairs:
    """Each text paired with one other text of its label: a seeded cycle through each label's texts."""
    by_label: dict[str, list[str]] = defaultdict(list)
    for text, label in zip(data.texts, data.labels):
        by_label[label].append(text)
    rng = np.random.default_rng(seed)
    pairs = []
    for label in sorted(by_label):
        members = sorted(set(by_label[label]))
        if len(members) < 2:
            continue
        order = rng.permutation(len(members))
        pairs += [(members[order[i - 1]], members[order[i]]) for i in range(len(order))]
    return pairs


def _without_dev_holdout(data: LabelledTexts, fine_labels: LabelledTexts | None = None) -> LabelledTexts:
    """The 80% of a train split that `benchmarks/dev_scores.py` does not hold out, with `fine_labels` if given."""
    train, _ = holdout_split(data)
    if fine_labels is None:
        return train
    fine = dict(zip(fine_labels.texts, fine_labels.labels))
    return LabelledTexts(train.texts, [fine[text] for text in train.texts])


def _trec_train(data: Path) -> Pairs:
    split = _without_dev_holdout(read_trec(data, "train"), read_trec(data, "train", fine=True))
    return same_label_pairs(split)


def _banking77_train(data: Path) -> Pairs:
    return same_label_pairs(_without_dev_holdout(read_banking77(data, "train")))


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
    "TREC train": ("two questions of the same fine type, outside the 20% dev holdout", _trec_train),
    "Banking77 train": ("two utterances of the same intent, outside the 20% dev holdout", _banking77_train),
}


# The sources `--pairs` uses unless told otherwise (the label pairs did not help on the dev splits).
DEFAULT_SOURCES = tuple(name for name in SOURCES if name not in ("TREC train", "Banking77 train"))


def training_pairs(data: Path, sources: Sequence[str] | None = None) -> tuple[Pairs, dict[str, int]]:
    """The positive pairs of `sources` (default: DEFAULT_SOURCES; exact repeats dropped) and how many each gave."""
    names = list(DEFAULT_SOURCES) if sources is None else list(sources)
    unknown = [name for name in names if name not in SOURCES]
    if unknown:
        raise ValueError(f"unknown pair source(s) {unknown}; known: {list(SOURCES)}")
    seen: dict[tuple[str, str], None] = {}
    counts = {}
    for name in names:
        _, read = SOURCES[name]
        pairs = read(data)
        counts[name] = len(pairs)
        for pair in pairs:
            seen.setdefault(pair, None)
    return list(seen), counts
