"""Where lightembed's embedding time goes: each stage of `LightEmbed.iter_embed` timed alone.

Runs on the throughput benchmark's texts (same sources, seed and size) and times, for the
whole text set in lightembed's batch size, each stage serially:

1. character pre-cut (`text[:max_chars]`)
2. `Tokenizer.encode_batch_fast` (Rust, parallel)
3. ids out of the Encoding objects (`[e.ids for e in encodings]`)
4. flattening to numpy (`np.fromiter(map(len, ...))`, `np.fromiter(chain(...))`)
5. dropping ignored token ids (`TokenBatcher._drop_ignored`)
6. pooling (`mean_pool`)
7. normalising (`unit_rows`)

then the stages as lightembed runs them: `TokenBatcher.encode` + `LightEmbed._vectors` serially,
and `embed` itself (tokenising the next block in a thread while pooling this one). Optionally
runs cProfile over `embed`.

Usage:
    .venv/bin/python benchmarks/profile_embed.py [--repeats 3] [--cprofile] [--out benchmarks/results/profile_embed.json]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import sys
from collections.abc import Callable
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common
from throughput import build_texts


def timed(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """Best of `repeats` after one warm-up call."""
    best, _, result = common.best_of(fn, repeats)
    return best, result


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model folder (default: bundled default)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sst", type=int, default=9000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cprofile", action="store_true", help="also print a cProfile of embed()")
    parser.add_argument("--out", type=Path, default=common.RESULTS_DIR / "profile_embed.json")
    args = parser.parse_args(argv)

    import lightembed
    from lightembed.pooling import mean_pool
    from lightembed.scoring import unit_rows

    data = common.data_dir()
    common.check_data(data)
    texts, _ = build_texts(data, args.sst, args.seed)
    model = lightembed.load(args.model)
    tb = model.tokens
    size = model.batch_size
    blocks = [texts[i : i + size] for i in range(0, len(texts), size)]
    cap = tb.max_chars
    common.wait_for_quiet(0.2, 120)

    stages: dict[str, float] = {}
    stages["1 char pre-cut"], cut_blocks = timed(lambda: [[t[:cap] for t in b] for b in blocks], args.repeats)
    stages["2 encode_batch_fast"], encodings = timed(
        lambda: [tb.tokenizer.encode_batch_fast(b, add_special_tokens=tb.add_special_tokens) for b in cut_blocks],
        args.repeats,
    )
    stages["3 ids from Encoding objects"], id_lists = timed(
        lambda: [[e.ids for e in enc] for enc in encodings], args.repeats
    )

    def flatten() -> list[tuple[np.ndarray, np.ndarray]]:
        out = []
        for ids in id_lists:
            lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
            flat = np.fromiter(chain.from_iterable(ids), dtype=np.int64, count=int(lengths.sum()))
            out.append((flat, lengths))
        return out

    stages["4 flatten to numpy (fromiter)"], flats = timed(flatten, args.repeats)
    if tb._keep is not None:
        stages["5 drop ignored ids"], dropped = timed(lambda: [tb._drop_ignored(f, n) for f, n in flats], args.repeats)
    else:
        stages["5 drop ignored ids"], dropped = 0.0, flats
    parts = model.parts
    stages["6 mean_pool"], pooled = timed(
        lambda: [mean_pool(model._table, f, n, parts.token_rows, parts.token_weights) for f, n in dropped],
        args.repeats,
    )
    stages["7 unit_rows"], _ = timed(lambda: [unit_rows(p) for p in pooled], args.repeats)

    whole: dict[str, float] = {}
    whole["TokenBatcher.encode, all blocks"], encoded = timed(lambda: [tb.encode(b) for b in blocks], args.repeats)
    whole["LightEmbed._vectors, all blocks"], _ = timed(
        lambda: [model._vectors(f, n) for f, n in encoded], args.repeats
    )
    whole["serial encode + _vectors"], _ = timed(lambda: [model._vectors(*tb.encode(b)) for b in blocks], args.repeats)
    whole["embed (pipelined)"], _ = timed(lambda: model.embed(texts), args.repeats)

    tokens = int(sum(len(f) for f, _ in flats))
    n = len(texts)
    rows = [
        [k, f"{v:.3f}", f"{v / n * 1e6:.1f}", f"{n / v:,.0f}" if v else "-"] for k, v in {**stages, **whole}.items()
    ]
    print(f"### Where embed time goes ({n:,} texts, {tokens:,} tokens, batch {size})\n")
    print(common.markdown_table(["stage", "seconds", "us/text", "texts/s if alone"], rows))

    profile_text = None
    if args.cprofile:
        profiler = cProfile.Profile()
        profiler.enable()
        model.embed(texts)
        profiler.disable()
        stream = io.StringIO()
        pstats.Stats(profiler, stream=stream).sort_stats("tottime").print_stats(15)
        profile_text = stream.getvalue()
        print("\n```\n" + profile_text + "```")

    payload = {
        "benchmark": "profile_embed",
        "machine": common.machine_info(),
        "texts": n,
        "tokens": tokens,
        "batch_size": size,
        "stages_s": stages,
        "whole_s": whole,
        "cprofile": profile_text,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
