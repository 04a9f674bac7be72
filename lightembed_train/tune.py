"""Tune a distilled codebook so that its mean-pooled vectors match the teacher's sentence embeddings.

The teacher's embeddings of a plain-text corpus are centred and rotated by PCA to the student's
width, columns by decreasing variance. The student is the runtime's own pooling (same tokenizer,
same token cap, mean of the codebook rows) and learns every row with a Matryoshka cosine loss:
`1 - cos(student[:m], target[:m])` averaged over the prefix sizes m. The first m PCA columns of
the target hold the most teacher variance, so every prefix of the tuned codebook aims at the best
m-dimensional view of the teacher. Row norms act as learned per-token weights.

The start is the base codebook times the least-squares map from its pooled vectors to the
targets (pooling is linear, so the map can be baked into the rows). The epoch with the best
mean Spearman over the dev pairs (and prefix sizes) is kept.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

import lightembed
from lightembed import LightEmbed, ModelConfig, write_model
from lightembed.parallel import ordered_map
from lightembed.scoring import unit_rows
from lightembed.tokenize import TokenBatcher

from .checks import doublings, finite_loss, require_counts, require_non_negative, require_positive
from .datasets import ScoredPairs
from .distill import DTYPES, describe_corpus, pca, storage_note, stored_codebook, versions
from .evaluation.sts import spearman
from .targets import corpus_sample, teacher_embeddings
from .teacher import Teacher

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TuneSettings:
    """How the codebook is tuned."""

    dims: tuple[int, ...] | None = None  # prefix sizes (None: 32, 64, ... below the width, and the width)
    epochs: int = 4
    batch_size: int = 256
    learning_rate: float = 3e-3
    seed: int = 0
    contrastive_weight: float = 0.0  # weight of the in-batch InfoNCE loss on positive pairs (0: off)
    temperature: float = 0.05
    pair_batch_size: int = 256

    def __post_init__(self) -> None:
        if self.dims is not None:
            object.__setattr__(self, "dims", tuple(sorted(set(self.dims))))  # each prefix size once, in order

    def check(self) -> None:
        """Raise ValueError naming the first setting out of range."""
        if self.dims is not None and not self.dims:
            raise ValueError("dims must name at least one prefix size")
        require_counts(self, ("epochs", "batch_size", "pair_batch_size"))
        require_counts(self, ("seed",), minimum=0)
        require_positive(self, ("learning_rate", "temperature"))
        require_non_negative(self, ("contrastive_weight",))


@dataclass(frozen=True)
class TokenizedTexts:
    """Texts as the runtime tokenises them: all ids one after another and the count per text."""

    flat: np.ndarray
    lengths: np.ndarray
    starts: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        starts = np.zeros(len(self.lengths), dtype=np.int64)
        np.cumsum(self.lengths[:-1], out=starts[1:])
        object.__setattr__(self, "starts", starts)

    def __len__(self) -> int:
        return len(self.lengths)

    def subset(self, rows: np.ndarray) -> TokenizedTexts:
        """The texts at `rows`, in that order."""
        ids, _ = self.batch(rows)
        return TokenizedTexts(ids.numpy(), self.lengths[rows])

    def batch(self, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """(ids, offsets) of `rows` for `torch.nn.functional.embedding_bag`."""
        lengths = self.lengths[rows]
        offsets = np.zeros(len(rows), dtype=np.int64)
        np.cumsum(lengths[:-1], out=offsets[1:])
        positions = np.repeat(self.starts[rows] - offsets, lengths) + np.arange(int(lengths.sum()))
        return torch.from_numpy(self.flat[positions]), torch.from_numpy(offsets)


def tokenize(model: LightEmbed | TokenBatcher, texts: Sequence[str], block: int = 8192) -> TokenizedTexts:
    """The runtime tokenisation of `texts` (the ids its pooling averages), by a model or a token batcher."""
    encode = model.encode if isinstance(model, TokenBatcher) else model.tokens.encode
    if len(texts) == 0:
        return TokenizedTexts(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
    blocks = (list(texts[start : start + block]) for start in range(0, len(texts), block))
    flats, lengths = zip(*ordered_map(encode, blocks), strict=True)
    return TokenizedTexts(np.concatenate(flats), np.concatenate(lengths))


def pooled(table: np.ndarray | torch.Tensor, tokens: TokenizedTexts, block: int = 65536) -> np.ndarray:
    """Mean of the rows of `table` per text (zero for a text with no tokens), float32 [n, dim]."""
    weight = torch.as_tensor(np.asarray(table, dtype=np.float32)) if isinstance(table, np.ndarray) else table
    out = []
    with torch.no_grad():
        for start in range(0, len(tokens), block):
            ids, offsets = tokens.batch(np.arange(start, min(start + block, len(tokens))))
            out.append(torch.nn.functional.embedding_bag(ids, weight, offsets, mode="mean").numpy())
    return np.concatenate(out) if out else np.zeros((0, weight.shape[1]), dtype=np.float32)


def matryoshka_cosine_loss(student: torch.Tensor, target: torch.Tensor, dims: Sequence[int]) -> torch.Tensor:
    """Mean over prefix sizes m of the mean `1 - cos(student[:, :m], target[:, :m])`."""
    losses = [
        1.0 - torch.nn.functional.cosine_similarity(student[:, :m], target[:, :m], dim=1, eps=1e-8).mean() for m in dims
    ]
    return torch.stack(losses).mean()


def matryoshka_info_nce(
    left: torch.Tensor, right: torch.Tensor, dims: Sequence[int], temperature: float
) -> torch.Tensor:
    """Symmetric in-batch InfoNCE of aligned positive pairs, averaged over prefix sizes."""
    labels = torch.arange(len(left))
    losses = []
    for m in dims:
        a = torch.nn.functional.normalize(left[:, :m], dim=1, eps=1e-8)
        b = torch.nn.functional.normalize(right[:, :m], dim=1, eps=1e-8)
        logits = a @ b.T / temperature
        cross_entropy = torch.nn.functional.cross_entropy
        losses.append((cross_entropy(logits, labels) + cross_entropy(logits.T, labels)) / 2)
    return torch.stack(losses).mean()


@dataclass(frozen=True)
class PairTokens:
    """Positive pairs, both sides tokenised as the runtime does."""

    left: TokenizedTexts
    right: TokenizedTexts

    @classmethod
    def from_pairs(cls, model: LightEmbed, pairs: Sequence[tuple[str, str]]) -> PairTokens:
        """Tokenise `(text, positive)` pairs; pairs with an empty side are dropped."""
        left, right = tokenize(model, [a for a, _ in pairs]), tokenize(model, [b for _, b in pairs])
        keep = np.flatnonzero((left.lengths > 0) & (right.lengths > 0))
        return cls(left.subset(keep), right.subset(keep))

    def __len__(self) -> int:
        return len(self.left)

    def batches(self, size: int, generator: torch.Generator) -> Iterator[np.ndarray]:
        """Endless shuffled full batches of pair rows (all pairs when there are fewer than `size`)."""
        size = min(size, len(self))
        while True:
            order = torch.randperm(len(self), generator=generator).numpy()
            for start in range(0, len(order) - size + 1, size):
                yield order[start : start + size]


def pca_targets(teacher_vectors: np.ndarray, dim: int) -> np.ndarray:
    """The teacher's vectors centred and rotated to `dim` PCA columns (by decreasing variance), float32."""
    return pca(teacher_vectors, dim).projected.astype(np.float32)


def linear_start(table: np.ndarray, tokens: TokenizedTexts, targets: np.ndarray) -> np.ndarray:
    """`table @ M` with M the least-squares map from the pooled vectors of `table` to `targets`."""
    features = pooled(table, tokens).astype(np.float64)
    keep = tokens.lengths > 0
    solution, *_ = np.linalg.lstsq(features[keep], targets[keep].astype(np.float64), rcond=None)
    start = np.asarray(table, dtype=np.float64) @ solution
    norms = np.linalg.norm(start, axis=1)
    scale = float(np.median(norms[norms > 0])) if (norms > 0).any() else 1.0
    return (start / scale).astype(np.float32)  # rows of about unit norm: one learning rate fits any teacher


@dataclass(frozen=True)
class DevPairs:
    """Scored text pairs, tokenised, for choosing the epoch (Spearman of cosine at each prefix size)."""

    name: str
    left: TokenizedTexts
    right: TokenizedTexts
    gold: np.ndarray

    @classmethod
    def from_pairs(cls, name: str, model: LightEmbed, pairs: ScoredPairs) -> DevPairs:
        """Tokenise both sides of `pairs` as the runtime does."""
        return cls(name, tokenize(model, pairs.texts1), tokenize(model, pairs.texts2), np.asarray(pairs.scores))

    def spearman(self, table: np.ndarray | torch.Tensor, dim: int) -> float:
        """Spearman x100 of the cosines of the pairs with the first `dim` columns of `table`."""
        left = unit_rows(pooled(table, self.left)[:, :dim])
        right = unit_rows(pooled(table, self.right)[:, :dim])
        return spearman(np.einsum("ij,ij->i", left, right), self.gold)


def epoch_row(epoch: int, loss: float | None, scores: dict[str, float]) -> dict[str, float | None]:
    """One epoch's row of the training history (its dev mean None without dev sets), logged."""
    row = {"epoch": epoch, "loss": loss, "dev": float(np.mean(list(scores.values()))) if scores else None, **scores}
    summary = f"dev mean Spearman {row['dev']:.2f}" if scores else "no dev sets"
    logger.info("epoch %d: loss %s, %s", epoch, loss, summary)
    return row


def epoch_table_rows(history: Sequence[dict[str, Any]]) -> str:
    """A card's rows "| epoch | loss | dev mean |" of a training history ("start" for epoch 0's loss, "n/a" without
    dev sets)."""
    return "\n".join(
        f"| {h['epoch']} | {'start' if h['loss'] is None else format(h['loss'], '.4f')} | "
        f"{'n/a' if h['dev'] is None else format(h['dev'], '.2f')} |"
        for h in history
    )


def corpus_lines(files: Sequence[dict[str, Any]]) -> str:
    """A card's list of corpus files with their line counts and sha256 (as `describe_corpus` gives them)."""
    return "\n".join(f"- `{c['name']}`: {c['lines']} lines, sha256 `{c['sha256'][:16]}…`" for c in files)


def dev_scores(table: np.ndarray | torch.Tensor, dev: Sequence[DevPairs], dims: Sequence[int]) -> dict[str, float]:
    """Spearman of every dev set at every prefix size, keyed `name@dim`."""
    return {f"{d.name}@{m}": d.spearman(table, m) for d in dev for m in dims}


@dataclass
class TuneResult:
    """The tuned codebook and how it got there."""

    table: np.ndarray
    best_epoch: int
    history: list[dict[str, float | None]]  # per epoch: training loss (None for the start), dev scores
    seconds: float


def tune_codebook(
    table: np.ndarray,
    tokens: TokenizedTexts,
    targets: np.ndarray,
    dev: Sequence[DevPairs],
    settings: TuneSettings = TuneSettings(),
    pairs: PairTokens | None = None,
    progress: bool = True,
) -> TuneResult:
    """Learn the rows of `table` (already started) so pooled texts match `targets` at every prefix size.

    With `pairs` and a positive `settings.contrastive_weight`, every step also adds that weight
    times the in-batch InfoNCE loss of a batch of positive pairs.

    Epoch 0 is the start itself; the epoch with the best mean dev Spearman is returned (the last
    one when there are no dev pairs).
    """
    if len(tokens) != len(targets):
        raise ValueError(f"{len(tokens)} tokenised texts but {len(targets)} targets")
    settings = with_dims(settings, table.shape[1])
    trainable = np.flatnonzero(tokens.lengths > 0)
    if not len(trainable):
        raise ValueError("no corpus text has a token the model knows: nothing to tune on")
    started = time.perf_counter()
    generator = torch.Generator().manual_seed(settings.seed)
    weight = torch.nn.Parameter(torch.as_tensor(np.asarray(table, dtype=np.float32)).clone())
    optimizer = torch.optim.Adam([weight], lr=settings.learning_rate)
    target_tensor = torch.as_tensor(targets, dtype=torch.float32)
    contrastive = pairs is not None and len(pairs) > 1 and settings.contrastive_weight > 0
    pair_batches = pairs.batches(settings.pair_batch_size, generator) if contrastive else None

    def evaluate(epoch: int, loss: float | None) -> dict[str, float | None]:
        return epoch_row(epoch, loss, dev_scores(weight.detach(), dev, settings.dims))

    history = [evaluate(0, None)]
    best_table, best_epoch = weight.detach().numpy().copy(), 0
    for epoch in range(1, settings.epochs + 1):
        order = trainable[torch.randperm(len(trainable), generator=generator).numpy()]
        batches = range(0, len(order), settings.batch_size)
        total = 0.0
        for start in tqdm(batches, desc=f"tune epoch {epoch}", unit="batch", file=sys.stderr, disable=not progress):
            rows = order[start : start + settings.batch_size]
            ids, offsets = tokens.batch(rows)
            student = torch.nn.functional.embedding_bag(ids, weight, offsets, mode="mean")
            loss = matryoshka_cosine_loss(student, target_tensor[rows], settings.dims)
            if pair_batches is not None:
                loss = loss + settings.contrastive_weight * _pair_loss(weight, pairs, next(pair_batches), settings)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += finite_loss(loss.item(), epoch) * len(rows)
        history.append(evaluate(epoch, total / len(order)))
        if not dev or history[-1]["dev"] > history[best_epoch]["dev"]:
            best_table, best_epoch = weight.detach().numpy().copy(), epoch
    return TuneResult(best_table, best_epoch, history, time.perf_counter() - started)


def _pair_loss(weight: torch.Tensor, pairs: PairTokens, rows: np.ndarray, settings: TuneSettings) -> torch.Tensor:
    left_ids, left_offsets = pairs.left.batch(rows)
    right_ids, right_offsets = pairs.right.batch(rows)
    left = torch.nn.functional.embedding_bag(left_ids, weight, left_offsets, mode="mean")
    right = torch.nn.functional.embedding_bag(right_ids, weight, right_offsets, mode="mean")
    return matryoshka_info_nce(left, right, settings.dims, settings.temperature)


def with_dims(settings: TuneSettings, width: int) -> TuneSettings:
    """`settings` checked, with the default prefix sizes for `width` when it names none."""
    settings.check()
    if settings.dims is None:
        return dataclasses.replace(settings, dims=doublings(32, width))
    check_dims(settings.dims, width)
    return settings


def check_dims(dims: Sequence[int], width: int) -> None:
    """Matryoshka prefix sizes must lie in [1, width]."""
    if max(dims) > width or min(dims) < 1:
        raise ValueError(f"prefix sizes {tuple(dims)} (dims, --dims) must lie in [1, {width}], the model's width")


def check_base(model: LightEmbed, command: str = "tune") -> None:
    """Training the codebook rows directly (`tune`, `binary`) needs a plain codebook model as the base."""
    parts = model.parts
    if parts.transform or parts.token_rows is not None:
        raise ValueError(f"{parts.path}: {command} needs a plain codebook (no projection, adaptor or shared rows)")


def tune_model(
    base: str | Path | None,
    corpus_files: Sequence[str | Path],
    out_folder: str | Path,
    *,
    teacher_path: str | Path | None = None,
    dev: Sequence[tuple[str, ScoredPairs]] = (),
    pairs: Sequence[tuple[str, str]] = (),
    settings: TuneSettings = TuneSettings(),
    max_texts: int | None = None,
    cache_dir: str | Path | None = None,
    dtype: str = "float16",
    device: str | None = None,
    progress: bool = True,
    command: str | None = None,
) -> Path:
    """Tune the codebook of `base` (None: the bundled default) on `corpus_files` against the teacher.

    `max_texts` keeps a seeded random sample of the corpus (the teacher is the slow part);
    `dev` names the scored pairs that choose the epoch; `pairs` are positive pairs for the
    contrastive term (used when `settings.contrastive_weight` > 0). Writes a model folder.
    """
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    settings.check()
    started = time.perf_counter()
    model = lightembed.load(base)
    check_base(model)
    settings = with_dims(settings, model.config.dim)  # checked before the teacher's pass, the slow part
    texts = corpus_sample(corpus_files, max_texts, settings.seed)
    if len(texts) <= model.config.dim:  # fewer would leave principal components, and so columns, empty
        raise ValueError(
            f"tune needs more distinct corpus texts than the model's {model.config.dim} dims, got {len(texts)}: "
            "give more text (or a larger --max-texts)"
        )
    teacher = Teacher(teacher_path, device=device)
    teacher_started = time.perf_counter()
    vectors = teacher_embeddings(teacher, texts, cache_dir, progress=progress)
    teacher_seconds = time.perf_counter() - teacher_started
    targets = pca_targets(vectors, model.config.dim)
    tokens = tokenize(model, texts)
    dev_sets = [DevPairs.from_pairs(name, model, pairs) for name, pairs in dev]
    start = linear_start(model.parts.embeddings, tokens, targets)
    pair_tokens = PairTokens.from_pairs(model, pairs) if pairs and settings.contrastive_weight > 0 else None
    result = tune_codebook(start, tokens, targets, dev_sets, settings, pair_tokens, progress=progress)
    table, extra = stored_codebook(result.table, dtype)
    base_scores = dev_scores(np.asarray(model.parts.embeddings, dtype=np.float32), dev_sets, settings.dims)
    base_dev = float(np.mean(list(base_scores.values()))) if base_scores else None
    best_dev = result.history[result.best_epoch]["dev"]
    if base_dev is not None and best_dev < base_dev:
        logger.warning(
            "the tuned codebook's best dev mean Spearman %.2f is below the base model's %.2f: the base may serve better",
            best_dev,
            base_dev,
        )

    provenance: dict[str, Any] = {
        "method": "tune",
        "base": str(model.path),
        "base_provenance": model.config.provenance,
        "teacher": teacher.name,
        "teacher_license": teacher.license,
        "command": command,
        "corpus_files": [describe_corpus(Path(p)) for p in corpus_files],
        "corpus_texts_used": len(texts),
        "contrastive_pairs": len(pair_tokens) if pair_tokens is not None else 0,
        "settings": asdict(settings),
        "dev_sets": [name for name, _ in dev],
        "history": result.history,
        "best_epoch": result.best_epoch,
        "base_dev": base_dev,
        "dtype": dtype,
        "seconds": round(time.perf_counter() - started, 1),
        "teacher_seconds": round(teacher_seconds, 1),
        "device": str(teacher.device),
        "versions": versions(),
    }
    if model.config.reranker or model.config.binary_codebook:
        logger.info("the base model's reranker and binary codebook fit the old codebook: the tuned model has neither")
    config = dataclasses.replace(
        model.config,
        matryoshka_dims=settings.dims,
        reranker=False,
        binary_codebook=False,
        token_weights=False,
        provenance=provenance,
        metrics={},
    )
    folder = write_model(out_folder, config, table, model.parts.tokenizer, extra, card=tune_card(config))
    logger.info("wrote %s (best epoch %d of %d)", folder, result.best_epoch, settings.epochs)
    return folder


def _contrastive_note(p: dict[str, Any]) -> str:
    if not p["contrastive_pairs"]:
        return ""
    s = p["settings"]
    return (
        f"\n   Each step also added {s['contrastive_weight']} times a symmetric in-batch InfoNCE loss"
        f" (temperature {s['temperature']}, batches of {s['pair_batch_size']} pairs, same prefix sizes)"
        f" on {p['contrastive_pairs']} positive text pairs from train-allowed files."
    )


def tune_card(config: ModelConfig) -> str:
    """The README.md of a tuned model folder, from its config and provenance."""
    p = config.provenance
    s = p["settings"]
    rows = epoch_table_rows(p["history"])
    if p.get("base_dev") is not None:
        rows = f"| base | | {p['base_dev']:.2f} |\n" + rows
    corpus = corpus_lines(p["corpus_files"])
    return f"""# lightembed static embedding model (tuned)

A static token codebook for lightembed: {config.vocab_size} tokens x {config.dim} dims, mean
pooled and L2-normalised at inference (numpy only). Matryoshka sizes:
{", ".join(map(str, config.matryoshka_dims)) or "none"} (column slices).

## How it was made

1. The base codebook `{p["base"]}` (made by: `{p["base_provenance"].get("command")}`).
2. The teacher `{p["teacher"]}` (licence: {p["teacher_license"] or "see its card"}) embedded
   {p["corpus_texts_used"]} texts of the corpus; its vectors were centred and rotated by PCA to
   {config.dim} columns.
3. The rows were started at the base codebook times the least-squares map from its pooled
   vectors to those targets, then trained with Adam (learning rate {s["learning_rate"]}, batches of
   {s["batch_size"]} texts, seed {s["seed"]}) on a Matryoshka cosine loss over the prefix sizes
   {s["dims"]}: the runtime's mean-pooled vector of each text against the teacher's.{_contrastive_note(p)}
4. The epoch with the best mean dev Spearman ({", ".join(p["dev_sets"]) or "no dev sets: the last"})
   was kept: epoch {p["best_epoch"]}. Stored as {storage_note(p["dtype"])}.

| epoch | loss | dev mean Spearman |
|---|---|---|
{rows}

- Command: `{p.get("command") or "(called from Python)"}`
- Time taken: {p["seconds"]} s on {p["device"]}, of which {p["teacher_seconds"]} s for the teacher's
  embeddings of the corpus (seconds when they come from the cache of an earlier run).

## Corpus

{corpus}
"""
