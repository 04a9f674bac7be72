"""Teacher sentence embeddings of a text corpus, computed once and kept on disk.

The teacher's forward pass is by far the slowest step of tuning on a CPU (about 150 texts/s
for all-MiniLM-L6-v2 on 2 cores), so its vectors are cached as a `.npy` file named after a
digest of the teacher's weights and of the texts. A changed corpus or teacher misses the cache.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .checks import numbered_lines
from .teacher import Teacher

logger = logging.getLogger(__name__)

_SETUP_FILES = ("config.json", "tokenizer.json")  # hashed after the weight files


def read_corpus(paths: Sequence[str | Path]) -> list[str]:
    """The distinct non-empty lines of plain-text files (whitespace collapsed), in first-seen order."""
    seen: dict[str, None] = {}
    for path in paths:
        for _, line in numbered_lines(path, "corpus"):
            text = " ".join(line.split())
            if text:
                seen.setdefault(text, None)
    if not seen:
        raise ValueError(f"the corpus {[str(p) for p in paths]} holds no text")
    return list(seen)


def corpus_sample(paths: Sequence[str | Path], max_texts: int | None, seed: int) -> list[str]:
    """The texts of `read_corpus(paths)`, or a seeded random sample of `max_texts` of them, in corpus order."""
    if max_texts is not None and (isinstance(max_texts, bool) or not isinstance(max_texts, int) or max_texts < 1):
        raise ValueError(f"max_texts must be a positive integer, got {max_texts!r}")
    texts = read_corpus(paths)
    if max_texts is not None and max_texts < len(texts):
        keep = np.sort(np.random.default_rng(seed).choice(len(texts), size=max_texts, replace=False))
        texts = [texts[i] for i in keep]
    return texts


def texts_digest(texts: Sequence[str]) -> str:
    """A short sha256 digest of the texts and their order."""
    digest = hashlib.sha256(str(len(texts)).encode())
    for text in texts:
        digest.update(b"\x00" + text.encode("utf-8", "surrogatepass"))
    return digest.hexdigest()[:16]


def teacher_digest(teacher: Teacher) -> str:
    """A short sha256 digest of the teacher's weight, config and tokenizer files."""
    digest = hashlib.sha256(teacher.name.encode())
    for path in [*teacher.weight_files, *(teacher.model_dir / name for name in _SETUP_FILES)]:
        if path.is_file():
            digest.update(path.name.encode())
            with path.open("rb") as handle:
                for chunk in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(chunk)
    return digest.hexdigest()[:16]


def teacher_embeddings(
    teacher: Teacher, texts: Sequence[str], cache_dir: str | Path | None, batch_size: int = 128, progress: bool = True
) -> np.ndarray:
    """The teacher's sentence embeddings of `texts` [n, hidden] float32, from `cache_dir` when there."""
    path = None
    if cache_dir is not None:
        path = Path(cache_dir) / f"teacher-{teacher_digest(teacher)}-{texts_digest(texts)}.npy"
        if path.is_file():
            cached = _cached_vectors(path, (len(texts), teacher.hidden_size))
            if cached is not None:
                logger.info("teacher embeddings from the cache %s", path)
                return cached
    logger.info("embedding %d texts with the teacher (slow on a CPU)", len(texts))
    vectors = teacher.encode(list(texts), batch_size=batch_size, progress=progress)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        with partial.open("wb") as handle:
            np.save(handle, vectors, allow_pickle=False)
        partial.replace(path)
        meta = {"teacher": teacher.name, "texts": len(texts), "dim": int(vectors.shape[1])}
        path.with_suffix(".json").write_text(json.dumps(meta) + "\n", encoding="utf-8")
    return vectors


def _cached_vectors(path: Path, shape: tuple[int, int]) -> np.ndarray | None:
    """The cached vectors of `path` when they are readable, of `shape` and finite; else None, with a warning."""
    try:
        vectors = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:  # a truncated (even empty) or damaged file
        logger.warning("%s: unreadable cache (%s), embedding again", path, exc)
        return None
    if vectors.shape != shape or vectors.dtype.kind != "f":
        logger.warning("%s: cached %s of shape %s does not fit, embedding again", path, vectors.dtype, vectors.shape)
        return None
    if not np.isfinite(vectors).all():
        logger.warning("%s: cached vectors hold NaN or infinite values, embedding again", path)
        return None
    return vectors
