"""Distil a static codebook from a sentence-transformer teacher.

Steps: every vocabulary token goes through the teacher as `[CLS] token [SEP]` and its
pooled sentence vector becomes the token's row; PCA rotates the rows so that columns are
ordered by variance (a Matryoshka truncation is then a column slice) and keeps `dim` of
them; SIF frequency weights `a / (a + p(token))` are multiplied into the rows; special
tokens get zero rows. The result is written as a lightembed model folder.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import math
import re
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from tokenizers import Tokenizer
from tqdm.auto import tqdm

from lightembed.config import ModelConfig
from lightembed.folder import write_model

from .checks import numbered_lines
from .teacher import Teacher

logger = logging.getLogger(__name__)

DTYPES = ("float16", "float32", "int8")
MATRYOSHKA_DIMS = (32, 64, 128, 256)
SIF_A = 1e-3
_SPECIAL_NAMES = frozenset({"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"})
_UNUSED = re.compile(r"^(\[unused\d+\]|<unused\d+>)$")
_COUNT_BATCH = 8192


class PCAResult(NamedTuple):
    """Rows projected on the principal axes, the axes [dim, features] and the mean removed."""

    projected: np.ndarray
    components: np.ndarray
    mean: np.ndarray


def load_tokenizer(path: str | Path) -> Tokenizer:
    """A tokenizers file with padding and truncation turned off (the runtime sets its own cap)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: tokenizer file not found")
    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return tokenizer


def special_token_ids(tokenizer: Tokenizer) -> np.ndarray:
    """Sorted ids of the special tokens: added tokens marked special, BERT's named specials, [unusedN]."""
    ids = {i for i, token in tokenizer.get_added_tokens_decoder().items() if token.special}
    for token, i in tokenizer.get_vocab(with_added_tokens=True).items():
        if token in _SPECIAL_NAMES or _UNUSED.match(token):
            ids.add(i)
    return np.array(sorted(ids), dtype=np.int64)


def token_embeddings(
    teacher: Teacher, tokenizer_json_path: str | Path, batch_size: int = 1024, progress: bool = True
) -> np.ndarray:
    """One teacher vector per token id of the tokenizer: the pooled, unnormalised `[CLS] t [SEP]` [V, H]."""
    tokenizer = load_tokenizer(tokenizer_json_path)
    vocab_size = tokenizer.get_vocab_size(with_added_tokens=True)
    if vocab_size > teacher.vocab_size:
        raise ValueError(
            f"{tokenizer_json_path}: {vocab_size} tokens, but the teacher embeds only {teacher.vocab_size}"
        )
    logger.info("embedding %d vocabulary tokens with the teacher", vocab_size)
    return teacher.token_vectors(np.arange(vocab_size), batch_size=batch_size, progress=progress)


def pca(x: np.ndarray, dim: int) -> PCAResult:
    """PCA in float64 via the covariance eigendecomposition; columns by decreasing variance.

    Signs are fixed so that the largest-magnitude entry of each component is positive.
    """
    data = np.asarray(x, dtype=np.float64)
    if data.ndim != 2:
        raise ValueError(f"pca expects a 2-D matrix, got shape {data.shape}")
    n, features = data.shape
    if n < 2:
        raise ValueError(f"pca needs at least 2 rows, got {n}")
    if not 1 <= dim <= features:
        raise ValueError(f"pca dim must be between 1 and {features} (the input width), got {dim}")
    mean = data.mean(axis=0)
    centered = data - mean
    covariance = centered.T @ centered / (n - 1)
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)
    order = np.argsort(eigenvalues, kind="stable")[::-1][:dim]
    components = eigenvectors[:, order].T.copy()
    pivots = components[np.arange(dim), np.abs(components).argmax(axis=1)]
    components *= np.where(pivots < 0, -1.0, 1.0)[:, None]
    return PCAResult(centered @ components.T, components, mean)


def sif_weights(probabilities: np.ndarray, a: float = SIF_A) -> np.ndarray:
    """Smooth inverse frequency weights `a / (a + p)` (Arora et al., as model2vec uses them)."""
    if not a > 0:
        raise ValueError(f"the SIF coefficient must be positive, got {a}")
    p = np.asarray(probabilities, dtype=np.float64)
    if not np.isfinite(p).all() or (p < 0).any() or (p > 1).any():
        raise ValueError("token probabilities must be finite and between 0 and 1")
    return a / (a + p)


def count_tokens(
    corpus_files: Sequence[str | Path], tokenizer: Tokenizer, vocab_size: int, progress: bool = True
) -> np.ndarray:
    """Token counts [V] over plain-text files (one text per line), without special tokens."""
    counts = np.zeros(vocab_size, dtype=np.int64)
    for path in corpus_files:
        for lines in tqdm(
            _line_batches(Path(path)),
            desc=f"counting {Path(path).name}",
            unit="batch",
            file=sys.stderr,
            disable=not progress,
        ):
            encodings = tokenizer.encode_batch_fast(lines, add_special_tokens=False)
            ids = np.fromiter((i for e in encodings for i in e.ids), dtype=np.int64)
            if ids.size:
                counts += np.bincount(ids, minlength=vocab_size)[:vocab_size]
    return counts


def corpus_probabilities(counts: np.ndarray) -> np.ndarray:
    """Token probabilities from counts with add-one smoothing."""
    c = np.asarray(counts, dtype=np.float64)
    return (c + 1.0) / (c.sum() + c.size)


def zipf_probabilities(vocab_size: int) -> np.ndarray:
    """Zipf estimate p(rank) proportional to 1/rank, with the token id standing in for the rank.

    Used when no corpus is given. WordPiece vocabularies are roughly, not exactly, sorted by
    frequency after their special and single-character entries, so this is a crude proxy.
    """
    inverse_rank = 1.0 / np.arange(1, vocab_size + 1, dtype=np.float64)
    return inverse_rank / inverse_rank.sum()


def distill(
    teacher_path: str | Path | None,
    out_folder: str | Path,
    dim: int = 256,
    corpus_files: Sequence[str | Path] = (),
    dtype: str = "float16",
    max_length: int = 512,
    *,
    sif_a: float = SIF_A,
    device: str | None = None,
    batch_size: int = 1024,
    progress: bool = True,
    command: str | None = None,
) -> Path:
    """Distil the teacher at `teacher_path` (None: the packaged all-MiniLM-L6-v2) into `out_folder`.

    `command` is the command line recorded in the model card and config provenance.
    """
    started = time.perf_counter()
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    if dim < 1 or max_length < 1 or batch_size < 1:
        raise ValueError(f"dim, max_length and batch_size must be positive, got {dim}, {max_length} and {batch_size}")
    if not (math.isfinite(sif_a) and sif_a > 0):
        raise ValueError(f"the SIF coefficient must be a positive number, got {sif_a}")
    corpus_paths = [Path(p) for p in corpus_files]
    for path in corpus_paths:
        if not path.is_file():
            raise FileNotFoundError(f"{path}: corpus file not found")

    teacher = Teacher(teacher_path, device=device)
    tokenizer_path = teacher.model_dir / "tokenizer.json"
    if not tokenizer_path.is_file():
        raise FileNotFoundError(f"{tokenizer_path}: the teacher has no tokenizer.json")
    if dim > teacher.hidden_size:
        raise ValueError(f"dim {dim} exceeds the teacher's hidden size {teacher.hidden_size}")
    tokenizer = load_tokenizer(tokenizer_path)
    vocab_size = tokenizer.get_vocab_size(with_added_tokens=True)
    corpus_info: list[dict[str, Any]] = []
    if corpus_paths:  # counted first: a corpus without tokens fails before the teacher's pass
        counts = count_tokens(corpus_paths, tokenizer, vocab_size, progress=progress)
        if not counts.any():
            raise ValueError(f"the corpus files {[str(p) for p in corpus_paths]} hold no tokens")
        probabilities = corpus_probabilities(counts)
        corpus_info = [describe_corpus(path) for path in corpus_paths]
        frequency = {"source": "corpus", "tokens": int(counts.sum()), "distinct_tokens": int((counts > 0).sum())}
    else:
        probabilities = zipf_probabilities(vocab_size)
        frequency = {"source": "zipf (token id as rank)"}
    vectors = token_embeddings(teacher, tokenizer_path, batch_size=batch_size, progress=progress)

    special = special_token_ids(tokenizer)
    regular = np.ones(vocab_size, dtype=bool)
    regular[special] = False
    logger.info("PCA of %d token vectors to %d dims (%d special tokens left out)", regular.sum(), dim, special.size)
    fit = pca(vectors[regular], dim)
    explained = float(fit.projected.var(axis=0).sum() / vectors[regular].astype(np.float64).var(axis=0).sum())
    codebook = (vectors.astype(np.float64) - fit.mean) @ fit.components.T

    weights = sif_weights(probabilities, sif_a)
    codebook *= weights[:, None]
    codebook[special] = 0.0
    table, extra = stored_codebook(codebook, dtype)

    ignore = sorted({i for i in (teacher.tokenizer.unk_token_id, teacher.tokenizer.pad_token_id) if i is not None})
    seconds = round(time.perf_counter() - started, 1)
    provenance: dict[str, Any] = {
        "method": "distill",
        "teacher": teacher.name,
        "teacher_license": teacher.license,
        "teacher_pooling": teacher.pipeline.pooling,
        "command": command,
        "corpus_files": corpus_info,
        "frequency": frequency,
        "sif_a": sif_a,
        "pca_dim": dim,
        "dtype": dtype,
        "pca_explained_variance": round(explained, 4),
        "special_token_rows_zeroed": int(special.size),
        "seconds": seconds,
        "device": str(teacher.device),
        "versions": versions(),
    }
    config = ModelConfig(
        dim=dim,
        vocab_size=vocab_size,
        normalize=True,
        max_length=max_length,
        matryoshka_dims=tuple(d for d in MATRYOSHKA_DIMS if d <= dim),
        ignore_token_ids=tuple(ignore),
        provenance=provenance,
    )
    card = model_card(config, teacher_max_length=teacher.max_length)
    folder = write_model(out_folder, config, table, tokenizer, extra, card=card)
    logger.info("wrote %s (%d x %d %s) in %.1f s", folder, vocab_size, dim, dtype, seconds)
    return folder


def stored_codebook(table: np.ndarray, dtype: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The codebook as written: (embeddings, extra tensors) in float16, float32, or int8 with a scale per row.

    int8 rows are `round(row / scale)` with `scale = max |row| / 127` (1 for an all-zero row),
    stored as `embeddings_scale` [vocab]; the reader multiplies them back. The rounding error of
    each value is at most half its row's scale.
    """
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    values = np.asarray(table, dtype=np.float32)
    if not np.isfinite(values).all():
        raise ValueError("the codebook holds NaN or infinite values (when training diverged: lower the learning rate)")
    if dtype != "int8":
        with np.errstate(over="ignore"):  # an overflow is reported just below, by name
            stored = values.astype(dtype)
        if not np.isfinite(stored).all():
            raise ValueError(
                f"the codebook overflows {dtype} (its largest value is {np.abs(values).max():.3g}): use "
                f"dtype='float32' or 'int8', or, when training diverged, a lower learning rate"
            )
        return stored, {}
    peak = np.abs(values).max(axis=1)
    scale = np.where(peak > 0, peak / 127.0, 1.0).astype(np.float32)
    codes = np.clip(np.rint(values / scale[:, None]), -127, 127).astype(np.int8)
    return codes, {"embeddings_scale": scale}


def storage_note(dtype: str | None) -> str:
    """How the model card names the codebook's storage type."""
    return "int8 with a scale per row (`embeddings_scale`)" if dtype == "int8" else str(dtype)


def model_card(config: ModelConfig, teacher_max_length: int | None = None) -> str:
    """The README.md of a distilled model folder, from its config and provenance."""
    p = config.provenance
    freq = p.get("frequency", {})
    if p.get("corpus_files"):
        lines = []
        for info in p["corpus_files"]:
            lines.append(f"- `{info['name']}`: {info['lines']} lines, sha256 `{info['sha256'][:16]}…`")
            meta = info.get("meta") or {}
            if meta.get("command"):
                lines.append(f"  - made with: `{meta['command']}`")
            for source in meta.get("sources", []):
                lines.append(
                    f"  - {source.get('file')}: {source.get('texts')} texts ({source.get('licence', 'see data README')})"
                )
        data = (
            f"Token frequencies were counted on {freq.get('tokens')} tokens "
            f"({freq.get('distinct_tokens')} distinct) of these plain-text files, with add-one smoothing:\n\n"
            + "\n".join(lines)
        )
    else:
        data = "No corpus was given: token probabilities follow a Zipf law with the token id as the rank."
    versions = ", ".join(f"{k} {v}" for k, v in p.get("versions", {}).items())
    teacher_kind = f"a sentence-transformer with {p.get('teacher_pooling', 'mean')} pooling"
    if teacher_max_length:
        teacher_kind += f" and max_seq_length {teacher_max_length}"
    return f"""# lightembed static embedding model

A static token codebook for lightembed: {config.vocab_size} tokens x
{config.dim} dims, mean pooled and L2-normalised at inference (numpy only, no torch).
Matryoshka sizes: {", ".join(map(str, config.matryoshka_dims)) or "none"} (column slices).

## Provenance

- Teacher: `{p.get("teacher")}` (licence: {p.get("teacher_license") or "see the teacher card"}),
  {teacher_kind}.
  The tokenizer is the teacher's WordPiece tokenizer (padding and truncation off).
- Command:

  ```
  {p.get("command") or "(called from Python)"}
  ```

- Time taken: {p.get("seconds")} s on {p.get("device")}.
- Versions: {versions}.

## How it was made

1. Every vocabulary token was run through the teacher as the one-token sentence
   `[CLS] token [SEP]`; the teacher's pooled output (before any normalisation)
   is the token's vector.
2. PCA (fit on the non-special tokens) rotated and cut the vectors to {config.dim} dims, columns
   ordered by decreasing variance; it keeps {p.get("pca_explained_variance")} of the variance.
3. Smooth-inverse-frequency weights `a / (a + p(token))` with a = {p.get("sif_a")} were multiplied
   into the rows.
4. Special tokens ([PAD], [UNK], [CLS], [SEP], [MASK], [unusedN]; {p.get("special_token_rows_zeroed")} rows)
   got zero rows; [UNK] and [PAD] are also skipped when pooling.
5. Stored as {storage_note(p.get("dtype"))} (`model.safetensors`, key `embeddings`).

## Frequency data

{data}

## What to expect

A plain distillation: much faster than the teacher, and clearly less accurate than it.
Word order and context are lost; the vectors score topical and lexical similarity best.
"""


def _line_batches(path: Path) -> Iterator[list[str]]:
    batch: list[str] = []
    for _, line in numbered_lines(path, "corpus"):
        text = line.strip()
        if text:
            batch.append(text)
            if len(batch) == _COUNT_BATCH:
                yield batch
                batch = []
    if batch:
        yield batch


def describe_corpus(path: Path) -> dict[str, Any]:
    """Name, line count, checksum and the sidecar `<file>.meta.json` (when present) of a corpus file."""
    digest = hashlib.sha256()
    lines = 0
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
            lines += chunk.count(b"\n")
    info: dict[str, Any] = {"name": path.name, "lines": lines, "sha256": digest.hexdigest()}
    meta_path = path.with_name(path.name + ".meta.json")
    if meta_path.is_file():
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            logger.warning("%s: ignoring unreadable corpus metadata (%s)", meta_path, exc)
        else:
            if _is_corpus_meta(meta):
                info["meta"] = meta
            else:
                logger.warning(
                    "%s: ignoring corpus metadata that is not an object with a 'command' string and 'sources' "
                    "objects (as benchmarks/make_frequency_corpus.py writes)",
                    meta_path,
                )
    return info


def _is_corpus_meta(meta: object) -> bool:
    """Whether a sidecar holds what the model card reads: an object, its command a string, its sources objects."""
    if not isinstance(meta, dict):
        return False
    sources = meta.get("sources", [])
    command = meta.get("command")
    return isinstance(sources, list) and all(isinstance(s, dict) for s in sources) and isinstance(command, str | None)


def versions() -> dict[str, str]:
    """Versions of the packages that shape a trained model, for its provenance."""
    out = {}
    for package in ("lightembed", "torch", "transformers", "tokenizers", "numpy"):
        try:
            out[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            out[package] = _module_version(package)
    return out


def _module_version(package: str) -> str:
    try:
        module = __import__(package)
    except ImportError:
        return "unknown"
    return str(getattr(module, "__version__", "unknown"))
