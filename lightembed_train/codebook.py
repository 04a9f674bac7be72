"""The base model's codebook tensors, for writing a model folder derived from it."""

from __future__ import annotations

import numpy as np
from safetensors import safe_open

from lightembed import LightEmbed
from lightembed.folder import WEIGHTS_FILE


def base_tensors(model: LightEmbed) -> dict[str, np.ndarray]:
    """The tensors of a lightembed base as stored (an int8 codebook stays int8); for another kind of folder
    (model2vec, WordLlama), the per-token rows as the reader sees them (weights and a vocabulary mapping applied).
    """
    parts = model.parts
    if model.config.source == "lightembed":
        with safe_open(str(parts.path / WEIGHTS_FILE), framework="numpy") as handle:
            return {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118 (not a dict)
    table = np.asarray(parts.embeddings)  # float16 stays float16 unless rows must be combined
    if parts.token_rows is not None:
        table = table[parts.token_rows]
    if parts.token_weights is not None:
        table = table.astype(np.float32) * parts.token_weights[:, None].astype(np.float32)
    return {"embeddings": table}
