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

The start is the float codebook times a fixed matrix [dim, bits] of stacked random rotations
(seeded), so the untrained start is a SimHash-like code of the float vector; pooling is linear,
so the matrix is baked into the rows. The epoch with the best mean dev score over the prefix sizes
is kept.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.stats import spearmanr
from tqdm.auto import tqdm

import lightembed
from lightembed import ModelConfig, write_model
from lightembed.binary import pack_signs, unpack_signs
from lightembed.scoring import unit_rows

from .datasets import ScoredPairs
from .distill import DTYPES, describe_corpus, stored_codebook, versions
from .targets import read_corpus
from .teacher import default_device
from .tune import PairTokens, TokenizedTexts, check_base, pooled, tokenize

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BinarySettings:
    """How the binary codebook is trained."""

    bits: int = 1024
    prefixes: tuple[int, ...] = (64, 128, 256, 512, 1024)  # bit counts whose prefix codes are trained
    epochs: int = 3
    batch_size: int = 512
    learning_rate: float = 1e-3
    temperature: float = 0.05  # of the float model's softmax over in-batch cosines
    code_scale: float = 20.0  # start of the learned scale of the code similarities in the softmax
    contrastive_weight: float = 0.0  # weight of the in-batch InfoNCE on positive pairs (0: off)
    pair_batch_size: int = 512
    seed: int = 0

    def check(self) -> None:
        """Raise ValueError for settings that cannot train."""
        if self.bits < 1:
            raise ValueError(f"bits must be at least 1, got {self.bits}")
        if not self.prefixes or min(self.prefixes) < 1 or max(self.prefixes) > self.bits:
            raise ValueError(f"prefix sizes {self.prefixes} must lie in [1, bits={self.bits}]")
        for name in ("epochs", "batch_size", "pair_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.batch_size < 2:
            raise ValueError("batch_size must be at least 2 (the loss compares texts within a batch)")
        for name in ("learning_rate", "temperature", "code_scale"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.contrastive_weight < 0:
            raise ValueError(f"contrastive_weight must be >= 0, got {self.contrastive_weight}")


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
    for m in prefixes:
        c = codes[:, :m]
        similarity = (c @ c.T) / m
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


@dataclass(frozen=True)
class CodeDevPairs:
    """Scored text pairs, tokenised, for choosing the epoch: Spearman of the Hamming similarity."""

    name: str
    left: TokenizedTexts
    right: TokenizedTexts
    gold: np.ndarray

    def spearman(self, table: np.ndarray | torch.Tensor, bits: int) -> float:
        """Spearman x100 of the Hamming similarities of the pairs' codes from the first `bits` columns."""
        left = pack_signs(pooled(table, self.left)[:, :bits])
        right = pack_signs(pooled(table, self.right)[:, :bits])
        matching = np.einsum("ij,ij->i", unpack_signs(left, bits), unpack_signs(right, bits))
        return 100.0 * float(spearmanr(matching, self.gold).statistic)


def code_dev_scores(
    table: np.ndarray | torch.Tensor, dev: Sequence[CodeDevPairs], prefixes: Sequence[int]
) -> dict[str, float]:
    """Spearman of every dev set at every prefix size, keyed `name@bits`."""
    return {f"{d.name}@{m}": d.spearman(table, m) for d in dev for m in prefixes}


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
    device: str | torch.device | None = None,
    progress: bool = True,
) -> BinaryResult:
    """Learn `table` [vocab, dim] and `projection` [dim, bits] so that the sign bits of
    `pool(table) @ projection` rank the tokenised texts like `targets` (their float vectors).

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
    device = torch.device(device) if device is not None else default_device()
    started = time.perf_counter()
    generator = torch.Generator().manual_seed(settings.seed)
    weight = torch.nn.Parameter(torch.as_tensor(np.asarray(table, dtype=np.float32)).clone().to(device))
    rotation = torch.nn.Parameter(torch.as_tensor(np.asarray(projection, dtype=np.float32)).clone().to(device))
    log_scale = torch.nn.Parameter(torch.tensor(float(np.log(settings.code_scale)), device=device))
    optimizer = torch.optim.Adam([weight, rotation, log_scale], lr=settings.learning_rate)
    target_tensor = torch.as_tensor(unit_rows(targets))
    trainable = np.flatnonzero((tokens.lengths > 0) & (np.abs(targets).sum(axis=1) > 0))
    if len(trainable) < 2:
        raise ValueError("need at least two texts with tokens to train binary codes")
    contrastive = pairs is not None and len(pairs) > 1 and settings.contrastive_weight > 0
    pair_batches = pairs.batches(settings.pair_batch_size, generator) if contrastive else None

    def codes(ids: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        pooled_rows = torch.nn.functional.embedding_bag(ids.to(device), weight, offsets.to(device), mode="mean")
        return sign_ste(pooled_rows @ rotation)

    def baked() -> np.ndarray:
        with torch.no_grad():
            return (weight @ rotation).cpu().numpy()

    def evaluate(epoch: int, loss: float | None) -> dict[str, float | None]:
        scores = code_dev_scores(baked(), dev, settings.prefixes)
        row = {"epoch": epoch, "loss": loss, "dev": float(np.mean(list(scores.values()))) if scores else 0.0, **scores}
        logger.info("epoch %d: loss %s, dev mean Spearman %.2f", epoch, loss, row["dev"])
        return row

    history = [evaluate(0, None)]
    best_table, best_epoch = baked(), 0
    for epoch in range(1, settings.epochs + 1):
        order = trainable[torch.randperm(len(trainable), generator=generator).numpy()]
        steps = range(0, len(order) - 1, settings.batch_size)
        total, counted = 0.0, 0
        for begin in tqdm(steps, desc=f"binary epoch {epoch}", unit="batch", file=sys.stderr, disable=not progress):
            rows = order[begin : begin + settings.batch_size]
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
            total += loss.item() * len(rows)
            counted += len(rows)
        history.append(evaluate(epoch, total / max(counted, 1)))
        if not dev or history[-1]["dev"] > history[best_epoch]["dev"]:
            best_table, best_epoch = baked(), epoch
    return BinaryResult(best_table, best_epoch, history, time.perf_counter() - started)
