r"""Switching vector autoregression of order L with an MNIW prior.

For frames t >= L and state j::

    x_t = A_j [x_{t-L}; ...; x_{t-1}] + b_j + e_t,   e_t ~ N(0, Q_j)

``Ab_j = [A_j | b_j]`` has shape ``(P, P*L + 1)``: lags oldest first, the
block just before the bias multiplies ``x_{t-1}``. The prior on each
``(Ab_j, Q_j)`` is ``Q_j ~ IW(nu_0, S_0)``, ``Ab_j | Q_j ~ MN(M_0, Q_j, K_0)``
with ``M_0`` the random walk. Sufficient statistics for all states are formed
about each state's mean (two passes over the frames, summed by state with
segment sums), which keeps them accurate in float32.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import solve_triangular

from moseq_xr.core import small_linalg
from moseq_xr.core.distributions import (
    mniw_factors,
    psd_cholesky,
    sample_mniw_factors,
)


class ARPrior(NamedTuple):
    """MNIW prior shared by every state.

    ``nu_0``, ``S_0 (P, P)``, ``M_0 (P, PL+1)`` and ``K_0 (PL+1, PL+1)``.
    """

    nu_0: jax.Array
    S_0: jax.Array
    M_0: jax.Array
    K_0: jax.Array


#: Frames processed per block by the per-frame passes over all states (AR
#: log-likelihoods, sufficient statistics), so that their per-frame work
#: arrays (e.g. the ``(frames, S * P)`` residuals) stay small and in cache.
FRAME_BLOCK = 2048


def make_ar_prior(
    latent_dim: int,
    nlags: int,
    S_0_scale: float = 0.01,
    K_0_scale: float = 10.0,
    dtype=None,
) -> ARPrior:
    """The keypoint-MoSeq MNIW prior: ``nu_0 = P + 2``, random-walk mean."""
    dtype = dtype or jnp.result_type(float)
    regressors = latent_dim * nlags + 1
    mean = jnp.zeros((latent_dim, regressors), dtype)
    last_lag = latent_dim * (nlags - 1)
    mean = mean.at[:, last_lag : last_lag + latent_dim].set(
        jnp.eye(latent_dim, dtype=dtype)
    )
    return ARPrior(
        nu_0=jnp.asarray(latent_dim + 2.0, dtype),
        S_0=S_0_scale * jnp.eye(latent_dim, dtype=dtype),
        M_0=mean,
        K_0=K_0_scale * jnp.eye(regressors, dtype=dtype),
    )


def lagged_regressors(x: jax.Array, nlags: int) -> jax.Array:
    """Regressors ``[x_{t-L}; ...; x_{t-1}; 1]`` for t = L..T-1.

    Parameters
    ----------
    x
        Shape ``(..., T, P)``.
    nlags
        L.

    Returns
    -------
    jax.Array
        Shape ``(..., T - L, P*L + 1)``.
    """
    num_frames = x.shape[-2]
    lags = [x[..., lag : num_frames - nlags + lag, :] for lag in range(nlags)]
    ones = jnp.ones((*x.shape[:-2], num_frames - nlags, 1), x.dtype)
    return jnp.concatenate([*lags, ones], axis=-1)


def _per_state_means(
    joint: jax.Array, weights: jax.Array, z: jax.Array, num_states: int
) -> tuple[jax.Array, jax.Array]:
    """Weighted mean of ``joint`` per state ``(S, dim)`` and the weights ``(S,)``."""
    counts = jax.ops.segment_sum(weights, z, num_segments=num_states)
    sums = jax.ops.segment_sum(joint * weights[:, None], z, num_segments=num_states)
    safe = jnp.where(counts > 0, counts, 1.0)
    return sums / safe[:, None], counts


def _frame_blocks(values: jax.Array, block: int) -> jax.Array:
    """``values`` (frames first) zero-padded and cut into blocks of ``block`` frames."""
    widths = ((0, -values.shape[0] % block),) + ((0, 0),) * (values.ndim - 1)
    return jnp.pad(values, widths).reshape(-1, block, *values.shape[1:])


def _centred_sums(
    joint: jax.Array,
    weights: jax.Array,
    labels: jax.Array,
    means: jax.Array,
    triangle: tuple[np.ndarray, np.ndarray],
) -> tuple[jax.Array, jax.Array]:
    """Per-label ``sum w (u - m)`` and upper triangle of ``sum w (u - m)(u - m)^T``.

    Accumulated ``FRAME_BLOCK`` frames at a time, so the centred frames and
    their products never exist for all frames at once. Returns shapes
    ``(S, dim)`` and ``(S, len(triangle[0]))``.
    """
    num_states, (rows, cols) = means.shape[0], triangle
    total = joint.shape[0]
    block = max(1, min(FRAME_BLOCK, total))  # padded frames have weight 0

    def accumulate(sums, inputs):
        block_joint, block_weights, block_labels = inputs
        centred = block_joint - means[block_labels]
        scaled = centred * jnp.sqrt(block_weights)[:, None]
        residual = centred * block_weights[:, None]
        products = scaled[:, rows] * scaled[:, cols]
        return (
            sums[0] + jax.ops.segment_sum(residual, block_labels, num_states),
            sums[1] + jax.ops.segment_sum(products, block_labels, num_states),
        ), None

    start = (
        jnp.zeros((num_states, joint.shape[1]), joint.dtype),
        jnp.zeros((num_states, len(rows)), joint.dtype),
    )
    inputs = tuple(_frame_blocks(v, block) for v in (joint, weights, labels))
    return jax.lax.scan(accumulate, start, inputs)[0]


def ar_sufficient_stats(
    x: jax.Array, z: jax.Array, weights: jax.Array, num_states: int, nlags: int
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """Per-state sums ``(Sxx, Syx, Syy, n)``, accumulated about each state's mean.

    With ``u = [regressors; target]`` and ``m_j`` the weighted mean of ``u``
    over the frames of state j, the sums are formed exactly as
    ``sum w u u^T = C + r m^T + m r^T + n m m^T`` where
    ``C = sum w (u - m)(u - m)^T`` and ``r = sum w (u - m)`` (about 0). Only the
    centred products are accumulated over the frames, so the rounding error of
    each sum is relative to the spread of the data, not to its mean: in
    float32, uncentred sums over 10^5 frames of a state lie far from the
    origin lose the AR noise covariance entirely (see
    :func:`moseq_xr.core.distributions.mniw_factors`). Only the upper triangle
    of each frame's outer product is formed.

    Parameters
    ----------
    x
        Latent trajectories, shape ``(N, T, P)``.
    z
        States for frames L..T-1, shape ``(N, T - L)``.
    weights
        Frame weights for frames L..T-1 (the real-frame mask), ``(N, T - L)``.
    num_states, nlags
        S and L.

    Returns
    -------
    tuple
        Shapes ``(S, R, R)``, ``(S, P, R)``, ``(S, P, P)``, ``(S,)`` with
        ``R = P*L + 1``.
    """
    regressors = lagged_regressors(x, nlags)
    targets = x[:, nlags:, :]
    joint = jnp.concatenate([regressors, targets], axis=-1)
    size, dim = regressors.shape[-1], joint.shape[-1]
    joint, flat_z = joint.reshape(-1, dim), z.reshape(-1)
    flat_w = weights.reshape(-1).astype(x.dtype)
    means, counts = _per_state_means(joint, flat_w, flat_z, num_states)
    rows, cols = np.triu_indices(dim)
    residual, upper = _centred_sums(joint, flat_w, flat_z, means, (rows, cols))
    full = jnp.zeros((num_states, dim, dim), x.dtype).at[:, rows, cols].set(upper)
    full = full + jnp.swapaxes(full, 1, 2) - full * jnp.eye(dim, dtype=x.dtype)
    cross = residual[:, :, None] * means[:, None, :]
    full = (
        full
        + cross
        + jnp.swapaxes(cross, 1, 2)
        + counts[:, None, None] * means[:, :, None] * means[:, None, :]
    )
    return full[:, :size, :size], full[:, size:, :size], full[:, size:, size:], counts


def resample_ar_params(
    key: jax.Array,
    stats: tuple[jax.Array, jax.Array, jax.Array, jax.Array],
    prior: ARPrior,
) -> tuple[jax.Array, jax.Array]:
    """Draw ``(Ab, Q)`` for every state from its MNIW posterior.

    States without data are drawn from the prior.
    """
    num_states = stats[3].shape[0]
    keys = jax.random.split(key, num_states)

    def one_state(state_key, sxx, syx, syy, count):
        factors = mniw_factors((sxx, syx, syy, count), tuple(prior))
        return sample_mniw_factors(state_key, factors)

    return jax.vmap(one_state)(keys, *stats)


def init_ar_params(
    key: jax.Array, num_states: int, prior: ARPrior
) -> tuple[jax.Array, jax.Array]:
    """Draw ``(Ab, Q)`` for every state from the prior."""
    dim, size = prior.M_0.shape
    zeros = (
        jnp.zeros((num_states, size, size), prior.M_0.dtype),
        jnp.zeros((num_states, dim, size), prior.M_0.dtype),
        jnp.zeros((num_states, dim, dim), prior.M_0.dtype),
        jnp.zeros((num_states,), prior.M_0.dtype),
    )
    return resample_ar_params(key, zeros, prior)


def _whitened_weights(Ab: jax.Array, Q: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Matrix mapping ``[regressors; target]`` to every state's whitened residual.

    One batched triangular solve whitens ``[Ab | I]`` at once (two independent
    batched solves side by side can deadlock jaxlib 0.10's CPU thread pool).
    The columns are dimension-major (column ``d * S + j`` is dimension ``d``
    of state ``j``), so the squared residuals are summed over dimensions by
    adding ``P`` contiguous ``(frames, S)`` slices, which on a CPU is about
    twice as fast as reducing the last axis of a ``(frames, S, P)`` reshape.
    """
    num_states, dim, _ = Ab.shape
    chol = psd_cholesky(Q)
    eye = jnp.broadcast_to(jnp.eye(dim, dtype=Ab.dtype), (num_states, dim, dim))
    whitened = jax.vmap(lambda c, b: solve_triangular(c, b, lower=True))(
        chol, jnp.concatenate([Ab, eye], axis=-1)
    )
    size = Ab.shape[-1]
    weights = jnp.concatenate([-whitened[..., :size], whitened[..., size:]], axis=-1)
    log_det = jnp.log(jnp.diagonal(chol, axis1=-2, axis2=-1)).sum(-1)
    return weights.transpose(2, 1, 0).reshape(-1, dim * num_states), log_det


def ar_log_likelihoods(
    x: jax.Array, Ab: jax.Array, Q: jax.Array, nlags: int
) -> jax.Array:
    """Gaussian log-likelihood of every frame t >= L under every state.

    The residuals are whitened by the Cholesky factors of ``Q_j`` and all states
    are evaluated with one matrix product per block of
    ``FRAME_BLOCK`` frames (the frames of all rows, one block after
    the other), so that the ``(frames, S * P)`` residuals stay in cache.

    Parameters
    ----------
    x
        Shape ``(N, T, P)``.
    Ab, Q
        Shapes ``(S, P, P*L+1)`` and ``(S, P, P)``.
    nlags
        L.

    Returns
    -------
    jax.Array
        Shape ``(N, T - L, S)``.
    """
    num_rows, num_frames, _ = x.shape
    joint = _joint_regressors(x, nlags).reshape(num_rows * (num_frames - nlags), -1)
    block = max(1, min(FRAME_BLOCK, joint.shape[0]))
    blocks = _frame_blocks(joint, block)
    log_lik = jax.lax.map(_joint_log_likelihoods(Ab, Q), blocks)
    log_lik = log_lik.reshape(-1, Ab.shape[0])[: joint.shape[0]]
    return log_lik.reshape(num_rows, num_frames - nlags, Ab.shape[0])


def ar_scaled_likelihoods(
    x: jax.Array, Ab: jax.Array, Q: jax.Array, zmask: jax.Array, nlags: int
) -> tuple[jax.Array, jax.Array]:
    """Time-major AR likelihoods of every frame t >= L, scaled per frame.

    With ``l`` the log-likelihoods of :func:`ar_log_likelihoods` times
    ``zmask`` (0 on frames without a syllable) and ``peak`` their maximum over
    states, returns ``exp(l - peak)`` of shape ``(T - L, N, S)`` and ``peak``
    of shape ``(T - L, N)``: what the forward filter of all rows reads. They
    are computed ``FRAME_BLOCK`` frames at a time and written in
    place, so neither the log-likelihoods nor a row-major copy is ever stored.

    Parameters
    ----------
    x
        Shape ``(N, T, P)``.
    Ab, Q
        Shapes ``(S, P, P*L+1)`` and ``(S, P, P)``.
    zmask
        Frames with a syllable, ``(N, T - L)``.
    nlags
        L.
    """
    num_rows, num_frames, _ = x.shape
    num_states, steps = Ab.shape[0], num_frames - nlags
    joint = jnp.swapaxes(_joint_regressors(x, nlags), 0, 1)
    joint = joint.reshape(steps * num_rows, -1)
    weights = jnp.swapaxes(zmask, 0, 1).reshape(-1).astype(joint.dtype)
    log_likelihoods = _joint_log_likelihoods(Ab, Q)
    total = joint.shape[0]
    block = max(1, min(FRAME_BLOCK, total))

    def one_block(index, outputs):
        # The last block is moved back to end at the last frame (its overlap
        # with the previous block is recomputed identically).
        start = jnp.minimum(index * block, total - block)
        log_lik = log_likelihoods(jax.lax.dynamic_slice_in_dim(joint, start, block))
        log_lik = log_lik * jax.lax.dynamic_slice_in_dim(weights, start, block)[:, None]
        peak = log_lik.max(-1)
        scaled = jnp.exp(log_lik - peak[:, None])
        return (
            jax.lax.dynamic_update_slice_in_dim(outputs[0], scaled, start, 0),
            jax.lax.dynamic_update_slice_in_dim(outputs[1], peak, start, 0),
        )

    empty = (
        jnp.zeros((total, num_states), joint.dtype),
        jnp.zeros((total,), joint.dtype),
    )
    scaled, peaks = jax.lax.fori_loop(0, -(-total // block), one_block, empty)
    return (
        scaled.reshape(steps, num_rows, num_states),
        peaks.reshape(steps, num_rows),
    )


def _joint_regressors(x: jax.Array, nlags: int) -> jax.Array:
    """``[lagged regressors, 1, target]`` of every frame t >= L.

    Shape ``(..., T - L, P L + 1 + P)``.
    """
    return jnp.concatenate([lagged_regressors(x, nlags), x[..., nlags:, :]], axis=-1)


def _joint_log_likelihoods(Ab: jax.Array, Q: jax.Array):
    """Function of joint regressors ``(frames, P L + 1 + P)`` giving ``(frames, S)``."""
    num_states, dim, _ = Ab.shape
    weights, log_det = _whitened_weights(Ab, Q)
    constant = -log_det - 0.5 * dim * jnp.log(2 * jnp.pi)

    def log_likelihoods(joint: jax.Array) -> jax.Array:
        squared = (joint @ weights) ** 2
        dims = [squared[:, d * num_states : (d + 1) * num_states] for d in range(dim)]
        return -0.5 * sum(dims[1:], dims[0]) + constant

    return log_likelihoods


def _row_log_likelihoods(Ab: jax.Array, Q: jax.Array, nlags: int):
    """Function of one row ``(T, P)`` giving its ``(T - L, S)`` log-likelihoods."""
    log_likelihoods = _joint_log_likelihoods(Ab, Q)
    return lambda row: log_likelihoods(_joint_regressors(row, nlags))


def ar_best_log_likelihood(
    x: jax.Array, Ab: jax.Array, Q: jax.Array, nlags: int
) -> jax.Array:
    """Highest log-likelihood over states of every frame t >= L: ``(N, T - L)``.

    Row by row, so only one row's ``(frames, S)`` log-likelihoods exist at a
    time (:func:`ar_log_likelihoods` holds all rows').
    """
    one_row = _row_log_likelihoods(Ab, Q, nlags)
    return jax.lax.map(lambda row: one_row(row).max(-1), x)


def ar_log_likelihood_chosen(
    x: jax.Array, z: jax.Array, Ab: jax.Array, Q: jax.Array, nlags: int
) -> jax.Array:
    """Log-likelihood of every frame t >= L under its own state: ``(N, T - L)``."""
    dim = Ab.shape[1]
    regressors = lagged_regressors(x, nlags)
    residual = x[..., nlags:, :] - jnp.einsum("ntpr,ntr->ntp", Ab[z], regressors)
    chol = psd_cholesky(Q)[z]
    whitened = small_linalg.solve_lower(chol, residual[..., None])[..., 0]
    log_det = jnp.log(jnp.diagonal(chol, axis1=-2, axis2=-1)).sum(-1)
    return -0.5 * (whitened**2).sum(-1) - log_det - 0.5 * dim * jnp.log(2 * jnp.pi)


def ar_log_prior(Ab: jax.Array, Q: jax.Array, prior: ARPrior) -> jax.Array:
    """Sum over states of ``log IW(Q_j; nu_0, S_0) + log MN(Ab_j; M_0, Q_j, K_0)``."""
    dim, size = prior.M_0.shape
    nu = prior.nu_0
    chol_q = psd_cholesky(Q)
    logdet_q = 2 * jnp.log(jnp.diagonal(chol_q, axis1=-2, axis2=-1)).sum(-1)
    logdet_s = 2 * jnp.log(jnp.diag(psd_cholesky(prior.S_0))).sum()
    q_inv = jax.vmap(
        lambda c: jax.scipy.linalg.cho_solve((c, True), jnp.eye(dim, dtype=c.dtype))
    )(chol_q)
    iw = (
        0.5 * nu * logdet_s
        - 0.5 * nu * dim * jnp.log(2.0)
        - jax.scipy.special.multigammaln(nu / 2, dim)
        - 0.5 * (nu + dim + 1) * logdet_q
        - 0.5 * jnp.einsum("ij,sji->s", prior.S_0, q_inv)
    )
    k_inv = jnp.linalg.inv(prior.K_0)
    logdet_k = jnp.linalg.slogdet(prior.K_0)[1]
    delta = Ab - prior.M_0
    quad = jnp.einsum("spr,rc,sqc,sqp->s", delta, k_inv, delta, q_inv)
    mn = -0.5 * (
        dim * size * jnp.log(2 * jnp.pi) + dim * logdet_k + size * logdet_q + quad
    )
    return (iw + mn).sum()
