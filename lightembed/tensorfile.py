"""Reading one safetensors file with clear errors (nothing is unpickled or executed), and writing one."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save_file

from .errors import ModelFormatError

# safetensors dtypes that numpy reads (bfloat16 and the float8 kinds it does not).
NUMPY_DTYPES = {"BOOL", "U8", "I8", "U16", "I16", "U32", "I32", "U64", "I64", "F16", "F32", "F64"}


def read_tensor_file(
    path: Path, file_format: str | None = None, version: str | None = None
) -> tuple[dict[str, str], dict[str, np.ndarray]]:
    """The metadata and tensors of `path`; with `file_format`, its metadata must name that format and `version`."""
    check_regular_file(path, "a safetensors file", "file is missing")
    try:
        with safe_open(str(path), framework="numpy") as handle:
            metadata = handle.metadata() or {}
            dtypes = {key: handle.get_slice(key).get_dtype() for key in handle.keys()}  # noqa: SIM118 (not a dict)
            unreadable = sorted(key for key, dtype in dtypes.items() if dtype not in NUMPY_DTYPES)
            if not unreadable:
                tensors = {key: handle.get_tensor(key) for key in dtypes}
    except Exception as exc:  # safetensors raises its own error types for truncated or corrupt files
        raise ModelFormatError(f"{path}: not a valid safetensors file ({exc})") from None
    if unreadable:
        found = ", ".join(f"{key} ({dtypes[key]})" for key in unreadable[:5])
        raise ModelFormatError(f"{path}: tensors of a dtype numpy cannot hold: {found}")
    if file_format is not None:
        if metadata.get("format") != file_format:
            raise ModelFormatError(f"{path}: metadata 'format' must be {file_format!r}, got {metadata.get('format')!r}")
        if metadata.get("format_version") != version:
            raise ModelFormatError(f"{path}: unsupported format_version {metadata.get('format_version')!r}")
    return metadata, tensors


def check_regular_file(path: Path, expected: str, missing: str) -> None:
    """Refuse `path` unless it is a regular file (links followed); `missing` says what is absent when nothing is there.

    A pipe or a device is refused before it is opened: reading one could block or never end.
    """
    if path.is_file():
        return
    if path.is_dir():
        raise ModelFormatError(f"{path}: is a folder, expected {expected}")
    if path.exists():
        raise ModelFormatError(f"{path}: not a regular file (a pipe, a device or a socket), expected {expected}")
    raise ModelFormatError(f"{path}: {missing}")


def write_tensor_file(path: Path, tensors: dict[str, np.ndarray], metadata: dict[str, str]) -> None:
    """Write a safetensors file readable as any new file is (safetensors alone makes it private, 0600)."""
    try:
        save_file(tensors, str(path), metadata=metadata)
    except SafetensorError as exc:  # safetensors reports a failed write (no space, no access) as its own error
        raise OSError(f"{path}: cannot write ({exc})") from None
    os.chmod(path, usual_file_mode())


def usual_file_mode() -> int:
    """The mode a newly created file gets under the current umask."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask
