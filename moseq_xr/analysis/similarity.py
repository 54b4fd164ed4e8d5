"""Typical syllable trajectories, similarity and merging (reference §7.1, §7.5).

For each qualifying instance of a syllable, the keypoints in a window around
its onset are put in the egocentric frame *at onset* (centroid subtracted,
rotated by minus the onset heading, so the animal faces +x at onset); the
typical trajectory is the per-frame NaN-median over instances. Syllables are
compared by a distance between their flattened typical trajectories
(:func:`syllable_similarity`); near-duplicates found by complete-linkage
clustering (:func:`suggest_merges`) can be relabelled with
:func:`merge_syllables`.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import numpy as np
import pandas as pd
import xarray as xr
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import pdist, squareform

from moseq_xr._provenance import with_provenance
from moseq_xr.analysis.tables import (
    bouts_from_frames,
    median_smooth,
    result_array,
    smooth_angles,
    syllable_array,
    to_dataframe,
)
from moseq_xr.exceptions import DataQualityWarning, SchemaError
from moseq_xr.schema import names as N

_SYLLABLE_COPY = "syllable_"


def _frames(seconds: float, fps: float, name: str) -> int:
    if seconds < 0:
        raise ValueError(f"{name} must be >= 0 seconds, got {seconds}")
    return round(seconds * fps)


def _onset_pose_frame(
    ds: xr.Dataset, smooth_window: int
) -> tuple[np.ndarray, np.ndarray]:
    """Centroid (R, I, T, D) and heading (R, I, T), median-smoothed if asked."""
    centroid, heading = result_array(ds, "centroid"), result_array(ds, "heading")
    if centroid is None or heading is None:
        raise SchemaError(
            "centroid" if centroid is None else "heading",
            "typical trajectories need 'centroid' and 'heading' result variables",
        )
    centroid, heading = centroid.astype(np.float64), heading.astype(np.float64)
    if smooth_window > 1:
        centroid = np.moveaxis(
            median_smooth(np.moveaxis(centroid, 2, -1), smooth_window), -1, 2
        )
        heading = smooth_angles(heading, "median", window=smooth_window)
    return centroid, heading


def _qualifying(
    instances: pd.DataFrame,
    ds: xr.Dataset,
    pre: int,
    post: int,
    min_duration: int,
    min_frequency: float,
) -> pd.DataFrame:
    shares = instances["syllable"].value_counts(normalize=True)
    frequent = shares.index[shares >= min_frequency]
    n_frames = dict(
        zip(ds[N.RECORDING].values.astype(str), ds["n_frames"].values, strict=True)
    )
    length = instances[N.RECORDING].map(n_frames).to_numpy()
    keep = (
        instances["syllable"].isin(frequent).to_numpy()
        & (instances["duration_frames"].to_numpy() >= min_duration)
        & (instances["start_frame"].to_numpy() >= pre)
        & (instances["start_frame"].to_numpy() + post <= length)
    )
    return instances.loc[keep]


def _egocentric_windows(
    ds: xr.Dataset,
    instances: pd.DataFrame,
    pre: int,
    post: int,
    centroid: np.ndarray,
    heading: np.ndarray,
) -> np.ndarray:
    """Keypoints around each onset in the onset's egocentric frame, (n, W, D, K)."""
    rec = pd.Index(ds[N.RECORDING].values.astype(str)).get_indexer(
        instances[N.RECORDING]
    )
    ind = pd.Index(ds[N.INDIVIDUAL].values.astype(str)).get_indexer(
        instances[N.INDIVIDUAL]
    )
    onset = instances["start_frame"].to_numpy()
    window = onset[:, None] + np.arange(-pre, post)[None, :]
    position = (
        ds["position"]
        .transpose(N.RECORDING, N.TIME, N.SPACE, N.KEYPOINT, N.INDIVIDUAL)
        .values
    )
    poses = position[rec[:, None], window, :, :, ind[:, None]]
    centred = poses - centroid[rec, ind, onset][:, None, :, None]
    cos, sin = np.cos(heading[rec, ind, onset]), np.sin(heading[rec, ind, onset])
    x, y = centred[:, :, 0], centred[:, :, 1]
    rotated = centred.copy()
    rotated[:, :, 0] = cos[:, None, None] * x + sin[:, None, None] * y
    rotated[:, :, 1] = -sin[:, None, None] * x + cos[:, None, None] * y
    return rotated


def typical_trajectories(
    ds: xr.Dataset,
    pre: float = 0.167,
    post: float = 0.5,
    min_frequency: float = 0.005,
    min_duration: float = 0.1,
    smooth_window: int = 9,
) -> xr.DataArray:
    """Per-syllable median egocentric keypoint trajectory around onsets.

    Parameters
    ----------
    ds
        A pose Dataset with ``syllable``, ``centroid`` and ``heading``.
    pre, post
        Window in seconds before and after onset (rounded to frames; the
        defaults give 5 and 15 frames at 30 fps). Frames ``onset - pre`` to
        ``onset + post - 1`` are used.
    min_frequency
        Syllables with a smaller share of all instances are left out.
    min_duration
        Instances shorter than this (seconds, at least one frame) are left out,
        as are instances whose window leaves the recording.
    smooth_window
        Median-filter window (frames) applied to centroid and heading (on sine
        and cosine) before aligning; 1 disables smoothing.

    Returns
    -------
    xarray.DataArray
        Over ``(syllable, lag, space, keypoint)``; ``lag`` is in frames relative
        to onset (coordinate ``lag_time`` in seconds) and ``n_instances`` counts
        the instances per syllable. Only syllables with a qualifying instance.
    """
    fps = float(ds.attrs["fps"])
    pre_frames, post_frames = _frames(pre, fps, "pre"), _frames(post, fps, "post")
    if pre_frames + post_frames == 0:
        raise ValueError("the window around onset is empty: increase pre or post")
    centroid, heading = _onset_pose_frame(ds, smooth_window)
    instances = bouts_from_frames(to_dataframe(ds))
    min_frames = max(1, _frames(min_duration, fps, "min_duration"))
    chosen = _qualifying(
        instances, ds, pre_frames, post_frames, min_frames, min_frequency
    )
    windows = _egocentric_windows(
        ds, chosen, pre_frames, post_frames, centroid, heading
    )
    syllables = np.unique(chosen["syllable"].to_numpy())
    labels = chosen["syllable"].to_numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN keypoints
        medians = [np.nanmedian(windows[labels == s], axis=0) for s in syllables]
    lag = np.arange(-pre_frames, post_frames)
    shape = (0, lag.size, ds.sizes[N.SPACE], ds.sizes[N.KEYPOINT])
    return xr.DataArray(
        np.stack(medians) if medians else np.zeros(shape),
        dims=("syllable", "lag", N.SPACE, N.KEYPOINT),
        coords={
            "syllable": syllables,
            "lag": lag,
            "lag_time": ("lag", lag / fps),
            N.SPACE: ds[N.SPACE].values,
            N.KEYPOINT: ds[N.KEYPOINT].values,
            "n_instances": (
                "syllable",
                np.array([np.sum(labels == s) for s in syllables], dtype=np.int64),
            ),
        },
        name="typical_trajectory",
        attrs={"frame_of_reference": "egocentric at onset", "fps": fps},
    )


def _flatten_complete(trajectories: xr.DataArray) -> np.ndarray:
    """Flattened trajectories without features that are NaN for any syllable."""
    values = trajectories.values
    flat = values.reshape(values.shape[0], int(np.prod(values.shape[1:])))
    complete = np.isfinite(flat).all(axis=0)
    if not complete.any() and flat.size:
        raise SchemaError(
            "position", "every trajectory feature is NaN for some syllable"
        )
    if not complete.all():
        warnings.warn(
            f"{int((~complete).sum())} of {complete.size} trajectory values are NaN "
            "for some syllable (keypoints never tracked around its onsets) and are "
            "ignored",
            DataQualityWarning,
            stacklevel=3,
        )
    return flat[:, complete]


def syllable_similarity(
    ds: xr.Dataset,
    pre: float = 0.167,
    post: float = 0.5,
    metric: str = "cosine",
    min_frequency: float = 0.005,
    min_duration: float = 0.1,
    smooth_window: int = 9,
) -> xr.DataArray:
    """Distances between the typical trajectories of syllables.

    Parameters
    ----------
    ds, pre, post, min_frequency, min_duration, smooth_window
        See :func:`typical_trajectories`.
    metric
        Any metric of :func:`scipy.spatial.distance.pdist` (default cosine, as
        keypoint-MoSeq).

    Returns
    -------
    xarray.DataArray
        Symmetric ``(syllable, syllable_)`` matrix named ``distance``, zero on
        the diagonal, with ``n_instances`` on both axes. Trajectory values that
        are NaN for any syllable are left out (with a warning).
    """
    trajectories = typical_trajectories(
        ds, pre, post, min_frequency, min_duration, smooth_window
    )
    flat = _flatten_complete(trajectories)
    n_syllables = flat.shape[0]
    distances = (
        squareform(pdist(flat, metric=metric))
        if n_syllables > 1
        else np.zeros((n_syllables, n_syllables))
    )
    syllables = trajectories["syllable"].values
    count = trajectories["n_instances"].values
    return xr.DataArray(
        distances,
        dims=("syllable", _SYLLABLE_COPY),
        coords={
            "syllable": syllables,
            _SYLLABLE_COPY: syllables,
            "n_instances": ("syllable", count),
            "n_instances_": (_SYLLABLE_COPY, count),
        },
        name="distance",
        attrs={
            "metric": metric,
            "pre_frames": -int(trajectories["lag"][0])
            if trajectories.sizes["lag"]
            else 0,
            "post_frames": int(trajectories["lag"][-1]) + 1
            if trajectories.sizes["lag"]
            else 0,
        },
    )


def suggest_merges(distances: xr.DataArray, threshold: float) -> dict[int, int]:
    """Group near-duplicate syllables by complete-linkage clustering.

    Parameters
    ----------
    distances
        Output of :func:`syllable_similarity`.
    threshold
        Syllables end up together when every pairwise distance within their
        cluster is at most ``threshold``.

    Returns
    -------
    dict
        ``{syllable: representative}`` for every syllable of ``distances``; the
        representative of a cluster is its smallest label (the most frequent
        syllable when labels are ordered by frequency). Pass it to
        :func:`merge_syllables`.
    """
    values = np.asarray(distances.values, dtype=np.float64)
    syllables = [int(s) for s in distances[distances.dims[0]].values]
    if values.ndim != 2 or values.shape[0] != values.shape[1]:
        raise ValueError(f"distances must be a square matrix, got shape {values.shape}")
    if not np.all(np.isfinite(values)) or not np.allclose(values, values.T):
        raise ValueError("distances must be finite and symmetric")
    if len(syllables) < 2:
        return {s: s for s in syllables}
    tree = linkage(squareform(values, checks=False), method="complete")
    clusters = fcluster(tree, t=threshold, criterion="distance")
    representative = {
        c: min(s for s, k in zip(syllables, clusters, strict=True) if k == c)
        for c in set(clusters)
    }
    return {s: representative[c] for s, c in zip(syllables, clusters, strict=True)}


def _checked_mapping(mapping: Mapping[int, int], present: np.ndarray) -> dict[int, int]:
    clean: dict[int, int] = {}
    for key, value in mapping.items():
        if not all(
            isinstance(v, int | np.integer) and not isinstance(v, bool)
            for v in (key, value)
        ):
            raise SchemaError(
                "syllable", f"mapping entries must be integers, got {key!r}: {value!r}"
            )
        if key < 0 or value < 0:
            raise SchemaError(
                "syllable",
                f"syllables must be >= 0 (-1 cannot be merged), got {key}: {value}",
            )
        clean[int(key)] = int(value)
    unknown = sorted(set(clean) - {int(s) for s in present})
    if unknown:
        raise SchemaError(
            "syllable", f"syllables {unknown} do not occur in the Dataset"
        )
    return clean


def _relabel(values: np.ndarray, mapping: dict[int, int]) -> np.ndarray:
    table = np.arange(max(int(values.max(initial=-1)), *mapping, 0) + 1)
    for key, value in mapping.items():
        table[key] = value
    out = values.copy()
    labelled = values >= 0
    out[labelled] = table[values[labelled]].astype(values.dtype)
    return out


def _merged_probability(
    probability: xr.DataArray, mapping: dict[int, int]
) -> xr.DataArray:
    """Sum probability columns of merged syllables into their representative."""
    values = probability.values
    size = max(values.shape[-1], *(v + 1 for v in mapping.values()))
    merged = np.zeros((*values.shape[:-1], size), dtype=values.dtype)
    target = [mapping.get(column, column) for column in range(values.shape[-1])]
    for column, destination in enumerate(target):
        merged[..., destination] += values[..., column]
    return xr.DataArray(merged, dims=probability.dims, attrs=probability.attrs)


def merge_syllables(ds: xr.Dataset, mapping: Mapping[int, int]) -> xr.Dataset:
    """Relabel syllables, e.g. to merge near-duplicates.

    Parameters
    ----------
    ds
        A pose Dataset with a ``syllable`` variable.
    mapping
        ``{old label: new label}``; labels not listed are kept. Every key must
        occur in ``ds.syllable``. Frames without a syllable (-1) are untouched.
        Labels are not renumbered afterwards, so gaps may appear.

    Returns
    -------
    xarray.Dataset
        A copy with ``syllable`` relabelled (and, when present,
        ``syllable_probability`` columns summed into their new label) and one
        more provenance entry recording ``mapping``.
    """
    syllable = syllable_array(ds)
    clean = _checked_mapping(mapping, np.unique(syllable[syllable >= 0]))
    out = ds.copy()
    dims = N.RESULT_VARS["syllable"].dims
    relabelled = xr.DataArray(
        _relabel(syllable, clean), dims=dims, attrs=ds["syllable"].attrs
    )
    relabelled = relabelled.transpose(*ds["syllable"].dims)
    out["syllable"] = relabelled
    if "syllable_probability" in ds.variables and clean:
        out["syllable_probability"] = _merged_probability(
            ds["syllable_probability"].transpose(
                *N.RESULT_VARS["syllable_probability"].dims
            ),
            clean,
        )
    out.attrs = with_provenance(
        ds.attrs, "moseq_xr.analysis.merge_syllables", {"mapping": clean}
    )
    return out
