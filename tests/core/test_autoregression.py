"""The switching AR(L): regressors, sufficient statistics, likelihoods, recovery."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import signal, stats

from moseq_xr.core import autoregression as ar
from moseq_xr.core.distributions import mniw_posterior

# Compiled once per shape: eager, the prior draw dispatches and compiles each of
# its hundreds of small operations separately (about 10 s a test).
init_ar_params = jax.jit(ar.init_ar_params, static_argnums=1)


def test_regressors_are_oldest_lag_first():
    x = jnp.arange(12.0).reshape(1, 6, 2)
    regressors = ar.lagged_regressors(x, 2)
    np.testing.assert_array_equal(regressors[0, 0], [0, 1, 2, 3, 1])  # x_0, x_1, bias
    assert regressors.shape == (1, 4, 5)


def test_prior_mean_is_a_random_walk():
    prior = ar.make_ar_prior(latent_dim=2, nlags=3)
    np.testing.assert_array_equal(prior.M_0[:, 4:6], np.eye(2))
    assert float(prior.nu_0) == 4.0 and prior.K_0.shape == (7, 7)


@pytest.mark.parametrize("frame_block", [2048, 5])
def test_sufficient_stats_equal_per_state_loops(key, frame_block, monkeypatch):
    """Also in blocks of 5 frames (56 frames: the last block padded)."""
    monkeypatch.setattr(ar, "FRAME_BLOCK", frame_block)
    x = jax.random.normal(key, (2, 30, 3))
    z = jax.random.randint(key, (2, 28), 0, 4)
    mask = (jax.random.uniform(jax.random.fold_in(key, 1), (2, 28)) > 0.2).astype(
        x.dtype
    )
    stats_ = ar.ar_sufficient_stats(x, z, mask, 4, 2)  # eager: reads FRAME_BLOCK
    sxx, syx, syy, count = map(np.asarray, stats_)
    regressors = np.asarray(ar.lagged_regressors(x, 2)).reshape(-1, 7)
    targets = np.asarray(x[:, 2:]).reshape(-1, 3)
    flat_z, weights = np.asarray(z).ravel(), np.asarray(mask).ravel()
    for state in range(4):
        w = weights * (flat_z == state)
        np.testing.assert_allclose(
            sxx[state], (regressors * w[:, None]).T @ regressors, atol=1e-10
        )
        np.testing.assert_allclose(
            syx[state], (targets * w[:, None]).T @ regressors, atol=1e-10
        )
        np.testing.assert_allclose(
            syy[state], (targets * w[:, None]).T @ targets, atol=1e-10
        )
        np.testing.assert_allclose(count[state], w.sum())


def test_log_likelihoods_match_scipy(key):
    x = jax.random.normal(key, (1, 8, 2))
    ab, q = init_ar_params(key, 3, ar.make_ar_prior(2, 2))
    log_lik = jax.jit(ar.ar_log_likelihoods, static_argnums=3)(x, ab, q, 2)
    regressors = np.asarray(ar.lagged_regressors(x, 2))[0]
    x, ab, q, log_lik = map(np.asarray, (x, ab, q, log_lik))
    for t in range(6):
        for state in range(3):
            mean = ab[state] @ regressors[t]
            expected = stats.multivariate_normal(mean, q[state]).logpdf(x[0, t + 2])
            np.testing.assert_allclose(log_lik[0, t, state], expected, rtol=1e-8)


@pytest.mark.parametrize("frame_block", [2048, 5])
def test_scaled_likelihoods_are_the_masked_likelihoods_time_major(
    key, frame_block, monkeypatch
):
    """exp(l * mask - max_j) and max_j, frames first; in blocks of 5 frames the
    last block overlaps the one before it and is written twice identically."""
    monkeypatch.setattr(ar, "FRAME_BLOCK", frame_block)
    x = jax.random.normal(key, (3, 21, 2))
    ab, q = init_ar_params(key, 4, ar.make_ar_prior(2, 2))
    zmask = (jax.random.uniform(jax.random.fold_in(key, 1), (3, 19)) > 0.3).astype(
        x.dtype
    )
    scaled, peaks = ar.ar_scaled_likelihoods(x, ab, q, zmask, 2)
    log_lik = (
        np.asarray(ar.ar_log_likelihoods(x, ab, q, 2)) * np.asarray(zmask)[..., None]
    )
    expected_peaks = log_lik.max(-1)
    np.testing.assert_allclose(peaks, expected_peaks.T, rtol=1e-13)
    np.testing.assert_allclose(
        scaled,
        np.exp(log_lik - expected_peaks[..., None]).transpose(1, 0, 2),
        rtol=1e-12,
        atol=np.finfo(np.float64).tiny,  # subnormal results may flush to zero
    )


def test_log_prior_matches_scipy(key):
    prior = ar.make_ar_prior(2, 1)
    ab, q = init_ar_params(key, 2, prior)
    log_prior = jax.jit(ar.ar_log_prior)(ab, q, prior)
    ab, q = np.asarray(ab), np.asarray(q)
    expected = 0.0
    for state in range(2):
        expected += stats.invwishart(
            df=float(prior.nu_0), scale=np.asarray(prior.S_0)
        ).logpdf(q[state])
        expected += stats.matrix_normal(
            np.asarray(prior.M_0), q[state], np.asarray(prior.K_0)
        ).logpdf(ab[state])
    np.testing.assert_allclose(log_prior, expected, rtol=1e-8)


def test_resampled_parameters_recover_known_dynamics(key):
    true_ab = np.array([[[0.9, -0.2, 0.5], [0.1, 0.8, -0.3]]])
    noise = 0.1 * np.random.default_rng(0).normal(size=(3999, 2))
    x = np.zeros((4000, 2))
    for t in range(1, 4000):  # numpy only: an eager JAX slice per step took 2 s
        x[t] = true_ab[0, :, :2] @ x[t - 1] + true_ab[0, :, 2] + noise[t - 1]
    x = jnp.asarray(x)[None]
    prior = ar.make_ar_prior(2, 1)

    @jax.jit
    def stats_and_draws(keys):
        z = jnp.zeros((1, 3999), jnp.int32)
        stats_ = ar.ar_sufficient_stats(x, z, jnp.ones((1, 3999)), 1, 1)
        return jax.vmap(lambda k: ar.resample_ar_params(k, stats_, prior))(keys)

    # 200 draws at once: the same values as 200 eager calls, compiled once
    ab_draws, q_draws = stats_and_draws(jax.random.split(key, 200))
    ab = np.asarray(ab_draws).mean(0)
    q = np.asarray(q_draws).mean(0)
    design = np.c_[np.asarray(x[0, :-1]), np.ones(3999)]
    least_squares = np.linalg.lstsq(design, np.asarray(x[0, 1:]), rcond=None)[0].T
    np.testing.assert_allclose(
        ab[0], least_squares, atol=0.01
    )  # posterior mean ~ the data
    np.testing.assert_allclose(ab, true_ab, atol=0.1)  # and the data ~ the truth
    np.testing.assert_allclose(q[0], 0.01 * np.eye(2), atol=0.002)


def test_float32_statistics_keep_the_noise_of_a_long_smooth_state():
    """50 000 frames of one state far from 0: uncentred float32 sums gave a
    posterior noise scale 13 % off; centred accumulation keeps it to 1e-3."""
    rng = np.random.default_rng(0)
    innovations = 0.02 * rng.normal(size=(50000, 3))
    # x[t] = 0.99 x[t-1] + 0.02 + innovations[t] from x[0] = 2, as one filter
    x = np.empty((50000, 3))
    x[0] = 2.0
    x[1:] = signal.lfilter(
        [1.0], [1.0, -0.99], 0.02 + innovations[1:], axis=0, zi=0.99 * x[:1]
    )[0]
    z = jnp.zeros((1, len(x) - 1), jnp.int32)
    design = np.c_[x[:-1], np.ones(len(x) - 1)]
    prior = ar.make_ar_prior(3, 1)
    exact = (design.T @ design, x[1:].T @ design, x[1:].T @ x[1:], len(x) - 1.0)
    with jax.enable_x64(False):  # jitted as in the sweep (eager: 2 s of dispatch)
        single = jax.jit(ar.ar_sufficient_stats, static_argnums=(3, 4))(
            jnp.asarray(x[None], jnp.float32), z, jnp.ones(z.shape), 1, 1
        )
        assert single[0].dtype == jnp.float32
    single = tuple(jnp.asarray(s[0], jnp.float64) for s in single)
    for got, want in zip(single, exact, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-6)
    posterior = jax.jit(mniw_posterior)
    scale = posterior(single, tuple(prior))[1]
    want = posterior(tuple(map(jnp.asarray, exact)), tuple(prior))[1]
    np.testing.assert_allclose(scale, want, atol=1e-2 * float(np.abs(want).max()))
