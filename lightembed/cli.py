"""The `lightembed` command: the runtime's verbs for scripts.

Items are read from a file or stdin, one per line (text), from a JSON field (`--field`,
.jsonl/.ndjson) or a CSV column (`--column`, .csv); see `lightembed.textio`. Results go to
stdout or `-o FILE` as JSON lines, text, or .npy (embed). Binary codes (`--binary`) are
written to JSON as hex strings of the packed sign bits (np.packbits order, most significant
bit first). Scores are rounded to 6 decimals.

    lightembed info --json
    lightembed embed texts.txt -o vectors.npy
    lightembed similarity "a cat" "a dog"
    lightembed similarity --pairs pairs.tsv
    lightembed rank "query" docs.txt
    lightembed topk "query" docs.jsonl --field body -k 5
    lightembed filter "query" docs.csv --column text --threshold 0.6
    lightembed rerank "query" docs.txt -k 10 --output-format text
    lightembed dedup posts.jsonl --field text --threshold 0.9 -o kept.jsonl --report removed.jsonl
    lightembed dedup big.parquet --column text -o kept.parquet --mode partitioned --work-dir job/
    lightembed cluster texts.txt -k 8 --seed 0
    lightembed split book.txt --target-size 1500
    lightembed transform projection.safetensors vectors.npy -o projected.npy

Errors print one line `lightembed: error: ...` on stderr and exit with status 2; a closed
output pipe (`| head`) ends the run quietly with status 1.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any, NoReturn

import numpy as np
from tqdm import tqdm

from . import __version__, jobs, parquetio, textio
from .dedup import EXACT_LIMIT, MODES, SearchOptions
from .errors import LightEmbedError
from .model import Hit, LightEmbed, load
from .partition import DEFAULT_PROBES
from .transform import Transform, load_transform

PROG = "lightembed"
BINARY_OUTPUTS = {"embed": (".npy", ".parquet"), "transform": (".npy",), "dedup": (".parquet",)}  # -o suffixes
PARTITIONED_OPTIONS = ("clusters", "probes", "seed")  # dedup options of the partitioned search alone
EXIT_ERROR = 2
EXIT_BROKEN_PIPE = 1
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """A command line that does not parse, or options that do not fit together."""


class _Parser(argparse.ArgumentParser):
    """An argument parser that raises UsageError instead of printing usage and exiting.

    A subcommand's parser takes its positionals and options in any order (`topk QUERY -k 5 FILE`):
    plain argparse stops filling an optional positional once an option comes between.
    """

    _intermixing = False

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{with_value_hint(message)} (see '{self.prog} --help')")

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        if self._subparsers is not None or self._intermixing:
            return super().parse_known_args(args, namespace)
        self._intermixing = True  # parse_known_intermixed_args calls back into this method
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._intermixing = False


def with_value_hint(message: str) -> str:
    """argparse's `message`, saying how to give a value that starts with '-' where argparse took it for an option."""
    match = re.fullmatch(r"argument (\S+): expected one argument", message)
    if match is None:
        return message
    option = match.group(1).split("/")[-1]
    return f"{message} (if the value starts with '-', write {option}=VALUE)"


def main(argv: list[str] | None = None) -> int:
    """Run the command line `argv` (default: sys.argv[1:]); returns the exit status."""
    _utf8_stdout()
    try:
        with sigterm_as_interrupt():
            args = _parse(argv)
            args.run(args)
            sys.stdout.flush()
    except SystemExit as exc:  # --help and --version
        return exc.code if isinstance(exc.code, int) else 0
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (UsageError, LightEmbedError, ValueError, TypeError, NotImplementedError, OSError, ImportError) as exc:
        print(f"{PROG}: error: {_message(exc)}", file=sys.stderr)
        return EXIT_ERROR
    return 0


# --------------------------------------------------------------------- the parser
def _parse(argv: list[str] | None) -> argparse.Namespace:
    """The parsed command line; arguments no option of the command takes, and an `-o` suffix naming a file format
    the command does not write, point at the command's own help."""
    args, unknown = build_parser().parse_known_args(argv)
    if unknown:
        raise UsageError(f"unrecognized arguments: {' '.join(unknown)} (see '{PROG} {args.command} --help')")
    output = getattr(args, "output", None)
    suffix = _suffix(output)
    if suffix in (".npy", ".parquet") and suffix not in BINARY_OUTPUTS.get(args.command, ()):
        raise UsageError(f"{args.command} does not write {suffix} files (see '{PROG} {args.command} --help')")
    if output is not None and args.command != "dedup":  # dedup may rewrite its input: it writes the records it read
        _check_not_input(output, args)
    return args


def _check_not_input(output: str, args: argparse.Namespace) -> None:
    """Refuse an output file that is the command's input: writing it would lose the input."""
    sources = [("the input", args.input)] if hasattr(args, "input") else []
    for option in ("pairs", "transform"):
        if getattr(args, option, None) is not None:
            sources.append((f"the {option} file", getattr(args, option)))
    for name, source in sources:
        if textio.is_input_file(output, source):
            raise UsageError(f"-o {output}: is {name}; write the output to another file")


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one subcommand per verb."""
    parser = _Parser(prog=PROG, description="Fast static text embeddings on the CPU.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    model_options, input_options = _model_options(), _input_options()

    def command(name: str, summary: str, run: Callable[[argparse.Namespace], None], *, reads: bool) -> _Parser:
        parents = [model_options, input_options] if reads else [model_options]
        p = sub.add_parser(name, help=summary, description=summary, parents=parents)
        p.set_defaults(run=run)
        return p

    command("info", "Describe the model.", run_info, reads=False).add_argument(
        "--json", action="store_true", help="print JSON instead of text"
    )

    p = command("embed", "Embed every item: .npy or Parquet by OUT's suffix, else JSON lines.", run_embed, reads=True)
    _add_input(p)
    _add_output(p)
    _add_job_options(p)

    p = command("similarity", "Similarity of two texts, or of each pair in a TSV file.", run_similarity, reads=False)
    p.add_argument("texts", nargs="*", metavar="TEXT", help="two texts A B")
    p.add_argument("--pairs", metavar="FILE", help="TSV file of two columns ('-' for stdin); one score per line")
    _add_output(p)

    p = command("rank", "Score every item against the query, best first.", run_rank, reads=True)
    _add_query(p)
    p = command("topk", "The k items most similar to the query.", run_topk, reads=True)
    _add_query(p)
    p.add_argument("-k", type=_positive_int, default=10, help="how many (default: 10)")
    p = command("filter", "Items at least THRESHOLD similar to the query, in input order.", run_filter, reads=True)
    _add_query(p)
    p.add_argument("--threshold", type=_threshold, default=0.5, help="in [-1, 1] (default: 0.5)")
    p = command(
        "rerank",
        "Re-score items against the query over token vectors: the model's learned scorer, else MaxSim.",
        run_rerank,
        reads=True,
    )
    _add_query(p)
    p.add_argument("-k", type=_positive_int, help="keep the best k (default: all)")
    p.add_argument(
        "--method",
        choices=("auto", "learned", "maxsim"),
        default="auto",
        help="learned scorer (reranker.safetensors), MaxSim, or auto: learned when the model has one",
    )

    p = command("dedup", "Remove exact and near duplicates, keeping the first of each group.", run_dedup, reads=True)
    _add_input(p)
    _add_output(p, "kept items in input order, as in the input (default: stdout)")
    p.add_argument("--threshold", type=_threshold, default=0.9, help="in [-1, 1] (default: 0.9)")
    p.add_argument("--report", metavar="REPORT", help="JSON lines file describing each removed item")
    group = p.add_argument_group("search options")
    group.add_argument(
        "--mode",
        choices=MODES,
        default="auto",
        help=f"exact: all pairs; partitioned: k-means clusters and their nearest clusters; ann: usearch index "
        f"(extra [ann]); auto: exact up to {EXACT_LIMIT:,} distinct items, else partitioned (default: auto)",
    )
    group.add_argument("--clusters", type=_positive_int, help="partitioned: fine clusters (default: items / 256)")
    group.add_argument(
        "--probes",
        type=_positive_int,
        help=f"partitioned: nearest clusters each item is compared with (default: {DEFAULT_PROBES})",
    )
    group.add_argument("--seed", type=_seed, help="partitioned: k-means seed (default: 0)")
    _add_job_options(p)

    p = command("cluster", "Group items with spherical k-means++.", run_cluster, reads=True)
    _add_input(p)
    _add_output(p)
    _add_output_format(p)
    p.add_argument("-k", type=_positive_int, required=True, help="number of clusters")
    p.add_argument("--seed", type=_seed, help="random seed, for repeatable clusters")
    p.add_argument("--n-init", type=_positive_int, default=3, help="k-means++ restarts (default: 3)")

    p = command("split", "Cut the whole input (one text) into chunks at topic shifts.", run_split, reads=False)
    _add_input(p)
    _add_output(p)
    _add_output_format(p)
    p.add_argument("--target-size", type=_positive_int, default=1500, help="most characters per chunk (default: 1500)")
    p.add_argument("--separator", default="---", help="line between chunks in text output (default: ---)")

    summary = "Apply a transform file (e.g. a fitted projection) to a .npy of vectors from any model."
    p = sub.add_parser("transform", help=summary, description=summary)
    p.set_defaults(run=run_transform)
    p.add_argument("transform", metavar="TRANSFORM", help="transform file (.safetensors), e.g. from lightembed-train")
    p.add_argument("input", metavar="VECTORS", help=".npy file of float vectors [n, d]")
    p.add_argument("-o", "--output", metavar="OUT", required=True, help=".npy file for the transformed vectors")
    p.add_argument("--dim", type=_positive_int, help="keep the first N output dimensions")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, help="progress bar on stderr")
    return parser


def _model_options() -> _Parser:
    parent = _Parser(add_help=False)
    group = parent.add_argument_group("model options")
    group.add_argument("--model", metavar="NAME_OR_PATH", help="local folder or Hub id owner/name (default: bundled)")
    group.add_argument("--dim", type=_positive_int, help="truncate to the first N dimensions (Matryoshka)")
    group.add_argument("--binary", action="store_true", help="packed sign-bit codes compared by Hamming similarity")
    group.add_argument("--revision", help="Hub revision (branch, tag or commit) of --model")
    group.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        help="progress bar on stderr (default: on when stderr is a terminal)",
    )
    return parent


def _input_options() -> _Parser:
    parent = _Parser(add_help=False)
    group = parent.add_argument_group("input options")
    group.add_argument(
        "--format",
        choices=textio.FORMATS,
        help="input format (default: from the suffix: .jsonl/.ndjson, .csv, .parquet, else text)",
    )
    group.add_argument("--field", metavar="NAME", help=f"JSON field holding the text (default: {textio.DEFAULT_KEY})")
    group.add_argument(
        "--column", metavar="NAME", help=f"CSV or Parquet column holding the text (default: {textio.DEFAULT_KEY})"
    )
    return parent


def _add_input(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", nargs="?", metavar="INPUT", help="input file ('-' or none: stdin)")


def _add_output(p: argparse.ArgumentParser, what: str = "output file (default: stdout)") -> None:
    p.add_argument("-o", "--output", metavar="OUT", help=what)


def _add_job_options(p: argparse.ArgumentParser) -> None:
    group = p.add_argument_group("long runs")
    group.add_argument(
        "--work-dir",
        metavar="DIR",
        help="keep the run's state here; the same command with the same DIR resumes an interrupted run",
    )
    group.add_argument(
        "--chunk-size",
        type=_positive_int,
        default=jobs.DEFAULT_CHUNK_ROWS,
        help=f"items embedded per resumable chunk (default: {jobs.DEFAULT_CHUNK_ROWS})",
    )


def _add_output_format(p: argparse.ArgumentParser) -> None:
    p.add_argument("--output-format", choices=("jsonl", "text"), default="jsonl", help="(default: jsonl)")


def _add_query(p: argparse.ArgumentParser) -> None:
    p.add_argument("query", metavar="QUERY", help="the query text")
    _add_input(p)
    _add_output(p)
    _add_output_format(p)


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value!r}")
    if number > sys.maxsize:
        raise argparse.ArgumentTypeError(f"must be at most {sys.maxsize}, got {value!r}")
    return number


def _seed(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = -1
    if number < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, got {value!r}")
    return number


def _threshold(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not -1.0 <= number <= 1.0:
        raise argparse.ArgumentTypeError(f"must be a number between -1 and 1, got {value!r}")
    return number


# --------------------------------------------------------------------- shared steps
def _load(args: argparse.Namespace) -> LightEmbed:
    return load(args.model, dim=args.dim, binary=args.binary, revision=args.revision)


def _progress(args: argparse.Namespace) -> bool:
    return args.progress if args.progress is not None else sys.stderr.isatty()


def _spec(args: argparse.Namespace) -> textio.InputSpec:
    return textio.InputSpec(args.input, args.format, args.field, args.column)


def _embedded(model: LightEmbed, texts: list[str], args: argparse.Namespace) -> np.ndarray:
    return model.embed(texts, progress=_progress(args))


def _with_progress(
    blocks: Iterable[np.ndarray], total: int | None, enabled: bool, *, unit: str = "text", desc: str = "embedding"
) -> Iterator[np.ndarray]:
    """Pass blocks through, counting their rows on a progress bar."""
    with tqdm(total=total, unit=unit, desc=desc, disable=not enabled, file=sys.stderr) as bar:
        for block in blocks:
            yield block
            bar.update(len(block))


def _write_hits(args: argparse.Namespace, hits: Iterable[Hit], texts: list[str]) -> None:
    with textio.open_output(args.output) as out:
        if args.output_format == "text":
            out.writelines(f"{hit.score:.6f}\t{_one_line(texts[hit.index])}\n" for hit in hits)
        else:
            rows = ({"index": h.index, "score": round(h.score, 6), "text": texts[h.index]} for h in hits)
            textio.write_jsonl(out, rows)


def _one_line(text: str) -> str:
    """A text for one line of text output: backslash, line feed and carriage return escaped as \\\\, \\n, \\r."""
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


# --------------------------------------------------------------------- the verbs
def run_info(args: argparse.Namespace) -> None:
    """Print what the model is and which optional parts it has."""
    info = model_info(_load(args))
    if args.json:
        print(json.dumps(info, indent=2))
        return
    for key, value in info.items():
        if isinstance(value, list):
            value = ", ".join(map(str, value)) or "none"
        print(f"{key}: {value}")


def model_info(model: LightEmbed) -> dict[str, Any]:
    """A JSON-ready description of a loaded model."""
    config, parts = model.config, model.parts
    optional = {
        "token_weights": config.token_weights or parts.token_weights is not None,
        "vocabulary_mapping": parts.token_rows is not None,
        "projection": parts.transform.projection is not None,
        "adaptor": bool(parts.transform.adaptor),
        "binary_codebook": parts.binary_embeddings is not None,
        "reranker": parts.reranker_path is not None,
    }
    return {
        "path": str(model.path),
        "source": config.source,
        "dim": model.dim,
        "codebook_dim": config.dim,
        "matryoshka_dims": list(config.matryoshka_dims),
        "vocab_size": config.vocab_size,
        "normalize": config.normalize,
        "max_length": config.max_length,
        "binary": model.binary,
        "bits": model.bits,
        "optional_parts": [name for name, present in optional.items() if present],
    }


def run_embed(args: argparse.Namespace) -> None:
    """Stream the items through the model into .npy, Parquet or JSON lines (resumable with --work-dir)."""
    model, spec = _load(args), _spec(args)
    if args.work_dir is not None:
        if jobs.needs_spool(spec):
            raise UsageError("--work-dir needs an input file: stdin or a pipe cannot be read again to resume")
        if _suffix(args.output) == ".parquet":
            textio.check_file_output(args.output)  # before the long run
        elif args.output not in (None, textio.STD_STREAM):
            textio.check_output_path(args.output)
        with jobs.work_folder(args.work_dir) as folder:
            job = jobs.Job(folder, spec, model, chunk_rows=args.chunk_size, progress=_progress(args))
            count = job.embed()
            _write_embeddings(args.output, job.vector_chunks(), model, count)
        return
    count = textio.count_records(spec) if _suffix(args.output) == ".npy" else None
    with textio.open_input(spec) as source:
        blocks = model.iter_embed(record.text for record in source.records)
        _write_embeddings(args.output, _with_progress(blocks, count, _progress(args)), model, count)


def _suffix(path: str | None) -> str:
    return os.path.splitext(path)[1].lower() if path is not None else ""


def _write_embeddings(output: str | None, blocks: Iterable[np.ndarray], model: LightEmbed, count: int | None) -> None:
    """Blocks of vectors to .npy (memory-mapped when the count is known), Parquet, or JSON lines."""
    if _suffix(output) == ".npy":
        textio.write_npy(output, blocks, model.output_width, model.output_dtype, count)
        return
    if _suffix(output) == ".parquet":
        with textio.atomic_path(output) as temp:
            parquetio.write_embeddings(temp, blocks, model.output_width, model.output_dtype)
        return
    with textio.open_output(output) as out:
        index = 0
        for block in blocks:
            values = [row.tobytes().hex() for row in block] if model.binary else block.tolist()
            textio.write_jsonl(out, ({"index": index + i, "embedding": v} for i, v in enumerate(values)))
            index += len(block)


def run_similarity(args: argparse.Namespace) -> None:
    """One score for two texts, or one score per line of a pairs file."""
    if args.pairs is None:
        if len(args.texts) != 2:
            raise UsageError("similarity needs two texts A B, or --pairs FILE")
        score = _load(args).similarity(args.texts[0], args.texts[1])
        with textio.open_output(args.output) as out:
            out.write(f"{score:.6f}\n")
        return
    if args.texts:
        raise UsageError("give either two texts or --pairs FILE, not both")
    pairs = textio.read_pairs(textio.InputSpec(args.pairs))
    scores = _load(args).pair_similarity([a for a, _ in pairs], [b for _, b in pairs])
    with textio.open_output(args.output) as out:
        out.writelines(f"{score:.6f}\n" for score in scores.tolist())


def run_rank(args: argparse.Namespace) -> None:
    """Every item scored against the query, best first."""
    model, texts = _load(args), textio.read_texts(_spec(args))
    _write_hits(args, model.rank(args.query, _embedded(model, texts, args)), texts)


def run_topk(args: argparse.Namespace) -> None:
    """The k best items."""
    model, texts = _load(args), textio.read_texts(_spec(args))
    _write_hits(args, model.topk(args.query, _embedded(model, texts, args), args.k), texts)


def run_filter(args: argparse.Namespace) -> None:
    """Items scoring at least the threshold, in input order."""
    model, texts = _load(args), textio.read_texts(_spec(args))
    _write_hits(args, model.filter(args.query, _embedded(model, texts, args), args.threshold), texts)


def run_rerank(args: argparse.Namespace) -> None:
    """Items re-scored over token vectors (learned scorer or MaxSim), best first."""
    model, texts = _load(args), textio.read_texts(_spec(args))
    _write_hits(args, model.rerank(args.query, texts, args.k, method=args.method), texts)


def run_dedup(args: argparse.Namespace) -> None:
    """Write the kept items unchanged, an optional report of the removed ones, and a summary on stderr.

    The input is embedded in chunks into a work folder (a temporary one unless --work-dir is
    given, which makes the run resumable) and read a second time to write the kept records.
    """
    model, spec = _load(args), _spec(args)
    search = _search_options(args)
    jobs.check_kept_outputs(spec, args.output, args.report)  # before the long part of the run
    streamed = jobs.needs_spool(spec)
    if args.work_dir is not None and streamed:
        raise UsageError("--work-dir needs an input file: stdin or a pipe cannot be read again to resume")
    start = time.perf_counter()
    with jobs.work_folder(args.work_dir) as folder:
        if streamed:
            spec = replace(spec, path=str(jobs.spool(folder, spec)), label=spec.name)
        job = jobs.Job(folder, spec, model, chunk_rows=args.chunk_size, progress=_progress(args))
        result = job.deduplicate(args.threshold, search)
        jobs.write_kept(spec, result, args.output, args.report)
    exact = int(result.exact.sum())
    total = len(result.kept) + len(result.removed)
    _stderr(
        f"dedup: {total} items, {len(result.kept)} kept, {len(result.removed)} removed "
        f"({exact} exact) in {time.perf_counter() - start:.2f} s, {result.mode} search"
    )


def _search_options(args: argparse.Namespace) -> SearchOptions:
    """The dedup search the options ask for; the partitioned mode's options are refused with a mode that has none."""
    given = {name: value for name in PARTITIONED_OPTIONS if (value := getattr(args, name)) is not None}
    if given and args.mode in ("exact", "ann"):
        options = ", ".join(f"--{name}" for name in given)
        raise UsageError(f"{options}: options of the partitioned search, not of --mode {args.mode}")
    if args.binary and args.mode == "ann":
        raise UsageError("--mode ann compares float vectors, not --binary codes: use --mode partitioned or exact")
    return SearchOptions(mode=args.mode, **given)


def run_cluster(args: argparse.Namespace) -> None:
    """A cluster label per item, and the cluster sizes on stderr."""
    model, texts = _load(args), textio.read_texts(_spec(args))
    result = model.cluster(_embedded(model, texts, args), args.k, n_init=args.n_init, seed=args.seed)
    labels = result.labels.tolist()
    with textio.open_output(args.output) as out:
        if args.output_format == "text":
            out.writelines(f"{label}\t{_one_line(text)}\n" for label, text in zip(labels, texts))
        else:
            rows = ({"index": i, "cluster": label, "text": text} for i, (label, text) in enumerate(zip(labels, texts)))
            textio.write_jsonl(out, rows)
    _stderr(f"cluster: {len(texts)} items in {args.k} clusters, sizes {' '.join(map(str, result.sizes.tolist()))}")


def run_split(args: argparse.Namespace) -> None:
    """The whole input cut into chunks: JSON lines, or text with a separator line between chunks."""
    model, text = _load(args), textio.read_text(textio.InputSpec(args.input))
    chunks = model.split(text, args.target_size, progress=_progress(args))
    with textio.open_output(args.output) as out:
        if args.output_format == "jsonl":
            textio.write_jsonl(out, ({"chunk": i, "text": chunk} for i, chunk in enumerate(chunks)))
            return
        for i, chunk in enumerate(chunks):
            if i:
                out.write(args.separator + "\n")
            out.write(chunk if chunk.endswith("\n") else chunk + "\n")


TRANSFORM_BLOCK = 65536


def run_transform(args: argparse.Namespace) -> None:
    """Stream a .npy of vectors through a transform file into another .npy, block by block."""
    transform = load_transform(args.transform)
    width = transform.out_dim  # a loaded transform is never empty
    if args.dim is not None and args.dim > width:
        raise UsageError(f"--dim must be between 1 and {width} (the transform's output width), got {args.dim}")
    if args.output == textio.STD_STREAM or (args.output and _suffix(args.output) != ".npy"):
        raise UsageError(f"transform writes a .npy file: give -o a path ending in .npy, not {args.output!r}")
    if args.input == textio.STD_STREAM:
        raise UsageError("transform reads a .npy file: give its path, not '-' (stdin)")
    textio.check_output_path(args.output)
    with open(args.input, "rb") as handle:
        if handle.read(6) != b"\x93NUMPY":
            raise ValueError(f"{args.input}: not a .npy file")
    try:
        vectors = np.load(args.input, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:
        raise ValueError(f"{args.input}: not a readable .npy array ({exc})") from None
    if vectors.ndim != 2 or vectors.dtype.kind != "f":
        raise ValueError(f"{args.input}: expected a 2-D float array, got {vectors.dtype} of shape {vectors.shape}")
    if vectors.shape[1] != transform.in_dim:
        raise ValueError(f"{args.input}: vectors have {vectors.shape[1]} dims, the transform takes {transform.in_dim}")
    blocks = _transformed(transform, vectors, args.dim or width, args.input)
    counted = _with_progress(blocks, len(vectors), _progress(args), unit="vector", desc="transforming")
    textio.write_npy(args.output, counted, args.dim or width, np.dtype(np.float32), len(vectors))


def _transformed(transform: Transform, vectors: np.ndarray, dim: int, name: str) -> Iterator[np.ndarray]:
    """The vectors through the transform, block by block; an error names the file (and the first row that is not finite)."""
    for start in range(0, len(vectors), TRANSFORM_BLOCK):
        block = vectors[start : start + TRANSFORM_BLOCK]
        try:
            yield transform.apply(block, dim=dim)
        except ValueError as exc:
            bad = np.flatnonzero(~np.isfinite(block).all(axis=1))
            where = f"{name}, row {start + bad[0]}" if len(bad) else name
            raise ValueError(f"{where}: {exc}") from None


# --------------------------------------------------------------------- process plumbing
def _message(exc: BaseException) -> str:
    """An exception as one line."""
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        return f"{exc.filename}: {exc.strerror}"
    return " ".join(str(exc).split()) or type(exc).__name__


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block SIGTERM (a plain `kill`, a scheduler stopping a job) unwinds like Ctrl-C.

    So `finally` blocks run: temporary work folders and half-written outputs are removed.
    """
    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield
        return
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _utf8_stdout() -> None:
    """Write UTF-8 whatever the console's code page (JSON output keeps non-ASCII text as is)."""
    encoding = (sys.stdout.encoding or "").lower().replace("_", "-")
    if encoding not in ("utf-8", "utf8") and hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(encoding="utf-8")


def _silence_stdout() -> None:
    """After the reader closed the pipe, point stdout at /dev/null so the exit-time flush cannot fail again."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)
