"""Geometry of the keypoint observation model.

Keypoint k at frame t is observed as
``Y_tk ~ N(R(h_t) Yhat_tk + v_t, s_tk sigma^2_k I)`` with
``Yhat_t = Gamma reshape(C x_t + d, (K-1, D))``: the pose latent ``x`` is
mapped by ``Cd = [C | d]`` into the (K-1)-dimensional zero-sum keypoint space
(basis ``Gamma``, :func:`moseq_xr.core.embedding.center_embedding`), rotated by
the heading ``h`` in the x-y plane and shifted by the centroid ``v``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from moseq_xr.core.embedding import center_embedding


def rotation_matrices(heading: jax.Array, num_dims: int) -> jax.Array:
    """Counter-clockwise rotations by ``heading`` in the x-y plane, ``(..., D, D)``."""
    cos, sin = jnp.cos(heading), jnp.sin(heading)
    planar = jnp.stack([jnp.stack([cos, -sin], -1), jnp.stack([sin, cos], -1)], -2)
    if num_dims == 2:
        return planar
    full = jnp.zeros((*heading.shape, 3, 3), heading.dtype)
    return full.at[..., :2, :2].set(planar).at[..., 2, 2].set(1.0)


def to_egocentric(Y: jax.Array, v: jax.Array, h: jax.Array) -> jax.Array:
    """``R(-h_t) (Y_t - v_t)`` for every frame: ``(..., K, D)``."""
    rotation = rotation_matrices(-h, Y.shape[-1])
    return jnp.einsum("...de,...ke->...kd", rotation, Y - v[..., None, :])


def embed(aligned: jax.Array) -> jax.Array:
    """Flattened embedded pose ``vec(Gamma^T Y)``, keypoint-major, ``(..., (K-1)*D)``.

    The rows of ``Gamma^T Y`` are concatenated keypoint by keypoint.
    """
    basis = jnp.asarray(center_embedding(aligned.shape[-2]), aligned.dtype)
    embedded = jnp.einsum("kj,...kd->...jd", basis, aligned)
    return embedded.reshape((*embedded.shape[:-2], -1))


def estimate_pose(x: jax.Array, Cd: jax.Array, num_keypoints: int) -> jax.Array:
    """Egocentric keypoints ``Yhat`` from pose latents, ``(..., K, D)``."""
    flat = x @ Cd[:, :-1].T + Cd[:, -1]
    num_dims = Cd.shape[0] // (num_keypoints - 1)
    embedded = flat.reshape((*flat.shape[:-1], num_keypoints - 1, num_dims))
    basis = jnp.asarray(center_embedding(num_keypoints), x.dtype)
    return jnp.einsum("kj,...jd->...kd", basis, embedded)


def whitened_emission(
    flat: jax.Array, mask: jax.Array, mean: jax.Array, components: jax.Array
) -> jax.Array:
    """``Cd`` whose latents are the PC scores whitened over the real frames.

    Parameters
    ----------
    flat
        Embedded poses, ``(N, T, (K-1)*D)``.
    mask
        Real frames, ``(N, T)``.
    mean, components
        PCA mean ``((K-1)*D,)`` and the first P components ``(P, (K-1)*D)``.

    Returns
    -------
    jax.Array
        ``Cd`` of shape ``((K-1)*D, P + 1)``: ``C = components^T W`` with ``W``
        the Cholesky factor of the score covariance, ``d = mean``.
    """
    scores = (flat - mean) @ components.T
    weights = mask[..., None]
    count = mask.sum()
    centred = scores - (scores * weights).sum((0, 1)) / count
    covariance = jnp.einsum("ntp,ntq->pq", centred * weights, centred) / count
    whitening = jnp.linalg.cholesky(covariance + 1e-9 * jnp.eye(covariance.shape[0]))
    return jnp.concatenate([components.T @ whitening, mean[:, None]], axis=1)


def init_pose(
    Y: jax.Array,
    mask: jax.Array,
    v: jax.Array,
    h: jax.Array,
    pca_mean: jax.Array,
    pca_components: jax.Array,
    whiten: bool = True,
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """Initial ``(Cd, x, v, h)``: project aligned keypoints on the PCA subspace.

    Parameters
    ----------
    Y
        Keypoints, ``(N, T, K, D)`` (missing values already interpolated).
    mask
        Real frames, ``(N, T)``.
    v, h
        Initial centroid ``(N, T, D)`` and heading ``(N, T)``.
    pca_mean, pca_components
        PCA in the embedded space, ``((K-1)*D,)`` and ``(P, (K-1)*D)``.
    whiten
        Scale latents to unit variance (keypoint-MoSeq default).

    Returns
    -------
    tuple
        ``Cd ((K-1)*D, P+1)``, ``x (N, T, P) = pinv(C)(y - d)``, ``v``, ``h``.
    """
    flat = embed(to_egocentric(Y, v, h))
    if whiten:
        Cd = whitened_emission(flat, mask, pca_mean, pca_components)
    else:
        Cd = jnp.concatenate([pca_components.T, pca_mean[:, None]], axis=1)
    x = (flat - Cd[:, -1]) @ jnp.linalg.pinv(Cd[:, :-1]).T
    return Cd, x, v, h
