"""Conjugate samplers used by the Gibbs sweep, as pure JAX functions.

All functions take an explicit PRNG key and work in the dtype of their inputs
(float64 when x64 is enabled for the call, float32 otherwise). Symmetric
positive-definite inputs are symmetrised and given a small diagonal jitter
before Cholesky factorisation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.linalg import solve_triangular

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

#: Arrays with more elements than this are drawn in two rounds (see
#: :func:`first_accepted`); smaller ones draw all their proposals at once. The
#: retry round costs about a second of compilation per call site, which pays
#: off for the noise scales of a row (frames x keypoints), not for a row's
#: headings or the transition matrix.
TWO_ROUND_MIN_SIZE = 16384


def _pick_first(values: jax.Array, accept: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The first accepted proposal along axis 0 (proposal 0 where none was)."""
    first = jnp.argmax(accept, axis=0)
    chosen = jnp.take_along_axis(values, first[None], axis=0)[0]
    return chosen, accept.any(axis=0)


def _retry_capacity(size: int, rejection_bound: float, first_round: int) -> int:
    """Room for the elements still rejected after the first round.

    Their number is binomial with mean at most ``size * rejection_bound **
    first_round``; the capacity is twice that plus twelve standard deviations
    plus 64, so it overflows with negligible probability.
    """
    mean = size * rejection_bound**first_round
    return min(size, int(2.0 * mean + 12.0 * mean**0.5 + 64))


#: ``propose(key, params, num) -> (values, accept)`` for :func:`first_accepted`.
Proposer = Callable[
    [jax.Array, tuple[jax.Array, ...], int], tuple[jax.Array, jax.Array]
]


def first_accepted(
    key: jax.Array,
    propose: Proposer,
    params: tuple[jax.Array, ...],
    *,
    num_attempts: int,
    first_round: int,
    rejection_bound: float,
) -> tuple[jax.Array, jax.Array]:
    """Elementwise rejection sampling without a data-dependent loop.

    Each element keeps the first accepted proposal of an i.i.d. sequence, which
    is an exact draw from the target. Large arrays draw only ``first_round``
    proposals per element; the few elements left (found with a fixed-size
    ``nonzero``) then draw ``num_attempts`` more. Memory and random bits scale
    with ``first_round`` instead of ``num_attempts``.

    Parameters
    ----------
    key
        PRNG key.
    propose
        ``propose(key, params, num) -> (values, accept)``, both ``(num, n)``,
        for parameters of leading size ``n``.
    params
        Per-element parameters, each of shape ``(n,)``.
    num_attempts
        Proposals per element when drawn in one round, and in the retry round.
    first_round
        Proposals per element in the first of two rounds.
    rejection_bound
        Upper bound on the probability that one proposal is rejected.

    Returns
    -------
    tuple of jax.Array
        ``(value, accepted)``, each ``(n,)``: where no proposal was accepted
        (probability below ``rejection_bound ** num_attempts``, or a capacity
        overflow), ``value`` is the element's first proposal.
    """
    size = params[0].shape[0]
    key_first, key_retry = jax.random.split(key)
    if size <= TWO_ROUND_MIN_SIZE or first_round >= num_attempts:
        return _pick_first(*propose(key_first, params, num_attempts))
    value, accepted = _pick_first(*propose(key_first, params, first_round))
    capacity = _retry_capacity(size, rejection_bound, first_round)
    (index,) = jnp.nonzero(~accepted, size=capacity, fill_value=size)
    retry_params = tuple(p[jnp.minimum(index, size - 1)] for p in params)
    retry_value, retry_accepted = _pick_first(
        *propose(key_retry, retry_params, num_attempts)
    )
    keep = retry_accepted & (index < size)
    value = value.at[index].set(
        jnp.where(keep, retry_value, value[jnp.minimum(index, size - 1)]), mode="drop"
    )
    return value, accepted.at[index].set(keep, mode="drop")


def first_accepted_in_turn(
    key: jax.Array,
    propose: Proposer,
    params: tuple[jax.Array, ...],
    *,
    num_attempts: int,
) -> tuple[jax.Array, jax.Array]:
    """Elementwise rejection sampling, one proposal per element at a time.

    The same law as :func:`first_accepted` (each element keeps the first
    accepted proposal of an i.i.d. sequence), drawn in a ``while_loop`` that
    stops as soon as every element has accepted (or after ``num_attempts``
    proposals). Memory is that of one proposal per element, and the work is
    the number of rounds the slowest element needs (about
    ``log n / log(1 / rejection)``) instead of ``num_attempts``. Proposal
    ``i`` uses ``fold_in(key, i)``, so an element's draw depends only on the
    key and its parameters (not on how many rounds the others needed).

    Parameters
    ----------
    key
        PRNG key.
    propose
        ``propose(key, params, 1) -> (values, accept)``, both ``(1, n)``.
    params
        Per-element parameters, each of shape ``(n,)``.
    num_attempts
        Largest number of proposals per element.

    Returns
    -------
    tuple of jax.Array
        ``(value, accepted)``, each ``(n,)``; where no proposal was accepted,
        ``value`` is the element's first proposal.
    """

    def attempt(index):
        values, accept = propose(jax.random.fold_in(key, index), params, 1)
        return values[0], accept[0]

    def keep_trying(carry):
        index, _, accepted = carry
        return (index < num_attempts) & ~accepted.all()

    def next_attempt(carry):
        index, value, accepted = carry
        proposal, accept = attempt(index)
        value = jnp.where(accept & ~accepted, proposal, value)
        return index + 1, value, accepted | accept

    value, accepted = attempt(0)
    carry = (jnp.ones((), jnp.int32), value, accepted)
    return jax.lax.while_loop(keep_trying, next_attempt, carry)[1:]


def open_uniforms(key: jax.Array, shape: tuple[int, ...], dtype) -> jax.Array:
    """Uniform draws on the open interval (0, 1) from one call for random bits.

    Each value is ``(m + 1/2) 2^-p`` for a uniform random ``p``-bit integer
    ``m``, with ``p`` the mantissa bits of ``dtype`` (52 in float64, 23 in
    float32): exactly representable, never 0 or 1, so its logarithm is finite.
    One call to ``jax.random.bits`` serves as many uniforms as a sampler needs,
    which keeps the compiled program small (every separate ``uniform`` or
    ``normal`` call adds its own random-bit generator). ``dtype`` is taken as
    JAX would store it (float64 gives float32 while x64 is off).
    """
    dtype = jax.dtypes.canonicalize_dtype(dtype)
    word_bits = 8 * dtype.itemsize
    mantissa = jnp.finfo(dtype).nmant
    bits = jax.random.bits(key, shape, jnp.dtype(f"uint{word_bits}"))
    integer = (bits >> (word_bits - mantissa)).astype(dtype)
    return (integer + 0.5) * (2.0**-mantissa)


def box_muller_normals(uniforms: jax.Array, num: int) -> jax.Array:
    """``num`` standard normals along axis 0 from ``2 ceil(num / 2)`` uniforms.

    ``uniforms`` holds open-interval uniforms along axis 0 (see
    :func:`open_uniforms`); pairs ``(u1, u2)`` give the two independent
    normals ``sqrt(-2 log u1) (cos 2 pi u2, sin 2 pi u2)``.
    """
    pairs = (num + 1) // 2
    radius = jnp.sqrt(-2.0 * jnp.log(uniforms[:pairs]))
    angle = 2.0 * jnp.pi * uniforms[pairs : 2 * pairs]
    normals = jnp.concatenate([radius * jnp.cos(angle), radius * jnp.sin(angle)])
    return normals[:num]


def _marsaglia_tsang_proposals(
    key: jax.Array, params: tuple[jax.Array, jax.Array], num: int
) -> tuple[jax.Array, jax.Array]:
    """``num`` squeeze proposals ``v`` for ``Gamma(d + 1/3)`` and their acceptance.

    The proposal's normal (Box-Muller) and the squeeze test's uniform come
    from one draw of random bits.
    """
    d, c = params
    pairs = (num + 1) // 2
    uniforms = open_uniforms(key, (2 * pairs + num, *d.shape), d.dtype)
    normal = box_muller_normals(uniforms, num)
    uniform = uniforms[2 * pairs :]
    v = (1.0 + c * normal) ** 3
    safe_v = jnp.where(v > 0, v, 1.0)
    accept = (v > 0) & (
        jnp.log(uniform) < 0.5 * normal**2 + d - d * safe_v + d * jnp.log(safe_v)
    )
    return safe_v, accept


def sample_log_gamma(key: jax.Array, shape_param: jax.Array) -> jax.Array:
    """Log of ``Gamma(shape_param, 1)`` draws, elementwise.

    Marsaglia & Tsang (2000) squeeze-rejection without a data-dependent loop
    (it compiles in a fraction of the time of ``jax.random.gamma``): up to
    ``GAMMA_ATTEMPTS`` proposals per element, drawn in two rounds for large
    arrays (:func:`first_accepted`). Shapes below 1 use ``G(a) = G(a + 1)
    U^(1/a)`` in log space, which stays finite for shapes as small as 1e-300.
    Each proposal is accepted with probability above 0.95, so all of them fail
    with probability below 1e-15; the draw then falls back to the mode of
    ``G(a + 1)`` (documented, never observed in tests).

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
    flat = shape_param.reshape(-1)
    boosted = flat < 1
    d = jnp.where(boosted, flat + 1, flat) - 1.0 / 3.0
    c = 1.0 / jnp.sqrt(9.0 * d)
    key_squeeze, key_boost = jax.random.split(key)
    v, accepted = first_accepted(
        key_squeeze,
        _marsaglia_tsang_proposals,
        (d, c),
        num_attempts=GAMMA_ATTEMPTS,
        first_round=2,
        rejection_bound=0.05,
    )
    log_gamma = jnp.log(d) + jnp.log(jnp.where(accepted, v, 1.0))
    boost_uniform = open_uniforms(key_boost, flat.shape, flat.dtype)
    log_gamma = jnp.where(boosted, log_gamma + jnp.log(boost_uniform) / flat, log_gamma)
    return log_gamma.reshape(shape_param.shape)


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


def inverse_wishart_factor(
    key: jax.Array, df: jax.Array, chol_scale: jax.Array
) -> jax.Array:
    """A square root ``B`` (``B B^T = Q``) of a draw ``Q ~ InvWishart(df, scale)``.

    Parameters
    ----------
    key
        PRNG key.
    df
        Degrees of freedom, greater than ``dim - 1``.
    chol_scale
        Lower Cholesky factor ``C`` of the scale matrix (``scale = C C^T``).

    Returns
    -------
    jax.Array
        ``B = C A^{-T}`` with ``A`` the Bartlett factor of a ``Wishart(df, I)``
        draw, so that ``Q^{-1} = C^{-T} A A^T C^{-1} ~ Wishart(df, scale^{-1})``.
        ``B`` is not triangular; it serves directly as the row factor of a
        matrix-normal draw, so ``Q`` never needs to be factorised again.
    """
    dim = chol_scale.shape[-1]
    bartlett = _bartlett_factor(key, df, dim, chol_scale.dtype)
    return solve_triangular(bartlett, chol_scale.T, lower=True).T


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
        Bartlett decomposition (:func:`inverse_wishart_factor`).
    """
    factor = inverse_wishart_factor(key, df, psd_cholesky(scale))
    return symmetrize(factor @ factor.T)


def sample_matrix_normal(
    key: jax.Array, mean: jax.Array, row_cov: jax.Array, col_cov: jax.Array
) -> jax.Array:
    """Draw ``X ~ MN(mean, row_cov, col_cov)``.

    The vec-covariance is ``col_cov ⊗ row_cov``.
    """
    normals = jax.random.normal(key, mean.shape, mean.dtype)
    return mean + psd_cholesky(row_cov) @ normals @ psd_cholesky(col_cov).T


def diagonal_scaled_cholesky(
    matrix: jax.Array,
    relative_eps: float = PSD_JITTER_EPS,
    factor: Callable[[jax.Array], jax.Array] = jnp.linalg.cholesky,
) -> jax.Array:
    """Lower Cholesky factor of ``sym(matrix)``, each diagonal entry bumped.

    Each diagonal entry is raised by ``relative_eps`` machine epsilons of
    itself. Unlike :func:`psd_cholesky`, the bump is relative to each diagonal
    entry, so it is invariant to rescaling any one coordinate (a count of 10^5
    frames on one diagonal entry does not inflate the jitter of the others).
    ``factor`` factors the bumped matrix (LAPACK by default; the serial Kalman
    sampler passes its unrolled :func:`moseq_xr.core.small_linalg.cholesky`).
    """
    sym = symmetrize(matrix)
    diagonal = jnp.abs(jnp.diagonal(sym, axis1=-2, axis2=-1))
    dtype = matrix.dtype
    bump = relative_eps * jnp.finfo(dtype).eps * diagonal + jnp.finfo(dtype).tiny
    return factor(sym + bump[..., None] * jnp.eye(sym.shape[-1], dtype=dtype))


class MNIWFactors(NamedTuple):
    """An MNIW posterior in factored, centred form (see :func:`mniw_factors`).

    Attributes
    ----------
    nu
        Degrees of freedom ``nu_n``.
    mean
        Posterior mean ``M_n`` of ``A``, ``(P, R)``.
    chol_scale
        Lower Cholesky factor of the inverse-Wishart scale ``S_n``, ``(P, P)``.
    col_factor
        ``W (R, R)`` with ``W^T W = K_n``: the column factor of the
        matrix-normal draw ``A = M_n + B Z W`` (``B B^T = Q``).
    """

    nu: jax.Array
    mean: jax.Array
    chol_scale: jax.Array
    col_factor: jax.Array


def _centring(sxx: jax.Array, syx: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Shifts that centre the regressors and targets on the last regressor.

    With the last regressor the constant 1 of a bias, ``shift_x = sum x / n``
    and ``shift_y = sum y / n`` are the weighted means. The returned ``U``
    maps ``u = [x; y]`` to ``[x - shift_x x_last; y - shift_y x_last]``; any
    shift gives an exact change of variables, so the posterior is the same
    whatever the last regressor is.
    """
    size, dim = sxx.shape[-1], syx.shape[-2]
    last = sxx[-1, -1]
    safe = jnp.where(last > 0, last, 1.0)
    shift_x = jnp.where(last > 0, sxx[:-1, -1] / safe, 0.0)
    shift_y = jnp.where(last > 0, syx[:, -1] / safe, 0.0)
    zero = jnp.zeros((1,), sxx.dtype)
    shift = jnp.concatenate([shift_x, zero, shift_y])
    unit = jnp.zeros((size + dim,), sxx.dtype).at[size - 1].set(1.0)
    return (
        jnp.eye(size + dim, dtype=sxx.dtype) - jnp.outer(shift, unit),
        shift_x,
        shift_y,
    )


def mniw_factors(
    stats: tuple[jax.Array, jax.Array, jax.Array, jax.Array],
    prior: tuple[jax.Array, jax.Array, jax.Array, jax.Array],
) -> MNIWFactors:
    r"""Posterior of an MNIW regression ``y = A x + e``, computed stably.

    The prior and the data form one joint scatter matrix of ``u = [x; y]``::

        G = [[K_0^{-1} + Sxx,        (M_0 K_0^{-1} + Syx)^T      ],
             [M_0 K_0^{-1} + Syx,    S_0 + Syy + M_0 K_0^{-1} M_0^T]]

    whose Cholesky factor ``[[L11, 0], [L21, L22]]`` gives every posterior
    quantity without an explicit inverse or subtraction:
    ``S_n = L22 L22^T`` (a Schur complement, positive definite by
    construction), ``M_n = L21 L11^{-1}`` and ``K_n = L11^{-T} L11^{-1}``.
    Before the factorisation ``G`` is centred (:func:`_centring`): sums of
    uncentred products are dominated by ``n mean mean^T``, and in float32
    the Schur complement ``S_n`` (``n Q``, often 10^-3 of ``Syy``) would be
    lost in their rounding. The centring is undone exactly on ``M_n`` and on
    the column factor.

    Parameters
    ----------
    stats
        ``(Sxx, Syx, Syy, n)``: weighted sums of ``x x^T``, ``y x^T``, ``y y^T``
        and the weight; put the bias regressor (constant 1) last.
    prior
        ``(nu_0, S_0, M_0, K_0)``: ``Q ~ IW(nu_0, S_0)``, ``A | Q ~ MN(M_0, Q, K_0)``.

    Returns
    -------
    MNIWFactors
    """
    sxx, syx, syy, count = stats
    nu_0, s_0, m_0, k_0 = prior
    size = sxx.shape[-1]
    k0_inv = jnp.linalg.inv(symmetrize(k_0))
    cross = m_0 @ k0_inv + syx
    joint = jnp.block(
        [[k0_inv + sxx, cross.T], [cross, s_0 + syy + m_0 @ k0_inv @ m_0.T]]
    )
    centring, shift_x, shift_y = _centring(sxx, syx)
    chol = diagonal_scaled_cholesky(centring @ symmetrize(joint) @ centring.T)
    chol_xx, chol_yx = chol[:size, :size], chol[size:, :size]
    mean_centred = solve_triangular(chol_xx, chol_yx.T, lower=True, trans="T").T
    a_part = mean_centred[:, :-1]
    bias = mean_centred[:, -1] + shift_y - a_part @ shift_x
    uncentre = jnp.eye(size, dtype=sxx.dtype).at[:-1, -1].set(-shift_x)  # T^{-1}
    return MNIWFactors(
        nu=nu_0 + count,
        mean=jnp.concatenate([a_part, bias[:, None]], axis=1),
        chol_scale=chol[size:, size:],
        col_factor=solve_triangular(chol_xx, uncentre, lower=True),
    )


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
        ``(nu_n, S_n, M_n, K_n)`` of the same family, computed by
        :func:`mniw_factors` (sample with :func:`sample_mniw_factors`, which
        does not factorise ``S_n`` and ``K_n`` again).
    """
    factors = mniw_factors(stats, prior)
    s_n = factors.chol_scale @ factors.chol_scale.T
    k_n = factors.col_factor.T @ factors.col_factor
    return factors.nu, symmetrize(s_n), factors.mean, symmetrize(k_n)


def sample_mniw_factors(
    key: jax.Array, factors: MNIWFactors
) -> tuple[jax.Array, jax.Array]:
    """Draw ``(A, Q)`` from an MNIW posterior given by :func:`mniw_factors`."""
    key_q, key_a = jax.random.split(key)
    row_factor = inverse_wishart_factor(key_q, factors.nu, factors.chol_scale)
    normals = jax.random.normal(key_a, factors.mean.shape, factors.mean.dtype)
    draw = factors.mean + row_factor @ normals @ factors.col_factor
    return draw, symmetrize(row_factor @ row_factor.T)


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
