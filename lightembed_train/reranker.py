"""Train the separable LITE reranker on a model's token vectors and export it for the numpy runtime.

The torch module computes exactly what `lightembed.reranker.LiteScorer` computes: token vectors
from the frozen codebook (through a learned projection when `projection_dim` > 0, unit-normalised
when `normalize`), the query-by-window similarity matrix, the row MLP over the document axis, the
column MLP over the query axis and the linear output; a document scores its best window.

Loss per (query, positive, negative) triple, with the teacher's cosines t and the student's scores s:
Margin-MSE `((s+ - s-) - (t+ - t-))^2`, plus `kl_weight` times the KL divergence between the
teacher's and the student's two-way softmax at `temperature`, plus `label_weight` times the
pairwise logistic loss `softplus(-(s+ - s-) / temperature)` on the labels themselves.
With `pooled`, the output layer starts as the pooled cosine (weight 1, the other weights scaled
by 0.1), so training starts near the first stage's ranking and learns a token-level correction.
The training triples may take their pooled cosines from another codebook (`training_codebook`), one
not tuned on their pairs, so that the scorer does not learn to trust an inflated first stage.
After every epoch the scorer (with `ema_decay` > 0: the moving average of its weights) is exported
and run by the numpy runtime on the dev rankings; the epoch with the best mean dev score is kept,
and training stops after `patience` epochs without a better one.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import re
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

import lightembed
from lightembed import LightEmbed
from lightembed.folder import (
    CARD_FILE,
    CONFIG_FILE,
    RERANKER_FILE,
    TOKENIZER_FILE,
    WEIGHTS_FILE,
    staged_model_folder,
)
from lightembed.model import capped_tokens
from lightembed.pooling import mean_pool
from lightembed.reranker import LiteScorer, document_windows, pad_ids, save_reranker, window_counts
from lightembed.scoring import unit_rows

from .activations import TORCH_ACTIVATIONS
from .checks import finite_loss, require_counts, require_non_negative, require_positive, require_unit_interval
from .datasets import RankingQuery
from .device import resolve_device
from .distill import versions
from .evaluation.reranking import rank_by_score, ranked_average_precision
from .evaluation.retrieval import ndcg_at_k
from .rerank_data import DevRanking, RerankData, Triple
from .targets import teacher_embeddings
from .teacher import Teacher
from .tune import TokenizedTexts, tokenize

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RerankSettings:
    """Sizes of the scorer and how it is trained."""

    query_length: int = 32
    doc_length: int = 64
    max_windows: int = 8
    projection_dim: int = 64  # 0: compare the codebook rows themselves
    normalize: bool = True
    pooled: bool = False  # the pooled cosine as one more input of the output layer
    sort_rows: bool = False  # rows: each query token's doc_length largest similarities, sorted
    row_hidden: int = 64
    row_width: int = 16
    column_hidden: int = 32
    column_width: int = 8
    activation: str = "relu"
    epochs: int = 8
    batch_size: int = 256
    learning_rate: float = 1e-3
    kl_weight: float = 0.0
    label_weight: float = 0.0
    temperature: float = 0.05
    patience: int = 2
    seed: int = 0
    ema_decay: float = 0.0  # > 0: evaluate and export an exponential moving average of the weights

    def check(self) -> None:
        """Raise ValueError naming the first setting out of range."""
        sizes = ("query_length", "doc_length", "max_windows", "row_hidden", "row_width", "column_hidden")
        require_counts(self, (*sizes, "column_width", "epochs", "batch_size", "patience"))
        require_counts(self, ("projection_dim", "seed"), minimum=0)
        require_positive(self, ("learning_rate", "temperature"))
        require_non_negative(self, ("kl_weight", "label_weight"))
        require_unit_interval(self, ("ema_decay",))
        if self.activation not in TORCH_ACTIVATIONS:
            raise ValueError(f"activation must be one of {tuple(TORCH_ACTIVATIONS)}, got {self.activation!r}")


def _mlp(sizes: Sequence[int], activation: str) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(pairwise(sizes)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(TORCH_ACTIVATIONS[activation]())
    return nn.Sequential(*layers)


class LiteModule(nn.Module):
    """The trainable scorer over a frozen codebook (its last row, the padding id, is zero)."""

    def __init__(self, codebook: np.ndarray, settings: RerankSettings) -> None:
        super().__init__()
        if settings.activation not in TORCH_ACTIVATIONS:
            raise ValueError(f"activation must be one of {tuple(TORCH_ACTIVATIONS)}, got {settings.activation!r}")
        table = np.concatenate([np.asarray(codebook, dtype=np.float32), np.zeros((1, codebook.shape[1]), np.float32)])
        self.register_buffer("codebook", torch.from_numpy(table))
        self.settings = settings
        dim = codebook.shape[1]
        self.projection = None
        if settings.projection_dim:
            # Start at the first projection_dim columns: the codebook's most important (Matryoshka) prefix.
            self.projection = nn.Linear(dim, settings.projection_dim, bias=False)
            with torch.no_grad():
                self.projection.weight.copy_(torch.eye(settings.projection_dim, dim))
        s = settings
        self.row = _mlp([s.doc_length, s.row_hidden, s.row_width], s.activation)
        self.column = _mlp([s.query_length, s.column_hidden, s.column_width], s.activation)
        self.output = nn.Linear(s.row_width * s.column_width + int(s.pooled), 1)
        if s.pooled:
            # Start from the pooled cosine itself; the token-level features begin as a small correction.
            with torch.no_grad():
                self.output.weight.mul_(0.1)
                self.output.weight[0, -1] = 1.0
                self.output.bias.zero_()

    @property
    def pad(self) -> int:
        """The padding id (the zero row)."""
        return self.codebook.shape[0] - 1

    def token_vectors(self, ids: torch.Tensor) -> torch.Tensor:
        """Vectors of `ids` (any shape) as the scorer compares them: [..., p]."""
        unique, inverse = torch.unique(ids, return_inverse=True)
        vectors = self.codebook[unique]
        if self.projection is not None:
            vectors = self.projection(vectors)
        if self.settings.normalize:
            vectors = nn.functional.normalize(vectors, dim=-1)
        vectors = vectors * (unique != self.pad).unsqueeze(1)
        return vectors[inverse]

    def matrix_scores(self, sims: torch.Tensor, cosines: torch.Tensor | None = None) -> torch.Tensor:
        """Scores [n] of similarity matrices [n, query_length, doc_length] (and pooled cosines [n])."""
        features = self.column(self.row(sims).transpose(1, 2)).flatten(1)  # [n, r * c]
        if self.settings.pooled:
            features = torch.cat([features, cosines.unsqueeze(1)], dim=1)
        return self.output(features).squeeze(1)

    def forward(
        self,
        query_ids: torch.Tensor,
        window_ids: torch.Tensor,
        owner: torch.Tensor,
        n: int,
        cosines: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Best-window scores [n]: `query_ids` [n, Lq], `window_ids` [w, Ld] of document `owner` [w],
        `cosines` [n] the pooled cosines (used when `pooled`)."""
        vectors = self.token_vectors(torch.cat([query_ids.flatten(), window_ids.flatten()]))
        split = query_ids.numel()
        queries = vectors[:split].view(*query_ids.shape, -1)
        windows = vectors[split:].view(*window_ids.shape, -1)
        sims = torch.bmm(queries[owner], windows.transpose(1, 2))  # [w, Lq, Ld] (sort_rows: [n, Lq, tokens])
        if self.settings.sort_rows:
            padding = (window_ids == self.pad).unsqueeze(1)  # [n, 1, tokens]
            sims = top_sorted(sims.masked_fill(padding, -torch.inf), self.settings.doc_length)
        scores = self.matrix_scores(sims, None if cosines is None else cosines[owner])
        best = torch.full((n,), -torch.inf, dtype=scores.dtype, device=scores.device)
        return best.scatter_reduce(0, owner, scores, reduce="amax")

    def to_scorer(self) -> LiteScorer:
        """The same scorer for the numpy runtime."""

        def layers(seq: nn.Sequential) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
            return tuple((_numpy(m.weight), _numpy(m.bias)) for m in seq if isinstance(m, nn.Linear))

        s = self.settings
        return LiteScorer(
            row=layers(self.row),
            column=layers(self.column),
            output=(_numpy(self.output.weight), _numpy(self.output.bias)),
            projection=None if self.projection is None else _numpy(self.projection.weight),
            activation=s.activation,
            normalize=s.normalize,
            max_windows=s.max_windows,
            pooled=s.pooled,
            sort_rows=s.sort_rows,
        )


def top_sorted(sims: torch.Tensor, k: int) -> torch.Tensor:
    """The `k` largest values of each row [..., width], descending; -inf (padding) and missing values
    (width < k) become zeros at the end."""
    if sims.shape[-1] < k:
        sims = nn.functional.pad(sims, (0, k - sims.shape[-1]), value=-torch.inf)
    top = torch.topk(sims, k, dim=-1).values
    return torch.where(torch.isneginf(top), torch.zeros_like(top), top)


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().float().cpu().numpy().copy()


def text_ids(tokens: TokenizedTexts, row: int) -> np.ndarray:
    """The ids of text `row`."""
    return tokens.flat[tokens.starts[row] : tokens.starts[row] + tokens.lengths[row]]


def batch_tensors(
    tokens: TokenizedTexts, queries: np.ndarray, docs: np.ndarray, settings: RerankSettings, pad: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(query ids [n, Lq], window ids [w, Ld], owner [w]) of the (query, doc) text rows; with `sort_rows`
    one window per document of its first tokens (at most doc_length x max_windows)."""
    query_ids = np.stack([pad_ids(text_ids(tokens, q), settings.query_length, pad) for q in queries])
    docs_tokens = tokens.subset(docs)
    flat, lengths = docs_tokens.flat, docs_tokens.lengths
    starts = np.zeros(len(lengths), dtype=np.int64)
    np.cumsum(lengths[:-1], out=starts[1:])
    if settings.sort_rows:
        lengths = np.minimum(lengths, settings.doc_length * settings.max_windows)
        width = max(int(lengths.max(initial=0)), 1)
        ids, owner = document_windows(flat, starts, lengths, width, np.ones(len(lengths), dtype=np.int64))
    else:
        windows = window_counts(lengths, settings.doc_length, settings.max_windows)
        ids, owner = document_windows(flat, starts, lengths, settings.doc_length, windows)
    ids = np.where(ids < 0, pad, ids)
    return torch.from_numpy(query_ids), torch.from_numpy(ids), torch.from_numpy(owner)


def triple_loss(
    positive: torch.Tensor, negative: torch.Tensor, teacher_margin: torch.Tensor, settings: RerankSettings
) -> torch.Tensor:
    """Margin-MSE, plus the optional KL and label terms (see the module docstring)."""
    margin = positive - negative
    loss = ((margin - teacher_margin) ** 2).mean()
    if settings.kl_weight > 0:
        t = settings.temperature
        student = torch.log_softmax(torch.stack([positive, negative], dim=1) / t, dim=1)
        teacher = torch.log_softmax(torch.stack([teacher_margin, torch.zeros_like(teacher_margin)], dim=1) / t, dim=1)
        loss = loss + settings.kl_weight * nn.functional.kl_div(
            student, teacher, log_target=True, reduction="batchmean"
        )
    if settings.label_weight > 0:
        loss = loss + settings.label_weight * nn.functional.softplus(-margin / settings.temperature).mean()
    return loss


def dev_score(
    scorer: LiteScorer,
    table: np.ndarray,
    ranking: DevRanking,
    tokens: TokenizedTexts,
    index: dict[str, int],
    pooled: np.ndarray,
) -> float:
    """MAP or nDCG@10 (x100) of `ranking` reordered by the numpy scorer (`pooled`: unit pooled vectors)."""

    def scores_of(query: RankingQuery) -> np.ndarray:
        rows = np.asarray([index[c] for c in query.candidates])
        docs = tokens.subset(rows)
        cosines = pooled[rows] @ pooled[index[query.query]]
        scores = scorer.scores(table, text_ids(tokens, index[query.query]), docs.flat, docs.lengths, cosines)
        if not np.isfinite(scores).all():
            raise ValueError(f"the scorer gives non-finite scores on {ranking.name}: its weights overflow")
        return scores

    return _ranking_score(ranking, scores_of)


def cosine_dev_score(vectors: np.ndarray, ranking: DevRanking, index: dict[str, int]) -> float:
    """The same metric with candidates ordered by the cosine of `vectors` (the teacher's, say)."""
    unit = unit_rows(vectors)
    return _ranking_score(ranking, lambda query: unit[[index[c] for c in query.candidates]] @ unit[index[query.query]])


def _ranking_score(ranking: DevRanking, scores_of: Callable[[RankingQuery], np.ndarray]) -> float:
    """MAP or nDCG@10 (x100, as `ranking.metric` says) of each query's candidates ordered by `scores_of(query)`."""
    values = []
    for query, n_relevant in zip(ranking.queries, ranking.n_relevant):
        relevance = np.asarray(query.labels, dtype=bool)[rank_by_score(scores_of(query))]
        values.append(
            ranked_average_precision(relevance) if ranking.metric == "MAP" else ndcg_at_k(relevance, n_relevant)
        )
    return 100.0 * float(np.mean(values))


@dataclass
class RerankResult:
    """The trained scorer and how it got there."""

    scorer: LiteScorer
    best_epoch: int
    history: list[dict[str, Any]]
    seconds: float


def train_reranker(
    codebook: np.ndarray,
    tokens: TokenizedTexts,
    index: dict[str, int],
    triples: Sequence[Triple],
    teacher_scores: np.ndarray,
    dev: Sequence[DevRanking],
    settings: RerankSettings = RerankSettings(),
    device: str | torch.device | None = None,
    progress: bool = True,
    training_codebook: np.ndarray | None = None,
) -> RerankResult:
    """Train on `triples` (text rows via `index` into `tokens`) with teacher cosines [n, 2] (positive, negative).

    `training_codebook` (same vocabulary) gives the pooled cosines of the training triples instead of
    `codebook`: a model that has not been tuned on the triples' pairs, whose cosines on them are not
    inflated; the dev rankings always use `codebook`, as the runtime does.
    """
    settings.check()
    if len(triples) == 0:
        raise ValueError("no training triples")
    if teacher_scores.shape != (len(triples), 2):
        raise ValueError(f"teacher_scores must be [{len(triples)}, 2], got {teacher_scores.shape}")
    started = time.perf_counter()
    torch.manual_seed(settings.seed)
    device = resolve_device(device)
    module = LiteModule(codebook, settings).to(device)
    averaged = copy.deepcopy(module) if settings.ema_decay > 0 else module  # the weights evaluated and kept
    optimizer = torch.optim.Adam([p for p in module.parameters() if p.requires_grad], lr=settings.learning_rate)
    rows = np.asarray([[index[t.query], index[t.positive], index[t.negative]] for t in triples], dtype=np.int64)
    margins = torch.as_tensor(teacher_scores[:, 0] - teacher_scores[:, 1], dtype=torch.float32)
    pooled = unit_rows(mean_pool(codebook, tokens.flat, tokens.lengths))
    if training_codebook is None:
        training_pooled = pooled
    else:
        training_pooled = unit_rows(mean_pool(np.asarray(training_codebook, np.float32), tokens.flat, tokens.lengths))
    generator = torch.Generator().manual_seed(settings.seed)

    def evaluate(epoch: int, loss: float | None) -> dict[str, Any]:
        scorer = averaged.to_scorer()
        table = scorer.token_table(codebook)
        scores = {r.name: dev_score(scorer, table, r, tokens, index, pooled) for r in dev}
        row = {"epoch": epoch, "loss": loss, "dev": float(np.mean(list(scores.values()))) if scores else 0.0, **scores}
        logger.info("epoch %d: loss %s, dev %s", epoch, loss, {k: round(v, 2) for k, v in scores.items()})
        return row

    history = [evaluate(0, None)]
    best_scorer, best_epoch = averaged.to_scorer(), 0
    for epoch in range(1, settings.epochs + 1):
        module.train()
        order = torch.randperm(len(rows), generator=generator).numpy()
        total = 0.0
        batches = range(0, len(order), settings.batch_size)
        for start in tqdm(batches, desc=f"rerank epoch {epoch}", unit="batch", file=sys.stderr, disable=not progress):
            batch = order[start : start + settings.batch_size]
            q, p, n = rows[batch, 0], rows[batch, 1], rows[batch, 2]
            query_ids, window_ids, owner = batch_tensors(tokens, np.r_[q, q], np.r_[p, n], settings, module.pad)
            cosines = np.einsum("ij,ij->i", training_pooled[np.r_[q, q]], training_pooled[np.r_[p, n]])
            cosines = torch.from_numpy(cosines).to(device)
            scores = module(query_ids.to(device), window_ids.to(device), owner.to(device), 2 * len(batch), cosines)
            loss = triple_loss(scores[: len(batch)], scores[len(batch) :], margins[batch].to(device), settings)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if averaged is not module:
                with torch.no_grad():
                    for mean, weight in zip(averaged.parameters(), module.parameters()):
                        mean.lerp_(weight, 1.0 - settings.ema_decay)
            total += finite_loss(loss.item(), epoch) * len(batch)
        module.eval()
        history.append(evaluate(epoch, total / len(order)))
        if not dev or history[-1]["dev"] > history[best_epoch]["dev"]:
            best_scorer, best_epoch = averaged.to_scorer(), epoch
        elif epoch - best_epoch >= settings.patience:
            logger.info("no better dev score for %d epochs: stopping", settings.patience)
            break
    return RerankResult(best_scorer, best_epoch, history, time.perf_counter() - started)


def teacher_pair_scores(vectors: np.ndarray, index: dict[str, int], triples: Sequence[Triple]) -> np.ndarray:
    """The teacher's cosine of (query, positive) and (query, negative) of each triple: [n, 2]."""
    unit = unit_rows(vectors)
    q = unit[[index[t.query] for t in triples]]
    p = unit[[index[t.positive] for t in triples]]
    n = unit[[index[t.negative] for t in triples]]
    return np.stack([np.einsum("ij,ij->i", q, p), np.einsum("ij,ij->i", q, n)], axis=1)


def train_model_reranker(
    base: str | Path | None,
    out_folder: str | Path,
    data: RerankData,
    *,
    teacher_path: str | Path | None = None,
    settings: RerankSettings = RerankSettings(),
    cache_dir: str | Path | None = None,
    device: str | None = None,
    progress: bool = True,
    command: str | None = None,
    pooled_from: str | Path | None = None,
) -> Path:
    """Train a reranker for the model `base` (None: the bundled default) and write `out_folder`: a copy
    of the base folder with `reranker.safetensors` and `reranker: true` in its config.

    `pooled_from`: a model folder with the same vocabulary whose pooled cosines the training triples
    use (see `train_reranker`'s `training_codebook`), such as the distilled model `base` was tuned from.
    """
    settings.check()
    started = time.perf_counter()
    model = lightembed.load(base)
    training_codebook = training_codebook_of(model, settings, pooled_from)
    texts = data.texts()
    index = {text: i for i, text in enumerate(texts)}
    teacher = Teacher(teacher_path, device=device)
    vectors = teacher_embeddings(teacher, texts, cache_dir, progress=progress)
    teacher_scores = teacher_pair_scores(vectors, index, data.triples)
    teacher_dev = {r.name: cosine_dev_score(vectors, r, index) for r in data.dev}
    logger.info("teacher on the dev rankings: %s", {k: round(v, 2) for k, v in teacher_dev.items()})
    tokens = tokenize(capped_tokens(model.parts, settings.doc_length * settings.max_windows), texts)
    codebook = np.asarray(model.parts.embeddings, dtype=np.float32)
    result = train_reranker(
        codebook, tokens, index, data.triples, teacher_scores, data.dev, settings, device, progress, training_codebook
    )
    provenance = {
        "method": "lite",
        "command": command,
        "teacher": teacher.name,
        "settings": asdict(settings),
        "pooled_from": None if pooled_from is None else str(pooled_from),
        "triples": data.counts(),
        "dev_sets": [r.name for r in data.dev],
        "teacher_dev": teacher_dev,
        "best_epoch": result.best_epoch,
        "history": result.history,
        "seconds": round(time.perf_counter() - started, 1),
        "device": str(resolve_device(device)),
        "versions": versions(),
    }
    return write_reranker_folder(model, out_folder, result.scorer, provenance)


def training_codebook_of(
    model: LightEmbed, settings: RerankSettings, pooled_from: str | Path | None
) -> np.ndarray | None:
    """The codebook whose pooled cosines the training triples use (None: the model's own), after checking that a
    reranker can be added to `model` (a lightembed folder) and that `pooled_from` fits it."""
    if model.config.source != "lightembed":
        raise ValueError(f"{model.path}: a reranker can only be added to a lightembed model folder")
    if pooled_from is None:
        return None
    if not settings.pooled:
        raise ValueError(
            "pooled_from (--pooled-from) needs the scorer's pooled cosine input (settings.pooled, --pooled)"
        )
    other = lightembed.load(pooled_from)
    codebook = np.asarray(other.parts.embeddings, dtype=np.float32)
    if len(codebook) != len(model.parts.embeddings):
        raise ValueError(
            f"{other.path}: its codebook has {len(codebook)} rows, the base model's {len(model.parts.embeddings)}; "
            "the pooled cosines must come from a model with the same vocabulary"
        )
    return codebook


def write_reranker_folder(model: LightEmbed, out_folder: str | Path, scorer: LiteScorer, provenance: dict) -> Path:
    """The model's folder with the scorer added, written to `out_folder` through a staging folder that must load.

    The card is the model's own (any earlier reranker section replaced), so it never describes
    files that `out_folder` held before.
    """
    out = Path(out_folder)
    source = model.path
    with staged_model_folder(out) as staging:
        for name in (WEIGHTS_FILE, TOKENIZER_FILE):
            shutil.copyfile(source / name, staging / name)
        save_reranker(staging / RERANKER_FILE, scorer, model.config.dim)
        config = dataclasses.replace(
            model.config, reranker=True, provenance={**model.config.provenance, "reranker": provenance}
        )
        (staging / CONFIG_FILE).write_text(json.dumps(config.to_dict(), indent=2) + "\n", encoding="utf-8")
        card = source / CARD_FILE
        base_card = RERANKER_SECTION.split(card.read_text(encoding="utf-8"))[0].rstrip("\n") if card.is_file() else ""
        (staging / CARD_FILE).write_text(
            (base_card + "\n\n" if base_card else "") + reranker_card(scorer, provenance), encoding="utf-8"
        )
    return out


# Where a card's reranker section starts (one level deeper once a `binary` card wraps the float model's card).
RERANKER_SECTION = re.compile(r"(?:\A|\n)##+ Learned reranker\n")


def reranker_card(scorer: LiteScorer, p: dict[str, Any]) -> str:
    """The model card section describing the reranker."""
    s = p["settings"]
    rows = "\n".join(
        f"| {h['epoch']} | {'start' if h['loss'] is None else format(h['loss'], '.4f')} | "
        + " | ".join(f"{h[name]:.2f}" for name in p["dev_sets"])
        + " |"
        for h in p["history"]
    )
    teacher = " | ".join(f"{p['teacher_dev'][name]:.2f}" for name in p["dev_sets"])
    size = sum(v.nbytes for v in scorer.tensors().values())
    if scorer.sort_rows:
        rows_text = (
            f"each query token's {scorer.doc_length} largest similarities over the first {scorer.max_tokens} "
            "document tokens, sorted"
        )
    else:
        rows_text = f"document windows of {scorer.doc_length} tokens (best of up to {scorer.max_windows})"
    return f"""## Learned reranker

`reranker.safetensors` ({size / 1024:.0f} KiB): a separable LITE scorer (arXiv 2406.17968) over
this model's token vectors{f", projected to {s['projection_dim']} dims" if s["projection_dim"] else ""}.
Query {scorer.query_length} tokens, {rows_text}{"; the pooled cosine is an input" if scorer.pooled else ""}; row MLP {scorer.doc_length}-{s["row_hidden"]}-{s["row_width"]}, column MLP
{scorer.query_length}-{s["column_hidden"]}-{s["column_width"]}, {s["activation"]}.
Trained on {sum(p["triples"].values())} (query, positive, negative) triples
({", ".join(f"{k}: {v}" for k, v in p["triples"].items())}) with Margin-MSE from the cosines of
`{p["teacher"]}` (KL weight {s["kl_weight"]}, label weight {s["label_weight"]}).{_training_notes(p)} Epoch {p["best_epoch"]}
had the best mean dev score and was kept.

| epoch | loss | {" | ".join(p["dev_sets"])} |
|---|---|{"---|" * len(p["dev_sets"])}
{rows}
| teacher | | {teacher} |

- Command: `{p.get("command") or "(called from Python)"}`
- Time taken: {p["seconds"]} s on {p["device"]}.
"""


def _training_notes(p: dict[str, Any]) -> str:
    """The card's sentences on the optional training settings that were used."""
    notes = ""
    if p.get("pooled_from"):
        notes += f" The training triples' pooled cosines came from `{p['pooled_from']}`, not tuned on their pairs."
    if p["settings"].get("ema_decay", 0.0) > 0:
        notes += f" The kept weights are a moving average of the trained ones (decay {p['settings']['ema_decay']})."
    return notes
