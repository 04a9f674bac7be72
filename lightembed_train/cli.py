"""The `lightembed-train` command line: one subcommand per training step.

Each subcommand is registered by a function that adds its parser and sets a `handler`
taking the parsed arguments and the command line (for provenance) and returning an exit code.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from lightembed.cli import sigterm_as_interrupt, with_value_hint
from lightembed.errors import LightEmbedError

from .checks import doublings, non_negative_int
from .outputs import check_outputs, described_inputs, write_json

CODEBOOK_DTYPES = ("float16", "float32", "int8")  # lightembed_train.distill.DTYPES, without importing torch
CONTRASTIVE_WEIGHT = 0.1  # default weight of the InfoNCE term of --pairs

PROG = "lightembed-train"
logger = logging.getLogger(__name__)


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
        with sigterm_as_interrupt():
            return int(args.handler(args, command))
    except (LightEmbedError, OSError, ValueError, ImportError) as exc:  # OSError: files and folders that cannot be used
        logger.debug("failed", exc_info=True)
        message = " ".join(str(exc).split())
        print(f"{PROG}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


class _Parser(argparse.ArgumentParser):
    """argparse's parser (usage and exit status 2 on an error), with a hint for values that start with '-'."""

    def error(self, message: str) -> NoReturn:
        super().error(with_value_hint(message))


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand registered."""
    parser = _Parser(prog=PROG, description="Build and improve lightembed model folders.")
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
    p.add_argument("--dtype", choices=CODEBOOK_DTYPES, default="float16", help="codebook dtype (int8: a scale per row)")
    p.add_argument("--sif", type=float, default=1e-3, help="SIF coefficient a in a/(a+p) (default 1e-3)")
    p.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    p.add_argument("--batch-size", type=int, default=1024, help="token sequences per teacher batch")
    p.set_defaults(handler=_run_distill)


def _run_distill(args: argparse.Namespace, command: str) -> int:
    from .distill import distill

    _check_early(args, folder=True)
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


def add_tune(subparsers: argparse._SubParsersAction) -> None:
    """`tune`: learn the codebook rows so pooled texts match the teacher (Matryoshka cosine loss)."""
    p = subparsers.add_parser(
        "tune",
        help="tune a codebook on plain text against the teacher",
        description=(
            "Tune the codebook of a model folder so that its mean-pooled vectors match the teacher's "
            "sentence embeddings (PCA-rotated) at every Matryoshka prefix size. The teacher's vectors "
            "are cached in --cache. The epoch with the best Spearman on the dev pairs (STS-B dev and "
            "SICK trial from the shared data folder, when it is there) is kept."
        ),
    )
    p.add_argument("--base", default=None, help="model folder to start from (default: the bundled default)")
    _add_corpus_arguments(p)
    p.add_argument(
        "--dims",
        default=None,
        help="Matryoshka prefix sizes (default: 32, 64, 128, ... below the width, and the width)",
    )
    p.add_argument("--epochs", type=int, default=None, help="passes over the corpus (default 4)")
    p.add_argument("--batch-size", type=int, default=None, help="texts per step (default 256)")
    p.add_argument("--lr", type=float, default=None, help="Adam learning rate (default 3e-3)")
    p.add_argument("--seed", type=non_negative_int, default=0, help="sampling and shuffling seed (default 0)")
    _add_dev_and_pairs_arguments(p)
    p.add_argument(
        "--pair-sources",
        default=None,
        metavar="NAMES",
        help="comma-separated pair sources for --pairs (default: all but the TREC and Banking77 label pairs; "
        "see lightembed_train.pairs.SOURCES)",
    )
    p.add_argument("--dtype", choices=CODEBOOK_DTYPES, default="float16", help="codebook dtype (int8: a scale per row)")
    p.add_argument("--device", default=None, help="torch device for the teacher (default: cuda when available)")
    p.set_defaults(handler=_run_tune)


def _run_tune(args: argparse.Namespace, command: str) -> int:
    from .tune import TuneSettings, tune_model

    if args.pair_sources is not None and not args.pairs:
        raise ValueError("--pair-sources goes with --pairs")
    given = {"epochs": args.epochs, "batch_size": args.batch_size, "learning_rate": args.lr}
    settings = TuneSettings(
        dims=_int_list(args.dims) if args.dims else None,
        seed=args.seed,
        contrastive_weight=_contrastive_weight(args),
        **{k: v for k, v in given.items() if v is not None},
    )
    _check_early(args, folder=True)
    sources = None if args.pair_sources is None else [name.strip() for name in args.pair_sources.split(",")]
    dev, pairs = _dev_and_pairs(args.data, args.no_dev, args.pairs, sources)
    folder = tune_model(
        args.base,
        args.corpus,
        args.out,
        teacher_path=args.teacher,
        dev=dev,
        pairs=pairs,
        settings=settings,
        max_texts=args.max_texts,
        cache_dir=args.cache,
        dtype=args.dtype,
        device=args.device,
        progress=not args.quiet,
        command=command,
    )
    print(folder)
    return 0


def add_adapt(subparsers: argparse._SubParsersAction) -> None:
    """`adapt`: train a Matryoshka adaptor (residual MLP) so that short prefixes keep the full ranking."""
    p = subparsers.add_parser(
        "adapt",
        help="train a Matryoshka adaptor for short prefixes of any embeddings",
        description=(
            "Train a Matryoshka adaptor: a rotation then a residual MLP after the embedding, so that every "
            "prefix of --dims columns keeps the full embedding's similarities (unsupervised, on the corpus), "
            "and, with --queries and --relevance, ranks relevant documents first (supervised). Vectors (.npy) "
            "give a transform file that lightembed.load_transform applies to them; texts are embedded with "
            "--model and give a new model folder. A group-disjoint share of the queries (--dev-fraction) "
            "chooses the epochs and gives the scores printed at the end."
        ),
    )
    p.add_argument("--corpus", required=True, help="documents: vectors [n, dim] (.npy) or texts (.txt/.jsonl/.csv)")
    p.add_argument("--out", required=True, help="output: a transform file (vectors) or a model folder (texts)")
    p.add_argument("--queries", default=None, help="training queries, in the same kind of file as --corpus")
    p.add_argument(
        "--relevance", default=None, help="relevant pairs: 'query_row<TAB>corpus_row' per line (0-based rows)"
    )
    p.add_argument("--extra", nargs="+", default=[], metavar="FILE", help="more unlabelled corpus files")
    p.add_argument("--model", default=None, help="lightembed model folder that embeds texts (default: the bundled)")
    p.add_argument(
        "--dims", default=None, help="prefix sizes to train (default: 16,32,64,128 below the width); the width is added"
    )
    p.add_argument("--hidden", type=int, default=None, help="hidden width of the MLP (default: the embedding width)")
    p.add_argument("--activation", choices=("relu", "gelu", "tanh"), default="relu", help="MLP activation")
    p.add_argument(
        "--rotation",
        choices=("learned", "energy", "none"),
        default="learned",
        help="the rotation before the MLP: learned from the energy order (default), that order fixed, or none",
    )
    p.add_argument("--epochs", type=int, default=None, help="unsupervised epochs at most (default 40)")
    p.add_argument("--supervised-epochs", type=int, default=None, help="supervised epochs at most (default 40)")
    p.add_argument("--lr", type=float, default=None, help="Adam learning rate (default 1e-3)")
    p.add_argument("--temperature", type=float, default=None, help="ranking loss temperature (default 0.05)")
    p.add_argument("--patience", type=int, default=None, help="epochs without a better dev score before a stage stops")
    p.add_argument(
        "--full-width-tolerance",
        type=float,
        default=None,
        help="never keep an epoch whose full-width dev score falls more than this below the input's (default 1.0)",
    )
    p.add_argument("--dev-fraction", type=float, default=0.2, help="share of queries kept for dev (default 0.2)")
    p.add_argument(
        "--seed", type=non_negative_int, default=0, help="split, initialisation and shuffling seed (default 0)"
    )
    p.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    p.add_argument("--plot", default=None, metavar="PNG", help="plot the dev score against dimension (matplotlib)")
    p.add_argument("--report", default=None, metavar="JSON", help="write the settings, scores and epochs as JSON")
    p.set_defaults(handler=_run_adapt)


def _run_adapt(args: argparse.Namespace, command: str) -> int:
    import numpy as np

    from lightembed import save_transform
    from lightembed.textio import InputSpec, read_texts

    from .adapt import AdaptSettings
    from .adapt_fit import adapt_model, fit_adaptor, load_vectors, plot_scores, read_relevance, score_table

    given = {
        "epochs": args.epochs,
        "supervised_epochs": args.supervised_epochs,
        "learning_rate": args.lr,
        "temperature": args.temperature,
        "hidden": args.hidden,
        "patience": args.patience,
        "full_width_tolerance": args.full_width_tolerance,
    }
    settings = AdaptSettings(
        dims=None if args.dims is None else _int_list(args.dims),
        activation=args.activation,
        rotation=args.rotation,
        seed=args.seed,
        **{k: v for k, v in given.items() if v is not None},
    )
    settings.check()  # before the corpus is read (and embedded)
    if not 0 < args.dev_fraction < 1:
        raise ValueError(f"--dev-fraction must lie strictly between 0 and 1, got {args.dev_fraction}")
    if (args.queries is None) != (args.relevance is None):
        raise ValueError("--queries and --relevance go together")
    _check_early(args, folder=Path(args.corpus).suffix != ".npy")
    relevance = read_relevance(args.relevance) if args.relevance else None
    common = {
        "settings": settings,
        "dev_fraction": args.dev_fraction,
        "device": args.device,
        "progress": not args.quiet,
    }
    if Path(args.corpus).suffix == ".npy":
        if args.model is not None:
            raise ValueError("--model embeds texts, but the corpus is already vectors (.npy)")
        extra = [load_vectors(path) for path in args.extra]
        result = fit_adaptor(
            load_vectors(args.corpus),
            load_vectors(args.queries) if args.queries else None,
            relevance,
            extra=np.concatenate(extra) if extra else None,
            **common,
        )
        provenance = {"command": command, "input_files": described_inputs(args), "result": result.summary()}
        out = save_transform(args.out, result.transform, {"lightembed_train.adapt": json.dumps(provenance)})
    else:
        out, result = adapt_model(
            args.model,
            read_texts(InputSpec(args.corpus)),
            args.out,
            queries=read_texts(InputSpec(args.queries)) if args.queries else None,
            relevance=relevance,
            extra=[text for path in args.extra for text in read_texts(InputSpec(path))],
            command=command,
            input_files=described_inputs(args),
            **common,
        )
    if args.report:
        write_json(args.report, result.summary())
    if args.plot:
        plot_scores(result.curves(), args.plot, result.metric)
    print(score_table(result))
    print(out)
    return 0


def add_binary(subparsers: argparse._SubParsersAction) -> None:
    """`binary`: train a binary codebook whose sign bits rank like the float model (straight-through estimator)."""
    p = subparsers.add_parser(
        "binary",
        help="train binary codes that keep the float model's ranking",
        description=(
            "Train a binary codebook [vocab, bits] for a float model folder: the sign bits of its mean-pooled "
            "rows must rank texts like the float model's cosines (or the teacher's, with --target teacher), at "
            "every prefix size of the bits. Writes a model folder with the float model unchanged plus the "
            "binary codebook, used by lightembed.load(folder, binary=True). The epoch with the best Hamming "
            "Spearman on the dev pairs (STS-B dev and SICK trial) is kept."
        ),
    )
    p.add_argument("--base", default=None, help="float model folder (default: the bundled default)")
    _add_corpus_arguments(p)
    p.add_argument("--bits", type=int, default=1024, help="bits per code (default 1024; may exceed the float width)")
    p.add_argument(
        "--prefixes", default=None, help="bit counts trained as prefixes (default: 64, 128, ... up to --bits)"
    )
    p.add_argument("--target", choices=("float", "teacher"), default="float", help="whose cosines the codes learn")
    p.add_argument("--epochs", type=int, default=None, help="passes over the corpus (default 3)")
    p.add_argument("--batch-size", type=int, default=None, help="texts per step (default 512)")
    p.add_argument("--lr", type=float, default=None, help="Adam learning rate (default 1e-3)")
    p.add_argument("--temperature", type=float, default=None, help="temperature of the target softmax (default 0.05)")
    p.add_argument("--projection-lr", type=float, default=None, help="learning rate of the projection (default: --lr)")
    p.add_argument(
        "--projection-only", action="store_true", help="train only the projection after pooling, not the codebook copy"
    )
    p.add_argument(
        "--start",
        choices=("sign", "itq", "rotation"),
        default="sign",
        help="start codes: the float sign bits (sign, default) or those ITQ-rotated per prefix block (itq), then random "
        "rotations; or rotations only",
    )
    p.add_argument(
        "--centre", action="store_true", help="subtract the median pooled corpus vector first (balanced bits)"
    )
    p.add_argument(
        "--neighbours",
        type=int,
        default=0,
        help="put each sampled text with its K-1 nearest corpus texts into the batches (default 0: off)",
    )
    p.add_argument(
        "--neighbour-share", type=float, default=None, help="share of each batch made of neighbour groups (default 0.5)"
    )
    p.add_argument("--seed", type=non_negative_int, default=0, help="sampling, start and shuffling seed (default 0)")
    _add_dev_and_pairs_arguments(p)
    p.add_argument("--dtype", choices=CODEBOOK_DTYPES, default="int8", help="binary codebook dtype (default int8)")
    p.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    p.set_defaults(handler=_run_binary)


def _run_binary(args: argparse.Namespace, command: str) -> int:
    from .binary import BinarySettings, train_binary_model

    if args.neighbour_share is not None and args.neighbours == 0 and not args.pairs:
        raise ValueError("--neighbour-share goes with --neighbours K or --pairs (groups of labelled pairs)")
    prefixes = _int_list(args.prefixes) if args.prefixes else doublings(64, args.bits)
    given = {
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "learning_rate": args.lr,
        "temperature": args.temperature,
        "neighbour_share": args.neighbour_share,
        "projection_learning_rate": args.projection_lr,
    }
    settings = BinarySettings(
        bits=args.bits,
        prefixes=prefixes,
        start=args.start,
        neighbours=args.neighbours,
        train_codebook=not args.projection_only,
        centre=args.centre,
        seed=args.seed,
        contrastive_weight=_contrastive_weight(args),
        **{k: v for k, v in given.items() if v is not None},
    )
    _check_early(args, folder=True)
    dev, pairs = _dev_and_pairs(args.data, args.no_dev, args.pairs)
    folder = train_binary_model(
        args.base,
        args.corpus,
        args.out,
        dev=dev,
        pairs=pairs,
        settings=settings,
        target=args.target,
        teacher_path=args.teacher,
        cache_dir=args.cache,
        max_texts=args.max_texts,
        dtype=args.dtype,
        device=args.device,
        progress=not args.quiet,
        command=command,
    )
    print(folder)
    return 0


def add_project(subparsers: argparse._SubParsersAction) -> None:
    """`project`: fit a closed-form projection to labelled items and export it."""
    from .projection.command import add_arguments

    p = subparsers.add_parser(
        "project",
        help="fit a linear projection to groups or pairs of items that belong together",
        description=(
            "Fit a closed-form projection (Rayleigh, ridge and refinements, chosen on a validation split) "
            "to items labelled by group (--groups) or by positive pairs (--pairs). With --model the items "
            "are texts and the projection is baked into a new model folder; with --embeddings they are row "
            "ids of a .npy file from any source and the projection is written as a transform file "
            "(lightembed.load_transform). Prints leave-one-out MAP@50 / R@1 before and after, per split."
        ),
    )
    add_arguments(p)
    p.set_defaults(handler=_run_project)


def _run_project(args: argparse.Namespace, command: str) -> int:
    from .projection.command import run_project

    return run_project(args, command)


def add_reranker(subparsers: argparse._SubParsersAction) -> None:
    """`reranker`: train the learned late-interaction scorer (LITE) of a model folder."""
    p = subparsers.add_parser(
        "reranker",
        help="train a learned late-interaction reranker (LITE) for a model",
        description=(
            "Train the separable LITE scorer over the token vectors of a model folder on (query, positive, "
            "negative) triples from the train-allowed files of the data folder (WikiQA and TrecQA train, "
            "SciFact train claims, Quora dev, SNLI dev), with Margin-MSE distillation from the teacher's "
            "cosines (cached in --cache). The epoch with the best mean score on the dev rankings (WikiQA "
            "dev, TrecQA dev, held-out SciFact train claims) is kept. Writes a copy of the model folder "
            "with reranker.safetensors."
        ),
    )
    p.add_argument("--base", default=None, help="model folder to add the reranker to (default: the bundled default)")
    p.add_argument("--out", required=True, help="output model folder (may be the base folder itself)")
    p.add_argument("--teacher", default=None, help="sentence-transformers folder (default: packaged all-MiniLM-L6-v2)")
    p.add_argument("--cache", default=None, help="folder for the teacher's embeddings of the training texts")
    p.add_argument("--data", default=None, help="shared data folder (default $LIGHTEMBED_DATA)")
    p.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    defaults = RERANK_DEFAULTS
    for flag, help_text in (
        ("query-length", "query tokens compared"),
        ("doc-length", "document tokens per window"),
        ("max-windows", "windows per document (1: truncate)"),
        ("projection-dim", "learned token projection width (0: none)"),
        ("row-hidden", "hidden width of the row MLP"),
        ("row-width", "output width of the row MLP"),
        ("column-hidden", "hidden width of the column MLP"),
        ("column-width", "output width of the column MLP"),
        ("epochs", "passes over the triples"),
        ("batch-size", "triples per step"),
        ("patience", "epochs without a better dev score before stopping"),
        ("seed", "sampling, initialisation and shuffling seed"),
    ):
        key = flag.replace("-", "_")
        p.add_argument(f"--{flag}", type=int, default=defaults[key], help=f"{help_text} (default {defaults[key]})")
    for flag, key, help_text in (
        ("lr", "learning_rate", "Adam learning rate"),
        ("kl-weight", "kl_weight", "weight of the KL term"),
        ("label-weight", "label_weight", "weight of the pairwise logistic loss on the labels"),
        ("temperature", "temperature", "softmax temperature of the KL and label terms"),
        ("ema-decay", "ema_decay", "decay of the moving average of the weights that is evaluated and kept (0: off)"),
    ):
        p.add_argument(
            f"--{flag}", dest=key, type=float, default=defaults[key], help=f"{help_text} (default {defaults[key]})"
        )
    p.add_argument("--activation", choices=("relu", "gelu", "tanh"), default=defaults["activation"], help="of the MLPs")
    p.add_argument("--no-normalize", action="store_true", help="compare raw (projected) token vectors, not unit ones")
    p.add_argument("--pooled", action="store_true", help="give the output layer the pooled cosine as one more input")
    p.add_argument(
        "--pooled-from",
        default=None,
        help="model folder (same vocabulary) whose pooled cosines the training triples use, one not tuned on "
        "their pairs, such as the distilled model the base was tuned from (default: the base itself)",
    )
    p.add_argument(
        "--sort-rows",
        action="store_true",
        help="rows of each query token's doc-length largest similarities over the whole read document, sorted",
    )
    p.set_defaults(handler=_run_reranker)


# RerankSettings' defaults, without importing torch to build the parser.
RERANK_DEFAULTS = {
    "query_length": 32,
    "doc_length": 64,
    "max_windows": 8,
    "projection_dim": 64,
    "row_hidden": 64,
    "row_width": 16,
    "column_hidden": 32,
    "column_width": 8,
    "epochs": 8,
    "batch_size": 256,
    "patience": 2,
    "seed": 0,
    "learning_rate": 1e-3,
    "kl_weight": 0.0,
    "label_weight": 0.0,
    "temperature": 0.05,
    "ema_decay": 0.0,
    "activation": "relu",
}


def _run_reranker(args: argparse.Namespace, command: str) -> int:
    import lightembed

    from .datasets import data_dir
    from .rerank_data import rerank_data
    from .reranker import RerankSettings, train_model_reranker, training_codebook_of

    data = data_dir() if args.data is None else Path(args.data)
    if not data.is_dir():
        raise FileNotFoundError(f"{data}: data folder not found (set --data or LIGHTEMBED_DATA)")
    values = {key: getattr(args, key) for key in RERANK_DEFAULTS}
    settings = RerankSettings(normalize=not args.no_normalize, pooled=args.pooled, sort_rows=args.sort_rows, **values)
    settings.check()  # before the data and the teacher, the slow parts
    _check_early(args, folder=True)
    base = lightembed.load(args.base)
    if settings.query_length > base.config.max_length:
        raise ValueError(
            f"--query-length {settings.query_length} is longer than the base model reads "
            f"({base.config.max_length} tokens)"
        )
    training_codebook_of(base, settings, args.pooled_from)  # checks the base and --pooled-from before the data
    triples = rerank_data(data, base, seed=args.seed)
    folder = train_model_reranker(
        args.base,
        args.out,
        triples,
        teacher_path=args.teacher,
        settings=settings,
        cache_dir=args.cache,
        device=args.device,
        progress=not args.quiet,
        command=command,
        pooled_from=args.pooled_from,
    )
    print(folder)
    return 0


def _check_early(args: argparse.Namespace, *, folder: bool) -> None:
    """The output paths, the teacher cache folder and the torch device, checked before any data is read."""
    from .device import resolve_device

    check_outputs(args, folder=folder)
    cache = getattr(args, "cache", None)
    if cache is not None:
        existing = next(p for p in (Path(cache), *Path(cache).absolute().parents) if p.exists())
        if not existing.is_dir():
            raise ValueError(f"--cache {cache}: {existing} is a file, expected a folder for the teacher's embeddings")
        out = Path(os.path.realpath(args.out)) if folder and getattr(args, "out", None) else None
        if out is not None and out in (Path(os.path.realpath(cache)), *Path(os.path.realpath(cache)).parents):
            raise ValueError(f"--cache {cache}: is inside the model folder --out {args.out}; put the cache elsewhere")
    resolve_device(args.device)


SUBCOMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    add_distill,
    add_tune,
    add_adapt,
    add_binary,
    add_project,
    add_reranker,
]


def _add_corpus_arguments(p: argparse.ArgumentParser) -> None:
    """The corpus, output and teacher options that `tune` and `binary` share."""
    p.add_argument("--corpus", nargs="+", required=True, metavar="FILE", help="plain-text files, one text per line")
    p.add_argument("--out", required=True, help="output model folder")
    p.add_argument("--teacher", default=None, help="sentence-transformers folder (default: packaged all-MiniLM-L6-v2)")
    p.add_argument("--max-texts", type=int, default=None, help="a seeded random sample of this many corpus texts")
    p.add_argument("--cache", default=None, help="folder for the teacher's embeddings of the corpus")


def _add_dev_and_pairs_arguments(p: argparse.ArgumentParser) -> None:
    """The dev-pair and contrastive-pair options that `tune` and `binary` share (read by `_dev_and_pairs`)."""
    p.add_argument(
        "--pairs",
        action="store_true",
        help="add an in-batch InfoNCE term on positive pairs from the train-allowed files of the data folder",
    )
    p.add_argument(
        "--contrastive-weight", type=float, help=f"with --pairs: weight of that term (default {CONTRASTIVE_WEIGHT})"
    )
    p.add_argument("--no-dev", action="store_true", help="keep the last epoch instead of choosing on dev pairs")
    p.add_argument("--data", default=None, help="shared data folder for the dev pairs (default $LIGHTEMBED_DATA)")


def _contrastive_weight(args: argparse.Namespace) -> float:
    """The weight of the InfoNCE term on pairs: none without --pairs, where --contrastive-weight is refused."""
    if not args.pairs:
        if args.contrastive_weight is not None:
            raise ValueError("--contrastive-weight goes with --pairs")
        return 0.0
    return CONTRASTIVE_WEIGHT if args.contrastive_weight is None else args.contrastive_weight


def _dev_and_pairs(
    data_arg: str | None, no_dev: bool, with_pairs: bool, sources: Sequence[str] | None = None
) -> tuple[list, list]:
    """The dev pairs (STS-B dev, SICK trial) unless `no_dev`, and the positive training pairs (from
    `sources`, None: the default ones) if asked."""
    from .datasets import data_dir, read_sick, read_sts_benchmark
    from .pairs import training_pairs

    data = data_dir() if data_arg is None else Path(data_arg)
    if (with_pairs or not no_dev) and not data.is_dir():
        raise FileNotFoundError(f"{data}: data folder not found (set --data, or pass --no-dev without --pairs)")
    dev = [] if no_dev else [("STS-B dev", read_sts_benchmark(data, "dev")), ("SICK trial", read_sick(data, "TRIAL"))]
    pairs = training_pairs(data, sources)[0] if with_pairs else []
    return dev, pairs


def _int_list(text: str) -> tuple[int, ...]:
    """`"32,64"` -> (32, 64), with a clear error for anything else."""
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ValueError(f"expected comma-separated integers, got {text!r}") from None
    if not values:
        raise ValueError("expected at least one integer")
    return values


def _configure_logging(quiet: bool) -> None:
    """Log lines from lightembed_train on stderr (the package logger only, never the root)."""
    package_logger = logging.getLogger("lightembed_train")
    package_logger.setLevel(logging.WARNING if quiet else logging.INFO)
    if not package_logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(f"{PROG}: %(message)s"))
        package_logger.addHandler(handler)
