"""Conjugate samplers against their closed-form moments."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import signal, stats

from moseq_xr.core import distributions as dist


def test_inverse_wishart_mean_and_variance(key):
    scale = jnp.array([[2.0, 0.3, 0.0], [0.3, 1.0, 0.2], [0.0, 0.2, 0.5]])
    df = 9.0
    # jitted: an eager vmap dispatches and compiles each operation separately
    draws = jax.jit(jax.vmap(dist.sample_inverse_wishart, in_axes=(0, None, None)))(
        jax.random.split(key, 40000), df, scale
    )
    expected = stats.invwishart(df=df, scale=np.asarray(scale))
    np.testing.assert_allclose(draws.mean(0), expected.mean(), atol=0.01)
    np.testing.assert_allclose(draws.var(0), expected.var(), rtol=0.1, atol=1e-3)


def test_matrix_normal_covariance(key):
    mean = jnp.array([[1.0, -2.0, 0.5], [0.0, 3.0, 1.0]])
    row = jnp.array([[1.0, 0.5], [0.5, 2.0]])
    col = jnp.array([[1.0, 0.2, 0.0], [0.2, 0.5, 0.1], [0.0, 0.1, 0.3]])
    sampler = jax.vmap(dist.sample_matrix_normal, in_axes=(0, None, None, None))
    draws = jax.jit(sampler)(jax.random.split(key, 40000), mean, row, col)
    np.testing.assert_allclose(draws.mean(0), mean, atol=0.02)
    flat = (
        np.asarray(draws).transpose(0, 2, 1).reshape(len(draws), -1)
    )  # vec (column-major)
    np.testing.assert_allclose(np.cov(flat.T), np.kron(col, row), atol=0.03)


def _regression_data(key, n=500):
    key_x, key_e = jax.random.split(key)
    true_a = jnp.array([[0.9, 0.1, 0.5], [-0.2, 0.8, -1.0]])
    x = jnp.concatenate([jax.random.normal(key_x, (n, 2)), jnp.ones((n, 1))], axis=1)
    y = x @ true_a.T + 0.3 * jax.random.normal(key_e, (n, 2))
    return x, y, true_a


def test_mniw_posterior_matches_closed_form(key):
    x, y, _ = _regression_data(key)
    prior = (jnp.asarray(4.0), 0.01 * jnp.eye(2), jnp.zeros((2, 3)), 10.0 * jnp.eye(3))
    stats_ = (x.T @ x, y.T @ x, y.T @ y, jnp.asarray(float(len(x))))
    nu_n, s_n, m_n, k_n = jax.jit(dist.mniw_posterior)(stats_, prior)
    k_expected = np.linalg.inv(np.linalg.inv(prior[3]) + x.T @ x)
    m_expected = (y.T @ x) @ k_expected
    s_expected = (
        prior[1] + y.T @ y - m_expected @ np.linalg.inv(k_expected) @ m_expected.T
    )
    np.testing.assert_allclose(k_n, k_expected, rtol=1e-6)
    np.testing.assert_allclose(m_n, m_expected, rtol=1e-6)
    np.testing.assert_allclose(s_n, s_expected, rtol=1e-5)
    assert float(nu_n) == 4.0 + len(x)


def test_mniw_draws_have_posterior_moments(key):
    x, y, true_a = _regression_data(key, n=200)
    prior = (jnp.asarray(4.0), 0.01 * jnp.eye(2), jnp.zeros((2, 3)), 10.0 * jnp.eye(3))
    posterior = jax.jit(dist.mniw_posterior)(
        (x.T @ x, y.T @ x, y.T @ y, jnp.asarray(200.0)), prior
    )
    a_draws, q_draws = jax.jit(jax.vmap(dist.sample_mniw, in_axes=(0, None)))(
        jax.random.split(key, 20000), posterior
    )
    nu_n, s_n, m_n, k_n = posterior
    np.testing.assert_allclose(q_draws.mean(0), s_n / (nu_n - 2 - 1), rtol=0.03)
    np.testing.assert_allclose(a_draws.mean(0), m_n, atol=0.005)
    expected_var = np.kron(np.diag(k_n), np.diag(s_n / (nu_n - 3))).reshape(3, 2).T
    np.testing.assert_allclose(a_draws.var(0), expected_var, rtol=0.1)
    np.testing.assert_allclose(
        m_n, true_a, atol=0.1
    )  # and the posterior finds the truth


def test_dirichlet_moments_and_tiny_concentrations(key):
    concentration = jnp.array([2.0, 5.0, 0.5, 1e-8])
    draws = jax.jit(jax.vmap(dist.sample_dirichlet, in_axes=(0, None)))(
        jax.random.split(key, 40000), concentration
    )
    mean = concentration / concentration.sum()
    np.testing.assert_allclose(draws.mean(0), mean, atol=0.004)
    assert bool(jnp.all(draws > 0)) and bool(jnp.all(jnp.isfinite(jnp.log(draws))))
    np.testing.assert_allclose(draws.sum(-1), 1.0, rtol=1e-12)


def test_dirichlet_log_density_matches_scipy():
    probs = jnp.array([0.2, 0.5, 0.3])
    concentration = jnp.array([1.5, 3.0, 0.7])
    expected = stats.dirichlet(np.asarray(concentration)).logpdf(np.asarray(probs))
    np.testing.assert_allclose(
        dist.dirichlet_log_density(probs, concentration), expected
    )


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_open_uniforms_are_uniform_and_never_zero_or_one(key, dtype):
    uniforms = dist.open_uniforms(key, (3, 40000), dtype)
    assert uniforms.dtype == dtype
    assert bool(jnp.all((uniforms > 0) & (uniforms < 1)))
    assert bool(jnp.all(jnp.isfinite(jnp.log(uniforms))))
    for row in np.asarray(uniforms, np.float64):
        assert stats.kstest(row, stats.uniform.cdf).pvalue > 1e-3
    assert abs(np.corrcoef(np.asarray(uniforms, np.float64))[0, 1]) < 0.02


def test_open_uniforms_follow_the_precision_in_force(key):
    with jax.enable_x64(False):
        uniforms = dist.open_uniforms(key, (20000,), jnp.float64)
    assert uniforms.dtype == jnp.float32
    assert stats.kstest(np.asarray(uniforms), stats.uniform.cdf).pvalue > 1e-3


def test_box_muller_normals_are_independent_standard_normals(key):
    uniforms = dist.open_uniforms(key, (4, 40000), jnp.float64)
    normals = np.asarray(dist.box_muller_normals(uniforms, 3))
    assert normals.shape == (3, 40000)
    for row in normals:
        assert stats.kstest(row, stats.norm.cdf).pvalue > 1e-3
    # rows 0 and 2 are the cosine and sine of the same pair
    correlation = np.corrcoef(normals)
    assert np.all(np.abs(correlation[np.triu_indices(3, 1)]) < 0.02)
    squared_radius = normals[0] ** 2 + normals[2] ** 2
    assert stats.kstest(squared_radius, stats.chi2(2).cdf).pvalue > 1e-3


@pytest.mark.parametrize("shape_param", [1e-3, 0.3, 1.0, 2.5, 40.0, 3e4])
def test_gamma_sampler_moments(key, shape_param):
    # jitted with the shape traced: compiled once for all the parameters
    draws = jax.jit(dist.sample_gamma)(key, jnp.full((40000,), shape_param))
    np.testing.assert_allclose(draws.mean(), shape_param, rtol=0.03, atol=2e-4)
    if shape_param >= 0.3:  # the variance of tiny shapes is too heavy-tailed to test
        np.testing.assert_allclose(draws.var(), shape_param, rtol=0.06)
    log_draws = jax.jit(dist.sample_log_gamma)(
        jax.random.fold_in(key, 1), jnp.full((40000,), shape_param)
    )
    result = stats.kstest(np.asarray(log_draws), stats.loggamma(shape_param).cdf)
    assert result.pvalue > 1e-3


def test_log_gamma_stays_finite_for_tiny_shapes(key):
    log_draws = jax.jit(dist.sample_log_gamma)(key, jnp.full((1000,), 1e-200))
    assert bool(jnp.all(jnp.isfinite(log_draws)))
    assert float(log_draws.max()) < -1e100


def smooth_series(n=50000, dim=3, decay=0.99, noise=0.02, offset=2.0, seed=0):
    """A long, smooth AR(1) series far from 0 (like a state of 30 fps latents)."""
    rng = np.random.default_rng(seed)
    innovations = noise * rng.normal(size=(n, dim))
    x = np.empty((n, dim))
    x[0] = offset
    # x[t] = decay x[t-1] + (1 - decay) offset + innovations[t], as one filter
    x[1:] = signal.lfilter(
        [1.0],
        [1.0, -decay],
        (1 - decay) * offset + innovations[1:],
        axis=0,
        zi=decay * x[:1],
    )[0]
    return x


def test_mniw_posterior_keeps_the_noise_scale_in_float32():
    """``S_n`` (n Q) is ~1e-4 of ``Syy`` here: the uncentred subtraction
    ``Syy - M_n K_n^{-1} M_n^T`` lost it entirely in float32 (error 160 %)."""
    x = smooth_series()
    design = np.c_[x[:-1], np.ones(len(x) - 1)]
    stats_ = (design.T @ design, x[1:].T @ design, x[1:].T @ x[1:], len(x) - 1.0)
    prior = (5.0, 0.01 * np.eye(3), np.c_[np.eye(3), np.zeros(3)], 10 * np.eye(4))
    posterior = jax.jit(dist.mniw_posterior)  # eager: 5 s of dispatch
    exact = posterior(tuple(map(jnp.asarray, stats_)), tuple(map(jnp.asarray, prior)))
    with jax.enable_x64(False):
        single = posterior(
            tuple(jnp.asarray(s, jnp.float32) for s in stats_),
            tuple(jnp.asarray(p, jnp.float32) for p in prior),
        )
        assert single[1].dtype == jnp.float32
    for name, got, want in zip(["nu", "S", "M", "K"], single, exact, strict=True):
        got, want = np.asarray(got, np.float64), np.asarray(want)
        error = np.abs(got - want).max() / np.abs(want).max()
        assert error < 1e-2, (name, error)
    np.testing.assert_allclose(
        np.asarray(exact[1]) / len(x), 0.02**2 * np.eye(3), atol=2e-5
    )


def test_mniw_factors_reproduce_the_posterior(key):
    x, y, _ = _regression_data(key)
    x = x + jnp.array([5.0, -3.0, 0.0])  # off-centre regressors
    prior = (jnp.asarray(4.0), 0.01 * jnp.eye(2), jnp.zeros((2, 3)), 10.0 * jnp.eye(3))
    stats_ = (x.T @ x, y.T @ x, y.T @ y, jnp.asarray(float(len(x))))
    factors = jax.jit(dist.mniw_factors)(stats_, prior)
    k_n = np.linalg.inv(np.linalg.inv(prior[3]) + x.T @ x)
    np.testing.assert_allclose(
        factors.col_factor.T @ factors.col_factor, k_n, rtol=1e-8
    )
    np.testing.assert_allclose(factors.mean, (y.T @ x) @ k_n, rtol=1e-8)
    draws = jax.jit(jax.vmap(dist.sample_mniw_factors, in_axes=(0, None)))(
        jax.random.split(key, 20000), factors
    )
    np.testing.assert_allclose(draws[0].mean(0), factors.mean, atol=0.01)
    scale = factors.chol_scale @ factors.chol_scale.T
    np.testing.assert_allclose(draws[1].mean(0), scale / (factors.nu - 3), rtol=0.03)


def _triangle_proposals(key, params, num):
    """Uniform proposals accepted with probability x: draws of Beta(2, 1)."""
    (scale,) = params
    uniform = jax.random.uniform(key, (2, num, *scale.shape))
    return scale * uniform[0], uniform[1] < uniform[0]


def _triangle_draws(key, size, first_round, rejection_bound):
    """``first_accepted`` of :func:`_triangle_proposals`, up to 40 retries."""
    return dist.first_accepted(
        key,
        _triangle_proposals,
        (jnp.ones(size),),
        num_attempts=40,
        first_round=first_round,
        rejection_bound=rejection_bound,
    )


def test_first_accepted_retries_the_rejected_exactly(key):
    size = 50_000  # half of the first round is rejected, then retried
    value, accepted = _triangle_draws(key, size, first_round=3, rejection_bound=0.5)
    assert bool(accepted.all())
    assert stats.kstest(np.asarray(value), stats.beta(2, 1).cdf).pvalue > 1e-3


def test_first_accepted_reports_a_retry_overflow(key):
    size = 20_000  # the bound claims 1 % rejections; about half overflow
    value, accepted = _triangle_draws(key, size, first_round=1, rejection_bound=0.01)
    capacity = dist._retry_capacity(size, 0.01, 1)
    still_rejected = np.asarray(~accepted).sum()
    assert 0.4 * size < still_rejected + capacity < 0.6 * size
    assert np.all((np.asarray(value) >= 0) & (np.asarray(value) <= 1))


def test_first_accepted_in_turn_draws_the_target_law(key):
    size = 50_000  # half of each round is rejected, so about 17 rounds
    value, accepted = dist.first_accepted_in_turn(
        key, _triangle_proposals, (jnp.ones(size),), num_attempts=60
    )
    assert bool(accepted.all())
    assert stats.kstest(np.asarray(value), stats.beta(2, 1).cdf).pvalue > 1e-3


def test_first_accepted_in_turn_draws_do_not_depend_on_the_batch(key):
    """A row's draw is the same alone or vmapped beside slower rows."""
    keys = jax.random.split(key, 6)
    scales = jnp.linspace(0.5, 1.0, 6)[:, None] * jnp.ones((6, 300))

    def draw(row_key, scale):
        return dist.first_accepted_in_turn(
            row_key, _triangle_proposals, (scale,), num_attempts=40
        )

    together = jax.jit(jax.vmap(draw))(keys, scales)
    for row in range(6):
        alone = jax.jit(draw)(keys[row], scales[row])
        np.testing.assert_array_equal(
            np.asarray(alone[0]), np.asarray(together[0][row])
        )


def test_first_accepted_in_turn_falls_back_to_the_first_proposal(key):
    def never(proposal_key, params, num):
        (scale,) = params
        return jax.random.uniform(proposal_key, (num, *scale.shape)), jnp.zeros(
            (num, *scale.shape), bool
        )

    value, accepted = dist.first_accepted_in_turn(
        key, never, (jnp.ones(50),), num_attempts=5
    )
    first, _ = never(jax.random.fold_in(key, 0), (jnp.ones(50),), 1)
    assert not bool(accepted.any())
    np.testing.assert_array_equal(np.asarray(value), np.asarray(first[0]))
