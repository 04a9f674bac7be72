"""lightembed: fast static text embeddings on the CPU, with numpy only.

>>> import lightembed
>>> model = lightembed.load()            # the bundled default model, no network
>>> vectors = model.embed(["a text", "another text"])
>>> result = model.deduplicate(texts, threshold=0.9)
"""

from .cluster import ClusterResult
from .config import ModelConfig
from .dedup import DedupResult, Duplicate, SearchOptions
from .errors import LightEmbedError, ModelFormatError, ModelNotFoundError
from .folder import read_model, write_model
from .model import Hit, LightEmbed, load
from .transform import Transform, load_transform, save_transform

__version__ = "0.1.0"

__all__ = [
    "ClusterResult",
    "DedupResult",
    "Duplicate",
    "Hit",
    "LightEmbed",
    "LightEmbedError",
    "ModelConfig",
    "ModelFormatError",
    "ModelNotFoundError",
    "SearchOptions",
    "Transform",
    "__version__",
    "load",
    "load_transform",
    "read_model",
    "save_transform",
    "write_model",
]
