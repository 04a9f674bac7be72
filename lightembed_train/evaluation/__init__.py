"""The pieces of the benchmark suite: one module per task family, the encoders, and their shared base.

`lightembed_train.evaluate` puts them together (tasks on the shared data, cache, report).
"""

from .base import Encoder, Task, TextIndex
from .classification import ClassificationTask
from .clustering import ClusteringTask
from .duplicates import DuplicateGroupsTask
from .pairs import PairClassificationTask
from .reranking import RerankingTask
from .retrieval import RetrievalTask
from .sts import StsTask

__all__ = [
    "ClassificationTask",
    "ClusteringTask",
    "DuplicateGroupsTask",
    "Encoder",
    "PairClassificationTask",
    "RerankingTask",
    "RetrievalTask",
    "StsTask",
    "Task",
    "TextIndex",
]
