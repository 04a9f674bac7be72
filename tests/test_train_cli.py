"""`lightembed-train` argument errors that every subcommand shares: one line, status 2, before any work."""

from __future__ import annotations

import os
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


def test_outputs_that_would_destroy_other_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other = tmp_path / "hf-model"  # a folder of another kind: its files must not be replaced
    other.mkdir()
    (other / "config.json").write_text('{"architectures": ["BertModel"]}')
    for command in (("tune", "--corpus", "c.txt"), ("binary", "--corpus", "c.txt"), ("distill",)):
        assert "exists and is not a lightembed model folder" in run(capsys, *command, "--out", str(other))
    vectors = tmp_path / "v.npy"
    np.save(vectors, np.zeros((4, 8), np.float32))
    project = ("project", "--embeddings", str(vectors), "--groups", "g.tsv")
    assert f"--out {vectors}: is the input --embeddings" in run(capsys, *project, "--out", str(vectors))
    out = str(tmp_path / "t.safetensors")
    assert f"--report {out}: is also the --out output" in run(capsys, *project, "--out", out, "--report", out)
    adapt = ("adapt", "--corpus", str(vectors), "--out", out)
    assert "give a .png" in run(capsys, *adapt, "--plot", str(tmp_path / "scores.txt"))
    assert sorted(tmp_path.iterdir()) == sorted([other, vectors])  # nothing written, nothing replaced
    assert (other / "config.json").read_text() == '{"architectures": ["BertModel"]}'
    assert np.load(vectors).shape == (4, 8)


def test_an_unknown_device(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    vectors = tmp_path / "v.npy"
    np.save(vectors, np.random.default_rng(0).standard_normal((40, 8)).astype(np.float32))
    args = ("adapt", "--corpus", str(vectors), "--out", str(tmp_path / "a.safetensors"), "--device", "foo")
    assert "unknown torch device 'foo'" in run(capsys, *args)


@pytest.mark.parametrize("device", ["meta", "xpu"])
def test_a_device_this_torch_cannot_use(tmp_path: Path, capsys: pytest.CaptureFixture[str], device: str) -> None:
    args = ("adapt", "--corpus", str(tmp_path / "v.npy"), "--out", str(tmp_path / "a.safetensors"), "--device", device)
    assert f"device '{device}'" in run(capsys, *args)


def test_settings_are_checked_before_the_data_is_read(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    project = ("project", "--embeddings", str(tmp_path / "absent.npy"), "--groups", "g.tsv", "--out", "o.safetensors")
    assert "max_trials must be a positive integer" in run(capsys, *project, "--max-trials", "0")
    assert "split fractions must be non-negative and sum to 1" in run(capsys, *project, "--split", "0.5,0.6")
    assert "--dim must be at least 1" in run(capsys, *project, "--dim", "0")
    adapt = ("adapt", "--corpus", str(tmp_path / "absent.npy"), "--out", str(tmp_path / "a.safetensors"))
    assert "learning_rate must be a positive number" in run(capsys, *adapt, "--lr", "0")
    assert "--dev-fraction must lie strictly between 0 and 1" in run(capsys, *adapt, "--dev-fraction", "1")


def test_a_value_that_starts_with_a_dash_is_explained(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        train_main(["project", "--embeddings", "x.npy", "--groups", "g", "--out", "o", "--split", "-0.5,1.5"])
    assert exit_info.value.code == 2
    assert "(if the value starts with '-', write --split=VALUE)" in capsys.readouterr().err


def test_options_of_another_option_are_refused_without_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = ("--corpus", str(tmp_path / "absent.txt"), "--out", str(tmp_path / "model"))
    for command in ("tune", "binary"):
        assert "--contrastive-weight goes with --pairs" in run(capsys, command, *out, "--contrastive-weight", "0.5")
    assert "--pair-sources goes with --pairs" in run(capsys, "tune", *out, "--pair-sources", "quora")
    assert "--neighbour-share goes with --neighbours K or --pairs" in run(
        capsys, "binary", *out, "--neighbour-share", "0.3"
    )
    with_pairs = ("--pairs", "--neighbour-share", "0.3", "--data", str(tmp_path / "no-data"))
    assert "data folder not found" in run(capsys, "binary", *out, *with_pairs)  # the share of labelled-pair groups
    assert not (tmp_path / "model").exists()


def test_a_diverging_adaptor_stops_and_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    vectors = tmp_path / "v.npy"
    np.save(vectors, np.random.default_rng(0).standard_normal((50, 16)).astype(np.float32))
    out = tmp_path / "a.safetensors"
    message = run(capsys, "-q", "adapt", "--corpus", str(vectors), "--out", str(out), "--epochs", "3", "--lr", "1e6")
    assert "the training loss became nan" in message and "lower the learning rate" in message
    assert not out.exists()


def test_an_unwritable_transform_file_is_one_error_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(0)
    np.save(tmp_path / "v.npy", rng.standard_normal((60, 8)).astype(np.float32))
    (tmp_path / "g.tsv").write_text("".join(f"{i}\t{i % 20}\n" for i in range(60)))
    out = Path("/proc/lightembed-test.safetensors")  # the folder exists, but no file can be made in it
    args = ("-q", "project", "--embeddings", str(tmp_path / "v.npy"), "--groups", str(tmp_path / "g.tsv"))
    assert f"{out}: cannot write" in run(capsys, *args, "--out", str(out), "--max-trials", "2", "--folds", "0")


def test_groups_ids_and_pairs_files_with_odd_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(0)
    np.save(tmp_path / "v.npy", rng.standard_normal((60, 8)).astype(np.float32))
    project = ("-q", "project", "--embeddings", str(tmp_path / "v.npy"), "--out", str(tmp_path / "o.safetensors"))
    groups = tmp_path / "g.tsv"
    groups.write_bytes("".join(f"é{i}\t{i % 20}\n" for i in range(60)).encode("latin-1"))
    ids = tmp_path / "ids.txt"
    ids.write_text("".join(f"é{i}\n" for i in range(60)) + "\n\n", encoding="utf-8")
    assert f"{groups}:1: not UTF-8 text" in run(capsys, *project, "--groups", str(groups), "--ids", str(ids))
    groups.write_text("\ufeff" + "".join(f"é{i}\t{i % 20}\n" for i in range(60)), encoding="utf-8")  # BOM first
    assert train_main([*project, "--groups", str(groups), "--ids", str(ids), "--max-trials", "2"]) == 0
    capsys.readouterr()
    ids.write_text("".join(f"é{i}\n" for i in range(30)) + "\n" + "".join(f"é{i}\n" for i in range(30, 60)))
    assert f"{ids}:31: blank line where an id was expected" in run(
        capsys, *project, "--groups", str(groups), "--ids", str(ids)
    )
    pairs = tmp_path / "p.tsv"
    pairs.write_text("0\t1\t1\n2\t3\tnan\n")
    assert f"{pairs}:2: label 'nan' is not a finite number" in run(capsys, *project, "--pairs", str(pairs))
    assert f"{tmp_path}: is a folder, expected a pairs file" in run(capsys, *project, "--pairs", str(tmp_path))
    no_model = ("-q", "project", "--model", str(tmp_path / "no-model"), "--pairs", str(tmp_path / "no.tsv"))
    assert f"{tmp_path / 'no-model'}: no such file or folder" in run(capsys, *no_model, "--out", str(tmp_path / "m"))
    fifo = tmp_path / "pairs.fifo"  # as <(command) gives: read before it could be read again for the card
    os.mkfifo(fifo)
    assert f"{fifo}: not a regular file" in run(capsys, *project, "--pairs", str(fifo))
    text = (
        "-q",
        "project",
        "--embeddings",
        str(ids),
        "--groups",
        str(groups),
        "--out",
        str(tmp_path / "o.safetensors"),
    )
    assert f"{ids}: not a .npy file" in run(capsys, *text)
    relevance = tmp_path / "qrels.tsv"
    relevance.write_text("0\t1\n")
    adapt = ("adapt", "--corpus", str(tmp_path / "v.npy"), "--queries", str(ids), "--relevance", str(relevance))
    assert f"{ids}: not a .npy file" in run(capsys, *adapt, "--out", str(tmp_path / "a.safetensors"))


def test_constant_embeddings_are_named_as_such(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    np.save(tmp_path / "v.npy", np.ones((60, 8), dtype=np.float32))
    (tmp_path / "g.tsv").write_text("".join(f"{i}\t{i % 20}\n" for i in range(60)))
    args = ("project", "--embeddings", str(tmp_path / "v.npy"), "--groups", str(tmp_path / "g.tsv"), "--out", "o.st")
    assert "all 60 rows of the embeddings are the same vector" in run(capsys, *args)
