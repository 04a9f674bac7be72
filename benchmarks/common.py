"""Shared helpers for the benchmark scripts: the data folder, train-allowed text readers,
fresh-process workers, timing, and markdown / JSON output.

Only files that the data README marks as usable for training are read here; the
evaluation-only files are never opened. The data folder is `$LIGHTEMBED_DATA`, else
`../shared/data` beside the repository root. Nothing is ever copied into the repository.
"""

from __future__ import annotations

import ast
import csv
import io
import json
import os
import platform
import random
import subprocess
import sys
import time
import tokenize
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"
DEFAULT_MODEL_DIR = REPO_ROOT / "weights" / "default"

csv.field_size_limit(1 << 24)


# --------------------------------------------------------------------------- data
def data_dir() -> Path:
    """$LIGHTEMBED_DATA, else ../shared/data beside the repository root."""
    return Path(os.environ.get("LIGHTEMBED_DATA") or REPO_ROOT.parent / "shared" / "data")


def clean(text: str) -> str:
    """Collapse all whitespace (so a text fits on one line of a text file)."""
    return " ".join(text.split())


def _lines(path: Path, encoding: str = "utf-8") -> Iterator[str]:
    with path.open(encoding=encoding, errors="replace") as handle:
        for line in handle:
            yield line.rstrip("\n")


def _tsv(path: Path, columns: Sequence[int], unquote: bool = False) -> Iterator[str]:
    for line in _lines(path):
        fields = line.split("\t")
        for c in columns:
            if c < len(fields):
                text = fields[c]
                if unquote and len(text) >= 2 and text[0] == text[-1] == '"':
                    text = text[1:-1].replace('""', '"')
                yield text


def _string_literals(text: str) -> list[str]:
    """The string literals of a printed list such as `['a.'\\n 'b.']` (no commas between them)."""
    out = []
    try:
        for token in tokenize.generate_tokens(io.StringIO(text).readline):
            if token.type == tokenize.STRING:
                out.append(ast.literal_eval(token.string))
    except (tokenize.TokenError, SyntaxError, ValueError):
        pass
    return out


def snli_dev(data: Path) -> Iterator[str]:
    """SNLI dev premises and hypotheses (train-allowed)."""
    yield from _lines(data / "snli_devtest" / "s1.dev")
    yield from _lines(data / "snli_devtest" / "s2.dev")


def quora_dev(data: Path) -> Iterator[str]:
    """Quora (BiMPM) dev questions (train-allowed; test is eval only)."""
    yield from _tsv(data / "quora_pairs_bimpm" / "dev.txt", (0, 1))


def wikiqa_train_answers(data: Path) -> Iterator[str]:
    """WikiQA train answer sentences (column 2)."""
    yield from _tsv(data / "wikiqa" / "train.txt", (1,))


def wikiqa_questions(data: Path) -> Iterator[str]:
    """WikiQA train and dev questions, and dev answers."""
    yield from _tsv(data / "wikiqa" / "train.txt", (0,))
    yield from _tsv(data / "wikiqa" / "dev.txt", (0, 1))


def scifact_documents(data: Path) -> Iterator[str]:
    """SciFact corpus documents: title + abstract as one long text."""
    with (data / "scifact" / "corpus_train.csv").open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            yield row["title"] + ". " + " ".join(_string_literals(row["abstract"]))


def scifact_sentences(data: Path) -> Iterator[str]:
    """SciFact corpus titles and abstract sentences, and the train claims."""
    with (data / "scifact" / "corpus_train.csv").open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            yield row["title"]
            yield from _string_literals(row["abstract"])
    with (data / "scifact" / "claims_train.csv").open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            yield row["claim"]


def sst_train(data: Path) -> Iterator[str]:
    """SST binary sentiment train phrases (lower-cased, tokenised)."""
    for line in _lines(data / "senteval_classification" / "SST" / "Binary" / "sentiment-train"):
        yield line.rsplit("\t", 1)[0]


def sts_train(data: Path) -> Iterator[str]:
    """STS-B train sentences (dev is left out; test is eval only)."""
    yield from _tsv(data / "stsbenchmark" / "sts-train.csv", (5, 6))


def sick_train(data: Path) -> Iterator[str]:
    """SICK TRAIN and TRIAL sentences (TEST is eval only)."""
    rows = _lines(data / "sick" / "SICK.txt")
    header = next(rows).split("\t")
    a, b, split = header.index("sentence_A"), header.index("sentence_B"), header.index("SemEval_set")
    for line in rows:
        fields = line.split("\t")
        if len(fields) > split and fields[split] in ("TRAIN", "TRIAL"):
            yield fields[a]
            yield fields[b]


def mrpc_train(data: Path) -> Iterator[str]:
    """MRPC train sentences (test is eval only)."""
    yield from _tsv(data / "mrpc" / "train.txt", (0, 1), unquote=True)


def trecqa_train_dev(data: Path) -> Iterator[str]:
    """TrecQA train and dev questions and answers (test is eval only)."""
    yield from _tsv(data / "trecqa" / "train.txt", (0, 1))
    yield from _tsv(data / "trecqa" / "dev.txt", (0, 1))


def banking_train(data: Path) -> Iterator[str]:
    """Banking77 train utterances (test is eval only)."""
    with (data / "banking77" / "train.csv").open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            yield row["text"]


def trec_qc_train(data: Path) -> Iterator[str]:
    """TREC question classification train questions (TREC_10 is eval only)."""
    for line in _lines(data / "trec_qc" / "train_5500.label", encoding="latin-1"):
        yield line.split(" ", 1)[1] if " " in line else ""


# Every train-allowed reader, in a fixed order (used by the dedup and memory benchmarks).
SENTENCE_SOURCES: tuple[tuple[str, Callable[[Path], Iterator[str]]], ...] = (
    ("snli_devtest/s1.dev+s2.dev", snli_dev),
    ("quora_pairs_bimpm/dev.txt", quora_dev),
    ("wikiqa/train.txt answers", wikiqa_train_answers),
    ("wikiqa train+dev questions, dev answers", wikiqa_questions),
    ("senteval_classification/SST/Binary/sentiment-train", sst_train),
    ("stsbenchmark/sts-train.csv", sts_train),
    ("sick/SICK.txt TRAIN+TRIAL", sick_train),
    ("mrpc/train.txt", mrpc_train),
    ("trecqa/train.txt+dev.txt", trecqa_train_dev),
    ("banking77/train.csv", banking_train),
    ("trec_qc/train_5500.label", trec_qc_train),
    ("scifact corpus sentences + train claims", scifact_sentences),
)


def unique_texts(sources: Sequence[tuple[str, Callable[[Path], Iterator[str]]]], data: Path) -> dict[str, list[str]]:
    """Distinct cleaned non-empty texts per source (a text is kept only by the first source that has it)."""
    seen: set[str] = set()
    out: dict[str, list[str]] = {}
    for name, read in sources:
        texts = []
        for raw in read(data):
            text = clean(raw)
            if text and text not in seen:
                seen.add(text)
                texts.append(text)
        out[name] = texts
    return out


def check_data(data: Path) -> None:
    """Fail early with a clear message when the data folder is missing."""
    if not (data / "README.md").is_file():
        raise SystemExit(f"data folder {data} not found: set LIGHTEMBED_DATA to the shared data folder")


# --------------------------------------------------------------------------- text files
def write_lines(path: Path, texts: Sequence[str]) -> None:
    """One text per line (texts must not contain newlines; see `clean`)."""
    with path.open("w", encoding="utf-8") as handle:
        for text in texts:
            handle.write(text + "\n")


def read_lines(path: Path) -> list[str]:
    """The texts written by `write_lines`."""
    with path.open(encoding="utf-8") as handle:
        return [line.rstrip("\n") for line in handle]


# --------------------------------------------------------------------------- workers
def clean_env() -> dict[str, str]:
    """The environment for worker processes: tokenizer parallelism left at its default."""
    env = dict(os.environ)
    for key in ("TOKENIZERS_PARALLELISM", "RAYON_NUM_THREADS", "RAYON_RS_NUM_CPUS"):
        env.pop(key, None)
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_OFFLINE", "1")
    return env


def run_worker(script: Path, args: Sequence[str], timeout: float | None = None) -> dict[str, Any]:
    """Run `python script --worker ...` in a fresh process; it prints one JSON object as its last stdout line."""
    cmd = [sys.executable, str(script), *args]
    proc = subprocess.run(
        cmd, check=False, capture_output=True, text=True, env=clean_env(), timeout=timeout, cwd=REPO_ROOT
    )
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise RuntimeError(f"worker failed ({proc.returncode}): {' '.join(cmd)}")
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    if not lines:
        raise RuntimeError(f"worker printed nothing: {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    return json.loads(lines[-1])


def emit(result: dict[str, Any]) -> None:
    """How a worker hands its result back: one JSON line on stdout."""
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


def best_of(fn: Callable[[], Any], repeats: int, warmup: bool = True) -> tuple[float, list[float], Any]:
    """Best wall time of `repeats` calls after one untimed warm-up call; returns (best, all times, last result)."""
    if warmup:
        fn()
    times = []
    result = None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), times, result


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MiB (VmHWM, else ru_maxrss)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --------------------------------------------------------------------------- reporting
# Environment variables that change how many threads the libraries use (recorded with each result).
THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "TOKENIZERS_PARALLELISM")


def machine_info() -> dict[str, Any]:
    """CPU model, cores, memory and library versions, for the results file."""
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gb = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for name in ("numpy", "tokenizers", "lightembed", "wordllama", "model2vec", "semhash", "vicinity", "usearch"):
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": mem_gb,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions,
        "thread_settings": {name: os.environ[name] for name in THREAD_VARIABLES if name in os.environ},
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def write_json(name: str, payload: dict[str, Any], out_dir: Path = RESULTS_DIR) -> Path:
    """Write `payload` to benchmarks/results/<name>.json (small, commit-worthy)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return path


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(str(c) for c in row) + " |")
    return "\n".join(lines)


def bootstrap_interval(
    values: np.ndarray, groups: np.ndarray | None = None, reps: int = 2000, seed: int = 0
) -> list[float]:
    """95% interval of the mean of per-query `values` over test sets resampled with replacement: by
    whole group when `groups` (a label per value) is given, else query by query."""
    if groups is None:
        groups = np.arange(len(values))
    _, inverse = np.unique(groups, return_inverse=True)
    sums, counts = np.bincount(inverse, weights=values), np.bincount(inverse)
    picks = np.random.default_rng(seed).integers(0, len(sums), size=(reps, len(sums)))
    means = sums[picks].sum(axis=1) / counts[picks].sum(axis=1)
    return [float(v) for v in np.percentile(means, [2.5, 97.5])]


def seeded(seed: int) -> random.Random:
    """A private random generator."""
    return random.Random(seed)


# --------------------------------------------------------------------------- a quiet machine
def cpu_busy_fraction(interval: float = 1.0) -> float:
    """Share of all CPU time that was busy over `interval` seconds (from /proc/stat); -1 if unknown."""

    def snapshot() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
        return idle, sum(fields)

    try:
        idle0, total0 = snapshot()
        time.sleep(interval)
        idle1, total1 = snapshot()
    except (OSError, ValueError, IndexError):
        return -1.0
    total = total1 - total0
    return 1.0 - (idle1 - idle0) / total if total > 0 else -1.0


def wait_for_quiet(max_busy: float, timeout: float) -> float:
    """Wait (up to `timeout` s) until other processes leave the CPU mostly idle; returns the last busy share.

    Other people share this machine; a benchmark started while they compute measures them too.
    """
    deadline = time.monotonic() + timeout
    busy = cpu_busy_fraction()
    while busy > max_busy and time.monotonic() < deadline:
        busy = cpu_busy_fraction(2.0)
    if busy > max_busy:
        print(f"warning: the CPU is {busy:.0%} busy with other work; timings will be noisy", file=sys.stderr)
    return busy


def model_fingerprint(folder: Path) -> dict[str, Any]:
    """Which model was measured: sha256 (first 16 hex digits) and modification time of its files."""
    import hashlib

    out: dict[str, Any] = {}
    for name in ("model.safetensors", "tokenizer.json", "config.json"):
        path = folder / name
        if path.is_file():
            digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
            out[name] = {
                "sha256_16": digest,
                "mtime": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(path.stat().st_mtime)),
            }
    return out
