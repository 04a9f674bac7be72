"""Tests of binary-code training: the straight-through sign, the start, the loss, learning codes
that rank better than plain sign bits on data with a known structure, the exported folder and
its round trip through the runtime, the suite's binary encoders, and the CLI."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from safetensors import safe_open

torch = pytest.importorskip("torch")
pytest.importorskip("scipy")

from scipy.stats import spearmanr
from tiny import WORDS, add_reranker, tiny_codebook, write_tiny_model

import lightembed
from lightembed.binary import hamming_similarity, pack_signs, unpack_signs
from lightembed.pooling import mean_pool
from lightembed.scoring import unit_rows
from lightembed_train.binary import (
    BinarySettings,
    centred,
    code_start,
    itq_rotation,
    listwise_distillation,
    nearest_groups,
    rotation_start,
    sign_ste,
    train_binary_codebook,
    train_binary_model,
)
from lightembed_train.cli import main as train_cli
from lightembed_train.evaluate import encoder_from_spec
from lightembed_train.tune import pooled, tokenize


def random_texts(count: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=rng.integers(1, 7))) for _ in range(count)]


def test_sign_ste_is_hard_forward_and_identity_backward() -> None:
    z = torch.tensor([-2.0, -0.0, 0.0, 1e-6, 3.0], requires_grad=True)
    out = sign_ste(z)
    assert out.tolist() == [-1.0, -1.0, -1.0, 1.0, 1.0]  # 0 is a 0 bit, as pack_signs packs it
    (out * torch.arange(5.0)).sum().backward()
    assert z.grad.tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]


@pytest.mark.parametrize(("dim", "bits"), [(8, 8), (8, 5), (8, 20), (3, 7)])
def test_rotation_start_stacks_orthonormal_blocks(dim: int, bits: int) -> None:
    start = rotation_start(dim, bits, seed=1)
    assert start.shape == (dim, bits)
    assert start.dtype == np.float32
    for first in range(0, bits, dim):
        block = start[:, first : first + dim].astype(np.float64)
        np.testing.assert_allclose(block.T @ block, np.eye(block.shape[1]), atol=1e-5)
    np.testing.assert_array_equal(start, rotation_start(dim, bits, seed=1))
    assert not np.array_equal(start, rotation_start(dim, bits, seed=2))


@pytest.mark.parametrize(("dim", "bits"), [(8, 8), (8, 5), (8, 20)])
def test_sign_start_keeps_the_float_columns_first(dim: int, bits: int) -> None:
    start = code_start(dim, bits, "sign", seed=3)
    assert start.shape == (dim, bits) and start.dtype == np.float32
    np.testing.assert_array_equal(start[:, : min(dim, bits)], np.eye(dim, min(dim, bits)))
    np.testing.assert_array_equal(
        start[:, dim:], rotation_start(dim, bits - dim, seed=3) if bits > dim else start[:, dim:]
    )
    vectors = np.random.default_rng(0).standard_normal((50, dim)).astype(np.float32)
    width = min(dim, bits)
    np.testing.assert_array_equal(pack_signs(vectors @ start[:, :width]), pack_signs(vectors[:, :width]))
    np.testing.assert_array_equal(code_start(dim, bits, "rotation", seed=3), rotation_start(dim, bits, seed=3))
    with pytest.raises(ValueError, match="start must be one of"):
        code_start(dim, bits, "identity")


def quantisation_loss(vectors: np.ndarray, rotation: np.ndarray) -> float:
    rotated = vectors @ rotation
    return float(np.square(np.where(rotated > 0, 1.0, -1.0) - rotated).sum())


def test_itq_rotation_finds_the_planted_axes() -> None:
    # Known structure: points near the corners (±1, ±1, ±1, ±1) of a cube, seen through a random
    # rotation. The plain axes split the clusters badly; ITQ must rotate them back onto the axes.
    rng = np.random.default_rng(5)
    corners = np.where(rng.random((2000, 4)) > 0.5, 1.0, -1.0)
    planted = rotation_start(4, 4, seed=9)
    vectors = ((corners + 0.1 * rng.standard_normal((2000, 4))) @ planted.T).astype(np.float32)
    one = itq_rotation(vectors, seed=0)  # ITQ finds a local minimum: better than the axes, not always the best
    assert quantisation_loss(vectors, one) < quantisation_loss(vectors, np.eye(4))
    rotation = itq_rotation(vectors, seed=0, restarts=5)
    np.testing.assert_allclose(rotation.T @ rotation, np.eye(4), atol=1e-5)
    assert quantisation_loss(vectors, rotation) <= quantisation_loss(vectors, one)
    assert quantisation_loss(vectors, rotation) < 0.1 * quantisation_loss(vectors, np.eye(4))
    codes = np.where(vectors @ rotation > 0, 1.0, -1.0)
    # each planted corner gets one code: codes agree with the corners up to a signed permutation of bits
    agreement = np.abs(codes.T @ corners) / len(corners)
    np.testing.assert_allclose(np.sort(agreement.max(axis=1)), np.ones(4), atol=0.01)


def test_itq_start_rotates_within_prefix_blocks() -> None:
    rng = np.random.default_rng(6)
    vectors = (rng.standard_normal((500, 8)) * np.linspace(3, 0.5, 8)).astype(np.float32)
    start = code_start(8, 20, "itq", seed=2, vectors=vectors, blocks=(4, 8, 20))
    assert start.shape == (8, 20)
    np.testing.assert_array_equal(start[:4, 4:8], 0.0)  # the first 4 bits use only the first 4 columns
    np.testing.assert_array_equal(start[4:, :4], 0.0)
    np.testing.assert_allclose(start[:, :8].T @ start[:, :8], np.eye(8), atol=1e-5)
    np.testing.assert_array_equal(start[:, 8:], rotation_start(8, 12, seed=2))
    for m in (4, 8):
        assert quantisation_loss(vectors[:, :m], start[:m, :m]) < quantisation_loss(vectors[:, :m], np.eye(m))
    with pytest.raises(ValueError, match="itq start needs"):
        code_start(8, 20, "itq", vectors=None)


def test_centred_table_gives_balanced_bits(tiny: lightembed.LightEmbed) -> None:
    rng = np.random.default_rng(7)
    table = (rng.standard_normal((tiny.config.vocab_size, 8)) + 2.0).astype(np.float32)  # every column offset
    tokens = tokenize(tiny, random_texts(400, 8))
    vectors = pooled(table, tokens)
    assert (vectors > 0).mean() > 0.95  # plain sign bits are almost all 1
    with_tokens = vectors[tokens.lengths > 0]
    shifted = centred(table, with_tokens)
    np.testing.assert_allclose(
        pooled(shifted, tokens)[tokens.lengths > 0], with_tokens - np.median(with_tokens, axis=0), atol=1e-5
    )
    ones = (pooled(shifted, tokens)[tokens.lengths > 0] > 0).mean(axis=0)
    np.testing.assert_allclose(ones, 0.5, atol=0.01)  # each bit splits the texts in half
    with pytest.raises(ValueError, match="at least one text"):
        centred(table, with_tokens[:0])


def test_nearest_groups_match_brute_force() -> None:
    rng = np.random.default_rng(4)
    vectors = rng.standard_normal((70, 6)).astype(np.float32)
    groups = nearest_groups(vectors, 4, block=16)  # several blocks, the last one short
    assert groups.shape == (70, 4)
    np.testing.assert_array_equal(groups[:, 0], np.arange(70))
    cosines = unit_rows(vectors) @ unit_rows(vectors).T
    np.fill_diagonal(cosines, -np.inf)
    expected = np.sort(np.argsort(-cosines, axis=1)[:, :3], axis=1)
    np.testing.assert_array_equal(np.sort(groups[:, 1:], axis=1), expected)
    for k in (1, 71):
        with pytest.raises(ValueError, match="k must lie in"):
            nearest_groups(vectors, k)


def test_listwise_distillation_prefers_codes_that_keep_the_order() -> None:
    rng = np.random.default_rng(0)
    targets = torch.tensor(unit_rows(rng.standard_normal((32, 6))))
    planes = torch.tensor(rng.standard_normal((6, 256)), dtype=torch.float32)
    faithful = torch.where(targets @ planes > 0, 1.0, -1.0)  # SimHash of the targets: keeps their order
    shuffled = faithful[torch.randperm(32, generator=torch.Generator().manual_seed(0))]
    scale = torch.tensor(20.0)
    good = listwise_distillation(faithful, targets, (64, 256), 0.1, scale)
    bad = listwise_distillation(shuffled, targets, (64, 256), 0.1, scale)
    assert good.item() >= 0.0
    assert good.item() < 0.5 * bad.item()


def test_settings_reject_what_cannot_train() -> None:
    bad = [
        ({"bits": 0}, "bits"),
        ({"bits": 64, "prefixes": (32, 128)}, "prefix"),
        ({"bits": 64, "prefixes": ()}, "prefix"),
        ({"bits": 64, "prefixes": (64,), "epochs": 0}, "epochs"),
        ({"bits": 64, "prefixes": (64,), "batch_size": 1}, "batch_size"),
        ({"bits": 64, "prefixes": (64,), "learning_rate": 0.0}, "learning_rate"),
        ({"bits": 64, "prefixes": (64,), "contrastive_weight": -1.0}, "contrastive_weight"),
        ({"bits": 64, "prefixes": (64,), "neighbours": 1}, "neighbours"),
        ({"bits": 64, "prefixes": (64,), "start": "zeros"}, "start"),
    ]
    for kwargs, word in bad:
        with pytest.raises(ValueError, match=word):
            BinarySettings(**kwargs).check()


def spearman_with_float(codes_table: np.ndarray, float_table: np.ndarray, texts_tokens, bits: int) -> float:
    """Spearman between the Hamming similarity of codes and the float cosine, over all pairs of texts."""
    floats = unit_rows(pooled(float_table, texts_tokens))
    codes = pack_signs(pooled(codes_table, texts_tokens)[:, :bits])
    upper = np.triu_indices(len(floats), k=1)
    return float(spearmanr(hamming_similarity(codes, codes, bits)[upper], (floats @ floats.T)[upper]).statistic)


def test_trained_codes_rank_like_the_float_model_better_than_plain_sign(tiny: lightembed.LightEmbed) -> None:
    # Known structure: a float codebook whose columns have very unequal scales (as PCA-ordered
    # columns do), so the cosine is dominated by the first columns and plain sign bits, one per
    # column whatever its scale, rank pairs badly. Trained 4-bit and 16-bit codes must do better.
    rng = np.random.default_rng(0)
    scales = np.array([8.0, 4.0, 2.0, 1.0, 0.5, 0.25, 0.12, 0.06], dtype=np.float32)
    float_table = (rng.standard_normal((tiny.config.vocab_size, 8)) * scales).astype(np.float32)
    train, held_out = tokenize(tiny, random_texts(1000, 1)), tokenize(tiny, random_texts(300, 2))
    targets = pooled(float_table, train)
    settings = BinarySettings(bits=16, prefixes=(4, 16), epochs=5, batch_size=100, learning_rate=1e-2)
    start = rotation_start(8, 16, seed=0)
    result = train_binary_codebook(float_table, start, train, targets, settings=settings, device="cpu", progress=False)
    assert result.table.shape == (tiny.config.vocab_size, 16)
    assert result.best_epoch == settings.epochs  # no dev pairs: the last epoch
    rank = {
        (kind, bits): spearman_with_float(table, float_table, held_out, bits)
        for kind, table in (("trained", result.table), ("start", float_table @ start), ("plain", float_table))
        for bits in (4, 8, 16)
    }
    # 4 bits: far better than the plain sign of the first 4 columns and than the random start.
    assert rank["trained", 4] > rank["start", 4] + 0.05
    assert rank["trained", 4] > rank["plain", 4] + 0.1
    # 16 bits (twice the float width): better than the start (a SimHash-like code) and than all 8 plain bits.
    assert rank["trained", 16] > rank["start", 16]
    assert rank["trained", 16] > rank["plain", 8] + 0.2


def test_train_rejects_mismatched_inputs(tiny: lightembed.LightEmbed) -> None:
    table = tiny_codebook(8)
    tokens = tokenize(tiny, random_texts(10, 0))
    settings = BinarySettings(bits=16, prefixes=(16,), epochs=1, batch_size=4)
    with pytest.raises(ValueError, match="projection has shape"):
        train_binary_codebook(table, rotation_start(8, 8), tokens, pooled(table, tokens), settings=settings)
    with pytest.raises(ValueError, match="targets"):
        train_binary_codebook(table, rotation_start(8, 16), tokens, pooled(table, tokens)[:5], settings=settings)
    empty = tokenize(tiny, ["", "unknownword"])
    with pytest.raises(ValueError, match="at least two texts"):
        train_binary_codebook(table, rotation_start(8, 16), empty, pooled(table, empty), settings=settings)


@pytest.fixture(scope="module")
def trained_folder(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny base model and the folder `train_binary_model` makes from it (24 bits, int8)."""
    root = tmp_path_factory.mktemp("binary")
    base = write_tiny_model(root / "base", dim=8, matryoshka_dims=(4,))
    corpus = root / "corpus.txt"
    corpus.write_text("\n".join(random_texts(400, 3)) + "\n", encoding="utf-8")
    settings = BinarySettings(bits=24, prefixes=(8, 24), epochs=2, batch_size=64, learning_rate=3e-3)
    out = train_binary_model(base, [corpus], root / "binary", settings=settings, progress=False, command="test")
    return base, out


def test_binary_codes_for_a_model_with_a_reranker_keep_it(tmp_path: Path) -> None:
    base = add_reranker(write_tiny_model(tmp_path / "base", dim=8, matryoshka_dims=(4,)), dim=8)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(random_texts(100, 3)) + "\n", encoding="utf-8")
    settings = BinarySettings(bits=16, prefixes=(16,), epochs=1, batch_size=32)
    out = train_binary_model(base, [corpus], tmp_path / "binary", settings=settings, progress=False)
    model, original = lightembed.load(out), lightembed.load(base)
    assert model.config.reranker and model.config.binary_codebook
    assert model.rerank("the cat", ["a cat sat", "piano"]) == original.rerank("the cat", ["a cat sat", "piano"])


@pytest.mark.parametrize(("weights", "int8"), [(True, False), (False, True)])
def test_binary_codes_for_a_model2vec_folder(tmp_path: Path, weights: bool, int8: bool) -> None:
    """Token weights and an int8 codebook without a scale are written as the reader sees them."""
    from test_folder import write_model2vec

    base = write_model2vec(tmp_path / "m2v", weights=weights, mapping=False, int8=int8)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(random_texts(100, 3)) + "\n", encoding="utf-8")
    settings = BinarySettings(bits=16, prefixes=(16,), epochs=1, batch_size=32)
    out = train_binary_model(base, [corpus], tmp_path / "binary", settings=settings, progress=False)
    texts = random_texts(20, 4)
    np.testing.assert_array_equal(lightembed.load(out).embed(texts), lightembed.load(base).embed(texts))
    assert lightembed.load(out, binary=True).embed(texts).shape == (20, 2)


def test_binary_codes_trained_again_keep_one_float_model_card(tmp_path: Path) -> None:
    base = write_tiny_model(tmp_path / "model", dim=8, matryoshka_dims=(4,))
    (base / "README.md").write_text("# the float model\n\n## How it was made\n\nBy hand.\n", encoding="utf-8")
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(random_texts(100, 3)) + "\n", encoding="utf-8")
    for bits in (16, 8):  # in place, twice
        settings = BinarySettings(bits=bits, prefixes=(bits,), epochs=1, batch_size=32)
        train_binary_model(base, [corpus], base, settings=settings, progress=False)
    card = (base / "README.md").read_text(encoding="utf-8")
    assert card.count("trained binary codes") == 1 and card.count("## The float model's card") == 1
    assert "[34, 8]" in card and "[34, 16]" not in card
    assert card.endswith("## The float model's card\n\nthe float model\n\n### How it was made\n\nBy hand.\n")


def test_exported_folder_round_trip(trained_folder: tuple[Path, Path]) -> None:
    base, out = trained_folder
    float_model, model = lightembed.load(base), lightembed.load(out)
    texts = [*random_texts(50, 4), "", "unknownword"]
    np.testing.assert_array_equal(model.embed(texts), float_model.embed(texts))  # the float model is unchanged
    with safe_open(str(out / "model.safetensors"), framework="numpy") as handle:
        assert handle.get_tensor("binary_embeddings").dtype == np.int8
        stored = handle.get_tensor("binary_embeddings").astype(np.float32)
        table = stored * handle.get_tensor("binary_embeddings_scale")[:, None]
    assert table.shape == (model.config.vocab_size, 24)
    codes = lightembed.load(out, binary=True)
    assert codes.dim == 24
    flat, lengths = codes.tokens.encode(texts)
    expected = pack_signs(mean_pool(table, flat, lengths))
    np.testing.assert_array_equal(codes.embed(texts), expected)
    assert not codes.embed("").any()  # an empty text has no set bits
    for bits in (8, 12):  # a prefix of the bits is a Matryoshka slice of the codebook
        prefix = lightembed.load(out, binary=True, dim=bits)
        np.testing.assert_array_equal(prefix.embed(texts), pack_signs(mean_pool(table[:, :bits], flat, lengths)))
    card = (out / "README.md").read_text(encoding="utf-8")
    assert "binary_embeddings" in card and "test" in card
    assert model.config.provenance["settings"]["bits"] == 24
    assert len(model.config.provenance["history"]) == 3


def test_binary_encoder_gives_sign_vectors_whose_cosine_is_the_hamming_similarity(
    trained_folder: tuple[Path, Path],
) -> None:
    base, out = trained_folder
    texts = random_texts(20, 5)
    encoder = encoder_from_spec(f"{out}:binary@24", out.parent)
    vectors = encoder.encode(texts)
    assert vectors.shape == (20, 24)
    assert set(np.unique(vectors)) <= {-1.0, 1.0}
    codes = lightembed.load(out, binary=True).embed(texts)
    np.testing.assert_array_equal(vectors, unpack_signs(codes, 24))
    np.testing.assert_allclose(
        unit_rows(vectors) @ unit_rows(vectors).T, hamming_similarity(codes, codes, 24), atol=1e-6
    )
    plain = encoder_from_spec(f"{base}:binary@4", out.parent)  # no binary codebook: plain sign bits
    np.testing.assert_array_equal(plain.encode(texts), np.where(lightembed.load(base).embed(texts)[:, :4] > 0, 1, -1))
    assert encoder.fingerprint != plain.fingerprint
    with pytest.raises(ValueError, match="dim"):
        encoder_from_spec(f"{base}:binary@9", out.parent)  # more bits than the float width


def test_simhash_encoder_is_seeded_sign_bits_of_a_random_projection(trained_folder: tuple[Path, Path]) -> None:
    base, _ = trained_folder
    texts = random_texts(20, 6)
    encoder = encoder_from_spec(f"{base}:simhash@40", base.parent)
    vectors = encoder.encode(texts)
    assert vectors.shape == (20, 40)  # more bits than the float width
    planes = np.random.default_rng(0).standard_normal((8, 40)).astype(np.float32)
    np.testing.assert_array_equal(vectors, np.where(lightembed.load(base).embed(texts) @ planes > 0, 1.0, -1.0))
    assert "simhash40" in encoder.fingerprint


def test_cli_binary(trained_folder: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base, _ = trained_folder
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(random_texts(100, 7)) + "\n", encoding="utf-8")
    common = ["-q", "binary", "--base", str(base), "--corpus", str(corpus), "--no-dev", "--epochs", "1"]
    out = tmp_path / "codes"
    assert train_cli([*common, "--out", str(out), "--bits", "16", "--batch-size", "32", "--dtype", "float16"]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    model = lightembed.load(out, binary=True)
    assert model.dim == 16
    assert list(model.config.provenance["settings"]["prefixes"]) == [16]
    options = ["--start", "itq", "--centre", "--neighbours", "4", "--projection-only", "--projection-lr", "1e-2"]
    sign = tmp_path / "sign"
    assert train_cli([*common, "--out", str(sign), "--bits", "12", "--batch-size", "32", *options]) == 0
    capsys.readouterr()
    settings = lightembed.load(sign).config.provenance["settings"]
    assert (settings["start"], settings["centre"], settings["neighbours"]) == ("itq", True, 4)
    assert not settings["train_codebook"]
    assert "4 nearest" not in (sign / "README.md").read_text(encoding="utf-8")  # 3 neighbours + the text itself
    assert "3 nearest corpus texts" in (sign / "README.md").read_text(encoding="utf-8")
    bad = [
        (["--bits", "0"], "bits must be between 1 and 8192, got 0"),
        (["--bits", "1000000000"], "bits must be between 1 and 8192"),
        (["--bits", "16", "--prefixes", "8,32"], "prefix sizes"),
        (["--bits", "16", "--prefixes", "x"], "comma-separated integers"),
        (["--bits", "16", "--lr", "-1"], "learning_rate"),
        (["--bits", "16", "--neighbours", "1"], "neighbours"),
    ]
    for extra, message in bad:
        assert train_cli([*common, "--out", str(tmp_path / "bad"), *extra]) == 2
        assert message in capsys.readouterr().err
    missing = ["-q", "binary", "--corpus", str(tmp_path / "nope.txt"), "--out", str(tmp_path / "x"), "--no-dev"]
    assert train_cli(missing) == 2
    assert "nope.txt" in capsys.readouterr().err
    latin = tmp_path / "latin.txt"
    latin.write_bytes("caf\xe9 au lait\n".encode("latin-1"))
    assert train_cli(["-q", "binary", "--corpus", str(latin), "--out", str(tmp_path / "x"), "--no-dev"]) == 2
    assert f"{latin}:1: not UTF-8 text" in capsys.readouterr().err


def test_a_base_with_a_projection_is_refused_by_name(tmp_path: Path) -> None:
    parts = lightembed.read_model(write_tiny_model(tmp_path / "plain", dim=8, matryoshka_dims=(4,)))
    config = dataclasses.replace(parts.config, projection=True)
    weight = np.random.default_rng(0).standard_normal((8, 8)).astype(np.float32)
    projection = {"projection.weight": weight, "projection.bias": np.zeros(8, np.float32)}
    base = lightembed.write_model(tmp_path / "base", config, parts.embeddings, parts.tokenizer, projection)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(random_texts(50, 3)) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match="binary needs a plain codebook"):
        train_binary_model(
            base, [corpus], tmp_path / "binary", settings=BinarySettings(bits=8, prefixes=(8,)), progress=False
        )


@pytest.mark.parametrize("weights", [False, True])
def test_base_tensors_of_a_model2vec_folder_keep_float16(tmp_path: Path, weights: bool) -> None:
    from safetensors.numpy import load_file, save_file
    from test_folder import write_model2vec

    from lightembed_train.codebook import base_tensors

    folder = write_model2vec(tmp_path / "m2v", weights=weights, mapping=False)
    tensors = load_file(str(folder / "model.safetensors"))
    tensors["embeddings"] = tensors["embeddings"].astype(np.float16)
    save_file(tensors, str(folder / "model.safetensors"))
    model = lightembed.load(folder)
    stored = base_tensors(model)["embeddings"]
    assert stored.dtype == np.float16
    np.testing.assert_array_equal(stored, model.parts.embeddings)
