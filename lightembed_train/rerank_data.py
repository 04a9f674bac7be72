"""(query, positive, negative) triples and dev rankings for training a reranker, from train-allowed files only.

Sources (every file and split here is train-allowed in the data README):

- WikiQA train, TrecQA train: a question, a correct answer and a wrong candidate of the same question.
- SciFact train claims (all but a held-out part): a claim, a cited abstract, and an abstract the
  first-stage model ranks high for the claim but the claim does not cite.
- Quora dev: a question, its marked duplicate, and a hard non-duplicate: a question marked as not
  its duplicate in the file, else one of its nearest questions (by the first-stage model) outside
  its duplicate group.
- SNLI dev: a premise, an entailed hypothesis, and a neutral or contradicting hypothesis of it.

Dev rankings (for early stopping and choosing settings): WikiQA dev and TrecQA dev (MAP over the
candidates of each question), and the held-out SciFact train claims (nDCG@10 when reranking the
first stage's top documents).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lightembed import LightEmbed

from .datasets import RankingQuery, read_answer_selection, read_labelled_pairs, read_scifact, read_snli
from .evaluation.duplicates import union_find_groups
from .evaluation.retrieval import top_k

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Triple:
    """A query, a text that should rank higher, and one that should rank lower."""

    query: str
    positive: str
    negative: str
    source: str


@dataclass(frozen=True)
class DevRanking:
    """Queries with candidates to rank; metric "MAP" or "nDCG@10" (with each query's relevant count)."""

    name: str
    metric: str
    queries: list[RankingQuery]
    n_relevant: list[int]


@dataclass(frozen=True)
class RerankData:
    """Training triples and the dev rankings."""

    triples: list[Triple]
    dev: list[DevRanking]

    def texts(self) -> list[str]:
        """Every distinct text, sorted (so that the teacher's cache key is stable)."""
        seen = {t for triple in self.triples for t in (triple.query, triple.positive, triple.negative)}
        for ranking in self.dev:
            for q in ranking.queries:
                seen.add(q.query)
                seen.update(q.candidates)
        return sorted(seen)

    def counts(self) -> dict[str, int]:
        """Triples per source."""
        out: dict[str, int] = {}
        for triple in self.triples:
            out[triple.source] = out.get(triple.source, 0) + 1
        return out


def answer_selection_triples(path: Path, source: str, per_query: int, rng: np.random.Generator) -> list[Triple]:
    """(question, right answer, wrong answer) of each question, at most `per_query` sampled per question."""
    out = []
    for q in read_answer_selection(path):
        positives = [c for c, label in zip(q.candidates, q.labels) if label]
        negatives = [c for c, label in zip(q.candidates, q.labels) if not label]
        pairs = [(p, n) for p in positives for n in negatives if p != n]
        if len(pairs) > per_query:
            pairs = [pairs[i] for i in rng.choice(len(pairs), per_query, replace=False)]
        out.extend(Triple(q.query, p, n, source) for p, n in pairs)
    return out


def answer_selection_dev(path: Path, name: str) -> DevRanking:
    """The questions of a dev file that have both a right and a wrong candidate (MAP)."""
    queries = [q for q in read_answer_selection(path) if q.has_both_labels]
    return DevRanking(name, "MAP", queries, [sum(q.labels) for q in queries])


def first_stage(model: LightEmbed, queries: Sequence[str], docs: Sequence[str], k: int) -> np.ndarray:
    """Indices of each query's top-k documents by the model's pooled cosine, best first [len(queries), k]."""
    return top_k(model.embed(list(queries)) @ model.embed(list(docs)).T, k)


def scifact_split(data: Path, dev_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """Train claim ids and held-out dev claim ids (a seeded random part of the SciFact train claims)."""
    claims = read_scifact(data, "claims_train.csv")
    ids = sorted(q for q in claims.queries if claims.relevant[q] & claims.corpus.keys())
    order = np.random.default_rng(seed).permutation(len(ids))
    n_dev = round(dev_fraction * len(ids))
    if not 0 < n_dev < len(ids):  # a dev ranking without queries would score NaN and choose no epoch
        raise ValueError(
            f"scifact_dev_fraction {dev_fraction} holds out {n_dev} of {len(ids)} SciFact train claims: "
            "at least one must be held out and one kept for training"
        )
    dev = sorted(ids[i] for i in order[:n_dev])
    train = sorted(ids[i] for i in order[n_dev:])
    return train, dev


def scifact_triples_and_dev(
    data: Path, model: LightEmbed, *, dev_fraction: float, negatives: int, depth: int, candidates: int, seed: int
) -> tuple[list[Triple], DevRanking]:
    """Triples from the train part of the SciFact train claims, and the held-out claims as a dev ranking.

    Negatives are `negatives` abstracts sampled from the first stage's top `depth` that the claim
    does not cite; the dev ranking holds each held-out claim's top `candidates` documents.
    """
    claims = read_scifact(data, "claims_train.csv")
    train_ids, dev_ids = scifact_split(data, dev_fraction, seed)
    doc_ids = list(claims.corpus)
    docs = [claims.corpus[d] for d in doc_ids]
    wanted = train_ids + dev_ids
    ranked = first_stage(model, [claims.queries[q] for q in wanted], docs, max(depth, candidates))
    rng = np.random.default_rng(seed)
    triples = []
    for q, row in zip(train_ids, ranked):
        cited = claims.relevant[q]
        hard = [doc_ids[i] for i in row[:depth] if doc_ids[i] not in cited]
        picked = [hard[i] for i in rng.choice(len(hard), min(negatives, len(hard)), replace=False)]
        for positive in sorted(cited & claims.corpus.keys()):
            triples.extend(
                Triple(claims.queries[q], claims.corpus[positive], claims.corpus[n], "SciFact train") for n in picked
            )
    dev_queries, n_relevant = [], []
    for q, row in zip(dev_ids, ranked[len(train_ids) :]):
        cited = claims.relevant[q] & claims.corpus.keys()
        top = [doc_ids[i] for i in row[:candidates]]
        dev_queries.append(
            RankingQuery(claims.queries[q], [claims.corpus[d] for d in top], [int(d in cited) for d in top])
        )
        n_relevant.append(len(cited))
    return triples, DevRanking("SciFact held-out train claims", "nDCG@10", dev_queries, n_relevant)


def quora_triples(data: Path, model: LightEmbed, neighbours: int, rng: np.random.Generator) -> list[Triple]:
    """(question, duplicate, hard non-duplicate) from the Quora dev pairs, both directions of each duplicate pair."""
    pairs = read_labelled_pairs(data / "quora_pairs_bimpm" / "dev.txt")
    duplicates = [(a, b) for a, b, label in zip(pairs.texts1, pairs.texts2, pairs.scores) if label > 0 and a != b]
    marked: dict[str, list[str]] = {}
    for a, b, label in zip(pairs.texts1, pairs.texts2, pairs.scores):
        if label == 0 and a != b:
            marked.setdefault(a, []).append(b)
            marked.setdefault(b, []).append(a)
    group = {text: i for i, members in enumerate(union_find_groups(duplicates)) for text in members}
    texts = sorted(set(pairs.texts1) | set(pairs.texts2))
    queries = sorted({t for pair in duplicates for t in pair})
    near = first_stage(model, queries, texts, neighbours + 1)
    hard: dict[str, list[str]] = {}
    for query, row in zip(queries, near):
        hard[query] = [texts[i] for i in row if group.get(texts[i], -1) != group[query]][:neighbours]
    out = []
    for a, b in duplicates:
        for query, positive in ((a, b), (b, a)):
            options = marked.get(query) or hard[query]
            if options:
                out.append(Triple(query, positive, options[int(rng.integers(len(options)))], "Quora dev"))
    return out


def snli_triples(data: Path, rng: np.random.Generator) -> list[Triple]:
    """(premise, entailed hypothesis, neutral or contradicting hypothesis) from SNLI dev."""
    pairs, labels = read_snli(data, "dev")
    by_premise: dict[str, dict[str, list[str]]] = {}
    for premise, hypothesis, label in zip(pairs.texts1, pairs.texts2, labels):
        by_premise.setdefault(premise, {}).setdefault(label, []).append(hypothesis)
    out = []
    for premise, groups in by_premise.items():
        negatives = groups.get("contradiction", []) + groups.get("neutral", [])
        for positive in groups.get("entailment", []):
            if negatives:
                out.append(Triple(premise, positive, negatives[int(rng.integers(len(negatives)))], "SNLI dev"))
    return out


def rerank_data(
    data: Path,
    model: LightEmbed,
    *,
    per_query: int = 64,
    scifact_dev_fraction: float = 0.2,
    scifact_negatives: int = 8,
    scifact_depth: int = 50,
    dev_candidates: int = 100,
    quora_neighbours: int = 10,
    seed: int = 0,
) -> RerankData:
    """Every training triple and dev ranking; `model` is the first stage that mines negatives."""
    rng = np.random.default_rng(seed)
    triples = answer_selection_triples(data / "wikiqa" / "train.txt", "WikiQA train", per_query, rng)
    triples += answer_selection_triples(data / "trecqa" / "train.txt", "TrecQA train", per_query, rng)
    scifact, scifact_dev = scifact_triples_and_dev(
        data,
        model,
        dev_fraction=scifact_dev_fraction,
        negatives=scifact_negatives,
        depth=scifact_depth,
        candidates=dev_candidates,
        seed=seed,
    )
    triples += scifact + quora_triples(data, model, quora_neighbours, rng) + snli_triples(data, rng)
    dev = [
        answer_selection_dev(data / "wikiqa" / "dev.txt", "WikiQA dev"),
        answer_selection_dev(data / "trecqa" / "dev.txt", "TrecQA dev"),
        scifact_dev,
    ]
    result = RerankData(triples, dev)
    logger.info("reranker triples per source: %s", result.counts())
    return result
