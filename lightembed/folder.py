"""Reading and writing model folders (lightembed, model2vec, WordLlama), with validation.

Only JSON and safetensors are read; nothing is unpickled or executed.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import Tokenizer

from .config import ModelConfig
from .errors import ModelFormatError, ModelNotFoundError
from .reranker import LiteScorer, load_reranker
from .tensorfile import check_regular_file, read_tensor_file, write_tensor_file
from .transform import FLOAT_DTYPES, Transform, finite_float_tensor, parse_transform, transform_keys

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
TOKENIZER_FILE = "tokenizer.json"
RERANKER_FILE = "reranker.safetensors"
CARD_FILE = "README.md"
FOLDER_FILES = (CONFIG_FILE, WEIGHTS_FILE, TOKENIZER_FILE, RERANKER_FILE, CARD_FILE)

MODEL2VEC_MAX_LENGTH = 512  # model2vec's default token cap


@dataclass
class ModelParts:
    """The validated contents of a model folder, ready for the runtime."""

    config: ModelConfig
    embeddings: np.ndarray  # [V, D] float16 or float32, token weights already applied when possible
    tokenizer: Tokenizer
    path: Path
    token_rows: np.ndarray | None = None  # model2vec vocabulary quantisation: token id -> row
    token_weights: np.ndarray | None = None  # only kept when rows are shared (token_rows set)
    transform: Transform = field(default_factory=Transform)  # projection and adaptor after pooling
    binary_embeddings: np.ndarray | None = None
    reranker_path: Path | None = None
    reranker: LiteScorer | None = None  # the learned scorer of reranker.safetensors, validated


def read_model(path: str | Path) -> ModelParts:
    """Read a model folder of any supported kind, or a WordLlama codebook file."""
    path = Path(path)
    if path.is_file() and path.suffix == ".safetensors":
        return read_wordllama(path)
    if path.is_file():
        raise ModelNotFoundError(f"{path}: is a file; give the model folder (or a WordLlama .safetensors codebook)")
    if path.exists() and not path.is_dir():
        raise ModelNotFoundError(f"{path}: not a regular file or a folder (a pipe, a device or a socket)")
    if not path.is_dir():
        raise ModelNotFoundError(f"{path}: no such model folder")
    config_path = path / CONFIG_FILE
    if config_path.exists() and not config_path.is_file():
        raise ModelFormatError(f"{config_path}: not a regular file")
    if config_path.is_file():
        raw = _read_json(config_path)
        if isinstance(raw, dict) and ("format" in raw or "format_version" in raw):
            return read_lightembed(path, raw)  # a lightembed config, checked there (a wrong 'format' is an error)
        return read_model2vec(path, raw)
    codebooks = sorted(path.glob("*.safetensors"))
    if len(codebooks) != 1:
        raise ModelFormatError(f"{path}: no {CONFIG_FILE} and no single WordLlama codebook (*.safetensors)")
    try:
        return read_wordllama(codebooks[0])
    except ModelFormatError as exc:
        raise ModelFormatError(f"{path}: no {CONFIG_FILE}, so read as a WordLlama codebook: {exc}") from None


def read_lightembed(path: Path, raw_config: Any) -> ModelParts:
    """Read and validate a lightembed model folder."""
    config = ModelConfig.from_dict(raw_config, str(path / CONFIG_FILE))
    weights_path = path / WEIGHTS_FILE
    tensors = read_tensor_file(weights_path)[1]
    where = str(weights_path)
    embeddings = _codebook(tensors, "embeddings", where)
    _check_shape(embeddings, (config.vocab_size, config.dim), where, "embeddings")
    _check_keys(tensors, _expected_keys(config), where)

    token_weights = None
    if config.token_weights:
        token_weights = finite_float_tensor(tensors, "token_weights", where, (config.vocab_size,))
        embeddings = _weighted(embeddings, token_weights, where)
    transform = parse_transform(
        tensors,
        config.dim,
        projection=config.projection,
        adaptor_layers=config.adaptor.layers if config.adaptor else 0,
        activation=config.adaptor.activation if config.adaptor else "relu",
        normalize=False,
        where=where,
    )
    width = transform.out_dim or config.dim
    binary = None
    if config.binary_codebook:
        binary = _codebook(tensors, "binary_embeddings", where)
        if binary.shape[0] != config.vocab_size:
            raise ModelFormatError(
                f"{where}: 'binary_embeddings' has {binary.shape[0]} rows, expected {config.vocab_size}"
            )
    for d in config.matryoshka_dims:
        if d > width:
            raise ModelFormatError(f"{path / CONFIG_FILE}: matryoshka dim {d} exceeds the output width {width}")
    reranker_path = path / RERANKER_FILE
    reranker = None
    if config.reranker:
        if not reranker_path.exists():  # anything else there (a folder, a pipe) is refused by load_reranker
            raise ModelFormatError(f"{reranker_path}: config says the model has a reranker, but the file is missing")
        reranker = load_reranker(reranker_path, config.dim)
    tokenizer = _read_tokenizer(path / TOKENIZER_FILE, config.vocab_size)
    return ModelParts(
        config=config,
        embeddings=embeddings,
        tokenizer=tokenizer,
        path=path,
        transform=transform,
        binary_embeddings=binary,
        reranker_path=reranker_path if config.reranker else None,
        reranker=reranker,
    )


def read_model2vec(path: Path, raw_config: Any) -> ModelParts:
    """Read a model2vec folder (`embeddings`, optional `weights` and `mapping`)."""
    where_config = str(path / CONFIG_FILE)
    if not isinstance(raw_config, dict):
        raise ModelFormatError(f"{where_config}: expected a JSON object")
    weights_path = path / WEIGHTS_FILE
    tensors = read_tensor_file(weights_path)[1]
    where = str(weights_path)
    # model2vec stores int8 codebooks without their scale and pools the raw values: do the same.
    embeddings = _codebook(tensors, "embeddings", where, default_scale=1.0)
    tokenizer = _read_tokenizer(path / TOKENIZER_FILE, None)
    vocab_size = _token_id_bound(tokenizer)
    token_rows = None
    if "mapping" in tensors:
        if tensors["mapping"].dtype.kind not in "iu":
            raise ModelFormatError(f"{where}: 'mapping' must hold integers, got dtype {tensors['mapping'].dtype}")
        token_rows = np.asarray(tensors["mapping"]).astype(np.int64)
        if token_rows.shape != (vocab_size,) or token_rows.min() < 0 or token_rows.max() >= embeddings.shape[0]:
            raise ModelFormatError(f"{where}: 'mapping' must map each of {vocab_size} tokens to a row")
    elif embeddings.shape[0] < vocab_size:
        raise ModelFormatError(f"{where}: {embeddings.shape[0]} rows but the tokenizer has {vocab_size} tokens")
    token_weights = None
    if "weights" in tensors:
        token_weights = finite_float_tensor(tensors, "weights", where, (vocab_size,))
        if token_rows is None:
            embeddings = _weighted(embeddings, token_weights, where)
            token_weights = None
    # As model2vec does: `max_length` (512 when absent or null); the legacy `seq_length` (1000000 in
    # its configs) is not an inference limit and would make a 10 MB string tokenise in full.
    max_length = raw_config.get("max_length")
    normalize = raw_config.get("normalize")
    unk = _unk_token_id(tokenizer)
    config = ModelConfig(
        dim=embeddings.shape[1],
        vocab_size=vocab_size,
        normalize=False if normalize is None else normalize,  # validate() names a value that is not a bool
        max_length=MODEL2VEC_MAX_LENGTH if max_length is None else max_length,
        ignore_token_ids=(unk,) if unk is not None else (),
        source="model2vec",
        provenance={"model2vec_config": raw_config},
    )
    config.validate(where_config)
    return ModelParts(
        config=config,
        embeddings=embeddings,
        tokenizer=tokenizer,
        path=path,
        token_rows=token_rows,
        token_weights=token_weights,
    )


def read_wordllama(codebook_path: Path) -> ModelParts:
    """Read a WordLlama codebook (`embedding.weight`) and its tokenizer file.

    The tokenizer (the first `*tokenizer*.json` by name) is looked for beside the codebook, in a
    `tokenizers/` folder beside it, then in a `tokenizers/` folder beside the codebook's folder
    (WordLlama's cache layout).
    """
    tensors = read_tensor_file(codebook_path)[1]
    where = str(codebook_path)
    embeddings = _codebook(tensors, "embedding.weight", where)
    tokenizer = _read_tokenizer(_find_wordllama_tokenizer(codebook_path), embeddings.shape[0])
    config = ModelConfig(
        dim=embeddings.shape[1],
        vocab_size=embeddings.shape[0],
        normalize=True,
        max_length=512,
        source="wordllama",
        provenance={"wordllama_codebook": codebook_path.name},
    )
    return ModelParts(config=config, embeddings=embeddings, tokenizer=tokenizer, path=codebook_path.parent)


def write_model(
    folder: str | Path,
    config: ModelConfig,
    embeddings: np.ndarray,
    tokenizer: Tokenizer,
    extra_tensors: dict[str, np.ndarray] | None = None,
    card: str | None = None,
    reranker: Path | None = None,
) -> Path:
    """Write a lightembed model folder and check that it reads back (through `staged_model_folder`).

    `reranker` is a `reranker.safetensors` to copy in (needed when `config.reranker`; without it
    an old one in `folder` is removed).
    """
    folder = Path(folder)
    if not isinstance(config, ModelConfig):
        raise TypeError(f"config must be a ModelConfig, got {type(config).__name__}")
    if not isinstance(tokenizer, Tokenizer):
        raise TypeError(f"tokenizer must be a tokenizers.Tokenizer, got {type(tokenizer).__name__}")
    if config.reranker and reranker is None:
        raise ValueError("config.reranker is set: pass the reranker file to copy in")
    with staged_model_folder(folder) as staging:
        tensors = {"embeddings": np.ascontiguousarray(embeddings)}
        for name, value in (extra_tensors or {}).items():
            tensors[name] = np.ascontiguousarray(value)
        write_tensor_file(staging / WEIGHTS_FILE, tensors, {"format": "lightembed"})
        tokenizer.save(str(staging / TOKENIZER_FILE))
        (staging / CONFIG_FILE).write_text(json.dumps(config.to_dict(), indent=2) + "\n", encoding="utf-8")
        if card is not None:
            (staging / CARD_FILE).write_text(card, encoding="utf-8")
        if config.reranker:
            shutil.copyfile(reranker, staging / RERANKER_FILE)
    if not config.reranker:
        (folder / RERANKER_FILE).unlink(missing_ok=True)  # a scorer of the files just replaced
    return folder


@contextmanager
def staged_model_folder(folder: Path) -> Iterator[Path]:
    """A staging folder beside `folder` to write a model folder's files into.

    When the block ends without an error, the staged folder must read back as a model; only then
    are its files moved into `folder` one by one, the config last. An error or interrupt before
    that leaves `folder` as it was (removed if this made it); only one during the moves themselves
    (milliseconds) can leave some files new and others old.
    """
    check_model_target(folder)
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    try:
        with tempfile.TemporaryDirectory(dir=folder.parent, prefix=f".{folder.name}.") as staging_name:
            staging = Path(staging_name)
            yield staging
            try:
                read_model(staging)
            except ModelFormatError as exc:
                raise ModelFormatError(str(exc).replace(str(staging), str(folder))) from None
            for name in (WEIGHTS_FILE, TOKENIZER_FILE, RERANKER_FILE, CARD_FILE, CONFIG_FILE):
                if (staging / name).is_file():
                    os.replace(staging / name, folder / name)
    except BaseException:
        if created:
            shutil.rmtree(folder, ignore_errors=True)
        raise


def check_model_target(folder: Path) -> None:
    """Raise ValueError unless `folder` may receive a model: new, empty, or a lightembed model folder (whose files are
    replaced). Another kind of folder, such as a Hugging Face model's, is never written over."""
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{folder}: exists and is not a folder; a model is a folder")
    if not folder.is_dir() or not any(not entry.name.startswith(".") for entry in folder.iterdir()):
        return  # new, or empty but for hidden files such as .gitkeep
    try:
        config = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        config = None
    if not isinstance(config, dict) or config.get("format") != "lightembed":
        raise ValueError(
            f"{folder}: exists and is not a lightembed model folder; give a new or empty folder "
            "(or a lightembed model folder, whose files are replaced)"
        )


def _expected_keys(config: ModelConfig) -> set[str]:
    keys = {"embeddings"}
    if config.token_weights:
        keys.add("token_weights")
    keys |= transform_keys(config.projection, config.adaptor.layers if config.adaptor else 0)
    if config.binary_codebook:
        keys.add("binary_embeddings")
    return keys


def _check_keys(tensors: dict[str, np.ndarray], expected: set[str], where: str) -> None:
    missing = expected - set(tensors)
    if missing:
        raise ModelFormatError(f"{where}: missing tensors {sorted(missing)} that config.json declares")
    extra = set(tensors) - expected - {"embeddings_scale", "binary_embeddings_scale"}
    if extra:
        raise ModelFormatError(f"{where}: tensors {sorted(extra)} are not declared in config.json")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # ValueError: bad UTF-8, bad JSON, a number too long to convert
        raise ModelFormatError(f"{path}: not readable JSON ({exc})") from None
    except RecursionError:
        raise ModelFormatError(f"{path}: not readable JSON (nested too deeply)") from None


def _read_tokenizer(path: Path, vocab_size: int | None) -> Tokenizer:
    check_regular_file(path, "a tokenizer file", "tokenizer file is missing")
    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as exc:  # the Rust tokenizer reports parse errors as plain Exception
        raise ModelFormatError(f"{path}: not a valid tokenizers file ({exc})") from None
    size = _token_id_bound(tokenizer)
    if vocab_size is not None and size > vocab_size:
        raise ModelFormatError(f"{path}: tokenizer ids go up to {size - 1} but the codebook has {vocab_size} rows")
    unk = _unk_token(tokenizer)
    if unk is not None and tokenizer.token_to_id(unk) is None:
        raise ModelFormatError(f"{path}: the unknown token {unk!r} is not in the vocabulary")
    return tokenizer


def _token_id_bound(tokenizer: Tokenizer) -> int:
    """One more than the largest token id (ids index codebook rows; they need not be contiguous)."""
    vocab = tokenizer.get_vocab(with_added_tokens=True)
    return max(vocab.values(), default=-1) + 1


def _weighted(embeddings: np.ndarray, token_weights: np.ndarray, where: str) -> np.ndarray:
    """Codebook rows times their token weights, in the codebook's dtype."""
    with np.errstate(over="ignore"):  # reported below, naming the file
        weighted = (embeddings.astype(np.float32) * token_weights[:, None]).astype(embeddings.dtype)
    if not np.isfinite(weighted).all():
        raise ModelFormatError(f"{where}: the token weights push the codebook beyond {embeddings.dtype}'s range")
    return weighted


def _codebook(tensors: dict[str, np.ndarray], key: str, where: str, default_scale: float | None = None) -> np.ndarray:
    """A finite 2-D float codebook; int8 codebooks are scaled by `<key>_scale` (or `default_scale`)."""
    if key not in tensors:
        raise ModelFormatError(f"{where}: tensor {key!r} is missing")
    table = tensors[key]
    if table.ndim != 2 or 0 in table.shape:
        raise ModelFormatError(f"{where}: {key!r} must be a non-empty 2-D matrix, got shape {table.shape}")
    if table.dtype == np.int8:
        scale_key = f"{key}_scale"
        if scale_key in tensors:
            scale = np.asarray(tensors[scale_key], dtype=np.float32)
        elif default_scale is not None:
            scale = np.full(1, default_scale, dtype=np.float32)
        else:
            raise ModelFormatError(f"{where}: int8 {key!r} needs its scale tensor {scale_key!r}")
        if scale.size not in (1, table.shape[0]):
            raise ModelFormatError(f"{where}: {scale_key!r} must hold 1 or {table.shape[0]} values")
        table = table.astype(np.float32) * scale.reshape(-1, 1)
    elif table.dtype not in FLOAT_DTYPES:
        raise ModelFormatError(f"{where}: {key!r} has dtype {table.dtype}; expected float16, float32 or int8")
    elif f"{key}_scale" in tensors:
        raise ModelFormatError(f"{where}: {key}_scale belongs to an int8 {key!r}, but it is {table.dtype}")
    if not np.isfinite(table).all():
        raise ModelFormatError(f"{where}: {key!r} contains NaN or infinite values")
    return table


def _check_shape(value: np.ndarray, shape: tuple[int, ...], where: str, key: str) -> None:
    if value.shape != shape:
        raise ModelFormatError(f"{where}: {key!r} has shape {value.shape}, config.json implies {shape}")


def _unk_token(tokenizer: Tokenizer) -> str | None:
    """The tokenizer model's unknown token, when it names one."""
    unk = json.loads(tokenizer.to_str()).get("model", {}).get("unk_token")
    return unk if isinstance(unk, str) else None


def _unk_token_id(tokenizer: Tokenizer) -> int | None:
    unk = _unk_token(tokenizer)
    return tokenizer.token_to_id(unk) if unk is not None else None


def _find_wordllama_tokenizer(codebook_path: Path) -> Path:
    for folder in (
        codebook_path.parent,
        codebook_path.parent / "tokenizers",
        codebook_path.parent.parent / "tokenizers",
    ):
        found = sorted(folder.glob("*tokenizer*.json")) if folder.is_dir() else []
        if found:
            return found[0]
    raise ModelFormatError(f"{codebook_path}: no tokenizer file (*tokenizer*.json) beside it or in tokenizers/")
