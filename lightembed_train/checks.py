"""Checks of training settings and input files: the first bad setting or line is named before any work starts."""

from __future__ import annotations

import argparse
import math
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np


def require_counts(settings: Any, names: Iterable[str], minimum: int = 1) -> None:
    """Each named setting is an integer of at least `minimum`."""
    for name in names:
        value = getattr(settings, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f"{name} must be an integer of at least {minimum}, got {value!r}")


def require_positive(settings: Any, names: Iterable[str]) -> None:
    """Each named setting is a finite number above 0."""
    for name in names:
        value = getattr(settings, name)
        if not _finite(value) or not value > 0:
            raise ValueError(f"{name} must be a positive number, got {value!r}")


def require_non_negative(settings: Any, names: Iterable[str]) -> None:
    """Each named setting is a finite number of at least 0."""
    for name in names:
        value = getattr(settings, name)
        if not _finite(value) or not value >= 0:
            raise ValueError(f"{name} must be a number of at least 0, got {value!r}")


def require_unit_interval(settings: Any, names: Iterable[str]) -> None:
    """Each named setting lies in [0, 1)."""
    for name in names:
        value = getattr(settings, name)
        if not _finite(value) or not 0 <= value < 1:
            raise ValueError(f"{name} must be in [0, 1), got {value!r}")


def numbered_lines(path: str | Path, what: str) -> Iterator[tuple[int, str]]:
    """(line number, line without its line break) of a UTF-8 text file (a byte-order mark is dropped)."""
    path = Path(path)
    _check_regular_file(path, what)
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, 1):
            try:
                line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError:
                raise ValueError(f"{path}:{number}: not UTF-8 text") from None
            yield number, line.rstrip("\n").rstrip("\r")


def finite_loss(value: float, epoch: int) -> float:
    """A training step's loss; a ValueError (before anything is written) when training diverged."""
    if not math.isfinite(value):
        raise ValueError(
            f"the training loss became {value} in epoch {epoch}: lower the learning rate (nothing was written)"
        )
    return value


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def non_negative_int(text: str) -> int:
    """An argparse type: an integer of at least 0 (seeds)."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer of at least 0, got {text!r}")
    return value


def read_npy(path: str | Path, what: str, *, mmap: bool = False) -> np.ndarray:
    """The array of a `.npy` file (memory-mapped if asked; never unpickled), or an error naming the file."""
    path = Path(path)
    _check_regular_file(path, what)
    with path.open("rb") as handle:
        if handle.read(6) != b"\x93NUMPY":
            raise ValueError(f"{path}: not a .npy file (the {what} must be a numpy array saved with np.save)")
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise ValueError(f"{path}: not a readable .npy array ({exc})") from None


def _check_regular_file(path: Path, what: str) -> None:
    """A missing path, a folder or a pipe named as such: inputs are files (some are read twice, for the model card)."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: {what} file not found")
    if path.is_dir():
        raise ValueError(f"{path}: is a folder, expected a {what} file")
    if not path.is_file():
        raise ValueError(f"{path}: not a regular file (a pipe, say); give the {what} as a file, it may be read twice")


def doublings(first: int, last: int) -> tuple[int, ...]:
    """`first`, 2 x `first`, ... below `last`, then `last` itself: default prefix sizes."""
    sizes = []
    size = first
    while size < last:
        sizes.append(size)
        size *= 2
    return (*sizes, last)
