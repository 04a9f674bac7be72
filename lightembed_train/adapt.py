"""Matryoshka adaptor (arXiv 2407.20243): a residual MLP after the embedding so that short prefixes work.

The adaptor maps an embedding `e` to `R e + f(R e)`: `R` is a rotation that starts by ordering the
columns by the energy they carry on the training corpus (an uncentred PCA) and, by default, is
then learned (`expm` of a skew matrix: orthogonal, so every full-width cosine is kept exactly);
`f` is a small MLP whose last layer starts at zero (the start is the plain rotation). It is
trained so that every prefix `out[:m]`, for m in a set of prefix sizes (the full width included),
keeps the full original embedding's cosines:

- unsupervised, on a corpus: the cosines of each text with its k nearest neighbours (found once
  with the full embeddings) and of all pairs within a batch, as the mean absolute difference, a
  KL term between the batch softmax of the full and of the prefix cosines, plus a reconstruction
  term that keeps `f` small;
- supervised, second stage: a listwise ranking loss (softmax cross-entropy of each relevant
  document against hard negatives and random documents) on query-document relevance, with the
  unsupervised terms kept as a regulariser.

Queries and documents go through the same adaptor. The loss runs on a set of prefix sizes, not
on every prefix, so memory stays linear in the batch. The best epoch of each stage is chosen on
dev queries (nDCG@10 averaged over the prefix sizes), or, without queries, on how many of each
held-out text's 10 nearest neighbours each prefix finds.

The trained adaptor exports to `lightembed.Transform` (numpy inference): as a standalone
transform file for external embeddings, or inside a new model folder.
"""

from __future__ import annotations

import copy
import logging
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from lightembed.config import ACTIVATIONS
from lightembed.scoring import blocks, unit_rows
from lightembed.transform import Transform

from .activations import TORCH_ACTIVATIONS
from .checks import finite_loss, require_counts, require_non_negative, require_positive
from .device import resolve_device
from .evaluation.retrieval import ndcg_at_k, top_k

logger = logging.getLogger(__name__)

RECALL_K = 10  # neighbours compared by `neighbour_recall`
ROTATIONS = ("learned", "energy", "none")
DEFAULT_DIMS = (16, 32, 64, 128)  # prefix sizes trained when none are given (those below the width)


@dataclass(frozen=True)
class AdaptSettings:
    """How the adaptor is built and trained (the full width is always added to `dims`)."""

    dims: tuple[int, ...] | None = None  # None: DEFAULT_DIMS below the width
    hidden: int | None = None  # hidden width of the MLP (None: the embedding width)
    layers: int = 2  # linear layers of the MLP (0: the learned rotation alone)
    activation: str = "relu"
    rotation: str = "learned"  # "learned": from the energy rotation, trained; "energy": fixed; "none"
    epochs: int = 40  # unsupervised stage (0: skip it)
    batch_size: int = 64  # anchor rows per unsupervised step
    epoch_rows: int | None = None  # anchors drawn per unsupervised epoch (None: every row once)
    learning_rate: float = 1e-3
    neighbours: int = 10  # nearest rows of each row (full original cosine)
    neighbour_samples: int = 3  # of them drawn into the batch per anchor and step
    distill_weight: float = 1.0
    distill_temperature: float = 0.05
    neighbour_weight: float = 1.0
    pair_weight: float = 1.0
    reconstruction_weight: float = 0.01
    supervised_epochs: int = 40  # supervised stage (needs queries and relevance; 0: skip it)
    query_batch_size: int = 32
    temperature: float = 0.05
    hard_negatives: int = 32
    random_negatives: int = 1024
    unsupervised_weight: float = 1.0  # weight of the unsupervised terms in the supervised stage
    patience: int = 8  # epochs without a better dev score before a stage stops
    full_width_tolerance: float = 1.0  # an epoch whose full-width dev score falls further below plain is never kept
    seed: int = 0

    def prefix_sizes(self, width: int) -> tuple[int, ...]:
        """The sorted distinct prefix sizes trained for embeddings of `width` columns."""
        dims = self.dims if self.dims is not None else tuple(m for m in DEFAULT_DIMS if m < width)
        for m in dims:
            if isinstance(m, bool) or not isinstance(m, (int, np.integer)) or not 1 <= m <= width:
                raise ValueError(f"prefix size {m!r} must be an integer between 1 and the embedding width {width}")
        return tuple(sorted({int(m) for m in dims} | {width}))

    def check(self) -> None:
        """Raise ValueError naming the first setting out of range."""
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {self.activation!r}")
        if self.rotation not in ROTATIONS:
            raise ValueError(f"rotation must be one of {ROTATIONS}, got {self.rotation!r}")
        require_counts(self, ("batch_size", "neighbours", "neighbour_samples", "query_batch_size", "patience"))
        require_counts(self, ("epochs", "supervised_epochs", "hard_negatives", "random_negatives", "seed"), minimum=0)
        if self.layers == 1 or self.layers < 0:
            raise ValueError(f"layers must be 0 (the rotation alone) or at least 2, got {self.layers}")
        if self.layers == 0 and self.rotation != "learned":
            raise ValueError("layers=0 leaves nothing to train unless rotation='learned'")
        if self.epoch_rows is not None and self.epoch_rows < 1:
            raise ValueError(f"epoch_rows must be at least 1, got {self.epoch_rows}")
        if self.hidden is not None and self.hidden < 1:
            raise ValueError(f"hidden must be at least 1, got {self.hidden}")
        require_positive(self, ("learning_rate", "temperature", "distill_temperature"))
        weights = ("distill_weight", "neighbour_weight", "pair_weight", "reconstruction_weight", "unsupervised_weight")
        require_non_negative(self, ("full_width_tolerance", *weights))


# --------------------------------------------------------------------------- the model


class MatryoshkaAdaptor(torch.nn.Module):
    """`x = Q e` with Q orthogonal (optional), then `x + f(x)` with `f` an MLP whose last layer starts at zero.

    Q is the fixed `rotation` it starts from, times `expm(S - S^T)` with S a learned upper-triangular
    matrix (zero at the start) when `learn_rotation` is set: a learned rotation, orthogonal by
    construction, so it reorders what each prefix holds and leaves every full-width cosine as it was.
    """

    def __init__(
        self,
        width: int,
        hidden: int,
        layers: int = 2,
        activation: str = "relu",
        rotation: np.ndarray | None = None,
        learn_rotation: bool = False,
    ) -> None:
        super().__init__()
        if activation not in TORCH_ACTIVATIONS:
            raise ValueError(f"activation must be one of {tuple(TORCH_ACTIVATIONS)}, got {activation!r}")
        self.activation = activation
        sizes = [width] + [hidden] * (layers - 1) + [width]
        modules: list[torch.nn.Module] = []
        for i in range(layers):
            modules.append(torch.nn.Linear(sizes[i], sizes[i + 1]))
            if i < layers - 1:
                modules.append(TORCH_ACTIVATIONS[activation]())
        self.mlp = torch.nn.Sequential(*modules)  # empty for layers=0: the rotation alone
        if layers:
            torch.nn.init.zeros_(self.mlp[-1].weight)
            torch.nn.init.zeros_(self.mlp[-1].bias)
        if rotation is None and learn_rotation:
            rotation = np.eye(width, dtype=np.float32)
        if rotation is not None and rotation.shape != (width, width):
            raise ValueError(f"rotation must be [{width}, {width}], got {rotation.shape}")
        self.register_buffer("rotation", None if rotation is None else torch.as_tensor(rotation, dtype=torch.float32))
        self.skew = torch.nn.Parameter(torch.zeros(width, width)) if learn_rotation else None

    def rotation_matrix(self) -> torch.Tensor | None:
        """Q: the start rotation, turned by the learned one (None without a rotation)."""
        if self.skew is None:
            return self.rotation
        upper = torch.triu(self.skew, diagonal=1)
        return torch.linalg.matrix_exp(upper - upper.T) @ self.rotation

    def base(self, e: torch.Tensor) -> torch.Tensor:
        """The input after the rotation (what the residual adds to)."""
        rotation = self.rotation_matrix()
        return e if rotation is None else e @ rotation.T

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        """`x + f(x)` for rotated rows x."""
        return x + self.mlp(x) if len(self.mlp) else x

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        return self.residual(self.base(e))

    def to_transform(self, normalize: bool = False) -> Transform:
        """The same computation as a numpy `lightembed.Transform` (the rotation is its projection)."""
        linears = [m for m in self.mlp if isinstance(m, torch.nn.Linear)]
        layers = tuple((_array(m.weight), _array(m.bias)) for m in linears)
        rotation = self.rotation_matrix()
        projection = None
        if rotation is not None:
            projection = (_array(rotation), np.zeros(rotation.shape[0], dtype=np.float32))
        return Transform(projection, layers, self.activation, normalize)


def _array(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().cpu().numpy().astype(np.float32)


def energy_rotation(vectors: np.ndarray) -> np.ndarray:
    """Orthogonal [D, D]: eigenvectors of the uncentred second moment, by decreasing energy.

    Rotating by it keeps every cosine at the full width; its first m rows span the best
    m-dimensional subspace in the least-squares sense. Signs make each row's largest entry positive.
    """
    x = np.asarray(vectors, dtype=np.float64)
    eigenvalues, eigenvectors = np.linalg.eigh(x.T @ x / len(x))
    rows = eigenvectors[:, np.argsort(eigenvalues, kind="stable")[::-1]].T
    pivots = rows[np.arange(len(rows)), np.abs(rows).argmax(axis=1)]
    return (rows * np.where(pivots < 0, -1.0, 1.0)[:, None]).astype(np.float32)


# --------------------------------------------------------------------------- losses
def prefix_unit(x: torch.Tensor, m: int) -> torch.Tensor:
    """The first m columns of each row, scaled to unit length (a zero row stays zero)."""
    return torch.nn.functional.normalize(x[..., :m], dim=-1, eps=1e-12)


def pair_similarity_loss(original: torch.Tensor, adapted: torch.Tensor, dims: Sequence[int]) -> torch.Tensor:
    """Mean over prefix sizes m of the mean |cos(o_i, o_j) - cos(a_i[:m], a_j[:m])| over all pairs i != j."""
    n = len(original)
    if n < 2:
        return original.new_zeros(())
    full = prefix_unit(original, original.shape[1])
    target = full @ full.T
    off_diagonal = 1.0 - torch.eye(n, dtype=original.dtype, device=original.device)  # a product: faster than a mask
    losses = []
    for m in dims:
        a = prefix_unit(adapted, m)
        losses.append(((a @ a.T - target).abs() * off_diagonal).sum() / (n * (n - 1)))
    return torch.stack(losses).mean()


def similarity_distillation_loss(
    original: torch.Tensor, adapted: torch.Tensor, dims: Sequence[int], temperature: float
) -> torch.Tensor:
    """Mean over m of the KL divergence, per row, from softmax(cos(o_i, o_j) / t) to softmax(cos(a_i[:m], a_j[:m]) / t).

    The softmax runs over the other rows j of the batch, so a row's nearest neighbours carry most
    of the weight: the prefix must keep who is closest, and by how much, rather than every cosine.
    """
    n = len(original)
    if n < 2:
        return original.new_zeros(())
    self_pairs = torch.eye(n, dtype=torch.bool, device=original.device)
    full = prefix_unit(original, original.shape[1])
    target = torch.log_softmax((full @ full.T / temperature).masked_fill(self_pairs, -1e4), dim=1)
    weights = target.exp()
    losses = []
    for m in dims:
        a = prefix_unit(adapted, m)
        logits = torch.log_softmax((a @ a.T / temperature).masked_fill(self_pairs, -1e4), dim=1)
        losses.append((weights * (target - logits)).sum(dim=1).mean())
    return torch.stack(losses).mean()


def neighbour_similarity_loss(
    original: torch.Tensor,
    original_neighbours: torch.Tensor,
    adapted: torch.Tensor,
    adapted_neighbours: torch.Tensor,
    dims: Sequence[int],
) -> torch.Tensor:
    """Mean over m of the mean |cos(o_i, o_j) - cos(a_i[:m], a_j[:m])| for each row i and its neighbours j.

    `original`/`adapted` are [n, D]; the neighbours [n, k, D] line up with their rows.
    """
    full = original.shape[1]
    target = torch.einsum("nd,nkd->nk", prefix_unit(original, full), prefix_unit(original_neighbours, full))
    losses = []
    for m in dims:
        cosines = torch.einsum("nd,nkd->nk", prefix_unit(adapted, m), prefix_unit(adapted_neighbours, m))
        losses.append((cosines - target).abs().mean())
    return torch.stack(losses).mean()


def reconstruction_loss(base: torch.Tensor, adapted: torch.Tensor) -> torch.Tensor:
    """`sum ||adapted - base||^2 / sum ||base||^2`: how far the residual moves the rows, scale-free."""
    return (adapted - base).pow(2).sum() / base.pow(2).sum().clamp(min=1e-12)


def ranking_loss(
    queries: torch.Tensor,
    docs: torch.Tensor,
    positives: torch.Tensor,
    dims: Sequence[int],
    temperature: float,
) -> torch.Tensor:
    """Listwise ranking loss, averaged over prefix sizes m.

    For each relevant pair (query b, doc c) of the boolean [B, C] matrix `positives`: the cross-entropy
    of doc c among all docs that are not relevant to b (plus c itself), with logits
    `cos(q_b[:m], d[:m]) / temperature`. Queries without a relevant doc are ignored.
    """
    rows, cols = torch.nonzero(positives, as_tuple=True)
    if len(rows) == 0:
        return queries.new_zeros(())
    others = positives[rows].clone()
    others[torch.arange(len(rows), device=others.device), cols] = False
    losses = []
    for m in dims:
        logits = (prefix_unit(queries, m) @ prefix_unit(docs, m).T)[rows] / temperature
        logits = logits.masked_fill(others, float("-inf"))
        losses.append(torch.nn.functional.cross_entropy(logits, cols))
    return torch.stack(losses).mean()


# --------------------------------------------------------------------------- data helpers
def check_vectors(vectors: np.ndarray, name: str, width: int | None = None) -> np.ndarray:
    """`vectors` as float32 [n >= 1, width], finite, with a clear error otherwise."""
    array = np.asarray(vectors)
    if array.dtype.kind not in "fiu":
        raise ValueError(f"{name}: expected numeric vectors, got dtype {array.dtype}")
    array = array.astype(np.float32)
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"{name}: expected a non-empty [n, dim] matrix, got shape {array.shape}")
    if width is not None and array.shape[1] != width:
        raise ValueError(f"{name}: expected {width} columns (the corpus width), got {array.shape[1]}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name}: contains NaN or infinite values")
    if not (np.abs(array).sum(axis=1) > 0).any():
        raise ValueError(f"{name}: every vector is zero")
    return array


def nearest_neighbours(vectors: np.ndarray, k: int, block: int = 1024) -> np.ndarray:
    """Rows of the k most cosine-similar other rows of each row, best first: int64 [n, min(k, n - 1)]."""
    units = unit_rows(vectors)
    k = min(k, len(units) - 1)
    out = np.zeros((len(units), max(k, 0)), dtype=np.int64)
    if k < 1:
        return out
    for start, stop in blocks(len(units), block):
        scores = units[start:stop] @ units.T
        scores[np.arange(stop - start), np.arange(start, stop)] = -np.inf
        out[start:stop] = top_k(scores, k)
    return out


def relevance_lists(qrels: np.ndarray, n_queries: int, n_docs: int) -> list[np.ndarray]:
    """The relevant doc rows of each query row, from (query row, doc row) pairs, with range checks."""
    pairs = np.asarray(qrels)
    if pairs.size == 0:
        return [np.zeros(0, dtype=np.int64) for _ in range(n_queries)]
    if pairs.ndim != 2 or pairs.shape[1] != 2 or pairs.dtype.kind not in "iu":
        raise ValueError(f"relevance must be integer (query row, doc row) pairs, got shape {pairs.shape}")
    if pairs[:, 0].min() < 0 or pairs[:, 0].max() >= n_queries:
        raise ValueError(f"relevance names a query row outside [0, {n_queries})")
    if pairs[:, 1].min() < 0 or pairs[:, 1].max() >= n_docs:
        raise ValueError(f"relevance names a document row outside [0, {n_docs})")
    out: list[set[int]] = [set() for _ in range(n_queries)]
    for q, d in pairs.tolist():
        out[q].add(d)
    return [np.asarray(sorted(docs), dtype=np.int64) for docs in out]


def group_split(relevant: Sequence[np.ndarray], dev_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, dev) query rows: queries that share a relevant document always land on the same side.

    Groups (connected components of queries linked by shared documents) are shuffled with `seed`
    and given to dev until it holds `dev_fraction` of the queries with a relevant document.
    """
    if not 0 < dev_fraction < 1:
        raise ValueError(f"dev_fraction must lie strictly between 0 and 1, got {dev_fraction}")
    parent = list(range(len(relevant)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    owner: dict[int, int] = {}
    for q, docs in enumerate(relevant):
        for d in docs.tolist():
            if d in owner:
                parent[find(q)] = find(owner[d])
            else:
                owner[d] = q
    labelled = [q for q, docs in enumerate(relevant) if len(docs)]
    groups: dict[int, list[int]] = {}
    for q in labelled:
        groups.setdefault(find(q), []).append(q)
    order = list(groups.values())
    np.random.default_rng(seed).shuffle(order)
    wanted = dev_fraction * len(labelled)
    dev: list[int] = []
    for members in order:
        if len(dev) >= wanted:
            break
        dev.extend(members)
    train = sorted(set(labelled) - set(dev))
    if not dev or not train:
        raise ValueError(
            f"the {len(labelled)} queries with relevant documents form {len(order)} groups (queries that share a "
            f"document stay together): too few for a train/dev split at dev_fraction={dev_fraction}"
        )
    return np.asarray(train, dtype=np.int64), np.asarray(sorted(dev), dtype=np.int64)


# --------------------------------------------------------------------------- scores
def retrieval_ndcg(
    queries: np.ndarray, docs: np.ndarray, relevant: Sequence[np.ndarray], dims: Sequence[int], block: int = 512
) -> dict[int, float]:
    """nDCG@10 x100 at each prefix size: docs ranked by the cosine of the prefixes, queries with a relevant doc."""
    keep = [i for i, rel in enumerate(relevant) if len(rel)]
    out = {}
    for m in dims:
        doc_units = unit_rows(docs[:, :m])
        values = []
        for start, stop in blocks(len(keep), block):
            rows = keep[start:stop]
            ranked = top_k(unit_rows(queries[rows, :m]) @ doc_units.T, 10)
            values += [ndcg_at_k(np.isin(r, relevant[q]), len(relevant[q])) for r, q in zip(ranked, rows)]
        out[int(m)] = 100.0 * float(np.mean(values)) if values else 0.0
    return out


def neighbour_recall(
    original: np.ndarray, adapted: np.ndarray, dims: Sequence[int], k: int = RECALL_K
) -> dict[int, float]:
    """Share x100 of each row's k nearest neighbours (full original cosine) that each prefix also ranks top k."""
    truth = nearest_neighbours(original, k)
    out = {}
    for m in dims:
        found = nearest_neighbours(adapted[:, :m], k)
        hits = (found[:, :, None] == truth[:, None, :]).any(axis=2).sum()
        out[int(m)] = 100.0 * float(hits) / max(truth.size, 1)
    return out


# --------------------------------------------------------------------------- training
@dataclass
class AdaptData:
    """Everything one training run sees: float32 vectors and relevance as doc-row arrays."""

    corpus: np.ndarray  # [n_docs, D]
    unsupervised: np.ndarray  # [n, D]: the texts of the unsupervised terms (corpus, optionally more)
    queries: np.ndarray | None = None  # [n_queries, D]
    relevant: list[np.ndarray] = field(default_factory=list)  # per query row
    train_queries: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    dev_queries: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    holdout: np.ndarray | None = None  # [n, D]: texts for the label-free dev score


@dataclass
class StageResult:
    """One training stage: the per-epoch dev scores and the epoch kept."""

    name: str
    history: list[dict[str, float]]
    best_epoch: int
    seconds: float
    state: dict[str, torch.Tensor]  # the adaptor's parameters at the kept epoch


class Scorer:
    """The dev score that picks epochs: nDCG@10 of dev queries, else neighbour recall of held-out texts.

    `available` is False when there is neither (then every epoch is kept and none is chosen).
    """

    def __init__(self, data: AdaptData, dims: Sequence[int]) -> None:
        self.data = data
        self.dims = tuple(dims)
        self.by_queries = data.queries is not None and len(data.dev_queries) > 0
        self.available = self.by_queries or (data.holdout is not None and len(data.holdout) > RECALL_K)
        if self.by_queries:
            self.name = "dev nDCG@10"
        elif self.available:
            self.name = f"held-out neighbour recall@{RECALL_K}"
        else:
            self.name = "no dev score (no dev queries, and too few corpus rows to hold some out)"
        self.plain = self(lambda vectors: vectors)  # the scores of the input vectors, truncated

    def eligible(self, scores: dict[int, float], tolerance: float) -> bool:
        """Whether the full-width score stays within `tolerance` of the input vectors' own."""
        full = max(self.dims)
        return not self.plain or scores.get(full, 0.0) >= self.plain[full] - tolerance

    def __call__(self, transform: Callable[[np.ndarray], np.ndarray]) -> dict[int, float]:
        """Scores per prefix size of the rows `transform` gives (the identity: plain truncation)."""
        data = self.data
        if self.by_queries:
            relevant = [data.relevant[q] for q in data.dev_queries]
            return retrieval_ndcg(
                transform(data.queries[data.dev_queries]), transform(data.corpus), relevant, self.dims
            )
        if self.available:
            return neighbour_recall(data.holdout, transform(data.holdout), self.dims)
        return {}


def apply(adaptor: MatryoshkaAdaptor, vectors: np.ndarray, block: int = 8192) -> np.ndarray:
    """The adaptor's output for numpy rows, float32, in blocks."""
    device = next(adaptor.parameters()).device
    out = []
    adaptor.eval()
    with torch.no_grad():
        for start, stop in blocks(len(vectors), block):
            out.append(adaptor(torch.as_tensor(vectors[start:stop], device=device)).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, vectors.shape[1]), dtype=np.float32)


def train_adaptor(
    data: AdaptData,
    settings: AdaptSettings = AdaptSettings(),
    device: str | torch.device | None = None,
    progress: bool = True,
) -> tuple[MatryoshkaAdaptor, list[StageResult]]:
    """Build the adaptor and run the unsupervised stage, then (with training queries) the supervised one."""
    settings.check()
    width = data.corpus.shape[1]
    dims = settings.prefix_sizes(width)
    device = resolve_device(device)
    rotation = energy_rotation(data.unsupervised) if settings.rotation != "none" else None
    with torch.random.fork_rng(devices=[]):  # a seeded initialisation that leaves the global generator alone
        torch.manual_seed(settings.seed)
        adaptor = MatryoshkaAdaptor(
            width,
            settings.hidden or width,
            settings.layers,
            settings.activation,
            rotation,
            learn_rotation=settings.rotation == "learned",
        )
    adaptor.to(device)
    scorer = Scorer(data, dims)
    generator = torch.Generator().manual_seed(settings.seed)
    unsupervised = _UnsupervisedTerms(data.unsupervised, settings, dims, device)
    stages = [_Stage("unsupervised", settings.epochs, unsupervised.epoch_batches)]
    if data.queries is not None and len(data.train_queries) and settings.supervised_epochs:
        supervised = _SupervisedTerms(data, settings, dims, device, unsupervised)
        stages.append(_Stage("supervised", settings.supervised_epochs, supervised.epoch_batches))
    results = []
    for stage in stages:
        results.append(_run_stage(adaptor, stage, settings, scorer, generator, progress))
    adaptor.eval()
    return adaptor, results


@dataclass(frozen=True)
class _Stage:
    name: str
    epochs: int
    batches: Callable[[MatryoshkaAdaptor, torch.Generator], Iterator[torch.Tensor]]


def _run_stage(
    adaptor: MatryoshkaAdaptor,
    stage: _Stage,
    settings: AdaptSettings,
    scorer: Scorer,
    generator: torch.Generator,
    progress: bool,
) -> StageResult:
    """Adam over `stage.epochs` epochs; keeps the epoch with the best mean dev score (epoch 0: the start).

    An epoch whose full-width score falls more than `full_width_tolerance` below the plain input's is
    never kept; a stage stops after `patience` epochs without a better one.
    """
    started = time.perf_counter()
    optimizer = torch.optim.Adam(adaptor.parameters(), lr=settings.learning_rate)

    def record(epoch: int, loss: float | None) -> dict[str, float]:
        scores = scorer(lambda vectors: apply(adaptor, vectors))
        row = {"epoch": epoch, "loss": loss, "dev": float(np.mean(list(scores.values()))) if scores else 0.0}
        row.update({f"@{m}": value for m, value in scores.items()})
        if scorer.available:
            logger.info("%s epoch %d: loss %s, %s %.2f", stage.name, epoch, loss, scorer.name, row["dev"])
        else:
            logger.info("%s epoch %d: loss %s, %s", stage.name, epoch, loss, scorer.name)
        return row

    history = [record(0, None)]
    best_epoch, best_state = 0, copy.deepcopy(adaptor.state_dict())
    bar = tqdm(range(1, stage.epochs + 1), desc=stage.name, unit="epoch", file=sys.stderr, disable=not progress)
    for epoch in bar:
        adaptor.train()
        total, steps = 0.0, 0
        for loss in stage.batches(adaptor, generator):
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += finite_loss(float(loss.detach()), epoch)
            steps += 1
        history.append(record(epoch, total / max(steps, 1)))
        scores = {m: history[-1][f"@{m}"] for m in scorer.dims if f"@{m}" in history[-1]}
        better = history[-1]["dev"] > history[best_epoch]["dev"]
        if not scorer.available or (better and scorer.eligible(scores, settings.full_width_tolerance)):
            best_epoch, best_state = epoch, copy.deepcopy(adaptor.state_dict())
        elif epoch - best_epoch >= settings.patience:
            break
    adaptor.load_state_dict(best_state)
    return StageResult(stage.name, history, best_epoch, time.perf_counter() - started, best_state)


class _UnsupervisedTerms:
    """Neighbour + pair similarity losses and the reconstruction term on batches of unsupervised rows.

    A batch is `batch_size` anchor rows plus, for each, `neighbour_samples` of its `neighbours`
    nearest rows (drawn anew every step): the pair term covers every pair of the batch, the
    neighbour term each anchor with its drawn neighbours.
    """

    def __init__(self, vectors: np.ndarray, settings: AdaptSettings, dims: Sequence[int], device: torch.device):
        self.settings = settings
        self.dims = dims
        self.vectors = torch.as_tensor(vectors, device=device)
        self.neighbours = torch.as_tensor(nearest_neighbours(vectors, settings.neighbours), device=device)

    def loss(self, adaptor: MatryoshkaAdaptor, anchors: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        s = self.settings
        n, k = len(anchors), self.neighbours.shape[1]
        draws = min(s.neighbour_samples, k)
        picks = torch.rand((n, k), generator=generator).argsort(dim=1)[:, :draws].to(self.neighbours.device)
        rows = torch.cat([anchors, torch.gather(self.neighbours[anchors], 1, picks).reshape(-1)])
        original = self.vectors[rows]
        base = adaptor.base(original)
        adapted = adaptor.residual(base)
        loss = s.pair_weight * pair_similarity_loss(original, adapted, self.dims)
        if s.distill_weight:
            loss = loss + s.distill_weight * similarity_distillation_loss(
                original, adapted, self.dims, s.distill_temperature
            )
        if draws:
            width = original.shape[1]
            loss = loss + s.neighbour_weight * neighbour_similarity_loss(
                original[:n],
                original[n:].reshape(n, draws, width),
                adapted[:n],
                adapted[n:].reshape(n, draws, width),
                self.dims,
            )
        return loss + s.reconstruction_weight * reconstruction_loss(base, adapted)

    def epoch_batches(self, adaptor: MatryoshkaAdaptor, generator: torch.Generator) -> Iterator[torch.Tensor]:
        order = torch.randperm(len(self.vectors), generator=generator)[: self.settings.epoch_rows]
        order = order.to(self.vectors.device)
        for start in range(0, len(order), self.settings.batch_size):
            yield self.loss(adaptor, order[start : start + self.settings.batch_size], generator)

    def random_loss(self, adaptor: MatryoshkaAdaptor, generator: torch.Generator) -> torch.Tensor:
        """The loss of one batch of random anchors."""
        anchors = torch.randint(len(self.vectors), (self.settings.batch_size,), generator=generator)
        return self.loss(adaptor, anchors.to(self.vectors.device), generator)


class _SupervisedTerms:
    """The ranking loss of batches of training queries against candidates, plus the unsupervised terms."""

    def __init__(
        self,
        data: AdaptData,
        settings: AdaptSettings,
        dims: Sequence[int],
        device: torch.device,
        unsupervised: _UnsupervisedTerms,
    ) -> None:
        self.settings = settings
        self.dims = dims
        self.unsupervised = unsupervised
        self.device = device
        self.train = data.train_queries
        self.queries = torch.as_tensor(data.queries, device=device)
        self.corpus = torch.as_tensor(data.corpus, device=device)
        self.relevant = data.relevant
        self.hard = self._hard_negatives(data, settings.hard_negatives)

    def _hard_negatives(self, data: AdaptData, count: int) -> list[np.ndarray]:
        """The top-ranked non-relevant docs of each training query under the original full embedding."""
        if count == 0:
            return [np.zeros(0, dtype=np.int64) for _ in range(len(data.queries))]
        out = [np.zeros(0, dtype=np.int64) for _ in range(len(data.queries))]
        docs = unit_rows(data.corpus)
        for start, stop in blocks(len(self.train), 512):
            rows = self.train[start:stop]
            ranked = top_k(unit_rows(data.queries[rows]) @ docs.T, count + 8)
            for q, r in zip(rows, ranked):
                out[q] = r[~np.isin(r, data.relevant[q])][:count]
        return out

    def loss(self, adaptor: MatryoshkaAdaptor, rows: np.ndarray, generator: torch.Generator) -> torch.Tensor:
        s = self.settings
        picked = [self.relevant[q] for q in rows] + [self.hard[q] for q in rows]
        random_docs = torch.randint(len(self.corpus), (s.random_negatives,), generator=generator).numpy()
        candidates = np.unique(np.concatenate([*picked, random_docs]))
        column = {d: i for i, d in enumerate(candidates.tolist())}
        positives = torch.zeros((len(rows), len(candidates)), dtype=torch.bool)
        for b, q in enumerate(rows):
            positives[b, [column[d] for d in self.relevant[q].tolist()]] = True
        queries = adaptor(self.queries[torch.as_tensor(rows, device=self.device)])
        docs = adaptor(self.corpus[torch.as_tensor(candidates, device=self.device)])
        loss = ranking_loss(queries, docs, positives.to(self.device), self.dims, s.temperature)
        if s.unsupervised_weight > 0:
            loss = loss + s.unsupervised_weight * self.unsupervised.random_loss(adaptor, generator)
        return loss

    def epoch_batches(self, adaptor: MatryoshkaAdaptor, generator: torch.Generator) -> Iterator[torch.Tensor]:
        order = self.train[torch.randperm(len(self.train), generator=generator).numpy()]
        for start in range(0, len(order), self.settings.query_batch_size):
            yield self.loss(adaptor, order[start : start + self.settings.query_batch_size], generator)
