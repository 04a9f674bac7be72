"""Shared fixtures: the tiny model, and where the shared datasets live."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from tiny import write_tiny_model

import lightembed

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("LIGHTEMBED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture()
def tiny(tiny_dir: Path) -> lightembed.LightEmbed:
    return lightembed.load(tiny_dir)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not DATA.is_dir():
        pytest.skip(f"shared datasets not found at {DATA} (set LIGHTEMBED_DATA)")
    return DATA


@pytest.fixture(scope="session")
def tiny_teacher(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random 2-layer BERT sentence-transformers folder (needs torch and transformers)."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from tiny_teacher import write_tiny_teacher

    return write_tiny_teacher(tmp_path_factory.mktemp("tiny-teacher"))


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A plain-text corpus in the tiny teacher's words, with a blank line."""
    path = tmp_path_factory.mktemp("corpus") / "corpus.txt"
    path.write_text("the cat sat on the mat\nthe dog plays the piano\n\nhow do i bake bread\n")
    return path
