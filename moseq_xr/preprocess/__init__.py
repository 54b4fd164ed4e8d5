"""Preprocessing of pose Datasets: xarray in, xarray out, no JAX.

Typical order before fitting::

    ds = select_keypoints(ds, use_keypoints)
    ds = remove_outliers(ds)            # optional
    ds = interpolate_missing(ds)
    pca = fit_pca(ds, anterior=["nose"], posterior=["tailbase"])
    ds = add_noise(ds)
"""

from moseq_xr.preprocess.alignment import (
    align_poses,
    compute_centroid_heading,
    egocentric_align,
    interpolate_low_confidence,
)
from moseq_xr.preprocess.cleaning import (
    add_noise,
    flag_outliers,
    interpolate_missing,
    remove_outliers,
    select_keypoints,
)
from moseq_xr.preprocess.pca import (
    fit_pca,
    pca_embedded,
    pca_summary,
    suggest_latent_dim,
    transform,
)

__all__ = [
    "add_noise",
    "align_poses",
    "compute_centroid_heading",
    "egocentric_align",
    "fit_pca",
    "flag_outliers",
    "interpolate_low_confidence",
    "interpolate_missing",
    "pca_embedded",
    "pca_summary",
    "remove_outliers",
    "select_keypoints",
    "suggest_latent_dim",
    "transform",
]
