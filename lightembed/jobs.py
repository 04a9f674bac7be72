"""Embedding and deduplication runs over inputs larger than memory, resumable from a work folder.

A job reads its input once in chunks of `chunk_rows` items and keeps everything it computes
in a work folder:

    job.json                   what is read, with which model (a resumed run must match it)
    chunks/hashes-000000.npy   per chunk: a 128-bit hash of each text (exact copies) ...
    chunks/vectors-000000.npy  ... and its vectors; a chunk is complete once its vectors file exists
    chunks/count.json          the number of items, once the input has been read to its end
    dedup.json                 the dedup settings of the files below (other settings start them again)
    first.npy, vectors.npy     each item's first exact copy; the vectors of the distinct items
    partitioning.npz, nearest.npy, pairs/pass-0/group-000000.npz   steps of the partitioned search
                               (a second pass and more when the first finds too many pairs: lightembed.pairs)
    matches.npz                the most similar earlier kept item of each distinct item

Every file is written under a temporary name and renamed when complete, so a run that is
killed leaves only complete files, and running the same command with the same work folder
carries on after the last complete step. Final outputs are written the same way.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from itertools import islice
from pathlib import Path
from typing import IO, Any

import numpy as np
from tqdm.auto import tqdm

from . import __version__, parquetio, textio
from .dedup import (
    DedupResult,
    SearchOptions,
    find_matches,
    first_copies_of_hashes,
    result_from_matches,
    text_hashes,
)
from .model import LightEmbed
from .pairs import REMOVED, Pairs, Sweep, bounded_pairs, budget_left
from .partition import (
    Partitioning,
    cluster_groups,
    covering_probes,
    default_clusters,
    fit_partitioning,
    float_rows,
    nearest_clusters,
    plan_clusters,
    sample_rows,
    sample_size,
    sweep_clusters,
)
from .scoring import comparable_rows

logger = logging.getLogger(__name__)

DEFAULT_CHUNK_ROWS = 65536
SEARCH_GROUPS = 64  # resumable steps of the partitioned search


class JobError(textio.FileError):
    """A work folder that does not fit the run asked for."""


@contextmanager
def work_folder(path: str | os.PathLike[str] | None) -> Iterator[Path]:
    """The given work folder (created if needed and kept), or a temporary one removed at the end."""
    if path is not None:
        folder = Path(path)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise JobError(f"{folder}: cannot use as a work folder ({exc.strerror or exc})") from None
        yield folder
        return
    folder = Path(tempfile.mkdtemp(prefix="lightembed-job-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def save_array(path: Path, array: np.ndarray) -> None:
    """np.save, atomically."""
    with textio.atomic_path(path) as temp, open(temp, "wb") as stream:
        np.save(stream, array)


def save_arrays(path: Path, **arrays: np.ndarray) -> None:
    """np.savez, atomically."""
    with textio.atomic_path(path) as temp, open(temp, "wb") as stream:
        np.savez(stream, **arrays)


def save_json(path: Path, value: Any) -> None:
    """JSON, atomically."""
    with textio.atomic_path(path) as temp:
        temp.write_text(json.dumps(value, indent=2) + "\n", encoding="utf-8")


SPOOL_FILE = "input"  # a copy of an input that cannot be read twice (stdin, a pipe)


def spool(folder: Path, spec: textio.InputSpec) -> Path:
    """Copy stdin or a pipe to a file in `folder` (so that it can be read twice) and return its path."""
    target = folder / SPOOL_FILE
    with textio.atomic_path(target) as temp, open(temp, "wb") as stream:
        if spec.is_stdin:
            shutil.copyfileobj(sys.stdin.buffer, stream, 1 << 20)
        else:
            with open(spec.path, "rb") as source:
                shutil.copyfileobj(source, stream, 1 << 20)
    return target


def needs_spool(spec: textio.InputSpec) -> bool:
    """Whether the input is stdin or a stream such as a pipe: one pass only, so it is spooled first."""
    return spec.is_stdin or textio.is_special(spec.path)


def read_json(path: Path, *keys: str) -> Any:
    """A JSON work file (an object holding `keys`), or a JobError naming it when it is damaged."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise _damaged(path, exc) from None
    if not isinstance(value, dict) or any(key not in value for key in keys):
        raise _damaged(path, f"expected an object with {list(keys)}")
    return value


def read_array(path: Path, mmap: bool = False) -> np.ndarray:
    """A .npy work file (memory-mapped if asked), or a JobError naming it when it is damaged."""
    try:
        return np.load(path, mmap_mode="r" if mmap else None)
    except (OSError, ValueError, EOFError) as exc:
        raise _damaged(path, exc) from None


def read_arrays(path: Path, *names: str) -> dict[str, np.ndarray]:
    """The named arrays of a .npz work file, or a JobError naming it when it is damaged."""
    try:
        with np.load(path) as saved:
            return {name: saved[name] for name in names}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:
        raise _damaged(path, exc) from None


def _damaged(path: Path, problem: object) -> JobError:
    return JobError(f"{path}: damaged work file ({problem}); delete the work folder to start again")


class Job:
    """One input embedded by one model in a work folder; steps already done are read back, not redone."""

    def __init__(
        self,
        folder: Path,
        spec: textio.InputSpec,
        model: LightEmbed,
        *,
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
        progress: bool = False,
    ) -> None:
        if spec.is_stdin:
            raise JobError("a job reads a file, not stdin (spool stdin to a file first)")
        if chunk_rows < 1:
            raise ValueError(f"chunk_rows must be at least 1, got {chunk_rows}")
        self.folder, self.spec, self.model = folder, spec, model
        self.chunk_rows, self.progress = chunk_rows, progress
        self.chunks = folder / "chunks"
        folder.mkdir(parents=True, exist_ok=True)
        self._check_identity()
        self.chunks.mkdir(parents=True, exist_ok=True)

    # ----------------------------------------------------------------- identity
    def _identity(self) -> dict[str, Any]:
        try:
            stat = os.stat(self.spec.path)
        except OSError as exc:
            raise textio.FileError(f"{self.spec.name}: {exc.strerror or exc}") from None
        model = self.model
        return {
            "input": os.path.realpath(self.spec.path),
            "size": stat.st_size,
            "mtime_ns": stat.st_mtime_ns,
            "format": textio.input_format(self.spec),
            "field": textio.text_key(self.spec.field),
            "column": textio.text_key(self.spec.column),
            "model": str(model.path),
            "model_sha256": _model_digest(model.path),
            "dim": model.dim,
            "binary": model.binary,
            "chunk_rows": self.chunk_rows,
            "lightembed": __version__,
        }

    def _check_identity(self) -> None:
        path = self.folder / "job.json"
        identity = self._identity()
        if path.exists():
            stored = read_json(path)
            changed = sorted(k for k in identity.keys() | stored.keys() if identity.get(k) != stored.get(k))
            if changed:
                detail = ", ".join(f"{k}: {stored.get(k)!r} -> {identity.get(k)!r}" for k in changed)
                raise JobError(
                    f"{self.folder} holds a job for another input, model or chunk size ({detail}); use another work folder"
                )
            return
        foreign = sorted(entry.name for entry in self.folder.iterdir() if entry.name != SPOOL_FILE)
        if foreign:
            listed = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
            raise JobError(f"{self.folder} is not empty ({listed}) and holds no job; give a new or empty work folder")
        save_json(path, identity)

    # ----------------------------------------------------------------- embedding
    def _chunk(self, kind: str, number: int) -> Path:
        return self.chunks / f"{kind}-{number:06d}.npy"

    def _done_chunks(self) -> int:
        number = 0
        while self._chunk("vectors", number).exists():
            number += 1
        return number

    def embed(self) -> int:
        """Embed every chunk not yet in the work folder; returns the number of items."""
        count_file = self.chunks / "count.json"
        if count_file.exists():
            return int(read_json(count_file, "items")["items"])
        done = self._done_chunks()
        count = sum(len(read_array(self._chunk("hashes", k), mmap=True)) for k in range(done))
        with (
            textio.open_input(self.spec) as source,
            tqdm(initial=count, unit="text", desc="embedding", disable=not self.progress, file=sys.stderr) as bar,
        ):
            texts = (record.text for record in source.records)
            skipped = sum(1 for _ in islice(texts, count))
            if skipped < count:
                raise JobError(f"{self.spec.name} has fewer items ({skipped}) than the work folder holds ({count})")
            number = done
            while block := list(islice(texts, self.chunk_rows)):
                save_array(self._chunk("hashes", number), text_hashes(block))
                save_array(self._chunk("vectors", number), self.model.embed(block))
                count += len(block)
                bar.update(len(block))
                number += 1
                if len(block) < self.chunk_rows:
                    break
        save_json(count_file, {"items": count})
        return count

    def vector_chunks(self) -> Iterator[np.ndarray]:
        """The embedded chunks in order (memory-mapped)."""
        for number in range(self._done_chunks()):
            yield read_array(self._chunk("vectors", number), mmap=True)

    def hashes(self) -> np.ndarray:
        """The hash of every item, [n, 2] uint64."""
        parts = [read_array(self._chunk("hashes", k)) for k in range(self._done_chunks())]
        return np.concatenate([np.zeros((0, 2), dtype=np.uint64), *parts])

    # ----------------------------------------------------------------- deduplication
    def deduplicate(self, threshold: float, search: SearchOptions) -> DedupResult:
        """Embed (if not done), then deduplicate step by step; returns the result over all items."""
        n = self.embed()
        self._reset_dedup_if_changed({"threshold": threshold, **search.__dict__})
        first_file = self.folder / "first.npy"
        if not first_file.exists():
            save_array(first_file, first_copies_of_hashes(self.hashes()))
        first = read_array(first_file)
        if len(first) != n:
            raise JobError(f"{self.folder}: {len(first)} hashes for {n} items; the work folder is damaged")
        vectors = self._distinct_vectors(first)
        mode = search.resolved(len(vectors))
        matches_file = self.folder / "matches.npz"
        if not matches_file.exists():
            match, score = find_matches(
                vectors,
                threshold,
                search,
                lambda: self._partitioned_pairs(vectors, threshold, search),
                bits=self.model.bits,
                block_size=self.model.block_size,
                progress=self.progress,
            )
            save_arrays(matches_file, match=match, score=score)
        saved = read_arrays(matches_file, "match", "score")
        if len(saved["match"]) != len(vectors):
            raise _damaged(matches_file, f"{len(saved['match'])} matches for {len(vectors)} distinct items")
        return result_from_matches(saved["match"], saved["score"], first, threshold, mode=mode)

    def _reset_dedup_if_changed(self, settings: dict[str, Any]) -> None:
        path = self.folder / "dedup.json"
        if path.exists() and read_json(path) == settings:
            return
        if path.exists():
            logger.info("%s: dedup settings changed; the search starts again (the embeddings are kept)", self.folder)
        for name in ("partitioning.npz", "nearest.npy", "matches.npz"):
            (self.folder / name).unlink(missing_ok=True)
        shutil.rmtree(self.folder / "pairs", ignore_errors=True)
        save_json(path, settings)

    def _distinct_vectors(self, first: np.ndarray) -> np.ndarray:
        """The vectors (unit rows) or codes of the distinct items as one memory-mapped file (written once)."""
        path = self.folder / "vectors.npy"
        if not path.exists():
            is_first = first == np.arange(len(first))
            shape = (int(is_first.sum()), self.model.output_width)
            with textio.atomic_path(path) as temp:
                out = np.lib.format.open_memmap(temp, mode="w+", dtype=self.model.output_dtype, shape=shape)
                row = start = 0
                for chunk in self.vector_chunks():
                    keep = is_first[start : start + len(chunk)]
                    rows = chunk[keep]
                    out[row : row + int(keep.sum())] = rows if self.model.binary else comparable_rows(rows)
                    row += int(keep.sum())
                    start += len(chunk)
                out.flush()
                del out
        vectors = read_array(path, mmap=True)
        if vectors.shape != (int((first == np.arange(len(first))).sum()), self.model.output_width):
            raise _damaged(path, f"shape {vectors.shape} does not fit the items and the model")
        return vectors

    def _partitioned_pairs(self, vectors: np.ndarray, threshold: float, search: SearchOptions) -> Pairs:
        bits = self.model.bits
        n = len(vectors)
        if n < 2:
            return Pairs.empty()
        part_file, nearest_file = self.folder / "partitioning.npz", self.folder / "nearest.npy"
        n_clusters = search.clusters or default_clusters(n)
        if not part_file.exists():
            sample = sample_rows(n, sample_size(n_clusters), search.seed)
            part = fit_partitioning(float_rows(vectors[sample], bits), n_clusters, search.seed)
            save_arrays(part_file, coarse=part.coarse, fine=part.fine, offsets=part.offsets)
        saved = read_arrays(part_file, "coarse", "fine", "offsets")
        partitioning = Partitioning(saved["coarse"], saved["fine"], saved["offsets"])
        if not nearest_file.exists():
            probes = covering_probes(search.probes, n_clusters, partitioning)
            save_array(nearest_file, nearest_clusters(vectors, partitioning, probes, bits=bits))
        plan = plan_clusters(read_array(nearest_file), partitioning.n_clusters)
        groups = cluster_groups(plan, SEARCH_GROUPS)

        def run_pass(number: int, status: np.ndarray, budget: int | None) -> list[Sweep]:
            folder = self.folder / "pairs" / f"pass-{number}"
            folder.mkdir(parents=True, exist_ok=True)
            sweeps: list[Sweep] = []
            status = status.copy()  # each group starts from the rows the groups before it found removed
            desc = "searching" if number == 0 else f"searching again (pass {number + 1})"
            for k, group in enumerate(tqdm(groups, desc=desc, disable=not self.progress, file=sys.stderr)):
                path = folder / f"group-{k:06d}.npz"
                if not path.exists():
                    share = budget_left(budget, sweeps)
                    found = sweep_clusters(
                        vectors, plan, group, threshold, status, share, bits=bits, block_size=self.model.block_size
                    )
                    save_sweep(path, found)
                sweeps.append(read_sweep(path))
                status[sweeps[-1].removals.later] = REMOVED
            return sweeps

        return bounded_pairs(run_pass, n)


SWEEP_ARRAYS = ("held", "later", "earlier", "score", "alive", "removed", "removed_by", "removal_score")


def save_sweep(path: Path, found: Sweep) -> None:
    """One search step's `Sweep` as a .npz work file."""
    pairs = Pairs.empty() if found.pairs is None else found.pairs
    save_arrays(
        path,
        held=np.array(found.pairs is not None),
        later=pairs.later,
        earlier=pairs.earlier,
        score=pairs.score,
        alive=found.alive,
        removed=found.removals.later,
        removed_by=found.removals.earlier,
        removal_score=found.removals.score,
    )


def read_sweep(path: Path) -> Sweep:
    """A `Sweep` saved by `save_sweep`."""
    try:
        saved = read_arrays(path, *SWEEP_ARRAYS)
    except JobError:
        read_arrays(path, *SWEEP_ARRAYS[:-2])  # a damaged file is named as such; else it predates the removal pairs
        raise JobError(
            f"{path}: a search pass of an older lightembed; delete {path.parent.parent} to search again"
        ) from None
    pairs = Pairs(saved["later"], saved["earlier"], saved["score"]) if saved["held"] else None
    return Sweep(pairs, saved["alive"], Pairs(saved["removed"], saved["removed_by"], saved["removal_score"]))


def _model_digest(folder: Path) -> str:
    """sha256 (first 16 hex digits) of the model's files, so a job never mixes two models' vectors."""
    digest = hashlib.sha256()
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        path = Path(folder) / name
        if path.is_file():
            with open(path, "rb") as stream:
                for block in iter(lambda: stream.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()[:16]


# --------------------------------------------------------------------- outputs
def write_kept(spec: textio.InputSpec, result: DedupResult, output: str | None, report: str | None) -> None:
    """Write the kept records unchanged (a second pass over the input) and, if asked, the report of removals.

    Report rows name the kept item each removed one duplicates, with both texts. Parquet input
    gives Parquet output (the kept rows with every column).
    """
    check_kept_outputs(spec, output, report)
    parquet = textio.input_format(spec) == "parquet"
    if not parquet or report is not None:  # before a Parquet output, which may replace the input
        with ExitStack() as stack:
            out = None if parquet else stack.enter_context(textio.open_output(output))
            rep = None if report is None else stack.enter_context(textio.open_output(report))
            _copy_pass(spec, result, out, rep)
    if parquet:
        with textio.atomic_path(output) as temp:
            parquetio.write_kept_rows(spec.path, temp, result.kept)


def check_kept_outputs(spec: textio.InputSpec, output: str | None, report: str | None) -> None:
    """Raise FileError unless `write_kept` can write these outputs (checked before a long run, and again there).

    The kept records are written as read, so an output suffix must name the input's format (or,
    when a format was forced with --format, the input file's own suffix).
    """
    fmt = textio.input_format(spec)
    files = [path for path in (output, report) if path not in (None, textio.STD_STREAM)]
    if output in files:
        named = textio.SUFFIX_FORMATS.get(Path(output).suffix.lower())
        if named not in (None, fmt, textio.guess_format(spec.path)):
            raise textio.FileError(f"{output}: names {named} output, but dedup writes the kept records as read ({fmt})")
    if fmt == "parquet" and output not in files:
        raise textio.FileError("deduplicating Parquet writes Parquet: give an output file with -o")
    if report is not None:
        where = _destination(report)
        if where == _destination(output):
            name = where if where in ("stdout", "stderr") else "the same file"
            raise textio.FileError(f"{report}: the report and the kept items (-o) would be written to {name}")
        if textio.is_input_file(report, None if spec.is_stdin else spec.path):
            raise textio.FileError(f"{report}: the report would replace the input")
    for path in files:
        textio.check_output_path(path)
    if fmt == "parquet":
        textio.check_file_output(output)


def _destination(path: str | None) -> str:
    """Where an output goes: "stdout" or "stderr" (under any name, /dev/stdout say), else its real path."""
    stream = textio.output_stream(path)
    if stream is None:
        return os.path.realpath(path)
    return "stderr" if stream is sys.stderr else "stdout"


def _copy_pass(spec: textio.InputSpec, result: DedupResult, out: IO[str] | None, rep: IO[str] | None) -> None:
    """One pass over the input: kept records to `out`, one report row per removed item to `rep`."""
    n = len(result.kept) + len(result.removed)
    kept = np.zeros(n, dtype=bool)
    kept[result.kept] = True
    wanted = np.zeros(n, dtype=bool)
    if rep is not None:
        wanted[result.duplicate_of] = True
    remembered: dict[int, str] = {}  # texts of the kept items that removed ones duplicate
    with textio.open_input(spec) as source:
        if out is not None:
            out.write(source.header)
        seen = 0
        for index, record in enumerate(source.records):
            if index >= n:
                raise JobError(f"{spec.name} has more items than were deduplicated ({n}): it changed during the run")
            seen = index + 1
            if kept[index]:
                if out is not None:
                    out.write(record.raw)
                if wanted[index]:
                    remembered[index] = record.text
            elif rep is not None:
                at = int(np.searchsorted(result.removed, index))
                target = int(result.duplicate_of[at])
                row = {
                    "index": index,
                    "text": record.text,
                    "duplicate_of": target,
                    "duplicate_text": remembered[target],
                    "score": round(float(result.scores[at]), 6),
                    "exact": bool(result.exact[at]),
                }
                textio.write_jsonl(rep, [row])
    if seen != n:
        raise JobError(f"{spec.name} has {seen} items on the second pass, {n} on the first: it changed during the run")
