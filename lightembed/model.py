"""The public model object: embedding and the task verbs, thin over plain functions."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import islice
from pathlib import Path
from typing import NamedTuple

import numpy as np
from tokenizers import Tokenizer
from tqdm.auto import tqdm

from .binary import hamming_topk, pack_signs, similarity_of_distances, unpack_signs
from .checks import check_threshold, positive_int
from .cluster import ClusterResult, spherical_kmeans
from .dedup import ANN_NEEDS_FLOATS, DEFAULT_BLOCK_SIZE, DedupResult, SearchOptions, deduplicate_vectors, first_copies
from .errors import ModelFormatError
from .folder import RERANKER_FILE, ModelParts, read_model
from .parallel import ordered_map, share_size
from .partition import DEFAULT_PROBES
from .pooling import mean_pool
from .rerank import maxsim_scores
from .reranker import pooled_cosines
from .resolve import resolve_model
from .scoring import (
    at_least,
    blocks,
    comparable_rows,
    is_codes,
    paired_similarity,
    similarity_matrix,
    top_indices,
    unit_rows,
)
from .split import semantic_split
from .tokenize import TokenBatcher

logger = logging.getLogger(__name__)

Items = str | Iterable[str] | np.ndarray
DEFAULT_BATCH_SIZE = 2048
RERANK_METHODS = ("auto", "learned", "maxsim")


class Hit(NamedTuple):
    """One scored item: its position in the input, its score, and its text (None for vector input)."""

    index: int
    score: float
    text: str | None


class LightEmbed:
    """A static embedding model: `embed` texts, then compare, rank, deduplicate, cluster, rerank.

    Every verb takes texts, or vectors / packed binary codes that `embed` returned earlier.
    """

    def __init__(
        self,
        parts: ModelParts,
        *,
        dim: int | None = None,
        binary: bool = False,
        batch_size: int = DEFAULT_BATCH_SIZE,
        block_size: int = DEFAULT_BLOCK_SIZE,
    ) -> None:
        if not isinstance(binary, bool):
            raise ValueError(f"binary must be True or False, got {binary!r}")
        self.parts = parts
        self.config = parts.config
        width = parts.transform.out_dim or self.config.dim
        if binary and parts.binary_embeddings is not None:
            width = parts.binary_embeddings.shape[1]
        dim = width if dim is None else dim
        if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or not 1 <= dim <= width:
            raise ValueError(f"dim must be an integer between 1 and the model width {width}, got {dim!r}")
        self.dim = int(dim)
        self.binary = binary
        self.batch_size = positive_int("batch_size", batch_size)
        self.block_size = positive_int("block_size", block_size)
        self.tokens = TokenBatcher(parts.tokenizer, self.config, self.config.max_length)
        self._post_pooling = bool(parts.transform)
        self._table = self._pooling_table(parts.embeddings)
        self._binary_table = None
        self._rerank_table: np.ndarray | None = None
        self._rerank_tokens: TokenBatcher | None = None
        self._content_tokens: np.ndarray | None = None  # per token id: a non-zero codebook row (see _has_content)
        if binary and parts.binary_embeddings is not None:
            self._binary_table = np.ascontiguousarray(parts.binary_embeddings[:, : self.dim], dtype=np.float32)

    # ----------------------------------------------------------------- loading helpers
    def _pooling_table(self, embeddings: np.ndarray) -> np.ndarray:
        """Float32 codebook; truncated now when nothing non-trivial runs after pooling."""
        if self._post_pooling:
            return np.ascontiguousarray(embeddings, dtype=np.float32)
        return np.ascontiguousarray(embeddings[:, : self.dim], dtype=np.float32)

    @property
    def bits(self) -> int | None:
        """Bits per binary code (None for a float model)."""
        return self.dim if self.binary else None

    @property
    def path(self) -> Path:
        """Where the model was loaded from."""
        return self.parts.path

    def __repr__(self) -> str:
        kind = f"binary, {self.dim} bits" if self.binary else f"dim={self.dim}"
        return f"LightEmbed({str(self.path)!r}, {kind}, source={self.config.source})"

    # ----------------------------------------------------------------- embedding
    def embed(self, texts: Items, *, progress: bool = False, batch_size: int | None = None) -> np.ndarray:
        """Embed one text (1-D result) or many (2-D, one row per text, input order).

        Float models give float32 vectors (unit length when the model normalises; an empty
        text gives zeros); binary models give packed sign bits, uint8 [n, ceil(dim / 8)] (an
        empty text gives the all-zero code).
        Any iterable is streamed in blocks of `batch_size`.
        """
        if isinstance(texts, str):
            return self.embed([texts], batch_size=batch_size)[0]
        texts = _text_iterable(texts)
        batch_size = positive_int("batch_size", self.batch_size if batch_size is None else batch_size)
        total = len(texts) if isinstance(texts, Sequence) else None
        if total is not None:  # a short input still goes to every core
            batch_size = share_size(total, batch_size)
        bar = tqdm(total=total, unit="text", disable=not progress, file=sys.stderr, desc="embedding")
        out = np.empty((total, self.output_width), dtype=self.output_dtype) if total is not None else None
        parts, filled = [], 0
        with bar:
            for block in self.iter_embed(texts, batch_size=batch_size):
                if out is not None:  # a known count: each block goes straight into the result
                    if filled + len(block) > total:
                        raise ValueError(f"texts gave more items than its len() of {total} (changed while read?)")
                    out[filled : filled + len(block)] = block
                else:
                    parts.append(block)
                filled += len(block)
                bar.update(len(block))
        if out is not None:
            if filled != total:
                raise ValueError(f"texts gave {filled} items but its len() is {total} (changed while read?)")
            return out
        return np.concatenate([np.zeros((0, self.output_width), dtype=self.output_dtype), *parts])

    def iter_embed(self, texts: Iterable[str], *, batch_size: int | None = None) -> Iterator[np.ndarray]:
        """Embed a stream block by block, in order; blocks are tokenised and pooled on one thread per core.

        A bare string is one text (one block of one row).
        """
        batch_size = positive_int("batch_size", self.batch_size if batch_size is None else batch_size)
        texts = [texts] if isinstance(texts, str) else _text_iterable(texts)
        batches = (block for _, block in _checked_blocks(texts, batch_size))
        return ordered_map(self._embed_block, batches)

    @property
    def output_width(self) -> int:
        """Columns of an `embed` result: dims, or bytes of packed bits."""
        return (self.dim + 7) // 8 if self.binary else self.dim

    @property
    def output_dtype(self) -> np.dtype:
        """float32, or uint8 for packed binary codes."""
        return np.dtype(np.uint8) if self.binary else np.dtype(np.float32)

    def _embed_block(self, block: list[str]) -> np.ndarray:
        """Tokenise and pool one block of texts."""
        return self._vectors(*self.tokens.encode(block))

    def _vectors(self, flat_ids: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """Pool and post-process one tokenised block."""
        parts = self.parts
        if self._binary_table is not None:
            return pack_signs(mean_pool(self._binary_table, flat_ids, lengths))
        with np.errstate(over="ignore", invalid="ignore"):
            pooled = mean_pool(self._table, flat_ids, lengths, parts.token_rows, parts.token_weights)
            if self._post_pooling:
                pooled = np.ascontiguousarray(parts.transform.forward(pooled)[:, : self.dim])
                pooled[lengths == 0] = 0.0
        if not np.isfinite(pooled).all():
            raise ModelFormatError(f"{self.path}: the model's weights overflow float32 in use (values too large)")
        if self.binary:
            return pack_signs(pooled)
        return unit_rows(pooled) if self.config.normalize else pooled

    def token_vectors(self, text: str) -> np.ndarray:
        """Unit vectors of each token of `text` (what MaxSim reranking compares), [tokens, dim]."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a string, got {type(text).__name__}")
        flat, _ = self.tokens.encode([text])
        return self._token_rows(flat)

    def _token_rows(self, flat: np.ndarray) -> np.ndarray:
        parts = self.parts
        rows = parts.token_rows[flat] if parts.token_rows is not None else flat
        vectors = self._table[rows]
        if parts.transform.projection is not None:
            vectors = vectors @ parts.transform.projection[0].T
        return unit_rows(vectors[:, : self.dim])

    # ----------------------------------------------------------------- comparing
    def vectors(self, items: Items) -> np.ndarray:
        """Rows ready to compare: unit float rows or packed codes, from texts or from arrays."""
        if _is_vector_array(items):
            if items.ndim not in (1, 2):
                raise ValueError(f"expected one vector [d] or vectors [n, d], got shape {items.shape}")
            array = items if items.ndim == 2 else items.reshape(1, -1)
            if array.shape[1] == 0:
                raise ValueError("vectors have width 0")
            return self._checked_codes(array) if is_codes(array) else comparable_rows(array)
        embedded = self.embed([items] if isinstance(items, str) else items)
        return embedded if self.binary else comparable_rows(embedded)

    def _bits_for(self, codes: np.ndarray) -> int | None:
        if not is_codes(codes):
            return None
        return self.dim if self.binary and codes.shape[1] == self.output_width else codes.shape[1] * 8

    def _checked_codes(self, codes: np.ndarray) -> np.ndarray:
        """Packed codes whose padding bits (after the last of `_bits_for` bits) are all zero."""
        spare = -self._bits_for(codes) % 8
        if spare and (codes[:, -1] & ((1 << spare) - 1)).any():
            raise ValueError(
                f"codes have bits set after bit {self.dim}: they are not this model's {self.dim}-bit codes"
            )
        return codes

    def _query_and_docs(self, query: Items, docs: Items) -> tuple[np.ndarray, np.ndarray, list[str] | None]:
        """One query row and the doc rows, ready to compare, and the doc texts when texts were given."""
        texts = _texts_or_none(docs)
        q = self.vectors(query)
        if len(q) != 1:
            raise ValueError(f"expected one query, got {len(q)}")
        d = self.vectors(texts if texts is not None else docs)
        if q.shape[1] != d.shape[1]:
            raise ValueError(f"query has width {q.shape[1]} but documents have {d.shape[1]}")
        if is_codes(q) != is_codes(d):
            raise TypeError("cannot compare binary codes with float vectors")
        return q, d, texts

    def _scores(self, query: Items, docs: Items) -> tuple[np.ndarray, list[str] | None]:
        """Similarity of one query to each doc, and the doc texts when texts were given."""
        q, d, texts = self._query_and_docs(query, docs)
        return similarity_matrix(q, d, self._bits_for(d))[0], texts

    def similarity(self, a: Items, b: Items) -> float | np.ndarray:
        """Cosine (or Hamming) similarity: a float for two single items, [len(b)] or [len(a)] for one single item and
        a list, else an array [len(a), len(b)]."""
        va, vb = self.vectors(a), self.vectors(b)
        if is_codes(va) != is_codes(vb):
            raise TypeError("cannot compare binary codes with float vectors")
        if va.shape[1] != vb.shape[1]:
            raise ValueError(f"cannot compare widths {va.shape[1]} and {vb.shape[1]}")
        sims = similarity_matrix(va, vb, self._bits_for(va))
        if _single(a) and _single(b):
            return float(sims[0, 0])
        if _single(a):
            return sims[0]
        if _single(b):
            return sims[:, 0]
        return sims

    def pair_similarity(self, a: Items, b: Items) -> np.ndarray:
        """Similarity of a[i] and b[i] for each i: one score per pair, [n] float32."""
        va, vb = self.vectors(a), self.vectors(b)
        if len(va) != len(vb):
            raise ValueError(f"pair_similarity needs as many items on each side, got {len(va)} and {len(vb)}")
        return paired_similarity(va, vb, self._bits_for(va))

    def rank(self, query: Items, docs: Items, *, sort: bool = True) -> list[Hit]:
        """Every document scored against the query, best first (or in input order with sort=False)."""
        scores, texts = self._scores(query, docs)
        order = top_indices(scores, len(scores)) if sort else np.arange(len(scores))
        return _hits(order, scores[order], texts)

    def topk(self, query: Items, docs: Items, k: int = 10) -> list[Hit]:
        """The k best documents, best first; k larger than the number of documents is clipped."""
        positive_int("k", k)
        q, d, texts = self._query_and_docs(query, docs)
        if is_codes(d):  # select on integer Hamming distances, then score only the hits
            indices, distances = hamming_topk(q, d, k)
            scores = similarity_of_distances(distances[0], self._bits_for(d))
            return _hits(indices[0], scores, texts)
        scores = similarity_matrix(q, d)[0]
        top = top_indices(scores, k)
        return _hits(top, scores[top], texts)

    def filter(self, query: Items, docs: Items, threshold: float = 0.5) -> list[Hit]:
        """Documents whose similarity to the query is at least `threshold`, in input order."""
        threshold = check_threshold(threshold)
        scores, texts = self._scores(query, docs)
        hits = np.flatnonzero(at_least(scores, threshold))
        return _hits(hits, scores[hits], texts)

    def key(self, query: str, candidates: Iterable[str] | None = None) -> Callable[[str], float]:
        """A key function for `sorted`/`max`: similarity to `query`, cached per text.

        Pass the candidates to embed them in one batch up front.
        """
        return SimilarityKey(self, query, candidates)

    # ----------------------------------------------------------------- collections
    def deduplicate(
        self,
        items: Items,
        threshold: float = 0.9,
        *,
        progress: bool = False,
        mode: str = "auto",
        clusters: int | None = None,
        probes: int = DEFAULT_PROBES,
        seed: int = 0,
    ) -> DedupResult:
        """Remove exact copies, then items at least `threshold` similar to an earlier *kept* item.

        `mode`: "exact" compares all pairs; "partitioned" compares pairs inside k-means clusters
        (`clusters`, default about one per 256 items) and each item's `probes` nearest clusters;
        "ann" uses a usearch index (extra `[ann]`); "auto" is exact up to 50,000 distinct items.
        """
        threshold = check_threshold(threshold)
        search = SearchOptions(mode=mode, clusters=clusters, probes=probes, seed=seed)
        texts = _texts_or_none(items)
        if texts is not None and self.binary and search.mode == "ann":
            raise ValueError(ANN_NEEDS_FLOATS)  # before embedding, not after
        if texts is None:
            vectors = self.vectors(items)
            return deduplicate_vectors(
                vectors,
                threshold,
                bits=self._bits_for(vectors),
                block_size=self.block_size,
                progress=progress,
                search=search,
            )
        first = first_copies(texts)
        distinct = np.flatnonzero(first == np.arange(len(texts)))
        embedded = self.embed([texts[i] for i in distinct], progress=progress)
        vectors = embedded if self.binary else comparable_rows(embedded)
        return deduplicate_vectors(
            vectors,
            threshold,
            bits=self.bits,
            block_size=self.block_size,
            items=texts,
            first_copy=first,
            progress=progress,
            search=search,
        )

    def cluster(
        self, items: Items, k: int, *, n_init: int = 3, max_iter: int = 100, seed: int | None = None
    ) -> ClusterResult:
        """Spherical k-means++ clusters (binary codes are clustered as ±1 vectors)."""
        vectors = self.vectors(items)
        if is_codes(vectors):
            vectors = unit_rows(unpack_signs(vectors, self._bits_for(vectors)))
        return spherical_kmeans(vectors, k, n_init=n_init, max_iter=max_iter, seed=seed)

    def rerank(self, query: str, docs: Sequence[str], k: int | None = None, *, method: str = "auto") -> list[Hit]:
        """Late-interaction scores over token vectors, best first; the top k if given.

        `method`: "learned" (the folder's trained scorer, `reranker.safetensors`), "maxsim" (mean
        over query tokens of the best cosine with a document token), or "auto" (learned when the
        folder has a scorer, else MaxSim). An empty query or document (no tokens) scores 0 either way.
        """
        if method not in RERANK_METHODS:
            raise ValueError(f"method must be one of {RERANK_METHODS}, got {method!r}")
        scorer = self.parts.reranker
        if method == "learned" and scorer is None:
            raise ValueError(
                f"{self.path}: the model has no learned reranker ({RERANKER_FILE}); use MaxSim "
                "(method='maxsim', or --method maxsim on the command line)"
            )
        texts = _texts_or_none(docs, "docs")
        if texts is None or not isinstance(query, str):
            raise TypeError("rerank needs a query string and a list of document strings")
        if k is not None:
            positive_int("k", k)
        learned = scorer is not None and method != "maxsim"
        tokens = self._reranker_tokens() if learned else self.tokens
        query_ids, _ = tokens.encode([query])
        query_rows = None if learned else self._token_rows(query_ids)
        table = self._reranker_table() if learned else None
        empty_query = learned and not self._has_content(query_ids, np.array([len(query_ids)]))[0]

        def share_scores(block: list[str]) -> np.ndarray:
            """Tokenise one share of the documents and score it (each core takes a share)."""
            flat, doc_lengths = tokens.encode(block)
            if not learned:
                return maxsim_scores(query_rows, _LazyTokenRows(self, flat), doc_lengths)
            if empty_query:
                return np.zeros(len(block), dtype=np.float32)
            cosines = pooled_cosines(self.parts.embeddings, query_ids, flat, doc_lengths) if scorer.pooled else None
            with np.errstate(over="ignore", invalid="ignore"):  # reported below, naming the file
                scores = scorer.scores(table, query_ids, flat, doc_lengths, cosines)
            scores[~self._has_content(flat, doc_lengths)] = 0.0
            return scores

        # Each distinct document is scored once: copies get the same score (and keep their input order).
        distinct, slot = np.unique(first_copies(texts), return_inverse=True)  # texts checked above: plain shares
        share = share_size(len(distinct), self.batch_size)
        shares = ([texts[i] for i in distinct[start:stop]] for start, stop in blocks(len(distinct), share))
        unique_scores = np.concatenate([np.zeros(0, dtype=np.float32), *ordered_map(share_scores, shares)])
        if not np.isfinite(unique_scores).all():
            raise ModelFormatError(
                f"{self.path / RERANKER_FILE}: the scorer gives non-finite scores (weights too large)"
            )
        scores = unique_scores[slot]
        top = top_indices(scores, k or len(scores))
        return _hits(top, scores[top], texts)

    def _has_content(self, flat_ids: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """Whether each text has a token whose codebook row is not zero (special tokens' rows are): texts without
        one are empty to the learned scorer, as they are to `embed` and MaxSim.

        Token ids index the codebook directly: a learned scorer loads only with a lightembed folder, which
        maps no tokens to shared rows (`token_rows`)."""
        if self._content_tokens is None:
            self._content_tokens = (np.asarray(self.parts.embeddings) != 0).any(axis=1)
        before = np.concatenate([[0], np.cumsum(self._content_tokens[flat_ids], dtype=np.int64)])
        ends = np.cumsum(lengths)
        return before[ends] - before[ends - lengths] > 0

    def _reranker_tokens(self) -> TokenBatcher:
        """The tokenizer capped at the tokens the learned scorer reads (cheaper on long documents)."""
        if self._rerank_tokens is None:
            self._rerank_tokens = capped_tokens(self.parts, self.parts.reranker.max_tokens)
        return self._rerank_tokens

    def _reranker_table(self) -> np.ndarray:
        """The learned scorer's token vectors (made on first use: a projection of the whole codebook)."""
        if self._rerank_table is None:
            self._rerank_table = self.parts.reranker.token_table(self.parts.embeddings)
        return self._rerank_table

    def split(self, text: str, target_size: int = 1500, *, window: int = 2, progress: bool = False) -> list[str]:
        """Cut a long text into chunks of at most `target_size` characters at topic shifts."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a string, got {type(text).__name__}")
        float_model = self if not self.binary else LightEmbed(self.parts, dim=None)
        return semantic_split(
            text, lambda texts: float_model.embed(texts, progress=progress), target_size=target_size, window=window
        )


class _LazyTokenRows:
    """The unit token vectors of token ids, made slice by slice, so MaxSim holds one block of them at a time."""

    def __init__(self, model: LightEmbed, flat_ids: np.ndarray) -> None:
        self.model = model
        self.flat_ids = flat_ids

    def __getitem__(self, rows: slice) -> np.ndarray:
        return self.model._token_rows(self.flat_ids[rows])


class SimilarityKey:
    """Callable similarity-to-a-query with a per-text cache; see `LightEmbed.key`."""

    def __init__(self, model: LightEmbed, query: str, candidates: Iterable[str] | None = None) -> None:
        self.model = model
        self.query = model.vectors(query)
        if len(self.query) != 1:
            raise ValueError(f"expected one query, got {len(self.query)}")
        self.cache: dict[str, float] = {}
        if candidates is not None:
            self.prime(candidates)

    def prime(self, texts: Iterable[str]) -> None:
        """Score the texts not yet cached in one batch (a bare string is one text)."""
        texts = [texts] if isinstance(texts, str) else _text_iterable(texts)
        missing = list(dict.fromkeys(t for t in texts if t not in self.cache))
        if missing:
            scores, _ = self.model._scores(self.query, missing)
            self.cache.update(zip(missing, scores.tolist()))

    def __call__(self, text: str) -> float:
        if not isinstance(text, str):
            raise TypeError(f"a similarity key scores texts (str), got {type(text).__name__}")
        if text not in self.cache:
            self.prime([text])
        return self.cache[text]


def load(
    name: str | os.PathLike[str] | None = None,
    *,
    dim: int | None = None,
    binary: bool = False,
    revision: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    offline: bool | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> LightEmbed:
    """Load a model: None for the bundled default (no network), a local folder or codebook
    file, or a Hugging Face Hub id `owner/name` (cached; `HF_HUB_OFFLINE` honoured).

    `dim` truncates to the first `dim` dimensions (Matryoshka); `binary=True` makes every
    output packed sign bits.
    """
    path = resolve_model(name, revision=revision, cache_dir=cache_dir, offline=offline)
    return LightEmbed(read_model(path), dim=dim, binary=binary, batch_size=batch_size, block_size=block_size)


# --------------------------------------------------------------------- helpers
def capped_tokens(parts: ModelParts, max_tokens: int) -> TokenBatcher:
    """The model's tokenisation capped at `max_tokens` (what the learned scorer reads; training uses the same)."""
    config = parts.config
    cap = min(config.max_length, max_tokens)
    tokenizer = Tokenizer.from_str(parts.tokenizer.to_str())  # its own copy: TokenBatcher sets the truncation
    return TokenBatcher(tokenizer, config, cap)


def _text_iterable(texts: object) -> Iterable[str]:
    if texts is None:
        raise TypeError("texts must be a string or an iterable of strings, got None")
    if isinstance(texts, np.ndarray):
        if _is_vector_array(texts):
            raise TypeError(f"expected texts, got a numeric array of dtype {texts.dtype}")
        if texts.ndim != 1:
            raise TypeError(f"expected a 1-D array of texts, got shape {texts.shape} (pass one text as a str)")
        return texts.tolist()
    if isinstance(texts, (bytes, bytearray)) or not isinstance(texts, Iterable):
        raise TypeError(f"texts must be a string or an iterable of strings, got {type(texts).__name__}")
    return texts


def _checked_blocks(texts: Iterable[str], size: int) -> Iterator[tuple[int, list[str]]]:
    """Blocks of at most `size` texts, each item checked to be a string."""
    iterator = iter(texts)
    start = 0
    while block := list(islice(iterator, size)):
        if not all(isinstance(text, str) for text in block):
            bad = next(i for i, text in enumerate(block) if not isinstance(text, str))
            raise TypeError(f"texts[{start + bad}] is {type(block[bad]).__name__}, expected str")
        yield start, block
        start += len(block)


def _texts_or_none(items: Items, name: str = "items") -> list[str] | None:
    """Items as a list of texts, or None when they are vectors; a non-text is named as `name[i]`."""
    if _is_vector_array(items):
        return None
    if isinstance(items, str):
        return [items]
    texts = list(_text_iterable(items))
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"{name}[{i}] is {type(text).__name__}, expected str")
    return texts


def _single(items: Items) -> bool:
    """One text, or one vector (a 1-D numeric array)."""
    return isinstance(items, str) or (_is_vector_array(items) and items.ndim == 1)


def _is_vector_array(items: object) -> bool:
    """True for a real numeric array (vectors or packed codes), False for texts and non-arrays.

    Raises TypeError for arrays that are neither (bytes, complex, dates, records).
    """
    if not isinstance(items, np.ndarray) or items.dtype.kind in "UO":
        return False
    if items.dtype.kind in "biuf":
        return True
    raise TypeError(f"expected texts (str) or vectors (real numbers), got an array of dtype {items.dtype}")


def _hits(indices: np.ndarray, scores: np.ndarray, texts: list[str] | None) -> list[Hit]:
    """One `Hit` per index, `scores[j]` being the score of `indices[j]`."""
    return [Hit(int(i), float(s), texts[i] if texts is not None else None) for i, s in zip(indices, scores)]
