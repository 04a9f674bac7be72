"""Readers for the data files of the shared data folder (see its README for formats and licences).

The folder is `$LIGHTEMBED_DATA`, else `../shared/data` beside the repository root. Nothing
here copies data anywhere. Which split may be used for what is the caller's business: the
readers take the split as an argument, and the benchmark suite (`lightembed_train.evaluate`)
only asks for the splits that the data README reserves for evaluation.
"""

from __future__ import annotations

import ast
import csv
import io
import os
import re
import tokenize
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

DATA_ENV = "LIGHTEMBED_DATA"
SENTEVAL_FILES: dict[str, tuple[str, str, str]] = {
    # name: (folder, file of label 0, file of label 1)
    "MR": ("MR", "rt-polarity.neg", "rt-polarity.pos"),
    "CR": ("CR", "custrev.neg", "custrev.pos"),
    "SUBJ": ("SUBJ", "subj.objective", "subj.subjective"),
    "MPQA": ("MPQA", "mpqa.neg", "mpqa.pos"),
}
_STS_SPLITS = ("train", "dev", "test")
_SICK_SPLITS = ("TRAIN", "TRIAL", "TEST")

csv.field_size_limit(1 << 24)


def data_dir() -> Path:
    """The shared data folder: `$LIGHTEMBED_DATA`, else `../shared/data` beside the repository root."""
    value = os.environ.get(DATA_ENV)
    return Path(value).expanduser() if value else Path(__file__).resolve().parent.parent.parent / "shared" / "data"


@dataclass(frozen=True)
class ScoredPairs:
    """Text pairs with a gold score each (a similarity score, or a 0/1 label)."""

    texts1: list[str]
    texts2: list[str]
    scores: list[float]

    def __len__(self) -> int:
        return len(self.scores)


@dataclass(frozen=True)
class LabelledTexts:
    """Texts with a class label each."""

    texts: list[str]
    labels: list[str]

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def classes(self) -> list[str]:
        """The distinct labels, sorted."""
        return sorted(set(self.labels))


@dataclass(frozen=True)
class RankingQuery:
    """One question with its candidate answers and their 0/1 relevance."""

    query: str
    candidates: list[str]
    labels: list[int]

    @property
    def has_both_labels(self) -> bool:
        """At least one relevant and one irrelevant candidate (the queries that rank anything)."""
        return any(self.labels) and not all(self.labels)


@dataclass(frozen=True)
class RetrievalSet:
    """Queries, a document collection, and the relevant document ids of each query."""

    queries: dict[str, str]
    corpus: dict[str, str]
    relevant: dict[str, set[str]]


def _lines(path: Path, encoding: str = "utf-8") -> Iterator[str]:
    with path.open(encoding=encoding, newline="") as handle:
        for line in handle:
            yield line.rstrip("\r\n")


def _unquote(field: str) -> str:
    """A CSV-quoted field without its quotes, doubled quotes made single; other fields unchanged."""
    if len(field) >= 2 and field[0] == field[-1] == '"':
        return field[1:-1].replace('""', '"')
    return field


def read_sts_benchmark(data: Path, split: str = "test") -> ScoredPairs:
    """STS Benchmark pairs with their 0-5 score (fields 5 and 6 of each TAB-separated row)."""
    if split not in _STS_SPLITS:
        raise ValueError(f"STS-B split must be one of {_STS_SPLITS}, got {split!r}")
    texts1, texts2, scores = [], [], []
    for line in _lines(data / "stsbenchmark" / f"sts-{split}.csv"):
        fields = line.split("\t")
        if len(fields) < 7:
            continue
        scores.append(float(fields[4]))
        texts1.append(fields[5])
        texts2.append(fields[6])
    return ScoredPairs(texts1, texts2, scores)


def read_sick(data: Path, split: str = "TEST") -> ScoredPairs:
    """SICK pairs of one SemEval_set with their 1-5 relatedness score."""
    if split not in _SICK_SPLITS:
        raise ValueError(f"SICK split must be one of {_SICK_SPLITS}, got {split!r}")
    rows = _lines(data / "sick" / "SICK.txt")
    header = next(rows).split("\t")
    a, b = header.index("sentence_A"), header.index("sentence_B")
    score, column = header.index("relatedness_score"), header.index("SemEval_set")
    texts1, texts2, scores = [], [], []
    for line in rows:
        fields = line.split("\t")
        if len(fields) == len(header) and fields[column] == split:
            texts1.append(fields[a])
            texts2.append(fields[b])
            scores.append(float(fields[score]))
    return ScoredPairs(texts1, texts2, scores)


def read_labelled_pairs(path: Path) -> ScoredPairs:
    """`text1<TAB>text2<TAB>label` lines (MRPC, Quora, WikiQA, TrecQA); CSV-quoted fields are unquoted."""
    texts1, texts2, scores = [], [], []
    for line in _lines(path):
        fields = line.split("\t")
        if len(fields) != 3:
            continue
        texts1.append(_unquote(fields[0]))
        texts2.append(_unquote(fields[1]))
        scores.append(float(fields[2]))
    return ScoredPairs(texts1, texts2, scores)


def read_answer_selection(path: Path) -> list[RankingQuery]:
    """WikiQA / TrecQA: the candidate answers of each question, in file order."""
    pairs = read_labelled_pairs(path)
    grouped: dict[str, tuple[list[str], list[int]]] = {}
    for question, answer, label in zip(pairs.texts1, pairs.texts2, pairs.scores):
        candidates, labels = grouped.setdefault(question, ([], []))
        candidates.append(answer)
        labels.append(int(label))
    return [RankingQuery(q, candidates, labels) for q, (candidates, labels) in grouped.items()]


def read_banking77(data: Path, split: str = "test") -> LabelledTexts:
    """Banking77 utterances with their intent (`train` or `test`)."""
    if split not in ("train", "test"):
        raise ValueError(f"Banking77 split must be 'train' or 'test', got {split!r}")
    with (data / "banking77" / f"{split}.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return LabelledTexts([row["text"] for row in rows], [row["category"] for row in rows])


def read_trec(data: Path, split: str = "test", fine: bool = False) -> LabelledTexts:
    """TREC questions with their coarse type (ABBR, DESC, ENTY, HUM, LOC, NUM), or with `fine=True`
    their fine type (`NUM:count`, ...); `train` or `test`."""
    names = {"train": "train_5500.label", "test": "TREC_10.label"}
    if split not in names:
        raise ValueError(f"TREC split must be 'train' or 'test', got {split!r}")
    texts, labels = [], []
    for line in _lines(data / "trec_qc" / names[split], encoding="latin-1"):
        label, _, text = line.partition(" ")
        if text:
            texts.append(text)
            labels.append(label if fine else label.split(":", 1)[0])
    return LabelledTexts(texts, labels)


def read_senteval(data: Path, name: str) -> LabelledTexts:
    """A SentEval binary task (MR, CR, SUBJ, MPQA): labels "0" and "1", blank lines skipped."""
    if name not in SENTEVAL_FILES:
        raise ValueError(f"SentEval task must be one of {sorted(SENTEVAL_FILES)}, got {name!r}")
    folder, *files = SENTEVAL_FILES[name]
    texts, labels = [], []
    for label, file in enumerate(files):
        for line in _lines(data / "senteval_classification" / folder / file):
            if line.strip():
                texts.append(line.strip())
                labels.append(str(label))
    return LabelledTexts(texts, labels)


def read_ag_news(data: Path) -> LabelledTexts:
    """AG News test: title + " " + description, labelled with the class number 1-4."""
    texts, labels = [], []
    with (data / "ag_news" / "test.csv").open(encoding="utf-8", newline="") as handle:
        for row in csv.reader(handle):
            if len(row) >= 3:
                labels.append(row[0])
                texts.append(f"{row[1]} {row[2]}")
    return LabelledTexts(texts, labels)


def string_literals(text: str) -> list[str]:
    """The string literals of a printed array such as `['a.'\\n 'b.']`, each one separately.

    The SciFact abstracts are numpy-printed lists with no commas, so `ast.literal_eval` of the
    whole text would join adjacent literals into one string with no space between sentences.
    Each literal token is evaluated on its own (`ast.literal_eval` reads literals only).
    """
    out = []
    for token in tokenize.generate_tokens(io.StringIO(text).readline):
        if token.type == tokenize.STRING:
            out.append(ast.literal_eval(token.string))
    return out


def read_scifact(data: Path, claims: str = "claims_validation.csv") -> RetrievalSet:
    """SciFact claims of one file against the 5,183 corpus documents (title + " " + abstract sentences).

    `claims_validation.csv` is the BEIR SciFact test set; a claim's relevant documents are its
    `cited_doc_ids` (one claim spans several rows, one per evidence).
    """
    folder = data / "scifact"
    corpus = {}
    with (folder / "corpus_train.csv").open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            corpus[row["doc_id"]] = row["title"] + " " + " ".join(string_literals(row["abstract"]))
    queries: dict[str, str] = {}
    relevant: dict[str, set[str]] = {}
    with (folder / claims).open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            queries[row["id"]] = row["claim"]
            relevant.setdefault(row["id"], set()).update(re.findall(r"\d+", row["cited_doc_ids"]))
    return RetrievalSet(queries, corpus, relevant)


def read_snli(data: Path, split: str = "dev") -> tuple[ScoredPairs, list[str]]:
    """SNLI premise/hypothesis pairs of `dev` or `test` with their labels (entailment, neutral, contradiction).

    Returned as pairs with score 1 for entailment and 0 otherwise, and the label strings.
    """
    if split not in ("dev", "test"):
        raise ValueError(f"SNLI split must be 'dev' or 'test', got {split!r}")
    folder = data / "snli_devtest"
    premises = list(_lines(folder / f"s1.{split}"))
    hypotheses = list(_lines(folder / f"s2.{split}"))
    labels = list(_lines(folder / f"labels.{split}"))
    if not len(premises) == len(hypotheses) == len(labels):
        raise ValueError(f"{folder}: s1/s2/labels.{split} have different line counts")
    scores = [1.0 if label == "entailment" else 0.0 for label in labels]
    return ScoredPairs(premises, hypotheses, scores), labels
