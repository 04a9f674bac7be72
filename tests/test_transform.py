"""Standalone transform files: projection and adaptor applied to external embeddings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

import lightembed
from lightembed import ModelFormatError, Transform, load_transform, save_transform

RNG = np.random.default_rng(7)
PW, PB = RNG.standard_normal((6, 10)).astype(np.float32), RNG.standard_normal(6).astype(np.float32)
A0W, A0B = RNG.standard_normal((4, 6)).astype(np.float32), RNG.standard_normal(4).astype(np.float32)
A1W, A1B = RNG.standard_normal((6, 4)).astype(np.float32), RNG.standard_normal(6).astype(np.float32)


def full_transform(activation: str = "relu", normalize: bool = False) -> Transform:
    return Transform((PW, PB), ((A0W, A0B), (A1W, A1B)), activation, normalize)


def test_apply_equals_the_formula() -> None:
    x = RNG.standard_normal((5, 10)).astype(np.float32)
    p = x.astype(np.float64) @ PW.T + PB
    expected = p + np.tanh(p @ A0W.T + A0B) @ A1W.T + A1B
    out = full_transform("tanh").apply(x)
    assert out.dtype == np.float32 and out.shape == (5, 6)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(full_transform("tanh").apply(x, dim=3), expected[:, :3], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(full_transform("tanh").apply(x[0]), expected[0], rtol=1e-5, atol=1e-5)


def test_normalize_gives_unit_rows_and_zero_stays_zero() -> None:
    transform = Transform((PW, np.zeros(6, np.float32)), normalize=True)
    out = transform.apply(np.vstack([RNG.standard_normal(10), np.zeros(10)]).astype(np.float32), dim=4)
    np.testing.assert_allclose(np.linalg.norm(out[0]), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(out[1], 0.0)


def test_output_beyond_float32_raises_and_huge_rows_normalise() -> None:
    with pytest.raises(ValueError, match="overflows float32"):
        Transform((PW, PB)).apply(np.full((1, 10), 3e38, np.float32))
    huge = Transform((np.eye(6, 10, dtype=np.float32), np.zeros(6, np.float32)), normalize=True)
    out = huge.apply(np.full((1, 10), 1e20, np.float32))
    np.testing.assert_allclose(out, np.full((1, 6), 1 / np.sqrt(6)), rtol=1e-6)


def test_save_to_a_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="is a folder"):
        save_transform(tmp_path, full_transform())


def test_round_trip(tmp_path: Path) -> None:
    path = save_transform(tmp_path / "t.safetensors", full_transform("gelu", normalize=True))
    loaded = load_transform(path)
    assert (loaded.activation, loaded.normalize, loaded.in_dim, loaded.out_dim) == ("gelu", True, 10, 6)
    x = RNG.standard_normal((3, 10)).astype(np.float32)
    np.testing.assert_array_equal(loaded.apply(x), full_transform("gelu", normalize=True).apply(x))
    projection_only = load_transform(save_transform(tmp_path / "p.safetensors", Transform((PW, PB))))
    assert projection_only.adaptor == () and projection_only.out_dim == 6
    assert lightembed.load_transform is load_transform


@pytest.mark.parametrize(
    ("vectors", "dim", "message"),
    [
        (np.ones((2, 9), np.float32), None, r"shape \[n, 10\]"),
        (np.full((2, 10), np.nan, np.float32), None, "NaN"),
        (np.ones((2, 10), np.float32), 7, "between 1 and 6"),
        (np.ones((2, 10), np.float32), 0, "between 1 and 6"),
        (np.full((2, 10), 1e300), None, "beyond float32's range"),
    ],
)
def test_bad_vectors_and_dims(vectors: np.ndarray, dim: int | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        full_transform().apply(vectors, dim=dim)


def test_vectors_that_are_not_real_numbers_are_refused() -> None:
    with pytest.raises(TypeError, match="expected real-valued vectors, got complex64"):
        full_transform().apply(np.ones((2, 10), np.complex64))
    with pytest.raises(TypeError, match="expected real-valued vectors, got <U1"):
        full_transform().apply([["a"] * 10])
    with pytest.raises(ValueError, match="rectangular array of numbers"):
        full_transform().apply([[1.0] * 10, [1.0] * 9])
    ones = full_transform().apply(np.ones((2, 10)))
    np.testing.assert_allclose(full_transform().apply(np.ones((2, 10), np.int64)), ones)
    np.testing.assert_allclose(full_transform().apply(np.ones((2, 10), bool)), ones)
    np.testing.assert_allclose(full_transform().apply(np.ones((2, 10), object)), ones)
    with pytest.raises(ValueError, match="rectangular array of numbers"):
        full_transform().apply(np.array([["a"] * 10], object))


def test_empty_transform_is_not_saved(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="empty"):
        save_transform(tmp_path / "t.safetensors", Transform())


def write_raw(path: Path, tensors: dict[str, np.ndarray], **metadata: str) -> Path:
    meta = {"format": "lightembed-transform", "format_version": "1", "activation": "relu", "normalize": "false"}
    meta.update(metadata)
    save_file(tensors, str(path), metadata=meta)
    return path


@pytest.mark.parametrize(
    ("tensors", "metadata", "message"),
    [
        ({"projection.weight": PW, "projection.bias": PB}, {"format": "other"}, "'format' must be"),
        ({"projection.weight": PW, "projection.bias": PB}, {"format_version": "9"}, "format_version"),
        ({"projection.weight": PW, "projection.bias": PB}, {"activation": "swish"}, "activation"),
        ({"projection.weight": PW, "projection.bias": PB}, {"normalize": "yes"}, "normalize"),
        ({"projection.weight": PW}, {}, r"missing \['projection.bias'\]"),
        ({"projection.bias": PB}, {}, r"missing \['projection.weight'\]"),
        ({"projection.weight": PW, "projection.bias": PB, "extra": PB}, {}, r"unexpected \['extra'\]"),
        ({"projection.weight": PW, "extra": PB}, {}, r"missing \['projection.bias'\]; unexpected \['extra'\]"),
        ({"projection.weight": PW, "projection.bias": PB[:5]}, {}, r"projection\.bias.*shape"),
        ({"projection.weight": PW.astype(np.int32), "projection.bias": PB}, {}, "dtype"),
        ({"projection.weight": np.full_like(PW, np.inf), "projection.bias": PB}, {}, "infinite"),
        ({"adaptor.0.weight": A0W, "adaptor.0.bias": A0B}, {}, "last layer gives 4 dims, expected 6"),
        (
            {"projection.weight": PW, "projection.bias": PB, "adaptor.0.weight": A1W, "adaptor.0.bias": A1B},
            {},
            r"\[out, 6\]",
        ),
    ],
)
def test_invalid_files_name_the_problem(tmp_path: Path, tensors: dict, metadata: dict, message: str) -> None:
    path = write_raw(tmp_path / "t.safetensors", tensors, **metadata)
    with pytest.raises(ModelFormatError, match=message) as info:
        load_transform(path)
    assert str(path) in str(info.value)


def test_missing_and_corrupt_files(tmp_path: Path) -> None:
    with pytest.raises(ModelFormatError, match="missing"):
        load_transform(tmp_path / "absent.safetensors")
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(ModelFormatError, match="not a valid safetensors"):
        load_transform(broken)


def test_transform_command_checks_dim_and_output_before_writing(tmp_path: Path, capsys) -> None:
    from lightembed.cli import main

    path = save_transform(tmp_path / "t.safetensors", full_transform())
    vectors = RNG.standard_normal((5, 10)).astype(np.float32)
    np.save(tmp_path / "x.npy", vectors)
    base = ["transform", str(path), str(tmp_path / "x.npy")]
    assert main([*base, "-o", str(tmp_path / "y.npy"), "--dim", "4"]) == 0
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), full_transform().apply(vectors, dim=4), atol=1e-6)
    for extra, message in (
        (["-o", str(tmp_path / "z.npy"), "--dim", "7"], "--dim must be between 1 and 6"),
        (["-o", str(tmp_path / "z.npy"), "--dim", str(10**12)], "--dim must be between 1 and 6"),
        (["-o", "-"], "give -o a path ending in .npy, not '-'"),
        (["-o", str(tmp_path / "z.txt")], "give -o a path ending in .npy"),
        (["-o", str(tmp_path / "no" / "z.npy")], "cannot write here"),
        (["-o", ""], "the output path is empty"),
    ):
        assert main([*base, *extra]) == 2
        assert message in capsys.readouterr().err
    assert main(["transform", str(path), "-", "-o", str(tmp_path / "z.npy")]) == 2
    assert "give its path, not '-' (stdin)" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.safetensors", "x.npy", "y.npy"]
    vectors[3, 2] = np.nan
    np.save(tmp_path / "x.npy", vectors)
    assert main([*base, "-o", str(tmp_path / "z.npy")]) == 2
    assert f"{tmp_path / 'x.npy'}, row 3: vectors contain NaN" in capsys.readouterr().err
    assert main(["transform", str(tmp_path), str(tmp_path / "x.npy"), "-o", str(tmp_path / "z.npy")]) == 2
    assert f"{tmp_path}: is a folder, expected a safetensors file" in capsys.readouterr().err
    assert not (tmp_path / "z.npy").exists()


def test_a_transform_with_nan_weights_is_not_written(tmp_path: Path) -> None:
    weight = PW.copy()
    weight[0, 0] = np.nan
    with pytest.raises(ValueError, match=r"not written: \['projection.weight'\] hold NaN"):
        save_transform(tmp_path / "t.safetensors", Transform((weight, PB)))
    assert list(tmp_path.iterdir()) == []


def test_gelu_is_the_tanh_approximation() -> None:
    from lightembed.transform import ACTIVATION_FUNCTIONS

    x = np.array([-2.0, -0.5, 0.5, 1.0, 2.0], np.float32)
    expected = [-0.04540229, -0.15428598, 0.34571400, 0.84119199, 1.95459769]  # torch gelu(x, approximate="tanh")
    np.testing.assert_allclose(ACTIVATION_FUNCTIONS["gelu"](x), expected, atol=1e-6)
