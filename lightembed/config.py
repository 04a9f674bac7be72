"""The `config.json` of a lightembed model folder: parsing, validation and defaults."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from .errors import ModelFormatError

FORMAT_NAME = "lightembed"
FORMAT_VERSION = 1
ACTIVATIONS = ("relu", "gelu", "tanh")
MAX_LENGTH_LIMIT = 1 << 24  # tokens per text: far above any real cap, low enough for the tokenizer's integers
MAX_ADAPTOR_LAYERS = 64


@dataclass(frozen=True)
class AdaptorConfig:
    """A residual MLP `e + f(e)` applied after pooling (Matryoshka-Adaptor)."""

    layers: int
    activation: str = "relu"


@dataclass(frozen=True)
class ModelConfig:
    """Everything the runtime needs to know besides the tensors themselves."""

    dim: int
    vocab_size: int
    normalize: bool = True
    pooling: str = "mean"
    max_length: int = 512
    matryoshka_dims: tuple[int, ...] = ()
    add_special_tokens: bool = False
    ignore_token_ids: tuple[int, ...] = ()
    token_weights: bool = False
    projection: bool = False
    adaptor: AdaptorConfig | None = None
    binary_codebook: bool = False
    reranker: bool = False
    source: str = FORMAT_NAME
    provenance: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready form written to `config.json`."""
        out: dict[str, Any] = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, AdaptorConfig):
                value = dataclasses.asdict(value)
            out[f.name] = value
        del out["source"]
        return out

    @classmethod
    def from_dict(cls, raw: Any, where: str) -> ModelConfig:
        """Parse and validate a lightembed `config.json` (already decoded); `where` names the file."""
        if not isinstance(raw, dict):
            raise ModelFormatError(f"{where}: expected a JSON object, got {type(raw).__name__}")
        if raw.get("format") != FORMAT_NAME:
            raise ModelFormatError(f"{where}: 'format' must be {FORMAT_NAME!r}, got {raw.get('format')!r}")
        version = raw.get("format_version")
        if not _is_int(version) or version != FORMAT_VERSION:
            raise ModelFormatError(
                f"{where}: unsupported format_version {version!r} (this lightembed reads {FORMAT_VERSION})"
            )
        known = {f.name for f in dataclasses.fields(cls)} - {"source"}
        unknown = set(raw) - known - {"format", "format_version"}
        if unknown:
            raise ModelFormatError(f"{where}: unknown keys {sorted(unknown)}")
        values = {k: raw[k] for k in known if k in raw}
        for required in ("dim", "vocab_size"):
            if required not in values:
                raise ModelFormatError(f"{where}: missing required key {required!r}")
        adaptor = values.get("adaptor")
        if adaptor is not None:
            if not isinstance(adaptor, dict) or not _is_int(adaptor.get("layers")):
                raise ModelFormatError(f"{where}: 'adaptor' must be an object with an integer 'layers'")
            values["adaptor"] = AdaptorConfig(layers=adaptor["layers"], activation=adaptor.get("activation", "relu"))
        for key in ("matryoshka_dims", "ignore_token_ids"):
            if key in values:
                if not isinstance(values[key], list):
                    raise ModelFormatError(f"{where}: {key!r} must be a list, got {values[key]!r}")
                values[key] = tuple(values[key])
        config = cls(**values)
        config.validate(where)
        return config

    def validate(self, where: str) -> None:
        """Raise ModelFormatError naming `where` when a value is out of range or of the wrong type."""
        for name in ("dim", "vocab_size", "max_length"):
            value = getattr(self, name)
            if not _is_int(value) or value < 1:
                raise ModelFormatError(f"{where}: {name!r} must be a positive integer, got {value!r}")
        if self.max_length > MAX_LENGTH_LIMIT:
            raise ModelFormatError(f"{where}: 'max_length' must be at most {MAX_LENGTH_LIMIT}, got {self.max_length}")
        for name in ("normalize", "add_special_tokens", "token_weights", "projection", "binary_codebook", "reranker"):
            if not isinstance(getattr(self, name), bool):
                raise ModelFormatError(f"{where}: {name!r} must be true or false, got {getattr(self, name)!r}")
        if self.pooling != "mean":
            raise ModelFormatError(f"{where}: unsupported pooling {self.pooling!r} (only 'mean')")
        for d in self.matryoshka_dims:
            if not _is_int(d) or not 1 <= d <= self.dim:
                raise ModelFormatError(f"{where}: matryoshka dim {d!r} is not between 1 and dim={self.dim}")
        for t in self.ignore_token_ids:
            if not _is_int(t) or not 0 <= t < self.vocab_size:
                raise ModelFormatError(f"{where}: ignore_token_ids entry {t!r} is outside the vocabulary")
        if self.adaptor is not None:
            if not 1 <= self.adaptor.layers <= MAX_ADAPTOR_LAYERS:
                raise ModelFormatError(
                    f"{where}: adaptor 'layers' must be between 1 and {MAX_ADAPTOR_LAYERS}, got {self.adaptor.layers}"
                )
            if self.adaptor.activation not in ACTIVATIONS:
                raise ModelFormatError(
                    f"{where}: adaptor activation {self.adaptor.activation!r} is not one of {ACTIVATIONS}"
                )
        if not isinstance(self.provenance, dict) or not isinstance(self.metrics, dict):
            raise ModelFormatError(f"{where}: 'provenance' and 'metrics' must be JSON objects")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
