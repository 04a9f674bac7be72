"""Semantic splitting: cut a long text into coherent chunks at the weakest links between sentences."""

from __future__ import annotations

import re
from collections.abc import Callable
from itertools import pairwise

import numpy as np

from .checks import positive_int
from .scoring import blocks

LINK_BLOCK = 4096  # boundaries whose link is computed at once
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
    """Cosine between the mean of the `window` sentences before each boundary and after it.

    Boundaries go `LINK_BLOCK` at a time, each block with running sums of only the rows it reads.
    """
    n, dim = vectors.shape
    link = np.empty(max(n - 1, 0))
    for start, stop in blocks(n - 1, LINK_BLOCK):
        lo, hi = max(start + 1 - window, 0), min(stop + window, n)  # the rows this block's windows cover
        running = np.zeros((hi - lo + 1, dim))
        np.cumsum(vectors[lo:hi], axis=0, dtype=np.float64, out=running[1:])
        b = np.arange(start + 1, stop + 1)
        left = running[b - lo] - running[np.maximum(b - window, 0) - lo]
        right = running[np.minimum(b + window, n) - lo] - running[b - lo]
        norms = np.sqrt(np.einsum("ij,ij->i", left, left) * np.einsum("ij,ij->i", right, right))
        dots = np.einsum("ij,ij->i", left, right)
        link[start:stop] = np.where(norms > 0, dots / np.maximum(norms, 1e-12), 1.0)
    return link


def _balanced(link: np.ndarray, offsets: np.ndarray, total: int) -> np.ndarray:
    """Penalise cuts that leave a sliver, so chunks stay near the target size (lower is better); between links
    within TIE_BREAK of each other the cut nearer the middle wins."""
    share = offsets / max(total, 1)
    return link + 0.5 * (np.abs(share - 0.5) > 0.4) + TIE_BREAK * np.abs(share - 0.5)
