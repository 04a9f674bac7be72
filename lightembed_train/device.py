"""The torch device a training step runs on: the one asked for, checked, else CUDA when present, else the CPU."""

from __future__ import annotations

import torch


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """`device` checked (a clear ValueError for an unknown name or a missing CUDA), else the default."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"unknown torch device {device!r} (for example 'cpu', 'cuda', 'cuda:1')") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r}: this torch build or machine has no CUDA; use 'cpu'")
    if resolved.type == "meta":
        raise ValueError("device 'meta' holds no values to train; use 'cpu' or 'cuda'")
    try:
        torch.zeros(1, device=resolved)
    except (RuntimeError, AssertionError, NotImplementedError) as exc:  # torch's errors for a device it lacks
        first_sentence = " ".join(str(exc).split()).split(". ")[0]
        raise ValueError(f"device {device!r} cannot be used here ({first_sentence}); use 'cpu'") from None
    return resolved
