"""Closed-form projections on Quora duplicate questions: lightembed_train.projection against litfit.

Both tools get identical inputs and splits:

- train / val: the duplicate groups of the Quora dev pairs (train-allowed; union-find over the
  duplicate pairs), split by group 75 / 25 with seed 0;
- test: the Quora test groups, scored exactly as the suite's "Quora groups" task (eval only,
  never used to choose anything): leave-one-out MAP@50 and R@1 over all test-group texts with
  `lightembed_train.evaluation.duplicates.leave_one_out`.

Inputs: all-MiniLM-L6-v2 sentence embeddings (the teacher, cached in --teacher-cache) and the
bundled default lightembed model. For each input and each grid size, both tools run their
whole pipeline: statistics of the train pairs, a width scan, the grid scored on val, the best
(recipe, width) refitted on train + val. litfit runs as its README shows (`compute_stats`, or
`compute_all_stats` with its hard negatives for the full grid, `find_dim_range`,
`generate_fast_projections` / `generate_all_projections`, `evaluate_projections`, the best
(key, width) on val, statistics recomputed on train + val). Ours is `fit_projection` with
`grid="fast"`, or `grid="full", negatives=3`. The wall time covers exactly that (embedding and
test scoring excluded); the CPU time of the process over the same span is recorded too, since
on a shared machine it shows the work done better than the wall time does. The runs alternate tool by tool, so a slow phase of the shared machine
hits both; each fast run is repeated `--repeats` times with the order swapped. The first run
of each tool also gets 95% intervals for its test gain and for the difference between the
tools, from a paired bootstrap that resamples whole test groups.

Our projections are written to --save-dir (transform files, and the default model with the
fast projection baked in) for the suite run that checks what they do to the other tasks:

    python benchmarks/quality.py --cache /work/cache/eval-dev \\
        --models minilm,minilm+benchmarks/out/projection/quora-minilm-fast.safetensors,...

Usage:
    python benchmarks/projection.py --out benchmarks/results/projection.json
    # or one process per input, then one file:
    python benchmarks/projection.py --inputs minilm --out /tmp/p-minilm.json
    python benchmarks/projection.py --inputs default --out /tmp/p-default.json
    python benchmarks/projection.py --merge /tmp/p-minilm.json /tmp/p-default.json --out benchmarks/results/projection.json
    # (runs of one input from several files, e.g. its fast and its full grid, are concatenated)
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import common
import numpy as np
import torch

from lightembed.scoring import unit_rows
from lightembed_train.datasets import read_labelled_pairs
from lightembed_train.evaluation.duplicates import leave_one_out, union_find_groups
from lightembed_train.projection import GroupedVectors, RetrievalScorer, fit_projection, split_groups

logger = logging.getLogger("projection")

SPLIT = (0.75, 0.25)
SEED = 0
NEGATIVES = 3  # hard negatives per item for the full grids (litfit's compute_all_stats default)
WORK_DIR = common.REPO_ROOT / "benchmarks" / "out" / "projection"


def quora_groups(data: Path, split: str) -> list[list[str]]:
    """Duplicate groups (union-find over the duplicate pairs) of a Quora BiMPM split."""
    pairs = read_labelled_pairs(data / "quora_pairs_bimpm" / f"{split}.txt")
    return union_find_groups([(a, b) for a, b, label in zip(pairs.texts1, pairs.texts2, pairs.scores) if label > 0])


def grouped(vectors: np.ndarray, groups: list[list[str]]) -> GroupedVectors:
    """Rows in group order with their group index."""
    return GroupedVectors(vectors, np.repeat(np.arange(len(groups)), [len(g) for g in groups]))


def embed(name: str, texts: list[str], teacher_cache: Path) -> np.ndarray:
    """The input's vectors of `texts` (unit rows)."""
    if name == "default":
        import lightembed

        return lightembed.load().embed(texts)
    if name == "minilm":
        from lightembed_train.targets import teacher_embeddings
        from lightembed_train.teacher import Teacher

        return unit_rows(teacher_embeddings(Teacher(), texts, cache_dir=teacher_cache, progress=False))
    raise ValueError(f"unknown input {name!r} (minilm, default)")


# --------------------------------------------------------------------------- the two pipelines
def run_litfit(train: GroupedVectors, val: GroupedVectors, grid: str) -> dict[str, Any]:
    """litfit's pipeline as its README shows it; returns the final matrix, the choice and the seconds."""
    import litfit

    def labelled(part: GroupedVectors, tag: str, offset: int) -> tuple[torch.Tensor, list[int], dict[int, str]]:
        ids = list(range(offset, offset + len(part)))
        return torch.from_numpy(part.vectors), ids, {i: f"{tag}{g}" for i, g in zip(ids, part.groups.tolist())}

    tr_x, tr_ids, tr_groups = labelled(train, "t", 0)
    va_x, va_ids, va_groups = labelled(val, "v", len(train))
    id_to_group = {**tr_groups, **va_groups}
    start, cpu = time.perf_counter(), time.process_time()
    if grid == "full":
        stats, negatives = litfit.compute_all_stats(tr_x, tr_ids, id_to_group)
        candidates = litfit.generate_all_projections(stats, negatives, verbose=False)
    else:
        stats, negatives = litfit.compute_stats(tr_x, tr_ids, id_to_group), None
        candidates = litfit.generate_fast_projections(stats, verbose=False)
    fractions = litfit.find_dim_range(stats, va_x, va_ids, id_to_group, verbose=False)
    results, _ = litfit.evaluate_projections(
        candidates, va_x, va_ids, id_to_group, dim_fractions=fractions, verbose=False
    )
    key, width, val_map = max(
        ((k, n, scores["MAP@50"]) for k, by_width in results.items() for n, scores in by_width.items()),
        key=lambda item: item[2],
    )
    both_x, both_ids = torch.cat([tr_x, va_x]), tr_ids + va_ids
    if grid == "full":
        stats, negatives = litfit.compute_all_stats(both_x, both_ids, id_to_group)
        refit = litfit.generate_all_projections(stats, negatives, verbose=False, lazy=True)
    else:
        refit = litfit.generate_fast_projections(
            litfit.compute_stats(both_x, both_ids, id_to_group), verbose=False, lazy=True
        )
    matrix = refit[key].cpu().numpy()
    matrix = matrix if width is None else matrix[:, :width]
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    return {
        "matrix": matrix,
        "seconds": seconds,
        "cpu_seconds": cpu,
        "candidates": len(candidates),
        "choice": " ".join(key) + f" @ {matrix.shape[1]}",
        "val_map": 100 * val_map,
        "dim_fractions": list(fractions),
    }


def run_ours(train: GroupedVectors, val: GroupedVectors, grid: str) -> dict[str, Any]:
    """`fit_projection` on the same splits; returns the final matrix, the choice and the seconds."""
    start, cpu = time.perf_counter(), time.process_time()
    report = fit_projection(train, val, grid=grid, negatives=NEGATIVES if grid == "full" else 0, device="cpu")
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    return {
        "matrix": report.projection.matrix,
        "seconds": seconds,
        "cpu_seconds": cpu,
        "candidates": len(report.search.trials),
        "choice": f"{report.recipe} @ {report.dim}",
        "val_map": 100 * report.scores["val"].map_at_k,
        "dims_searched": list(report.scan.dims),
        "zoomed": [f"{t.recipe} @ {t.best[0]}" for t in report.search.zoomed if t.best],
        "cross_check": [finalist.to_json() for finalist in report.checked],
        "stage_seconds": {k: round(v, 2) for k, v in report.seconds.items()},
        "report": report,
    }


RUNNERS: dict[str, Callable[[GroupedVectors, GroupedVectors, str], dict[str, Any]]] = {
    "litfit": run_litfit,
    "lightembed": run_ours,
}


def compare(test: GroupedVectors, ours: np.ndarray, theirs: np.ndarray) -> dict[str, Any]:
    """Test MAP@50 gains of both projections over the input and of ours over litfit's, with 95% intervals."""
    scorer = RetrievalScorer(test.vectors, test.groups, device="cpu")
    groups = test.groups[scorer.query_rows]
    base, mine, litfit = (scorer.per_query(m)[0] for m in (None, ours, theirs))
    out = {}
    for label, delta in (
        ("ours - input", mine - base),
        ("litfit - input", litfit - base),
        ("ours - litfit", mine - litfit),
    ):
        out[label] = {
            "MAP@50": 100 * float(delta.mean()),
            "95% interval": [100 * v for v in common.bootstrap_interval(delta, groups, seed=SEED)],
        }
    return out


def test_scores(test: GroupedVectors, matrix: np.ndarray | None) -> dict[str, float]:
    """The suite's Quora-groups scores (x100) of the test rows, projected by `matrix` when given."""
    vectors = test.vectors if matrix is None else test.vectors @ matrix
    mean_ap, recall = leave_one_out(unit_rows(np.ascontiguousarray(vectors, dtype=np.float32)), test.groups)
    return {"MAP@50": 100 * mean_ap, "R@1": 100 * recall}


def limit_threads(threads: int) -> None:
    """Run torch and the BLAS libraries on `threads` threads (for both tools alike)."""
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(threads)
    threadpool_limits(threads)


def shown_path(path: Path) -> str:
    """`path` relative to the repository when inside it, else absolute (for --save-dir elsewhere)."""
    path = path.resolve()
    return str(path.relative_to(common.REPO_ROOT)) if path.is_relative_to(common.REPO_ROOT) else str(path)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", default="minilm,default", help="comma-separated: minilm, default")
    parser.add_argument("--grids", default="fast,full", help="comma-separated: fast, full")
    parser.add_argument(
        "--tools",
        default="litfit,lightembed",
        help="comma-separated: litfit, lightembed (one alone: its runs only, no comparison; --merge joins files)",
    )
    parser.add_argument("--repeats", type=int, default=2, help="runs of each fast pipeline (order swapped)")
    parser.add_argument("--teacher-cache", type=Path, default=Path("/work/cache/teacher"), help="teacher cache")
    parser.add_argument("--save-dir", type=Path, default=WORK_DIR, help="where our projections are written")
    parser.add_argument("--out", type=Path, default=common.RESULTS_DIR / "projection.json", help="results JSON")
    parser.add_argument("--data", type=Path, default=common.data_dir(), help="shared data folder")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="limit torch and BLAS threads for both tools (default: the libraries' own defaults); on a machine "
        "that others load, 1 avoids threads spinning on busy cores",
    )
    parser.add_argument(
        "--merge",
        nargs="+",
        type=Path,
        help="only combine these result files into --out (runs of one input concatenated)",
    )
    args = parser.parse_args(argv)
    if args.merge:
        return merge(args.merge, args.out)
    if args.threads is not None:
        limit_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    command = shlex.join(["python", "benchmarks/projection.py", *(sys.argv[1:] if argv is None else argv)])
    tools = {s.strip() for s in args.tools.split(",") if s.strip()}
    if not tools or tools - set(RUNNERS):
        parser.error(f"--tools: expected some of {sorted(RUNNERS)}, got {args.tools!r}")
    common.check_data(args.data)
    args.save_dir.mkdir(parents=True, exist_ok=True)

    dev_groups, test_groups = quora_groups(args.data, "dev"), quora_groups(args.data, "test")
    payload: dict[str, Any] = {
        "command": command,
        "protocol": {
            "train_val": f"Quora dev duplicate groups ({len(dev_groups)}), split {SPLIT} by group, seed {SEED}",
            "test": f"Quora test duplicate groups ({len(test_groups)}, {sum(map(len, test_groups))} texts)",
            "negatives_full_grid": NEGATIVES,
        },
        "machine": common.machine_info(),
        "threads": args.threads or "library defaults",
        "torch_threads": torch.get_num_threads(),
        "inputs": {},
    }
    for name in [s.strip() for s in args.inputs.split(",") if s.strip()]:
        dev_texts = [t for g in dev_groups for t in g]
        test_texts = [t for g in test_groups for t in g]
        logger.info("embedding %d dev and %d test texts with %s", len(dev_texts), len(test_texts), name)
        dev = grouped(embed(name, dev_texts, args.teacher_cache), dev_groups)
        test = grouped(embed(name, test_texts, args.teacher_cache), test_groups)
        train, val = split_groups(dev, SPLIT, SEED)
        base = test_scores(test, None)
        entry: dict[str, Any] = {
            "dim": dev.dim,
            "train_rows": len(train),
            "val_rows": len(val),
            "test": base,
            "runs": [],
            "comparisons": {},
        }
        for grid in [s.strip() for s in args.grids.split(",") if s.strip()]:
            repeats = args.repeats if grid == "fast" else 1
            first: dict[str, np.ndarray] = {}
            for repeat in range(repeats):
                order = ["litfit", "lightembed"] if repeat % 2 == 0 else ["lightembed", "litfit"]
                for tool in [t for t in order if t in tools]:
                    gc.collect()
                    busy = common.cpu_busy_fraction(0.5)
                    logger.info("%s: %s %s grid (run %d)", name, tool, grid, repeat + 1)
                    result = RUNNERS[tool](train, val, grid)
                    scores = test_scores(test, result["matrix"])
                    run = {
                        "tool": tool,
                        "grid": grid,
                        "repeat": repeat,
                        "cpu_busy_before": round(busy, 2),
                        "seconds": round(result["seconds"], 2),
                        "cpu_seconds": round(result["cpu_seconds"], 2),
                        "candidates": result["candidates"],
                        "choice": result["choice"],
                        "val_MAP@50": round(result["val_map"], 3),
                        "test": scores,
                        "test_gain_MAP@50": scores["MAP@50"] - base["MAP@50"],
                        **{
                            k: result[k]
                            for k in ("dims_searched", "zoomed", "cross_check", "stage_seconds", "dim_fractions")
                            if k in result
                        },
                    }
                    entry["runs"].append(run)
                    if repeat == 0:
                        first[tool] = result["matrix"]
                        np.save(args.save_dir / f"matrix-{name}-{grid}-{tool}.npy", result["matrix"])
                    if len(first) == 2 and grid not in entry["comparisons"]:
                        entry["comparisons"][grid] = compare(test, first["lightembed"], first["litfit"])
                        logger.info("%s %s: %s", name, grid, entry["comparisons"][grid])
                    logger.info("%s", {k: v for k, v in run.items() if k != "stage_seconds"})
                    if tool == "lightembed" and repeat == 0:
                        projection = result["report"].projection
                        saved = projection.save(args.save_dir / f"quora-{name}-{grid}.safetensors")
                        run["saved"] = shown_path(saved)
                        if name == "default":
                            folder = projection.bake(None, args.save_dir / f"default-quora-{grid}")
                            run["baked"] = shown_path(folder)
                    payload["inputs"][name] = entry
                    common.write_json(args.out.stem, {**payload, "table": results_table(payload)}, args.out.parent)
    print(results_table(payload))
    return 0


def results_table(payload: dict[str, Any]) -> str:
    """Every run of every input as a markdown table."""
    rows = []
    for name, entry in payload["inputs"].items():
        base = entry["test"]["MAP@50"]
        for run in entry["runs"]:
            rows.append(
                [
                    name,
                    run["grid"],
                    run["tool"],
                    str(run["candidates"]),
                    f"{run['val_MAP@50']:.3f}",
                    f"{base:.2f}",
                    f"{run['test']['MAP@50']:.2f}",
                    f"{run['test_gain_MAP@50']:+.2f}",
                    f"{run['test']['R@1']:.2f}",
                    f"{run['seconds']:.1f}",
                    f"{run['cpu_seconds']:.1f}",
                    run["choice"],
                ]
            )
    headers = ["input", "grid", "tool", "recipes", "val MAP@50", "test MAP@50 before", "after", "gain", "R@1 after"]
    return common.markdown_table([*headers, "wall s", "CPU s", "chosen"], rows)


def merge(paths: list[Path], out: Path) -> int:
    """Combine result files of separate runs (e.g. one process per input) into `out`."""
    payloads = [json.loads(path.read_text(encoding="utf-8")) for path in paths]
    merged = {**payloads[0], "merged_from": [p["command"] for p in payloads], "inputs": {}}
    for payload in payloads:
        for name, entry in payload["inputs"].items():
            if name not in merged["inputs"]:
                merged["inputs"][name] = {
                    **entry,
                    "runs": list(entry["runs"]),
                    "comparisons": dict(entry["comparisons"]),
                }
                continue
            known = merged["inputs"][name]
            if known["test"] != entry["test"]:
                raise ValueError(f"{name}: the files disagree on the input's own test scores (different inputs?)")
            known["runs"].extend(entry["runs"])
            known["comparisons"].update(entry["comparisons"])
    merged["table"] = results_table(merged)
    common.write_json(out.stem, merged, out.parent)
    print(merged["table"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
