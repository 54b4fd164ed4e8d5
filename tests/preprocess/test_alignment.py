"""Tests of moseq_xr.preprocess.alignment."""

from __future__ import annotations

import numpy as np
import pytest

import moseq_xr
from moseq_xr.exceptions import SchemaError
from moseq_xr.preprocess import (
    align_poses,
    compute_centroid_heading,
    egocentric_align,
    interpolate_low_confidence,
)

KEYPOINTS = ["nose", "head", "left", "right", "tail"]
#: Body frame: facing +x, centred at (0.4, 0) so the centroid is not the origin.
BODY = np.array([[3.0, 0.0], [1.5, 0.0], [0.0, 1.0], [0.0, -1.0], [-2.5, 0.0]])


def _rotate(points, angle):
    cos, sin = np.cos(angle)[:, None], np.sin(angle)[:, None]
    x, y = points[..., 0], points[..., 1]
    return np.stack([cos * x - sin * y, sin * x + cos * y], axis=-1)


def _animal(n_time=60, seed=0):
    """World positions (T, K, 2) of a rigid body with known heading and offset."""
    rng = np.random.default_rng(seed)
    heading = rng.uniform(-np.pi, np.pi, size=n_time)
    offset = rng.normal(scale=20.0, size=(n_time, 2))
    world = (
        _rotate(np.broadcast_to(BODY, (n_time, *BODY.shape)), heading) + offset[:, None]
    )
    return world, heading, offset


def _wrap(angle):
    return (angle + np.pi) % (2 * np.pi) - np.pi


def test_heading_and_centroid_of_synthetic_animal_are_recovered():
    world, heading, offset = _animal()
    ds = moseq_xr.from_arrays({"r": world}, KEYPOINTS, fps=30)
    centroid, estimated = compute_centroid_heading(ds, "nose", "tail")
    assert centroid.dims == ("recording", "individual", "time", "space")
    assert estimated.dims == ("recording", "individual", "time")
    np.testing.assert_allclose(_wrap(estimated.values[0, 0] - heading), 0, atol=1e-12)
    body_centre = np.broadcast_to(BODY.mean(0), (len(heading), 1, 2))
    expected_centroid = offset + _rotate(body_centre, heading)[:, 0]
    np.testing.assert_allclose(centroid.values[0, 0], expected_centroid, atol=1e-12)


def test_several_anterior_keypoints_are_averaged():
    world, heading, _ = _animal(seed=1)
    ds = moseq_xr.from_arrays({"r": world}, KEYPOINTS, fps=30)
    # mean(left, right) - tail points along the body axis too
    _, estimated = compute_centroid_heading(ds, ["left", "right"], ["tail"])
    np.testing.assert_allclose(_wrap(estimated.values[0, 0] - heading), 0, atol=1e-12)


def test_egocentric_alignment_points_anterior_along_x():
    world, _, _ = _animal(seed=2)
    ds = moseq_xr.from_arrays({"r": world}, KEYPOINTS, fps=30)
    centroid, heading = compute_centroid_heading(ds, "nose", "tail")
    aligned = egocentric_align(ds, centroid, heading)
    assert aligned.dims == ds.position.dims
    nose = aligned.sel(keypoint="nose").isel(recording=0, individual=0)
    assert (nose.sel(space="x") > 0).all()
    np.testing.assert_allclose(nose.sel(space="y").values, 0, atol=1e-12)
    poses = (
        aligned.isel(recording=0, individual=0)
        .transpose("time", "keypoint", "space")
        .values
    )
    np.testing.assert_allclose(
        poses, np.broadcast_to(BODY - BODY.mean(0), poses.shape), atol=1e-12
    )


def test_three_d_rotates_xy_and_only_translates_z():
    world, heading, _ = _animal(seed=3)
    height = np.random.default_rng(3).normal(size=world.shape[:2])
    ds = moseq_xr.from_arrays(
        {"r": np.concatenate([world, height[..., None]], -1)}, KEYPOINTS, fps=30
    )
    centroid, estimated = compute_centroid_heading(ds, "nose", "tail")
    np.testing.assert_allclose(_wrap(estimated.values[0, 0] - heading), 0, atol=1e-12)
    aligned = egocentric_align(ds, centroid, estimated).isel(recording=0, individual=0)
    z = aligned.sel(space="z").transpose("time", "keypoint").values
    np.testing.assert_allclose(z, height - height.mean(1, keepdims=True), atol=1e-12)
    xy = aligned.sel(space=["x", "y"]).transpose("time", "keypoint", "space").values
    np.testing.assert_allclose(
        xy, np.broadcast_to(BODY - BODY.mean(0), xy.shape), atol=1e-12
    )


def test_fix_heading_gives_zero_and_translation_only():
    world, _, _ = _animal(n_time=20, seed=4)
    short = world[:12]
    ds = moseq_xr.from_arrays({"a": world, "b": short}, KEYPOINTS, fps=30)
    centroid, heading = compute_centroid_heading(ds, "nose", "tail", fix_heading=True)
    assert (heading.sel(recording="a") == 0).all()
    assert (heading.sel(recording="b").isel(time=slice(0, 12)) == 0).all()
    assert heading.sel(recording="b").isel(time=slice(12, None)).isnull().all()
    assert centroid.sel(recording="b").isel(time=slice(12, None)).isnull().all()
    aligned = align_poses(ds, "nose", "tail", fix_heading=True).sel(recording="a")
    expected = world - world.mean(1, keepdims=True)
    np.testing.assert_allclose(
        aligned.isel(individual=0).transpose("time", "keypoint", "space").values,
        expected,
    )


def test_low_confidence_keypoints_are_interpolated_before_alignment():
    world, heading, _ = _animal(seed=5)
    corrupted = world.copy()
    corrupted[10, 0] += [40.0, -30.0]  # nose wildly off, but with low confidence
    corrupted[11, 4] = np.nan  # tail missing
    confidence = np.ones(world.shape[:2])
    confidence[10, 0] = 0.1
    ds = moseq_xr.from_arrays(
        {"r": corrupted}, KEYPOINTS, fps=30, confidences={"r": confidence}
    )
    filled = interpolate_low_confidence(ds, conf_threshold=0.5).isel(
        recording=0, individual=0
    )
    np.testing.assert_allclose(
        filled.sel(keypoint="nose").isel(time=10).values,
        (world[9, 0] + world[11, 0]) / 2,
    )
    np.testing.assert_allclose(
        filled.sel(keypoint="tail").isel(time=11).values,
        (world[10, 4] + world[12, 4]) / 2,
    )
    _, estimated = compute_centroid_heading(ds, "nose", "tail", conf_threshold=0.5)
    # frames away from the corruption are unaffected
    np.testing.assert_allclose(
        _wrap(estimated.values[0, 0, 20:] - heading[20:]), 0, atol=1e-12
    )
    # with the threshold at 0 the corrupted nose is used and the heading is off
    _, raw = compute_centroid_heading(ds, "nose", "tail", conf_threshold=0.0)
    assert abs(_wrap(raw.values[0, 0, 10] - heading[10])) > 0.1


def test_unknown_anterior_or_posterior_names_are_reported():
    world, _, _ = _animal(n_time=5)
    ds = moseq_xr.from_arrays({"r": world}, KEYPOINTS, fps=30)
    with pytest.raises(SchemaError, match=r"unknown anterior \['snout'\]"):
        compute_centroid_heading(ds, ["snout", "nose"], "tail")
    with pytest.raises(SchemaError, match=r"unknown posterior \['tailbase'\]"):
        compute_centroid_heading(ds, "nose", "tailbase")


def test_lazy_dataset_gives_same_heading():
    world, _, _ = _animal(seed=6)
    ds = moseq_xr.from_arrays({"r": world}, KEYPOINTS, fps=30)
    lazy_centroid, lazy_heading = compute_centroid_heading(
        ds.chunk({"time": 8}), "nose", "tail"
    )
    assert lazy_heading.chunks is not None
    centroid, heading = compute_centroid_heading(ds, "nose", "tail")
    np.testing.assert_allclose(lazy_heading.values, heading.values)
    np.testing.assert_allclose(lazy_centroid.values, centroid.values)
