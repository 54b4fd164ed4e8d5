"""Cleaning pose Datasets before fitting: gaps, outliers, keypoint choice, jitter.

Every function takes a pose Dataset and returns a new xarray object; nothing is
modified in place. Work along ``time`` is done per recording x individual with
:func:`xarray.apply_ufunc`, so Dask-backed (lazily opened) Datasets stay lazy,
and only the first ``n_frames`` frames of each recording are touched: padding
frames stay NaN.

The *tracked span* of a recording x individual is the range from its first to
its last frame with at least one fully observed keypoint. Frames before and
after it are left NaN by :func:`interpolate_missing` (the animal was not
tracked there, so nothing is invented), and :func:`moseq_xr.fitting.bridge.to_segments`
does not model them.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import xarray as xr

from moseq_xr._provenance import with_provenance
from moseq_xr.exceptions import SchemaError
from moseq_xr.schema import names as N

#: Core dims (in this order) of one recording x individual inside apply_ufunc.
_POSITION_CORE = (N.TIME, N.SPACE, N.KEYPOINT)
_CONFIDENCE_CORE = (N.TIME, N.KEYPOINT)


# --------------------------------------------------------------------------- numpy
def tracked_span(position: np.ndarray, n_frames: int) -> tuple[int, int] | None:
    """First and one-past-last frame with at least one fully observed keypoint.

    Parameters
    ----------
    position
        One recording x individual, shape ``(time, space, keypoint)``.
    n_frames
        Real frames of the recording; later frames are ignored.

    Returns
    -------
    tuple of int or None
        ``(first, stop)``, or None when no frame is observed.
    """
    observed = np.isfinite(position[:n_frames]).all(axis=1).any(axis=1)
    if not observed.any():
        return None
    first = int(np.argmax(observed))
    stop = int(n_frames - np.argmax(observed[::-1]))
    return first, stop


def fill_linear(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Linear interpolation in time over invalid frames, holding the edges.

    Equivalent to ``np.interp`` per keypoint and coordinate (values beyond the
    first and last valid frame are held constant), but vectorised over
    keypoints and coordinates.

    Parameters
    ----------
    values
        Shape ``(time, space, keypoint)``.
    valid
        Shape ``(time, keypoint)``; True where ``values`` may be used.

    Returns
    -------
    numpy.ndarray
        Same shape as ``values``; valid entries are copied exactly, keypoints
        with no valid frame are NaN.
    """
    n_time = valid.shape[0]
    index = np.arange(n_time)[:, None]
    previous = np.maximum.accumulate(np.where(valid, index, -1), axis=0)
    following = np.minimum.accumulate(np.where(valid, index, n_time)[::-1], axis=0)[
        ::-1
    ]
    previous = np.where(previous < 0, following, previous)
    following = np.where(following >= n_time, previous, following)
    has_valid = valid.any(axis=0)
    previous = np.where(has_valid, previous, 0)
    following = np.where(has_valid, following, 0)
    gap = following - previous
    weight = np.where(gap > 0, (index - previous) / np.maximum(gap, 1), 0.0)
    before = np.take_along_axis(values, previous[:, None, :], axis=0)
    after = np.take_along_axis(values, following[:, None, :], axis=0)
    filled = before + weight[:, None, :] * (after - before)
    filled[:, :, ~has_valid] = np.nan
    return filled


def _interpolate_sequence(
    position: np.ndarray, confidence: np.ndarray, n_frames: Any, pseudocount: float
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`interpolate_missing` for one recording x individual."""
    out_position = np.full(position.shape, np.nan)
    out_confidence = np.full(confidence.shape, np.nan)
    span = tracked_span(position, int(n_frames))
    if span is None:
        return out_position, out_confidence
    first, stop = span
    window = position[first:stop]
    observed = np.isfinite(window).all(axis=1)
    filled = fill_linear(window, observed)
    never = ~observed.any(axis=0)
    if never.any():
        # The span guarantees at least one observed keypoint, so this mean exists.
        filled[:, :, never] = filled[:, :, ~never].mean(axis=2, keepdims=True)
    scores = confidence[first:stop]
    scores = np.where(np.isnan(scores), 1.0, np.clip(scores, 0.0, None))
    out_position[first:stop] = filled
    out_confidence[first:stop] = np.where(observed, scores, 0.0) + pseudocount
    return out_position, out_confidence


def _outlier_sequence(position: np.ndarray, n_frames: Any, scale: float) -> np.ndarray:
    """:func:`flag_outliers` for one recording x individual: ``(time, keypoint)``."""
    n_frames = int(n_frames)
    flags = np.zeros((position.shape[0], position.shape[2]), dtype=bool)
    window = position[:n_frames]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices
        medoid = np.nanmedian(window, axis=2, keepdims=True)
        distance = np.sqrt(((window - medoid) ** 2).sum(axis=1))
        centre = np.nanmedian(distance, axis=0)
        spread = np.nanmedian(np.abs(distance - centre), axis=0)
    with np.errstate(invalid="ignore"):
        flags[:n_frames] = distance > centre + scale * spread
    return flags


def _noise_recording(
    position: np.ndarray, n_frames: Any, recording_index: Any, level: float, seed: int
) -> np.ndarray:
    """:func:`add_noise` for one recording: ``(time, space, keypoint, individual)``."""
    n_frames = int(n_frames)
    rng = np.random.default_rng([seed, int(recording_index)])
    noisy = np.array(position, dtype=np.float64, copy=True)
    noisy[:n_frames] += rng.uniform(-level, level, size=noisy[:n_frames].shape)
    return noisy


# ------------------------------------------------------------------------- xarray
def per_sequence(
    func: Callable[..., Any],
    arrays: Sequence[xr.DataArray],
    input_core_dims: Sequence[Sequence[str]],
    output_core_dims: Sequence[Sequence[str]],
    output_dtypes: Sequence[Any],
    **kwargs: Any,
) -> Any:
    """Apply ``func`` to each recording x individual with :func:`xarray.apply_ufunc`.

    Core dimensions are merged into single Dask chunks when needed, so lazily
    opened Datasets stay lazy; ``kwargs`` are passed to ``func``.

    Parameters
    ----------
    func
        NumPy function of one sequence (core dims last, in the given order).
    arrays
        Its array arguments (scalars per recording such as ``n_frames`` have no
        core dims).
    input_core_dims, output_core_dims, output_dtypes
        As for :func:`xarray.apply_ufunc`.
    **kwargs
        Keyword arguments of ``func``.

    Returns
    -------
    xarray.DataArray or tuple of them
        Loop dims first, then the output core dims.
    """
    result = xr.apply_ufunc(
        func,
        *arrays,
        input_core_dims=[list(dims) for dims in input_core_dims],
        output_core_dims=[list(dims) for dims in output_core_dims],
        kwargs=kwargs,
        vectorize=True,
        dask="parallelized",
        output_dtypes=list(output_dtypes),
        dask_gufunc_kwargs={"allow_rechunk": True},
        keep_attrs=True,
    )
    return result


def interpolate_missing(ds: xr.Dataset, conf_pseudocount: float = 1e-3) -> xr.Dataset:
    """Fill missing keypoints by linear interpolation in time.

    A keypoint is missing in a frame when any of its coordinates is NaN. Per
    recording x individual x keypoint, missing frames inside the tracked span
    (first to last frame with any observed keypoint) are linearly interpolated;
    before a keypoint's first and after its last observation its edge value is
    held. Frames outside the tracked span, and padding beyond ``n_frames``,
    stay NaN. An individual with no data in a recording stays all-NaN there.

    A keypoint never observed in a recording x individual is placed at the
    per-frame mean of the observed keypoints, not at zero (the reference's
    choice): a zero lies at the image origin, far from the animal, and would
    dominate the PCA and the centroid; the mean keeps the pose compact and,
    with confidence ~0, tells the model to ignore the keypoint.

    Confidence: interpolated (and never-observed) keypoints get 0; a NaN
    confidence with a valid position means "no score" and is taken as 1.0;
    negative scores are clipped to 0. Then ``conf_pseudocount`` is added to
    every confidence (so call this once).

    Parameters
    ----------
    ds
        A pose Dataset.
    conf_pseudocount
        Added to every confidence so that none is exactly zero.

    Returns
    -------
    xarray.Dataset
        A copy with ``position`` and ``confidence`` filled.
    """
    position, confidence = per_sequence(
        _interpolate_sequence,
        [ds["position"], ds["confidence"], ds["n_frames"]],
        [_POSITION_CORE, _CONFIDENCE_CORE, ()],
        [_POSITION_CORE, _CONFIDENCE_CORE],
        [np.float64, np.float64],
        pseudocount=float(conf_pseudocount),
    )
    out = ds.assign(
        position=position.transpose(*ds["position"].dims),
        confidence=confidence.transpose(*ds["confidence"].dims),
    )
    out.attrs = with_provenance(
        ds.attrs,
        "moseq_xr.preprocess.interpolate_missing",
        {"conf_pseudocount": conf_pseudocount},
    )
    return out


def flag_outliers(ds: xr.Dataset, scale: float = 6.0) -> xr.DataArray:
    """Flag keypoints far from the rest of the body (medoid-distance rule).

    Per recording x individual: the medoid of each frame is the per-coordinate
    median over keypoints (NaNs ignored); ``d[t, k]`` is keypoint k's distance
    to it. Keypoint k is flagged in frame t when
    ``d[t, k] > median_t(d[:, k]) + scale * MAD_t(d[:, k])``, with the MAD
    unscaled (no 1.4826 factor) and only the upper tail tested. Medians are
    taken over the real frames only. Missing keypoints are not flagged.

    Parameters
    ----------
    ds
        A pose Dataset.
    scale
        Number of MADs above the median distance that counts as an outlier.

    Returns
    -------
    xarray.DataArray
        Boolean, dims ``(recording, time, keypoint, individual)``; False in
        padding frames.
    """
    flags = per_sequence(
        _outlier_sequence,
        [ds["position"], ds["n_frames"]],
        [_POSITION_CORE, ()],
        [_CONFIDENCE_CORE],
        [bool],
        scale=float(scale),
    )
    flags = flags.transpose(*ds["confidence"].dims).rename("outlier")
    flags.attrs = {"long_name": "medoid-distance outlier", "scale": float(scale)}
    return flags


def remove_outliers(ds: xr.Dataset, scale: float = 6.0) -> xr.Dataset:
    """Set positions flagged by :func:`flag_outliers` to NaN.

    Run :func:`interpolate_missing` afterwards to fill them (their confidence
    then becomes 0 + pseudocount).

    Parameters
    ----------
    ds
        A pose Dataset.
    scale
        See :func:`flag_outliers`.

    Returns
    -------
    xarray.Dataset
        A copy with outlying positions removed.
    """
    flags = flag_outliers(ds, scale=scale)
    position = ds["position"].where(~flags).transpose(*ds["position"].dims)
    out = ds.assign(position=position)
    out.attrs = with_provenance(
        ds.attrs, "moseq_xr.preprocess.remove_outliers", {"scale": scale}
    )
    return out


def _as_name_list(names: str | Sequence[str], what: str) -> list[str]:
    names = [names] if isinstance(names, str) else [str(n) for n in names]
    if not names:
        raise SchemaError(
            N.KEYPOINT, f"{what} is empty; give at least one keypoint name"
        )
    return names


def keypoint_indices(
    ds: xr.Dataset | xr.DataArray, names: str | Sequence[str], what: str = "keypoints"
) -> list[int]:
    """Positions of keypoint ``names`` along the keypoint axis.

    Parameters
    ----------
    ds
        A pose Dataset, or a DataArray with a ``keypoint`` coordinate.
    names
        One name or a sequence of names.
    what
        How to call the argument in error messages.

    Returns
    -------
    list of int

    Raises
    ------
    SchemaError
        Naming every unknown keypoint and listing the known ones.
    """
    names = _as_name_list(names, what)
    available = [str(k) for k in ds[N.KEYPOINT].values]
    unknown = [n for n in names if n not in available]
    if unknown:
        raise SchemaError(
            N.KEYPOINT,
            f"unknown {what} {unknown}; the Dataset has keypoints {available}",
        )
    return [available.index(n) for n in names]


def select_keypoints(ds: xr.Dataset, use_keypoints: str | Sequence[str]) -> xr.Dataset:
    """Keep only ``use_keypoints``, in that order.

    Parameters
    ----------
    ds
        A pose Dataset.
    use_keypoints
        Keypoint names to keep (their order becomes the keypoint order).

    Returns
    -------
    xarray.Dataset
        The subset; skeleton edges between dropped keypoints are removed.

    Raises
    ------
    SchemaError
        When a name is unknown (all unknown names are listed) or repeated.
    """
    names = _as_name_list(use_keypoints, "use_keypoints")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise SchemaError(N.KEYPOINT, f"use_keypoints repeats {repeated}")
    keypoint_indices(ds, names, "use_keypoints")
    out = ds.sel({N.KEYPOINT: names})
    if "skeleton" in ds.attrs:
        out.attrs["skeleton"] = [
            list(edge) for edge in ds.attrs["skeleton"] if all(k in names for k in edge)
        ]
    out.attrs = with_provenance(
        out.attrs, "moseq_xr.preprocess.select_keypoints", {"use_keypoints": names}
    )
    return out


def add_noise(ds: xr.Dataset, level: float = 0.1, seed: int = 42) -> xr.Dataset:
    """Add uniform jitter in ``[-level, level)`` to every real-frame coordinate.

    Keypoint-MoSeq adds this small noise once to regularise the AR-HMM (exact
    repeats, e.g. from interpolation, make degenerate AR fits). Unlike the
    reference, padding frames are not noised (they stay NaN). Each recording
    draws from its own generator ``default_rng([seed, recording_index])`` over
    the ``(time, space, keypoint, individual)`` block, so results do not depend
    on Dask chunking.

    Parameters
    ----------
    ds
        A pose Dataset.
    level
        Half-width of the uniform noise, in position units.
    seed
        Seed of the generators.

    Returns
    -------
    xarray.Dataset
        A copy with noisy positions (NaNs stay NaN).
    """
    core = (N.TIME, N.SPACE, N.KEYPOINT, N.INDIVIDUAL)
    index = xr.DataArray(np.arange(ds.sizes[N.RECORDING]), dims=N.RECORDING)
    position = per_sequence(
        _noise_recording,
        [ds["position"], ds["n_frames"], index],
        [core, (), ()],
        [core],
        [np.float64],
        level=float(level),
        seed=int(seed),
    )
    out = ds.assign(position=position.transpose(*ds["position"].dims))
    out.attrs = with_provenance(
        ds.attrs, "moseq_xr.preprocess.add_noise", {"level": level, "seed": seed}
    )
    return out
