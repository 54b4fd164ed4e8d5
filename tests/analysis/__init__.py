"""Tests of moseq_xr.analysis, plus builders of Datasets that carry results."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import xarray as xr

import moseq_xr

RESULT_DIMS = ("recording", "individual", "time")
KEYPOINTS = ["nose", "left", "right", "tail"]


def _padded(values: Mapping[str, np.ndarray], n_time: int, fill: float) -> np.ndarray:
    """Stack per-recording arrays (I, T, ...) into (R, I, n_time, ...) with fill."""
    arrays = [np.asarray(v) for v in values.values()]
    out = np.full(
        (len(arrays), *arrays[0].shape[:1], n_time, *arrays[0].shape[2:]),
        fill,
        dtype=np.result_type(arrays[0].dtype, np.asarray(fill).dtype),
    )
    for row, array in enumerate(arrays):
        out[row, :, : array.shape[1]] = array
    return out


def _per_individual(array: np.ndarray, tail_dims: int) -> np.ndarray:
    """Add a leading individual axis when an array has none."""
    array = np.asarray(array)
    return array[None] if array.ndim == 1 + tail_dims else array


def results_dataset(
    syllables: Mapping[str, object],
    fps: float = 10.0,
    centroid: Mapping[str, object] | None = None,
    heading: Mapping[str, object] | None = None,
    latent_state: Mapping[str, object] | None = None,
    positions: Mapping[str, object] | None = None,
    seed: int = 0,
) -> xr.Dataset:
    """A pose Dataset (built by from_arrays) with hand-made result variables.

    ``syllables[name]`` has shape (T,) or (I, T); ``centroid[name]`` (T, 2) or
    (I, T, 2); ``heading[name]`` like syllables; ``latent_state`` (T, P) or
    (I, T, P). Positions are random unless given as (T, K, 2[, I]).
    """
    rng = np.random.default_rng(seed)
    labels = {k: _per_individual(v, 0) for k, v in syllables.items()}
    n_ind = next(iter(labels.values())).shape[0]
    if positions is None:
        positions = {
            k: rng.normal(size=(v.shape[1], len(KEYPOINTS), 2, n_ind))
            for k, v in labels.items()
        }
    ds = moseq_xr.from_arrays(dict(positions), KEYPOINTS, fps=fps)
    n_time = ds.sizes["time"]
    ds["syllable"] = (RESULT_DIMS, _padded(labels, n_time, -1).astype(np.int64))
    if centroid is not None:
        values = {k: _per_individual(v, 1) for k, v in centroid.items()}
        ds["centroid"] = ((*RESULT_DIMS, "space"), _padded(values, n_time, np.nan))
    if heading is not None:
        values = {k: _per_individual(v, 0).astype(float) for k, v in heading.items()}
        ds["heading"] = (RESULT_DIMS, _padded(values, n_time, np.nan))
    if latent_state is not None:
        values = {k: _per_individual(v, 1) for k, v in latent_state.items()}
        ds["latent_state"] = ((*RESULT_DIMS, "latent"), _padded(values, n_time, np.nan))
    return moseq_xr.validate(ds)


def real_results_dataset(path, seed: int = 0) -> xr.Dataset:
    """A real DLC recording with a synthetic syllable sequence, centroid, heading.

    Syllables: the first 3 frames -1 (nlags), then runs of geometric length
    (mean 8 frames) of labels 0..7 drawn with decreasing probability, no label
    repeated back to back. Centroid = mean keypoint, heading = angle of
    snout - tailbase.
    """
    ds = moseq_xr.load_poses(path, fps=30)
    rng = np.random.default_rng(seed)
    n_frames = int(ds["n_frames"][0])
    labels = np.full(n_frames, -1, dtype=np.int64)
    weights = 0.7 ** np.arange(8)
    frame, previous = 3, -1
    while frame < n_frames:
        choices = [s for s in range(8) if s != previous]
        p = weights[choices] / weights[choices].sum()
        previous = int(rng.choice(choices, p=p))
        length = int(rng.geometric(1 / 8))
        labels[frame : frame + length] = previous
        frame += length
    position = ds["position"].isel(individual=0)
    centroid = position.mean("keypoint").transpose("recording", "time", "space")
    axis = position.sel(keypoint="snout") - position.sel(keypoint="tailbase")
    heading = np.arctan2(axis.sel(space="y"), axis.sel(space="x"))
    ds["syllable"] = (RESULT_DIMS, labels[None, None])
    ds["centroid"] = ((*RESULT_DIMS, "space"), centroid.values[:, None])
    ds["heading"] = (RESULT_DIMS, heading.values[:, None])
    return moseq_xr.validate(ds)
