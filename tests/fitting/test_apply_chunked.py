"""Applying a fitted model chunk by chunk: lazy, streaming, on a distributed client."""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import pytest
import xarray as xr

import moseq_xr
from moseq_xr.fitting import api, chunked
from moseq_xr.fitting.apply import apply

OPTIONS = dict(latent_dim=4, num_states=10, seed=3, progress=False)
APPLY = dict(num_iters=3, progress=False)
NUM_RECORDINGS = 3


@pytest.fixture(scope="module")
def data() -> xr.Dataset:
    return moseq_xr.simulate(num_recordings=NUM_RECORDINGS, num_frames=600, seed=11)


@pytest.fixture(scope="module")
def fitted(data) -> xr.DataTree:
    return api.fit(data.isel(recording=[0, 1]), num_iters=3, kappa=1e4, **OPTIONS)


@pytest.fixture(scope="module")
def store(data, tmp_path_factory):
    path = tmp_path_factory.mktemp("chunked") / "data.zarr"
    moseq_xr.save(data, path)
    return path


@pytest.fixture(scope="module")
def lazy(store) -> xr.Dataset:
    return moseq_xr.open(store)


@pytest.fixture(scope="module")
def labelled(lazy, fitted) -> xr.Dataset:
    return apply(lazy, fitted, **APPLY)


@pytest.fixture(scope="module")
def specs(data, fitted) -> dict:
    return chunked.result_specs(data, dict(fitted["model"].attrs))


@pytest.fixture(scope="module")
def computed(labelled, specs) -> xr.Dataset:
    return labelled[list(specs)].compute()


@pytest.fixture(scope="module")
def per_recording(data, fitted) -> list[xr.Dataset]:
    """In-memory apply of each recording alone, with the seed of its chunk."""
    return [
        apply(data.isel(recording=[i]), fitted, seed=chunked.chunk_seed(0, i), **APPLY)
        for i in range(NUM_RECORDINGS)
    ]


def _assert_same_results(left: xr.Dataset, right: xr.Dataset, names) -> None:
    for name in names:
        np.testing.assert_array_equal(left[name].values, right[name].values, name)


def _label_tasks(array: da.Array) -> list:
    return [
        key
        for key in dict(array.__dask_graph__())
        if dask.utils.key_split(key) == "label_chunk"
    ]


def test_a_store_is_labelled_lazily_one_task_per_stored_chunk(labelled, specs):
    for name in specs:
        assert isinstance(labelled[name].data, da.Array), name
        assert labelled[name].chunks[0] == (1,) * NUM_RECORDINGS
    assert len(_label_tasks(labelled["syllable"].data)) == NUM_RECORDINGS
    assert isinstance(labelled["position"].data, da.Array)  # inputs stay lazy
    entry = labelled.attrs["provenance"][-1]
    assert entry["operation"] == "moseq_xr.apply"
    assert entry["arguments"]["recording_chunks"] == [1] * NUM_RECORDINGS


def test_each_chunk_equals_the_in_memory_apply_with_its_seed(
    computed, per_recording, specs
):
    for i, alone in enumerate(per_recording):
        assert not chunked.is_dask_backed(alone)  # in-memory path unchanged
        _assert_same_results(computed.isel(recording=[i]), alone, specs)
    assert (computed["syllable"].values >= 0).mean() > 0.9


def test_the_lazy_layout_matches_the_in_memory_results(labelled, per_recording):
    alone = per_recording[0]
    for name in alone.data_vars:
        assert labelled[name].dims == alone[name].dims, name
        assert labelled[name].dtype == alone[name].dtype, name
        assert labelled[name].attrs == alone[name].attrs, name
    assert set(alone.data_vars) == set(labelled.data_vars)


def test_results_do_not_depend_on_the_scheduler(labelled, computed, specs):
    synchronous = labelled[list(specs)].compute(scheduler="synchronous")
    _assert_same_results(synchronous, computed, specs)


def test_an_in_memory_dataset_is_chunked_on_request(data, fitted, computed, specs):
    out = apply(data, fitted, recordings_per_chunk=1, **APPLY)
    assert isinstance(out["syllable"].data, da.Array)
    assert isinstance(out["position"].data, np.ndarray)
    _assert_same_results(out[list(specs)].compute(), computed, specs)


def test_an_untracked_recording_does_not_fail_the_job(data, fitted, computed):
    untracked = data.copy(deep=True)
    untracked["position"][{"recording": 1}] = np.nan
    untracked["confidence"][{"recording": 1}] = 0.0
    out = apply(untracked, fitted, recordings_per_chunk=1, **APPLY).compute()
    assert (out["syllable"].values[1] == -1).all()
    assert np.isnan(out["syllable_probability"].values[1]).all()
    assert not out["out_of_distribution"].values[1].any()
    for i in (0, 2):
        np.testing.assert_array_equal(
            out["syllable"].values[i], computed["syllable"].values[i]
        )


def test_only_one_chunk_is_in_memory_at_a_time(lazy, fitted, tmp_path, monkeypatch):
    """Writing the result reads a chunk, labels it, writes it, then the next."""
    events: list[tuple[str, int]] = []
    names = list(lazy["recording"].values)

    def spy_load(block, block_info=None):
        events.append(("load", block_info[0]["array-location"][0][0]))
        return block

    def spy_label(chunk, model, specs, options):
        assert not chunked.is_dask_backed(chunk)
        assert chunk.sizes["recording"] == 1
        events.append(("label", names.index(chunk["recording"].values[0])))
        return label(chunk, model, specs, options)

    label = chunked._label_chunk
    monkeypatch.setattr(chunked, "_label_chunk", spy_label)
    spied = lazy["position"].data.map_blocks(spy_load, meta=np.array((), float))
    out = apply(
        lazy.assign(position=lazy["position"].copy(data=spied)), fitted, **APPLY
    )
    results = out[["syllable", "syllable_probability"]]
    with dask.config.set(scheduler="synchronous"):
        results.drop_vars(list(results.coords)).to_zarr(
            tmp_path / "out.zarr", consolidated=False
        )
    assert [kind for kind, _ in events] == ["load", "label"] * NUM_RECORDINGS
    assert events[0::2] == [("load", i) for _, i in events[1::2]]
    assert sorted(i for _, i in events[1::2]) == list(range(NUM_RECORDINGS))


def test_results_written_to_zarr_and_reopened_match(
    labelled, computed, specs, tmp_path
):
    moseq_xr.save(labelled, tmp_path / "labelled.zarr")
    back = moseq_xr.open(tmp_path / "labelled.zarr")
    _assert_same_results(back, computed, specs)
    moseq_xr.validate(back)


def test_the_command_line_labels_a_store_chunk_by_chunk(
    store, fitted, computed, specs, tmp_path
):
    from moseq_xr.cli import main

    moseq_xr.save(fitted, tmp_path / "model.zarr")
    arguments = ["--model", str(tmp_path / "model.zarr"), "--num-iters", "3"]
    output = tmp_path / "out.zarr"
    assert main(["apply", str(store), "-o", str(output), *arguments]) == 0
    _assert_same_results(moseq_xr.open(output), computed, specs)
    assert not list(tmp_path.glob(".out.zarr*"))  # written beside, swapped in


def test_apply_on_a_distributed_client(lazy, fitted, computed, specs):
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(
        processes=False, n_workers=1, threads_per_worker=1, dashboard_address=":0"
    )
    with cluster, distributed.Client(cluster) as client:
        out = lazy.moseq.apply(fitted, client=client, **APPLY)
        keys = set(dask.core.flatten(out["syllable"].data.__dask_keys__()))
        assert keys <= set(client.futures)  # persisted: submitted at once
        _assert_same_results(out[list(specs)].compute(), computed, specs)


@pytest.mark.slow
def test_apply_on_a_cluster_of_worker_processes(lazy, fitted, computed, specs):
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(
        processes=True, n_workers=1, threads_per_worker=1, dashboard_address=":0"
    )
    with cluster, distributed.Client(cluster) as client:
        out = apply(lazy, fitted, client=client, **APPLY)
        _assert_same_results(out[list(specs)].compute(), computed, specs)


def test_chunk_seeds_are_fixed_distinct_and_small():
    seeds = [chunked.chunk_seed(7, i) for i in range(100)]
    assert seeds == [chunked.chunk_seed(7, i) for i in range(100)]
    assert len(set(seeds)) == 100
    assert all(0 <= s < 2**31 for s in seeds)
    assert chunked.chunk_seed(8, 0) != seeds[0]


def test_recording_chunks(data, lazy, monkeypatch):
    assert chunked.recording_chunks(lazy, None, 10) == (1, 1, 1)
    assert chunked.recording_chunks(lazy, 2, 10) == (2, 1)
    assert chunked.recording_chunks(data, 3, 10) == (3,)
    assert chunked.recording_chunks(data, None, 10) == (3,)  # all fit in 1 GiB
    one = chunked._bytes_per_recording(data, 10)
    monkeypatch.setattr(chunked, "CHUNK_BYTES", 2 * one + 1)
    assert chunked.recording_chunks(data, None, 10) == (2, 1)
    monkeypatch.setattr(chunked, "CHUNK_BYTES", 1)
    assert chunked.recording_chunks(data, None, 10) == (1, 1, 1)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="positive integer"):
            chunked.recording_chunks(data, bad, 10)


def test_in_memory_datasets_without_options_are_not_chunked(data):
    assert not chunked.wants_chunks(data, None, None)
    assert chunked.wants_chunks(data, None, 2)
    assert chunked.wants_chunks(data.chunk({"recording": 1}), None, None)


@pytest.mark.slow
def test_a_full_stage_model_gives_the_in_memory_layout(data, fitted, lazy):
    full = api.fit(
        data.isel(recording=[0]), stage="full", num_iters=2, init=fitted, **OPTIONS
    )
    out = apply(lazy.isel(recording=[0]), full, **APPLY)
    alone = apply(
        data.isel(recording=[0]), full, seed=chunked.chunk_seed(0, 0), **APPLY
    )
    for name in ("centroid", "heading", "latent_state"):
        assert out[name].dims == alone[name].dims
        assert out[name].attrs == alone[name].attrs
        np.testing.assert_array_equal(out[name].values, alone[name].values)
