"""Centroid, heading and egocentric alignment of poses.

These give the *initial* centroid ``v`` and heading ``h`` of keypoint-MoSeq and
the aligned poses its PCA is fitted on (reference §1.7, §3.4):

* low-confidence keypoints (``confidence < conf_threshold``) are first
  linearly interpolated in time from the confident frames
  (:func:`interpolate_low_confidence`); this is for initialisation only, the
  model later fits the raw positions;
* centroid = mean over keypoints;
* heading = ``atan2`` of (mean anterior - mean posterior) in the x-y plane, in
  ``(-pi, pi]``; 3-D data keep z untouched. ``fix_heading=True`` gives 0;
* egocentric poses = positions minus the centroid, rotated by ``-heading``, so
  the anterior keypoints point along +x.

Frames outside a recording x individual's tracked span, and padding, are NaN.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr

from moseq_xr.preprocess.cleaning import (
    _CONFIDENCE_CORE,
    _POSITION_CORE,
    fill_linear,
    keypoint_indices,
    per_sequence,
    tracked_span,
)
from moseq_xr.schema import names as N

_CENTROID_DIMS = (N.RECORDING, N.INDIVIDUAL, N.TIME, N.SPACE)
_HEADING_DIMS = (N.RECORDING, N.INDIVIDUAL, N.TIME)


def _low_confidence_sequence(
    position: np.ndarray, confidence: np.ndarray, n_frames: Any, threshold: float
) -> np.ndarray:
    """:func:`interpolate_low_confidence` for one recording x individual."""
    out = np.full(position.shape, np.nan)
    span = tracked_span(position, int(n_frames))
    if span is None:
        return out
    first, stop = span
    window = position[first:stop]
    finite = np.isfinite(window).all(axis=1)
    with np.errstate(invalid="ignore"):
        confident = finite & ~(confidence[first:stop] < threshold)
    filled = fill_linear(window, confident)
    lacking = ~confident.any(axis=0)
    if lacking.any():
        # No confident frame at all: keep the raw track (gaps filled) rather
        # than freezing the keypoint at its time-average as the reference does.
        filled[:, :, lacking] = fill_linear(window[:, :, lacking], finite[:, lacking])
    out[first:stop] = filled
    return out


def interpolate_low_confidence(
    ds: xr.Dataset, conf_threshold: float = 0.5
) -> xr.DataArray:
    """Positions with low-confidence keypoints interpolated from confident frames.

    A keypoint counts as confident in a frame when its position is finite and
    its confidence is ``>= conf_threshold`` or NaN (no score). Other frames are
    linearly interpolated in time (edges held) within the tracked span. A
    keypoint with no confident frame keeps its raw track.

    Parameters
    ----------
    ds
        A pose Dataset.
    conf_threshold
        Confidence below which a keypoint is interpolated.

    Returns
    -------
    xarray.DataArray
        Like ``ds.position``.
    """
    position = per_sequence(
        _low_confidence_sequence,
        [ds["position"], ds["confidence"], ds["n_frames"]],
        [_POSITION_CORE, _CONFIDENCE_CORE, ()],
        [_POSITION_CORE],
        [np.float64],
        threshold=float(conf_threshold),
    )
    return position.transpose(*ds["position"].dims)


def centroid_heading_from_position(
    position: xr.DataArray,
    anterior: str | Sequence[str],
    posterior: str | Sequence[str],
    fix_heading: bool = False,
) -> tuple[xr.DataArray, xr.DataArray]:
    """Centroid (mean over keypoints) and heading of given positions.

    Parameters
    ----------
    position
        Positions over ``(recording, time, space, keypoint, individual)``.
    anterior, posterior
        Keypoint names (one or several) at the front and back of the body.
    fix_heading
        Return a heading of 0 wherever the centroid is defined.

    Returns
    -------
    centroid : xarray.DataArray
        Over ``(recording, individual, time, space)``.
    heading : xarray.DataArray
        Radians in ``(-pi, pi]`` over ``(recording, individual, time)``.
    """
    front = keypoint_indices(position, anterior, "anterior")
    back = keypoint_indices(position, posterior, "posterior")
    centroid = position.mean(N.KEYPOINT, skipna=True).transpose(*_CENTROID_DIMS)
    if fix_heading:
        heading = xr.zeros_like(centroid.isel({N.SPACE: 0}, drop=True))
        heading = heading.where(centroid.notnull().all(N.SPACE))
    else:
        axis = position.isel({N.KEYPOINT: front}).mean(N.KEYPOINT, skipna=True) - (
            position.isel({N.KEYPOINT: back}).mean(N.KEYPOINT, skipna=True)
        )
        heading = xr.apply_ufunc(
            np.arctan2,
            axis.sel({N.SPACE: "y"}, drop=True),
            axis.sel({N.SPACE: "x"}, drop=True),
            dask="allowed",
        )
    return centroid.rename("centroid"), heading.transpose(*_HEADING_DIMS).rename(
        "heading"
    )


def compute_centroid_heading(
    ds: xr.Dataset,
    anterior: str | Sequence[str],
    posterior: str | Sequence[str],
    fix_heading: bool = False,
    conf_threshold: float = 0.5,
) -> tuple[xr.DataArray, xr.DataArray]:
    """Compute the initial centroid and heading of every recording x individual.

    Low-confidence keypoints are first interpolated
    (:func:`interpolate_low_confidence`), then the centroid is the mean over
    keypoints and the heading the angle of (mean anterior - mean posterior) in
    the x-y plane.

    Parameters
    ----------
    ds
        A pose Dataset.
    anterior, posterior
        Keypoint names at the front (e.g. nose, head) and back (e.g. tail base).
    fix_heading
        Use heading 0 everywhere (translation-only alignment).
    conf_threshold
        See :func:`interpolate_low_confidence`.

    Returns
    -------
    centroid : xarray.DataArray
        Over ``(recording, individual, time, space)``.
    heading : xarray.DataArray
        Over ``(recording, individual, time)``, radians in ``(-pi, pi]``.

    Raises
    ------
    SchemaError
        When an anterior or posterior name is not a keypoint of ``ds``.
    """
    keypoint_indices(ds, anterior, "anterior")
    keypoint_indices(ds, posterior, "posterior")
    position = interpolate_low_confidence(ds, conf_threshold)
    return centroid_heading_from_position(position, anterior, posterior, fix_heading)


def egocentric_align(
    ds: xr.Dataset | xr.DataArray, centroid: xr.DataArray, heading: xr.DataArray
) -> xr.DataArray:
    """Translate positions to the centroid and rotate them by ``-heading``.

    Parameters
    ----------
    ds
        A pose Dataset, or its ``position`` DataArray.
    centroid
        Over ``(recording, individual, time, space)``.
    heading
        Over ``(recording, individual, time)``, radians.

    Returns
    -------
    xarray.DataArray
        Egocentric positions, same dims as ``position``: x points from the
        centroid along the heading, y to its left; z is only translated.
    """
    position = ds["position"] if isinstance(ds, xr.Dataset) else ds
    centred = position - centroid
    x = centred.sel({N.SPACE: "x"}, drop=True)
    y = centred.sel({N.SPACE: "y"}, drop=True)
    cos, sin = np.cos(heading), np.sin(heading)
    parts = [cos * x + sin * y, -sin * x + cos * y]
    if position.sizes[N.SPACE] == 3:
        parts.append(centred.sel({N.SPACE: "z"}, drop=True))
    aligned = xr.concat(parts, dim=N.SPACE, coords="minimal", compat="override")
    aligned = aligned.assign_coords({N.SPACE: position[N.SPACE].values})
    aligned = aligned.transpose(*position.dims).rename("position")
    aligned.attrs = {**position.attrs, "frame_of_reference": "egocentric"}
    return aligned


def align_poses(
    ds: xr.Dataset,
    anterior: str | Sequence[str],
    posterior: str | Sequence[str],
    fix_heading: bool = False,
    conf_threshold: float = 0.5,
) -> xr.DataArray:
    """Egocentric poses as keypoint-MoSeq's PCA sees them.

    Low-confidence interpolation, then centroid and heading from the
    interpolated positions, then :func:`egocentric_align` of those positions.

    Parameters
    ----------
    ds, anterior, posterior, fix_heading, conf_threshold
        See :func:`compute_centroid_heading`.

    Returns
    -------
    xarray.DataArray
        Like ``ds.position``, in the egocentric frame.
    """
    keypoint_indices(ds, anterior, "anterior")
    keypoint_indices(ds, posterior, "posterior")
    position = interpolate_low_confidence(ds, conf_threshold)
    centroid, heading = centroid_heading_from_position(
        position, anterior, posterior, fix_heading
    )
    return egocentric_align(position, centroid, heading)
