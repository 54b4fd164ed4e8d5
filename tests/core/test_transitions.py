"""Sticky HDP conditionals: exact table counts, beta and pi draws."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from moseq_xr.core import transitions as tr


def _hypers(alpha=2.0, gamma=5.0, kappa=30.0):
    return tr.TransitionHypers(*(jnp.asarray(v) for v in (alpha, gamma, kappa)))


def test_transition_counts_respect_mask():
    z = jnp.array([[0, 0, 1, 1, 2], [2, 2, 2, 0, 0]])
    mask = jnp.array([[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]])
    counts = tr.count_transitions(z, mask, 3)
    expected = np.zeros((3, 3))
    for row, valid in zip(np.asarray(z), np.asarray(mask), strict=True):
        for t in range(4):
            if valid[t + 1]:
                expected[row[t], row[t + 1]] += 1
    np.testing.assert_array_equal(counts, expected)


def _crt_means(z, mask, betas, hypers, override):
    counts = np.asarray(tr.count_transitions(z, mask, 3))
    rho = np.asarray(hypers.alpha * betas[None, :] + hypers.kappa * jnp.eye(3))
    keep = np.asarray(hypers.alpha * betas / (hypers.alpha * betas + hypers.kappa))
    expected = np.zeros((3, 3))
    for i in range(3):
        for j in range(3):
            expected[i, j] = sum(
                rho[i, j] / (k + rho[i, j]) for k in range(int(counts[i, j]))
            )
            if override and i == j:
                expected[i, j] *= keep[j]
    return counts, expected


@pytest.mark.parametrize("override", [False, True])
def test_table_counts_have_crt_mean(key, override):
    z = jnp.array([[0] * 40 + [1] * 25 + [0] * 10 + [2] * 5 + [1] * 3])
    mask = jnp.ones_like(z)
    betas = jnp.array([0.5, 0.3, 0.2])
    hypers = _hypers()
    sampler = jax.vmap(
        tr.sample_table_counts, in_axes=(0, None, None, None, None, None)
    )
    draws = jax.jit(sampler, static_argnums=5)(
        jax.random.split(key, 20000), z, mask, betas, hypers, override
    )
    counts, expected = _crt_means(z, mask, betas, hypers, override)
    np.testing.assert_allclose(draws.mean(0), expected, atol=0.03)
    assert np.all(np.asarray(draws) <= counts)
    if not override:  # the first customer always opens a table
        assert np.all(np.asarray(draws)[:, counts > 0] >= 1)


def test_beta_and_pi_are_dirichlet_with_the_right_concentration(key):
    tables = jnp.array([[3.0, 1.0, 0.0], [0.0, 4.0, 2.0], [1.0, 0.0, 0.0]])
    gamma = jnp.asarray(6.0)
    # jitted: an eager vmap dispatches and compiles each operation separately
    betas = jax.jit(jax.vmap(tr.sample_betas, in_axes=(0, None, None)))(
        jax.random.split(key, 30000), tables, gamma
    )
    concentration = tables.sum(0) + gamma / 3
    np.testing.assert_allclose(
        betas.mean(0), concentration / concentration.sum(), atol=0.005
    )
    counts = jnp.array([[10, 1, 0], [2, 20, 3], [0, 0, 5]])
    fixed_beta = jnp.array([0.2, 0.5, 0.3])
    hypers = _hypers()
    pis = jax.jit(jax.vmap(tr.sample_pi, in_axes=(0, None, None, None)))(
        jax.random.split(key, 30000), counts, fixed_beta, hypers
    )
    conc = counts + hypers.alpha * fixed_beta + hypers.kappa * jnp.eye(3)
    np.testing.assert_allclose(
        pis.mean(0), conc / conc.sum(1, keepdims=True), atol=0.005
    )


def test_resample_transitions_recovers_sticky_matrix(key):
    true_pi = np.array([[0.95, 0.03, 0.02], [0.02, 0.96, 0.02], [0.05, 0.05, 0.90]])
    # the chain of rng.choice(3, p=true_pi[z]) calls, without their overhead:
    # choice draws one uniform and searches the normalised cumulative sum
    uniforms = np.random.default_rng(0).random(20000)
    cdf = np.cumsum(true_pi, 1)
    cdf /= cdf[:, -1:]
    z = np.zeros(20001, int)
    for t in range(20000):
        z[t + 1] = cdf[z[t]].searchsorted(uniforms[t], side="right")
    z = jnp.asarray(z[None])
    hypers = _hypers(alpha=1.0, gamma=1.0, kappa=1.0)

    @jax.jit
    def chain(keys):  # 50 Gibbs updates of (beta, pi), compiled once
        def update(betas, k):
            return tr.resample_transitions(k, z, jnp.ones_like(z), betas, hypers)

        return jax.lax.scan(update, jnp.full((3,), 1 / 3), keys)[1]

    pis = np.asarray(chain(jax.random.split(key, 50)))
    counts = np.asarray(tr.count_transitions(z, jnp.ones_like(z), 3), float)
    empirical = counts / counts.sum(1, keepdims=True)
    np.testing.assert_allclose(np.mean(pis, 0), empirical, atol=0.005)
    np.testing.assert_allclose(np.mean(pis, 0), true_pi, atol=0.02)


def test_log_prior_is_finite_for_prior_draws(key):
    hypers = _hypers(alpha=5.7, gamma=1e3, kappa=1e6)
    init = jax.jit(tr.init_transitions, static_argnums=(1, 3))  # eager: 5 s more
    betas, pi = init(key, 100, hypers, jnp.float64)
    assert bool(jnp.isfinite(jax.jit(tr.transitions_log_prior)(betas, pi, hypers)))
    np.testing.assert_allclose(pi.sum(1), 1.0, rtol=1e-12)
