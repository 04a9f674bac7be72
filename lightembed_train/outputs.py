"""Where training commands write: checked before any data is read, so a bad path never costs a run or a file."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lightembed.folder import check_model_target

OUTPUT_OPTIONS = ("out", "transform", "report", "plot")  # the options that name files or folders to write
PLOT_SUFFIXES = (".png", ".pdf", ".svg", ".jpg", ".jpeg")


def check_outputs(args: argparse.Namespace, *, folder: bool) -> None:
    """Fail early when the outputs of a command cannot be written as asked.

    `--out` is a model folder when `folder` (new, empty, or a lightembed model folder, whose files
    are replaced), else a file; the other outputs are files. No output may be another output or a
    file another option reads.
    """
    outputs = {name: Path(value) for name in OUTPUT_OPTIONS if (value := getattr(args, name, None)) is not None}
    for name, path in outputs.items():
        _check_path(path, folder=folder and name == "out")
    if folder and "out" in outputs:
        check_model_target(outputs["out"])
    plot = outputs.get("plot")
    if plot is not None and plot.suffix.lower() not in PLOT_SUFFIXES:
        raise ValueError(f"--plot {plot}: give a {', '.join(PLOT_SUFFIXES)} file")
    named, inputs = list(outputs.items()), list(input_files(args))
    for i, (name, path) in enumerate(named):
        for other, other_path in named[:i]:
            if os.path.realpath(path) == os.path.realpath(other_path):
                raise ValueError(f"--{name} {path}: is also the --{other} output")
        for option, source in inputs:
            if path.exists() and os.path.samefile(path, source):
                raise ValueError(f"--{name} {path}: is the input --{option.replace('_', '-')}; write elsewhere")


def described_inputs(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Each input file an option names, with its line count and sha256, for a run's provenance."""
    from .distill import describe_corpus

    return [{"option": f"--{name.replace('_', '-')}", **describe_corpus(path)} for name, path in input_files(args)]


def write_json(path: str | Path, value: Any) -> None:
    """A JSON report, its folder made if missing (as every other output's)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=2) + "\n", encoding="utf-8")


def _check_path(target: Path, *, folder: bool) -> None:
    """A folder output must not be a file, a file output not a folder, and no file may stand where a folder must."""
    if folder and target.exists() and not target.is_dir():
        raise ValueError(f"{target}: exists and is not a folder; the output is a model folder")
    if not folder and target.is_dir():
        raise ValueError(f"{target}: is a folder; the output is a file")
    parent = next((p for p in target.absolute().parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise ValueError(f"{target}: {parent} is a file, so nothing can be written under it")


def input_files(args: argparse.Namespace) -> Iterator[tuple[str, Path]]:
    """(option, path) of each existing file another option names (folders, such as a base model, aside)."""
    for name, value in vars(args).items():
        if name in OUTPUT_OPTIONS:
            continue
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, (str, Path)) and item and Path(item).is_file():
                yield name, Path(item)
