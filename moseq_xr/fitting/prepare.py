"""From a pose Dataset to model-ready arrays (xarray side; no JAX).

Order of operations, each a public function of :mod:`moseq_xr.preprocess`::

    select_keypoints -> [remove_outliers] -> interpolate_missing -> add_noise
    -> interpolate_low_confidence -> initial v, h -> fit_pca (unless given)
    -> to_segments (+ the same cut of v, h and the interpolated positions)

The low-confidence interpolation is for initialisation only (reference §1.7,
§3.5): the initial centroid, heading and pose latents ``x`` (which the AR stage
keeps) come from it, while the model fits the cleaned positions.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

import numpy as np
import xarray as xr

from moseq_xr.exceptions import DataQualityWarning, FitError
from moseq_xr.fitting.bridge import Segments, segment_values, to_segments
from moseq_xr.preprocess import (
    add_noise,
    fit_pca,
    interpolate_low_confidence,
    interpolate_missing,
    remove_outliers,
    select_keypoints,
)
from moseq_xr.preprocess.alignment import centroid_heading_from_position
from moseq_xr.schema import names as N
from moseq_xr.schema import validate

_ANTERIOR_WORDS = ("nose", "snout", "head", "beak", "mouth")
_POSTERIOR_WORDS = ("tail_base", "tailbase", "tail", "base", "rump", "spine", "hip")


@dataclass
class PrepareOptions:
    """Data preparation options, stored with every fit.

    Attributes
    ----------
    use_keypoints
        Keypoints to model (default: all).
    anterior, posterior
        Keypoints defining the body axis (heading). Guessed from the names when
        not given (nose/snout/head vs. tail base), else first and last keypoint.
    fix_heading
        Head-fixed animal: heading fixed at 0 everywhere.
    outlier_removal, outlier_scale
        Remove medoid-distance outliers before interpolation.
    conf_pseudocount
        Added to every confidence after interpolation.
    conf_threshold
        Confidence below which keypoints are interpolated for initialisation.
    added_noise_level
        Half-width of the uniform noise added to coordinates.
    noise_seed
        Seed of that noise.
    pca_max_frames
        Most frames used to fit the PCA.
    seg_length, max_seg_length, overlap
        Segmenting of the recordings (see :func:`moseq_xr.fitting.bridge.to_segments`).
    slope, intercept
        Confidence-to-noise calibration: ``s0 = (10^intercept * conf^slope)^2``.
    """

    use_keypoints: Sequence[str] | None = None
    anterior: Sequence[str] | None = None
    posterior: Sequence[str] | None = None
    fix_heading: bool = False
    outlier_removal: bool = False
    outlier_scale: float = 6.0
    conf_pseudocount: float = 1e-3
    conf_threshold: float = 0.5
    added_noise_level: float = 0.1
    noise_seed: int = 42
    pca_max_frames: int = 1_000_000
    seg_length: int | None = None
    max_seg_length: int = 10_000
    overlap: int = 30
    slope: float = -0.5
    intercept: float = 0.25

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (lists instead of tuples)."""
        out = asdict(self)
        for key in ("use_keypoints", "anterior", "posterior"):
            if out[key] is not None:
                out[key] = [str(k) for k in out[key]]
        return out


class PreparedData(NamedTuple):
    """Everything the model needs from the Dataset."""

    segments: Segments
    centroid: np.ndarray
    heading: np.ndarray
    pca: xr.Dataset
    options: PrepareOptions
    #: Positions ``(N, T, K, D)`` cut like ``segments.Y``, low-confidence
    #: keypoints interpolated: what the initial pose latents are projected from.
    initial_Y: np.ndarray


def _matches(name: str, words: Sequence[str]) -> bool:
    lowered = name.lower().replace("-", "_").replace(" ", "_")
    return any(word in lowered for word in words)


def default_body_axis(keypoints: Sequence[str]) -> tuple[list[str], list[str]]:
    """Guess anterior and posterior keypoints from their names.

    Returns
    -------
    tuple
        ``(anterior, posterior)`` lists of names. Falls back to the first and
        the last keypoint (with a :class:`DataQualityWarning`).
    """
    names = [str(k) for k in keypoints]
    anterior = [k for word in _ANTERIOR_WORDS for k in names if _matches(k, (word,))][
        :1
    ]
    posterior = [
        k
        for word in _POSTERIOR_WORDS
        for k in names
        if _matches(k, (word,)) and k not in anterior
    ][:1]
    if not anterior or not posterior:
        anterior, posterior = [names[0]], [names[-1]]
        warnings.warn(
            "anterior/posterior keypoints not given and not recognised from the "
            f"names; using {anterior[0]!r} -> {posterior[0]!r} as the body axis. "
            "Pass anterior= and posterior= to choose.",
            DataQualityWarning,
            stacklevel=4,
        )
    return anterior, posterior


def clean(ds: xr.Dataset, options: PrepareOptions) -> xr.Dataset:
    """Keypoint selection, optional outlier removal, interpolation and noise."""
    validate(ds, deep=False)
    if options.use_keypoints is not None:
        ds = select_keypoints(ds, list(options.use_keypoints))
    if options.outlier_removal:
        ds = remove_outliers(ds, options.outlier_scale)
    ds = interpolate_missing(ds, options.conf_pseudocount)
    return add_noise(ds, options.added_noise_level, options.noise_seed)


def prepare(
    ds: xr.Dataset, options: PrepareOptions, pca: xr.Dataset | None = None
) -> PreparedData:
    """Run the whole preparation and cut the result into segments.

    Parameters
    ----------
    ds
        A pose Dataset (lazy or in memory).
    options
        See :class:`PrepareOptions`; missing anterior/posterior are filled in.
    pca
        A PCA to reuse (e.g. when applying a fitted model); fitted when None.

    Returns
    -------
    PreparedData
    """
    ds = (
        ds[["position", "confidence"]].load()
        if _is_lazy(ds)
        else ds[["position", "confidence"]]
    )
    if options.anterior is None or options.posterior is None:
        keypoints = options.use_keypoints or [str(k) for k in ds[N.KEYPOINT].values]
        options.anterior, options.posterior = default_body_axis(keypoints)
    cleaned = clean(ds, options)
    initial = interpolate_low_confidence(cleaned, options.conf_threshold)
    centroid, heading = centroid_heading_from_position(
        initial, options.anterior, options.posterior, options.fix_heading
    )
    if pca is None:
        pca = fit_pca(
            cleaned,
            options.anterior,
            options.posterior,
            options.fix_heading,
            options.pca_max_frames,
            options.conf_threshold,
        )
    elif list(pca[N.KEYPOINT].values) != list(cleaned[N.KEYPOINT].values):
        raise FitError(
            f"the model's keypoints {list(pca[N.KEYPOINT].values)} differ from the "
            f"data's {list(cleaned[N.KEYPOINT].values)}"
        )
    segments = to_segments(
        cleaned, options.seg_length, options.max_seg_length, overlap=options.overlap
    )
    return PreparedData(
        segments=segments,
        centroid=segment_values(centroid, segments, (N.SPACE,)),
        heading=segment_values(heading, segments),
        pca=pca,
        options=options,
        initial_Y=_initial_positions(initial, segments),
    )


def _initial_positions(initial: xr.DataArray, segments: Segments) -> np.ndarray:
    """Interpolated positions cut into rows; the cleaned ones where undefined."""
    rows = segment_values(initial, segments, (N.KEYPOINT, N.SPACE))
    return np.where(np.isfinite(rows), rows, segments.Y)


def _is_lazy(ds: xr.Dataset) -> bool:
    return any(var.chunks is not None for var in ds.data_vars.values())
