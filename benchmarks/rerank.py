"""Reranking quality and speed: the learned LITE scorer against pooled cosine, MaxSim and the teacher.

Tasks (evaluation-only splits, read here and nowhere in training):
    WikiQA test, TrecQA test   MAP over the candidates of each question (questions with both labels)
    SciFact                    nDCG@10 after reranking the top `--depth` documents that the base
                               model's pooled cosine retrieves from the 5,183 abstracts for each
                               BEIR test claim (claims_validation.csv)

Scorers, each reordering the same candidates:
    pooled cosine    the base model's `embed` vectors (for SciFact: the first stage's own order)
    MaxSim           `base.rerank(..., method="maxsim")`
    learned          `model.rerank(..., method="learned")` for each folder of `--models`
    teacher          all-MiniLM-L6-v2 cosine (its embeddings cached in `--cache`)

Margins: each learned scorer's gain over pooled cosine and over MaxSim on each task, with the 95%
interval of a paired bootstrap that resamples the task's queries (the same draws for every pair of
scorers).

Speed: every `rerank` call (one per query, tokenisation included) is timed; pairs/s is the number
of (query, candidate) pairs over those seconds, per task and over all three. For each learned
scorer the numpy scoring alone is timed too ("scoring only": the same pairs, tokenised beforehand).

Usage:
    .venv/bin/python benchmarks/rerank.py --models weights/default [OTHER_FOLDER ...]
    .venv/bin/python benchmarks/rerank.py --models weights/default --speed-only   # timings only
The data folder is $LIGHTEMBED_DATA, else ../shared/data. Results: benchmarks/results/rerank.json
(`--speed-only`: benchmarks/results/rerank_speed.json, no quality figures, no teacher).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import common

import lightembed
from lightembed.folder import RERANKER_FILE
from lightembed.model import capped_tokens
from lightembed.reranker import pooled_cosines
from lightembed.scoring import unit_rows
from lightembed_train.datasets import read_answer_selection, read_scifact
from lightembed_train.evaluation.reranking import rank_by_score, ranked_average_precision
from lightembed_train.evaluation.retrieval import ndcg_at_k, top_k


@dataclass(frozen=True)
class Query:
    """One query, its candidates with 0/1 labels, and how many relevant documents exist in all."""

    text: str
    candidates: list[str]
    labels: np.ndarray
    n_relevant: int


@dataclass(frozen=True)
class RerankTask:
    """A named list of queries and the metric that scores a reordering."""

    name: str
    metric: str
    queries: list[Query]

    @property
    def pairs(self) -> int:
        """(query, candidate) pairs to score."""
        return sum(len(q.candidates) for q in self.queries)

    def per_query(self, scores: list[np.ndarray]) -> np.ndarray:
        """The metric x100 of each query when its candidates are reordered by `scores`."""
        values = []
        for query, s in zip(self.queries, scores):
            relevance = query.labels[rank_by_score(s)]
            if self.metric == "MAP":
                values.append(ranked_average_precision(relevance))
            else:
                values.append(ndcg_at_k(relevance, query.n_relevant))
        return 100.0 * np.asarray(values)


def answer_selection(data: Path, folder: str, name: str) -> RerankTask:
    """The test questions of WikiQA or TrecQA that have a right and a wrong candidate."""
    queries = [
        Query(q.query, q.candidates, np.asarray(q.labels, dtype=bool), sum(q.labels))
        for q in read_answer_selection(data / folder / "test.txt")
        if q.has_both_labels
    ]
    return RerankTask(name, "MAP", queries)


def scifact(data: Path, base: lightembed.LightEmbed, depth: int) -> RerankTask:
    """The BEIR SciFact test claims, each with the base model's top `depth` abstracts."""
    claims = read_scifact(data, "claims_validation.csv")
    doc_ids = list(claims.corpus)
    ids = [q for q in claims.queries if claims.relevant[q] & claims.corpus.keys()]
    docs = [claims.corpus[d] for d in doc_ids]
    ranked = top_k(base.embed([claims.queries[q] for q in ids]) @ base.embed(docs).T, depth)
    queries = []
    for q, row in zip(ids, ranked):
        cited = claims.relevant[q] & claims.corpus.keys()
        queries.append(
            Query(
                claims.queries[q],
                [docs[i] for i in row],
                np.asarray([doc_ids[i] in cited for i in row]),
                len(cited),
            )
        )
    return RerankTask(f"SciFact (top {depth})", "nDCG@10", queries)


def timed_scores(task: RerankTask, score) -> tuple[list[np.ndarray], float]:
    """Scores of every query's candidates from `score(query, candidates)`, and the seconds it took."""
    out, seconds = [], 0.0
    for query in task.queries:
        start = time.perf_counter()
        out.append(score(query.text, query.candidates))
        seconds += time.perf_counter() - start
    return out, seconds


def scoring_only_seconds(model: lightembed.LightEmbed, task: RerankTask) -> float:
    """Seconds of the learned scorer's numpy scoring of every query's candidates, tokenised beforehand."""
    scorer = model.parts.reranker
    tokens = capped_tokens(model.parts, scorer.max_tokens)
    table = scorer.token_table(model.parts.embeddings)
    seconds = 0.0
    for query in task.queries:
        query_ids, _ = tokens.encode([query.text])
        flat, lengths = tokens.encode(query.candidates)
        start = time.perf_counter()
        cosines = pooled_cosines(model.parts.embeddings, query_ids, flat, lengths) if scorer.pooled else None
        scorer.scores(table, query_ids, flat, lengths, cosines)
        seconds += time.perf_counter() - start
    return seconds


def rerank_scorer(model: lightembed.LightEmbed, method: str):
    """`score(query, candidates)` through `model.rerank` (scores in input order)."""

    def score(query: str, candidates: list[str]) -> np.ndarray:
        out = np.zeros(len(candidates), dtype=np.float32)
        for hit in model.rerank(query, candidates, method=method):
            out[hit.index] = hit.score
        return out

    return score


def pooled_scorer(model: lightembed.LightEmbed):
    """`score(query, candidates)` by the cosine of the model's embeddings."""

    def score(query: str, candidates: list[str]) -> np.ndarray:
        return unit_rows(model.embed(candidates)) @ unit_rows(model.embed(query))

    return score


def teacher_scores(tasks: list[RerankTask], cache: str | None) -> dict[str, list[np.ndarray]]:
    """The teacher's cosine of every (query, candidate) pair, per task."""
    from lightembed_train.targets import teacher_embeddings
    from lightembed_train.teacher import Teacher

    texts = sorted({t for task in tasks for q in task.queries for t in (q.text, *q.candidates)})
    row = {text: i for i, text in enumerate(texts)}
    vectors = unit_rows(teacher_embeddings(Teacher(), texts, cache, progress=False))
    return {
        task.name: [vectors[[row[c] for c in q.candidates]] @ vectors[row[q.text]] for q in task.queries]
        for task in tasks
    }


def learned_margins(tasks: list[RerankTask], per_query: dict[tuple[str, str], np.ndarray], learned: list[str]) -> str:
    """A markdown table of each learned scorer's margin over pooled cosine and MaxSim per task, with the
    95% interval of a paired bootstrap over the task's queries."""
    rows = []
    for name in learned:
        for baseline in ("pooled cosine", "MaxSim"):
            cells = [name, baseline]
            for task in tasks:
                delta = per_query[name, task.name] - per_query[baseline, task.name]
                low, high = common.bootstrap_interval(delta)
                cells.append(f"{delta.mean():+.2f} [{low:+.2f}, {high:+.2f}]")
            rows.append(cells)
    return common.markdown_table(["learned scorer", "over", *(t.name for t in tasks)], rows)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", required=True, help="model folders with a learned reranker")
    parser.add_argument("--base", default=str(common.DEFAULT_MODEL_DIR), help="first stage, pooled cosine and MaxSim")
    parser.add_argument("--depth", type=int, default=100, help="SciFact documents reranked per claim (default 100)")
    parser.add_argument("--cache", default="/work/cache/teacher", help="cache folder of the teacher's embeddings")
    parser.add_argument("--no-teacher", action="store_true", help="skip the teacher's figures")
    parser.add_argument("--speed-only", action="store_true", help="only the timings (no quality figures, no teacher)")
    parser.add_argument("--out", default=None, help="results name in benchmarks/results (default rerank, rerank_speed)")
    parser.add_argument("--max-busy", type=float, default=0.3, help="wait until the CPU is at most this busy")
    parser.add_argument("--quiet-timeout", type=float, default=120.0, help="seconds to wait for a quiet CPU")
    args = parser.parse_args(argv)
    out = args.out or ("rerank_speed" if args.speed_only else "rerank")

    data = common.data_dir()
    common.check_data(data)
    base = lightembed.load(args.base)
    tasks = [
        answer_selection(data, "wikiqa", "WikiQA test"),
        answer_selection(data, "trecqa", "TrecQA test"),
        scifact(data, base, args.depth),
    ]
    scorers = {"pooled cosine": pooled_scorer(base), "MaxSim": rerank_scorer(base, "maxsim")}
    learned, sizes = {}, {}
    for folder in args.models:
        model = lightembed.load(folder)
        if model.parts.reranker is None:
            parser.error(f"{folder} has no {RERANKER_FILE}")
        scorers[f"learned {Path(folder).name}"] = rerank_scorer(model, "learned")
        learned[f"learned {Path(folder).name}"] = model
        sizes[f"learned {Path(folder).name}"] = (Path(folder) / RERANKER_FILE).stat().st_size
        for task in tasks:  # warm-up: the first call projects the codebook
            model.rerank(task.queries[0].text, task.queries[0].candidates[:2])
    busy = common.wait_for_quiet(args.max_busy, args.quiet_timeout)

    results, per_query = {}, {}
    for name, score in scorers.items():
        row = {}
        for task in tasks:
            scores, seconds = timed_scores(task, score)
            row[task.name] = {"seconds": seconds, "pairs_per_s": task.pairs / seconds}
            if not args.speed_only:
                per_query[name, task.name] = task.per_query(scores)
                row[task.name]["score"] = float(per_query[name, task.name].mean())
        pairs = sum(task.pairs for task in tasks)
        row["pairs_per_s"] = pairs / sum(row[task.name]["seconds"] for task in tasks)
        if name in learned:
            row["file_bytes"] = sizes[name]
            row["scoring_only_pairs_per_s"] = pairs / sum(scoring_only_seconds(learned[name], t) for t in tasks)
        results[name] = row
        print(f"{name}: {row['pairs_per_s']:,.0f} pairs/s", file=sys.stderr)
    if not args.no_teacher and not args.speed_only:
        teacher = teacher_scores(tasks, args.cache)
        results["teacher all-MiniLM-L6-v2"] = {
            task.name: {"score": float(task.per_query(teacher[task.name]).mean())} for task in tasks
        }

    quality = [] if args.speed_only else [f"{t.name} {t.metric}" for t in tasks]
    headers = ["scorer", *quality, *(f"{t.name} pairs/s" for t in tasks), "all pairs/s", "scoring only pairs/s"]
    rows = []
    for name, row in results.items():
        cells = [name, *([] if args.speed_only else (f"{row[t.name]['score']:.2f}" for t in tasks))]
        cells += [f"{row[t.name]['pairs_per_s']:,.0f}" if "pairs_per_s" in row[t.name] else "" for t in tasks]
        cells.append(f"{row['pairs_per_s']:,.0f}" if "pairs_per_s" in row else "")
        cells.append(f"{row['scoring_only_pairs_per_s']:,.0f}" if "scoring_only_pairs_per_s" in row else "")
        rows.append(cells)
    table = common.markdown_table(headers, rows)
    print(table)
    if not args.speed_only:
        margins = learned_margins(tasks, per_query, list(learned))
        print(margins)
    payload = {
        "command": shlex.join(["python", "benchmarks/rerank.py", *(argv if argv is not None else sys.argv[1:])]),
        "machine": common.machine_info(),
        "cpu_busy_at_start": round(busy, 2),
        "base": {"path": args.base, **common.model_fingerprint(Path(args.base))},
        "models": {folder: common.model_fingerprint(Path(folder)) for folder in args.models},
        "tasks": {t.name: {"metric": t.metric, "queries": len(t.queries), "pairs": t.pairs} for t in tasks},
        "results": results,
        "table": table,
        **({} if args.speed_only else {"margins": margins}),
    }
    print(f"wrote {common.write_json(out, payload)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
