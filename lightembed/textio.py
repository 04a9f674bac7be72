"""Inputs and outputs of the command-line tool: text lines, JSON lines, CSV (and Parquet with pyarrow) in;
JSON lines, text and .npy out.

Input is read from a file or from stdin ('-' or no path) as UTF-8, strictly: a byte sequence
that is not UTF-8 stops the run with an error that names the line. A UTF-8 byte-order mark at
the start is dropped. Output files are written to a temporary file beside the target, which
replaces the target only once complete, so a half-written file never looks finished
(devices and pipes are written in place). A path naming the file that stdout or stderr already
writes to (/dev/stdout, or the file stdout is redirected to) is written through that stream, so
that it neither replaces nor truncates what the stream has written.
"""

from __future__ import annotations

import csv
import io
import json
import os
import stat
import sys
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, NamedTuple

import numpy as np

from . import parquetio
from .errors import LightEmbedError
from .tensorfile import usual_file_mode

FORMATS = ("text", "jsonl", "csv", "parquet")
SUFFIX_FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet"}
DEFAULT_KEY = "text"  # the JSON field / CSV column read when none is named
STD_STREAM = "-"
CSV_FIELD_LIMIT = 2**31 - 1  # characters in one CSV field (the largest the csv module takes everywhere)


class FileError(LightEmbedError, ValueError):
    """An input or output that cannot be read or written as asked."""


class Record(NamedTuple):
    """One input item: its text, and the original line(s) it came from, line ending included."""

    text: str
    raw: str


@dataclass
class Source:
    """An opened input: a header to repeat on output (the CSV header line, else empty) and the records, read lazily."""

    header: str
    records: Iterator[Record]


@dataclass(frozen=True)
class InputSpec:
    """Where and how to read items: a path (None or '-' for stdin), a format, a JSON field, a CSV column."""

    path: str | None = None
    format: str | None = None
    field: str | None = None
    column: str | None = None
    label: str | None = None  # the name errors use instead of the path (stdin spooled to a file)

    def __post_init__(self) -> None:
        if self.path is not None and not str(self.path):
            raise FileError("the input path is empty")

    @property
    def is_stdin(self) -> bool:
        return self.path in (None, STD_STREAM)

    @property
    def name(self) -> str:
        """The name used in error messages."""
        return self.label or ("<stdin>" if self.is_stdin else str(self.path))


def guess_format(path: str | None) -> str:
    """'jsonl' for .jsonl/.ndjson, 'csv' for .csv, 'parquet' for .parquet, else 'text' (stdin included)."""
    if path is None:
        return "text"
    return SUFFIX_FORMATS.get(Path(path).suffix.lower(), "text")


def input_format(spec: InputSpec) -> str:
    """The format to read: explicit, else from the file suffix, else implied by --field (jsonl) or --column (csv)."""
    fmt = spec.format or guess_format(None if spec.is_stdin else spec.path)
    if spec.format is None and fmt == "text":
        fmt = "jsonl" if spec.field is not None else "csv" if spec.column is not None else "text"
    if fmt not in FORMATS:
        raise FileError(f"unknown input format {fmt!r} (expected one of {', '.join(FORMATS)})")
    if spec.field is not None and fmt != "jsonl":
        raise FileError(f"--field applies to JSON lines input, but {spec.name} is read as {fmt}")
    if spec.column is not None and fmt not in ("csv", "parquet"):
        raise FileError(f"--column applies to CSV or Parquet input, but {spec.name} is read as {fmt}")
    if fmt == "parquet" and spec.is_stdin:
        raise FileError("Parquet input must be a file, not stdin")
    return fmt


@contextmanager
def open_input(spec: InputSpec) -> Iterator[Source]:
    """Open an input and parse it lazily; a CSV header is read (and checked) at once.

    Parquet records carry no original text (`raw` is empty): only their column is read.
    """
    fmt = input_format(spec)
    if fmt == "parquet":
        yield Source("", (Record(text, "") for text in parquetio.read_texts(spec.path, text_key(spec.column))))
        return
    with _open_binary(spec) as stream:
        lines = _decoded_lines(stream, spec.name)
        if fmt == "csv":
            yield _csv_source(lines, spec.name, text_key(spec.column))
        elif fmt == "jsonl":
            yield Source("", _jsonl_records(lines, spec.name, text_key(spec.field)))
        else:
            yield Source("", (Record(_strip_newline(line), line) for line in lines))


def read_texts(spec: InputSpec) -> list[str]:
    """Every item's text."""
    with open_input(spec) as source:
        return [record.text for record in source.records]


def count_records(spec: InputSpec) -> int | None:
    """The number of items when the input is a regular file (so it can be read twice), else None."""
    if spec.is_stdin or not os.path.isfile(spec.path):
        return None
    with open_input(spec) as source:
        return sum(1 for _ in source.records)


def read_text(spec: InputSpec) -> str:
    """The whole input as one text."""
    with _open_binary(spec) as stream:
        return "".join(_decoded_lines(stream, spec.name))


def read_pairs(spec: InputSpec) -> list[tuple[str, str]]:
    """Pairs of texts, one per line, from lines with exactly two tab-separated columns.

    An empty line is an error (the output has one score per input line, so none may be skipped).
    """
    pairs = []
    with _open_binary(spec) as stream:
        for number, line in enumerate(_decoded_lines(stream, spec.name), 1):
            line = _strip_newline(line)
            if not line:
                raise FileError(f"{spec.name}:{number}: empty line, expected two tab-separated columns")
            columns = line.split("\t")
            if len(columns) != 2:
                raise FileError(f"{spec.name}:{number}: expected two tab-separated columns, got {len(columns)}")
            pairs.append((columns[0], columns[1]))
    return pairs


@contextmanager
def _open_binary(spec: InputSpec) -> Iterator[IO[bytes]]:
    if spec.is_stdin:
        yield sys.stdin.buffer
        return
    with _open_file(spec) as stream:
        yield stream


def _open_file(spec: InputSpec) -> IO[bytes]:
    """Open the input file, turning a missing or unreadable file into a FileError."""
    try:
        return open(spec.path, "rb")
    except OSError as exc:
        raise FileError(f"{spec.name}: {exc.strerror or exc}") from None


def _decoded_lines(stream: IO[bytes], name: str) -> Iterator[str]:
    """Lines decoded as strict UTF-8, line endings kept."""
    for number, raw in enumerate(stream, 1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise FileError(
                f"{name}:{number}: not valid UTF-8 (byte {exc.start + 1} of the line); input must be UTF-8"
            ) from None
        yield line.removeprefix("\ufeff") if number == 1 else line


def text_key(name: str | None) -> str:
    """The JSON field or CSV column to read: the one named (even ""), else the default."""
    return DEFAULT_KEY if name is None else name


def _strip_newline(line: str) -> str:
    return line[:-2] if line.endswith("\r\n") else line.removesuffix("\n")


def _jsonl_records(lines: Iterable[str], name: str, field: str) -> Iterator[Record]:
    """One record per non-blank line: the string value of `field` of a JSON object."""
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            value: Any = json.loads(line)
        except ValueError as exc:  # bad JSON, or an integer too long to convert
            raise FileError(f"{name}:{number}: not valid JSON ({getattr(exc, 'msg', exc)})") from None
        except RecursionError:
            raise FileError(f"{name}:{number}: JSON nested too deeply") from None
        if not isinstance(value, dict):
            raise FileError(f"{name}:{number}: expected a JSON object, got {type(value).__name__}")
        if field not in value:
            raise FileError(f"{name}:{number}: no field {field!r}")
        text = value[field]
        if not isinstance(text, str):
            raise FileError(f"{name}:{number}: field {field!r} is {type(text).__name__}, expected a string")
        if "\\u" in line and not _is_unicode(text):
            raise FileError(f"{name}:{number}: field {field!r} holds an unpaired surrogate escape (\\ud800-\\udfff)")
        yield Record(text, line)


def _is_unicode(text: str) -> bool:
    """Whether the text can be written as UTF-8 (JSON escapes can make lone surrogates, which cannot)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class _LineTap:
    """An iterator over lines that remembers the lines taken since the last `take()`."""

    def __init__(self, lines: Iterator[str]) -> None:
        self._lines = lines
        self._taken: list[str] = []

    def __iter__(self) -> _LineTap:
        return self

    def __next__(self) -> str:
        line = next(self._lines)
        self._taken.append(line)
        return line

    def take(self) -> str:
        """The lines read since the last call, joined."""
        text = "".join(self._taken)
        self._taken.clear()
        return text


def _csv_source(lines: Iterator[str], name: str, column: str) -> Source:
    """Read the header row, check the column, and return the rows lazily with their original text."""
    tap = _LineTap(lines)
    csv.field_size_limit(CSV_FIELD_LIMIT)  # the csv module's default refuses fields over 128 KiB
    reader = csv.reader(tap, strict=True)  # an unclosed or stray quote is an error, not a merged row
    try:
        header = next(reader)
    except StopIteration:
        raise FileError(f"{name}: empty CSV input, expected a header row") from None
    except csv.Error as exc:
        raise FileError(f"{name}:{reader.line_num}: bad CSV ({exc})") from None
    if column not in header:
        raise FileError(f"{name}: no column {column!r} in the CSV header (columns: {', '.join(header)})")
    return Source(tap.take(), _csv_records(reader, tap, header.index(column), name, column))


def _csv_records(reader: Any, tap: _LineTap, index: int, name: str, column: str) -> Iterator[Record]:
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise FileError(f"{name}:{reader.line_num}: bad CSV ({exc})") from None
        raw = tap.take()
        if not row:  # a blank line
            continue
        if index >= len(row):
            raise FileError(f"{name}:{reader.line_num}: row has no value for column {column!r}")
        yield Record(row[index], raw)


# --------------------------------------------------------------------- outputs
def standard_stream(path: str | os.PathLike[str]) -> IO[str] | None:
    """sys.stdout or sys.stderr when `path` names the file it writes to (/dev/stdout, /dev/fd/2, a redirect's file)."""
    try:
        target = os.stat(path)
    except (OSError, ValueError):
        return None
    named_stderr = os.path.abspath(path) in ("/dev/stderr", "/dev/fd/2", "/proc/self/fd/2")
    for stream in (sys.stderr, sys.stdout) if named_stderr else (sys.stdout, sys.stderr):  # both may be one terminal
        try:
            opened = os.fstat(stream.fileno())
        except (AttributeError, OSError, ValueError):  # replaced by an object without a descriptor
            continue
        if (opened.st_dev, opened.st_ino) == (target.st_dev, target.st_ino):
            return stream
    return None


def is_input_file(path: str, source: str | None) -> bool:
    """Whether the output `path` is the regular file that the input `source` (None or '-': stdin) reads."""
    try:
        target = os.stat(path)
        read = os.fstat(sys.stdin.fileno()) if source in (None, STD_STREAM) else os.stat(source)
    except (AttributeError, OSError, ValueError):  # no such file, or a stdin without a descriptor
        return False
    return stat.S_ISREG(target.st_mode) and (target.st_dev, target.st_ino) == (read.st_dev, read.st_ino)


def output_stream(path: str | None) -> IO[str] | None:
    """The stream an output goes to: stdout for None or '-', the stream `path` names (`standard_stream`), else None."""
    return sys.stdout if path in (None, STD_STREAM) else standard_stream(path)


def check_file_output(path: str | os.PathLike[str]) -> None:
    """`check_output_path`, and not where stdout or stderr goes: for outputs written to a file of their own (Parquet)."""
    if standard_stream(path) is not None:
        raise FileError(
            f"{path}: is where this command's stdout or stderr goes; write this output to a file of its own"
        )
    check_output_path(path)


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary path beside `path` that replaces it when the block succeeds and is removed when it fails.

    A symbolic link is followed (the file it points to is replaced); a device or a named pipe is
    written in place. The file stdout or stderr writes to is refused: replacing it would lose
    what the stream writes (`open_output` and `write_npy` write such a path through the stream).
    """
    check_file_output(path)
    if is_special(path):
        yield Path(path)
        return
    target = Path(os.path.realpath(path))
    try:
        fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    except OSError as exc:
        raise FileError(f"{target}: cannot write here ({exc.strerror or exc})") from None
    os.close(fd)
    temp = Path(name)
    try:
        yield temp
        os.chmod(temp, usual_file_mode())  # mkstemp makes the file private; give it the usual mode
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def check_output_path(path: str | os.PathLike[str]) -> None:
    """Raise FileError unless `path` can name a file to write: not a folder, in a folder that exists."""
    if not str(path):
        raise FileError("the output path is empty")
    if is_special(path):
        return
    if os.path.isdir(path) or str(path).endswith(("/", os.sep)):
        raise FileError(f"{path}: is a folder, expected a file to write")
    parent = os.path.dirname(os.path.realpath(path))
    if not os.path.isdir(parent):
        raise FileError(f"{path}: cannot write here (no folder {parent})")


def is_special(path: str | os.PathLike[str]) -> bool:
    """Whether `path` exists and is something other than a regular file or a folder (a device, a pipe)."""
    return os.path.exists(path) and not os.path.isfile(path) and not os.path.isdir(path)


@contextmanager
def open_output(path: str | None) -> Iterator[IO[str]]:
    """A text stream to write: stdout for None or '-' (or the stream `path` names, see `standard_stream`), else a
    UTF-8 file written atomically."""
    stream = output_stream(path)
    if stream is not None:
        yield stream
        return
    with atomic_path(path) as temp, open(temp, "w", encoding="utf-8", newline="") as stream:
        yield stream


def write_jsonl(stream: IO[str], rows: Iterable[dict[str, Any]]) -> None:
    """One compact JSON object per line (non-ASCII kept as is)."""
    for row in rows:
        stream.write(json.dumps(row, ensure_ascii=False) + "\n")


def write_npy(
    path: str | os.PathLike[str], blocks: Iterable[np.ndarray], width: int, dtype: np.dtype, count: int | None
) -> int:
    """Write blocks of rows as one [n, width] .npy file atomically; returns n.

    With a known `count` the rows go straight into a memory-mapped file; otherwise (or when
    the target is a device, a pipe or stdout's file) they are gathered in memory and saved at the end.
    """
    stream = standard_stream(path)
    if stream is not None:
        stream.flush()
        return _save_gathered(stream.buffer, blocks, width, dtype)
    with atomic_path(path) as temp:
        if not count or is_special(temp):
            with open(temp, "wb") as out:
                return _save_gathered(out, blocks, width, dtype)
        out = np.lib.format.open_memmap(temp, mode="w+", dtype=dtype, shape=(count, width))
        try:
            filled = 0
            for block in blocks:
                if filled + len(block) > count:
                    raise FileError(f"{path}: the input grew while it was read (expected {count} items)")
                out[filled : filled + len(block)] = block
                filled += len(block)
            out.flush()
        finally:
            del out
        if filled != count:
            raise FileError(f"{path}: the input shrank while it was read ({filled} items, expected {count})")
        return count


def _save_gathered(stream: IO[bytes], blocks: Iterable[np.ndarray], width: int, dtype: np.dtype) -> int:
    """The blocks as one .npy array written to `stream`; returns its rows."""
    array = np.concatenate([np.zeros((0, width), dtype=dtype), *blocks])
    if stream.seekable():
        np.save(stream, array)
    else:  # a pipe: np.save asks for the file position
        buffer = io.BytesIO()
        np.save(buffer, array)
        stream.write(buffer.getbuffer())
    stream.flush()
    return len(array)
