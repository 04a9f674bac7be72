"""Contrastive training pairs: same-label pairing, sources, and the dev holdout kept out."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("sklearn")

from lightembed_train.datasets import LabelledTexts, read_banking77, read_trec
from lightembed_train.evaluation.classification import holdout_split
from lightembed_train.pairs import SOURCES, same_label_pairs, training_pairs


def test_same_label_pairs_cycle_within_each_label() -> None:
    texts = ["a1", "a2", "a3", "b1", "b2", "c1", "a1"]
    labels = ["a", "a", "a", "b", "b", "c", "a"]
    pairs = same_label_pairs(LabelledTexts(texts, labels), seed=3)
    label_of = dict(zip(texts, labels))
    assert all(label_of[x] == label_of[y] and x != y for x, y in pairs)
    # every distinct text of a label with two or more texts is a left side exactly once; c1 has no partner
    assert sorted(x for x, _ in pairs) == ["a1", "a2", "a3", "b1", "b2"]
    assert sorted(y for _, y in pairs) == ["a1", "a2", "a3", "b1", "b2"]
    assert same_label_pairs(LabelledTexts(texts, labels), seed=3) == pairs


def test_unknown_source_is_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown pair source.*'Nope'"):
        training_pairs(tmp_path, ["SNLI dev", "Nope"])


def test_label_sources_never_use_the_dev_holdout(data_dir: Path) -> None:
    pairs, counts = training_pairs(data_dir, ["TREC train", "Banking77 train"])
    assert counts["TREC train"] > 4000 and counts["Banking77 train"] > 7000
    used = {text for pair in pairs for text in pair}
    for data in (read_trec(data_dir, "train"), read_banking77(data_dir, "train")):
        train, held_out = holdout_split(data)
        assert not used & (set(held_out.texts) - set(train.texts))
    fine_types = read_trec(data_dir, "train", fine=True)
    fine = dict(zip(fine_types.texts, fine_types.labels))
    trec_pairs = pairs[: counts["TREC train"]]
    assert all(fine[a] == fine[b] for a, b in trec_pairs)
    assert len(SOURCES) == 10 and len(training_pairs(data_dir)[1]) == 8  # label pairs are opt-in
