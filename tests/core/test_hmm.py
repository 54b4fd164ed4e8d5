"""Discrete message passing against brute force and exact smoother marginals."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import logsumexp

from moseq_xr.core import hmm
from moseq_xr.core.durations import median_run_length, run_lengths

PI = np.array([[0.8, 0.15, 0.05], [0.2, 0.7, 0.1], [0.3, 0.3, 0.4]])


def _problem(key, num_frames=6):
    log_lik = jax.random.normal(key, (num_frames, 3)) * 1.5
    return jnp.log(jnp.asarray(PI)), log_lik


def _brute_force(log_pi, log_lik):
    """Every path: log joint, then marginals and the evidence."""
    num_frames, num_states = log_lik.shape
    paths = np.array(list(itertools.product(range(num_states), repeat=num_frames)))
    scores = -np.log(num_states) + np.asarray(log_lik)[
        np.arange(num_frames), paths
    ].sum(1)
    scores += np.asarray(log_pi)[paths[:, :-1], paths[:, 1:]].sum(1)
    evidence = logsumexp(scores)
    weights = np.exp(scores - evidence)
    marginals = np.stack(
        [np.bincount(paths[:, t], weights, num_states) for t in range(num_frames)]
    )
    return evidence, marginals, paths, weights


@pytest.mark.parametrize("filter_fn", [hmm.forward_filter, hmm.parallel_filter])
def test_log_normaliser_matches_brute_force(key, filter_fn):
    log_pi, log_lik = _problem(key)
    evidence, *_ = _brute_force(log_pi, log_lik)
    _, log_norm = filter_fn(log_pi, log_lik)
    np.testing.assert_allclose(log_norm, evidence, rtol=1e-10)


def test_smoother_marginals_match_brute_force(key):
    log_pi, log_lik = _problem(key)
    _, marginals, _, _ = _brute_force(log_pi, log_lik)
    np.testing.assert_allclose(
        hmm.smoother_marginals(log_pi, log_lik), marginals, atol=1e-10
    )


@pytest.mark.parametrize(
    "sampler", [hmm.sample_states_serial, hmm.sample_states_parallel]
)
def test_sampled_marginals_match_smoother(key, sampler):
    log_pi, log_lik = _problem(key)
    draws, _ = jax.vmap(sampler, in_axes=(0, None, None))(
        jax.random.split(key, 30000), log_pi, log_lik
    )
    empirical = jax.nn.one_hot(draws, 3).mean(0)
    exact = hmm.smoother_marginals(log_pi, log_lik)
    np.testing.assert_allclose(empirical, exact, atol=0.012)  # ~4 MC standard errors


@pytest.mark.parametrize(
    "sampler", [hmm.sample_states_serial, hmm.sample_states_parallel]
)
def test_sampled_paths_match_joint_posterior(key, sampler):
    log_pi, log_lik = _problem(key, num_frames=4)
    _, _, paths, weights = _brute_force(log_pi, log_lik)
    draws, _ = jax.vmap(sampler, in_axes=(0, None, None))(
        jax.random.split(key, 30000), log_pi, log_lik
    )
    codes = np.asarray(draws) @ (3 ** np.arange(3, -1, -1))
    empirical = np.bincount(codes, minlength=paths.shape[0]) / len(codes)
    expected = np.zeros(paths.shape[0])
    expected[paths @ (3 ** np.arange(3, -1, -1))] = weights
    np.testing.assert_allclose(empirical, expected, atol=0.012)


def test_masked_frames_are_uninformative(key):
    log_pi, log_lik = _problem(key)
    masked = log_lik.at[2:4].set(0.0)
    marginals = hmm.smoother_marginals(log_pi, masked)
    _, expected, _, _ = _brute_force(log_pi, masked)
    np.testing.assert_allclose(marginals, expected, atol=1e-10)


def test_run_lengths_and_median():
    z = jnp.array([[0, 0, 1, 1, 1, 2], [3, 3, 3, 3, 0, 0]])
    mask = jnp.array([[1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 1, 1]])
    lengths, count = run_lengths(z, mask)
    assert int(count) == 4
    np.testing.assert_array_equal(
        np.sort(np.asarray(lengths[: int(count)])), [2, 2, 3, 4]
    )
    assert float(median_run_length(z, mask)) == 2.5
    assert np.isnan(float(median_run_length(z, jnp.zeros_like(mask))))


def test_rows_sampler_draws_what_the_serial_sampler_draws(key):
    """All rows in lockstep: the same paths and evidence as vmap(serial), row by row."""
    log_pi = jnp.log(jnp.asarray(PI))
    log_lik = jax.random.normal(key, (5, 40, 3)) * 2.0
    log_lik = log_lik.at[1, 30:].set(0.0)  # a padded tail
    keys = jax.random.split(jax.random.fold_in(key, 1), 5)
    expected_z, expected_norm = jax.vmap(
        hmm.sample_states_serial, in_axes=(0, None, 0)
    )(keys, log_pi, log_lik)
    z, log_norm = hmm.sample_states_rows(keys, log_pi, log_lik)
    np.testing.assert_array_equal(z, expected_z)
    np.testing.assert_allclose(log_norm, expected_norm, rtol=1e-12)
    for length in (1, 2):  # the first and the last frame are the same frame
        short_z, _ = hmm.sample_states_rows(keys, log_pi, log_lik[:, :length])
        expected_short, _ = jax.vmap(hmm.sample_states_serial, in_axes=(0, None, 0))(
            keys, log_pi, log_lik[:, :length]
        )
        np.testing.assert_array_equal(short_z, expected_short)
    brute, *_ = _brute_force(log_pi, log_lik[2, :6])
    _, short_norm = hmm.sample_states_rows(keys[:1], log_pi, log_lik[2:3, :6])
    np.testing.assert_allclose(short_norm[0], brute, rtol=1e-10)


@pytest.mark.parametrize(("num_states", "num_frames"), [(3, 40), (3, 1), (60, 25)])
def test_scaled_sampler_returns_the_drawn_sequence_likelihood(
    key, num_states, num_frames
):
    """The third output is sum_t log l_t(z_t) of the path it drew, computed
    from the filter alone (the likelihoods are overwritten by then)."""
    rng = np.random.default_rng(num_states + num_frames)
    transition = rng.dirichlet(np.full(num_states, 0.3), size=num_states)
    log_pi = jnp.log(jnp.asarray(transition))
    log_lik = jnp.asarray(rng.normal(scale=30.0, size=(4, num_frames, num_states)))
    log_lik = log_lik.at[1, num_frames // 2 :].set(0.0)  # a padded tail
    scaled, peaks = hmm._scaled_likelihoods(log_lik)
    keys = jax.random.split(key, 4)
    z, log_norm, chosen = hmm.sample_states_scaled(
        keys, log_pi, jnp.swapaxes(scaled, 0, 1)
    )
    direct = jnp.take_along_axis(jnp.log(scaled), z[..., None], -1)[..., 0].sum(-1)
    np.testing.assert_allclose(chosen, direct, rtol=1e-9, atol=1e-9)
    expected_z, expected_norm = jax.vmap(
        hmm.sample_states_serial, in_axes=(0, None, 0)
    )(keys, log_pi, log_lik)
    np.testing.assert_array_equal(z, expected_z)
    np.testing.assert_allclose(log_norm + peaks.sum(-1), expected_norm, rtol=1e-12)


@pytest.mark.parametrize("num_states", [1, 2, 7, 100, 101])
def test_categorical_draw_is_the_inverse_cdf(num_states):
    """The two-level search picks the first state whose cumulative weight
    reaches u * total (numpy's searchsorted), and never a zero-weight state."""
    rng = np.random.default_rng(num_states)
    probs = rng.random((500, num_states)) * (rng.random((500, num_states)) > 0.3)
    probs[:, 0] += 1e-3  # every row has some weight
    uniform = rng.random(500)
    uniform[:5] = [0.0, 1.0 - 1e-16, 0.5, 1e-300, 0.999999]
    drawn = np.asarray(
        hmm._categorical_from_uniform(jnp.asarray(probs), jnp.asarray(uniform)[:, None])
    )
    cumulative = np.cumsum(probs, axis=1)
    expected = [
        np.searchsorted(c, u * c[-1], side="left")
        for c, u in zip(cumulative, uniform, strict=True)
    ]
    agree = drawn == np.minimum(expected, num_states - 1)
    assert agree.mean() > 0.99  # rounding of the two summation orders only
    assert np.all(probs[np.arange(500), drawn] > 0)
