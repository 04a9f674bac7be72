"""`lightembed-train project`: read labelled items, fit a projection, export it, print the results.

Items are texts (with `--model`, which embeds them) or ids of the rows of an embeddings
`.npy` file (with `--embeddings`; ids are the row numbers, or the lines of `--ids`).

- `--groups FILE`: one item per line, `ITEM<TAB>GROUP`.
- `--pairs FILE`: one positive pair per line, `ITEM<TAB>ITEM`, optionally `<TAB>LABEL`: lines
  whose label is 0 are skipped, so labelled pair files (e.g. Quora's) work as they are.
"""

from __future__ import annotations

import argparse
import logging
import math
from pathlib import Path

from ..checks import non_negative_int, numbered_lines, read_npy
from ..device import resolve_device
from ..outputs import check_outputs, described_inputs, write_json
from .crosscheck import FOLDS, TOP
from .data import GroupedVectors, check_fractions, from_groups, from_pairs
from .fit import FitReport, check_options, fit_projection, three_way_split

logger = logging.getLogger(__name__)
BAKED_DTYPE = "float16"  # codebook dtype of a model folder with the projection baked in


def read_table(path: str | Path, columns: tuple[int, ...], what: str) -> list[tuple[int, list[str]]]:
    """(line number, fields) of tab-separated lines with `columns` allowed field counts (blank lines skipped)."""
    rows = []
    for number, line in numbered_lines(path, what):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) not in columns:
            wanted = " or ".join(str(c) for c in columns)
            raise ValueError(f"{path}:{number}: expected {wanted} tab-separated fields, got {len(fields)}")
        rows.append((number, fields))
    if not rows:
        raise ValueError(f"{path}: no {what} in the file")
    return rows


def read_groups(path: str | Path) -> dict[str, str]:
    """`ITEM<TAB>GROUP` lines as {item: group}; an item listed twice with two groups is an error."""
    groups: dict[str, str] = {}
    for number, (item, group) in read_table(path, (2,), "groups"):
        if groups.setdefault(item, group) != group:
            raise ValueError(f"{path}:{number}: item {item!r} is in two groups ({groups[item]!r} and {group!r})")
    return groups


def read_pairs(path: str | Path) -> list[tuple[str, str]]:
    """`ITEM<TAB>ITEM[<TAB>LABEL]` lines as positive pairs (label-0 lines and self-pairs skipped)."""
    pairs, same = [], 0
    for number, fields in read_table(path, (2, 3), "pairs"):
        if len(fields) == 3:
            try:
                label = float(fields[2])
            except ValueError:
                label = math.nan
            if not math.isfinite(label):
                raise ValueError(f"{path}:{number}: label {fields[2]!r} is not a finite number")
            if label <= 0:
                continue
        if fields[0] == fields[1]:
            same += 1
            continue
        pairs.append((fields[0], fields[1]))
    if same:
        logger.warning("%s: skipped %d lines that pair an item with itself", path, same)
    if not pairs:
        raise ValueError(f"{path}: no positive pairs of two different items")
    return pairs


def _read_ids(path: str) -> list[str]:
    """One id per line; blank lines at the end are ignored, a blank line before them is an error."""
    ids = [line for _, line in numbered_lines(path, "ids")]
    while ids and not ids[-1].strip():
        ids.pop()
    blank = next((number for number, item in enumerate(ids, 1) if not item.strip()), None)
    if blank is not None:
        raise ValueError(f"{path}:{blank}: blank line where an id was expected")
    return ids


def load_items(args: argparse.Namespace) -> tuple[GroupedVectors, str]:
    """The labelled vectors the arguments describe, and a word for what the items are."""
    import lightembed

    # The vectors or the model first, so that a bad one is named before the labels are read.
    vectors = read_npy(args.embeddings, "embeddings", mmap=True) if args.embeddings else None
    model = lightembed.load(args.model) if vectors is None else None
    groups = read_groups(args.groups) if args.groups else None
    pairs = read_pairs(args.pairs) if args.pairs else None
    if model is None:
        ids = _read_ids(args.ids) if args.ids else [str(row) for row in range(len(vectors))]
        what = "ids"
    else:
        if groups is not None:
            items = list(groups)
        else:
            items = list(dict.fromkeys(text for pair in pairs or () for text in pair))
        logger.info("embedding %d texts with %s", len(items), model.path)
        vectors, ids, what = model.embed(items, progress=not args.quiet), items, "texts"
    if groups is not None:
        return from_groups(vectors, ids, groups, allow_singletons=args.allow_singletons), what
    return from_pairs(vectors, ids, pairs, allow_singletons=args.allow_singletons), what  # type: ignore[arg-type]


def run_project(args: argparse.Namespace, command: str) -> int:
    """The handler of `lightembed-train project`."""
    if bool(args.model) == bool(args.embeddings):
        raise ValueError("give either --model (texts are embedded) or --embeddings FILE.npy (items are row ids)")
    if bool(args.groups) == bool(args.pairs):
        raise ValueError("give either --groups FILE or --pairs FILE")
    if args.ids and not args.embeddings:
        raise ValueError("--ids goes with --embeddings")
    for option in ("dtype", "transform"):
        if args.embeddings and getattr(args, option) is not None:
            raise ValueError(f"--{option} goes with --model; with --embeddings, --out is the transform file")
    check_outputs(args, folder=bool(args.model))
    resolve_device(args.device)
    split = _fractions(args.split)
    check_fractions(split)
    check_options(
        negatives=args.negatives,
        folds=args.folds,
        max_trials=args.max_trials,
        time_limit=args.time_limit,
        grid=args.grid,
    )
    if args.dim is not None and args.dim < 1:
        raise ValueError(f"--dim must be at least 1, got {args.dim}")
    data, what = load_items(args)
    train, val, test = three_way_split(data, split, args.seed)
    logger.info(
        "%d %s in %d groups: %d train, %d val, %d test rows",
        len(data),
        what,
        data.n_groups,
        len(train),
        len(val),
        len(test) if test is not None else 0,
    )
    report = fit_projection(
        train,
        val,
        test,
        grid=args.grid,
        negatives=args.negatives,
        dim=args.dim,
        max_trials=args.max_trials,
        time_limit=args.time_limit,
        folds=args.folds,
        seed=args.seed,
        device=args.device,
        progress=not args.quiet,
    )
    report.projection.info["command"] = command
    report.projection.info["input_files"] = described_inputs(args)
    written = _export(report, args)
    tried = f"{len(report.search.trials)} recipes tried"
    if report.kept_input:
        print(f"best: the input vectors ({tried}, none better over the folds); the output keeps their cosines")
    else:
        print(f"best: {report.recipe} at {report.dim} of {data.dim} dims ({tried})")
    print(report.table())
    for line in written:
        print(line)
    return 0


def _fractions(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise ValueError(f"--split must be two or three comma-separated fractions, got {text!r}") from None
    if len(values) not in (2, 3):
        raise ValueError(f"--split must be two or three comma-separated fractions, got {text!r}")
    return values


def _export(report: FitReport, args: argparse.Namespace) -> list[str]:
    projection = report.projection
    written = []
    if args.model:
        card = _card(report, args)
        folder = projection.bake(args.model, args.out, dtype=args.dtype or BAKED_DTYPE, card=card)
        written.append(f"model folder: {folder}")
    if args.embeddings or args.transform:
        path = projection.save(args.out if args.embeddings else args.transform)
        written.append(f"transform file: {path}")
    if args.report:
        write_json(args.report, report.to_json())
        written.append(f"report: {args.report}")
    return written


def _card(report: FitReport, args: argparse.Namespace) -> str:
    return (
        f"# Projected lightembed model\n\nThe codebook of `{args.model}` multiplied by a projection fitted "
        f"with `lightembed-train project`:\n\n```bash\n{report.projection.info['command']}\n```\n\n"
        f"Recipe: `{report.recipe}`, {report.dim} dims. Leave-one-out retrieval within the "
        f"groups of each split (MAP@50 and R@1, percent):\n\n{report.table()}\n"
    )


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of `lightembed-train project`."""
    source = p.add_argument_group("what to fit")
    source.add_argument("--model", help="a model (folder, or 'default') that embeds the texts of the groups/pairs file")
    source.add_argument("--embeddings", help="a .npy [n, d] of vectors from any source; items are their row ids")
    source.add_argument("--ids", help="with --embeddings: one id per line for the rows (default: 0..n-1)")
    source.add_argument("--groups", help="TSV lines ITEM<TAB>GROUP")
    source.add_argument("--pairs", help="TSV lines ITEM<TAB>ITEM[<TAB>LABEL] (label-0 lines skipped)")
    source.add_argument("--allow-singletons", action="store_true", help="keep groups of one item as distractors")
    output = p.add_argument_group("output")
    output.add_argument(
        "--out", required=True, help="with --model: the new model folder; with --embeddings: the transform file"
    )
    output.add_argument("--transform", help="with --model: also write the projection as a transform file here")
    output.add_argument("--report", help="write every trial and score as JSON here")
    output.add_argument("--dim", type=int, default=None, help="output width (default: the best width on val)")
    output.add_argument(
        "--dtype", choices=("float16", "float32", "int8"), help=f"with --model: baked codebook (default {BAKED_DTYPE})"
    )
    search = p.add_argument_group("search")
    search.add_argument("--grid", choices=("fast", "full"), default="fast", help="about 40 or several hundred recipes")
    search.add_argument("--negatives", type=int, default=0, help="hard negatives mined per item (default 0: none)")
    search.add_argument("--split", default="0.7,0.15,0.15", help="train,val[,test] fractions of the groups")
    search.add_argument("--max-trials", type=int, default=None, help="stop the search after this many recipes")
    search.add_argument("--time-limit", type=float, default=None, help="stop the search after this many seconds")
    search.add_argument(
        "--folds",
        type=non_negative_int,
        default=FOLDS,
        help=f"choose among the {TOP} best recipes on val, the input vectors and blends of the best recipe with "
        f"the input by their mean score over this many folds of train + val (default {FOLDS}; 0: keep the best "
        "on val)",
    )
    search.add_argument("--seed", type=non_negative_int, default=0, help="split and search order seed (default 0)")
    search.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
