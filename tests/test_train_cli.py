"""`lightembed-train` argument errors that every subcommand shares: one line, status 2, before any work."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from lightembed_train.cli import main as train_main


def run(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert train_main(list(args)) == 2
    err = capsys.readouterr().err
    assert err.startswith("lightembed-train: error: ") and err.count("\n") == 1, err
    return err


def test_an_output_folder_that_is_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    taken = tmp_path / "taken"
    taken.write_text("x")
    for command in (("tune", "--corpus", "c.txt"), ("binary", "--corpus", "c.txt"), ("distill",)):
        assert "exists and is not a folder" in run(capsys, *command, "--out", str(taken))
    assert "is a file, so nothing can be written under it" in run(capsys, "distill", "--out", str(taken / "model"))


def test_an_output_file_that_is_a_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    vectors = tmp_path / "v.npy"
    args = ("project", "--embeddings", str(vectors), "--groups", "g.tsv", "--out", str(tmp_path))
    assert "is a folder; the output is a file" in run(capsys, *args)
    assert "is a folder; the output is a file" in run(capsys, "adapt", "--corpus", str(vectors), "--out", str(tmp_path))


def test_an_unknown_device(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    vectors = tmp_path / "v.npy"
    np.save(vectors, np.random.default_rng(0).standard_normal((40, 8)).astype(np.float32))
    args = ("adapt", "--corpus", str(vectors), "--out", str(tmp_path / "a.safetensors"), "--device", "foo")
    assert "unknown torch device 'foo'" in run(capsys, *args)
