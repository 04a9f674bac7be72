"""Hard negatives: for each row, the most similar rows (by cosine) of other groups."""

from __future__ import annotations

import numpy as np
import torch

from .data import GroupedVectors

BLOCK_ELEMENTS = 1 << 24  # a block of rows x all rows holds at most this many cosines


@torch.no_grad()
def mine_negatives(
    data: GroupedVectors, per_item: int = 3, *, device: torch.device | str | None = None, block: int | None = None
) -> np.ndarray:
    """[p, 2] row pairs (row, one of its `per_item` nearest rows outside its group), in row order."""
    if per_item < 1:
        raise ValueError(f"per_item must be at least 1, got {per_item}")
    device = torch.device(device) if device is not None else torch.device("cpu")
    vectors = torch.as_tensor(data.vectors, device=device)
    vectors = vectors / vectors.norm(dim=1, keepdim=True).clamp_min(1e-12)
    groups = torch.as_tensor(data.groups, device=device)
    k = min(per_item, len(vectors) - 1)
    block = block or max(1, BLOCK_ELEMENTS // len(vectors))
    found = []
    for start in range(0, len(vectors), block):
        rows = torch.arange(start, min(start + block, len(vectors)), device=device)
        cosines = vectors[rows] @ vectors.T
        cosines[groups[rows, None] == groups[None, :]] = -torch.inf
        values, columns = torch.topk(cosines, k, dim=1)
        keep = torch.isfinite(values)
        found.append(torch.stack([rows[:, None].expand_as(columns)[keep], columns[keep]], dim=1))
    pairs = torch.cat(found).cpu().numpy().astype(np.int64)
    if len(pairs) == 0:
        raise ValueError("no negative pairs: every row is in the same group")
    return pairs
