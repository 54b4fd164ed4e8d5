"""Per-frame and per-instance tables of a pose Dataset that carries model results.

:func:`to_dataframe` gives one row per real frame (keypoint-MoSeq's
``moseq_df``, reference §8.1) and :func:`bouts` one row per syllable instance.
Both read the result variables of the data contract
(:data:`moseq_xr.schema.names.RESULT_VARS`): ``syllable`` is required,
``centroid`` and ``heading`` add their columns when present.

Choices that differ from the reference, on purpose:

* Angular velocity is the *wrapped* heading difference (in ``[-pi, pi)``) times
  fps. The reference differentiates the unwrapped heading, which gives spikes
  of about ``2 pi fps`` whenever the heading crosses ``+-pi``.
* Velocity and angular velocity are NaN on the first frame of every
  recording x individual (the reference writes 0, and differentiates across the
  boundary between consecutive recordings of its concatenated table).
* Instances never continue across recordings, individuals or frames without a
  syllable (``-1``); the reference's onsets are computed on the concatenated
  table, so a recording that starts with the syllable the previous one ended
  with loses an onset.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import xarray as xr
from scipy.ndimage import gaussian_filter1d, median_filter

from moseq_xr.exceptions import SchemaError
from moseq_xr.schema import names as N
from moseq_xr.schema.validate import validate

#: Name of the optional coordinate over ``recording`` that assigns groups.
GROUP = "group"
#: Window (frames) of the median filter applied to headings when smoothing.
HEADING_MEDIAN_WINDOW = 9
#: Standard deviation (frames) of the Gaussian applied before differentiating.
HEADING_GAUSSIAN_SIGMA = 3.0

_SEQUENCE_KEYS = [N.RECORDING, N.INDIVIDUAL]


def wrap_angle(angle: np.ndarray) -> np.ndarray:
    """Wrap angles in radians into ``[-pi, pi)``.

    Parameters
    ----------
    angle
        Angles in radians; NaN stays NaN.

    Returns
    -------
    numpy.ndarray
        ``angle`` shifted by a multiple of ``2 pi`` into ``[-pi, pi)``.
    """
    return np.mod(np.asarray(angle, dtype=np.float64) + np.pi, 2 * np.pi) - np.pi


def finite_runs(values: np.ndarray) -> list[tuple[int, int]]:
    """``(start, stop)`` of each run of consecutive finite entries of a 1-D array."""
    finite = np.isfinite(values).astype(np.int8)
    edges = np.diff(np.concatenate([[0], finite, [0]]))
    return list(
        zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True)
    )


def filter_runs(
    values: np.ndarray, smoother: Callable[[np.ndarray], np.ndarray]
) -> np.ndarray:
    """Apply ``smoother`` along the last axis to each run of finite values.

    Parameters
    ----------
    values
        Array of any shape; time is the last axis.
    smoother
        Maps a 1-D finite array to a smoothed array of the same length.

    Returns
    -------
    numpy.ndarray
        Smoothed values; NaN where ``values`` is NaN (gaps are not bridged).
    """
    values = np.asarray(values, dtype=np.float64)
    out = np.full(values.shape, np.nan)
    flat_in = values.reshape(-1, values.shape[-1])
    flat_out = out.reshape(-1, values.shape[-1])
    for row, series in enumerate(flat_in):
        for start, stop in finite_runs(series):
            flat_out[row, start:stop] = smoother(series[start:stop])
    return out


def median_smooth(
    values: np.ndarray, window: int = HEADING_MEDIAN_WINDOW
) -> np.ndarray:
    """Median filter along the last axis within finite runs (edges held)."""
    return filter_runs(values, lambda x: median_filter(x, size=window, mode="nearest"))


def smooth_angles(
    heading: np.ndarray,
    kind: str = "median",
    window: int = HEADING_MEDIAN_WINDOW,
    sigma: float = HEADING_GAUSSIAN_SIGMA,
) -> np.ndarray:
    """Smooth angles along the last axis by filtering their sine and cosine.

    Parameters
    ----------
    heading
        Radians; time is the last axis. NaN frames stay NaN.
    kind
        ``"median"`` (window ``window``) or ``"gaussian"`` (s.d. ``sigma``).
    window, sigma
        Filter sizes in frames.

    Returns
    -------
    numpy.ndarray
        Smoothed angles in ``(-pi, pi]``.
    """
    if kind == "median":

        def smoother(x: np.ndarray) -> np.ndarray:
            return median_filter(x, size=window, mode="nearest")
    elif kind == "gaussian":

        def smoother(x: np.ndarray) -> np.ndarray:
            return gaussian_filter1d(x, sigma, mode="nearest")
    else:
        raise ValueError(f"kind must be 'median' or 'gaussian', got {kind!r}")
    sine = filter_runs(np.sin(heading), smoother)
    cosine = filter_runs(np.cos(heading), smoother)
    return np.arctan2(sine, cosine)


def result_array(ds: xr.Dataset, name: str) -> np.ndarray | None:
    """Values of a result variable in its contract dim order, or None if absent."""
    if name not in ds.variables:
        return None
    return np.asarray(ds[name].transpose(*N.RESULT_VARS[name].dims).values)


def syllable_array(ds: xr.Dataset) -> np.ndarray:
    """Return checked ``syllable`` values over ``(recording, individual, time)``.

    Raises
    ------
    SchemaError
        When ``ds`` breaks the contract or has no ``syllable`` variable.
    """
    validate(ds, deep=False)
    syllable = result_array(ds, "syllable")
    if syllable is None:
        raise SchemaError(
            "syllable",
            "the Dataset has no 'syllable' variable over (recording, individual, "
            "time); fit a model or attach results first",
        )
    if np.any(syllable < -1):
        raise SchemaError("syllable", "syllable labels must be >= 0, or -1 for none")
    return syllable


def real_frames(ds: xr.Dataset) -> np.ndarray:
    """Boolean ``(recording, individual, time)``: frame lies within ``n_frames``."""
    n_time = ds.sizes[N.TIME]
    real = np.arange(n_time)[None, :] < ds["n_frames"].values[:, None]
    return np.broadcast_to(
        real[:, None, :], (ds.sizes[N.RECORDING], ds.sizes[N.INDIVIDUAL], n_time)
    )


def _first_frame_nan(values: np.ndarray) -> np.ndarray:
    """Prepend NaN along the time axis (axis 2) to a frame-difference array."""
    pad = np.full((*values.shape[:2], 1, *values.shape[3:]), np.nan)
    return np.concatenate([pad, values], axis=2)


def centroid_velocity(centroid: np.ndarray, fps: float) -> np.ndarray:
    """Speed ``||centroid[t] - centroid[t-1]|| * fps``; NaN on frame 0.

    Parameters
    ----------
    centroid
        ``(recording, individual, time, space)``.
    fps
        Frames per second.

    Returns
    -------
    numpy.ndarray
        ``(recording, individual, time)`` in space units per second.
    """
    step = np.linalg.norm(np.diff(centroid, axis=2), axis=-1) * fps
    return _first_frame_nan(step)


def angular_velocity(heading: np.ndarray, fps: float) -> np.ndarray:
    """Compute the wrapped heading difference times fps (rad/s); NaN on frame 0.

    Parameters
    ----------
    heading
        ``(recording, individual, time)`` radians.
    fps
        Frames per second.

    Returns
    -------
    numpy.ndarray
        Same shape as ``heading``, in ``[-pi fps, pi fps)``.
    """
    return _first_frame_nan(wrap_angle(np.diff(heading, axis=2)) * fps)


def _kinematic_columns(
    ds: xr.Dataset, keep: np.ndarray, smooth_heading: bool
) -> dict[str, np.ndarray]:
    fps = float(ds.attrs["fps"])
    columns: dict[str, np.ndarray] = {}
    centroid = result_array(ds, "centroid")
    if centroid is not None:
        for axis, label in enumerate(ds[N.SPACE].values):
            columns[f"centroid_{label}"] = centroid[..., axis][keep]
    heading = result_array(ds, "heading")
    if heading is not None:
        heading = heading.astype(np.float64)
        shown = smooth_angles(heading, "median") if smooth_heading else heading
        columns["heading"] = shown[keep]
    if centroid is not None:
        columns["velocity"] = centroid_velocity(centroid.astype(np.float64), fps)[keep]
    if heading is not None:
        turning = smooth_angles(heading, "gaussian") if smooth_heading else heading
        columns["angular_velocity"] = angular_velocity(turning, fps)[keep]
    return columns


def _onsets(syllable: np.ndarray, frame: np.ndarray) -> np.ndarray:
    """Flag the first frame of every instance, in a frame table's order."""
    previous = np.concatenate([[-1], syllable[:-1]])
    return (syllable >= 0) & ((frame == 0) | (syllable != previous))


def to_dataframe(ds: xr.Dataset, smooth_heading: bool = False) -> pd.DataFrame:
    """One row per real frame of every recording x individual.

    All frames within each recording's ``n_frames`` are kept, including those
    without a syllable (``syllable == -1``: untracked frames, the first
    ``nlags`` frames of a sequence, frames the model skipped), so that the
    table lines up with the video; filter with ``df[df.syllable >= 0]``.
    Padding beyond ``n_frames`` is dropped.

    Parameters
    ----------
    ds
        A pose Dataset with a ``syllable`` variable over
        ``(recording, individual, time)``; ``centroid`` and ``heading`` are used
        when present.
    smooth_heading
        Median-filter the ``heading`` column (window 9, on sine and cosine) and
        compute ``angular_velocity`` from a Gaussian-smoothed heading (s.d. 3
        frames), as keypoint-MoSeq does. Smoothing never bridges NaN gaps.

    Returns
    -------
    pandas.DataFrame
        Columns ``recording, individual, time, frame, timestamp, syllable,
        onset``; with a centroid ``centroid_x, centroid_y[, centroid_z]`` and
        ``velocity`` (``||delta centroid|| * fps``, space units per second); with
        a heading ``heading`` (radians) and ``angular_velocity`` (wrapped
        heading difference times fps, rad/s); ``group`` when the Dataset has a
        ``group`` coordinate. Velocities are NaN on frame 0 of each
        recording x individual. ``df.attrs`` holds ``fps`` and ``space_unit``.
        Rows are ordered by recording, individual, frame.
    """
    syllable = syllable_array(ds)
    keep = real_frames(ds)
    rec_index, ind_index, time_index = np.nonzero(keep)
    frame = ds["frame"].values[time_index]
    table: dict[str, np.ndarray] = {
        N.RECORDING: ds[N.RECORDING].values.astype(str)[rec_index],
        N.INDIVIDUAL: ds[N.INDIVIDUAL].values.astype(str)[ind_index],
        N.TIME: ds[N.TIME].values[time_index],
        "frame": frame,
        "timestamp": ds["timestamp"]
        .transpose(N.RECORDING, N.TIME)
        .values[rec_index, time_index],
        "syllable": syllable[keep].astype(np.int64),
    }
    table["onset"] = _onsets(table["syllable"], frame)
    table.update(_kinematic_columns(ds, keep, smooth_heading))
    if GROUP in ds.coords:
        table[GROUP] = ds[GROUP].values.astype(str)[rec_index]
    frame_table = pd.DataFrame(table)
    frame_table.attrs = {
        "fps": float(ds.attrs["fps"]),
        "space_unit": ds.attrs.get("space_unit"),
    }
    return frame_table


def bouts_from_frames(frames: pd.DataFrame) -> pd.DataFrame:
    """Syllable instances of a table made by :func:`to_dataframe`.

    Parameters
    ----------
    frames
        Output of :func:`to_dataframe` (rows in its order).

    Returns
    -------
    pandas.DataFrame
        See :func:`bouts`.
    """
    fps = float(frames.attrs["fps"])
    instance = np.cumsum(frames["onset"].to_numpy())
    modelled = frames["syllable"].to_numpy() >= 0
    rows = frames.loc[modelled].assign(instance=instance[modelled])
    grouped = rows.groupby("instance", sort=True)
    first_columns = [
        c for c in (GROUP, N.RECORDING, N.INDIVIDUAL, "syllable") if c in rows
    ]
    table = grouped[first_columns].first()
    table["start_frame"] = grouped["frame"].min()
    table["end_frame"] = grouped["frame"].max() + 1
    table["start_time"] = grouped[N.TIME].min()
    table["end_time"] = table["end_frame"] / fps
    table["duration_frames"] = table["end_frame"] - table["start_frame"]
    table["duration_s"] = table["duration_frames"] / fps
    for column in ("velocity", "angular_velocity"):
        if column in rows:
            table[f"{column}_mean"] = grouped[column].mean()
    table = table.reset_index(drop=True)
    table.attrs = dict(frames.attrs)
    return table


def bouts(ds: xr.Dataset, smooth_heading: bool = False) -> pd.DataFrame:
    """One row per syllable instance.

    An instance is a run of equal syllables ``>= 0`` on consecutive frames of
    one recording x individual. Runs end at a label change, at a frame without
    a syllable (``-1``) and at the end of the recording; they never continue
    into another recording or individual.

    Parameters
    ----------
    ds
        A pose Dataset with a ``syllable`` variable (see :func:`to_dataframe`).
    smooth_heading
        Passed to :func:`to_dataframe` (affects ``angular_velocity_mean``).

    Returns
    -------
    pandas.DataFrame
        Columns ``[group,] recording, individual, syllable, start_frame,
        end_frame`` (exclusive), ``start_time, end_time`` (seconds; the end is
        the start of the frame after the instance), ``duration_frames,
        duration_s``, plus ``velocity_mean`` / ``angular_velocity_mean`` (mean
        over the instance's frames, NaN ignored) when the Dataset has a
        centroid / heading. Rows are ordered by recording, individual, onset.
    """
    return bouts_from_frames(to_dataframe(ds, smooth_heading=smooth_heading))
