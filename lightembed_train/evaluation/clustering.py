"""Clustering: V-measure of k-means with the true number of classes."""

from __future__ import annotations

import numpy as np
from sklearn.cluster import KMeans
from sklearn.metrics import v_measure_score

from ..datasets import LabelledTexts
from .base import Task

KMEANS_SEED = 0
KMEANS_N_INIT = 10


def kmeans_v_measure(vectors: np.ndarray, labels: np.ndarray) -> float:
    """V-measure x100 of scikit-learn k-means (k = number of labels, fixed seed and n_init) on `vectors`."""
    k = len(np.unique(labels))
    clusters = KMeans(n_clusters=k, n_init=KMEANS_N_INIT, random_state=KMEANS_SEED).fit_predict(vectors)
    return 100.0 * float(v_measure_score(labels, clusters))


class ClusteringTask(Task):
    """V-measure x100 of k-means over the unit vectors of labelled texts."""

    family = "Clustering"
    metrics = ("V-measure",)

    def __init__(self, name: str, data: LabelledTexts) -> None:
        super().__init__()
        self.name = name
        self.rows = self.index.add(data.texts)
        self.labels = np.asarray(data.labels)

    def score(self, vectors: np.ndarray) -> dict[str, float]:
        return {"V-measure": kmeans_v_measure(vectors[self.rows], self.labels)}
