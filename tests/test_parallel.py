"""Block-level parallelism: input order, bounded look-ahead, errors surface, same vectors as one thread."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from tiny import WORDS, write_tiny_model

import lightembed
from lightembed import parallel
from lightembed.parallel import ordered_map, worker_count


def test_ordered_map_keeps_input_order_whatever_finishes_first() -> None:
    delays = [random.Random(3).uniform(0, 0.01) for _ in range(40)]

    def slow_square(i: int) -> int:
        time.sleep(delays[i])
        return i * i

    assert list(ordered_map(slow_square, range(40), workers=4)) == [i * i for i in range(40)]


def test_ordered_map_reads_at_most_workers_plus_one_items_ahead() -> None:
    consumed = 0

    def items() -> Iterator[int]:
        nonlocal consumed
        for i in range(100):
            consumed += 1
            yield i

    results = ordered_map(lambda i: i, items(), workers=3)
    assert next(results) == 0
    assert consumed <= 4
    assert list(results) == list(range(1, 100))


def test_ordered_map_raises_the_workers_error() -> None:
    def fail_on_five(i: int) -> int:
        if i == 5:
            raise ValueError("item 5 is bad")
        return i

    with pytest.raises(ValueError, match="item 5 is bad"):
        list(ordered_map(fail_on_five, range(10), workers=2))


def test_worker_count_is_between_two_and_eight() -> None:
    assert 2 <= worker_count() <= 8


@pytest.mark.parametrize(("user_setting", "expected"), [(None, "false"), ("true", "true")])
def test_tokenizer_threads_are_off_unless_the_user_set_them(user_setting: str | None, expected: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "TOKENIZERS_PARALLELISM"}
    if user_setting is not None:
        env["TOKENIZERS_PARALLELISM"] = user_setting
    code = "import os, lightembed; print(os.environ['TOKENIZERS_PARALLELISM'])"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == expected


def test_parallel_blocks_give_the_same_vectors_as_one_block(tmp_path: Path) -> None:
    model = lightembed.load(write_tiny_model(tmp_path / "m"))
    texts = [" ".join(WORDS[(i + j) % len(WORDS)] for j in range(i % 9)) for i in range(500)]
    whole = model.embed(texts, batch_size=1000)
    assert np.array_equal(model.embed(texts, batch_size=7), whole)
    assert np.array_equal(np.concatenate(list(model.iter_embed(iter(texts), batch_size=13))), whole)


def test_share_size_splits_short_inputs_across_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parallel, "worker_count", lambda: 4)
    assert parallel.share_size(1000, 2048) == 250  # every worker gets a block
    assert parallel.share_size(100_000, 2048) == 2048  # long inputs keep the limit
    assert parallel.share_size(10, 2048) == 32  # tiny inputs are not cut into crumbs
    assert parallel.share_size(1000, 0) == 0  # a bad limit stays visible to the caller's check


def test_a_single_item_runs_in_the_calling_thread() -> None:
    caller = threading.get_ident()
    assert list(ordered_map(lambda _: threading.get_ident(), [0])) == [caller]
    assert list(ordered_map(lambda i: i, [])) == []
