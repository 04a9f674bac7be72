"""Closed-form projections against litfit on re-splits of the train-allowed Quora groups.

`benchmarks/projection.py` compares the two tools on one split and one test set, where the test
gains (hundredths of a MAP@50 point) are smaller than the noise of one split. This script repeats
the comparison on several splits of the train-allowed data alone: the duplicate groups of the
Quora dev pairs, split by group 60 / 20 / 20 into train, val and a held-out part with each seed.
Both tools run their whole pipeline on train and val (as in `projection.py`), and the gain of each
is its held-out leave-one-out MAP@50 over the input vectors'. The eval-only Quora test groups are
not read.

Usage:
    python benchmarks/projection_resplits.py --inputs default --grids fast --seeds 1-8 --out /tmp/r.json
    python benchmarks/projection_resplits.py --merge /tmp/r1.json /tmp/r2.json

After a change to our pipeline alone, `--reuse-litfit FILE` copies litfit's rows (same input,
grid and seed) from an earlier results file instead of running litfit again: its code and the
splits are the same, and its full grid takes most of the time.
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common
import numpy as np
import projection

from lightembed_train.projection import FitReport, GroupedVectors, moments_of, solve, split_groups
from lightembed_train.projection.crosscheck import INPUT, Finalist, choose

logger = logging.getLogger("projection_resplits")

SPLIT = (0.6, 0.2, 0.2)


def seed_list(text: str) -> list[int]:
    """'1-8' or '1,2,5' as a list of seeds."""
    if "-" in text:
        first, last = (int(part) for part in text.split("-", 1))
        return list(range(first, last + 1))
    return [int(part) for part in text.split(",") if part.strip()]


def resplit_run(dev: GroupedVectors, grid: str, seed: int, litfit_row: dict[str, Any] | None) -> dict[str, Any]:
    """Both tools on one split: each one's held-out MAP@50 gain, validation score and choice
    (litfit's copied from `litfit_row` when given)."""
    train, val, held = split_groups(dev, SPLIT, seed)
    base = projection.test_scores(held, None)["MAP@50"]
    row: dict[str, Any] = {"seed": seed, "held_out_rows": len(held), "held_out_MAP@50": base}
    for tool, run in projection.RUNNERS.items():
        if tool == "litfit" and litfit_row is not None:
            if litfit_row["held_out_MAP@50"] != base:
                raise ValueError(f"seed {seed}: the reused file's held-out part differs from this split")
            row[tool] = {**litfit_row[tool], "reused": True}
            continue
        result = run(train, val, grid)
        gain = projection.test_scores(held, result["matrix"])["MAP@50"] - base
        row[tool] = {"gain": gain, "val_MAP@50": result["val_map"], "choice": result["choice"]}
        if tool == "lightembed":
            row[tool]["cross_check"] = result["cross_check"]
            for label, among in (("without_input", fitted_only), ("without_blends", without_blends)):
                matrix = choice_among(result["report"], among, train.join(val), grid)
                row[tool][f"gain_{label}"] = projection.test_scores(held, matrix)["MAP@50"] - base
    return row


def fitted_only(finalist: Finalist) -> bool:
    """The cross-check's first design: the search's finalists alone."""
    return finalist.recipe != INPUT and not finalist.recipe.finished


def without_blends(finalist: Finalist) -> bool:
    """The second: the search's finalists and the input vectors."""
    return not finalist.recipe.finished


def choice_among(report: FitReport, among: Callable[[Finalist], bool], pooled: GroupedVectors, grid: str) -> np.ndarray:
    """The matrix the cross-check would have chosen among the finalists that `among` keeps (a tie
    to the input), refitted on train + val as `fit_projection` does."""
    best = choose([finalist for finalist in report.checked if among(finalist)])
    if (best.recipe, best.width) == (report.recipe, report.dim):
        return report.projection.matrix
    moments = moments_of(pooled, projection.NEGATIVES if grid == "full" else 0)
    return solve(best.recipe, moments)[:, : best.width]


def earlier_rows(path: Path | None) -> dict[tuple[str, int], dict[str, Any]]:
    """{("input/grid", seed): row} of an earlier results file (empty without one)."""
    if path is None:
        return {}
    runs = json.loads(path.read_text(encoding="utf-8"))["runs"]
    return {(key, row["seed"]): row for key, rows in runs.items() for row in rows}


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean gains, the mean paired difference (ours - litfit) with its standard error, and wins."""
    ours = np.array([row["lightembed"]["gain"] for row in rows])
    theirs = np.array([row["litfit"]["gain"] for row in rows])
    difference = ours - theirs
    error = float(difference.std(ddof=1) / np.sqrt(len(rows))) if len(rows) > 1 else float("nan")
    out = {
        "splits": len(rows),
        "lightembed_mean_gain": float(ours.mean()),
        "litfit_mean_gain": float(theirs.mean()),
        "mean_difference": float(difference.mean()),
        "standard_error": error,
        "lightembed_at_least_litfit": int((difference >= 0).sum()),
    }
    for label in ("without_input", "without_blends"):
        if all(f"gain_{label}" in row["lightembed"] for row in rows):
            out[f"lightembed_mean_gain_{label}"] = float(np.mean([r["lightembed"][f"gain_{label}"] for r in rows]))
    if "lightembed_mean_gain_without_input" in out:
        out["input_kept"] = sum(row["lightembed"]["choice"].startswith(f"{INPUT} ") for row in rows)
        out["blend_chosen"] = sum("input_blend(" in row["lightembed"]["choice"] for row in rows)
    return out


def results_table(payload: dict[str, Any]) -> str:
    """One row per input and grid."""
    rows = []
    for key, entry in payload["runs"].items():
        s = summary(entry)
        rows.append(
            [
                *key.split("/"),
                str(s["splits"]),
                f"{s['lightembed_mean_gain']:+.3f}",
                f"{s['litfit_mean_gain']:+.3f}",
                f"{s['mean_difference']:+.3f} ± {s['standard_error']:.3f}",
                f"{s['lightembed_at_least_litfit']} of {s['splits']}",
                *(
                    f"{s[f'lightembed_mean_gain_{label}']:+.3f}" if f"lightembed_mean_gain_{label}" in s else ""
                    for label in ("without_input", "without_blends")
                ),
                str(s.get("input_kept", "")),
                str(s.get("blend_chosen", "")),
            ]
        )
    headers = ["input", "grid", "splits", "lightembed gain", "litfit gain", "difference ± s.e.", "ours >= litfit"]
    headers += ["lightembed gain, search's finalists only", "lightembed gain, finalists and the input"]
    headers += ["input kept", "blend chosen"]
    return common.markdown_table(headers, rows)


def merge(paths: list[Path], out: Path) -> int:
    """Join result files (runs of the same input and grid are concatenated)."""
    payloads = [json.loads(path.read_text(encoding="utf-8")) for path in paths]
    merged = {**payloads[0], "merged_from": [p["command"] for p in payloads], "runs": {}}
    for payload in payloads:
        for key, rows in payload["runs"].items():
            merged["runs"].setdefault(key, []).extend(rows)
    merged["table"] = results_table(merged)
    common.write_json(out.stem, merged, out.parent)
    print(merged["table"])
    return 0


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", default="minilm,default", help="comma-separated: minilm, default")
    parser.add_argument("--grids", default="fast", help="comma-separated: fast, full")
    parser.add_argument("--seeds", type=seed_list, default=seed_list("1-8"), help="split seeds: '1-8' or '1,3'")
    parser.add_argument("--teacher-cache", type=Path, default=Path("/work/cache/teacher"), help="teacher cache")
    parser.add_argument("--data", type=Path, default=common.data_dir(), help="shared data folder")
    parser.add_argument("--threads", type=int, default=1, help="torch and BLAS threads (default 1)")
    parser.add_argument("--out", type=Path, default=common.RESULTS_DIR / "projection_resplits.json")
    parser.add_argument("--merge", nargs="+", type=Path, help="only combine these result files into --out")
    parser.add_argument("--reuse-litfit", type=Path, help="take litfit's rows from this earlier results file")
    args = parser.parse_args(argv)
    if args.merge:
        return merge(args.merge, args.out)
    projection.limit_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    common.check_data(args.data)
    command = shlex.join(["python", "benchmarks/projection_resplits.py", *(sys.argv[1:] if argv is None else argv)])
    groups = projection.quora_groups(args.data, "dev")
    names = [s.strip() for s in args.inputs.split(",") if s.strip()]
    grids = [s.strip() for s in args.grids.split(",") if s.strip()]
    reused = earlier_rows(args.reuse_litfit)
    missing = [f"{n}/{g} seed {s}" for n in names for g in grids for s in args.seeds if (f"{n}/{g}", s) not in reused]
    if args.reuse_litfit and missing:
        parser.error(f"--reuse-litfit: {args.reuse_litfit} has no row for {', '.join(missing)}")
    payload: dict[str, Any] = {
        "command": command,
        "protocol": f"Quora dev duplicate groups ({len(groups)}) split {SPLIT} by group per seed; test groups unused",
        "machine": common.machine_info(),
        "runs": {},
    }
    for name in names:
        dev = projection.grouped(projection.embed(name, [t for g in groups for t in g], args.teacher_cache), groups)
        for grid in grids:
            key = f"{name}/{grid}"
            rows = payload["runs"].setdefault(key, [])
            for seed in args.seeds:
                rows.append(resplit_run(dev, grid, seed, reused.get((key, seed))))
                logger.info("%s %s seed %d: %s", name, grid, seed, rows[-1])
                common.write_json(args.out.stem, {**payload, "table": results_table(payload)}, args.out.parent)
    print(results_table(payload))
    return 0


if __name__ == "__main__":
    sys.exit(main())
