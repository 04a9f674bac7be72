"""A fitted projection and its three exports: a transform file, a baked model folder, a torch Linear.

- `Projection.save(path)`: a standalone transform file (`lightembed.load_transform`) that
  projects embeddings from any source in numpy and L2-normalises them.
- `Projection.bake(model, out)`: a new lightembed model folder whose codebook rows are the
  old rows times W. Mean pooling is linear, so mean(rows) W = mean(rows W): the new model's
  pooled vector is exactly the old one projected, and nothing runs after pooling.
- `Projection.to_linear()`: a `torch.nn.Linear` without bias (weight = W^T).

Columns are ordered by importance, so every export takes `dim` to keep the first `dim` only.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open

import lightembed
from lightembed.folder import ModelParts, read_model, write_model
from lightembed.resolve import resolve_model
from lightembed.transform import Transform, load_transform, save_transform

from ..distill import stored_codebook
from .methods import Recipe

METADATA_KEY = "lightembed_train.projection"
DROPPED_RERANKER = "the base model's reranker (it reads the old token vectors)"
DROPPED_CODES = "the base model's trained binary codebook (it ranks like the old vectors)"
logger = logging.getLogger(__name__)


@dataclass
class Projection:
    """A linear map x -> x @ matrix ([in_dim, out_dim]), its columns ordered by importance."""

    matrix: np.ndarray
    recipe: Recipe | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        matrix = np.asarray(self.matrix, dtype=np.float32)
        if matrix.ndim != 2 or 0 in matrix.shape or not np.isfinite(matrix).all():
            raise ValueError(f"a projection matrix must be a finite non-empty [in, out] array, got {matrix.shape}")
        self.matrix = np.ascontiguousarray(matrix)

    @property
    def in_dim(self) -> int:
        """Width of the vectors it takes."""
        return int(self.matrix.shape[0])

    @property
    def out_dim(self) -> int:
        """Width of the vectors it gives."""
        return int(self.matrix.shape[1])

    def columns(self, dim: int | None = None) -> np.ndarray:
        """The first `dim` columns (all when None), checked."""
        if dim is None:
            return self.matrix
        if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or not 1 <= dim <= self.out_dim:
            raise ValueError(f"dim must be an integer between 1 and {self.out_dim}, got {dim!r}")
        return self.matrix[:, :dim]

    def to_transform(self, dim: int | None = None) -> Transform:
        """The runtime's `Transform`: project, then L2-normalise."""
        weight = np.ascontiguousarray(self.columns(dim).T)
        return Transform(projection=(weight, np.zeros(len(weight), dtype=np.float32)), normalize=True)

    def apply(self, vectors: np.ndarray, dim: int | None = None) -> np.ndarray:
        """Project rows [n, in_dim] and normalise them (float32), as the saved transform does."""
        return self.to_transform(dim).apply(vectors)

    def to_linear(self, dim: int | None = None) -> torch.nn.Linear:
        """A bias-free `torch.nn.Linear(in_dim, dim)` computing x W (without the normalisation)."""
        weight = self.columns(dim).T
        layer = torch.nn.Linear(weight.shape[1], weight.shape[0], bias=False)
        with torch.no_grad():
            layer.weight.copy_(torch.from_numpy(np.ascontiguousarray(weight)))
        return layer

    def save(self, path: str | Path, dim: int | None = None) -> Path:
        """Write a transform file for `lightembed.load_transform` (the recipe and scores in its header)."""
        return save_transform(path, self.to_transform(dim), {METADATA_KEY: json.dumps(self._provenance(dim))})

    @classmethod
    def load(cls, path: str | Path) -> Projection:
        """Read a projection back from a transform file written by `save`."""
        transform = load_transform(path)
        if transform.projection is None or transform.adaptor:
            raise ValueError(f"{path}: holds no plain projection (it has an adaptor, or no projection)")
        weight, bias = transform.projection
        if np.any(bias != 0):
            raise ValueError(f"{path}: the projection has a bias; a Projection is bias-free")
        with safe_open(str(path), framework="numpy") as handle:
            saved = json.loads((handle.metadata() or {}).get(METADATA_KEY, "{}"))
        recipe = Recipe.from_json(saved["recipe"]) if saved.get("recipe") else None
        return cls(weight.T, recipe, saved.get("info", {}))

    def bake(
        self,
        model: str | Path | None,
        out: str | Path,
        *,
        dim: int | None = None,
        dtype: str | None = None,
        card: str | None = None,
    ) -> Path:
        """Write a new model folder `out`: `model`'s codebook (lightembed, model2vec or WordLlama) times W.

        `dtype` (float16, float32 or int8 with a scale per row) defaults to float16. A model
        with a projection is baked through it; a model with an adaptor (non-linear) is refused.
        `card` is the folder's README.md (default: a short one with the recipe and fit details).
        """
        source = resolve_model(model)
        parts = read_model(source)
        rows, matrix, bias = _linear_codebook(parts)
        if len(matrix[0]) != self.in_dim:
            raise ValueError(
                f"the projection takes {self.in_dim}-dim vectors but {source} gives {len(matrix[0])}-dim vectors"
            )
        w = self.columns(dim).astype(np.float64)
        table = rows.astype(np.float64) @ (matrix @ w) + bias @ w
        embeddings, extra = stored_codebook(table.astype(np.float32), dtype or "float16")
        width = w.shape[1]
        config = replace(
            parts.config,
            dim=width,
            vocab_size=len(table),
            token_weights=False,
            projection=False,
            adaptor=None,
            binary_codebook=False,
            reranker=False,
            matryoshka_dims=tuple(sorted({d for d in parts.config.matryoshka_dims if d < width} | {width})),
            source="lightembed",
            provenance={
                "method": "project",
                "base": str(source),
                "base_provenance": parts.config.provenance,
                **self._provenance(dim),
                "dtype": dtype or "float16",
                "date": time.strftime("%Y-%m-%d"),
                "lightembed": lightembed.__version__,
            },
            metrics={},
        )
        held = ((DROPPED_RERANKER, parts.reranker_path), (DROPPED_CODES, parts.binary_embeddings))
        dropped = [text for text, part in held if part is not None]
        if dropped:
            config.provenance["dropped"] = " and ".join(dropped) + " left out"
            logger.info("%s: %s", out, config.provenance["dropped"])
        if card is None:
            card = (
                f"# Projected lightembed model\n\nThe codebook of `{source}` multiplied by a projection "
                f"({width} of {self.in_dim} dims) fitted with `lightembed_train.projection`: "
                f"`{self.recipe or 'given matrix'}`.\n\nHow it was fitted:\n\n```json\n"
                f"{json.dumps(self.info, indent=2, default=str)}\n```\n"
            )
        return write_model(out, config, embeddings, parts.tokenizer, extra, card)

    def _provenance(self, dim: int | None) -> dict[str, Any]:
        return {
            "recipe": self.recipe.to_json() if self.recipe is not None else None,
            "recipe_text": str(self.recipe) if self.recipe is not None else None,
            "in_dim": self.in_dim,
            "out_dim": self.columns(dim).shape[1],
            "info": self.info,
        }


def _linear_codebook(parts: ModelParts) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows [V, D], M [D, d], b [d]) such that a text's pooled vector is mean(rows) M + b.

    Shared rows (model2vec's vocabulary quantisation) are expanded to one row per token and
    separate token weights multiplied in; a projection after pooling becomes M and b.
    """
    if parts.transform.adaptor:
        raise ValueError(f"{parts.path}: the model has an adaptor (non-linear), which cannot be baked into rows")
    rows = parts.embeddings.astype(np.float32)
    if parts.token_rows is not None:
        rows = rows[parts.token_rows]
    if parts.token_weights is not None:
        rows = rows * parts.token_weights[:, None]
    width = rows.shape[1]
    if parts.transform.projection is None:
        return rows, np.eye(width), np.zeros(width)
    weight, bias = parts.transform.projection
    return rows, weight.T.astype(np.float64), bias.astype(np.float64)
