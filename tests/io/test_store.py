"""The Zarr project store: lossless round trips, appending, atomic writes."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import moseq_xr
from moseq_xr.exceptions import StoreError
from moseq_xr.io import store as store_module


@pytest.fixture
def poses(rng) -> xr.Dataset:
    position = rng.normal(size=(40, 3, 2))
    position[5:8, 1] = np.nan
    confidence = rng.uniform(size=(40, 3))
    ds = moseq_xr.from_arrays(
        {"mouse_a": position, "mouse_b": rng.normal(size=(25, 3, 2))},
        keypoints=["nose", "neck", "tail"],
        fps=30.0,
        confidences={"mouse_a": confidence},
    )
    return ds.assign_attrs(
        skeleton=[["nose", "neck"], ["neck", "tail"]], space_unit="pixels"
    )


def test_round_trip_is_lossless(poses, tmp_path):
    path = moseq_xr.save(poses, tmp_path / "project.zarr")
    back = moseq_xr.open(path)
    assert back["position"].chunks is not None  # lazy, Dask-backed
    assert back["position"].chunks[0] == (1, 1)  # one chunk per recording
    loaded = back.load()
    xr.testing.assert_identical(loaded, poses)
    for name, variable in poses.variables.items():
        assert loaded[name].dtype == variable.dtype, name
    assert np.isnan(loaded["position"].values[0, 5:8, :, 1]).all()
    assert loaded.attrs["provenance"] == poses.attrs["provenance"]


def test_append_recordings(poses, rng, tmp_path):
    path = moseq_xr.save(poses, tmp_path / "project.zarr")
    more = moseq_xr.from_arrays(
        {"mouse_c": rng.normal(size=(60, 3, 2))},
        keypoints=["tail", "nose", "neck"],
        fps=30.0,
    )
    moseq_xr.save(more, path, mode="a")
    back = moseq_xr.open(path).load()
    moseq_xr.validate(back, deep=True)
    assert back["recording"].values.tolist() == ["mouse_a", "mouse_b", "mouse_c"]
    assert back["n_frames"].values.tolist() == [40, 25, 60]
    stored = back["position"].sel(recording="mouse_c").isel(time=slice(0, 60))
    expected = more["position"].sel(
        recording="mouse_c", keypoint=["nose", "neck", "tail"]
    )
    np.testing.assert_array_equal(
        stored.values, expected.values
    )  # reordered to the store's
    xr.testing.assert_identical(
        back["position"].sel(recording="mouse_a").isel(time=slice(0, 40)),
        poses["position"].sel(recording="mouse_a"),
    )
    assert back.attrs["provenance"][-1]["arguments"]["added"] == ["mouse_c"]


def test_append_refuses_clashes_and_mismatches(poses, rng, tmp_path):
    path = moseq_xr.save(poses, tmp_path / "project.zarr")
    with pytest.raises(StoreError, match=r"\['mouse_a'\] are already"):
        moseq_xr.save(poses.isel(recording=[0]), path, mode="a")
    other = moseq_xr.from_arrays(
        {"x": rng.normal(size=(5, 2, 2))}, keypoints=["a", "b"], fps=30
    )
    with pytest.raises(StoreError, match="keypoints"):
        moseq_xr.save(other, path, mode="a")
    faster = moseq_xr.from_arrays(
        {"y": rng.normal(size=(5, 3, 2))}, keypoints=["nose", "neck", "tail"], fps=60
    )
    with pytest.raises(StoreError, match="fps"):
        moseq_xr.save(faster, path, mode="a")


def test_failed_write_leaves_previous_store_readable(poses, tmp_path, monkeypatch):
    path = moseq_xr.save(poses, tmp_path / "project.zarr")

    def broken(ds, target):
        target.mkdir()
        (target / "half-written").write_text("x")
        raise OSError("disk full")

    monkeypatch.setattr(store_module, "_write_dataset", broken)
    with pytest.raises(StoreError, match="disk full"):
        moseq_xr.save(poses.isel(recording=[0]), path)
    xr.testing.assert_identical(moseq_xr.open(path).load(), poses)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["project.zarr"]  # no debris


def test_interrupted_write_leaves_previous_store_readable(poses, tmp_path, monkeypatch):
    path = moseq_xr.save(poses, tmp_path / "project.zarr")

    def interrupted(ds, target):
        raise KeyboardInterrupt

    monkeypatch.setattr(store_module, "_write_dataset", interrupted)
    with pytest.raises(KeyboardInterrupt):
        moseq_xr.save(poses.isel(recording=[1]), path)
    xr.testing.assert_identical(moseq_xr.open(path).load(), poses)


def test_refuses_to_overwrite_foreign_directories(poses, tmp_path):
    foreign = tmp_path / "my_videos"
    foreign.mkdir()
    (foreign / "keep.mp4").write_text("precious")
    with pytest.raises(StoreError, match="not a moseq_xr project store"):
        moseq_xr.save(poses, foreign)
    assert (foreign / "keep.mp4").read_text() == "precious"
    with pytest.raises(StoreError, match="not a moseq_xr project store"):
        moseq_xr.open(foreign)


def test_save_from_a_lazy_copy_of_the_same_store(poses, tmp_path):
    path = moseq_xr.save(poses, tmp_path / "project.zarr")
    lazy = moseq_xr.open(path)
    moseq_xr.save(lazy.assign_attrs(note="resaved"), path)
    back = moseq_xr.open(path).load()
    assert back.attrs["note"] == "resaved"
    xr.testing.assert_equal(back, poses)
