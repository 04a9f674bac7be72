"""Late-interaction reranking: MaxSim of query token vectors against each document's tokens."""

from __future__ import annotations

from typing import Protocol

import numpy as np

# Query-by-document-token similarities, and document token vector values, held at once (floats).
MAXSIM_BLOCK = 1 << 22


class TokenRows(Protocol):
    """Unit token vectors [T, d], read a slice of rows at a time (an array, or rows made on demand)."""

    def __getitem__(self, rows: slice) -> np.ndarray: ...


def maxsim_scores(query: np.ndarray, doc_tokens: TokenRows, doc_lengths: np.ndarray) -> np.ndarray:
    """Mean over query tokens of the best cosine with any token of each document.

    `query` [q, d] and `doc_tokens` [T, d] are unit rows; `doc_lengths` [n] splits `doc_tokens`
    into documents. An empty query or document scores 0. Both the similarities and the document
    token rows held at once are bounded by MAXSIM_BLOCK values.
    """
    n = len(doc_lengths)
    scores = np.zeros(n, dtype=np.float32)
    if len(query) == 0 or n == 0:
        return scores
    starts = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(doc_lengths, out=starts[1:])
    tokens_per_block = max(1, MAXSIM_BLOCK // max(query.shape))
    doc = 0
    while doc < n:
        # Take whole documents until the block holds about tokens_per_block tokens.
        stop = int(np.searchsorted(starts, starts[doc] + tokens_per_block, side="right")) - 1
        stop = min(n, max(stop, doc + 1))
        lengths = doc_lengths[doc:stop]
        present = np.flatnonzero(lengths > 0)
        if len(present):
            sims = query @ doc_tokens[starts[doc] : starts[stop]].T  # [q, tokens]
            offsets = (starts[doc:stop] - starts[doc])[present]
            best = np.maximum.reduceat(sims, offsets, axis=1)  # [q, present docs]
            scores[doc + present] = np.clip(best.mean(axis=0), -1.0, 1.0)  # float32 rounding can pass 1
        doc = stop
    return scores
