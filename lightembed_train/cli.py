"""The `lightembed-train` command line: one subcommand per training step.

Each subcommand is registered by a function that adds its parser and sets a `handler`
taking the parsed arguments and the command line (for provenance) and returning an exit code.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from collections.abc import Callable, Sequence

from lightembed.errors import LightEmbedError

PROG = "lightembed-train"
logger = logging.getLogger(__name__)

Handler = Callable[[argparse.Namespace, str], int]


def main(argv: Sequence[str] | None = None) -> int:
    """Run `lightembed-train`; returns the exit code (2 for bad input)."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(args_list)
    if getattr(args, "handler", None) is None:
        parser.print_help(sys.stderr)
        return 2
    _configure_logging(args.quiet)
    command = shlex.join([PROG, *args_list])
    try:
        return int(args.handler(args, command))
    except (LightEmbedError, FileNotFoundError, NotADirectoryError, ValueError, ImportError) as exc:
        logger.debug("failed", exc_info=True)
        message = " ".join(str(exc).split())
        print(f"{PROG}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(prog=PROG, description="Build and improve lightembed model folders.")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars or log lines")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for register in SUBCOMMANDS:
        register(subparsers)
    return parser


def add_distill(subparsers: argparse._SubParsersAction) -> None:
    """`distill`: teacher -> token vectors -> PCA -> SIF weights -> model folder."""
    p = subparsers.add_parser(
        "distill",
        help="distil a static codebook from a sentence-transformer",
        description=(
            "Distil a static codebook from a sentence-transformer folder. Corpus files are plain "
            "text, one text per line, used to count token frequencies; a sidecar FILE.meta.json "
            "(as written by benchmarks/make_frequency_corpus.py) is copied into the model card."
        ),
    )
    p.add_argument("--out", required=True, help="output model folder")
    p.add_argument("--dim", type=int, default=256, help="PCA dimensions to keep (default 256)")
    p.add_argument("--teacher", default=None, help="sentence-transformers folder (default: packaged all-MiniLM-L6-v2)")
    p.add_argument("--corpus", nargs="+", default=[], metavar="FILE", help="plain-text files for token frequencies")
    p.add_argument("--max-length", type=int, default=512, help="token cap stored in the model config (default 512)")
    p.add_argument("--dtype", choices=("float16", "float32"), default="float16", help="codebook dtype")
    p.add_argument("--sif", type=float, default=1e-3, help="SIF coefficient a in a/(a+p) (default 1e-3)")
    p.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    p.add_argument("--batch-size", type=int, default=1024, help="token sequences per teacher batch")
    p.set_defaults(handler=_run_distill)


def _run_distill(args: argparse.Namespace, command: str) -> int:
    from .distill import distill

    if args.quiet:
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()

    folder = distill(
        args.teacher,
        args.out,
        dim=args.dim,
        corpus_files=args.corpus,
        dtype=args.dtype,
        max_length=args.max_length,
        sif_a=args.sif,
        device=args.device,
        batch_size=args.batch_size,
        progress=not args.quiet,
        command=command,
    )
    print(folder)
    return 0


SUBCOMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [add_distill]


def _configure_logging(quiet: bool) -> None:
    """Log lines from lightembed_train on stderr (the package logger only, never the root)."""
    package_logger = logging.getLogger("lightembed_train")
    package_logger.setLevel(logging.WARNING if quiet else logging.INFO)
    if not package_logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(f"{PROG}: %(message)s"))
        package_logger.addHandler(handler)
