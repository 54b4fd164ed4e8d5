"""Tests of moseq_xr.preprocess.pca."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.linalg import hadamard, subspace_angles

import moseq_xr
from moseq_xr.core.embedding import center_embedding
from moseq_xr.exceptions import FitError, SchemaError
from moseq_xr.preprocess import (
    fit_pca,
    pca_embedded,
    pca_summary,
    suggest_latent_dim,
    transform,
)

KEYPOINTS = ["nose", "ear_l", "ear_r", "spine", "hip", "tail"]
LATENT_SCALES = np.array([3.0, 2.0, 1.0])


def _rotate(points, angle):
    cos, sin = np.cos(angle)[:, None], np.sin(angle)[:, None]
    x, y = points[..., 0], points[..., 1]
    return np.stack([cos * x - sin * y, sin * x + cos * y], axis=-1)


BASE = np.array(
    [[3.0, 0.0], [1.8, 0.7], [1.8, -0.7], [0.0, 0.2], [-1.5, 0.0], [-3.0, 0.0]]
)


def _low_rank_poses(n_time, directions, rng):
    """Body-frame poses BASE + sum_j x_j W_j + small noise on the middle keypoints."""
    latent = rng.normal(size=(n_time, 3)) * LATENT_SCALES
    poses = BASE + np.einsum("tj,jkd->tkd", latent, directions)
    poses[:, 1:5] += rng.normal(scale=0.01, size=(n_time, 4, 2))
    return poses


def _world(poses, rng):
    heading = rng.uniform(-np.pi, np.pi, size=len(poses))
    return _rotate(poses, heading) + rng.normal(scale=30.0, size=(len(poses), 1, 2))


@pytest.fixture(scope="module")
def synthetic():
    """Two recordings (500 and 300 frames) of rank-3 deformations, rotated and moved."""
    rng = np.random.default_rng(0)
    directions = rng.normal(size=(3, 6, 2))
    directions[:, [0, 5]] = (
        0.0  # nose and tail stay on the x axis: the heading is exact
    )
    poses_a = _low_rank_poses(500, directions, rng)
    poses_b = _low_rank_poses(300, directions, rng)
    ds = moseq_xr.from_arrays(
        {"a": _world(poses_a, rng), "b": _world(poses_b, rng)}, KEYPOINTS, fps=30
    )
    return ds, np.concatenate([poses_a, poses_b]), directions


def test_recovers_subspace_and_explained_variance(synthetic):
    ds, poses, directions = synthetic
    pca = fit_pca(ds, "nose", "tail")
    assert pca.attrs["num_frames_fitted"] == 800  # padding of "b" excluded
    # principal angles between the top-3 loadings and the true deformations
    true = (directions - directions.mean(axis=1, keepdims=True)).reshape(3, -1).T
    fitted = pca.loadings.isel(pc=slice(0, 3)).values.reshape(3, -1).T
    assert np.max(subspace_angles(true, fitted)) < 0.01
    # explained variance = eigenvalues of the covariance of the centred body-frame poses
    centred = (poses - poses.mean(axis=1, keepdims=True)).reshape(len(poses), -1)
    eigen = np.sort(np.linalg.eigvalsh(np.cov(centred, rowvar=False)))[::-1]
    num_pcs = pca.sizes["pc"]
    assert num_pcs == (6 - 1) * 2
    np.testing.assert_allclose(
        pca.explained_variance.values, eigen[:num_pcs], rtol=1e-6, atol=1e-9
    )
    np.testing.assert_allclose(pca.explained_variance_ratio.sum(), 1.0)
    assert pca.explained_variance_ratio.values[:3].sum() > 0.999
    assert pca.attrs["suggested_latent_dim"] <= 3


def test_loadings_zero_sum_orthonormal_and_embedded_round_trip(synthetic):
    ds, _, _ = synthetic
    pca = fit_pca(ds, "nose", "tail")
    np.testing.assert_allclose(pca.loadings.sum("keypoint").values, 0, atol=1e-12)
    np.testing.assert_allclose(pca["mean"].sum("keypoint").values, 0, atol=1e-12)
    flat = pca.loadings.values.reshape(pca.sizes["pc"], -1)
    np.testing.assert_allclose(flat @ flat.T, np.eye(pca.sizes["pc"]), atol=1e-10)
    mean_emb, components_emb = pca_embedded(pca)
    assert mean_emb.shape == (10,) and components_emb.shape == (10, 10)
    np.testing.assert_allclose(
        components_emb @ components_emb.T, np.eye(10), atol=1e-10
    )
    gamma = center_embedding(6)
    # keypoint-major rows: Gamma @ reshape(row, (K-1, D)) is the keypoint-space array
    np.testing.assert_allclose(
        gamma @ mean_emb.reshape(5, 2), pca["mean"].values, atol=1e-12
    )
    np.testing.assert_allclose(
        np.einsum("kj,pjd->pkd", gamma, components_emb.reshape(10, 5, 2)),
        pca.loadings.values,
        atol=1e-12,
    )


def test_transform_matches_projection_of_embedded_poses(synthetic):
    ds, poses, _ = synthetic
    pca = fit_pca(ds, "nose", "tail")
    scores = transform(ds, pca, latent_dim=3)
    assert scores.dims == ("recording", "individual", "time", "pc")
    assert scores.sizes["pc"] == 3
    mean_emb, components_emb = pca_embedded(pca)
    embedded = np.einsum("kj,tkd->tjd", center_embedding(6), poses).reshape(
        len(poses), -1
    )
    expected = (embedded - mean_emb) @ components_emb[:3].T
    got = np.concatenate(
        [scores.sel(recording="a").values[0], scores.sel(recording="b").values[0, :300]]
    )
    np.testing.assert_allclose(got, expected, atol=1e-8)
    assert scores.sel(recording="b").isel(time=slice(300, None)).isnull().all()
    with pytest.raises(SchemaError, match="latent_dim"):
        transform(ds, pca, latent_dim=11)


def _designed_dataset(variances, seed=0):
    """K=3, D=2 poses whose PCA variances are exactly proportional to ``variances``."""
    signs = hadamard(8)[:, 1:5].astype(float)  # orthogonal, zero-mean columns
    rotation, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(4, 4)))
    embedded = (signs * np.sqrt(variances)) @ rotation.T
    poses = np.einsum("kj,tjd->tkd", center_embedding(3), embedded.reshape(8, 2, 2))
    poses += np.array([5.0, -2.0])  # a translation the alignment removes
    return moseq_xr.from_arrays({"r": poses}, ["a", "b", "c"], fps=30)


def test_suggested_latent_dim_is_non_strict_at_ninety_percent():
    pca = fit_pca(_designed_dataset([4.0, 3.0, 2.0, 1.0]), "a", "c", fix_heading=True)
    np.testing.assert_allclose(
        pca.explained_variance_ratio.values, [0.4, 0.3, 0.2, 0.1]
    )
    np.testing.assert_allclose(
        pca.explained_variance.values, np.array([4, 3, 2, 1]) * 8 / 7
    )
    assert (
        pca.attrs["suggested_latent_dim"] == 3
    )  # cumulative 0.9 reached exactly at 3 PCs
    assert suggest_latent_dim(np.array([0.5, 0.39, 0.11])) == 3
    assert suggest_latent_dim(np.array([0.5, 0.4, 0.1])) == 2


def test_suggested_latent_dim_capped_at_ten():
    rng = np.random.default_rng(7)
    noise = rng.normal(size=(400, 8, 3))
    ds = moseq_xr.from_arrays({"r": noise}, [f"k{i}" for i in range(8)], fps=30)
    pca = fit_pca(ds, "k0", "k7")
    assert pca.sizes["pc"] == 21
    assert pca.sizes["space"] == 3
    assert pca.attrs["suggested_latent_dim"] == 10
    assert "suggested latent_dim: 10" in pca_summary(pca)


def test_too_few_frames_raises():
    ds = moseq_xr.from_arrays(
        {"r": np.random.default_rng(8).normal(size=(9, 6, 2))}, KEYPOINTS, fps=30
    )
    with pytest.raises(
        FitError, match=r"at least \(K-1\)\*D = 10 usable frames, found 9"
    ):
        fit_pca(ds, "nose", "tail")


def test_subsampling_is_seeded(synthetic):
    ds, _, _ = synthetic
    first = fit_pca(ds, "nose", "tail", max_frames=100, seed=3)
    again = fit_pca(ds, "nose", "tail", max_frames=100, seed=3)
    other = fit_pca(ds, "nose", "tail", max_frames=100, seed=4)
    assert first.attrs["num_frames_fitted"] == 100
    assert first.attrs["num_frames_usable"] == 800
    np.testing.assert_array_equal(first["mean"].values, again["mean"].values)
    assert not np.allclose(first["mean"].values, other["mean"].values)


def test_exclude_outliers_drops_low_confidence_frames(synthetic):
    ds, _, _ = synthetic
    confidence = ds.confidence.copy()
    confidence[0, 10:30, 2, 0] = 0.2
    low = ds.assign(confidence=confidence)
    assert fit_pca(low, "nose", "tail").attrs["num_frames_fitted"] == 800
    assert (
        fit_pca(low, "nose", "tail", exclude_outliers=True).attrs["num_frames_fitted"]
        == 780
    )


def test_summary_and_attrs(synthetic):
    ds, _, _ = synthetic
    pca = fit_pca(ds, ["nose"], ["tail"])
    text = pca_summary(pca)
    assert "6 keypoints x 2 dims" in text and "fitted on 800 of 800" in text
    assert pca.attrs["anterior"] == ["nose"] and pca.attrs["fix_heading"] is False
    assert pca.attrs["provenance"][-1]["operation"] == "moseq_xr.preprocess.fit_pca"
