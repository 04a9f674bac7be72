"""Train a binary codebook whose packed sign bits rank texts like the float model's vectors.

The runtime's binary codes are the sign bits of the mean-pooled rows of a codebook. Plain sign
bits of the float codebook waste bits: every column gets one bit whatever its variance, and a
model `bits` wide cannot give more than `bits` bits. Here a separate codebook `binary_embeddings`
[vocab, bits] (any number of bits, also more than the float width) is trained with a
straight-through estimator: the forward pass takes the hard signs of the pooled vector, the
backward pass lets the gradient through the sign as if it were the identity.

The loss is listwise distillation from the float model: within a batch of texts, the softmax over
the Hamming similarities of each text's code to the others must match the softmax over the float
cosines (KL divergence), at every prefix size of the bits (Matryoshka, so that `dim=` slices of
the codes keep their meaning: bits are ordered by importance). An optional in-batch InfoNCE term
on positive text pairs (train-allowed labelled pairs) uses the code similarities as well.

The start is the float codebook times a fixed matrix [dim, bits]: by default the identity for the
first `dim` bits (the untrained code is the runtime's plain sign of the float vector, whose columns
are ordered by importance) followed by stacked random rotations (seeded: SimHash-like extra bits);
pooling is linear, so the matrix is baked into the rows. Batches may hold each sampled text with
its nearest corpus neighbours, so the loss also sees the fine order of close texts. The epoch with
the best mean dev score over the prefix sizes is kept (epoch 0 is the start itself).
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

import lightembed
from lightembed import ModelConfig, write_model
from lightembed.folder import CARD_FILE
from lightembed.scoring import unit_rows

from .checks import finite_loss, require_counts, require_non_negative, require_positive, require_unit_interval
from .codebook import base_tensors
from .datasets import ScoredPairs
from .device import resolve_device
from .distill import DTYPES, describe_corpus, storage_note, stored_codebook, versions
from .evaluation.sts import spearman
from .targets import corpus_sample, teacher_embeddings
from .teacher import Teacher
from .tune import (
    DevPairs,
    PairTokens,
    TokenizedTexts,
    check_base,
    corpus_lines,
    dev_scores,
    epoch_row,
    epoch_table_rows,
    pooled,
    tokenize,
)

logger = logging.getLogger(__name__)

TARGETS = ("float", "teacher")
STARTS = ("sign", "itq", "rotation")
ITQ_ITERATIONS = 50
MAX_BITS = 8192  # a [vocab, bits] codebook and its optimiser state: about 4 GB at 30k tokens


@dataclass(frozen=True)
class BinarySettings:
    """How the binary codebook is trained."""

    bits: int = 1024
    prefixes: tuple[int, ...] = (64, 128, 256, 512, 1024)  # bit counts whose prefix codes are trained
    epochs: int = 3
    batch_size: int = 512
    learning_rate: float = 1e-3  # of the codebook copy
    projection_learning_rate: float | None = None  # of the projection (None: learning_rate)
    train_codebook: bool = True  # False: only the projection [dim, bits] learns, the codebook copy stays
    temperature: float = 0.05  # of the float model's softmax over in-batch cosines
    code_scale: float = 20.0  # start of the learned scale of the code similarities in the softmax
    contrastive_weight: float = 0.0  # weight of the in-batch InfoNCE on positive pairs (0: off)
    pair_batch_size: int = 512
    neighbour_share: float = 0.5  # share of each batch made of neighbour groups (when given)
    neighbours: int = 0  # k >= 2: groups of each text's k nearest corpus texts (by target cosine); 0: labelled pairs
    start: str = "sign"  # "sign": the float columns first; "itq": those rotated per prefix block (ITQ); then rotations
    centre: bool = False  # subtract the median pooled corpus vector from every row first (balanced bits)
    seed: int = 0

    def check(self) -> None:
        """Raise ValueError for settings that cannot train."""
        if not 1 <= self.bits <= MAX_BITS:
            raise ValueError(f"bits must be between 1 and {MAX_BITS}, got {self.bits}")
        if not self.prefixes or min(self.prefixes) < 1 or max(self.prefixes) > self.bits:
            raise ValueError(f"prefix sizes {self.prefixes} must lie in [1, bits={self.bits}]")
        require_counts(self, ("epochs", "pair_batch_size"))
        require_counts(self, ("batch_size",), minimum=2)  # the loss compares texts within a batch
        require_counts(self, ("seed",), minimum=0)
        require_positive(self, ("learning_rate", "temperature", "code_scale"))
        if self.projection_learning_rate is not None:
            require_positive(self, ("projection_learning_rate",))
        require_unit_interval(self, ("neighbour_share",))
        require_non_negative(self, ("contrastive_weight",))
        if self.neighbours < 0 or self.neighbours == 1:
            raise ValueError(f"neighbours must be 0 (off) or at least 2, got {self.neighbours}")
        if self.start not in STARTS:
            raise ValueError(f"start must be one of {STARTS}, got {self.start!r}")


def sign_ste(z: torch.Tensor) -> torch.Tensor:
    """±1 (`z > 0` gives +1, as the runtime packs bits) in the forward pass, the identity in the backward pass."""
    hard = torch.where(z > 0, 1.0, -1.0).to(z.dtype)
    return z + (hard - z).detach()


def rotation_start(dim: int, bits: int, seed: int = 0) -> np.ndarray:
    """A [dim, bits] matrix of stacked random rotations (orthonormal blocks of `dim` columns), seeded."""
    rng = np.random.default_rng(seed)
    blocks = []
    for _ in range(-(-bits // dim)):
        q, r = np.linalg.qr(rng.standard_normal((dim, dim)))
        blocks.append(q * np.sign(np.diag(r)))
    return np.concatenate(blocks, axis=1)[:, :bits].astype(np.float32)


def itq_rotation(vectors: np.ndarray, iterations: int = ITQ_ITERATIONS, seed: int = 0, restarts: int = 1) -> np.ndarray:
    """Iterative quantisation (Gong and Lazebnik): the rotation R [d, d] of the PCA-ordered `vectors` [n, d] whose
    sign bits lose the least, by alternating B = sign(V R) and the Procrustes fit of R to B. ITQ assumes centred
    vectors; they are used as given (`train_binary_model` centres them only with `centre=True`).

    ITQ finds a local minimum of ||B - V R||^2; with `restarts` > 1 the best of that many seeded starts is kept.
    """
    data = np.asarray(vectors, dtype=np.float64)
    best, best_loss = None, np.inf
    for restart in range(restarts):
        rotation = rotation_start(data.shape[1], data.shape[1], seed + restart).astype(np.float64)
        for _ in range(iterations):
            signs = np.where(data @ rotation > 0, 1.0, -1.0)
            left, _, right = np.linalg.svd(data.T @ signs)
            rotation = left @ right
        rotated = data @ rotation
        loss = float(np.square(np.where(rotated > 0, 1.0, -1.0) - rotated).sum())
        if loss < best_loss:
            best, best_loss = rotation, loss
    return best.astype(np.float32)


def code_start(
    dim: int,
    bits: int,
    start: str = "sign",
    seed: int = 0,
    vectors: np.ndarray | None = None,
    blocks: Sequence[int] = (),
) -> np.ndarray:
    """The start projection [dim, bits].

    "sign" keeps the float columns as the first bits (the untrained code of the first `dim` bits is
    the plain sign of the float vector, whose columns are ordered by importance); "itq" rotates
    those columns within each block between consecutive sizes of `blocks` (for example 0-64,
    64-128, 128-256) by the ITQ rotation of `vectors` (pooled float vectors [n, dim]), so every
    prefix size keeps its own columns but spends its bits better; both add stacked random
    rotations after the first `dim` bits. "rotation" is `rotation_start`.
    """
    if start not in STARTS:
        raise ValueError(f"start must be one of {STARTS}, got {start!r}")
    if start == "rotation":
        return rotation_start(dim, bits, seed)
    plain = np.eye(dim, dtype=np.float32)
    if start == "itq":
        if vectors is None or vectors.ndim != 2 or vectors.shape[1] != dim or len(vectors) < 2:
            raise ValueError(f"the itq start needs pooled float vectors [n >= 2, {dim}]")
        edges = sorted({0, dim, *(b for b in blocks if 0 < b < dim)})
        for first, last in itertools.pairwise(edges):
            plain[first:last, first:last] = itq_rotation(vectors[:, first:last], seed=seed)
    if bits <= dim:
        return np.ascontiguousarray(plain[:, :bits])
    return np.concatenate([plain, rotation_start(dim, bits - dim, seed)], axis=1)


def centred(table: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """`table` minus the per-column median of the pooled `vectors` of texts with tokens.

    Mean pooling is linear, so every text with tokens pools to its float vector minus that median:
    each sign bit then splits the corpus in half instead of following the column's offset.
    """
    if len(vectors) == 0:
        raise ValueError("centring needs pooled vectors of at least one text with tokens")
    return (table - np.median(vectors, axis=0)).astype(np.float32)


def nearest_groups(vectors: np.ndarray, k: int, block: int = 2048) -> np.ndarray:
    """Rows [n, k]: each row's own index, then its k - 1 nearest other rows by cosine (blocks of `block` rows)."""
    if k < 2 or k > len(vectors):
        raise ValueError(f"k must lie in [2, {len(vectors)}] (the number of vectors), got {k}")
    unit = unit_rows(np.asarray(vectors, dtype=np.float32))
    groups = np.zeros((len(unit), k), dtype=np.int64)
    for begin in range(0, len(unit), block):
        scores = unit[begin : begin + block] @ unit.T
        rows = np.arange(len(scores))
        scores[rows, begin + rows] = -np.inf
        nearest = np.argpartition(-scores, k - 2, axis=1)[:, : k - 1]
        groups[begin : begin + len(scores), 0] = begin + rows
        groups[begin : begin + len(scores), 1:] = nearest
    return groups


def listwise_distillation(
    codes: torch.Tensor, targets: torch.Tensor, prefixes: Sequence[int], temperature: float, scale: torch.Tensor
) -> torch.Tensor:
    """Mean over prefix sizes m of KL(softmax(cos / T) || softmax(scale * hamming_similarity_m)), in-batch.

    `codes` are ±1 rows (from `sign_ste`), `targets` unit float rows; each text's own pair is left out.
    """
    n = len(codes)
    diagonal = torch.eye(n, dtype=torch.bool, device=codes.device)
    teacher = torch.log_softmax((targets @ targets.T / temperature).masked_fill(diagonal, -torch.inf), dim=1)
    teacher_prob = teacher.exp()
    losses = []
    matching = torch.zeros(n, n, dtype=codes.dtype, device=codes.device)
    done = 0
    for m in sorted(prefixes):  # matching bits of the first m bits, one slice of new bits at a time
        matching = matching + codes[:, done:m] @ codes[:, done:m].T
        done = m
        similarity = matching / m
        student = torch.log_softmax((scale * similarity).masked_fill(diagonal, -torch.inf), dim=1)
        terms = teacher_prob * (teacher - student)
        losses.append(terms.masked_fill(diagonal, 0.0).sum(dim=1).mean())
    return torch.stack(losses).mean()


def code_info_nce(
    left: torch.Tensor, right: torch.Tensor, prefixes: Sequence[int], scale: torch.Tensor
) -> torch.Tensor:
    """Symmetric in-batch InfoNCE of aligned positive pairs of ±1 codes, averaged over prefix sizes."""
    labels = torch.arange(len(left), device=left.device)
    cross_entropy = torch.nn.functional.cross_entropy
    losses = []
    for m in prefixes:
        logits = scale * (left[:, :m] @ right[:, :m].T) / m
        losses.append((cross_entropy(logits, labels) + cross_entropy(logits.T, labels)) / 2)
    return torch.stack(losses).mean()


class CodeDevPairs(DevPairs):
    """Scored text pairs, tokenised, for choosing the epoch: Spearman of the Hamming similarity of their codes."""

    def spearman(self, table: np.ndarray | torch.Tensor, dim: int) -> float:
        """Spearman x100 of the Hamming similarities of the pairs' codes from the first `dim` columns."""
        left = np.where(pooled(table, self.left)[:, :dim] > 0, 1.0, -1.0)
        right = np.where(pooled(table, self.right)[:, :dim] > 0, 1.0, -1.0)
        return spearman(np.einsum("ij,ij->i", left, right), self.gold)


def _neighbour_rows(neighbours: np.ndarray | None, trainable: np.ndarray, count: int) -> np.ndarray:
    """The neighbour groups [p, k] of rows below `count` whose texts are all trainable."""
    if neighbours is None or len(neighbours) == 0:
        return np.zeros((0, 2), dtype=np.int64)
    neighbours = np.asarray(neighbours, dtype=np.int64)
    if neighbours.ndim != 2 or neighbours.shape[1] < 2:
        raise ValueError(f"neighbours must have shape [p, k] with k >= 2, got {neighbours.shape}")
    if neighbours.min() < 0 or neighbours.max() >= count:
        raise ValueError(f"neighbours must be rows of the {count} texts")
    return neighbours[np.isin(neighbours, trainable).all(axis=1)]


@dataclass
class BinaryResult:
    """The trained binary codebook and how it got there."""

    table: np.ndarray
    best_epoch: int
    history: list[dict[str, float | None]]
    seconds: float


def train_binary_codebook(
    table: np.ndarray,
    projection: np.ndarray,
    tokens: TokenizedTexts,
    targets: np.ndarray,
    dev: Sequence[CodeDevPairs] = (),
    settings: BinarySettings = BinarySettings(),
    pairs: PairTokens | None = None,
    neighbours: np.ndarray | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> BinaryResult:
    """Learn `table` [vocab, dim] and `projection` [dim, bits] so that the sign bits of
    `pool(table) @ projection` rank the tokenised texts like `targets` (their float vectors).

    `neighbours` [p, k] are groups of rows of related texts (both sides of labelled pairs, or a
    text and its nearest neighbours): `settings.neighbour_share` of every batch is made of such
    groups, so that each batch also holds close neighbours whose fine order the loss can teach.
    The result's table is the product, baked: [vocab, bits]. Epoch 0 is the start itself; the
    epoch with the best mean dev Spearman is returned (the last one without dev pairs).
    """
    settings.check()
    if projection.shape != (table.shape[1], settings.bits):
        raise ValueError(
            f"projection has shape {projection.shape}, expected ({table.shape[1]}, {settings.bits}) for {settings.bits} bits"
        )
    if len(tokens) != len(targets):
        raise ValueError(f"{len(tokens)} tokenised texts but {len(targets)} targets")
    device = resolve_device(device)
    started = time.perf_counter()
    generator = torch.Generator().manual_seed(settings.seed)
    weight = torch.nn.Parameter(
        torch.as_tensor(np.asarray(table, dtype=np.float32)).clone().to(device), requires_grad=settings.train_codebook
    )
    rotation = torch.nn.Parameter(torch.as_tensor(np.asarray(projection, dtype=np.float32)).clone().to(device))
    log_scale = torch.nn.Parameter(torch.tensor(float(np.log(settings.code_scale)), device=device))
    projection_lr = settings.projection_learning_rate or settings.learning_rate
    optimizer = torch.optim.Adam(
        [
            {"params": [weight, log_scale] if settings.train_codebook else [log_scale]},
            {"params": [rotation], "lr": projection_lr},
        ],
        lr=settings.learning_rate,
    )
    target_tensor = torch.as_tensor(unit_rows(targets))
    trainable = np.flatnonzero((tokens.lengths > 0) & (np.abs(targets).sum(axis=1) > 0))
    if len(trainable) < 2:
        raise ValueError("need at least two texts with tokens to train binary codes")
    neighbour_rows = _neighbour_rows(neighbours, trainable, len(tokens))
    group = neighbour_rows.shape[1]
    per_batch = int(settings.batch_size * settings.neighbour_share) // group if len(neighbour_rows) else 0
    contrastive = pairs is not None and len(pairs) > 1 and settings.contrastive_weight > 0
    pair_batches = pairs.batches(settings.pair_batch_size, generator) if contrastive else None

    def codes(ids: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        pooled_rows = torch.nn.functional.embedding_bag(ids.to(device), weight, offsets.to(device), mode="mean")
        return sign_ste(pooled_rows @ rotation)

    def baked() -> np.ndarray:
        with torch.no_grad():
            return (weight @ rotation).cpu().numpy()

    def evaluate(epoch: int, loss: float | None) -> dict[str, float | None]:
        return epoch_row(epoch, loss, dev_scores(baked(), dev, settings.prefixes))

    history = [evaluate(0, None)]
    best_table, best_epoch = baked(), 0
    for epoch in range(1, settings.epochs + 1):
        order = trainable[torch.randperm(len(trainable), generator=generator).numpy()]
        steps = range(0, len(order) - 1, settings.batch_size - group * per_batch)
        total, counted = 0.0, 0
        for begin in tqdm(steps, desc=f"binary epoch {epoch}", unit="batch", file=sys.stderr, disable=not progress):
            rows = order[begin : begin + settings.batch_size - group * per_batch]
            if per_batch:
                picked = torch.randint(len(neighbour_rows), (per_batch,), generator=generator).numpy()
                rows = np.unique(np.concatenate([rows, neighbour_rows[picked].ravel()]))
            if len(rows) < 2:
                continue
            scale = log_scale.exp()
            loss = listwise_distillation(
                codes(*tokens.batch(rows)),
                target_tensor[rows].to(device),
                settings.prefixes,
                settings.temperature,
                scale,
            )
            if pair_batches is not None:
                pair_rows = next(pair_batches)
                left = codes(*pairs.left.batch(pair_rows))
                right = codes(*pairs.right.batch(pair_rows))
                loss = loss + settings.contrastive_weight * code_info_nce(left, right, settings.prefixes, scale)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += finite_loss(loss.item(), epoch) * len(rows)
            counted += len(rows)
        history.append(evaluate(epoch, total / max(counted, 1)))
        if not dev or history[-1]["dev"] > history[best_epoch]["dev"]:
            best_table, best_epoch = baked(), epoch
    return BinaryResult(best_table, best_epoch, history, time.perf_counter() - started)


def neighbour_texts(texts: list[str], pairs: Sequence[tuple[str, str]]) -> tuple[list[str], np.ndarray]:
    """The pair texts missing from `texts` (whitespace collapsed, as corpus lines are), and every
    pair as two rows of `texts + missing`: (missing, [p, 2] int64)."""
    position = {text: i for i, text in enumerate(texts)}
    extra: list[str] = []
    rows = []
    for pair in pairs:
        row = []
        for text in pair:
            text = " ".join(text.split())
            if text not in position:
                position[text] = len(texts) + len(extra)
                extra.append(text)
            row.append(position[text])
        rows.append(row)
    return extra, np.asarray(rows, dtype=np.int64).reshape(-1, 2)


def binary_stored(table: np.ndarray, dtype: str) -> dict[str, np.ndarray]:
    """The tensors that store a binary codebook: `binary_embeddings` (and its int8 scale per row)."""
    stored, extra = stored_codebook(table, dtype)
    tensors = {"binary_embeddings": stored}
    if "embeddings_scale" in extra:
        tensors["binary_embeddings_scale"] = extra["embeddings_scale"]
    return tensors


def train_binary_model(
    base: str | Path | None,
    corpus_files: Sequence[str | Path],
    out_folder: str | Path,
    *,
    dev: Sequence[tuple[str, ScoredPairs]] = (),
    pairs: Sequence[tuple[str, str]] = (),
    settings: BinarySettings = BinarySettings(),
    target: str = "float",
    teacher_path: str | Path | None = None,
    cache_dir: str | Path | None = None,
    max_texts: int | None = None,
    dtype: str = "int8",
    device: str | None = None,
    progress: bool = True,
    command: str | None = None,
) -> Path:
    """Train a binary codebook for the float model `base` (None: the bundled default) on `corpus_files`.

    Writes a model folder holding the base model unchanged (its float codebook as stored) plus
    `binary_embeddings` [vocab, bits]: `lightembed.load(folder, binary=True)` gives the trained
    codes, `dim=` a prefix of the bits. `target` says whose cosines the codes learn to rank by:
    "float" (the base model's own vectors) or "teacher" (the teacher's sentence embeddings,
    cached in `cache_dir`). `dev` names the scored pairs that choose the epoch; `pairs` are
    positive pairs for the contrastive term (used when `settings.contrastive_weight` > 0).
    """
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
    settings.check()
    started = time.perf_counter()
    model = lightembed.load(base)
    check_base(model, "binary")
    texts = corpus_sample(corpus_files, max_texts, settings.seed)
    labelled = pairs if settings.neighbour_share > 0 and not settings.neighbours else ()
    extra, neighbours = neighbour_texts(texts, labelled)
    table = np.asarray(model.parts.embeddings, dtype=np.float32)
    tokens = tokenize(model, texts + extra)
    teacher = None
    float_vectors = pooled(table, tokens)
    code_table = centred(table, float_vectors[tokens.lengths > 0]) if settings.centre else table
    if target == "teacher":
        teacher = Teacher(teacher_path, device=device)
        parts = [teacher_embeddings(teacher, part, cache_dir, progress=progress) for part in (texts, extra) if part]
        targets = np.concatenate(parts)
    else:
        targets = float_vectors
    if settings.neighbours and settings.neighbour_share > 0:
        neighbours = nearest_groups(targets, settings.neighbours)
    dev_sets = [CodeDevPairs.from_pairs(name, model, scored) for name, scored in dev]
    pair_tokens = PairTokens.from_pairs(model, pairs) if pairs and settings.contrastive_weight > 0 else None
    itq_vectors = pooled(code_table, tokens) if settings.start == "itq" else None  # only ITQ reads them
    start = code_start(model.config.dim, settings.bits, settings.start, settings.seed, itq_vectors, settings.prefixes)
    result = train_binary_codebook(
        code_table,
        start,
        tokens,
        targets,
        dev_sets,
        settings,
        pair_tokens,
        neighbours,
        device=device,
        progress=progress,
    )

    stored = base_tensors(model)
    provenance: dict[str, Any] = {
        "method": "binary",
        "base": str(model.path),
        "base_provenance": model.config.provenance,
        "command": command,
        "corpus_files": [describe_corpus(Path(p)) for p in corpus_files],
        "corpus_texts_used": len(texts),
        "pair_texts_added": len(extra),
        "neighbour_groups": len(neighbours),
        "target": target,
        "teacher": teacher.name if teacher is not None else None,
        "contrastive_pairs": len(pair_tokens) if pair_tokens is not None else 0,
        "settings": asdict(settings),
        "dev_sets": [name for name, _ in dev],
        "history": result.history,
        "best_epoch": result.best_epoch,
        "binary_dtype": dtype,
        "seconds": round(time.perf_counter() - started, 1),
        "device": str(resolve_device(device)),
        "versions": versions(),
    }
    config = dataclasses.replace(model.config, binary_codebook=True, provenance=provenance, metrics={})
    base_card = model.path / CARD_FILE
    card = binary_card(config, base_card.read_text(encoding="utf-8") if base_card.is_file() else None)
    extra = {k: v for k, v in stored.items() if k not in ("embeddings", "binary_embeddings")}
    extra.pop("binary_embeddings_scale", None)
    extra.update(binary_stored(result.table, dtype))
    folder = write_model(
        out_folder,
        config,
        stored["embeddings"],
        model.parts.tokenizer,
        extra,
        card=card,
        reranker=model.parts.reranker_path,  # the float codebook it reads is unchanged
    )
    logger.info("wrote %s (best epoch %d of %d)", folder, result.best_epoch, settings.epochs)
    return folder


def _target_note(p: dict[str, Any]) -> str:
    if p["target"] == "teacher":
        return f"The teacher `{p['teacher']}` embedded {p['corpus_texts_used']} corpus texts; those vectors are the targets."
    return f"The float model pooled {p['corpus_texts_used']} corpus texts; those vectors are the targets."


def _start_note(s: dict[str, Any], dim: int) -> str:
    rotations = f"stacked random rotations (seed {s['seed']})"
    if s.get("start", "rotation") == "rotation":
        return f"{rotations}, a SimHash-like code of the float vector"
    if s["start"] == "itq":
        return (
            f"the ITQ rotation of the pooled corpus vectors within each block of columns between the prefix sizes "
            f"(the first {dim} bits), followed by {rotations}"
        )
    vector = "centred float vector" if s.get("centre") else "float vector"
    if s["bits"] <= dim:
        return f"the identity: the untrained code is the plain sign of the {vector}"
    return f"the identity (the first {dim} bits: the plain sign of the {vector}) followed by {rotations}"


def _centre_note(s: dict[str, Any]) -> str:
    if not s.get("centre"):
        return ""
    return " minus the median pooled corpus vector (pooling is linear: each bit then splits the corpus in half)"


def _projection_lr_note(s: dict[str, Any]) -> str:
    lr = s.get("projection_learning_rate")
    return f", {lr} for the projection" if lr else ""


def _neighbour_note(s: dict[str, Any]) -> str:
    if not s.get("neighbours"):
        return ""
    return f"; {100 * s['neighbour_share']:.0f}% of each batch: texts with their {s['neighbours'] - 1} nearest corpus texts"


FLOAT_CARD = "\n## The float model's card\n\n"  # where a binary card holds its float model's card


def binary_card(config: ModelConfig, base_card: str | None) -> str:
    """The README.md of a model folder with a trained binary codebook, from its config and provenance."""
    p = config.provenance
    s = p["settings"]
    rows = epoch_table_rows(p["history"])
    corpus = corpus_lines(p["corpus_files"])
    pairs = (
        f" Each step also added {s['contrastive_weight']} times an in-batch InfoNCE loss on the codes of"
        f" {p['contrastive_pairs']} positive text pairs from train-allowed files (batches of {s['pair_batch_size']})."
        if p["contrastive_pairs"]
        else ""
    )
    text = f"""# lightembed model with trained binary codes

The float model of `{p["base"]}` (unchanged: `lightembed.load(folder)`), plus a binary codebook
`binary_embeddings` [{config.vocab_size}, {s["bits"]}] used by `lightembed.load(folder, binary=True)`:
the codes are the sign bits of its mean-pooled rows, packed MSB first, compared by Hamming
similarity. Bits are ordered by importance: `dim=m` keeps the first m bits (trained at
{", ".join(map(str, s["prefixes"]))} bits).

## How it was made

1. {_target_note(p)}
2. The codebook started as the float codebook{_centre_note(s)} times {_start_note(s, config.dim)}. Then
   {"the float codebook copy and " if s.get("train_codebook", True) else ""}the projection were trained
   with Adam (learning rate {s["learning_rate"]}{_projection_lr_note(s)}, batches of {s["batch_size"]} texts{_neighbour_note(s)})
   through a straight-through sign: for every prefix size, the softmax over the in-batch Hamming
   similarities of each text must match the softmax over the float cosines
   (temperature {s["temperature"]}; KL divergence).{pairs} The product is the stored binary codebook.
3. The epoch with the best mean dev Spearman of the Hamming similarities
   ({", ".join(p["dev_sets"]) or "no dev sets: the last"}, every prefix size) was kept: epoch
   {p["best_epoch"]}. Stored as {storage_note(p["binary_dtype"]).replace("embeddings_scale", "binary_embeddings_scale")}.

| epoch | loss | dev mean Spearman |
|---|---|---|
{rows}

- Command: `{p.get("command") or "(called from Python)"}`
- Time taken: {p["seconds"]} s on {p["device"]}.

## Corpus

{corpus}
"""
    if base_card:  # a base with trained codes already holds the float model's card: that one, not its own
        float_card = base_card.split(FLOAT_CARD, 1)[1] if FLOAT_CARD in base_card else _demoted(base_card)
        text += FLOAT_CARD + float_card
    return text


def _demoted(card: str) -> str:
    """A card's headings one level deeper, its title as a plain line."""
    return card.replace("\n#", "\n##").removeprefix("# ")
