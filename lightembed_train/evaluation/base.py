"""What every evaluation task shares: the encoder protocol, the task interface, and text indexing."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import Protocol

import numpy as np


class Encoder(Protocol):
    """Anything that turns texts into vectors: `encode(texts)` gives float32 [len(texts), dim].

    `name` labels the encoder in tables; `fingerprint` identifies its weights and settings, so
    that cached embeddings are reused only for the same model.
    """

    name: str
    fingerprint: str

    def encode(self, texts: list[str]) -> np.ndarray: ...


class TextIndex:
    """Distinct texts in first-seen order, so that each text is embedded once per task."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self._position: dict[str, int] = {}

    def add(self, texts: Iterable[str]) -> np.ndarray:
        """Positions of `texts` in `self.texts` (adding the new ones), int64."""
        out = []
        for text in texts:
            position = self._position.get(text)
            if position is None:
                position = self._position[text] = len(self.texts)
                self.texts.append(text)
            out.append(position)
        return np.asarray(out, dtype=np.int64)


class Task(ABC):
    """One benchmark task: the texts it needs embedded, and its scores from their unit vectors.

    `metrics` names what `score` returns, the main metric first (the one averaged over tasks).
    Every score is on a 0-100 scale.
    """

    name: str
    family: str
    metrics: tuple[str, ...]

    def __init__(self) -> None:
        self.index = TextIndex()

    @property
    def texts(self) -> list[str]:
        """The distinct texts to embed, in a fixed order."""
        return self.index.texts

    @abstractmethod
    def score(self, vectors: np.ndarray) -> dict[str, float]:
        """Scores from unit vectors whose rows match `texts`, keyed by metric name."""


def pair_cosines(vectors: np.ndarray, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Cosine of each (left[i], right[i]) pair of unit rows."""
    return np.einsum("ij,ij->i", vectors[left], vectors[right])
