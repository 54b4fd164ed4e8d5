"""Conjugate samplers used by the Gibbs sweep, as pure JAX functions.

All functions take an explicit PRNG key and work in the dtype of their inputs
(float64 when x64 is enabled for the call, float32 otherwise). Symmetric
positive-definite inputs are symmetrised and given a small diagonal jitter
before Cholesky factorisation.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.scipy.linalg import cho_solve, solve_triangular

#: Diagonal jitter added before Cholesky, relative to the mean diagonal and to
#: the dtype's machine epsilon (about 2e-14 in float64, 1e-5 in float32).
PSD_JITTER_EPS = 100.0


def symmetrize(matrix: jax.Array) -> jax.Array:
    """Average a (batch of) square matrices with its transpose."""
    return 0.5 * (matrix + jnp.swapaxes(matrix, -1, -2))


def psd_cholesky(matrix: jax.Array, jitter: float | None = None) -> jax.Array:
    """Lower Cholesky factor of ``matrix`` after symmetrising and adding jitter.

    The jitter is relative to the scale of the matrix (its mean diagonal), by
    default ``PSD_JITTER_EPS`` machine epsilons of its dtype, so it regularises
    without biasing small covariances.
    """
    size = matrix.shape[-1]
    if jitter is None:
        jitter = PSD_JITTER_EPS * jnp.finfo(matrix.dtype).eps
    scale = jnp.abs(jnp.diagonal(matrix, axis1=-2, axis2=-1)).mean(-1)[..., None, None]
    eye = jnp.eye(size, dtype=matrix.dtype)
    return jnp.linalg.cholesky(symmetrize(matrix) + jitter * scale * eye)


GAMMA_ATTEMPTS = 12


def sample_log_gamma(key: jax.Array, shape_param: jax.Array) -> jax.Array:
    """Log of ``Gamma(shape_param, 1)`` draws, elementwise.

    Marsaglia & Tsang (2000) squeeze-rejection with ``GAMMA_ATTEMPTS``
    proposals drawn at once (no data-dependent loop, so it compiles in a
    fraction of the time of ``jax.random.gamma``); shapes below 1 use
    ``G(a) = G(a + 1) U^(1/a)`` in log space, which stays finite for shapes as
    small as 1e-300. Each proposal is accepted with probability above 0.95, so
    all of them fail with probability below 1e-15; the draw then falls back to
    the mode of ``G(a + 1)`` (documented, never observed in tests).

    Parameters
    ----------
    key
        PRNG key.
    shape_param
        Positive shape parameters (any array shape).

    Returns
    -------
    jax.Array
        Same shape and dtype as ``shape_param``.
    """
    shape_param = jnp.asarray(shape_param)
    dtype = shape_param.dtype
    boosted = shape_param < 1
    base = jnp.where(boosted, shape_param + 1, shape_param)
    d = base - 1.0 / 3.0
    c = 1.0 / jnp.sqrt(9.0 * d)
    key_normal, key_uniform, key_boost = jax.random.split(key, 3)
    proposals = (GAMMA_ATTEMPTS, *shape_param.shape)
    normal = jax.random.normal(key_normal, proposals, dtype)
    uniform = jax.random.uniform(
        key_uniform, proposals, dtype, minval=jnp.finfo(dtype).tiny
    )
    v = (1.0 + c * normal) ** 3
    safe_v = jnp.where(v > 0, v, 1.0)
    accept = (v > 0) & (
        jnp.log(uniform) < 0.5 * normal**2 + d - d * safe_v + d * jnp.log(safe_v)
    )
    first = jnp.argmax(accept, axis=0)
    chosen = jnp.take_along_axis(safe_v, first[None], axis=0)[0]
    chosen = jnp.where(accept.any(axis=0), chosen, 1.0)
    log_gamma = jnp.log(d) + jnp.log(chosen)
    boost_uniform = jax.random.uniform(
        key_boost, shape_param.shape, dtype, minval=jnp.finfo(dtype).tiny
    )
    return jnp.where(
        boosted, log_gamma + jnp.log(boost_uniform) / shape_param, log_gamma
    )


def sample_gamma(key: jax.Array, shape_param: jax.Array) -> jax.Array:
    """``Gamma(shape_param, 1)`` draws (see :func:`sample_log_gamma`)."""
    return jnp.exp(sample_log_gamma(key, shape_param))


def sample_chi2(
    key: jax.Array, df: jax.Array, shape: tuple[int, ...] = (), dtype=None
) -> jax.Array:
    """Chi-squared draws with ``df`` degrees of freedom (broadcast with ``shape``)."""
    dtype = dtype or jnp.result_type(float)
    return 2.0 * sample_gamma(
        key, jnp.broadcast_to(jnp.asarray(df, dtype) / 2.0, shape)
    )


def _bartlett_factor(key: jax.Array, df: jax.Array, dim: int, dtype) -> jax.Array:
    """Lower-triangular Bartlett factor A of a Wishart(df, I) draw W = A A^T."""
    key_diag, key_off = jax.random.split(key)
    chi2 = sample_chi2(key_diag, df - jnp.arange(dim, dtype=dtype), (dim,), dtype)
    normals = jax.random.normal(key_off, (dim, dim), dtype)
    return jnp.tril(normals, -1) + jnp.diag(jnp.sqrt(chi2))


def sample_inverse_wishart(
    key: jax.Array, df: jax.Array, scale: jax.Array
) -> jax.Array:
    """Draw ``Q ~ InvWishart(df, scale)`` (mean ``scale / (df - dim - 1)``).

    Parameters
    ----------
    key
        PRNG key.
    df
        Degrees of freedom, greater than ``dim - 1``.
    scale
        Scale matrix, shape ``(dim, dim)``.

    Returns
    -------
    jax.Array
        Shape ``(dim, dim)``. Uses ``Q^{-1} ~ Wishart(df, scale^{-1})`` with the
        Bartlett decomposition: with ``scale = C C^T`` and Bartlett factor ``A``,
        ``Q = B B^T`` where ``B = C A^{-T}``.
    """
    dim = scale.shape[-1]
    chol_scale = psd_cholesky(scale)
    bartlett = _bartlett_factor(key, df, dim, scale.dtype)
    factor_t = solve_triangular(bartlett, chol_scale.T, lower=True)
    return symmetrize(factor_t.T @ factor_t)


def sample_matrix_normal(
    key: jax.Array, mean: jax.Array, row_cov: jax.Array, col_cov: jax.Array
) -> jax.Array:
    """Draw ``X ~ MN(mean, row_cov, col_cov)`` (vec-covariance ``col_cov ⊗ row_cov``)."""
    normals = jax.random.normal(key, mean.shape, mean.dtype)
    return mean + psd_cholesky(row_cov) @ normals @ psd_cholesky(col_cov).T


def mniw_posterior(
    stats: tuple[jax.Array, jax.Array, jax.Array, jax.Array],
    prior: tuple[jax.Array, jax.Array, jax.Array, jax.Array],
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """Posterior of a matrix-normal inverse-Wishart regression ``y = A x + e``.

    Parameters
    ----------
    stats
        ``(Sxx, Syx, Syy, n)``: sums of ``x x^T``, ``y x^T``, ``y y^T`` and the count.
    prior
        ``(nu_0, S_0, M_0, K_0)``: ``Q ~ IW(nu_0, S_0)``, ``A | Q ~ MN(M_0, Q, K_0)``.

    Returns
    -------
    tuple
        ``(nu_n, S_n, M_n, K_n)`` of the same family.
    """
    sxx, syx, syy, count = stats
    nu_0, s_0, m_0, k_0 = prior
    k0_inv = jnp.linalg.inv(symmetrize(k_0))
    precision_n = symmetrize(k0_inv + sxx)
    chol_precision = psd_cholesky(precision_n)
    k_n = cho_solve((chol_precision, True), jnp.eye(k_0.shape[-1], dtype=k_0.dtype))
    m_n = (m_0 @ k0_inv + syx) @ k_n
    s_n = s_0 + syy + m_0 @ k0_inv @ m_0.T - m_n @ precision_n @ m_n.T
    return nu_0 + count, symmetrize(s_n), m_n, symmetrize(k_n)


def sample_mniw(
    key: jax.Array,
    posterior: tuple[jax.Array, jax.Array, jax.Array, jax.Array],
) -> tuple[jax.Array, jax.Array]:
    """Draw ``(A, Q)`` from an MNIW distribution ``(nu, S, M, K)``."""
    nu, scale, mean, col_cov = posterior
    key_q, key_a = jax.random.split(key)
    noise_cov = sample_inverse_wishart(key_q, nu, scale)
    return sample_matrix_normal(key_a, mean, noise_cov, col_cov), noise_cov


def sample_log_dirichlet(key: jax.Array, concentration: jax.Array) -> jax.Array:
    """Log of a Dirichlet draw along the last axis, stable for tiny concentrations."""
    log_gammas = sample_log_gamma(key, concentration)
    return jax.nn.log_softmax(log_gammas, axis=-1)


def sample_dirichlet(key: jax.Array, concentration: jax.Array) -> jax.Array:
    """Dirichlet draw along the last axis, floored at the dtype's smallest normal."""
    probs = jnp.exp(sample_log_dirichlet(key, concentration))
    return jnp.maximum(probs, jnp.finfo(probs.dtype).tiny)


def dirichlet_log_density(probs: jax.Array, concentration: jax.Array) -> jax.Array:
    """Log density of Dirichlet(``concentration``) at ``probs`` (last axis)."""
    norm = jax.scipy.special.gammaln(concentration.sum(-1)) - jax.scipy.special.gammaln(
        concentration
    ).sum(-1)
    return norm + ((concentration - 1.0) * jnp.log(probs)).sum(-1)
