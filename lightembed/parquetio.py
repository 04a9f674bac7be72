"""Parquet input and output, read and written in record batches (needs pyarrow: `pip install 'lightembed[parquet]'`)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from .errors import LightEmbedError

BATCH_ROWS = 65536
INDEX_COLUMN = "__index_level_0__"  # where pandas stores an index that is not a RangeIndex


class ParquetError(LightEmbedError, ValueError):
    """A Parquet file that cannot be read or written as asked (or pyarrow is missing)."""


def _pyarrow() -> tuple[Any, Any]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ParquetError("Parquet needs pyarrow: pip install 'lightembed[parquet]'") from None
    return pa, pq


def _open(path: str | os.PathLike[str]) -> Any:
    _, pq = _pyarrow()
    try:
        return pq.ParquetFile(path)
    except FileNotFoundError:
        raise ParquetError(f"{path}: no such file") from None
    except Exception as exc:
        raise ParquetError(f"{path}: not a readable Parquet file ({exc})") from None


def read_texts(path: str | os.PathLike[str], column: str, batch_rows: int = BATCH_ROWS) -> Iterator[str]:
    """The strings of one column, batch by batch; a missing column, a non-string column, a null or bad UTF-8 is an error."""
    pa, _ = _pyarrow()
    parquet = _open(path)
    kind = _column_type(parquet, path, column)
    if not _is_string(kind.value_type if pa.types.is_dictionary(kind) else kind):  # pandas' categorical columns
        raise ParquetError(f"{path}: column {column!r} holds {kind}, expected strings")
    row = 0
    try:
        for batch in parquet.iter_batches(batch_size=batch_rows, columns=[column]):
            texts = _texts(path, column, batch.column(0), row)
            yield from texts
            row += len(texts)
    except pa.ArrowException as exc:  # as bad UTF-8 in a dictionary, which pyarrow checks as it reads
        raise ParquetError(f"{path}: column {column!r} cannot be read from row {row} ({exc})") from None


def _texts(path: str | os.PathLike[str], column: str, values: Any, row: int) -> list[str]:
    """The strings of one batch, whose first row is `row` in the file; a null or bad UTF-8 is an error."""
    values = _decoded(values)
    if values.null_count:
        raise _row_error(path, row + _first(values.is_null()), column, "is null")
    try:
        return values.to_pylist()
    except UnicodeDecodeError:
        raise _row_error(path, row + _first_bad_utf8(values), column, "is not valid UTF-8") from None


def _column_type(parquet: Any, path: str | os.PathLike[str], column: str) -> Any:
    """The Arrow type of `column`; a missing column or two of that name is an error."""
    names = parquet.schema_arrow.names
    if column not in names:
        raise ParquetError(f"{path}: no column {column!r} (columns: {', '.join(names)})")
    if names.count(column) > 1:
        raise ParquetError(f"{path}: {names.count(column)} columns are named {column!r}")
    return parquet.schema_arrow.field(column).type


def _is_string(kind: Any) -> bool:
    """Whether `kind` is an Arrow string type: string, large_string or string_view (pyarrow 16 and later)."""
    pa, _ = _pyarrow()
    is_view = getattr(pa.types, "is_string_view", lambda _: False)
    return pa.types.is_string(kind) or pa.types.is_large_string(kind) or is_view(kind)


def _decoded(values: Any) -> Any:
    """`values`, with a dictionary replaced by the strings it stands for (cast first: string_view has no `take`)."""
    pa, _ = _pyarrow()
    if not pa.types.is_dictionary(values.type):
        return values
    return values.dictionary.cast(pa.large_string()).take(values.indices)


def _first(mask: Any) -> int:
    """The index of the first true value of a boolean Arrow or numpy array that has one."""
    return int(np.argmax(np.asarray(mask)))


def _first_bad_utf8(strings: Any) -> int:
    """The index of the first string that is not valid UTF-8 (a scan, for the error message only)."""
    for index, value in enumerate(strings):
        try:
            value.as_py()
        except UnicodeDecodeError:
            return index
    raise AssertionError("no string is invalid UTF-8")


def _row_error(path: str | os.PathLike[str], row: int, column: str, problem: str) -> ParquetError:
    """An error naming the file, the row (counted from 0 over the whole file) and the column."""
    return ParquetError(f"{path}: row {row}: column {column!r} {problem}")


def write_kept_rows(
    source: str | os.PathLike[str], target: str | os.PathLike[str], kept: np.ndarray, batch_rows: int = BATCH_ROWS
) -> None:
    """Copy the rows of `source` whose index is in `kept` (sorted) to `target`, with the same columns (see below).

    A pandas RangeIndex (stored as metadata only) becomes an index column holding each kept row's
    label, as pandas stores any other index: read back, the rows keep their labels.
    """
    pa, pq = _pyarrow()
    parquet = _open(source)
    schema, labels = _with_range_labels(parquet.schema_arrow)
    with pq.ParquetWriter(target, schema) as writer:
        start = 0
        for batch in parquet.iter_batches(batch_size=batch_rows):
            stop = start + len(batch)
            lo, hi = np.searchsorted(kept, [start, stop])
            rows = batch.take(pa.array(kept[lo:hi] - start))
            if labels is not None:
                first, step = labels
                column = pa.array(first + step * kept[lo:hi].astype(np.int64))
                rows = pa.RecordBatch.from_arrays([*rows.columns, column], schema=schema)
            writer.write_batch(rows)
            start = stop


def _with_range_labels(schema: Any) -> tuple[Any, tuple[int, int] | None]:
    """`schema`, or for pandas metadata with a RangeIndex, the schema with an index column and (start, step)."""
    pa, _ = _pyarrow()
    try:
        pandas = json.loads((schema.metadata or {})[b"pandas"])
        (index,) = pandas["index_columns"]
        if index["kind"] != "range" or INDEX_COLUMN in schema.names:
            return schema, None
        labels = int(index["start"]), int(index["step"])
        columns = [*pandas["columns"], {"name": index.get("name"), "field_name": INDEX_COLUMN}]
    except (KeyError, ValueError, TypeError):
        return schema, None
    columns[-1].update(pandas_type="int64", numpy_type="int64", metadata=None)
    pandas.update(index_columns=[INDEX_COLUMN], columns=columns)
    metadata = {**schema.metadata, b"pandas": json.dumps(pandas).encode()}
    return schema.append(pa.field(INDEX_COLUMN, pa.int64())).with_metadata(metadata), labels


def write_embeddings(path: str | os.PathLike[str], blocks: Iterable[np.ndarray], width: int, dtype: np.dtype) -> int:
    """Rows as a Parquet table (`index` int64, `embedding`: a list of `width` float32, or `width` bytes for codes).

    Returns the number of rows.
    """
    pa, pq = _pyarrow()
    binary = np.dtype(dtype) == np.uint8
    kind = pa.binary(width) if binary else pa.list_(pa.float32(), width)
    schema = pa.schema([("index", pa.int64()), ("embedding", kind)])
    count = 0
    with pq.ParquetWriter(path, schema) as writer:
        for block in blocks:
            flat = np.ascontiguousarray(block).reshape(-1)
            if binary:
                column = pa.FixedSizeBinaryArray.from_buffers(kind, len(block), [None, pa.py_buffer(flat.tobytes())])
            else:
                column = pa.FixedSizeListArray.from_arrays(pa.array(flat, type=pa.float32()), width)
            index = pa.array(np.arange(count, count + len(block), dtype=np.int64))
            writer.write_table(pa.table([index, column], schema=schema))
            count += len(block)
    return count


def read_embeddings(path: str | os.PathLike[str]) -> np.ndarray:
    """The `embedding` column of a file `write_embeddings` wrote, as an [n, width] array.

    A fixed-size list of floats gives float32 vectors (float64 ones are rounded), fixed-size binary
    gives uint8 codes; another column type or a null is an error.
    """
    pa, _ = _pyarrow()
    parquet = _open(path)
    kind = _column_type(parquet, path, "embedding")
    codes = pa.types.is_fixed_size_binary(kind)
    if not (codes or pa.types.is_fixed_size_list(kind) and pa.types.is_floating(kind.value_type)):
        expected = "a fixed-size list of floats or fixed-size binary"
        raise ParquetError(f"{path}: column 'embedding' holds {kind}, expected {expected}")
    column = parquet.read(columns=["embedding"]).column(0).combine_chunks()
    if column.null_count:
        raise _row_error(path, _first(column.is_null()), "embedding", "is null")
    if codes:
        width = kind.byte_width
        return np.frombuffer(column.buffers()[1], dtype=np.uint8)[: len(column) * width].reshape(len(column), width)
    width = kind.list_size
    values = column.flatten()  # `width` values a row, as no row is null
    if values.null_count:
        raise _row_error(path, _first(values.is_null()) // width, "embedding", "holds a null")
    return values.to_numpy().astype(np.float32, copy=False).reshape(len(column), width)
