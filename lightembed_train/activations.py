"""The torch activations of trained layers, each matching the runtime's numpy one of the same name."""

from __future__ import annotations

from collections.abc import Callable

import torch

TORCH_ACTIVATIONS: dict[str, Callable[[], torch.nn.Module]] = {
    "relu": torch.nn.ReLU,
    "gelu": lambda: torch.nn.GELU(approximate="tanh"),  # lightembed.transform's gelu
    "tanh": torch.nn.Tanh,
}
