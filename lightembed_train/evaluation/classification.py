"""Classification: accuracy of a logistic-regression probe on frozen embeddings.

The probe is fixed for every encoder: the unit vectors are standardised (mean and scale
fitted on the training split), then scikit-learn's `LogisticRegression(C=1.0,
max_iter=1000)` with its default lbfgs solver. Standardising makes the regularisation
independent of the embedding width and scale, so encoders of different dimensions meet
the same probe.
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ..datasets import LabelledTexts
from .base import Task

PROBE_C = 1.0
PROBE_MAX_ITER = 1000
HOLDOUT_FRACTION = 0.2
HOLDOUT_SEED = 0


def probe_accuracy(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray) -> float:
    """Test accuracy x100 of the fixed probe trained on (train_x, train_y)."""
    probe = make_pipeline(StandardScaler(), LogisticRegression(C=PROBE_C, max_iter=PROBE_MAX_ITER))
    probe.fit(train_x, train_y)
    return 100.0 * float(np.mean(probe.predict(test_x) == test_y))


def holdout_split(data: LabelledTexts) -> tuple[LabelledTexts, LabelledTexts]:
    """A fixed stratified 80/20 split (seed 0) into (train, test), for tasks without a train split."""
    train_texts, test_texts, train_labels, test_labels = train_test_split(
        data.texts, data.labels, test_size=HOLDOUT_FRACTION, random_state=HOLDOUT_SEED, stratify=data.labels
    )
    return LabelledTexts(list(train_texts), list(train_labels)), LabelledTexts(list(test_texts), list(test_labels))


class ClassificationTask(Task):
    """Probe accuracy x100: fitted on `train`, measured on `test`."""

    family = "Classification"
    metrics = ("accuracy",)

    def __init__(self, name: str, train: LabelledTexts, test: LabelledTexts) -> None:
        super().__init__()
        self.name = name
        self.train_rows = self.index.add(train.texts)
        self.test_rows = self.index.add(test.texts)
        self.train_labels = np.asarray(train.labels)
        self.test_labels = np.asarray(test.labels)

    def score(self, vectors: np.ndarray) -> dict[str, float]:
        accuracy = probe_accuracy(
            vectors[self.train_rows], self.train_labels, vectors[self.test_rows], self.test_labels
        )
        return {"accuracy": accuracy}
