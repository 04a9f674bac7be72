"""The learned late-interaction scorer (separable LITE, arXiv 2406.17968) over a model's token vectors.

A query and a document are each cut to a fixed number of tokens (`query_length`, `doc_length`;
missing positions are zero vectors). Their token vectors (codebook rows, optionally through a
small learned projection, then optionally unit-normalised) give the similarity matrix
S [query_length, doc_length]. A row-wise MLP maps each row of S (one query token against every
document position) to `r` features, a column-wise MLP maps each of those columns (over the query
positions) to `c` features, and a linear map turns the r x c features into one score.

Documents longer than `doc_length` are cut into consecutive windows of `doc_length` tokens (at
most `max_windows`; tokens past them are dropped) and score the best of their windows. With
`max_windows` = 1 a document is truncated. A query longer than `query_length` is truncated.

With `sort_rows`, the row MLP does not see document positions: each query token's row holds its
`doc_length` largest similarities over the first `doc_length * max_windows` document tokens, in
descending order (then zeros where the document has fewer tokens). The whole read part of a
document is then scored at once, without windows.

The file `reranker.safetensors` holds the tensors `projection.weight` [p, dim] (optional; no bias),
`row.{i}.weight`/`row.{i}.bias`, `column.{i}.weight`/`column.{i}.bias`, `output.weight` [1, r * c]
and `output.bias` [1], with the metadata `format` = "lightembed-reranker", `format_version` = "1",
`query_length`, `doc_length`, `max_windows`, `activation`, `normalize`, `pooled` and `sort_rows`
("true"/"false"; a file without `sort_rows` reads as "false").

With `pooled`, the output layer takes one more input: the cosine of the mean codebook rows of the
query and of the document tokens the scorer reads (the model's own pooled similarity, before any
projection), so the scorer learns a token-level correction of the first-stage score.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import ModelFormatError
from .pooling import mean_pool
from .scoring import unit_rows
from .tensorfile import read_tensor_file, write_tensor_file
from .transform import ACTIVATION_FUNCTIONS, Layer, _layer, finite_float_tensor

RERANKER_FORMAT = "lightembed-reranker"
RERANKER_VERSION = "1"
# Lengths and window counts in the metadata: far above any real scorer, low enough that no product overflows.
MAX_METADATA_INT = 1 << 20
# Query-by-document similarities held at once (floats): bounds the memory of one scoring block.
SCORE_BLOCK = 1 << 22
# OpenBLAS spreads a product of more than about 2^18 multiply-adds over several threads, which then
# spin for a while after it and slow down the tokenizer threads of the next call on a small machine.
# The scorer's products are small, so they are cut into row chunks that each stay on one thread.
ONE_THREAD_PRODUCT = 1 << 18


@dataclass(frozen=True)
class LiteScorer:
    """The separable LITE scorer: row MLP over the document axis, column MLP over the query axis, linear."""

    row: tuple[Layer, ...]  # first layer takes doc_length inputs
    column: tuple[Layer, ...]  # first layer takes query_length inputs
    output: Layer  # weight [1, row width x column width], bias [1]
    projection: np.ndarray | None = None  # [p, dim]: the "small LITE" token projection
    activation: str = "relu"
    normalize: bool = True  # unit token vectors (cosine similarity matrix)
    max_windows: int = 1
    pooled: bool = False  # the pooled cosine is an extra input of the output layer
    sort_rows: bool = False  # rows are each query token's largest similarities, sorted (no positions)

    @property
    def query_length(self) -> int:
        """Query tokens compared (the rows of the similarity matrix)."""
        return self.column[0][0].shape[1]

    @property
    def doc_length(self) -> int:
        """Document tokens per window (the columns of the similarity matrix)."""
        return self.row[0][0].shape[1]

    @property
    def max_tokens(self) -> int:
        """Document tokens read at most (the rest of a longer document is dropped)."""
        return self.doc_length * self.max_windows

    def token_table(self, codebook: np.ndarray) -> np.ndarray:
        """The token vectors the scorer compares, float32 [V + 1, p]; the last row (the padding id) is zero."""
        table = np.asarray(codebook, dtype=np.float32)
        if self.projection is not None:
            table = table @ self.projection.T
        if self.normalize:
            table = unit_rows(table)
        return np.concatenate([table, np.zeros((1, table.shape[1]), dtype=np.float32)])

    def matrix_scores(self, sims: np.ndarray, cosines: np.ndarray | None = None) -> np.ndarray:
        """Scores [n] of similarity matrices [n, query_length, doc_length] (and pooled cosines [n])."""
        act = ACTIVATION_FUNCTIONS[self.activation]
        h = _mlp(sims, self.row, act)  # [n, Lq, r]
        h = _mlp(np.swapaxes(h, 1, 2), self.column, act)  # [n, r, c]
        weight, bias = self.output
        features = h.reshape(len(h), -1)
        score = features @ weight[0, : features.shape[1]] + bias[0]
        if self.pooled:
            score = score + weight[0, -1] * cosines
        return score.astype(np.float32)

    def scores(
        self,
        table: np.ndarray,
        query_ids: np.ndarray,
        flat: np.ndarray,
        lengths: np.ndarray,
        cosines: np.ndarray | None = None,
    ) -> np.ndarray:
        """Score of each document [n] against the query, from token ids.

        `table` is `token_table(...)`; `query_ids` are the query's ids, `flat` the documents' ids one
        after another and `lengths` the ids of each document; `cosines` [n] are the pooled cosines
        (needed when `pooled`).
        """
        n = len(lengths)
        if self.pooled and (cosines is None or len(cosines) != n):
            raise ValueError("this scorer needs the pooled cosine of each document")
        pad = len(table) - 1
        query = table[pad_ids(query_ids[: self.query_length], self.query_length, pad)]  # [Lq, p]
        starts = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(lengths, out=starts[1:])
        if self.sort_rows:
            return self._sorted_scores(table, query, flat, starts, np.asarray(lengths, dtype=np.int64), cosines)
        windows = window_counts(lengths, self.doc_length, self.max_windows)
        per_block = max(1, SCORE_BLOCK // (self.query_length * self.doc_length))
        done = np.zeros(n + 1, dtype=np.int64)  # windows before each document
        np.cumsum(windows, out=done[1:])
        out = np.empty(n, dtype=np.float32)
        doc = 0
        while doc < n:
            # Whole documents until the block holds about per_block windows.
            stop = int(np.searchsorted(done, done[doc] + per_block, side="right")) - 1
            stop = min(n, max(stop, doc + 1))
            ids, owner = document_windows(flat, starts[doc:stop], lengths[doc:stop], self.doc_length, windows[doc:stop])
            ids = np.where(ids < 0, pad, ids)
            sims = token_products(table[ids], query)  # [w, Ld, Lq]
            window_cosines = None if cosines is None else np.asarray(cosines, dtype=np.float32)[doc:stop][owner]
            window_scores = self.matrix_scores(np.swapaxes(sims, 1, 2), window_cosines)
            firsts = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
            out[doc:stop] = np.maximum.reduceat(window_scores, firsts)
            doc = stop
        return out

    def _sorted_scores(
        self,
        table: np.ndarray,
        query: np.ndarray,
        flat: np.ndarray,
        starts: np.ndarray,
        lengths: np.ndarray,
        cosines: np.ndarray | None,
    ) -> np.ndarray:
        """`scores` with `sort_rows`: each document's first `max_tokens` tokens at once, rows sorted."""
        n = len(lengths)
        read = np.minimum(lengths, self.max_tokens)
        per_block = max(1, SCORE_BLOCK // (self.query_length * self.max_tokens))
        out = np.empty(n, dtype=np.float32)
        for doc in range(0, n, per_block):
            stop = min(n, doc + per_block)
            width = max(int(read[doc:stop].max(initial=0)), 1)
            ids, _ = document_windows(flat, starts[doc:stop], read[doc:stop], width, np.ones(stop - doc, np.int64))
            sims = token_products(table[np.where(ids < 0, len(table) - 1, ids)], query).transpose(
                0, 2, 1
            )  # [b, Lq, width]
            np.copyto(sims, -np.inf, where=(ids < 0)[:, None, :])  # padding is never a top value
            block_cosines = None if cosines is None else np.asarray(cosines, dtype=np.float32)[doc:stop]
            out[doc:stop] = self.matrix_scores(top_sorted(sims, self.doc_length), block_cosines)
        return out

    def tensors(self) -> dict[str, np.ndarray]:
        """The tensors under their file names, float32."""
        out: dict[str, np.ndarray] = {}
        if self.projection is not None:
            out["projection.weight"] = self.projection
        for name, layers in (("row", self.row), ("column", self.column)):
            for i, (weight, bias) in enumerate(layers):
                out[f"{name}.{i}.weight"], out[f"{name}.{i}.bias"] = weight, bias
        out["output.weight"], out["output.bias"] = self.output
        return {key: np.ascontiguousarray(value, dtype=np.float32) for key, value in out.items()}

    def metadata(self) -> dict[str, str]:
        """The safetensors metadata describing the scorer."""
        return {
            "format": RERANKER_FORMAT,
            "format_version": RERANKER_VERSION,
            "query_length": str(self.query_length),
            "doc_length": str(self.doc_length),
            "max_windows": str(self.max_windows),
            "activation": self.activation,
            "normalize": "true" if self.normalize else "false",
            "pooled": "true" if self.pooled else "false",
            "sort_rows": "true" if self.sort_rows else "false",
        }


def pooled_cosines(codebook: np.ndarray, query_ids: np.ndarray, flat: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Cosine of the mean codebook row of the query and of each document [n] (0 for an empty side)."""
    query = unit_rows(mean_pool(codebook, query_ids, np.array([len(query_ids)])))[0]
    return unit_rows(mean_pool(codebook, flat, np.asarray(lengths))) @ query


def top_sorted(sims: np.ndarray, k: int) -> np.ndarray:
    """The `k` largest values of each row of `sims` [..., width], descending; -inf (padding) and missing
    values (width < k) become zeros at the end."""
    if sims.shape[-1] < k:
        sims = np.concatenate([sims, np.full((*sims.shape[:-1], k - sims.shape[-1]), -np.inf, sims.dtype)], axis=-1)
    elif sims.shape[-1] > k:
        sims = np.partition(sims, sims.shape[-1] - k, axis=-1)[..., -k:]
    top = np.sort(sims, axis=-1)[..., ::-1]
    return np.where(np.isneginf(top), np.float32(0), top)


def _mlp(x: np.ndarray, layers: tuple[Layer, ...], act) -> np.ndarray:
    """Layers applied to the last axis, the activation between them (not after the last)."""
    shape = x.shape[:-1]
    x = np.ascontiguousarray(x).reshape(-1, x.shape[-1])  # 2-D products: numpy's fast path
    for i, (weight, bias) in enumerate(layers):
        x = one_thread_product(x, weight.T) + bias
        if i < len(layers) - 1:
            x = act(x)
    return x.reshape(*shape, -1)


def one_thread_product(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """`a @ b` of 2-D arrays, in row chunks small enough for one BLAS thread (see ONE_THREAD_PRODUCT)."""
    rows = max(1, ONE_THREAD_PRODUCT // max(1, a.shape[1] * b.shape[1]))
    out = np.empty((a.shape[0], b.shape[1]), dtype=np.result_type(a, b))
    for start in range(0, len(a), rows):
        np.matmul(a[start : start + rows], b, out=out[start : start + rows])
    return out


def token_products(tokens: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Similarities [..., tokens, Lq] of token vectors [..., tokens, p] with the query rows [Lq, p]."""
    flat = one_thread_product(tokens.reshape(-1, tokens.shape[-1]), query.T)
    return flat.reshape(*tokens.shape[:-1], len(query))


def pad_ids(ids: np.ndarray, length: int, pad: int) -> np.ndarray:
    """The first `length` ids, padded with `pad` to exactly `length`."""
    out = np.full(length, pad, dtype=np.int64)
    out[: min(length, len(ids))] = ids[:length]
    return out


def window_counts(lengths: np.ndarray, length: int, max_windows: int) -> np.ndarray:
    """Windows of `length` tokens per document: ceil(tokens / length), between 1 and `max_windows`."""
    return np.clip(-(-np.asarray(lengths, dtype=np.int64) // length), 1, max_windows)


def document_windows(
    flat: np.ndarray, starts: np.ndarray, lengths: np.ndarray, length: int, windows: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Consecutive windows of `length` ids of each document: (ids [w, length] with -1 padding, owner [w]).

    Document i spans flat[starts[i] : starts[i] + lengths[i]] and gets windows[i] windows.
    """
    owner = np.repeat(np.arange(len(lengths)), windows)
    first = np.cumsum(windows) - windows
    offset = (np.arange(len(owner)) - first[owner]) * length
    positions = offset[:, None] + np.arange(length)[None, :]
    valid = positions < np.asarray(lengths)[owner][:, None]
    index = np.where(valid, np.asarray(starts)[owner][:, None] + positions, 0)
    ids = np.where(valid, flat[index] if len(flat) else -1, -1)
    return ids.astype(np.int64), owner


def save_reranker(path: str | Path, scorer: LiteScorer, dim: int | None = None) -> Path:
    """Write `reranker.safetensors`, check that it reads back, then replace any file at `path` with it."""
    path = Path(path)
    staging = path.with_name(f".{path.name}.part")
    try:
        write_tensor_file(staging, scorer.tensors(), scorer.metadata())
        load_reranker(staging, dim)
        os.replace(staging, path)
    finally:
        staging.unlink(missing_ok=True)
    return path


def load_reranker(path: str | Path, dim: int | None = None) -> LiteScorer:
    """Read and validate a reranker file (safetensors only); `dim` is the codebook width it must take."""
    path = Path(path)
    where = str(path)
    metadata, tensors = read_tensor_file(path, RERANKER_FORMAT, RERANKER_VERSION)
    activation = metadata.get("activation", "relu")
    if activation not in ACTIVATION_FUNCTIONS:
        raise ModelFormatError(f"{where}: activation {activation!r} is not one of {tuple(ACTIVATION_FUNCTIONS)}")
    metadata = {"sort_rows": "false", **metadata}
    for key in ("normalize", "pooled", "sort_rows"):
        if metadata.get(key) not in ("true", "false"):
            raise ModelFormatError(f"{where}: metadata {key!r} must be 'true' or 'false'")
    pooled = metadata["pooled"] == "true"
    query_length = _positive_int(metadata, "query_length", where)
    doc_length = _positive_int(metadata, "doc_length", where)
    max_windows = _positive_int(metadata, "max_windows", where)

    projection = None
    if "projection.weight" in tensors:
        projection = finite_float_tensor(tensors, "projection.weight", where)
        if projection.ndim != 2 or 0 in projection.shape or (dim is not None and projection.shape[1] != dim):
            wanted = "[p, dim]" if dim is None else f"[p, {dim}]"
            raise ModelFormatError(f"{where}: 'projection.weight' must be {wanted}, got {projection.shape}")
    row = _mlp_layers(tensors, "row", doc_length, where)
    column = _mlp_layers(tensors, "column", query_length, where)
    features = row[-1][0].shape[0] * column[-1][0].shape[0] + int(pooled)
    output = _layer(tensors, "output", features, where)
    if output[0].shape[0] != 1:
        raise ModelFormatError(f"{where}: 'output.weight' must be [1, {features}], got {output[0].shape}")
    expected = {"output.weight", "output.bias"} | ({"projection.weight"} if projection is not None else set())
    expected |= {
        f"{name}.{i}.{part}"
        for name, n in (("row", len(row)), ("column", len(column)))
        for i in range(n)
        for part in ("weight", "bias")
    }
    if set(tensors) != expected:
        raise ModelFormatError(f"{where}: unexpected tensors {sorted(set(tensors) - expected)}")
    normalize = metadata["normalize"] == "true"
    sort_rows = metadata["sort_rows"] == "true"
    return LiteScorer(row, column, output, projection, activation, normalize, max_windows, pooled, sort_rows)


def _positive_int(metadata: dict[str, str], key: str, where: str) -> int:
    value = metadata.get(key, "")
    if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= MAX_METADATA_INT:
        raise ModelFormatError(
            f"{where}: metadata {key!r} must be an integer from 1 to {MAX_METADATA_INT}, got {value!r}"
        )
    return int(value)


def _mlp_layers(tensors: dict[str, np.ndarray], name: str, in_dim: int, where: str) -> tuple[Layer, ...]:
    count = len({m.group(1) for key in tensors if (m := re.fullmatch(rf"{name}\.(\d+)\.(weight|bias)", key))})
    if count == 0:
        raise ModelFormatError(f"{where}: no '{name}.0.weight' (the {name} MLP is missing)")
    layers = []
    for i in range(count):
        layers.append(_layer(tensors, f"{name}.{i}", in_dim, where))
        in_dim = layers[-1][0].shape[0]
    return tuple(layers)
