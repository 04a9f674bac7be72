"""The benchmark suite: any encoder on the evaluation-only splits of the shared data, task by task.

    from lightembed_train.evaluate import EmbeddingCache, default_tasks, encoder_from_spec, evaluate
    report = evaluate(encoder_from_spec("default@64", work_dir), default_tasks(), EmbeddingCache(cache_dir))
    print(markdown_table([report]))

Every score is x100 and computed from cosine similarities of the encoder's vectors (rows are
L2-normalised first). The tasks and their metrics:

- STS: STS-B test, SICK-R test (Spearman).
- Pair classification: MRPC test, Quora test pairs (average precision).
- Classification: Banking77 and TREC (probe fitted on their train split), MR, CR, SUBJ, MPQA
  (fixed stratified 80/20 split, seed 0); probe = standardise, then LogisticRegression(C=1,
  max_iter=1000); test accuracy.
- Clustering: Banking77 test, AG News test (V-measure of k-means, k = number of classes,
  seed 0, n_init 10).
- Reranking: WikiQA test, TrecQA test (MAP over questions with both labels).
- Retrieval: SciFact (BEIR test = claims_validation.csv, nDCG@10 over the 5,183 abstracts).
- Duplicate groups: Quora test duplicates joined by union-find, leave-one-out MAP@50 (main)
  and R@1 (shown, not averaged).

The average is over each task's main metric. Throughput is all texts embedded over the
seconds the encoder took for them; embeddings are cached per (encoder, task) on disk together
with those seconds, so a re-run reports the timings of the run that made the cache.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lightembed.scoring import unit_rows

from .datasets import (
    data_dir,
    read_ag_news,
    read_answer_selection,
    read_banking77,
    read_labelled_pairs,
    read_scifact,
    read_senteval,
    read_sick,
    read_sts_benchmark,
    read_trec,
)
from .evaluation.base import Encoder, Task
from .evaluation.classification import ClassificationTask, holdout_split
from .evaluation.clustering import ClusteringTask
from .evaluation.duplicates import DuplicateGroupsTask, union_find_groups
from .evaluation.pairs import PairClassificationTask
from .evaluation.reranking import RerankingTask
from .evaluation.retrieval import RetrievalTask
from .evaluation.sts import StsTask

logger = logging.getLogger(__name__)


def _quora_groups(data: Path) -> Task:
    pairs = read_labelled_pairs(data / "quora_pairs_bimpm" / "test.txt")
    duplicates = [(a, b) for a, b, label in zip(pairs.texts1, pairs.texts2, pairs.scores) if label > 0]
    return DuplicateGroupsTask("Quora groups", union_find_groups(duplicates))


def _senteval(name: str) -> Callable[[Path], Task]:
    return lambda data: ClassificationTask(name, *holdout_split(read_senteval(data, name)))


# Every task of the suite, in table order: name -> builder reading the eval-only files of `data`.
TASKS: dict[str, Callable[[Path], Task]] = {
    "STS-B": lambda data: StsTask("STS-B", read_sts_benchmark(data, "test")),
    "SICK-R": lambda data: StsTask("SICK-R", read_sick(data, "TEST")),
    "MRPC": lambda data: PairClassificationTask("MRPC", read_labelled_pairs(data / "mrpc" / "test.txt")),
    "Quora pairs": lambda data: PairClassificationTask(
        "Quora pairs", read_labelled_pairs(data / "quora_pairs_bimpm" / "test.txt")
    ),
    "Banking77": lambda data: ClassificationTask(
        "Banking77", read_banking77(data, "train"), read_banking77(data, "test")
    ),
    "TREC": lambda data: ClassificationTask("TREC", read_trec(data, "train"), read_trec(data, "test")),
    "MR": _senteval("MR"),
    "CR": _senteval("CR"),
    "SUBJ": _senteval("SUBJ"),
    "MPQA": _senteval("MPQA"),
    "Banking77 clustering": lambda data: ClusteringTask("Banking77 clustering", read_banking77(data, "test")),
    "AG News clustering": lambda data: ClusteringTask("AG News clustering", read_ag_news(data)),
    "WikiQA": lambda data: RerankingTask("WikiQA", read_answer_selection(data / "wikiqa" / "test.txt")),
    "TrecQA": lambda data: RerankingTask("TrecQA", read_answer_selection(data / "trecqa" / "test.txt")),
    "SciFact": lambda data: RetrievalTask("SciFact", read_scifact(data, "claims_validation.csv")),
    "Quora groups": _quora_groups,
}


def default_tasks(data: Path | None = None, names: Sequence[str] | None = None) -> list[Task]:
    """The suite's tasks (all, or those in `names`, in suite order) read from the data folder."""
    folder = data_dir() if data is None else Path(data)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: data folder not found (set LIGHTEMBED_DATA to the shared data folder)")
    wanted = list(TASKS) if names is None else list(names)
    unknown = [name for name in wanted if name not in TASKS]
    if unknown:
        raise ValueError(f"unknown task(s) {unknown}; the suite has {list(TASKS)}")
    return [TASKS[name](folder) for name in TASKS if name in wanted]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "_", text).strip("_")


def _texts_digest(texts: Sequence[str]) -> str:
    digest = hashlib.sha256(str(len(texts)).encode())
    for text in texts:
        digest.update(b"\x00" + text.encode("utf-8", "surrogatepass"))
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class Embedded:
    """A task's vectors from one encoder, and the seconds the encoder took to make them."""

    vectors: np.ndarray
    seconds: float
    cached: bool


class EmbeddingCache:
    """Embeddings on disk, one `.npy` per (encoder, task), with a `.json` of how long they took.

    Files: `<folder>/<encoder>-<fingerprint>/<task>-<digest of the texts>.npy`. A changed
    model (fingerprint) or a changed task (texts) misses the cache.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def _paths(self, encoder: Encoder, task: Task) -> tuple[Path, Path]:
        base = self.folder / f"{_slug(encoder.name)}-{_slug(encoder.fingerprint)}"
        stem = f"{_slug(task.name)}-{_texts_digest(task.texts)}"
        return base / f"{stem}.npy", base / f"{stem}.json"

    def load(self, encoder: Encoder, task: Task) -> Embedded | None:
        """The cached vectors of `task` from `encoder`, or None."""
        array_path, meta_path = self._paths(encoder, task)
        if not (array_path.is_file() and meta_path.is_file()):
            return None
        try:
            vectors = np.load(array_path, allow_pickle=False)
            seconds = float(json.loads(meta_path.read_text(encoding="utf-8"))["seconds"])
        except (OSError, ValueError, EOFError, KeyError, TypeError) as exc:  # a damaged file: embed again
            logger.warning("%s: unreadable cache (%s), embedding again", array_path, exc)
            return None
        if vectors.shape[0] != len(task.texts):
            logger.warning("%s: cached rows do not match the task, embedding again", array_path)
            return None
        return Embedded(vectors, seconds, cached=True)

    def save(self, encoder: Encoder, task: Task, embedded: Embedded) -> None:
        """Store `embedded` (written to temporary names, then renamed)."""
        array_path, meta_path = self._paths(encoder, task)
        array_path.parent.mkdir(parents=True, exist_ok=True)
        meta = {"encoder": encoder.name, "task": task.name, "texts": len(task.texts), "seconds": embedded.seconds}
        with array_path.with_suffix(".tmp").open("wb") as handle:
            np.save(handle, embedded.vectors, allow_pickle=False)
        array_path.with_suffix(".tmp").replace(array_path)
        meta_tmp = meta_path.with_suffix(".json.tmp")
        meta_tmp.write_text(json.dumps(meta) + "\n", encoding="utf-8")
        meta_tmp.replace(meta_path)


def embed_task(encoder: Encoder, task: Task, cache: EmbeddingCache | None = None) -> Embedded:
    """The vectors of `task.texts` from `encoder`: from the cache, else timed and stored.

    An encoder with a transform file on top embeds through its inner encoder's cache entry
    and applies the transform (timed too), so trying a transform never re-embeds the texts.
    """
    from .evaluation.encoders import TransformedEncoder

    if isinstance(encoder, TransformedEncoder):
        inner = embed_task(encoder.inner, task, cache)
        start = time.perf_counter()
        vectors = encoder.transform.apply(inner.vectors)
        return Embedded(vectors, inner.seconds + time.perf_counter() - start, inner.cached)
    if cache is not None:
        hit = cache.load(encoder, task)
        if hit is not None:
            return hit
    start = time.perf_counter()
    vectors = np.asarray(encoder.encode(list(task.texts)), dtype=np.float32)
    seconds = time.perf_counter() - start
    if vectors.ndim != 2 or vectors.shape[0] != len(task.texts):
        raise ValueError(f"{encoder.name}: encode gave shape {vectors.shape} for {len(task.texts)} texts")
    embedded = Embedded(vectors, seconds, cached=False)
    if cache is not None:
        cache.save(encoder, task, embedded)
    return embedded


@dataclass(frozen=True)
class TaskResult:
    """One encoder's scores on one task (x100), the main metric first."""

    task: str
    family: str
    scores: dict[str, float]
    texts: int
    seconds: float
    cached: bool

    @property
    def main(self) -> float:
        """The score averaged over tasks."""
        return next(iter(self.scores.values()))


@dataclass
class EncoderReport:
    """All task results of one encoder."""

    encoder: str
    fingerprint: str
    results: list[TaskResult] = field(default_factory=list)

    @property
    def average(self) -> float:
        """Mean of the tasks' main scores."""
        return float(np.mean([r.main for r in self.results])) if self.results else float("nan")

    @property
    def texts(self) -> int:
        """Texts embedded over all tasks."""
        return sum(r.texts for r in self.results)

    @property
    def seconds(self) -> float:
        """Seconds the encoder took for them."""
        return sum(r.seconds for r in self.results)

    @property
    def throughput(self) -> float:
        """Texts per second over all tasks."""
        return self.texts / self.seconds if self.seconds > 0 else float("nan")

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict with the derived figures."""
        out = asdict(self)
        out.update(average=self.average, texts=self.texts, seconds=self.seconds, throughput=self.throughput)
        return out


def evaluate(encoder: Encoder, tasks: Sequence[Task], cache: EmbeddingCache | None = None) -> EncoderReport:
    """Run every task on `encoder` (embedding through `cache` when given)."""
    report = EncoderReport(encoder.name, encoder.fingerprint)
    for task in tasks:
        embedded = embed_task(encoder, task, cache)
        scores = task.score(unit_rows(embedded.vectors))
        logger.info(
            "%s | %s: %s (%d texts, %.1f s%s)",
            encoder.name,
            task.name,
            ", ".join(f"{k} {v:.2f}" for k, v in scores.items()),
            len(task.texts),
            embedded.seconds,
            ", cached" if embedded.cached else "",
        )
        report.results.append(
            TaskResult(task.name, task.family, scores, len(task.texts), embedded.seconds, embedded.cached)
        )
    return report


def markdown_table(reports: Sequence[EncoderReport]) -> str:
    """Tasks as rows, encoders as columns, then the average and the throughput."""
    header = ["task", "family", "metric", *(r.encoder for r in reports)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * 3 + "---:|" * len(reports)]
    rows: dict[tuple[str, str], list[str]] = {}
    families: dict[str, str] = {}
    for column, report in enumerate(reports):
        for result in report.results:
            families[result.task] = result.family
            for rank, (metric, value) in enumerate(result.scores.items()):
                label = metric if rank == 0 else f"{metric} (not averaged)"
                cells = rows.setdefault((result.task, label), [""] * len(reports))
                cells[column] = f"{value:.2f}"
    for (task, metric), cells in rows.items():
        lines.append(f"| {task} | {families[task]} | {metric} | " + " | ".join(cells) + " |")
    counts = {len(r.results) for r in reports}
    tasks = f"{counts.pop()} tasks" if len(counts) == 1 else "tasks"
    lines.append(f"| **average** | | {tasks} | " + " | ".join(f"**{r.average:.2f}**" for r in reports) + " |")
    lines.append("| throughput | | texts/s | " + " | ".join(f"{r.throughput:,.0f}" for r in reports) + " |")
    return "\n".join(lines)


def encoder_from_spec(spec: str, work_dir: Path) -> Encoder:
    """Build an encoder from a short name, optionally truncated with `@DIM`.

    - `default`, `default@64`, `PATH`, `PATH@128`: a lightembed model (its own Matryoshka truncation);
    - `minilm`: all-MiniLM-L6-v2 through sentence-transformers (the packaged teacher);
    - `wordllamaDIM`: WordLlama l2_supercat at DIM (256, or its own truncation: 64, 128);
    - `model2vecDIM`: model2vec's distillation of the same teacher with PCA to DIM, made once in `work_dir`;
    - `minilm@DIM`, `model2vecDIM@DIM2`: those peers' vectors cut to their first columns;
    - `MODEL:binary@BITS`: a lightembed model's binary codes as ±1 vectors (its trained binary
      codebook when it has one, else the plain sign of the first BITS columns);
    - `SPEC:simhash@BITS`: sign bits of a seeded random projection of any encoder's vectors;
    - `SPEC+FILE.safetensors`: any of those, then the transform file (e.g. a fitted projection).
    """
    from .evaluation import encoders

    if match := re.fullmatch(r"(.+):(binary|simhash)@(\d+)", spec):
        inner, kind, bits = match[1], match[2], int(match[3])
        if kind == "binary":
            return encoders.LightEmbedEncoder(inner, dim=bits, binary=True)
        return encoders.SimHashEncoder(encoder_from_spec(inner, work_dir), bits)

    inner, plus, transform = spec.rpartition("+")
    if plus and transform.endswith(".safetensors"):
        return encoders.TransformedEncoder(encoder_from_spec(inner, work_dir), transform)

    base, at, dim = spec.rpartition("@")
    if not at or not dim.isdigit():
        base, dim = spec, ""
    if base == "minilm" or re.fullmatch(r"model2vec\d+", base):
        encoder = _peer_encoder(base, Path(work_dir))
        return encoders.TruncatedEncoder(encoder, int(dim)) if dim else encoder
    if match := re.fullmatch(r"wordllama(\d+)", spec):
        return encoders.WordLlamaEncoder(int(match[1]), Path(work_dir) / "wordllama")
    return encoders.LightEmbedEncoder(base, dim=int(dim) if dim else None)


def _peer_encoder(name: str, work_dir: Path) -> Encoder:
    """all-MiniLM-L6-v2 (`minilm`) or model2vec's distillation of it (`model2vecDIM`)."""
    from .evaluation import encoders
    from .teacher import default_teacher_path

    if name == "minilm":
        return encoders.SentenceTransformerEncoder(default_teacher_path(), name="all-MiniLM-L6-v2")
    dims = int(name.removeprefix("model2vec"))
    folder = encoders.distill_model2vec(default_teacher_path(), work_dir / f"model2vec_minilm_{dims}", dims)
    return encoders.Model2VecEncoder(folder, name=f"model2vec MiniLM@{dims}")
