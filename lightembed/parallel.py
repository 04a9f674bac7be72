"""Block-level parallelism for tokenising and pooling: one thread per core (2 to 8), results in input order.

The Rust tokenizer releases the GIL while it encodes a batch, so threads that each encode a whole
block run on every core, and the Python work of one block (ids out of the encodings, pooling)
overlaps the Rust work of another. This beats the tokenizer's own per-batch threads, which leave
cores idle at the end of each batch and during the Python work. lightembed therefore sets
`TOKENIZERS_PARALLELISM=false` when the variable is unset (a user's explicit setting is kept).
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import chain, islice
from typing import TypeVar

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

In = TypeVar("In")
Out = TypeVar("Out")

MAX_WORKERS = 8


def worker_count() -> int:
    """Threads for block work: the cores this process may use (at least 2, so work overlaps; at most 8)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(2, min(cores, MAX_WORKERS))


MIN_SHARE = 32  # items per share at least, where the limit allows


def share_size(total: int, limit: int) -> int:
    """Block size that gives each worker a share of `total` items: at most `limit`, and at least `MIN_SHARE` where
    `limit` allows."""
    return min(limit, max(MIN_SHARE, -(-total // worker_count())))


def ordered_map(function: Callable[[In], Out], items: Iterable[In], workers: int | None = None) -> Iterator[Out]:
    """`map(function, items)` on a thread pool, yielding in input order.

    At most `workers + 1` items are in flight, so memory stays bounded for any stream.
    """
    iterator = iter(items)
    head = list(islice(iterator, 2))
    if len(head) < 2:  # nothing to overlap: no threads to start
        yield from map(function, head)
        return
    workers = worker_count() if workers is None else workers
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending: deque[Future[Out]] = deque()
        for item in chain(head, iterator):
            pending.append(pool.submit(function, item))
            if len(pending) > workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
