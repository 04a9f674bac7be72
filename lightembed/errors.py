"""Exceptions raised by lightembed."""

from __future__ import annotations


class LightEmbedError(Exception):
    """Base class for every error lightembed raises on purpose."""


class ModelFormatError(LightEmbedError, ValueError):
    """A model folder is missing a file or holds something invalid."""


class ModelNotFoundError(LightEmbedError, FileNotFoundError):
    """A model name resolves to no folder, locally or on the Hub."""
