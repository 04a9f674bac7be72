"""Fit a Matryoshka adaptor to embeddings (any source) or to a lightembed model, and export it.

`fit_adaptor` takes corpus vectors, optionally query vectors with their relevant documents,
carves a group-disjoint dev split from the queries, trains (see `lightembed_train.adapt`) and
scores plain truncation against the adaptor at every prefix size on that dev split.
`adapt_model` does the same for a lightembed model folder (its pooled vectors, exactly what the
runtime passes to the adaptor) and writes a new model folder that `lightembed.load` runs.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

import lightembed
from lightembed import LightEmbed, Transform, write_model
from lightembed.config import AdaptorConfig
from lightembed.pooling import mean_pool
from lightembed.scoring import blocks

from .adapt import (
    AdaptData,
    AdaptSettings,
    MatryoshkaAdaptor,
    Scorer,
    StageResult,
    check_vectors,
    group_split,
    relevance_lists,
    train_adaptor,
)
from .checks import numbered_lines, read_npy
from .codebook import base_tensors
from .distill import versions

logger = logging.getLogger(__name__)

HOLDOUT_MAX = 2000  # corpus rows held out for the label-free dev score


@dataclass
class AdaptResult:
    """A trained adaptor, its numpy transform, and the dev scores of truncation before and after."""

    adaptor: MatryoshkaAdaptor
    normalize: bool  # whether the exported transforms L2-normalise their (truncated) outputs
    dims: tuple[int, ...]
    metric: str  # what the scores are: "dev nDCG@10", "held-out neighbour recall@10", or "no dev score (...)"
    truncation: dict[int, float]  # plain truncation of the input vectors
    stages: list[StageResult]
    counts: dict[str, int]  # corpus, unsupervised rows, train and dev queries
    settings: AdaptSettings
    seconds: float

    def stage(self, name: str) -> StageResult:
        """The stage called `name` ("unsupervised" or "supervised")."""
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(f"no stage {name!r} in this run (stages: {[s.name for s in self.stages]})")

    def stage_scores(self, name: str) -> dict[int, float]:
        """The dev scores per prefix size at the kept epoch of stage `name`."""
        row = self.stage(name).history[self.stage(name).best_epoch]
        return {m: row[f"@{m}"] for m in self.dims if f"@{m}" in row}

    def stage_adaptor(self, name: str) -> MatryoshkaAdaptor:
        """A copy of the adaptor as stage `name` left it."""
        adaptor = copy.deepcopy(self.adaptor)
        adaptor.load_state_dict(self.stage(name).state)
        return adaptor.eval()

    def stage_transform(self, name: str) -> Transform:
        """The numpy transform of the adaptor as stage `name` left it."""
        return self.stage_adaptor(name).to_transform(normalize=self.normalize)

    @property
    def transform(self) -> Transform:
        """The numpy transform of the final adaptor."""
        return self.stage_transform(self.stages[-1].name)

    @property
    def scores(self) -> dict[int, float]:
        """The dev scores of the final adaptor per prefix size."""
        return self.stage_scores(self.stages[-1].name)

    def curves(self) -> dict[str, dict[int, float]]:
        """Dev score per prefix size: plain truncation, then each stage's kept epoch."""
        return {"truncation": self.truncation, **{stage.name: self.stage_scores(stage.name) for stage in self.stages}}

    def summary(self) -> dict[str, Any]:
        """A JSON-ready record of the run (settings, counts, scores, every epoch)."""
        return {
            "metric": self.metric,
            "dims": list(self.dims),
            **self.curves(),
            "best_epochs": {stage.name: stage.best_epoch for stage in self.stages},
            "history": {stage.name: stage.history for stage in self.stages},
            "counts": self.counts,
            "settings": asdict(self.settings),
            "seconds": round(self.seconds, 1),
        }


def fit_adaptor(
    corpus: np.ndarray,
    queries: np.ndarray | None = None,
    relevance: np.ndarray | None = None,
    *,
    extra: np.ndarray | None = None,
    settings: AdaptSettings | None = None,
    dev_fraction: float = 0.2,
    queries_in_unsupervised: bool = True,
    normalize: bool = True,
    device: str | None = None,
    progress: bool = True,
) -> AdaptResult:
    """Train an adaptor for `corpus` vectors [n, D]; with `queries` and `relevance`, also the ranking stage.

    `relevance` holds (query row, corpus row) pairs. A share `dev_fraction` of the queries
    (whole groups of queries that share a relevant document) is kept out of training to choose
    the epochs and to give the reported scores. Without queries, up to 2,000 corpus rows are kept
    out instead and scored by neighbour recall. `extra` adds rows to the unsupervised terms only;
    `queries_in_unsupervised` adds the training queries to them too. `normalize` is stored in the
    transform: its outputs are L2-normalised after truncation.
    """
    started = time.perf_counter()
    settings = settings or AdaptSettings()
    corpus = check_vectors(corpus, "corpus")
    if not (corpus != corpus[0]).any():
        raise ValueError(f"corpus: all {len(corpus)} rows are the same vector: there is nothing to fit")
    width = corpus.shape[1]
    settings.prefix_sizes(width)
    unsupervised = [corpus]
    if extra is not None:
        unsupervised.append(check_vectors(extra, "extra vectors", width))
    data = AdaptData(corpus=corpus, unsupervised=corpus)
    if queries is not None:
        queries = check_vectors(queries, "queries", width)
        if relevance is None:
            raise ValueError("queries need relevance: (query row, corpus row) pairs")
        relevant = relevance_lists(relevance, len(queries), len(corpus))
        train, dev = group_split(relevant, dev_fraction, settings.seed)
        data = dataclasses.replace(data, queries=queries, relevant=relevant, train_queries=train, dev_queries=dev)
        if queries_in_unsupervised:
            unsupervised.append(queries[train])
    elif relevance is not None:
        raise ValueError("relevance was given without the query vectors it refers to")
    else:
        unsupervised, data.holdout = _hold_out(unsupervised, settings.seed)
    rows = np.concatenate(unsupervised)
    data.unsupervised = rows[np.abs(rows).sum(axis=1) > 0]
    if len(data.unsupervised) < 2:
        raise ValueError("the corpus needs at least 2 non-zero vectors to train on")
    adaptor, stages = train_adaptor(data, settings, device=device, progress=progress)
    scorer = Scorer(data, settings.prefix_sizes(width))
    counts = {
        "corpus": len(corpus),
        "unsupervised_rows": len(data.unsupervised),
        "train_queries": len(data.train_queries),
        "dev_queries": len(data.dev_queries),
        "holdout_rows": 0 if data.holdout is None else len(data.holdout),
    }
    return AdaptResult(
        adaptor=adaptor,
        normalize=normalize,
        dims=scorer.dims,
        metric=scorer.name,
        truncation=scorer.plain,
        stages=stages,
        counts=counts,
        settings=settings,
        seconds=time.perf_counter() - started,
    )


def _hold_out(parts: list[np.ndarray], seed: int) -> tuple[list[np.ndarray], np.ndarray | None]:
    """Split off up to HOLDOUT_MAX (and at most a tenth of) the corpus rows for the label-free dev score."""
    corpus = parts[0]
    count = min(HOLDOUT_MAX, len(corpus) // 10)
    if count <= 10:
        return parts, None
    order = np.random.default_rng(seed).permutation(len(corpus))
    return [corpus[np.sort(order[count:])], *parts[1:]], corpus[np.sort(order[:count])]


# --------------------------------------------------------------------------- lightembed models
def pooled_vectors(model: LightEmbed, texts: Sequence[str], block: int = 8192) -> np.ndarray:
    """What the runtime hands to a model's adaptor: mean-pooled rows, after its projection if any."""
    parts = model.parts
    table = np.asarray(parts.embeddings, dtype=np.float32)
    out = []
    for start, stop in blocks(len(texts), block):
        flat, lengths = model.tokens.encode(list(texts[start:stop]))
        pooled = mean_pool(table, flat, lengths, parts.token_rows, parts.token_weights)
        if parts.transform.projection is not None:
            weight, bias = parts.transform.projection
            pooled = np.where(lengths[:, None] > 0, pooled @ weight.T + bias, 0.0).astype(np.float32)
        out.append(pooled)
    return np.concatenate(out) if out else np.zeros((0, model.config.dim), dtype=np.float32)


def check_adaptable(model: LightEmbed) -> None:
    """The base must be a plain float model without an adaptor of its own."""
    parts = model.parts
    if parts.transform.adaptor:
        raise ValueError(f"{parts.path}: the model already has an adaptor; adapt its base model instead")
    if parts.token_rows is not None:
        raise ValueError(f"{parts.path}: models with shared token rows (a model2vec mapping) cannot be adapted")


def write_adapted_model(
    model: LightEmbed,
    result: AdaptResult,
    out_folder: str | Path,
    command: str | None,
    stage: str | None = None,
    *,
    input_files: Sequence[dict[str, Any]] = (),
) -> Path:
    """A copy of `model` with the adaptor of `stage` (default: the last) after pooling.

    The rotation is folded into the projection the model had, if any.
    """
    check_adaptable(model)
    parts = model.parts
    transform = result.stage_transform(stage or result.stages[-1].name)
    tensors = base_tensors(model)
    tensors.pop("projection.weight", None)  # folded into the transform below
    tensors.pop("projection.bias", None)
    if parts.transform.projection is not None:  # the adaptor was trained on the projected vectors
        weight, bias = parts.transform.projection
        if transform.projection is not None:
            rotation = transform.projection[0]
            weight, bias = rotation @ weight, rotation @ bias
        transform = dataclasses.replace(transform, projection=(weight, bias))
    tensors.update(transform.tensors())
    embeddings = tensors.pop("embeddings")
    provenance = {
        "method": "adapt",
        "base": str(model.path),
        "base_provenance": model.config.provenance,
        "command": command,
        "input_files": list(input_files),
        "stage": stage or result.stages[-1].name,
        "result": result.summary(),
        "versions": versions(),
    }
    config = dataclasses.replace(
        model.config,
        projection=transform.projection is not None,
        adaptor=AdaptorConfig(len(transform.adaptor), transform.activation) if transform.adaptor else None,
        matryoshka_dims=result.dims,
        provenance=provenance,
        metrics={},
    )
    # The reranker reads the codebook, which the adaptor (after pooling) leaves as it is.
    card = adapted_card(config)
    return write_model(
        out_folder, config, embeddings, parts.tokenizer, tensors, card=card, reranker=parts.reranker_path
    )


def adapt_model(
    base: str | Path | None,
    corpus: Sequence[str],
    out_folder: str | Path,
    *,
    queries: Sequence[str] | None = None,
    relevance: np.ndarray | None = None,
    extra: Sequence[str] = (),
    settings: AdaptSettings | None = None,
    dev_fraction: float = 0.2,
    device: str | None = None,
    progress: bool = True,
    command: str | None = None,
    input_files: Sequence[dict[str, Any]] = (),
) -> tuple[Path, AdaptResult]:
    """Fit an adaptor to the pooled vectors of a lightembed model (None: the bundled default) and write it.

    `command` and `input_files` (`describe_corpus` of each file the texts came from) go into its provenance.
    """
    settings = settings or AdaptSettings()
    model = lightembed.load(base)
    check_adaptable(model)
    if not corpus:
        raise ValueError("the corpus holds no text")
    result = fit_adaptor(
        pooled_vectors(model, corpus),
        None if queries is None else pooled_vectors(model, queries),
        relevance,
        extra=pooled_vectors(model, extra) if extra else None,
        settings=settings,
        dev_fraction=dev_fraction,
        normalize=model.config.normalize,
        device=device,
        progress=progress,
    )
    folder = write_adapted_model(model, result, out_folder, command, input_files=input_files)
    logger.info("wrote %s", folder)
    return folder, result


def _files_note(files: Sequence[dict[str, Any]]) -> str:
    """Card lines naming the input files with their sha256 (nothing when none were recorded)."""
    return "".join(f"- `{f['option']}`: `{f['name']}`, sha256 `{f['sha256'][:16]}…`\n" for f in files)


def adapted_card(config: Any) -> str:
    """The README.md of an adapted model folder."""
    p = config.provenance
    r = p["result"]
    s = r["settings"]
    rows = "\n".join(
        f"| {m} | {r['truncation'].get(m, float('nan')):.2f} | "
        + " | ".join(f"{r[name].get(m, float('nan')):.2f}" for name in r["best_epochs"])
        + " |"
        for m in r["dims"]
    )
    stage_names = " | ".join(r["best_epochs"])
    return f"""# lightembed model with a Matryoshka adaptor

The base model `{p["base"]}` with a residual MLP adaptor after pooling: the pooled vector is
rotated (setting `{s["rotation"]}`: "energy" orders the columns by decreasing energy on the
training corpus, "learned" turns that order further by a trained rotation), then `x + f(x)` with `f` a
{s["layers"]}-layer {s["activation"]} MLP, trained so that every prefix of {", ".join(map(str, r["dims"]))}
columns keeps the full embedding's similarities (see `lightembed_train.adapt`). Load with
`lightembed.load(folder, dim=m)`.

- Command: `{p.get("command") or "(called from Python)"}`
{_files_note(p.get("input_files", []))}- Texts: {r["counts"]}
- Kept epochs: {r["best_epochs"]}; time {r["seconds"]} s.

{r["metric"]} by prefix size:

| dims | truncation | {stage_names} |
|---|---|{"---|" * len(r["best_epochs"])}
{rows}
"""


def plot_scores(result_rows: dict[str, dict[int, float]], path: str | Path, ylabel: str, title: str = "") -> Path:
    """A PNG of score against dimension, one line per entry of `result_rows` (needs matplotlib)."""
    try:
        import matplotlib
    except ImportError:
        raise ImportError("the plot needs matplotlib: pip install matplotlib (or lightembed[bench])") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6.5, 4.2))
    all_dims: set[int] = set()
    for label, scores in result_rows.items():
        dims = sorted(scores)
        all_dims.update(dims)
        axes.plot(dims, [scores[m] for m in dims], marker="o", label=label)
    axes.set_xscale("log", base=2)
    ticks = sorted(all_dims)
    axes.set_xticks(ticks, [str(m) for m in ticks])
    axes.set_xlabel("dimensions (prefix)")
    axes.set_ylabel(ylabel)
    if title:
        axes.set_title(title, fontsize=10)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


# --------------------------------------------------------------------------- files
def load_vectors(path: str | Path) -> np.ndarray:
    """A float matrix [n, dim] from a `.npy` file (never unpickled)."""
    return check_vectors(read_npy(path, "vectors"), str(path))


def read_relevance(path: str | Path) -> np.ndarray:
    """(query row, corpus row) pairs [n, 2] from lines `query_row<TAB>corpus_row` ('#' lines and blanks skipped)."""
    pairs = []
    for number, line in numbered_lines(path, "relevance"):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split()
        if len(fields) != 2 or not all(f.isdigit() for f in fields):
            raise ValueError(f"{path}:{number}: expected 'query_row<TAB>corpus_row' (two integers), got {line!r}")
        pairs.append((int(fields[0]), int(fields[1])))
    if not pairs:
        raise ValueError(f"{path}: no relevant pairs")
    return np.asarray(pairs, dtype=np.int64)


def score_table(result: AdaptResult) -> str:
    """A markdown table of the dev score per prefix size: truncation and each stage."""
    curves = result.curves()
    if not any(curves.values()):
        return f"{result.metric}: every stage kept its last epoch"
    header = "| dims | " + " | ".join(curves) + " |\n|---|" + "---:|" * len(curves)
    rows = [
        f"| {m} | " + " | ".join(f"{c.get(m, float('nan')):.2f}" for c in curves.values()) + " |" for m in result.dims
    ]
    return f"{result.metric}\n\n" + "\n".join([header, *rows])
