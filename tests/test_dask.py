"""Dask: embedding and distributed deduplication on a LocalCluster with two worker processes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_scale import corpus_lines, same_result

import lightembed

pytest.importorskip("dask")
distributed = pytest.importorskip("distributed")
dd = pytest.importorskip("dask.dataframe")
pd = pytest.importorskip("pandas")
import dask.bag as db

import lightembed.dask as led
from lightembed import pairs as pairs_module


@pytest.fixture(scope="module")
def client():
    """Two worker processes, one thread each (starts in a few seconds)."""
    with (
        distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


def test_dask_dedup_equals_the_single_machine_result(client, tiny_dir: Path) -> None:
    texts = corpus_lines(1500, seed=3)
    spec = led.ModelSpec(str(tiny_dir))
    model = lightembed.load(tiny_dir)
    local = model.deduplicate(texts, 0.9, mode="partitioned", clusters=12, probes=3)
    bag = db.from_sequence(texts, npartitions=5)
    result = led.deduplicate(bag, 0.9, model=spec, clusters=12, probes=3)
    assert len(local.removed) > 200 and same_result(result, local)
    np.testing.assert_allclose(result.scores, local.scores, atol=1e-6)
    assert client.run(led.loaded_models) == dict.fromkeys(client.run(led.loaded_models), 1)  # once per worker

    frame = dd.from_pandas(pd.DataFrame({"id": range(len(texts)), "body": texts}), npartitions=3)
    again = led.deduplicate(frame, 0.9, "body", model=spec, clusters=12, probes=3, groups=4)
    assert same_result(again, local)
    kept = led.select_kept(frame, again).compute()
    assert kept["id"].tolist() == local.kept.tolist() and kept["body"].tolist() == local.kept_items
    assert led.select_kept(bag, result).compute() == local.kept_items
    with pytest.raises(ValueError, match="holds no texts .* use lightembed.dask.select_kept"):
        _ = result.kept_items
    with pytest.raises(ValueError, match="no vectors to re-threshold"):
        result.rethreshold(0.8)


def test_dask_dedup_with_a_small_pair_budget_searches_again_to_the_same_result(
    client, tiny_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    texts = corpus_lines(1500, seed=4)
    local = lightembed.load(tiny_dir).deduplicate(texts, 0.7, mode="partitioned", clusters=12, probes=3)
    passes = []
    real = led.bounded_pairs

    def counted(run_pass, n: int):
        def run(number: int, *args):
            passes.append(number)
            return run_pass(number, *args)

        return real(run, n)

    monkeypatch.setattr(pairs_module, "pair_budget", lambda n: 40)
    monkeypatch.setattr(led, "bounded_pairs", counted)
    result = led.deduplicate(
        db.from_sequence(texts, npartitions=4), 0.7, model=led.ModelSpec(str(tiny_dir)), clusters=12, probes=3
    )
    assert len(local.removed) > 300 and same_result(result, local) and len(passes) >= 2


def test_dask_embed_equals_embed(client, tiny_dir: Path) -> None:
    texts = corpus_lines(300, seed=4)
    spec = led.ModelSpec(str(tiny_dir))
    vectors = led.embed(db.from_sequence(texts, npartitions=4), model=spec).compute()
    np.testing.assert_array_equal(vectors, lightembed.load(tiny_dir).embed(texts))
    frame = dd.from_pandas(pd.DataFrame({"body": texts}), npartitions=2)
    codes = led.embed(frame, "body", model=led.ModelSpec(str(tiny_dir), binary=True)).compute()
    np.testing.assert_array_equal(codes, lightembed.load(tiny_dir, binary=True).embed(texts))


def test_dask_bad_inputs_are_named(tiny_dir: Path) -> None:
    spec = led.ModelSpec(str(tiny_dir))
    frame = dd.from_pandas(pd.DataFrame({"body": ["a", "b"]}), npartitions=1)
    with pytest.raises(ValueError, match="no column 'text'"):
        led.deduplicate(frame, 0.9, "text", model=spec)
    with pytest.raises(ValueError, match="name the column"):
        led.embed(frame, model=spec)
    with pytest.raises(ValueError, match="a Series holds texts: leave column out"):
        led.embed(frame["body"], "body", model=spec)
    with pytest.raises(ValueError, match="a Bag holds texts: leave column out"):
        led.embed(db.from_sequence(["a"], npartitions=1), "body", model=spec)
    with pytest.raises(TypeError, match="expected a Dask Bag, DataFrame or Series"):
        led.embed(["a", "b"], model=spec)
    with pytest.raises(TypeError, match="item 0 of partition 1 is NoneType"):
        led.embed(db.from_sequence(["a", None], npartitions=2), model=spec).compute(scheduler="sync")
    with pytest.raises(TypeError, match="item 1 of partition 0 is int"):
        led.deduplicate(db.from_sequence(["a", 3], npartitions=1), 0.9, model=spec)
    with pytest.raises(ValueError, match="threshold must be between -1 and 1"):
        led.deduplicate(db.from_sequence(["a"], npartitions=1), 2.0, model=spec)
    bag = db.from_sequence(["a", "b"], npartitions=1)
    for options, message in [({"clusters": -3}, "clusters"), ({"seed": -1}, "seed"), ({"groups": 0}, "groups")]:
        with pytest.raises(ValueError, match=message):
            led.deduplicate(bag, 0.9, model=spec, **options)
