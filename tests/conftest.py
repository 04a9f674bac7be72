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
