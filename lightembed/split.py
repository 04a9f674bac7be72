"""Semantic splitting: cut a long text into coherent chunks at the weakest links between sentences."""

from __future__ import annotations

import re
from collections.abc import Callable
from itertools import pairwise

import numpy as np

from .checks import positive_int

TIE_BREAK = 1e-3  # between links this close, the cut nearer the middle wins (uniform text: balanced chunks)
_SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s+|\n\s*")


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Contiguous (start, stop) spans, one per sentence or line, that together cover `text`."""
    cuts = [m.end() for m in _SENTENCE_END.finditer(text) if 0 < m.end() < len(text)]
    edges = [0, *cuts, len(text)]
    return [(a, b) for a, b in pairwise(edges) if b > a]


def _hard_spans(text: str, start: int, stop: int, size: int) -> list[tuple[int, int]]:
    """Break one over-long span into pieces of at most `size` characters, at spaces where possible."""
    pieces = []
    while stop - start > size:
        cut = text.rfind(" ", start + 1, start + size)
        cut = cut + 1 if cut > start else start + size
        pieces.append((start, cut))
        start = cut
    pieces.append((start, stop))
    return pieces


def semantic_split(
    text: str,
    embed: Callable[[list[str]], np.ndarray],
    target_size: int = 1500,
    window: int = 2,
) -> list[str]:
    """Chunks of at most `target_size` characters whose concatenation is `text`.

    Sentences are embedded once; a chunk that is too long is cut at the boundary where the
    `window` sentences before and after are least similar, recursively.
    """
    target_size = positive_int("target_size", target_size)
    window = positive_int("window", window)
    if not text:
        return []
    if len(text) <= target_size:
        return [text]
    spans = [piece for a, b in sentence_spans(text) for piece in _hard_spans(text, a, b, target_size)]
    vectors = embed([text[a:b] for a, b in spans])
    link = _link_similarity(vectors, window)
    ends = np.array([b for _, b in spans])
    starts = np.array([a for a, _ in spans])
    chunks: list[tuple[int, int]] = []
    stack = [(0, len(spans))]
    while stack:
        lo, hi = stack.pop()
        if ends[hi - 1] - starts[lo] <= target_size or hi - lo == 1:
            chunks.append((lo, hi))
            continue
        cut = (
            lo
            + 1
            + int(np.argmin(_balanced(link[lo : hi - 1], starts[lo + 1 : hi] - starts[lo], ends[hi - 1] - starts[lo])))
        )
        stack.extend([(cut, hi), (lo, cut)])
    chunks.sort()
    return [text[starts[lo] : ends[hi - 1]] for lo, hi in chunks]


def _link_similarity(vectors: np.ndarray, window: int) -> np.ndarray:
    """Cosine between the mean of the `window` sentences before each boundary and after it."""
    cumulative = np.vstack([np.zeros((1, vectors.shape[1]), dtype=np.float64), np.cumsum(vectors, axis=0)])
    n = len(vectors)
    b = np.arange(1, n)
    left = cumulative[b] - cumulative[np.maximum(b - window, 0)]
    right = cumulative[np.minimum(b + window, n)] - cumulative[b]
    norms = np.linalg.norm(left, axis=1) * np.linalg.norm(right, axis=1)
    return np.where(norms > 0, np.sum(left * right, axis=1) / np.maximum(norms, 1e-12), 1.0)


def _balanced(link: np.ndarray, offsets: np.ndarray, total: int) -> np.ndarray:
    """Penalise cuts that leave a sliver, so chunks stay near the target size (lower is better); between links
    within TIE_BREAK of each other the cut nearer the middle wins."""
    share = offsets / max(total, 1)
    return link + 0.5 * (np.abs(share - 0.5) > 0.4) + TIE_BREAK * np.abs(share - 0.5)
