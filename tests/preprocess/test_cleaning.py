"""Tests of moseq_xr.preprocess.cleaning."""

from __future__ import annotations

import numpy as np
import pytest

import moseq_xr
from moseq_xr.exceptions import SchemaError
from moseq_xr.preprocess import (
    add_noise,
    flag_outliers,
    interpolate_missing,
    remove_outliers,
    select_keypoints,
)

NAN = np.nan
KEYPOINTS = ["nose", "head", "body", "tail"]


def _series_dataset():
    """One recording, 2 keypoints, 6 frames: keypoint 0 has gaps, keypoint 1 is full."""
    position = np.zeros((6, 2, 2))
    position[:, 0, 0] = [NAN, 1.0, 2.5, NAN, 4.0, NAN]  # x
    position[:, 0, 1] = [NAN, 10.0, NAN, NAN, 40.0, NAN]  # y: frame 2 has x but no y
    position[:, 1, 0] = np.arange(6.0)
    position[:, 1, 1] = -np.arange(6.0)
    confidence = np.array(
        [[0.9, 0.5], [0.8, NAN], [0.7, 0.5], [NAN, 0.5], [0.6, -0.2], [0.5, 0.5]]
    )
    return moseq_xr.from_arrays(
        {"rec": position}, ["a", "b"], fps=10, confidences={"rec": confidence}
    )


def test_interpolation_values_on_hand_built_series():
    out = interpolate_missing(_series_dataset(), conf_pseudocount=1e-3)
    kp0 = out.position.sel(recording="rec", individual="individual_0", keypoint="a")
    # Frame 2 has x but no y: the keypoint is missing, x is interpolated too.
    np.testing.assert_allclose(kp0.sel(space="x").values, [1, 1, 2, 3, 4, 4])
    np.testing.assert_allclose(kp0.sel(space="y").values, [10, 10, 20, 30, 40, 40])
    kp1 = out.position.sel(recording="rec", individual="individual_0", keypoint="b")
    np.testing.assert_array_equal(kp1.sel(space="x").values, np.arange(6.0))


def test_interpolated_confidence_zero_plus_pseudocount():
    out = interpolate_missing(_series_dataset(), conf_pseudocount=1e-3)
    conf = out.confidence.sel(recording="rec", individual="individual_0")
    # keypoint a: observed at frames 1 and 4 only
    np.testing.assert_allclose(
        conf.sel(keypoint="a").values, [1e-3, 0.801, 1e-3, 1e-3, 0.601, 1e-3]
    )
    # keypoint b: NaN score with a valid position -> 1.0; negative score clipped to 0
    np.testing.assert_allclose(
        conf.sel(keypoint="b").values, [0.501, 1.001, 0.501, 0.501, 0.001, 0.501]
    )


def test_never_observed_keypoint_placed_at_mean_of_observed():
    rng = np.random.default_rng(1)
    position = rng.normal(size=(20, 3, 2))
    position[:, 2] = NAN
    out = interpolate_missing(
        moseq_xr.from_arrays({"r": position}, ["a", "b", "c"], fps=30)
    )
    filled = out.position.sel(keypoint="c").isel(recording=0, individual=0)
    expected = position[:, :2].mean(axis=1)
    np.testing.assert_allclose(filled.transpose("time", "space").values, expected)
    conf = out.confidence.sel(keypoint="c").isel(recording=0, individual=0).values
    np.testing.assert_allclose(conf, 1e-3)


def test_untracked_edges_absent_individual_and_padding_stay_nan():
    rng = np.random.default_rng(2)
    long = rng.normal(size=(30, 4, 2, 2))
    long[:5] = NAN  # nobody tracked in the first 5 frames
    long[27:, :, :, 0] = NAN  # individual 0 lost for the last 3 frames
    short = rng.normal(size=(20, 4, 2, 2))
    short[..., 1] = NAN  # individual 1 absent from this recording
    ds = moseq_xr.from_arrays({"long": long, "short": short}, KEYPOINTS, fps=30)
    out = interpolate_missing(ds)
    pos = out.position
    assert pos.sel(recording="long").isel(time=slice(0, 5)).isnull().all()
    assert (
        pos.sel(recording="long", individual="individual_0")
        .isel(time=slice(27, 30))
        .isnull()
        .all()
    )
    assert (
        pos.sel(recording="long", individual="individual_1")
        .isel(time=slice(5, 30))
        .notnull()
        .all()
    )
    assert pos.sel(recording="short", individual="individual_1").isnull().all()
    assert (
        out.confidence.sel(recording="short", individual="individual_1").isnull().all()
    )
    assert pos.sel(recording="short").isel(time=slice(20, None)).isnull().all()
    assert (
        out.confidence.sel(recording="short").isel(time=slice(20, None)).isnull().all()
    )
    moseq_xr.validate(out)
    assert (
        out.attrs["provenance"][-1]["operation"]
        == "moseq_xr.preprocess.interpolate_missing"
    )


def test_lazily_opened_dataset_gives_same_result(tmp_path):
    rng = np.random.default_rng(3)
    a = rng.normal(size=(40, 4, 2))
    a[rng.random(a.shape[:2]) < 0.3] = NAN
    b = rng.normal(size=(25, 4, 2))
    b[3:9, 2] = NAN
    ds = moseq_xr.from_arrays({"a": a, "b": b}, KEYPOINTS, fps=30)
    moseq_xr.save(ds, tmp_path / "p.zarr")
    lazy = moseq_xr.open(tmp_path / "p.zarr").chunk({"time": 7})
    lazy_out = interpolate_missing(lazy)
    assert lazy_out.position.chunks is not None  # still lazy
    eager = interpolate_missing(ds)
    np.testing.assert_array_equal(lazy_out.position.values, eager.position.values)
    np.testing.assert_array_equal(lazy_out.confidence.values, eager.confidence.values)


#: Body-frame layout; nose (0) is the largest and tail (5) the smallest in x and
#: y, so jumping them outwards leaves the per-coordinate medoid unchanged.
BODY = np.array(
    [[4.0, 1.6], [2.0, 0.8], [0.5, 1.2], [-0.5, -1.2], [-2.0, -0.8], [-4.0, -1.6]]
)
OUTWARD = np.array([15.0, 12.0])


def _walking_animal(rng, n_time=400, n_individuals=1):
    centre = np.cumsum(
        rng.normal(scale=0.5, size=(n_time, 1, 2, n_individuals)), axis=0
    )
    noise = rng.normal(scale=0.05, size=(n_time, 6, 2, n_individuals))
    return BODY[None, :, :, None] + centre + noise


def test_flag_outliers_finds_planted_jumps():
    rng = np.random.default_rng(4)
    position = _walking_animal(rng, n_individuals=2)
    planted = {(10, 0, 0), (10, 5, 0), (50, 5, 0), (51, 5, 0), (200, 0, 1), (399, 5, 1)}
    for t, k, i in planted:
        position[t, k, :, i] += OUTWARD if k == 0 else -OUTWARD
    keypoints = [f"k{i}" for i in range(6)]
    short = _walking_animal(rng, n_time=100)[..., 0]
    ds = moseq_xr.from_arrays(
        {"walk": position, "short": np.stack([short, short], -1)}, keypoints, fps=30
    )
    flags = flag_outliers(ds)
    assert flags.dims == ("recording", "time", "keypoint", "individual")
    walk = np.nonzero(flags.sel(recording="walk").values)
    assert {(int(t), int(k), int(i)) for t, k, i in zip(*walk, strict=True)} == planted
    assert not flags.sel(recording="short").any()  # includes its padding frames


def test_remove_outliers_then_interpolate():
    rng = np.random.default_rng(5)
    position = _walking_animal(rng)[..., 0]
    clean = position.copy()
    position[100, 0] += OUTWARD
    ds = moseq_xr.from_arrays({"walk": position}, [f"k{i}" for i in range(6)], fps=30)
    removed = remove_outliers(ds)
    assert removed.position.isel(recording=0, time=100, keypoint=0).isnull().all()
    assert int(removed.position.isnull().sum()) == 2  # x and y of one keypoint
    filled = interpolate_missing(removed).position.isel(
        recording=0, individual=0, time=100, keypoint=0
    )
    np.testing.assert_allclose(filled.values, (clean[99, 0] + clean[101, 0]) / 2)


def test_select_keypoints_order_skeleton_and_errors():
    ds = moseq_xr.from_arrays({"r": np.zeros((5, 4, 2))}, KEYPOINTS, fps=30)
    ds.attrs["skeleton"] = [["nose", "head"], ["head", "body"], ["body", "tail"]]
    out = select_keypoints(ds, ["tail", "head", "nose"])
    assert list(out.keypoint.values) == ["tail", "head", "nose"]
    assert out.attrs["skeleton"] == [["nose", "head"]]
    with pytest.raises(
        SchemaError, match=r"'paw'.*'ear'|unknown use_keypoints \['paw', 'ear'\]"
    ):
        select_keypoints(ds, ["nose", "paw", "ear"])
    with pytest.raises(SchemaError, match="repeats"):
        select_keypoints(ds, ["nose", "nose"])


def test_add_noise_bounded_real_frames_only_and_reproducible():
    rng = np.random.default_rng(6)
    ds = moseq_xr.from_arrays(
        {"a": rng.normal(size=(50, 4, 2)), "b": rng.normal(size=(30, 4, 2))},
        KEYPOINTS,
        fps=30,
    )
    noisy = add_noise(ds, level=0.1, seed=42)
    delta = (noisy.position - ds.position).values
    real = np.isfinite(delta)
    assert np.all(np.abs(delta[real]) <= 0.1)
    assert np.std(delta[real]) > 0.04  # uniform(-0.1, 0.1) has sd 0.058
    assert noisy.position.sel(recording="b").isel(time=slice(30, None)).isnull().all()
    again = add_noise(ds.chunk({"time": 9}), level=0.1, seed=42)
    np.testing.assert_array_equal(again.position.values, noisy.position.values)
    other = add_noise(ds, level=0.1, seed=7)
    assert not np.array_equal(
        other.position.values, noisy.position.values, equal_nan=True
    )
