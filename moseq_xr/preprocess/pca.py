"""PCA of egocentric poses, stored as an xarray Dataset.

keypoint-MoSeq fixes its emission matrix to a PCA of the aligned poses
(reference §3.4). Poses are aligned (:func:`moseq_xr.preprocess.alignment.align_poses`),
embedded in the ``(K-1)*D`` zero-sum subspace with the centring basis Gamma
(:func:`moseq_xr.core.embedding.center_embedding`), flattened keypoint-major
(row ``i*D + dim``) and decomposed with an SVD.

The fitted PCA is a Dataset in *keypoint* space, so it can be plotted, saved
to the project store and read without knowing Gamma::

    mean                      (keypoint, space)      mean aligned pose, zero-sum
    loadings                  (pc, keypoint, space)  unit components, zero-sum
    explained_variance        (pc)                   variance along each component
    explained_variance_ratio  (pc)

:func:`pca_embedded` maps it back to the embedded arrays the model uses.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr

from moseq_xr._provenance import with_provenance
from moseq_xr.core.embedding import center_embedding
from moseq_xr.exceptions import FitError, SchemaError
from moseq_xr.preprocess.alignment import align_poses
from moseq_xr.preprocess.cleaning import _as_name_list
from moseq_xr.schema import names as N

PC = "pc"
#: Fraction of variance the suggested latent dimension must explain.
VARIANCE_TARGET = 0.9
#: The suggested latent dimension never exceeds this.
MAX_SUGGESTED_DIM = 10
_FRAME_DIMS = (N.RECORDING, N.INDIVIDUAL, N.TIME, N.KEYPOINT, N.SPACE)


def embed(poses: np.ndarray) -> np.ndarray:
    """Flattened embedding ``Gamma^T Y`` of poses, keypoint-major.

    Parameters
    ----------
    poses
        Shape ``(..., K, D)``.

    Returns
    -------
    numpy.ndarray
        Shape ``(..., (K-1)*D)``; entry ``i*D + dim`` is embedded row i.
    """
    gamma = center_embedding(poses.shape[-2])
    embedded = np.einsum("kj,...kd->...jd", gamma, poses)
    return embedded.reshape(*poses.shape[:-2], -1)


def unembed(embedded: np.ndarray, num_keypoints: int) -> np.ndarray:
    """Inverse of :func:`embed` on the zero-sum subspace: ``Gamma`` times rows.

    Parameters
    ----------
    embedded
        Shape ``(..., (K-1)*D)``, keypoint-major.
    num_keypoints
        K.

    Returns
    -------
    numpy.ndarray
        Shape ``(..., K, D)``, zero-sum over keypoints.
    """
    gamma = center_embedding(num_keypoints)
    rows = embedded.reshape(*embedded.shape[:-1], num_keypoints - 1, -1)
    return np.einsum("kj,...jd->...kd", gamma, rows)


def _fitting_frames(
    ds: xr.Dataset, aligned: xr.DataArray, conf_threshold: float, exclude_outliers: bool
) -> np.ndarray:
    """Aligned poses ``(frames, K, D)`` of every usable real frame."""
    poses = aligned.transpose(*_FRAME_DIMS).values
    num_keypoints, num_space = poses.shape[-2:]
    poses = poses.reshape(-1, num_keypoints, num_space)
    usable = np.isfinite(poses).all(axis=(1, 2))
    if exclude_outliers:
        conf = (
            ds["confidence"]
            .transpose(*_FRAME_DIMS[:-1])
            .values.reshape(-1, num_keypoints)
        )
        with np.errstate(invalid="ignore"):
            usable &= ~(conf < conf_threshold).any(axis=1)
    return poses[usable]


def _svd_pca(data: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, components (rows) and explained variance of ``data`` (frames, features).

    Signs are fixed so that each component's largest-magnitude entry is
    positive, which makes the result deterministic.
    """
    mean = data.mean(axis=0)
    _, singular, components = np.linalg.svd(data - mean, full_matrices=False)
    largest = np.argmax(np.abs(components), axis=1)
    signs = np.sign(components[np.arange(len(components)), largest])
    components = components * np.where(signs == 0, 1.0, signs)[:, None]
    variance = singular**2 / max(data.shape[0] - 1, 1)
    return mean, components, variance


def suggest_latent_dim(explained_variance_ratio: np.ndarray) -> int:
    """Fewest PCs explaining at least 90 % of the variance, at most 10.

    The test is non-strict (``cumulative >= 0.9``, with a 1e-9 tolerance for
    rounding), as the keypoint-MoSeq docs state the rule; the reference's
    printout uses a strict ``>``, which differs only when a cumulative ratio
    is exactly 0.9.

    Parameters
    ----------
    explained_variance_ratio
        Ratios in decreasing order.

    Returns
    -------
    int
    """
    cumulative = np.cumsum(explained_variance_ratio)
    reached = cumulative >= VARIANCE_TARGET - 1e-9
    count = int(np.argmax(reached)) + 1 if reached.any() else len(cumulative)
    return int(min(count, MAX_SUGGESTED_DIM, len(cumulative)))


def fit_pca(
    ds: xr.Dataset,
    anterior: str | Sequence[str],
    posterior: str | Sequence[str],
    fix_heading: bool = False,
    max_frames: int = 1_000_000,
    conf_threshold: float = 0.5,
    exclude_outliers: bool = False,
    seed: int = 42,
) -> xr.Dataset:
    """Fit the pose PCA that initialises keypoint-MoSeq.

    Usable frames are the real frames of every recording x individual whose
    aligned pose is finite (run :func:`moseq_xr.preprocess.interpolate_missing`
    first so that all tracked frames are usable). At most ``max_frames`` of
    them are used, drawn without replacement with
    ``np.random.default_rng(seed)``. The decomposition is an SVD of the
    centred embedded frames; ``explained_variance`` uses the ``n - 1``
    denominator (as scikit-learn does) and each component's sign is fixed so
    that its largest-magnitude embedded entry is positive.

    Parameters
    ----------
    ds
        A pose Dataset.
    anterior, posterior
        Keypoint names used for the heading (see
        :func:`moseq_xr.preprocess.alignment.compute_centroid_heading`).
    fix_heading
        Align by translation only (heading 0).
    max_frames
        Largest number of frames to fit on.
    conf_threshold
        Low-confidence keypoints are interpolated before alignment.
    exclude_outliers
        Also drop frames where any keypoint has confidence below
        ``conf_threshold`` (frames at exactly the threshold are kept; the
        reference keeps only frames strictly above it).
    seed
        Seed of the frame subsampling.

    Returns
    -------
    xarray.Dataset
        ``mean`` (read it as ``pca["mean"]``: ``pca.mean`` is the Dataset
        method), ``loadings``, ``explained_variance``,
        ``explained_variance_ratio``; attrs ``suggested_latent_dim``,
        ``num_frames_fitted``, ``num_frames_usable``, ``anterior``,
        ``posterior``, ``fix_heading``, ``conf_threshold``, ``provenance``.

    Raises
    ------
    FitError
        When fewer usable frames than features ``(K-1)*D`` remain.
    """
    aligned = align_poses(ds, anterior, posterior, fix_heading, conf_threshold)
    poses = _fitting_frames(ds, aligned, conf_threshold, exclude_outliers)
    num_keypoints, num_space = ds.sizes[N.KEYPOINT], ds.sizes[N.SPACE]
    num_features = (num_keypoints - 1) * num_space
    num_usable = poses.shape[0]
    if num_usable < num_features:
        raise FitError(
            f"PCA needs at least (K-1)*D = {num_features} usable frames, found "
            f"{num_usable}; run interpolate_missing first, lower conf_threshold or "
            "set exclude_outliers=False"
        )
    if num_usable > max_frames:
        chosen = np.random.default_rng(seed).choice(
            num_usable, max_frames, replace=False
        )
        poses = poses[np.sort(chosen)]
    mean, components, variance = _svd_pca(embed(poses))
    total = variance.sum()
    ratio = variance / total if total > 0 else np.zeros_like(variance)
    arguments = {
        "anterior": anterior, "posterior": posterior, "fix_heading": fix_heading,
        "max_frames": max_frames, "conf_threshold": conf_threshold,
        "exclude_outliers": exclude_outliers, "seed": seed,
    }  # fmt: skip
    attrs = {
        "suggested_latent_dim": suggest_latent_dim(ratio),
        "num_frames_fitted": int(poses.shape[0]),
        "num_frames_usable": int(num_usable),
        "anterior": _as_name_list(anterior, "anterior"),
        "posterior": _as_name_list(posterior, "posterior"),
        "fix_heading": bool(fix_heading),
        "conf_threshold": float(conf_threshold),
        "exclude_outliers": bool(exclude_outliers),
    }
    return xr.Dataset(
        {
            "mean": ((N.KEYPOINT, N.SPACE), unembed(mean, num_keypoints)),
            "loadings": ((PC, N.KEYPOINT, N.SPACE), unembed(components, num_keypoints)),
            "explained_variance": (PC, variance),
            "explained_variance_ratio": (PC, ratio),
        },
        coords={
            PC: np.arange(len(variance)),
            N.KEYPOINT: ds[N.KEYPOINT].values,
            N.SPACE: ds[N.SPACE].values,
        },
        attrs=with_provenance(attrs, "moseq_xr.preprocess.fit_pca", arguments),
    )


def pca_embedded(pca: xr.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Express the PCA in the embedded space the model works in.

    Parameters
    ----------
    pca
        Output of :func:`fit_pca`.

    Returns
    -------
    mean : numpy.ndarray
        Shape ``((K-1)*D,)``, keypoint-major (row ``i*D + dim``).
    components : numpy.ndarray
        Shape ``(P, (K-1)*D)``; orthonormal rows.
    """
    mean = embed(pca["mean"].transpose(N.KEYPOINT, N.SPACE).values)
    components = embed(pca["loadings"].transpose(PC, N.KEYPOINT, N.SPACE).values)
    return mean, components


def _check_latent_dim(pca: xr.Dataset, latent_dim: int | None) -> int:
    if latent_dim is None:
        return int(pca.attrs["suggested_latent_dim"])
    available = pca.sizes[PC]
    if not 1 <= int(latent_dim) <= available:
        raise SchemaError(
            PC, f"latent_dim must lie in 1..{available}, got {latent_dim}"
        )
    return int(latent_dim)


def _matching_keypoints(ds: xr.Dataset, pca: xr.Dataset) -> xr.Dataset:
    wanted = [str(k) for k in pca[N.KEYPOINT].values]
    available = [str(k) for k in ds[N.KEYPOINT].values]
    missing = [k for k in wanted if k not in available]
    if missing:
        raise SchemaError(N.KEYPOINT, f"the PCA uses keypoints {missing} that ds lacks")
    if list(ds[N.SPACE].values) != list(pca[N.SPACE].values):
        raise SchemaError(N.SPACE, "ds and the PCA have different spatial dimensions")
    return ds.sel({N.KEYPOINT: wanted})


def transform(
    ds: xr.Dataset,
    pca: xr.Dataset,
    latent_dim: int | None = None,
    conf_threshold: float | None = None,
) -> xr.DataArray:
    """PC scores of every frame: ``components @ (embed(aligned) - mean)``.

    Poses are aligned exactly as for fitting (same anterior/posterior,
    fix_heading and, by default, conf_threshold, read from ``pca.attrs``).

    Parameters
    ----------
    ds
        A pose Dataset with the PCA's keypoints (extra keypoints are dropped).
    pca
        Output of :func:`fit_pca`.
    latent_dim
        Number of leading PCs; default ``pca.attrs["suggested_latent_dim"]``.
    conf_threshold
        Override the PCA's low-confidence threshold.

    Returns
    -------
    xarray.DataArray
        Scores over ``(recording, individual, time, pc)``; NaN where the pose
        is not defined (padding, untracked frames).
    """
    dim = _check_latent_dim(pca, latent_dim)
    ds = _matching_keypoints(ds, pca)
    threshold = (
        pca.attrs["conf_threshold"] if conf_threshold is None else conf_threshold
    )
    aligned = align_poses(
        ds, pca.attrs["anterior"], pca.attrs["posterior"],
        bool(pca.attrs["fix_heading"]), threshold,
    )  # fmt: skip
    loadings = pca["loadings"].isel({PC: slice(0, dim)})
    scores = xr.dot(aligned - pca["mean"], loadings, dim=(N.KEYPOINT, N.SPACE))
    scores = scores.transpose(N.RECORDING, N.INDIVIDUAL, N.TIME, PC).rename("pc_score")
    scores.attrs = {"long_name": "PCA score of the egocentric pose"}
    return scores


def pca_summary(pca: xr.Dataset) -> str:
    """Describe a fitted PCA in printable text.

    Parameters
    ----------
    pca
        Output of :func:`fit_pca`.

    Returns
    -------
    str
        Keypoints, alignment, frames and the cumulative explained variance.
    """
    attrs = pca.attrs
    ratio = pca["explained_variance_ratio"].values
    cumulative = np.cumsum(ratio)
    lines = [
        f"Pose PCA: {pca.sizes[N.KEYPOINT]} keypoints x {pca.sizes[N.SPACE]} dims, "
        f"{pca.sizes[PC]} components",
        f"  fitted on {attrs['num_frames_fitted']} of {attrs['num_frames_usable']} "
        "usable frames",
        f"  anterior {attrs['anterior']}, posterior {attrs['posterior']}, "
        f"fix_heading={attrs['fix_heading']}",
        "  PC   variance %   cumulative %",
    ]
    for index in range(min(len(ratio), MAX_SUGGESTED_DIM)):
        lines.append(
            f"  {index + 1:>2}   {100 * ratio[index]:>10.2f}"
            f"   {100 * cumulative[index]:>12.2f}"
        )
    lines.append(
        f"  suggested latent_dim: {attrs['suggested_latent_dim']} "
        f"(fewest PCs explaining >= {VARIANCE_TARGET:.0%} of the variance, at most "
        f"{MAX_SUGGESTED_DIM})"
    )
    return "\n".join(lines)
