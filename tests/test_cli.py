"""The command-line tool, run in-process through `main` and once as `python -m lightembed`."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import lightembed
from lightembed import LightEmbed
from lightembed.cli import main

LINES = [
    "the cat sat on the mat",
    "a dog ran in the park",
    "the cat sat on the mat",  # exact copy of 0
    "The cat sat on the mat.",  # same tokens as 0 once lower-cased: a near duplicate
    "music song play guitar",
    "",
    "red car drove down the road",
]
KEPT = [0, 1, 4, 5, 6]


@pytest.fixture()
def cli(capsys: pytest.CaptureFixture[str], tiny_dir: Path):
    """Run `lightembed ARGS --model <tiny>`; returns (exit status, stdout, stderr)."""

    def run(*args: str, model: bool = True) -> tuple[int, str, str]:
        argv = [*args, "--model", str(tiny_dir)] if model else list(args)
        code = main(argv)
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture()
def lines_file(tmp_path: Path) -> Path:
    path = tmp_path / "lines.txt"
    path.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    return path


def jsonl(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines()]


def assert_error(result: tuple[int, str, str], fragment: str) -> None:
    code, out, err = result
    assert code == 2
    assert out == ""
    assert err.startswith("lightembed: error: ") and err.count("\n") == 1, err
    assert fragment in err


def feed_stdin(monkeypatch: pytest.MonkeyPatch, data: bytes) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"))


# --------------------------------------------------------------------- info
def test_info_json(cli, tiny_dir: Path) -> None:
    code, out, _ = cli("info", "--json", "--dim", "8", "--binary")
    info = json.loads(out)
    assert code == 0
    assert info["path"] == str(tiny_dir)
    assert info["source"] == "lightembed"
    assert (info["dim"], info["codebook_dim"], info["bits"], info["binary"]) == (8, 16, 8, True)
    assert info["matryoshka_dims"] == [4, 8]
    assert info["vocab_size"] == 34
    assert info["normalize"] is True and info["max_length"] == 512
    assert info["optional_parts"] == []


def test_info_text(cli) -> None:
    code, out, _ = cli("info")
    assert code == 0
    assert "dim: 16\n" in out and "matryoshka_dims: 4, 8\n" in out and "optional_parts: none\n" in out


# --------------------------------------------------------------------- embed
def test_embed_jsonl_matches_library(cli, tiny, lines_file: Path) -> None:
    code, out, _ = cli("embed", str(lines_file))
    rows = jsonl(out)
    assert code == 0
    assert [row["index"] for row in rows] == list(range(len(LINES)))
    np.testing.assert_allclose(np.array([row["embedding"] for row in rows]), tiny.embed(LINES), atol=1e-7)
    assert rows[5]["embedding"] == [0.0] * 16  # the empty line


def test_embed_npy_from_file_and_stdin(
    cli, tiny, tiny_dir: Path, lines_file: Path, tmp_path: Path, monkeypatch
) -> None:
    target = tmp_path / "out" / "vectors.npy"
    target.parent.mkdir()
    assert cli("embed", str(lines_file), "-o", str(target))[0] == 0  # count known: memory-mapped
    np.testing.assert_array_equal(np.load(target), tiny.embed(LINES))
    feed_stdin(monkeypatch, lines_file.read_bytes())
    assert cli("embed", "-", "-o", str(target), "--dim", "4")[0] == 0  # stdin: gathered, then saved
    np.testing.assert_array_equal(np.load(target), lightembed.load(tiny_dir, dim=4).embed(LINES))
    assert os.listdir(target.parent) == ["vectors.npy"]  # no temporary file left behind


def test_embed_binary(cli, tiny_dir: Path, lines_file: Path, tmp_path: Path) -> None:
    codes = lightembed.load(tiny_dir, binary=True).embed(LINES)
    code, out, _ = cli("embed", str(lines_file), "--binary")
    assert code == 0
    assert [row["embedding"] for row in jsonl(out)] == [row.tobytes().hex() for row in codes]
    target = tmp_path / "codes.npy"
    assert cli("embed", str(lines_file), "--binary", "-o", str(target))[0] == 0
    saved = np.load(target)
    assert saved.dtype == np.uint8 and saved.shape == (len(LINES), 2)
    np.testing.assert_array_equal(saved, codes)


def test_embed_jsonl_and_csv_inputs(cli, tiny, tmp_path: Path) -> None:
    records = tmp_path / "docs.ndjson"
    records.write_text('{"id": 1, "body": "red car"}\n\n{"id": 2, "body": "blue bird"}\n', encoding="utf-8")
    table = tmp_path / "docs.csv"
    table.write_text('id,body\n1,red car\n2,"blue bird"\n', encoding="utf-8")
    expected = tiny.embed(["red car", "blue bird"])
    for path, option in ((records, "--field"), (table, "--column")):
        code, out, _ = cli("embed", str(path), option, "body")
        assert code == 0
        np.testing.assert_allclose(np.array([row["embedding"] for row in jsonl(out)]), expected, atol=1e-7)


# --------------------------------------------------------------------- similarity
def test_similarity_two_texts(cli, tiny) -> None:
    code, out, _ = cli("similarity", "the cat sat", "a cat ran")
    assert code == 0
    assert float(out) == pytest.approx(tiny.similarity("the cat sat", "a cat ran"), abs=1e-6)


def test_similarity_pairs(cli, tiny, tiny_dir: Path, tmp_path: Path) -> None:
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("the cat\ta cat\nred car\tblue bird\nsame\tsame\n", encoding="utf-8")
    code, out, _ = cli("similarity", "--pairs", str(pairs))
    assert code == 0
    expected = [tiny.similarity("the cat", "a cat"), tiny.similarity("red car", "blue bird"), 0.0]
    assert [float(s) for s in out.split()] == pytest.approx(expected, abs=1e-6)
    binary = lightembed.load(tiny_dir, binary=True)
    code, out, _ = cli("similarity", "--pairs", str(pairs), "--binary")
    assert [float(s) for s in out.split()][:2] == pytest.approx(
        [binary.similarity("the cat", "a cat"), binary.similarity("red car", "blue bird")], abs=1e-6
    )
    pairs.write_text("the cat\ta cat\n\nsame\tsame\n", encoding="utf-8")  # one score per line: none skipped
    code, _, err = cli("similarity", "--pairs", str(pairs))
    assert code == 2 and "pairs.tsv:2: empty line" in err


# --------------------------------------------------------------------- ranking verbs
def test_rank(cli, tiny, lines_file: Path) -> None:
    code, out, _ = cli("rank", "cat on a mat", str(lines_file))
    rows = jsonl(out)
    expected = tiny.rank("cat on a mat", LINES)
    assert code == 0
    assert [(r["index"], r["text"]) for r in rows] == [(h.index, h.text) for h in expected]
    assert [r["score"] for r in rows] == pytest.approx([h.score for h in expected], abs=1e-6)


def test_topk_text_output(cli, tiny, lines_file: Path) -> None:
    code, out, _ = cli("topk", "music guitar", str(lines_file), "-k", "2", "--output-format", "text")
    expected = tiny.topk("music guitar", LINES, k=2)
    assert code == 0
    assert out == "".join(f"{h.score:.6f}\t{h.text}\n" for h in expected)
    assert expected[0].text == "music song play guitar"


def test_filter(cli, tiny, lines_file: Path) -> None:
    code, out, _ = cli("filter", "the cat sat on the mat", str(lines_file), "--threshold", "0.99")
    assert code == 0
    assert [r["index"] for r in jsonl(out)] == [0, 2, 3]


def test_rerank(cli, tiny, lines_file: Path) -> None:
    code, out, _ = cli("rerank", "red car", str(lines_file), "-k", "3")
    expected = tiny.rerank("red car", LINES, k=3)
    assert code == 0
    assert [(r["index"], r["text"]) for r in jsonl(out)] == [(h.index, h.text) for h in expected]
    assert jsonl(out)[0]["text"] == "red car drove down the road"


# --------------------------------------------------------------------- dedup
def test_dedup_text_keeps_first_lines_in_order(cli, lines_file: Path, tmp_path: Path) -> None:
    report = tmp_path / "report.jsonl"
    code, out, err = cli("dedup", str(lines_file), "--threshold", "0.9", "--report", str(report))
    assert code == 0
    assert out == "".join(LINES[i] + "\n" for i in KEPT)
    assert jsonl(report.read_text(encoding="utf-8")) == [
        {"index": 2, "text": LINES[2], "duplicate_of": 0, "duplicate_text": LINES[0], "score": 1.0, "exact": True},
        {"index": 3, "text": LINES[3], "duplicate_of": 0, "duplicate_text": LINES[0], "score": 1.0, "exact": False},
    ]
    assert err.startswith("dedup: 7 items, 5 kept, 2 removed (1 exact) in ")


def test_dedup_jsonl_keeps_records_unchanged(cli, tmp_path: Path) -> None:
    source = tmp_path / "posts.jsonl"
    records = [
        '{"id": 1,   "text": "the cat sat on the mat", "extra": [1, 2]}\n',
        '{"text": "THE CAT SAT ON THE MAT!", "id": 2}\n',
        '{"id": 3, "text": "music song play guitar", "note": "caf\\u00e9"}\n',
    ]
    source.write_text("".join(records), encoding="utf-8")
    target = tmp_path / "kept.jsonl"
    code, out, _ = cli("dedup", str(source), "-o", str(target))
    assert code == 0 and out == ""
    assert target.read_text(encoding="utf-8") == records[0] + records[2]


def test_dedup_csv_keeps_header_and_rows_unchanged(cli, tmp_path: Path) -> None:
    source = tmp_path / "rows.csv"
    source.write_text(
        'id,body\r\n1,"the cat, sat on the mat"\r\n2,"the cat sat\non the mat"\r\n3,blue bird\r\n', encoding="utf-8"
    )
    code, out, _ = cli("dedup", str(source), "--column", "body")
    assert code == 0
    assert out == 'id,body\r\n1,"the cat, sat on the mat"\r\n3,blue bird\r\n'


# --------------------------------------------------------------------- cluster and split
def test_cluster(cli, tiny, lines_file: Path) -> None:
    code, out, err = cli("cluster", str(lines_file), "-k", "2", "--seed", "0")
    rows = jsonl(out)
    expected = tiny.cluster(LINES, 2, seed=0)
    assert code == 0
    assert [r["index"] for r in rows] == list(range(len(LINES)))
    assert [r["cluster"] for r in rows] == expected.labels.tolist()
    assert rows[0]["cluster"] == rows[2]["cluster"] == rows[3]["cluster"]
    assert err == f"cluster: 7 items in 2 clusters, sizes {' '.join(map(str, expected.sizes.tolist()))}\n"


def test_split(cli, tiny, tmp_path: Path) -> None:
    text = "The cat sat on the mat. The dog ran in the park.\nMusic song. Play guitar and piano.\n"
    source = tmp_path / "long.txt"
    source.write_text(text, encoding="utf-8")
    code, out, _ = cli("split", str(source), "--target-size", "30")
    chunks = [row["text"] for row in jsonl(out)]
    assert code == 0
    assert chunks == tiny.split(text, 30) and "".join(chunks) == text and len(chunks) > 1
    code, out, _ = cli("split", str(source), "--target-size", "30", "--output-format", "text", "--separator", "==")
    assert out.split("==\n") == [c if c.endswith("\n") else c + "\n" for c in chunks]


# --------------------------------------------------------------------- errors
def test_error_missing_file(cli, tmp_path: Path) -> None:
    assert_error(cli("embed", str(tmp_path / "nope.txt")), "nope.txt: No such file or directory")


def test_error_bad_json_names_the_line(cli, tmp_path: Path) -> None:
    source = tmp_path / "bad.jsonl"
    source.write_text('{"text": "a"}\n{"text": "b"\n', encoding="utf-8")
    assert_error(cli("embed", str(source)), "bad.jsonl:2: not valid JSON")


def test_error_missing_and_non_string_field(cli, tmp_path: Path) -> None:
    source = tmp_path / "docs.jsonl"
    source.write_text('{"text": "a"}\n{"body": "b"}\n', encoding="utf-8")
    assert_error(cli("rank", "q", str(source)), "docs.jsonl:2: no field 'text'")
    source.write_text('{"text": 3}\n', encoding="utf-8")
    assert_error(cli("rank", "q", str(source)), "docs.jsonl:1: field 'text' is int, expected a string")


def test_error_missing_csv_column(cli, tmp_path: Path) -> None:
    source = tmp_path / "rows.csv"
    source.write_text("id,body\n1,x\n", encoding="utf-8")
    assert_error(
        cli("dedup", str(source), "--column", "text"), "no column 'text' in the CSV header (columns: id, body)"
    )


def test_error_field_with_csv_format(cli, lines_file: Path) -> None:
    assert_error(cli("embed", str(lines_file), "--format", "csv", "--field", "x"), "--field applies to JSON lines")


def test_error_invalid_utf8_names_the_line(cli, monkeypatch) -> None:
    feed_stdin(monkeypatch, b"fine\n\xff bad\n")
    assert_error(cli("embed"), "<stdin>:2: not valid UTF-8")


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("embed", "--dim", "0"), "argument --dim: must be a positive integer"),
        (("embed", "--dim", "99"), "dim must be an integer between 1 and the model width 16"),
        (("dedup", "--threshold", "1.5"), "argument --threshold: must be a number between -1 and 1"),
        (("filter", "q", "--threshold", "nan"), "argument --threshold"),
        (("topk", "q", "-k", "0"), "argument -k: must be a positive integer"),
        (("similarity", "only one"), "similarity needs two texts"),
        (("frobnicate",), "invalid choice: 'frobnicate'"),
        (("embed", "-", "--bogus"), "unrecognized arguments: --bogus (see 'lightembed embed --help')"),
        (("embed", ""), "the input path is empty"),
        (("similarity", "a", "b", "-o", ""), "the output path is empty"),
        (("rank", "q", "-", "-o", "hits.npy"), "rank does not write .npy files (see 'lightembed rank --help')"),
        (("dedup", "-", "-o", "kept.npy"), "dedup does not write .npy files"),
    ],
)
def test_error_bad_arguments(cli, args: tuple[str, ...], fragment: str) -> None:
    assert_error(cli(*args), fragment)


def test_error_unknown_model(cli) -> None:
    assert_error(cli("info", "--model", "/no/such/model", model=False), "/no/such/model: no such file or folder")


def test_error_library_value_error(cli, lines_file: Path) -> None:
    assert_error(cli("cluster", str(lines_file), "-k", "50"), "k=50 is larger than the number of items (7)")


def test_error_cluster_of_an_empty_file(cli, tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    assert_error(cli("cluster", str(empty), "-k", "1"), "cannot cluster: the input has no items")


@pytest.mark.parametrize("revision", ["", "  "])
def test_error_blank_revision(cli, revision: str) -> None:
    assert_error(cli("info", "--revision", revision), "is empty or blank: give a Hub branch, tag or commit")


def test_error_leaves_no_partial_output(cli, tmp_path: Path) -> None:
    source = tmp_path / "docs.jsonl"
    source.write_text('{"text": "a"}\n{"text": "b"}\nnot json\n', encoding="utf-8")
    for name in ("out.jsonl", "out.npy"):
        assert_error(cli("embed", str(source), "-o", str(tmp_path / name)), "docs.jsonl:3: not valid JSON")
    assert sorted(os.listdir(tmp_path)) == ["docs.jsonl"]


def test_output_through_symlink_and_pipe(cli, lines_file: Path, tmp_path: Path) -> None:
    real = tmp_path / "real.txt"
    real.write_text("old\n", encoding="utf-8")
    link = tmp_path / "link.txt"
    link.symlink_to(real)
    assert cli("dedup", str(lines_file), "-o", str(link))[0] == 0
    assert link.is_symlink() and real.read_text(encoding="utf-8") == "".join(LINES[i] + "\n" for i in KEPT)

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()), daemon=True)
    reader.start()
    assert cli("dedup", str(lines_file), "-o", str(fifo))[0] == 0
    reader.join(timeout=30)
    assert fifo.is_fifo() and received == ["".join(LINES[i] + "\n" for i in KEPT).encode()]


def test_npy_output_into_a_pipe(cli, tiny, lines_file: Path, tmp_path: Path) -> None:
    fifo = tmp_path / "vectors.npy"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()), daemon=True)
    reader.start()
    assert cli("embed", str(lines_file), "-o", str(fifo))[0] == 0
    reader.join(timeout=30)
    np.testing.assert_allclose(np.load(io.BytesIO(received[0])), tiny.embed(LINES), atol=1e-6)


def test_error_output_is_a_folder(cli, lines_file: Path, tmp_path: Path) -> None:
    assert_error(cli("embed", str(lines_file), "-o", str(tmp_path)), f"{tmp_path}: is a folder")


def test_error_json_nested_too_deeply(cli, tmp_path: Path) -> None:
    source = tmp_path / "deep.jsonl"
    source.write_text('{"text": "a"}\n{"text": ' + "[" * 100_000 + "]" * 100_000 + "}\n", encoding="utf-8")
    assert_error(cli("rank", "q", str(source)), "deep.jsonl:2: JSON nested too deeply")


def test_csv_with_a_field_over_128_kib(cli, tiny, tmp_path: Path) -> None:
    long_text = "the cat sat on the mat " * 10_000
    source = tmp_path / "rows.csv"
    source.write_text(f"id,text\n1,{long_text}\n2,a dog\n", encoding="utf-8")
    code, out, _ = cli("rank", "the cat", str(source))
    assert code == 0
    assert [row["index"] for row in jsonl(out)] == [0, 1]


@pytest.mark.parametrize("command", [("cluster", "-k", "2"), ("dedup", "--mode", "partitioned")])
def test_error_negative_seed_names_the_option(cli, lines_file: Path, command: tuple[str, ...]) -> None:
    assert_error(cli(command[0], str(lines_file), *command[1:], "--seed", "-1"), "argument --seed")


def test_error_dedup_output_suffix_of_another_format(cli, lines_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "kept.parquet"
    assert_error(cli("dedup", str(lines_file), "-o", str(out)), "names parquet output, but dedup writes")
    assert not out.exists()
    assert cli("dedup", str(lines_file), "-o", str(tmp_path / "kept.txt"))[0] == 0


def test_options_may_come_between_the_query_and_the_input(cli, tiny, lines_file: Path) -> None:
    code, out, _ = cli("topk", "the cat", "-k", "2", str(lines_file))
    assert code == 0
    assert [row["index"] for row in jsonl(out)] == [hit.index for hit in tiny.topk("the cat", LINES, k=2)]
    code, out, _ = cli("similarity", "a cat", "--dim", "8", "a dog")
    assert code == 0 and float(out) == pytest.approx(
        lightembed.load(tiny.path, dim=8).similarity("a cat", "a dog"), abs=1e-6
    )


def test_error_broken_csv_quotes_name_the_line(cli, tmp_path: Path) -> None:
    source = tmp_path / "rows.csv"
    source.write_text('id,text\n1,"never closed\n2,b\n', encoding="utf-8")
    assert_error(cli("rank", "q", str(source)), "rows.csv:3: bad CSV (unexpected end of data)")
    source.write_text('text\n"a"b"\n', encoding="utf-8")
    assert_error(cli("dedup", str(source)), "rows.csv:2: bad CSV")


def test_json_lines_surrogates_huge_numbers_and_empty_field_names(cli, tmp_path: Path) -> None:
    source = tmp_path / "docs.jsonl"
    source.write_text('{"text": "a"}\n{"text": "\\ud800"}\n', encoding="utf-8")
    assert_error(cli("rank", "q", str(source)), "docs.jsonl:2: field 'text' holds an unpaired surrogate escape")
    source.write_text('{"text": "a", "n": 1' + "0" * 5000 + "}\n", encoding="utf-8")
    assert_error(cli("rank", "q", str(source)), "docs.jsonl:1: not valid JSON (Exceeds the limit")
    source.write_text('{"": "the empty key", "text": "the text"}\n', encoding="utf-8")
    code, out, _ = cli("rank", "q", str(source), "--field", "")
    assert code == 0 and jsonl(out)[0]["text"] == "the empty key"


def test_text_output_keeps_one_line_per_item(cli, tmp_path: Path) -> None:
    source = tmp_path / "docs.jsonl"
    texts = ["line one\nline two", "back\\slash\r", "plain"]
    source.write_text("".join(json.dumps({"text": text}) + "\n" for text in texts), encoding="utf-8")
    escaped = {"line one\\nline two", "back\\\\slash\\r", "plain"}
    for command in (("rank", "q"), ("cluster", "-k", "2")):
        code, out, _ = cli(*command, str(source), "--output-format", "text")
        lines = out.splitlines()
        assert code == 0 and len(lines) == 3
        assert {line.split("\t", 1)[1] for line in lines} == escaped


def test_error_dedup_outputs_are_checked_before_the_run(cli, lines_file: Path, tmp_path: Path) -> None:
    same = tmp_path / "same.txt"
    assert_error(cli("dedup", str(lines_file), "-o", str(same), "--report", str(same)), "written to the same file")
    assert_error(cli("dedup", str(lines_file), "-o", str(tmp_path / "no" / "kept.txt")), "cannot write here (no folder")
    assert_error(cli("dedup", str(lines_file), "-o", str(tmp_path / "new") + "/"), "is a folder")
    assert sorted(os.listdir(tmp_path)) == ["lines.txt"]
    assert_error(cli("dedup", str(lines_file), "--report", str(lines_file)), "the report would replace the input")
    assert_error(cli("dedup", str(lines_file), "--report", "-"), "(-o) would be written to stdout")
    assert lines_file.read_text(encoding="utf-8") == "\n".join(LINES) + "\n"
    forced = tmp_path / "rows.csv"  # read as text lines: the output may keep the file's own suffix
    forced.write_text("text\na\nb\na\n", encoding="utf-8")
    assert cli("dedup", str(forced), "--format", "text", "-o", str(tmp_path / "kept.csv"))[0] == 0
    assert (tmp_path / "kept.csv").read_text(encoding="utf-8") == "text\na\nb\n"


def test_error_numbers_beyond_64_bits(cli, lines_file: Path) -> None:
    assert_error(cli("dedup", str(lines_file), "--chunk-size", "9" * 20), "argument --chunk-size: must be at most")


def test_partitioned_probes_beyond_the_clusters_compare_every_pair(cli, lines_file: Path) -> None:
    exact = cli("dedup", str(lines_file), "--mode", "exact")
    probed = cli("dedup", str(lines_file), "--mode", "partitioned", "--clusters", "2", "--probes", str(10**15))
    assert probed[0] == 0 and probed[1] == exact[1]


def test_an_output_that_is_the_input_is_refused(cli, lines_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = lines_file.read_text()
    for command in (("embed",), ("cluster", "-k", "2"), ("topk", "query"), ("rerank", "query")):
        assert_error(cli(*command, str(lines_file), "-o", str(lines_file)), "is the input; write the output to another")
    link = lines_file.with_name("link.txt")
    link.symlink_to(lines_file)
    assert_error(cli("similarity", "--pairs", str(lines_file), "-o", str(link)), "is the pairs file")
    with lines_file.open(encoding="utf-8") as stdin:
        monkeypatch.setattr("sys.stdin", stdin)
        assert_error(cli("embed", "-o", str(lines_file)), "is the input")
        report = ("dedup", "-o", str(lines_file.with_name("kept.txt")), "--report", str(lines_file))
        assert_error(cli(*report), "the report would replace the input")
    transform = lines_file.with_name("t.safetensors")
    transform.write_bytes(b"x")
    assert_error(cli("transform", str(transform), "v.npy", "-o", str(transform), model=False), "is the transform file")
    assert lines_file.read_text() == text
    assert cli("dedup", str(lines_file), "-o", str(lines_file))[0] == 0  # dedup rewrites its input on purpose
    assert lines_file.read_text().splitlines() == [LINES[i] for i in KEPT]


def test_a_value_that_starts_with_a_dash_is_explained(cli, lines_file: Path) -> None:
    message = "argument --threshold: expected one argument (if the value starts with '-', write --threshold=VALUE)"
    assert_error(cli("dedup", str(lines_file), "--threshold", "-1e-3"), message)  # "-.5" is taken as a value
    assert cli("dedup", str(lines_file), "--threshold=-1e-3")[0] == 0


def test_ann_mode_with_binary_codes_is_refused_before_embedding(
    cli, lines_file: Path, tiny_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(LightEmbed, "embed", lambda *a, **k: pytest.fail("embedded before refusing"))
    monkeypatch.setattr(LightEmbed, "iter_embed", lambda *a, **k: pytest.fail("embedded before refusing"))
    assert_error(cli("dedup", str(lines_file), "--mode", "ann", "--binary"), "--mode ann compares float vectors")
    with pytest.raises(ValueError, match="'ann' dedup mode takes float vectors"):
        lightembed.load(tiny_dir, binary=True).deduplicate(["a", "b"], mode="ann")


def test_partitioned_options_are_refused_with_other_modes(cli, lines_file: Path) -> None:
    refused = cli("dedup", str(lines_file), "--mode", "exact", "--probes", "3", "--seed", "1")
    assert_error(refused, "--probes, --seed: options of the partitioned search, not of --mode exact")
    assert_error(cli("dedup", str(lines_file), "--mode", "ann", "--clusters", "2"), "--clusters: options of")
    assert cli("dedup", str(lines_file), "--probes", "3", "--seed", "1")[0] == 0  # auto may partition


def test_no_command_and_help(cli) -> None:
    assert_error(cli(model=False), "the following arguments are required: COMMAND")
    code, out, _ = cli("dedup", "--help", model=False)
    assert code == 0 and "--threshold" in out and "--report" in out


# --------------------------------------------------------------------- as a process
def run_module(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lightembed", *args], check=False, capture_output=True, **kwargs)


def test_module_dedup_and_exit_codes(tiny_dir: Path, lines_file: Path, tmp_path: Path) -> None:
    target = tmp_path / "kept.txt"
    done = run_module("dedup", str(lines_file), "-o", str(target), "--model", str(tiny_dir), "--no-progress")
    assert done.returncode == 0, done.stderr
    assert target.read_text(encoding="utf-8") == "".join(LINES[i] + "\n" for i in KEPT)
    assert done.stdout == b"" and done.stderr.startswith(b"dedup: 7 items, 5 kept, 2 removed")
    failed = run_module("dedup", str(tmp_path / "missing.txt"), "--model", str(tiny_dir))
    assert failed.returncode == 2
    assert failed.stderr.decode().splitlines() == [
        f"lightembed: error: {tmp_path / 'missing.txt'}: No such file or directory"
    ]


def test_module_writes_a_path_naming_its_stdout_through_the_stream(
    tiny_dir: Path, lines_file: Path, tmp_path: Path
) -> None:
    # /dev/stdout here is the file the shell redirected stdout to: replacing that file (or
    # truncating it) would lose what was written to it before.
    captured = tmp_path / "captured.txt"
    captured.write_text("before\n", encoding="utf-8")
    model = ("--model", str(tiny_dir), "--no-progress")
    with captured.open("a", encoding="utf-8") as stdout:
        done = subprocess.run(
            [sys.executable, "-m", "lightembed", "embed", str(lines_file), "-o", "/dev/stdout", *model],
            stdout=stdout,
            stderr=subprocess.PIPE,
            check=False,
        )
    assert done.returncode == 0, done.stderr
    before, *rows = captured.read_text(encoding="utf-8").splitlines()
    assert before == "before" and [json.loads(row)["index"] for row in rows] == list(range(len(LINES)))
    vectors = tmp_path / "vectors.npy"  # a .npy path that is stdout
    vectors.symlink_to("/dev/stdout")
    with (tmp_path / "saved.npy").open("wb") as stdout:
        done = subprocess.run(
            [sys.executable, "-m", "lightembed", "embed", str(lines_file), "-o", str(vectors), *model],
            stdout=stdout,
            stderr=subprocess.PIPE,
            check=False,
        )
    assert done.returncode == 0, done.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "saved.npy"), lightembed.load(tiny_dir).embed(LINES))
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    rows = tmp_path / "rows.parquet"  # Parquet needs a file of its own: refused before the run
    pq.write_table(pa.table({"text": LINES}), rows)
    report = tmp_path / "report.jsonl"
    with (tmp_path / "out.bin").open("wb") as stdout:
        command = ["dedup", str(rows), "-o", "/dev/stdout", "--report", str(report)]
        done = subprocess.run(
            [sys.executable, "-m", "lightembed", *command, *model], check=False, stdout=stdout, stderr=subprocess.PIPE
        )
    assert done.returncode == 2 and b"write this output to a file of its own" in done.stderr
    assert not report.exists()


def test_module_closed_pipe_is_quiet(tiny_dir: Path, tmp_path: Path) -> None:
    source = tmp_path / "many.txt"
    source.write_text("".join(f"the cat sat on the mat {i}\n" for i in range(5000)), encoding="utf-8")
    process = subprocess.Popen(
        [sys.executable, "-m", "lightembed", "embed", str(source), "--model", str(tiny_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert json.loads(process.stdout.readline())["index"] == 0
    process.stdout.close()  # like `| head -1`
    stderr = process.stderr.read()
    assert process.wait(timeout=60) == 1
    assert b"Traceback" not in stderr and stderr == b""


def test_error_work_dir_with_a_folder_or_a_pipe_as_input(cli, tmp_path: Path) -> None:
    folder, fifo = tmp_path / "folder", tmp_path / "pipe"
    folder.mkdir()
    os.mkfifo(fifo)
    for command in ("embed", "dedup"):
        assert_error(cli(command, str(folder), "--work-dir", str(tmp_path / "w")), f"{folder}: Is a directory")
        assert_error(cli(command, str(fifo), "--work-dir", str(tmp_path / "w")), "stdin or a pipe cannot be read again")


def test_module_stopped_by_sigterm_removes_its_temporary_files(tiny_dir: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    words = ["cat", "dog", "sat", "mat", "ran", "park", "red", "car", "music", "song"]
    source = tmp_path / "many.txt"
    source.write_text("".join(" ".join(rng.choice(words, 6)) + "\n" for _ in range(300_000)), encoding="utf-8")
    scratch, out = tmp_path / "tmp", tmp_path / "out"
    scratch.mkdir()
    out.mkdir()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lightembed",
            "dedup",
            str(source),
            "-o",
            str(out / "kept.txt"),
            "--model",
            str(tiny_dir),
        ],
        env={**os.environ, "TMPDIR": str(scratch)},
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while not list(scratch.glob("lightembed-job-*")) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # inside the run: embedding or searching
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert err.decode().strip().endswith("lightembed: interrupted")
    assert list(scratch.iterdir()) == [] and list(out.iterdir()) == []
