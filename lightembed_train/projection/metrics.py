"""Leave-one-out retrieval scores of projected vectors, for many projections and prefix widths at once.

Every row that has another row of its group is a query once: all other rows are ranked by
cosine, and the other members of its group are the relevant ones (rows of a group of one are
only distractors). MAP@k divides the precision sum over the top k by min(relevant, k), R@1 is
the share of queries whose nearest row is relevant: litfit's definitions, and those of the
suite's `evaluation.duplicates.leave_one_out`.

`RetrievalScorer` keeps the rows on a torch device and scores a projection at several prefix
widths in one pass: the Gram matrix of a block of queries grows column block by column block,
so scoring widths 16, 64 and 384 costs one 384-wide product, not three. A query's rank of each
group mate is the count of rows nearer than that mate (one comparison pass per mate, no sort);
queries where a mate ties with another row, or with more than MATE_SLOTS mates, are ranked by the
suite's partial sort instead, so equal scores are ordered as the suite orders them (on the CPU; on
another device `torch.topk` picks among ties).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..evaluation.retrieval import smallest_k

MAP_K = 50
BLOCK_ELEMENTS = 1 << 24  # a block of queries x all rows holds at most this many scores (64 MB in float32)
MATE_SLOTS = 32  # queries with at most this many group mates are scored by counting, not sorting


@dataclass(frozen=True)
class Scores:
    """MAP@k and R@1 (0-1) of one set of vectors."""

    map_at_k: float
    recall_at_1: float

    def to_json(self) -> dict[str, float]:
        """{"MAP@50": ..., "R@1": ...} in percent."""
        return {f"MAP@{MAP_K}": 100 * self.map_at_k, "R@1": 100 * self.recall_at_1}


class RetrievalScorer:
    """Scores projections of fixed rows with fixed groups (see the module docstring)."""

    def __init__(
        self,
        vectors: np.ndarray,
        groups: np.ndarray,
        *,
        k: int = MAP_K,
        device: torch.device | str | None = None,
        block: int | None = None,
    ) -> None:
        if len(vectors) != len(groups):
            raise ValueError(f"{len(vectors)} vectors but {len(groups)} group labels")
        if len(vectors) < 2:
            raise ValueError("leave-one-out scoring needs at least two rows")
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.vectors = torch.as_tensor(np.ascontiguousarray(vectors, dtype=np.float32), device=self.device)
        self.groups = torch.as_tensor(np.asarray(groups, dtype=np.int64), device=self.device)
        sizes = torch.bincount(self.groups)
        self.relevant = sizes[self.groups] - 1
        self.queries = torch.nonzero(self.relevant > 0).flatten()
        if len(self.queries) == 0:
            raise ValueError("no row has another row of its group: nothing to score")
        self.k = min(k, len(vectors) - 1)
        self.ranks = torch.arange(1, self.k + 1, device=self.device, dtype=torch.float32)
        mates = _group_mates(np.asarray(groups, dtype=np.int64), self.queries.cpu().numpy(), MATE_SLOTS)
        self.mates = torch.as_tensor(mates, device=self.device)
        self.block = block or max(1, min(len(self.queries), BLOCK_ELEMENTS // len(vectors)))
        self._seen: dict[bytes, Scores] = {}

    def __len__(self) -> int:
        return len(self.vectors)

    def baseline(self) -> Scores:
        """Scores of the rows as they are."""
        return self.score(None, [self.vectors.shape[1]])[self.vectors.shape[1]]

    def score(self, matrix: np.ndarray | None, dims: Sequence[int]) -> dict[int, Scores]:
        """Scores of `rows @ matrix[:, :m]` for each m in `dims` (None: the rows themselves).

        Cosines after a projection W depend only on W W^T (up to scale), so a width whose
        W_m W_m^T matches one scored before (say, two recipes that differ only in directions
        they both keep) reuses those scores.
        """
        width = self.vectors.shape[1] if matrix is None else matrix.shape[1]
        widths = sorted({int(m) for m in dims})
        if not widths or widths[0] < 1 or widths[-1] > width:
            raise ValueError(f"dims must lie in 1..{width}, got {list(dims)}")
        if matrix is None:
            return self._score(self.vectors, widths)
        keys = {m: _metric_key(matrix[:, :m]) for m in widths}
        missing = [m for m in widths if keys[m] not in self._seen]
        if missing:
            projected = self.vectors @ torch.as_tensor(matrix, dtype=torch.float32, device=self.device)
            for m, scores in self._score(projected, missing).items():
                self._seen[keys[m]] = scores
        return {m: self._seen[keys[m]] for m in widths}

    def per_query(self, matrix: np.ndarray | None, width: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(AP@k, first-hit 0/1) of each query row of `rows @ matrix[:, :width]`, e.g. for a bootstrap.

        Query rows are the rows with another row in their group, in row order (`query_rows`).
        """
        projected = self.vectors
        if matrix is not None:
            projected = projected @ torch.as_tensor(matrix, dtype=torch.float32, device=self.device)
        width = projected.shape[1] if width is None else width
        if not 1 <= width <= projected.shape[1]:
            raise ValueError(f"width must lie in 1..{projected.shape[1]}, got {width}")
        precision, hits = self._per_query(projected, [width])[width]
        return precision.cpu().numpy(), hits.cpu().numpy()

    @property
    def query_rows(self) -> np.ndarray:
        """The rows that are queries (they have another row of their group)."""
        return self.queries.cpu().numpy()

    def _score(self, projected: torch.Tensor, widths: list[int]) -> dict[int, Scores]:
        found = self._per_query(projected, widths)
        return {m: Scores(float(ap.mean()), float(hit.mean())) for m, (ap, hit) in found.items()}

    @torch.no_grad()
    def _per_query(self, projected: torch.Tensor, widths: list[int]) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
        squares = torch.cumsum(projected[:, : widths[-1]] ** 2, dim=1)
        inverse_norms = {m: squares[:, m - 1].sqrt().clamp_min(1e-12).reciprocal() for m in widths}
        parts: dict[int, list[tuple[torch.Tensor, torch.Tensor]]] = {m: [] for m in widths}
        for start in range(0, len(self.queries), self.block):
            rows = self.queries[start : start + self.block]
            gram = torch.zeros(len(rows), len(self), device=self.device)
            done = 0
            for m in widths:
                gram += projected[rows, done:m] @ projected[:, done:m].T
                done = m
                negated = gram * -inverse_norms[m][rows, None]  # minus the cosines: sorted as they are
                negated *= inverse_norms[m][None, :]
                negated[torch.arange(len(rows), device=self.device), rows] = torch.inf
                parts[m].append(self._block_scores(negated, start))
        return {m: (torch.cat([p[0] for p in found]), torch.cat([p[1] for p in found])) for m, found in parts.items()}

    def _block_scores(self, negated: torch.Tensor, start: int) -> tuple[torch.Tensor, torch.Tensor]:
        """AP@k and first-hit indicator (float64) of the queries `start`, ... of a block, from minus
        their cosines. Each group mate's rank is the count of rows nearer than it; rows where a mate
        ties with another row, or with more than MATE_SLOTS mates, go through a partial sort instead."""
        rows = self.queries[start : start + len(negated)]
        mates = self.mates[start : start + len(negated)]
        relevant = self.relevant[rows]
        ranks = torch.full(mates.shape, torch.inf, device=self.device, dtype=torch.float64)
        sorted_out = relevant > mates.shape[1]
        for slot in range(mates.shape[1]):
            local = torch.nonzero((relevant > slot) & ~sorted_out).flatten()
            if len(local) == 0:
                break
            own = negated if len(local) == len(negated) else negated[local]
            value = negated[local, mates[local, slot]]
            nearer, level = _below_and_level(own, value)
            ranks[local, slot] = nearer.to(torch.float64)
            sorted_out[local] |= level > 1
        ranks = torch.sort(ranks, dim=1).values
        found = torch.arange(1, mates.shape[1] + 1, device=self.device, dtype=torch.float64)
        precision = torch.where(ranks < self.k, found / (ranks + 1), torch.zeros_like(ranks))
        average_precision = precision.sum(dim=1) / relevant.clamp(max=self.k).to(torch.float64)
        first_hit = (ranks[:, 0] == 0).to(torch.float64)
        redo = torch.nonzero(sorted_out).flatten()
        if len(redo):
            average_precision[redo], first_hit[redo] = self._sorted_scores(negated[redo], rows[redo])
        return average_precision, first_hit

    def _sorted_scores(self, negated: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """AP@k and first-hit indicator (float64) of query `rows` from their k nearest rows."""
        top = _nearest(negated, self.k)
        hits = (self.groups[top] == self.groups[rows, None]).to(torch.float32)
        precision = torch.cumsum(hits, dim=1) / self.ranks
        relevant = self.relevant[rows].clamp(max=self.k).to(torch.float32)
        average_precision = (precision * hits).sum(dim=1) / relevant
        return average_precision.to(torch.float64), hits[:, 0].to(torch.float64)


def _group_mates(groups: np.ndarray, queries: np.ndarray, slots: int) -> np.ndarray:
    """[len(queries), up to `slots`] the other rows of each query's group (padded with 0); a query
    with more mates than `slots` gets none here (it is scored by a partial sort)."""
    sizes = np.bincount(groups)
    counts = sizes[groups[queries]] - 1
    listed = np.flatnonzero(counts <= slots)
    mates = np.zeros((len(queries), max(1, min(slots, int(counts[listed].max(initial=1))))), dtype=np.int64)
    order = np.argsort(groups, kind="stable")
    starts = np.cumsum(sizes) - sizes
    size = counts[listed] + 1
    query = np.repeat(listed, size)  # each listed query once per member of its group
    within = np.arange(size.sum()) - np.repeat(np.cumsum(size) - size, size)
    member = order[np.repeat(starts[groups[queries[listed]]], size) + within]
    keep = member != queries[query]
    query, member = query[keep], member[keep]
    slot = np.arange(len(member)) - np.repeat(np.cumsum(counts[listed]) - counts[listed], counts[listed])
    mates[query, slot] = member
    return mates


def _below_and_level(values: torch.Tensor, value: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row of `values`, how many entries are below `value` of that row and how many equal it
    (numpy on the CPU, where its counting is several times faster than torch's)."""
    if values.device.type == "cpu":
        grid, line = values.numpy(), value.numpy()[:, None]
        below, level = np.count_nonzero(grid < line, axis=1), np.count_nonzero(grid == line, axis=1)
        return torch.from_numpy(below), torch.from_numpy(level)
    return (values < value[:, None]).sum(dim=1), (values == value[:, None]).sum(dim=1)


def _nearest(negated: torch.Tensor, k: int) -> torch.Tensor:
    """Column indices of each row's k smallest values (k largest cosines), nearest first; on the CPU
    the suite's numpy partial sort (faster there than `torch.topk`, and the suite's order for ties)."""
    if negated.device.type != "cpu":
        return torch.topk(negated, k, dim=1, largest=False, sorted=True).indices
    return torch.from_numpy(smallest_k(negated.numpy(), k))


def _metric_key(w: np.ndarray) -> bytes:
    """A digest of W W^T / trace, rounded to 7 decimals: equal for projections that give equal cosines."""
    metric = np.asarray(w, dtype=np.float64) @ np.asarray(w, dtype=np.float64).T
    trace = float(np.trace(metric))
    rounded = np.round(metric / trace, 7) if trace > 0 else metric
    return hashlib.sha1(np.ascontiguousarray(rounded + 0.0).tobytes()).digest()
