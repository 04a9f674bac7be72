"""What runs after pooling: an affine projection, then a residual MLP adaptor `e + f(e)`.

The same tensors live inside a model folder (`model.safetensors`) or stand alone in a
transform file, which applies to embeddings from any source:

    transform = lightembed.load_transform("quora-projection.safetensors")
    fitted = transform.apply(vectors, dim=128)

A transform file is a safetensors file with `projection.weight` [out, in] and
`projection.bias` [out] and/or `adaptor.{i}.weight` / `adaptor.{i}.bias`, and the metadata
`format` = "lightembed-transform", `format_version` = "1", `activation` (the adaptor's) and
`normalize` ("true" when outputs are L2-normalised).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import ModelFormatError
from .scoring import unit_rows
from .tensorfile import read_tensor_file, write_tensor_file

TRANSFORM_FORMAT = "lightembed-transform"
TRANSFORM_VERSION = "1"
FLOAT_DTYPES = (np.float16, np.float32)

Layer = tuple[np.ndarray, np.ndarray]  # (weight [out, in], bias [out])


def _gelu(x: np.ndarray) -> np.ndarray:
    """The tanh approximation of GELU (torch's `approximate="tanh"`)."""
    return 0.5 * x * (1.0 + np.tanh(0.7978845608028654 * (x + 0.044715 * x**3)))


ACTIVATION_FUNCTIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "relu": lambda x: np.maximum(x, 0.0),
    "gelu": _gelu,
    "tanh": np.tanh,
}


@dataclass(frozen=True)
class Transform:
    """A projection `x W^T + b` (optional), then a residual MLP `e + f(e)` (optional)."""

    projection: Layer | None = None
    adaptor: tuple[Layer, ...] = ()
    activation: str = "relu"
    normalize: bool = False

    def __bool__(self) -> bool:
        return self.projection is not None or bool(self.adaptor)

    @property
    def in_dim(self) -> int | None:
        """Width of the vectors it takes (None for an empty transform)."""
        if self.projection is not None:
            return self.projection[0].shape[1]
        return self.adaptor[0][0].shape[1] if self.adaptor else None

    @property
    def out_dim(self) -> int | None:
        """Width of the vectors it gives before any truncation (None for an empty transform)."""
        if self.adaptor:
            return self.adaptor[-1][0].shape[0]
        return self.projection[0].shape[0] if self.projection is not None else None

    def apply(self, vectors: np.ndarray, dim: int | None = None) -> np.ndarray:
        """Transform rows [n, in_dim] (or one vector), keep the first `dim` columns, float32."""
        try:
            raw = np.asarray(vectors)
            raw = raw.astype(np.float64) if raw.dtype.kind == "O" else raw  # lists of numpy scalars, say
        except (ValueError, TypeError):  # ragged rows, or objects that are not numbers
            raise ValueError("expected vectors as a rectangular array of numbers") from None
        if raw.dtype.kind not in "biuf":
            raise TypeError(f"expected real-valued vectors, got {raw.dtype}")
        with np.errstate(over="ignore"):
            x = raw.astype(np.float32, copy=False)
        single = x.ndim == 1
        x = x.reshape(1, -1) if single else x
        if x.ndim != 2 or (self and x.shape[1] != self.in_dim):
            raise ValueError(f"expected vectors of shape [n, {self.in_dim}], got shape {np.shape(vectors)}")
        if not np.isfinite(x).all():
            if np.isfinite(raw.astype(np.float64, copy=False)).all():
                raise ValueError("vectors have values beyond float32's range")
            raise ValueError("vectors contain NaN or infinite values")
        width = self.out_dim or x.shape[1]
        if dim is not None and (
            isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or not 1 <= dim <= width
        ):
            raise ValueError(f"dim must be an integer between 1 and {width}, got {dim!r}")
        with np.errstate(over="ignore", invalid="ignore"):
            x = self.forward(x)[:, :dim]
        if not np.isfinite(x).all():
            raise ValueError("the transform overflows float32 on these vectors (values too large)")
        if self.normalize:
            x = unit_rows(x)
        out = np.ascontiguousarray(x, dtype=np.float32)
        return out[0] if single else out

    def forward(self, x: np.ndarray) -> np.ndarray:
        """The raw transform of float32 rows (no checks, no truncation, no normalisation)."""
        if self.projection is not None:
            weight, bias = self.projection
            x = x @ weight.T + bias
        if self.adaptor:
            h = x
            for i, (weight, bias) in enumerate(self.adaptor):
                h = h @ weight.T + bias
                if i < len(self.adaptor) - 1:
                    h = ACTIVATION_FUNCTIONS[self.activation](h)
            x = x + h
        return x

    def tensors(self) -> dict[str, np.ndarray]:
        """The tensors under the names a model folder and a transform file use."""
        out: dict[str, np.ndarray] = {}
        if self.projection is not None:
            out["projection.weight"], out["projection.bias"] = self.projection
        for i, (weight, bias) in enumerate(self.adaptor):
            out[f"adaptor.{i}.weight"], out[f"adaptor.{i}.bias"] = weight, bias
        return {name: np.ascontiguousarray(value, dtype=np.float32) for name, value in out.items()}


def transform_keys(projection: bool, adaptor_layers: int) -> set[str]:
    """The tensor names of a transform with these parts."""
    keys = {"projection.weight", "projection.bias"} if projection else set()
    for i in range(adaptor_layers):
        keys |= {f"adaptor.{i}.weight", f"adaptor.{i}.bias"}
    return keys


def parse_transform(
    tensors: Mapping[str, np.ndarray],
    in_dim: int | None,
    *,
    projection: bool,
    adaptor_layers: int,
    activation: str,
    normalize: bool,
    where: str,
) -> Transform:
    """Validate the projection/adaptor tensors of `tensors` and chain their shapes from `in_dim`."""
    if activation not in ACTIVATION_FUNCTIONS:
        raise ModelFormatError(f"{where}: activation {activation!r} is not one of {tuple(ACTIVATION_FUNCTIONS)}")
    layer = None
    width = in_dim
    if projection:
        layer = _layer(tensors, "projection", width, where)
        width = layer[0].shape[0]
    adaptor = []
    size = width
    for i in range(adaptor_layers):
        adaptor.append(_layer(tensors, f"adaptor.{i}", size, where))
        size = adaptor[-1][0].shape[0]
    if adaptor and width is None:
        width = adaptor[0][0].shape[1]
    if adaptor and size != width:
        raise ModelFormatError(f"{where}: the adaptor's last layer gives {size} dims, expected {width}")
    return Transform(layer, tuple(adaptor), activation, normalize)


def save_transform(path: str | Path, transform: Transform, metadata: Mapping[str, str] | None = None) -> Path:
    """Write a standalone transform file and check that it reads back.

    `metadata` adds string entries (e.g. how the transform was made) to the file's header;
    the reader ignores them.
    """
    if not transform:
        raise ValueError("an empty transform has nothing to save")
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path}: is a folder, expected a transform file path (.safetensors)")
    tensors = transform.tensors()
    broken = sorted(name for name, value in tensors.items() if not np.isfinite(value).all())
    if broken:
        raise ValueError(f"{path}: not written: {broken} hold NaN or infinite values")
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = {
        **{str(key): str(value) for key, value in (metadata or {}).items()},
        "format": TRANSFORM_FORMAT,
        "format_version": TRANSFORM_VERSION,
        "activation": transform.activation,
        "normalize": "true" if transform.normalize else "false",
    }
    write_tensor_file(path, tensors, metadata)
    load_transform(path)
    return path


def load_transform(path: str | Path) -> Transform:
    """Read and validate a transform file (safetensors only; nothing is unpickled)."""
    path = Path(path)
    where = str(path)
    metadata, tensors = read_tensor_file(path, TRANSFORM_FORMAT, TRANSFORM_VERSION)
    if metadata.get("normalize", "false") not in ("true", "false"):
        raise ModelFormatError(f"{where}: metadata 'normalize' must be 'true' or 'false'")
    projection = any(key.startswith("projection.") for key in tensors)
    layers = len({m.group(1) for key in tensors if (m := re.fullmatch(r"adaptor\.(\d+)\.(weight|bias)", key))})
    expected = transform_keys(projection, layers)
    if set(tensors) != expected:
        missing, extra = sorted(expected - set(tensors)), sorted(set(tensors) - expected)
        named = "; ".join(f"{what} {names}" for what, names in (("missing", missing), ("unexpected", extra)) if names)
        raise ModelFormatError(f"{where}: {named} (tensors: {sorted(tensors)})")
    if not expected:
        raise ModelFormatError(f"{where}: holds neither a projection nor an adaptor")
    return parse_transform(
        tensors,
        None,
        projection=projection,
        adaptor_layers=layers,
        activation=metadata.get("activation", "relu"),
        normalize=metadata.get("normalize") == "true",
        where=where,
    )


def _layer(tensors: Mapping[str, np.ndarray], name: str, in_dim: int | None, where: str) -> Layer:
    weight = finite_float_tensor(tensors, f"{name}.weight", where)
    if weight.ndim != 2 or 0 in weight.shape or (in_dim is not None and weight.shape[1] != in_dim):
        wanted = "non-empty [out, in]" if in_dim is None else f"[out, {in_dim}]"
        raise ModelFormatError(f"{where}: '{name}.weight' must be {wanted}, got {weight.shape}")
    bias = finite_float_tensor(tensors, f"{name}.bias", where, (weight.shape[0],))
    return weight, bias


def finite_float_tensor(
    tensors: Mapping[str, np.ndarray], key: str, where: str, shape: tuple[int, ...] | None = None
) -> np.ndarray:
    """Tensor `key` as float32, checked to be float16/32, finite, and of `shape` when given."""
    if key not in tensors:
        raise ModelFormatError(f"{where}: tensor {key!r} is missing")
    value = tensors[key]
    if value.dtype not in FLOAT_DTYPES:
        raise ModelFormatError(f"{where}: {key!r} has dtype {value.dtype}; expected float16 or float32")
    if shape is not None and value.shape != shape:
        raise ModelFormatError(f"{where}: {key!r} has shape {value.shape}, expected {shape}")
    if not np.isfinite(value).all():
        raise ModelFormatError(f"{where}: {key!r} contains NaN or infinite values")
    return value.astype(np.float32)
