"""Plot the suite's average score against embedding dimension, one line per model family.

Reads a results file written by `benchmarks/quality.py` and draws every encoder whose name ends
in a dimension (`...@64`, `... [:64]`); an encoder without one (the teacher) is drawn at its
full width as a single point.

Usage:
    python benchmarks/plot_dims.py --results benchmarks/results/quality.json --out benchmarks/results/dims.png
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import defaultdict
from pathlib import Path

_DIM = re.compile(r"(?:@| \[:)(\d+)\]?$")
FULL_WIDTH = {"all-MiniLM-L6-v2": 384}


def family_and_dim(name: str) -> tuple[str, int] | None:
    """('lightembed default', 64) for 'lightembed default@64' and for 'lightembed default@256 [:64]'.

    None when the width is unknown.
    """
    match = _DIM.search(name)
    if match:
        return re.sub(r"@\d+$", "", name[: match.start()]), int(match[1])
    if name in FULL_WIDTH:
        return name, FULL_WIDTH[name]
    return None


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, required=True, help="JSON written by benchmarks/quality.py")
    parser.add_argument("--out", type=Path, required=True, help="PNG file to write")
    args = parser.parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    encoders = json.loads(args.results.read_text(encoding="utf-8"))["encoders"]
    lines: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for encoder in encoders:
        parsed = family_and_dim(encoder["encoder"])
        if parsed is not None:
            lines[parsed[0]].append((parsed[1], encoder["average"]))
    if not lines:
        print(f"{args.results}: no encoder with a known dimension", file=sys.stderr)
        return 2
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for family, points in sorted(lines.items()):
        dims, scores = zip(*sorted(points))
        axes.plot(dims, scores, marker="o", label=family)
    axes.set_xscale("log", base=2)
    all_dims = sorted({d for points in lines.values() for d, _ in points})
    axes.set_xticks(all_dims, [str(d) for d in all_dims])
    axes.set_xlabel("dimensions")
    axes.set_ylabel("suite average (16 tasks)")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.out, dpi=120)
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
