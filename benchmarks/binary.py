"""Binary codes: suite quality of trained codes against plain sign bits and SimHash, and Hamming
top-k against float top-k over 1,000,000 items.

**quality** runs the 16-task suite (`lightembed_train.evaluate`, evaluation-only splits) on the
±1 vectors of binary codes, whose cosine is the Hamming similarity `1 - 2 * hamming / bits`:

- float: the float model itself (`--base`, default: the bundled default, 256 dims);
- plain sign: `BASE:binary@BITS`, the runtime's sign bits of the first BITS float columns
  (only up to the float width);
- SimHash: `BASE:simhash@BITS`, sign bits of a seeded random Gaussian projection of the float
  vector (any number of bits; the baseline above the float width);
- trained: `TRAINED:binary@BITS`, the sign bits of the trained binary codebook of `--trained`
  (made by `lightembed-train binary`), its first BITS columns.

**search** embeds `--items` (1,000,000) real train-allowed texts, cycled and varied as in
`memory.py`, with the float model and with the trained binary model, then times top-10 search for
`--queries` of those texts over all items, in the runtime:

- one query through the verb: `model.topk(query, items, k=10)` (float: unit vectors; binary:
  packed codes, selected on integer Hamming distances);
- one query, kernel only: `top_indices(items @ query, 10)` for floats, `hamming_topk` for codes
  (no input checks or normalising copies);
- all queries at once: float matrix products in blocks of 16 queries (64 MB of scores) with
  `argpartition` per query, against `hamming_topk` over the same queries.

Memory: bytes of the stored items, and the peak of temporary numpy memory during a call
(tracemalloc). Also the overlap of each code size's top-10 with the float top-10, and how many of
the float top-10 are among the Hamming top-100 (candidates for re-scoring); the queries are items,
so both lists leave out the query and its exact copies (rows with the same vector).

Usage:
    .venv/bin/python benchmarks/binary.py --trained FOLDER [--parts quality,search] \\
        [--cache /work/cache/eval-dev] [--items 1000000]
Writes benchmarks/results/binary.json and prints markdown tables. Nothing touches the network.
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import common
from memory import write_texts

BITS = (64, 128, 256, 512, 1024)
SST_TRAIN = Path("senteval_classification/SST/Binary/sentiment-train")
SST_SAMPLE = 8000
FLOAT_BLOCK_QUERIES = 16
PARTS = ("quality", "search", "dev")
WORK_DIR = common.REPO_ROOT / "benchmarks" / "out"


# --------------------------------------------------------------------------- quality
def quality(args: argparse.Namespace, previous: dict[str, Any] | None = None) -> dict[str, Any]:
    """Suite averages of float, plain sign, SimHash and trained codes at every bit count.

    Without `args.trained` only the float model and the baselines run. With `args.reuse`, an
    encoder whose fingerprint and tasks match an encoder of `previous` (an earlier quality part)
    is not evaluated again.
    """
    from lightembed_train.evaluate import (
        EmbeddingCache,
        EncoderReport,
        TaskResult,
        default_tasks,
        encoder_from_spec,
        evaluate,
        markdown_table,
    )

    tasks = default_tasks(args.data)
    cache = EmbeddingCache(args.cache)
    base_width = _float_width(args.base)
    specs: dict[str, str] = {"float": args.base}
    for bits in args.bits:
        if bits <= base_width:
            specs[f"sign@{bits}"] = f"{args.base}:binary@{bits}"
        if bits > base_width or args.simhash_all:
            specs[f"simhash@{bits}"] = f"{args.base}:simhash@{bits}"
        if args.trained:
            specs[f"trained@{bits}"] = f"{args.trained}:binary@{bits}"
    earlier = (previous or {}).get("encoders", {}) if args.reuse else {}
    reports = {}
    for key, spec in specs.items():
        encoder = encoder_from_spec(spec, WORK_DIR)
        old = earlier.get(key)
        if (
            old
            and old["fingerprint"] == encoder.fingerprint
            and [r["task"] for r in old["results"]] == [t.name for t in tasks]
        ):
            reports[key] = EncoderReport(old["encoder"], old["fingerprint"], [TaskResult(**r) for r in old["results"]])
        else:
            reports[key] = evaluate(encoder, tasks, cache)
        print(f"{reports[key].encoder}: average {reports[key].average:.2f}", file=sys.stderr, flush=True)
    float_average = reports["float"].average
    rows = []
    for bits in args.bits:
        baselines = {
            name: reports[f"{name}@{bits}"].average for name in ("sign", "simhash") if f"{name}@{bits}" in reports
        }
        trained = reports[f"trained@{bits}"].average if f"trained@{bits}" in reports else None
        rows.append(
            {
                "bits": bits,
                "plain_sign": baselines.get("sign"),
                "simhash": baselines.get("simhash"),
                "trained": trained,
                "trained_share_of_float": None if trained is None else trained / float_average,
                "trained_minus_best_baseline": None if trained is None else trained - max(baselines.values()),
            }
        )
    return {
        "float_average": float_average,
        "rows": rows,
        "specs": specs,
        "encoders": {key: report.to_json() for key, report in reports.items()},
        "table": markdown_table(list(reports.values())),
    }


def quality_table(result: dict[str, Any]) -> str:
    """Bits as rows: plain sign, SimHash, trained, trained as a share of float."""

    def cell(value: float | None, form: str) -> str:
        return "n/a" if value is None else format(value, form)

    rows = []
    for row in result["rows"]:
        share = None if row["trained_share_of_float"] is None else 100 * row["trained_share_of_float"]
        rows.append(
            [
                row["bits"],
                cell(row["plain_sign"], ".2f"),
                cell(row["simhash"], ".2f"),
                f"**{cell(row['trained'], '.2f')}**",
                cell(share, ".1f") + "%",
                cell(row["trained_minus_best_baseline"], "+.2f"),
            ]
        )
    headers = ["bits", "plain sign", "SimHash", "trained", "trained / float", "trained - best baseline"]
    return f"Float model average: {result['float_average']:.2f}\n\n" + common.markdown_table(headers, rows)


def _float_width(spec: str) -> int:
    import lightembed

    return lightembed.load(None if spec == "default" else spec).dim


# --------------------------------------------------------------------------- dev
def dev_tasks(data: Path) -> list[Any]:
    """Train-allowed stand-ins for the suite's task families, for choosing training settings.

    STS-B dev and SICK trial (Spearman), WikiQA and TrecQA dev (MAP), probes on fixed 80/20
    splits of Banking77 train, TREC train and 8,000 SST train phrases of 4+ words (accuracy),
    Banking77 train clustering (V-measure). No evaluation-only file is read.
    """
    from lightembed_train.datasets import (
        LabelledTexts,
        read_answer_selection,
        read_banking77,
        read_sick,
        read_sts_benchmark,
        read_trec,
    )
    from lightembed_train.evaluation import ClassificationTask, ClusteringTask, RerankingTask, StsTask
    from lightembed_train.evaluation.classification import holdout_split

    sst = [line.rsplit("\t", 1) for line in common.read_lines(data / SST_TRAIN) if "\t" in line]
    sst = [(text.strip(), label.strip()) for text, label in sst if len(text.split()) >= 4]
    keep = np.random.default_rng(0).choice(len(sst), size=min(SST_SAMPLE, len(sst)), replace=False)
    sst_texts = LabelledTexts([sst[i][0] for i in keep], [sst[i][1] for i in keep])
    banking = read_banking77(data, "train")
    return [
        StsTask("STS-B dev", read_sts_benchmark(data, "dev")),
        StsTask("SICK trial", read_sick(data, "TRIAL")),
        RerankingTask("WikiQA dev", read_answer_selection(data / "wikiqa" / "dev.txt")),
        RerankingTask("TrecQA dev", read_answer_selection(data / "trecqa" / "dev.txt")),
        ClassificationTask("Banking77 train probe", *holdout_split(banking)),
        ClassificationTask("TREC train probe", *holdout_split(read_trec(data, "train"))),
        ClassificationTask("SST train probe", *holdout_split(sst_texts)),
        ClusteringTask("Banking77 train clustering", banking),
    ]


def dev(args: argparse.Namespace) -> dict[str, Any]:
    """The dev tasks for every encoder in `args.dev_specs`."""
    from lightembed_train.evaluate import EmbeddingCache, encoder_from_spec, evaluate, markdown_table

    tasks = dev_tasks(args.data)
    cache = EmbeddingCache(args.cache)
    reports = [evaluate(encoder_from_spec(spec, WORK_DIR), tasks, cache) for spec in args.dev_specs]
    return {
        "specs": args.dev_specs,
        "averages": {spec: report.average for spec, report in zip(args.dev_specs, reports)},
        "encoders": [report.to_json() for report in reports],
        "table": markdown_table(reports),
    }


# --------------------------------------------------------------------------- search
def _peak_temporary(fn: Any) -> tuple[Any, float]:
    """Run `fn()` and return its result and the peak of numpy memory it allocated (MiB), via tracemalloc."""
    tracemalloc.start()
    try:
        result = fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, peak / 2**20


def _times(fn: Any, calls: list[Any]) -> list[float]:
    out = []
    for call in calls:
        start = time.perf_counter()
        fn(call)
        out.append(time.perf_counter() - start)
    return out


def copies_of(vectors: np.ndarray, row: int) -> np.ndarray:
    """The rows whose vector equals row `row`'s, itself included (texts that differ only in letter case, say)."""
    near = np.flatnonzero(vectors @ vectors[row] >= 1.0 - 1e-5)
    return near[(vectors[near] == vectors[row]).all(axis=1)]


def _without(lists: np.ndarray, copies: list[np.ndarray], k: int) -> list[np.ndarray]:
    """Each query's list without the query's copies (which any search finds first), cut to `k`."""
    return [found[~np.isin(found, drop)][:k] for found, drop in zip(lists, copies)]


def float_topk_many(queries: np.ndarray, items: np.ndarray, k: int) -> np.ndarray:
    """Top-k rows of `items` for each query by dot product, in blocks of queries (bounded memory)."""
    from lightembed.scoring import top_indices

    out = np.zeros((len(queries), min(k, len(items))), dtype=np.int64)
    for start in range(0, len(queries), FLOAT_BLOCK_QUERIES):
        scores = queries[start : start + FLOAT_BLOCK_QUERIES] @ items.T
        for offset, row in enumerate(scores):
            out[start + offset] = top_indices(row, k)
    return out


def _search_items(args: argparse.Namespace, float_model: Any, code_model: Any) -> tuple[Any, ...]:
    """The float vectors and packed codes of `args.items` texts: (vectors, codes, texts, embed seconds).

    Each array is kept in `args.embedded` under a name made of the items, the seed and its model's
    fingerprint, so that `--parts search` re-runs only the timing (and a new trained model only
    embeds its codes).
    """
    import hashlib
    import json

    def stored(model: Any) -> Path:
        key = json.dumps([args.items, args.seed, model.binary, model.dim, common.model_fingerprint(model.path)])
        return args.embedded / f"{hashlib.sha256(key.encode()).hexdigest()[:16]}.npy"

    described_file = args.embedded / f"texts-{args.items}-{args.seed}.json"
    arrays, seconds, texts = [], {}, None
    described = json.loads(described_file.read_text(encoding="utf-8")) if described_file.is_file() else None
    for name, model in (("float", float_model), ("binary", code_model)):
        path = stored(model)
        if path.is_file() and described is not None:
            logging.getLogger(__name__).warning("%s search items from %s (embedded earlier)", name, path)
            arrays.append(np.load(path))
            seconds[name] = described["seconds"].get(name)
            continue
        if texts is None:
            tmp = Path(tempfile.mkdtemp(prefix="lightembed_binary_"))
            text_file = tmp / "texts.txt"
            texts_described = write_texts(args.data, text_file, args.items, args.seed)
            texts = common.read_lines(text_file)
            text_file.unlink()
            tmp.rmdir()
            described = {"texts": texts_described, "seconds": (described or {}).get("seconds", {})}
        started = time.perf_counter()
        arrays.append(model.embed(texts))
        seconds[name] = described["seconds"][name] = time.perf_counter() - started
        args.embedded.mkdir(parents=True, exist_ok=True)
        np.save(path, arrays[-1])
        described_file.write_text(json.dumps(described), encoding="utf-8")
    return arrays[0], arrays[1], described["texts"], seconds


def _search_row(
    kind: str,
    stored: np.ndarray,
    verb: list[float],
    kernel: list[float],
    batch_per_query: float,
    peak_mb: float,
    overlap: float = 1.0,
    in_top100: float = 1.0,
) -> dict[str, Any]:
    """One row of the search results: memory, median times (ms) and agreement with the float top-10."""
    return {
        "kind": kind,
        "stored_mb": stored.nbytes / 2**20,
        "verb_ms": 1000 * statistics.median(verb),
        "kernel_ms": 1000 * statistics.median(kernel),
        "batch_ms_per_query": 1000 * batch_per_query,
        "batch_peak_temporary_mb": peak_mb,
        "top10_overlap_with_float": float(overlap),
        "float_top10_in_top100": float(in_top100),
    }


def search(args: argparse.Namespace) -> dict[str, Any]:
    """Time float and Hamming top-10 over `args.items` real texts."""
    import lightembed
    from lightembed.binary import hamming_topk
    from lightembed.scoring import top_indices

    float_model = lightembed.load(None if args.base == "default" else args.base)
    widest = max(args.bits)
    code_model = lightembed.load(args.trained, dim=widest, binary=True)
    vectors, codes, described, embed_seconds = _search_items(args, float_model, code_model)
    rng = np.random.default_rng(args.seed)
    query_rows = rng.choice(len(vectors), size=args.queries, replace=False)
    k = 10
    copies = [copies_of(vectors, row) for row in query_rows]
    extra = max(map(len, copies))
    float_truth = _without(float_topk_many(vectors[query_rows], vectors, k + extra), copies, k)

    rows: list[dict[str, Any]] = []
    float_verb = _times(lambda i: float_model.topk(vectors[i], vectors, k=k), list(query_rows[: args.verb_queries]))
    float_kernel = _times(lambda i: top_indices(vectors @ vectors[i], k), list(query_rows))
    start = time.perf_counter()
    _, float_peak = _peak_temporary(lambda: float_topk_many(vectors[query_rows], vectors, k))
    float_batch = time.perf_counter() - start
    rows.append(
        _search_row(
            f"float32 x {vectors.shape[1]}",
            vectors,
            float_verb,
            float_kernel,
            float_batch / len(query_rows),
            float_peak,
        )
    )
    for bits in args.bits:
        part = np.ascontiguousarray(codes[:, : bits // 8])
        model = lightembed.load(args.trained, dim=bits, binary=True)
        verb = _times(lambda i, m=model, c=part: m.topk(c[i], c, k=k), list(query_rows[: args.verb_queries]))
        kernel = _times(lambda i, c=part: hamming_topk(c[i : i + 1], c, k), list(query_rows))
        start = time.perf_counter()
        _, peak = _peak_temporary(lambda c=part: hamming_topk(c[query_rows], c, k))
        batch = time.perf_counter() - start
        found = _without(hamming_topk(part[query_rows], part, 100 + extra)[0], copies, 100)
        overlap = np.mean([len(set(f[:k]) & set(t)) / k for f, t in zip(found, float_truth)])
        in_top100 = np.mean([len(set(f) & set(t)) / k for f, t in zip(found, float_truth)])
        rows.append(_search_row(f"{bits} bits", part, verb, kernel, batch / len(query_rows), peak, overlap, in_top100))
    for row in rows:
        row["memory_ratio"] = rows[0]["stored_mb"] / row["stored_mb"]
        row["kernel_speedup"] = rows[0]["kernel_ms"] / row["kernel_ms"]
    return {
        "items": len(vectors),
        "texts": described,
        "queries": int(args.queries),
        "verb_queries": int(args.verb_queries),
        "k": k,
        "query_copies_left_out": float(np.mean([len(c) for c in copies])),  # the query itself included
        "embed_seconds": embed_seconds,
        "rows": rows,
    }


def search_table(result: dict[str, Any]) -> str:
    """One row per item kind: memory, times, and agreement with the float top-10."""
    headers = [
        "items",
        "stored MB",
        "memory ratio",
        "topk verb ms",
        "kernel ms",
        "kernel speed-up",
        "batch ms/query",
        "batch peak temp MB",
        "top-10 overlap",
        "float top-10 in top-100",
    ]
    rows = [
        [
            r["kind"],
            f"{r['stored_mb']:.1f}",
            f"{r['memory_ratio']:.0f}x",
            f"{r['verb_ms']:.1f}",
            f"{r['kernel_ms']:.1f}",
            f"{r['kernel_speedup']:.1f}x",
            f"{r['batch_ms_per_query']:.1f}",
            f"{r['batch_peak_temporary_mb']:.0f}",
            f"{100 * r['top10_overlap_with_float']:.1f}%",
            f"{100 * r['float_top10_in_top100']:.1f}%",
        ]
        for r in result["rows"]
    ]
    return f"{result['items']:,} items, top-10, {result['queries']} queries\n\n" + common.markdown_table(headers, rows)


# --------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trained", default=None, help="model folder with a trained binary codebook")
    parser.add_argument("--base", default="default", help="the float model (default: the bundled default)")
    parser.add_argument("--parts", default="quality,search", help="quality, search (default: both), or dev")
    parser.add_argument("--dev-specs", default="", help="comma-separated encoder specs for the dev part")
    parser.add_argument("--bits", default=",".join(map(str, BITS)), help="bit counts (default 64,...,1024)")
    parser.add_argument("--cache", type=Path, default=WORK_DIR / "cache", help="the suite's embedding cache")
    parser.add_argument("--items", type=int, default=1_000_000, help="items searched (default 1,000,000)")
    parser.add_argument("--queries", type=int, default=100, help="queries timed (default 100)")
    parser.add_argument("--verb-queries", type=int, default=10, help="of those, timed through model.topk")
    parser.add_argument(
        "--simhash-all", action="store_true", help="SimHash at every bit count (default: above the float width)"
    )
    parser.add_argument(
        "--reuse", action="store_true", help="quality: keep earlier results of unchanged encoders in --out"
    )
    parser.add_argument(
        "--embedded",
        type=Path,
        default=WORK_DIR / "binary_search",
        help="folder keeping the search items' vectors and codes, so that a re-run only times (default benchmarks/out/binary_search)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", type=Path, default=common.data_dir(), help="shared data folder")
    parser.add_argument("--out", type=Path, default=common.RESULTS_DIR / "binary.json", help="JSON results file")
    args = parser.parse_args(argv)
    args.bits = tuple(int(b) for b in args.bits.split(","))
    parts = {p.strip() for p in args.parts.split(",") if p.strip()}
    if not parts or parts - {"quality", "search", "dev"}:
        parser.error(f"--parts takes quality, search or dev, got {args.parts!r}")
    args.dev_specs = [spec.strip() for spec in args.dev_specs.split(",") if spec.strip()]
    if "search" in parts and not args.trained:
        parser.error("the search part needs --trained FOLDER")
    if any(b % 8 for b in args.bits):
        parser.error("--bits must be multiples of 8 (the search slices whole bytes of the widest codes)")
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    common.check_data(args.data)
    command = shlex.join(["python", "benchmarks/binary.py", *(sys.argv[1:] if argv is None else argv)])
    payload: dict[str, Any] = {
        "command": command,
        "machine": common.machine_info(),
        "trained": args.trained,
        "trained_model": common.model_fingerprint(Path(args.trained)) if args.trained else None,
        "base": args.base,
        "cpu_busy_at_start": round(common.cpu_busy_fraction(), 3),
    }
    # Each part records the run that made it: a part kept from an earlier run keeps its own.
    run = {key: payload[key] for key in ("command", "cpu_busy_at_start")} | {"date": payload["machine"]["date"]}
    previous: dict[str, Any] = {}
    if args.out.is_file():  # keep the other part's results when only one part runs
        import json

        previous = json.loads(args.out.read_text(encoding="utf-8"))
        payload.update({key: previous[key] for key in PARTS if key in previous and key not in parts})
    if "quality" in parts:
        payload["quality"] = quality(args, previous.get("quality")) | {"run": run}
        print(quality_table(payload["quality"]) + "\n")
    if "search" in parts:
        payload["search"] = search(args) | {"run": run}
        print(search_table(payload["search"]))
    if "dev" in parts:
        payload["dev"] = dev(args) | {"run": run}
        print(payload["dev"]["table"])
    common.write_json(args.out.stem, payload, args.out.parent)
    return 0


if __name__ == "__main__":
    sys.exit(main())
