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
    """The strings of one column, batch by batch; a missing column, a non-string column or a null is an error."""
    pa, _ = _pyarrow()
    parquet = _open(path)
    names = parquet.schema_arrow.names
    if column not in names:
        raise ParquetError(f"{path}: no column {column!r} (columns: {', '.join(names)})")
    if names.count(column) > 1:
        raise ParquetError(f"{path}: {names.count(column)} columns are named {column!r}")
    kind = parquet.schema_arrow.field(column).type
    strings = kind.value_type if pa.types.is_dictionary(kind) else kind  # pandas' categorical columns
    if not (pa.types.is_string(strings) or pa.types.is_large_string(strings)):
        raise ParquetError(f"{path}: column {column!r} holds {kind}, expected strings")
    row = 0
    for batch in parquet.iter_batches(batch_size=batch_rows, columns=[column]):
        values = batch.column(0)
        if values.null_count:
            bad = row + int(np.flatnonzero(values.is_null().to_numpy(zero_copy_only=False))[0])
            raise ParquetError(f"{path}: row {bad}: column {column!r} is null")
        yield from (values.dictionary_decode() if pa.types.is_dictionary(kind) else values).to_pylist()
        row += len(values)


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
    """The `embedding` column of a file `write_embeddings` wrote, as an [n, width] array."""
    pa, _ = _pyarrow()
    table = _open(path).read(columns=["embedding"])
    column = table.column("embedding").combine_chunks()
    if pa.types.is_fixed_size_binary(column.type):
        width = column.type.byte_width
        return np.frombuffer(column.buffers()[1], dtype=np.uint8)[: len(column) * width].reshape(len(column), width)
    width = column.type.list_size
    return column.values.to_numpy().reshape(len(column), width)
