"""Agreement between a fit and the truth: syllable labels, centroid, heading.

:func:`normalized_mutual_information` and :func:`adjusted_rand_index` compare
two labellings of the same frames (a fit and a simulation's truth, or two
fits); :func:`recovery_errors` reports every recovery measure of a fit against
the ground truth of :func:`moseq_xr.simulate` at once.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from moseq_xr.schema import names as N

LATENT = "latent"

#: Keys of :func:`recovery_errors`, in order.
RECOVERY_MEASURES = (
    "syllable_nmi",
    "syllable_ari",
    "centroid_rmse",
    "heading_error",
    "heading_offset",
    "heading_flips",
    "latent_r2",
)

#: Variables of a simulation's truth compared by :func:`recovery_errors`.
TRUTH_VARS = {
    "syllable": "true_syllable",
    "centroid": "true_centroid",
    "heading": "true_heading",
    "latent_state": "true_latent_state",
}


def contingency(labels_a: np.ndarray, labels_b: np.ndarray) -> np.ndarray:
    """Counts of frames per pair of labels, over frames where both are >= 0.

    Parameters
    ----------
    labels_a, labels_b
        Integer labels of the same shape; negative values mean "no label".

    Returns
    -------
    numpy.ndarray
        ``(max(a) + 1, max(b) + 1)`` counts.
    """
    a, b = np.ravel(labels_a), np.ravel(labels_b)
    if a.shape != b.shape:
        raise ValueError(f"labellings differ in size: {a.shape} vs {b.shape}")
    both = (a >= 0) & (b >= 0)
    a, b = a[both].astype(np.int64), b[both].astype(np.int64)
    if a.size == 0:
        return np.zeros((0, 0))
    table = np.zeros((a.max() + 1, b.max() + 1))
    np.add.at(table, (a, b), 1)
    return table


def normalized_mutual_information(labels_a: np.ndarray, labels_b: np.ndarray) -> float:
    """NMI with arithmetic-mean normalisation (as scikit-learn's default).

    Frames where either label is negative are ignored. Returns 1.0 when both
    labellings are constant and identical up to renaming.
    """
    table = contingency(labels_a, labels_b)
    total = table.sum()
    if total == 0:
        return float("nan")
    joint = table / total
    pa, pb = joint.sum(1), joint.sum(0)
    nonzero = joint > 0
    mutual = np.sum(joint[nonzero] * np.log(joint[nonzero] / np.outer(pa, pb)[nonzero]))
    entropy_a = -np.sum(pa[pa > 0] * np.log(pa[pa > 0]))
    entropy_b = -np.sum(pb[pb > 0] * np.log(pb[pb > 0]))
    if entropy_a == 0 and entropy_b == 0:
        return 1.0
    return float(mutual / max((entropy_a + entropy_b) / 2, 1e-300))


def _pairs(counts: np.ndarray) -> float:
    return float(np.sum(counts * (counts - 1.0)) / 2.0)


def adjusted_rand_index(labels_a: np.ndarray, labels_b: np.ndarray) -> float:
    """Adjusted Rand index (Hubert & Arabie 1985), as scikit-learn's.

    Parameters
    ----------
    labels_a, labels_b
        Integer labels of the same shape; frames where either is negative
        are ignored.

    Returns
    -------
    float
        1 for identical partitions (up to renaming), about 0 for independent
        ones; 1.0 when both labellings are a single cluster or every frame is
        its own cluster, NaN when no frame has both labels.
    """
    table = contingency(labels_a, labels_b)
    total = table.sum()
    if total == 0:
        return float("nan")
    index = _pairs(table)
    rows, columns = _pairs(table.sum(1)), _pairs(table.sum(0))
    expected = rows * columns / _pairs(np.array([total]))
    maximum = (rows + columns) / 2.0
    if maximum == expected:
        return 1.0
    return float((index - expected) / (maximum - expected))


def _paired(
    fitted: xr.DataArray, truth: xr.DataArray, feature: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Values of both on their common coordinates, ``feature`` (if any) last."""
    fitted, truth = xr.align(fitted, truth, join="inner")
    if feature is not None:
        fitted = fitted.transpose(..., feature)
    return fitted.values, truth.transpose(*fitted.dims).values


def _centroid_rmse(fitted: xr.DataArray, truth: xr.DataArray) -> float:
    estimate, true = _paired(fitted, truth, N.SPACE)
    squared = ((estimate - true) ** 2).sum(-1)
    squared = squared[np.isfinite(squared)]
    return float(np.sqrt(squared.mean())) if squared.size else float("nan")


def _heading_errors(
    fitted: xr.DataArray, truth: xr.DataArray
) -> tuple[float, float, float]:
    """Median |error| after removing the offset, the offset, fraction flipped."""
    estimate, true = _paired(fitted, truth)
    difference = (estimate - true).ravel()
    difference = difference[np.isfinite(difference)]
    if difference.size == 0:
        return float("nan"), float("nan"), float("nan")
    turns = np.exp(1j * difference)
    offset = float(np.angle(turns.mean())) if np.abs(turns.mean()) > 0 else 0.0
    error = np.abs(np.angle(turns * np.exp(-1j * offset)))
    return float(np.median(error)), offset, float(np.mean(error > np.pi / 2))


def _latent_r2(fitted: xr.DataArray, truth: xr.DataArray) -> float:
    """Variance of the true latents explained by an affine map of the fitted ones.

    The two latent dims may differ in size (``true_latent`` vs ``latent``).
    """
    true_dim = "true_latent" if "true_latent" in truth.dims else LATENT
    truth = truth.rename({true_dim: "_truth_latent"})
    fitted, truth = xr.align(
        fitted, truth, join="inner", exclude=[LATENT, "_truth_latent"]
    )
    frames = [d for d in fitted.dims if d != LATENT]
    estimate = fitted.transpose(*frames, LATENT).values
    true = truth.transpose(*frames, "_truth_latent").values
    estimate = estimate.reshape(-1, estimate.shape[-1])
    true = true.reshape(-1, true.shape[-1])
    both = np.isfinite(estimate).all(1) & np.isfinite(true).all(1)
    estimate, true = estimate[both], true[both]
    if len(true) <= estimate.shape[1] + 1:
        return float("nan")
    design = np.column_stack([estimate, np.ones(len(estimate))])
    coefficients, *_ = np.linalg.lstsq(design, true, rcond=None)
    residual = ((true - design @ coefficients) ** 2).sum()
    return float(1.0 - residual / ((true - true.mean(0)) ** 2).sum())


def recovery_errors(
    result: xr.DataTree | xr.Dataset, truth: xr.Dataset | None = None
) -> dict[str, float]:
    """How well a fit recovers the ground truth of a simulation.

    Parameters
    ----------
    result
        A tree returned by :func:`moseq_xr.fit` (or its root Dataset) with
        ``syllable`` and, after the full stage, ``centroid``, ``heading`` and
        ``latent_state``.
    truth
        A Dataset with ``true_syllable``, ``true_centroid``, ``true_heading``
        and ``true_latent_state`` (:func:`moseq_xr.simulate`). Default: the
        result itself (a fit keeps the variables of the Dataset it was given).
        Only coordinates present in both are compared.

    Returns
    -------
    dict
        Every measure is NaN when a variable is missing on either side, and
        uses only frames where both sides are defined:

        ``syllable_nmi``, ``syllable_ari``
            Normalised mutual information and adjusted Rand index of the
            labels (invariant to the labels' names).
        ``centroid_rmse``
            Root mean square of the Euclidean distance between the fitted and
            true centroids, in space units. The centroid is identifiable
            without alignment: the model's pose is zero-mean over keypoints,
            so its centroid is the mean keypoint, which is also how the
            simulation defines it.
        ``heading_error``
            Median absolute angular difference (radians, in ``[0, pi]``)
            after removing ``heading_offset``.
        ``heading_offset``
            Circular mean of fitted minus true heading. The heading is only
            identified relative to the model's reference pose (the PCA mean
            pose, aligned on the anterior-posterior axis): rotating that pose
            by an angle and every heading by its opposite gives the same
            likelihood, so one constant offset per fit (near 0 when the
            anterior and posterior keypoints follow the simulated body axis,
            near pi when they are swapped) is a convention, not an error.
            Frame by frame there is no 180° ambiguity (the reference pose is
            not symmetric).
        ``heading_flips``
            Fraction of frames whose error, after removing the offset,
            exceeds pi/2: front and back swapped, which the median hides
            when it happens in a minority of frames.
        ``latent_r2``
            Fraction of the variance of the true pose latents explained by an
            affine function of the fitted ones (latents are identified only
            up to an invertible affine map).

    Examples
    --------
    >>> ds = moseq_xr.simulate(num_dims=3)  # doctest: +SKIP
    >>> fitted = moseq_xr.fit(ds, stage="both", kappa=1e4)  # doctest: +SKIP
    >>> moseq_xr.analysis.recovery_errors(fitted)["syllable_nmi"]  # doctest: +SKIP
    """
    fitted = result.to_dataset() if isinstance(result, xr.DataTree) else result
    truth = fitted if truth is None else truth
    available = {
        name: (fitted[name], truth[true_name])
        for name, true_name in TRUTH_VARS.items()
        if name in fitted and true_name in truth
    }
    errors = dict.fromkeys(RECOVERY_MEASURES, float("nan"))
    if "syllable" in available:
        labels, true_labels = _paired(*available["syllable"])
        errors["syllable_nmi"] = normalized_mutual_information(labels, true_labels)
        errors["syllable_ari"] = adjusted_rand_index(labels, true_labels)
    if "centroid" in available:
        errors["centroid_rmse"] = _centroid_rmse(*available["centroid"])
    if "heading" in available:
        (
            errors["heading_error"],
            errors["heading_offset"],
            errors["heading_flips"],
        ) = _heading_errors(*available["heading"])
    if "latent_state" in available:
        errors["latent_r2"] = _latent_r2(*available["latent_state"])
    return errors


__all__ = [
    "adjusted_rand_index",
    "contingency",
    "normalized_mutual_information",
    "recovery_errors",
]
