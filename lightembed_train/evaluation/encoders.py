"""Encoders the suite can measure: lightembed model folders and the peers it is compared with.

Each peer library is imported only when its encoder is built, so a missing one fails with an
install hint for that encoder alone. Nothing here touches the network.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
from importlib.metadata import version
from pathlib import Path

import numpy as np

from lightembed.binary import unpack_signs

from .base import Encoder

logger = logging.getLogger(__name__)

WORDLLAMA_CONFIG = "l2_supercat"
WORDLLAMA_FULL_DIM = 256
_DIGEST_FILES = ("config.json", "model.safetensors", "tokenizer.json", "modules.json", "model.safetensors.index.json")


def folder_digest(path: Path) -> str:
    """First 16 hex digits of a sha256 over a model's weight, config and tokenizer files (or over one file)."""
    digest = hashlib.sha256()
    files = [path] if path.is_file() else [path / name for name in _DIGEST_FILES if (path / name).is_file()]
    if path.is_dir():
        files += sorted(path.glob("model-*-of-*.safetensors"))  # the shards of a sharded model
    for file in files:
        digest.update(file.name.encode())
        with file.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()[:16]


def _require(module: str, package: str) -> None:
    from importlib.util import find_spec

    if find_spec(module) is None:
        raise ImportError(f"this encoder needs {package}: pip install {package} (or pip install 'lightembed[bench]')")


class LightEmbedEncoder:
    """A lightembed model (the bundled default, a folder or a codebook file), optionally truncated to `dim`.

    With `binary=True`, its binary codes at `dim` bits as ±1 vectors (their cosine is the Hamming
    similarity): the sign bits of the pooled binary codebook when the folder has one, else the
    plain sign of the float vector's first `dim` columns.
    """

    def __init__(
        self, model: str | Path | None = None, dim: int | None = None, name: str | None = None, binary: bool = False
    ) -> None:
        import lightembed
        from lightembed.resolve import resolve_model

        folder = resolve_model(model)
        self.model = lightembed.load(folder, dim=dim, binary=binary)
        label = "default" if model in (None, "default") else Path(model).name
        kind = ""
        if binary:
            kind = " trained" if self.model.parts.binary_embeddings is not None else " sign"
        self.name = name or f"lightembed {label}{kind}@{self.model.dim}{'b' if binary else ''}"
        self.fingerprint = f"{folder_digest(folder)}-{'binary' if binary else ''}{self.model.dim}"

    def encode(self, texts: list[str]) -> np.ndarray:
        vectors = self.model.embed(texts)
        if self.model.binary:
            return unpack_signs(vectors, self.model.dim)
        return np.asarray(vectors, dtype=np.float32)


class SentenceTransformerEncoder:
    """A sentence-transformers model folder, run by sentence-transformers itself (the reference)."""

    def __init__(self, path: str | Path, name: str | None = None, device: str = "cpu", batch_size: int = 64) -> None:
        _require("sentence_transformers", "sentence-transformers")
        from sentence_transformers import SentenceTransformer

        folder = Path(path)
        self.model = SentenceTransformer(str(folder), device=device)
        self.batch_size = batch_size
        self.name = name or folder.name
        weights = folder / "model.safetensors"
        self.fingerprint = (
            f"st{version('sentence-transformers')}-{folder_digest(weights if weights.is_file() else folder)}"
        )

    def encode(self, texts: list[str]) -> np.ndarray:
        vectors = self.model.encode(texts, batch_size=self.batch_size, convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32)


def wordllama_cache(folder: Path) -> Path:
    """A WordLlama cache folder holding a copy of the tokenizer file that ships in the wordllama package.

    WordLlama looks for its bundled tokenizer in `wordllama/tokenizer/`, a folder that does not
    exist, so offline it only finds the file in `cache_dir/tokenizers/`.
    """
    _require("wordllama", "wordllama")
    import wordllama

    name = f"{WORDLLAMA_CONFIG}_tokenizer_config.json"
    target = folder / "tokenizers" / name
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(wordllama.__file__).parent / "tokenizers" / name, target)
    return folder


class WordLlamaEncoder:
    """WordLlama l2_supercat: the packaged 256-dim codebook, Matryoshka-truncated to `dim` (its `trunc_dim`)."""

    def __init__(self, dim: int, cache_dir: Path) -> None:
        _require("wordllama", "wordllama")
        from wordllama import WordLlama

        trunc_dim = None if dim == WORDLLAMA_FULL_DIM else dim
        self.model = WordLlama.load(
            WORDLLAMA_CONFIG,
            dim=WORDLLAMA_FULL_DIM,
            trunc_dim=trunc_dim,
            cache_dir=wordllama_cache(cache_dir),
            disable_download=True,
        )
        self.name = f"WordLlama {WORDLLAMA_CONFIG}@{dim}"
        self.fingerprint = f"wordllama{version('wordllama')}-{WORDLLAMA_CONFIG}-{dim}"

    def encode(self, texts: list[str]) -> np.ndarray:
        return np.asarray(self.model.embed(texts, norm=True), dtype=np.float32)


def distill_model2vec(teacher: Path, out: Path, pca_dims: int) -> Path:
    """model2vec's own distillation of `teacher` (a local folder) with PCA to `pca_dims`, saved to `out` once.

    `model2vec[distill]` pins an older transformers and tokenizers than lightembed is measured
    with, so the folder is best made once in a separate virtual environment (benchmarks/README.md
    gives the command); when `out` already holds it, nothing is imported.
    """
    if (out / "model.safetensors").is_file():
        return out
    try:
        from model2vec.distill import distill
    except ImportError as exc:
        raise ImportError(
            f"{out} does not exist and model2vec's distillation is not installed ({exc}); "
            "make the folder with model2vec[distill] as benchmarks/README.md shows"
        ) from None

    logger.info("distilling %s with model2vec (pca_dims=%d) into %s", teacher, pca_dims, out)
    distill(model_name=str(teacher), pca_dims=pca_dims).save_pretrained(str(out))
    return out


class Model2VecEncoder:
    """A model2vec static model folder, run by model2vec."""

    def __init__(self, folder: Path, name: str | None = None) -> None:
        _require("model2vec", "model2vec")
        from model2vec import StaticModel

        self.model = StaticModel.from_pretrained(str(folder))
        self.name = name or f"model2vec {folder.name}"
        self.fingerprint = f"model2vec{version('model2vec')}-{folder_digest(folder)}"

    def encode(self, texts: list[str]) -> np.ndarray:
        return np.asarray(self.model.encode(texts), dtype=np.float32)


class SimHashEncoder:
    """Sign bits of a seeded random Gaussian projection of another encoder's vectors (SimHash), as ±1 vectors.

    The usual baseline for binary codes of any length, also longer than the float width.
    """

    def __init__(self, inner: Encoder, bits: int, seed: int = 0) -> None:
        if bits < 1:
            raise ValueError(f"bits must be positive, got {bits}")
        self.inner = inner
        self.bits = bits
        self.seed = seed
        self.name = f"{inner.name} simhash@{bits}b"
        self.fingerprint = f"{inner.fingerprint}-simhash{bits}-seed{seed}"

    def encode(self, texts: list[str]) -> np.ndarray:
        vectors = self.inner.encode(texts)
        planes = np.random.default_rng(self.seed).standard_normal((vectors.shape[1], self.bits)).astype(np.float32)
        return np.where(vectors @ planes > 0, 1.0, -1.0).astype(np.float32)


class TruncatedEncoder:
    """Another encoder's vectors cut to their first `dim` columns (a Matryoshka-style truncation)."""

    def __init__(self, inner: Encoder, dim: int) -> None:
        if dim < 1:
            raise ValueError(f"dim must be positive, got {dim}")
        self.inner = inner
        self.dim = dim
        self.name = f"{inner.name} [:{dim}]"
        self.fingerprint = f"{inner.fingerprint}-cut{dim}"

    def encode(self, texts: list[str]) -> np.ndarray:
        vectors = self.inner.encode(texts)
        if vectors.shape[1] < self.dim:
            raise ValueError(f"{self.inner.name} gives {vectors.shape[1]} dims, fewer than {self.dim}")
        return np.ascontiguousarray(vectors[:, : self.dim])


class TransformedEncoder:
    """Another encoder's vectors passed through a transform file (`lightembed.load_transform`)."""

    def __init__(self, inner: Encoder, path: str | Path) -> None:
        from lightembed.transform import load_transform

        self.inner = inner
        self.path = Path(path)
        self.transform = load_transform(self.path)
        self.name = f"{inner.name} + {self.path.stem}"
        self.fingerprint = f"{inner.fingerprint}-t{folder_digest(self.path)}"

    def encode(self, texts: list[str]) -> np.ndarray:
        return self.transform.apply(self.inner.encode(texts))
