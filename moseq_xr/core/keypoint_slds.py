r"""Gibbs conditionals of the keypoint observation model.

Keypoint k of frame t is ``Y_tk ~ N(R(h_t) Yhat_tk + v_t, s_tk sigma^2_k I_D)``
(:mod:`moseq_xr.core.keypoints`). Given the other variables this module draws

* the headings ``h`` (von Mises per frame, :func:`resample_heading`),
* the centroids ``v`` (Gaussian random walk, :func:`resample_centroid`),
* the noise scales ``s`` (scaled inverse chi-squared, :func:`resample_noise_scales`),
* the per-keypoint variances ``sigma^2`` (:func:`resample_sigmasq`),
* the pose latents ``x`` of every row (:func:`resample_pose_latents`, built on
  :mod:`moseq_xr.core.kalman`),

and evaluates the observation terms of the log joint. Every function works on
all rows at once: ``Y (N, T, K, D)``, ``mask (N, T)`` etc.

Deliberate departures from keypoint-MoSeq (the reference):

* the degrees of freedom of the ``s`` and ``sigma^2`` conditionals use the
  true data dimension D (2 or 3), not a hard-coded 3;
* padding frames carry no observation at all (zero precision) instead of a
  large finite noise; their heading is drawn from its uniform prior;
* every draw has its own key;
* the noise-scale prior in the log joint is the normalised density (the
  reference drops a term that is constant given the confidences).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from moseq_xr.core.distributions import first_accepted_in_turn, sample_chi2
from moseq_xr.core.kalman import (
    emission_information,
    sample_pose_latents_parallel,
    sample_pose_latents_serial,
)
from moseq_xr.core.keypoints import estimate_pose, rotation_matrices
from moseq_xr.core.rows import row_keys

CENTROID_PRIOR_VARIANCE = 1e4
"""Prior variance of the first centroid ``v_0`` (per coordinate)."""

CENTROID_HOLD_FACTOR = 10.0
"""Random-walk variance multiplier when the source frame is padding."""

VON_MISES_ATTEMPTS = 32
"""Most Best-Fisher proposals per draw (each accepted with probability >= 0.65)."""

MIN_CONCENTRATION = 1e-8
"""Concentrations below this are raised to it (the law is then uniform to 1e-8)."""


# ---------------------------------------------------------------------------
# Geometry shared by the conditionals
# ---------------------------------------------------------------------------


def world_pose(
    x: jax.Array, v: jax.Array, h: jax.Array, Cd: jax.Array, num_keypoints: int
) -> jax.Array:
    """Compute the predicted keypoints ``R(h_t) Yhat_t + v_t``, ``(..., T, K, D)``."""
    pose = estimate_pose(x, Cd, num_keypoints)
    rotation = rotation_matrices(h, pose.shape[-1])
    return jnp.einsum("...de,...ke->...kd", rotation, pose) + v[..., None, :]


def squared_residuals(
    Y: jax.Array, x: jax.Array, v: jax.Array, h: jax.Array, Cd: jax.Array
) -> jax.Array:
    """``||Y_tk - (R(h_t) Yhat_tk + v_t)||^2``, ``(N, T, K)``."""
    return ((Y - world_pose(x, v, h, Cd, Y.shape[-2])) ** 2).sum(-1)


# ---------------------------------------------------------------------------
# Heading
# ---------------------------------------------------------------------------


def heading_concentration(
    Y: jax.Array,
    v: jax.Array,
    x: jax.Array,
    s: jax.Array,
    sigmasq: jax.Array,
    Cd: jax.Array,
) -> tuple[jax.Array, jax.Array]:
    """Natural parameters ``(kappa_cos, kappa_sin)`` of the heading conditional.

    ``p(h_t | ...) ∝ exp(kappa_cos cos h_t + kappa_sin sin h_t)`` with
    ``S = sum_k w_tk Yhat_tk[:2] (Y_tk - v_t)[:2]^T``, ``w = 1 / (s sigma^2)``,
    ``kappa_cos = S_00 + S_11`` and ``kappa_sin = S_01 - S_10``. In 3-D the
    z coordinate does not depend on h and drops out.
    """
    pose = estimate_pose(x, Cd, Y.shape[-2])[..., :2]
    centred = (Y - v[..., None, :])[..., :2]
    weights = 1.0 / (s * sigmasq)
    S = jnp.einsum("...k,...ki,...kj->...ij", weights, pose, centred)
    return S[..., 0, 0] + S[..., 1, 1], S[..., 0, 1] - S[..., 1, 0]


def _best_fisher_excess(concentration: jax.Array) -> jax.Array:
    """``r - 1`` of the Best-Fisher wrapped-Cauchy envelope, without cancellation.

    With ``tau = 1 + sqrt(1 + 4 k^2)``, ``rho = (tau - sqrt(2 tau)) / (2 k)`` and
    ``r = (1 + rho^2) / (2 rho)``: ``r - 1 = (1 - rho)^2 / (2 rho)``. ``rho`` is
    rationalised for small k and ``1 - rho`` for large k.
    """
    k = concentration
    root = jnp.hypot(1.0, 2.0 * k)  # sqrt(1 + 4 k^2) without overflow
    tau = 1.0 + root
    rho = 2.0 * k * jnp.sqrt(tau) / ((jnp.sqrt(tau) + jnp.sqrt(2.0)) * (root + 1.0))
    one_minus_rho_large = (jnp.sqrt(2.0 * tau) - 1.0 - 1.0 / (2.0 * k + root)) / (
        2.0 * k
    )
    one_minus_rho = jnp.where(k < 1.0, 1.0 - rho, one_minus_rho_large)
    return one_minus_rho**2 / (2.0 * rho)


def _best_fisher_proposals(
    key: jax.Array, params: tuple[jax.Array, jax.Array], num: int
) -> tuple[jax.Array, jax.Array]:
    """``num`` signed angular deviations from the wrapped-Cauchy envelope.

    ``params`` are the concentrations and their :func:`_best_fisher_excess`.
    Returns the deviations and whether each is accepted.
    """
    k, excess = params
    u = jax.random.uniform(key, (3, num, *k.shape), k.dtype)
    half = 0.5 * jnp.pi * u[0]
    one_minus_z, one_plus_z = 2.0 * jnp.sin(half) ** 2, 2.0 * jnp.cos(half) ** 2
    one_minus_f = excess * one_minus_z / (excess + one_plus_z)  # 1 - cos(angle)
    c = k * (excess + one_minus_f)
    accept = (c * (2.0 - c) - u[1] > 0) | (jnp.log(c / u[1]) + 1.0 - c >= 0)
    angle = 2.0 * jnp.arcsin(jnp.sqrt(jnp.clip(0.5 * one_minus_f, 0.0, 1.0)))
    return jnp.where(u[2] < 0.5, -angle, angle), accept


def sample_von_mises(
    key: jax.Array,
    mean_direction: jax.Array,
    concentration: jax.Array,
    num_attempts: int = VON_MISES_ATTEMPTS,
) -> jax.Array:
    """Von Mises draws by the Best & Fisher (1979) rejection sampler.

    Parameters
    ----------
    key
        PRNG key.
    mean_direction, concentration
        Broadcastable arrays; the concentration is raised to ``MIN_CONCENTRATION``.
    num_attempts
        Most proposals per draw; the first accepted one is kept. They are
        drawn one per element at a time until every element has accepted
        (:func:`moseq_xr.core.distributions.first_accepted_in_turn`), so
        memory stays at one proposal per element and the work at the rounds
        the slowest element needs (about 11 for 100 000 frames). Each is
        accepted with probability >= 0.65, so all 32 fail with probability
        < 1e-14; the first proposal (a wrapped-Cauchy draw close to the
        target) is then used as a fallback.

    Returns
    -------
    jax.Array
        Angles in ``(-pi, pi]``. Written in terms of ``r - 1`` and
        ``1 - cos``, so it stays accurate for concentrations up to ~1e12 in
        float32 (where the textbook formulas collapse to the mean).
    """
    shape = jnp.broadcast_shapes(jnp.shape(mean_direction), jnp.shape(concentration))
    dtype = jnp.result_type(mean_direction, concentration)
    k = jnp.maximum(
        jnp.broadcast_to(concentration, shape).astype(dtype), MIN_CONCENTRATION
    )
    deviation, _ = first_accepted_in_turn(
        key,
        _best_fisher_proposals,
        (k.reshape(-1), _best_fisher_excess(k).reshape(-1)),
        num_attempts=num_attempts,
    )
    total = mean_direction + deviation.reshape(shape)
    return jnp.arctan2(jnp.sin(total), jnp.cos(total))


def resample_heading(
    key: jax.Array,
    Y: jax.Array,
    v: jax.Array,
    x: jax.Array,
    s: jax.Array,
    sigmasq: jax.Array,
    Cd: jax.Array,
    mask: jax.Array,
) -> jax.Array:
    """Draw every heading from its von Mises conditional.

    Parameters
    ----------
    key
        PRNG key.
    Y
        Keypoints ``(N, T, K, D)``.
    v, x, s
        Centroids ``(N, T, D)``, pose latents ``(N, T, P)``, noise scales ``(N, T, K)``.
    sigmasq, Cd
        ``(K,)`` and ``((K-1)*D, P+1)``.
    mask
        ``(N, T)``; padding frames have no likelihood, so their heading is
        drawn from the uniform prior.

    Returns
    -------
    jax.Array
        ``h`` of shape ``(N, T)`` in ``(-pi, pi]``.
    """
    kappa_cos, kappa_sin = heading_concentration(Y, v, x, s, sigmasq, Cd)
    real = (mask > 0).astype(kappa_cos.dtype)
    direction = jnp.arctan2(kappa_sin, kappa_cos)
    return sample_von_mises(key, direction, jnp.hypot(kappa_cos, kappa_sin) * real)


# ---------------------------------------------------------------------------
# Centroid
# ---------------------------------------------------------------------------


def centroid_pseudo_observations(
    Y: jax.Array,
    x: jax.Array,
    h: jax.Array,
    s: jax.Array,
    sigmasq: jax.Array,
    Cd: jax.Array,
) -> tuple[jax.Array, jax.Array]:
    """Precision-weighted centroid evidence of each frame.

    Every keypoint observes ``v_t`` as ``Y_tk - R(h_t) Yhat_tk`` with variance
    ``var_tk = s_tk sigma^2_k``; together they are exactly one observation
    ``mu_t ~ N(v_t, gamma^2_t I)``.

    Returns
    -------
    tuple
        ``mu (N, T, D)`` and the precision ``1 / gamma^2_t`` ``(N, T)``.
    """
    offsets = Y - world_pose(x, jnp.zeros_like(Y[..., 0, :]), h, Cd, Y.shape[-2])
    weights = 1.0 / (s * sigmasq)
    precision = weights.sum(-1)
    mu = jnp.einsum("...k,...kd->...d", weights, offsets) / precision[..., None]
    return mu, precision


def _walk_variances(mask: jax.Array, sigmasq_loc, dtype) -> jax.Array:
    """Variance of the step into frames 1..T-1, ``(N, T-1)`` (hold after padding)."""
    held = mask[:, :-1] <= 0
    step = jnp.asarray(sigmasq_loc, dtype)
    return jnp.where(held, CENTROID_HOLD_FACTOR * step, step)


def _scalar_update(mean, var, obs, precision):
    """Condition ``N(mean, var)`` on ``obs ~ N(., 1 / precision)`` (precision >= 0)."""
    denom = 1.0 + var * precision
    return mean + var * precision * (obs - mean) / denom, var / denom


def _random_walk_serial(key, obs, precision, steps):
    """FFBS of independent scalar random walks; time on axis 0, any batch shape."""
    prior = jnp.full_like(obs[0], CENTROID_PRIOR_VARIANCE)
    first = _scalar_update(jnp.zeros_like(obs[0]), prior, obs[0], precision[0])

    def forward(carry, inputs):
        y, lam, q = inputs
        updated = _scalar_update(carry[0], carry[1] + q, y, lam)
        return updated, updated

    _, (means, variances) = jax.lax.scan(
        forward, first, (obs[1:], precision[1:], steps)
    )
    means = jnp.concatenate([first[0][None], means])
    variances = jnp.concatenate([first[1][None], variances])
    normals = jax.random.normal(key, obs.shape, obs.dtype)
    last = means[-1] + jnp.sqrt(variances[-1]) * normals[-1]

    def backward(following, inputs):
        mean, var, q, noise = inputs
        gain = var / (var + q)
        draw = mean + gain * (following - mean) + jnp.sqrt(gain * q) * noise
        return draw, draw

    _, draws = jax.lax.scan(
        backward, last, (means[:-1], variances[:-1], steps, normals[:-1]), reverse=True
    )
    return jnp.concatenate([draws, last[None]])


def _scalar_filter_combine(earlier, later):
    A1, b1, C1, eta1, J1 = earlier
    A2, b2, C2, eta2, J2 = later
    denom = 1.0 + C1 * J2
    return (
        A2 * A1 / denom,
        A2 * (b1 + C1 * eta2) / denom + b2,
        A2**2 * C1 / denom + C2,
        A1 * (eta2 - J2 * b1) / denom + eta1,
        A1**2 * J2 / denom + J1,
    )


def _random_walk_parallel(key, obs, precision, steps):
    """Sample like :func:`_random_walk_serial`, by associative scans (Särkkä 2021)."""
    zeros = jnp.zeros_like(obs[0])
    prior = jnp.full_like(obs[0], CENTROID_PRIOR_VARIANCE)
    first_mean, first_var = _scalar_update(zeros, prior, obs[0], precision[0])
    q, lam, y = steps, precision[1:], obs[1:]
    denom = 1.0 + q * lam
    elements = (
        jnp.concatenate([zeros[None], 1.0 / denom]),
        jnp.concatenate([first_mean[None], q * lam * y / denom]),
        jnp.concatenate([first_var[None], q / denom]),
        jnp.concatenate([zeros[None], lam * y / denom]),
        jnp.concatenate([zeros[None], lam / denom]),
    )
    _, means, variances, _, _ = jax.lax.associative_scan(
        _scalar_filter_combine, elements
    )
    normals = jax.random.normal(key, obs.shape, obs.dtype)
    gain = variances[:-1] / (variances[:-1] + q)
    offsets = (1.0 - gain) * means[:-1] + jnp.sqrt(gain * q) * normals[:-1]
    last = means[-1] + jnp.sqrt(variances[-1]) * normals[-1]
    maps = (
        jnp.concatenate([gain, zeros[None]]),
        jnp.concatenate([offsets, last[None]]),
    )

    def compose(later, earlier):
        return earlier[0] * later[0], earlier[0] * later[1] + earlier[1]

    return jax.lax.associative_scan(compose, maps, reverse=True)[1]


def resample_centroid(
    key: jax.Array,
    Y: jax.Array,
    x: jax.Array,
    h: jax.Array,
    s: jax.Array,
    sigmasq: jax.Array,
    Cd: jax.Array,
    mask: jax.Array,
    sigmasq_loc: float | jax.Array,
    parallel: bool = False,
) -> jax.Array:
    """Draw the centroid trajectories from their Gaussian conditional.

    The prior is the random walk ``v_t = v_{t-1} + N(0, sigmasq_loc I)`` with
    ``v_0 ~ N(0, CENTROID_PRIOR_VARIANCE I)``; a step whose source frame is
    padding has variance ``CENTROID_HOLD_FACTOR * sigmasq_loc``. Padding frames
    have zero observation precision (the reference uses a large finite
    variance, ``10 max(sigma^2)``). The D coordinates are independent scalar
    problems, filtered and sampled elementwise.

    Parameters
    ----------
    key
        PRNG key.
    Y, x, h, s
        ``(N, T, K, D)``, ``(N, T, P)``, ``(N, T)``, ``(N, T, K)``.
    sigmasq, Cd
        ``(K,)`` and ``((K-1)*D, P+1)``.
    mask
        ``(N, T)``.
    sigmasq_loc
        Random-walk step variance.
    parallel
        Associative-scan filter and sampler instead of sequential scans
        (static: changes the compiled program).

    Returns
    -------
    jax.Array
        ``v`` of shape ``(N, T, D)``.
    """
    mu, precision = centroid_pseudo_observations(Y, x, h, s, sigmasq, Cd)
    precision = precision * (mask > 0)
    steps = _walk_variances(mask, sigmasq_loc, mu.dtype)
    # time first; broadcast the per-frame scalars over the D coordinates
    obs = jnp.moveaxis(mu, 1, 0)
    precision = jnp.broadcast_to(jnp.moveaxis(precision, 1, 0)[..., None], obs.shape)
    steps = jnp.broadcast_to(jnp.moveaxis(steps, 1, 0)[..., None], obs[1:].shape)
    sampler = _random_walk_parallel if parallel else _random_walk_serial
    return jnp.moveaxis(sampler(key, obs, precision, steps), 0, 1)


# ---------------------------------------------------------------------------
# Noise scales
# ---------------------------------------------------------------------------


def noise_prior_from_confidence(
    confidence: jax.Array, slope: float = -0.5, intercept: float = 0.25
) -> jax.Array:
    """Compute the noise prior scale ``s0 = 10^(2 (slope log10(conf + 1e-6) + b))``.

    ``b`` is the intercept; the defaults give ``s0 ≈ 3.16 / conf``.
    """
    log_error = slope * jnp.log10(confidence + 1e-6) + intercept
    return 10.0 ** (2.0 * log_error)


def resample_noise_scales(
    key: jax.Array,
    Y: jax.Array,
    x: jax.Array,
    v: jax.Array,
    h: jax.Array,
    sigmasq: jax.Array,
    Cd: jax.Array,
    noise_prior: jax.Array,
    nu_s: float | jax.Array,
) -> jax.Array:
    """Draw every ``s_tk`` from its scaled inverse chi-squared conditional.

    ``s_tk = (nu_s s0_tk + ||Y_tk - (R(h_t) Yhat_tk + v_t)||^2 / sigma^2_k)
    / chi2(nu_s + D)``: the prior ``Scaled-Inv-chi2(nu_s, s0)`` times a
    D-dimensional Gaussian likelihood. The reference uses ``nu_s + 3`` whatever
    D. Padding frames are drawn too (their values are never used).

    Returns
    -------
    jax.Array
        ``s`` of shape ``(N, T, K)``.
    """
    num_dims = Y.shape[-1]
    scale_sum = nu_s * noise_prior + squared_residuals(Y, x, v, h, Cd) / sigmasq
    chi2 = sample_chi2(key, nu_s + num_dims, scale_sum.shape, scale_sum.dtype)
    return scale_sum / chi2


def init_noise_scales(
    key: jax.Array,
    Y: jax.Array,
    x: jax.Array,
    v: jax.Array,
    h: jax.Array,
    Cd: jax.Array,
    noise_prior: jax.Array,
    nu_s: float | jax.Array,
) -> jax.Array:
    """Draw initial noise scales: the conditional with ``sigma^2 = 1`` (ref. §3.5)."""
    sigmasq = jnp.ones(Y.shape[-2], Y.dtype)
    return resample_noise_scales(key, Y, x, v, h, sigmasq, Cd, noise_prior, nu_s)


def resample_sigmasq(
    key: jax.Array,
    Y: jax.Array,
    x: jax.Array,
    v: jax.Array,
    h: jax.Array,
    s: jax.Array,
    Cd: jax.Array,
    mask: jax.Array,
    sigmasq_0: float | jax.Array,
    nu_sigma: float | jax.Array,
) -> jax.Array:
    """Draw the per-keypoint variances from their scaled-inverse-chi2 conditional.

    ``sigma^2_k = (nu_sigma sigma^2_0 + sum_t mask_t ||resid_tk||^2 / s_tk)
    / chi2(nu_sigma + D sum_t mask_t)``, summing over all rows and real frames
    (the reference uses 3 in place of D).

    Returns
    -------
    jax.Array
        ``sigma^2`` of shape ``(K,)``.
    """
    real = (mask > 0).astype(Y.dtype)
    weighted = jnp.einsum("ntk,nt->k", squared_residuals(Y, x, v, h, Cd) / s, real)
    df = nu_sigma + Y.shape[-1] * real.sum()
    chi2 = sample_chi2(key, df, weighted.shape, weighted.dtype)
    return (nu_sigma * sigmasq_0 + weighted) / chi2


# ---------------------------------------------------------------------------
# Pose latents of all rows
# ---------------------------------------------------------------------------


def resample_pose_latents(
    key: jax.Array,
    Y: jax.Array,
    v: jax.Array,
    h: jax.Array,
    s: jax.Array,
    z: jax.Array,
    mask: jax.Array,
    sigmasq: jax.Array,
    Cd: jax.Array,
    Ab: jax.Array,
    Q: jax.Array,
    jitter: float | jax.Array = 1e-3,
    parallel: bool = False,
) -> jax.Array:
    """Draw ``x`` for every row (vmapped :mod:`moseq_xr.core.kalman` samplers).

    Parameters
    ----------
    key
        PRNG key, or one key per row (``(N,)``).
    Y, v, h, s
        ``(N, T, K, D)``, ``(N, T, D)``, ``(N, T)``, ``(N, T, K)``.
    z
        Syllables of frames L..T-1, ``(N, T-L)``.
    mask
        ``(N, T)``.
    sigmasq, Cd, Ab, Q
        Model parameters.
    jitter
        Variance added to every backward conditional covariance.
    parallel
        Use the associative-scan sampler (static).

    Returns
    -------
    jax.Array
        ``x`` of shape ``(N, T, P)``.
    """
    J_obs, h_obs = jax.vmap(emission_information, in_axes=(0, 0, 0, 0, None, None))(
        Y, v, h, s, sigmasq, Cd
    )
    sampler = sample_pose_latents_parallel if parallel else sample_pose_latents_serial
    keys = key if jnp.ndim(key) else row_keys(key, Y.shape[0])
    return jax.vmap(sampler, in_axes=(0, 0, 0, None, None, 0, None, 0))(
        keys, J_obs, h_obs, Ab, Q, mask, jitter, z
    )


# ---------------------------------------------------------------------------
# Log joint terms
# ---------------------------------------------------------------------------


def log_likelihood_keypoints(
    Y: jax.Array,
    x: jax.Array,
    v: jax.Array,
    h: jax.Array,
    s: jax.Array,
    sigmasq: jax.Array,
    Cd: jax.Array,
    mask: jax.Array,
) -> jax.Array:
    """Sum ``log N(Y_tk; R(h_t) Yhat_tk + v_t, s_tk sigma^2_k I)`` over real frames."""
    variance = s * sigmasq
    log_density = -0.5 * (
        Y.shape[-1] * jnp.log(2.0 * jnp.pi * variance)
        + squared_residuals(Y, x, v, h, Cd) / variance
    )
    return jnp.einsum("ntk,nt->", log_density, (mask > 0).astype(log_density.dtype))


def log_prior_noise_scales(
    s: jax.Array, noise_prior: jax.Array, nu_s: float | jax.Array, mask: jax.Array
) -> jax.Array:
    """Sum ``log Scaled-Inv-chi2(s_tk; nu_s, s0_tk)`` over real frames (normalised).

    The reference sums only ``-nu_s s0 / (2 s) - (1 + nu_s / 2) log s``; the
    difference is a constant given the confidences.
    """
    half_nu = 0.5 * nu_s
    log_density = (
        half_nu * jnp.log(half_nu * noise_prior)
        - jax.scipy.special.gammaln(half_nu)
        - (1.0 + half_nu) * jnp.log(s)
        - half_nu * noise_prior / s
    )
    return jnp.einsum("ntk,nt->", log_density, (mask > 0).astype(log_density.dtype))


def log_likelihood_centroid(
    v: jax.Array, mask: jax.Array, sigmasq_loc: float | jax.Array
) -> jax.Array:
    """Sum ``log N(v_t; v_{t-1}, sigmasq_loc I_D)`` over real frames t >= 1."""
    steps = ((v[:, 1:] - v[:, :-1]) ** 2).sum(-1)
    num_dims = v.shape[-1]
    log_density = -0.5 * (
        num_dims * jnp.log(2.0 * jnp.pi * sigmasq_loc) + steps / sigmasq_loc
    )
    return (log_density * (mask[:, 1:] > 0)).sum()
