"""Pose-latent samplers against the exact dense Gaussian posterior."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from moseq_xr.core import kalman
from moseq_xr.core.embedding import center_embedding
from moseq_xr.core.keypoints import rotation_matrices

SAMPLERS = {
    "serial": kalman.sample_pose_latents_serial,
    "parallel": kalman.sample_pose_latents_parallel,
}
# one compiled, vmapped sampler per kind, shared by the tests (compilation dominates)
BATCHED = {
    name: jax.jit(jax.vmap(sampler, in_axes=(0, None, None, None, None, None, None)))
    for name, sampler in SAMPLERS.items()
}
NUM_DRAWS = 8000


def _random_problem(seed, num_frames=12, latent_dim=2, nlags=2, mask=None):
    rng = np.random.default_rng(seed)
    num_trans = num_frames - nlags
    A = 0.15 * rng.normal(size=(num_trans, latent_dim, latent_dim * nlags))
    A[:, :, -latent_dim:] += 0.8 * np.eye(latent_dim)
    b = 0.3 * rng.normal(size=(num_trans, latent_dim, 1))
    roots = 0.4 * rng.normal(size=(num_trans, latent_dim, latent_dim))
    Q = roots @ roots.transpose(0, 2, 1) + 0.05 * np.eye(latent_dim)
    rank = rng.integers(
        0, latent_dim + 1, size=num_frames
    )  # some rank-deficient, some 0
    factors = rng.normal(size=(num_frames, latent_dim, latent_dim))
    factors *= np.arange(latent_dim)[None, None, :] < rank[:, None, None]
    J = 2.0 * factors @ factors.transpose(0, 2, 1)
    h = rng.normal(size=(num_frames, latent_dim))
    mask = np.ones(num_frames) if mask is None else np.asarray(mask, float)
    return tuple(jnp.asarray(a) for a in (J, h, np.concatenate([A, b], -1), Q, mask))


def _dense_posterior(J, h, Ab, Q, mask):
    """Mean and covariance of x_{0..T-1} from the full joint precision."""
    J, h, Ab, Q, mask = (np.asarray(a) for a in (J, h, Ab, Q, mask))
    num_frames, dim = h.shape
    nlags = (Ab.shape[-1] - 1) // dim
    precision = np.zeros((num_frames * dim,) * 2)
    linear = np.zeros(num_frames * dim)

    def block(t):
        return slice(t * dim, (t + 1) * dim)

    for t in range(num_frames):
        precision[block(t), block(t)] += mask[t] * J[t]
        linear[block(t)] += mask[t] * h[t]
        if t < nlags:
            precision[block(t), block(t)] += np.eye(dim) / kalman.PRIOR_VARIANCE
            continue
        if mask[t - 1] == 0:  # hold: x_t = x_{t-1} + N(0, 10 I)
            A = np.zeros((dim, dim * nlags))
            A[:, -dim:] = np.eye(dim)
            b, noise = np.zeros(dim), kalman.HOLD_VARIANCE * np.eye(dim)
        else:
            A, b, noise = Ab[t - nlags, :, :-1], Ab[t - nlags, :, -1], Q[t - nlags]
        residual = np.zeros((dim, num_frames * dim))
        residual[:, block(t)] = np.eye(dim)
        residual[:, (t - nlags) * dim : t * dim] -= A
        noise_inv = np.linalg.inv(noise)
        precision += residual.T @ noise_inv @ residual
        linear += residual.T @ noise_inv @ b
    cov = np.linalg.inv(precision)
    return cov @ linear, cov


def _draws(name, problem, jitter=0.0, seed=1):
    keys = jax.random.split(jax.random.key(seed), NUM_DRAWS)
    samples = BATCHED[name](keys, *problem, jitter)
    return np.asarray(samples).reshape(NUM_DRAWS, -1)


def _assert_moments(samples, mean, cov, z_max=5.0):
    """Sample mean and covariance within ``z_max`` Monte-Carlo standard errors."""
    count = samples.shape[0]
    variance = np.diag(cov)
    mean_z = (samples.mean(0) - mean) / np.sqrt(variance / count)
    assert np.max(np.abs(mean_z)) < z_max, np.max(np.abs(mean_z))
    cov_se = np.sqrt((np.outer(variance, variance) + cov**2) / count)
    cov_z = (np.cov(samples.T) - cov) / cov_se
    assert np.max(np.abs(cov_z)) < z_max, np.max(np.abs(cov_z))


CASES = {  # nlags -> mask (L = 2 runs in the float32 test: compilation is slow)
    1: [1, 1, 1, 0, 1, 1],  # a masked frame inside: one hold transition (3 -> 4)
    3: [1] * 4 + [0] + [1] * 5 + [0, 0],  # masked frame inside, padded end
}


@pytest.mark.parametrize("name", ["serial", "parallel"])
@pytest.mark.parametrize("nlags", [1, 3])
def test_samples_match_dense_posterior(name, nlags):
    mask = CASES[nlags]
    problem = _random_problem(nlags, num_frames=len(mask), nlags=nlags, mask=mask)
    mean, cov = _dense_posterior(*problem)
    samples = _draws(name, problem)
    _assert_moments(samples, mean, cov)
    np.testing.assert_array_equal(samples, _draws(name, problem))  # same key, same draw


@pytest.mark.parametrize("name", ["serial", "parallel"])
def test_per_state_parameters_with_syllables_draw_the_per_frame_draw(name):
    """``(Ab, Q, z)`` read by state gives what the gathered ``Ab[z], Q[z]`` give."""
    J, h, Ab, Q, mask = _random_problem(7, num_frames=12, nlags=3, mask=CASES[3])
    states = Ab[:4], Q[:4]  # four states
    z = jnp.asarray([0, 1, 1, 3, 2, 2, 0, 3, 1])
    key = jax.random.key(3)
    by_state = SAMPLERS[name](key, J, h, *states, mask, 0.01, z)
    gathered = SAMPLERS[name](key, J, h, states[0][z], states[1][z], mask, 0.01)
    np.testing.assert_allclose(by_state, gathered, rtol=1e-10, atol=1e-12)


def test_hold_dynamics_used_after_padding():
    """With the source frame padded, x_t - x_{t-1} has variance ~ HOLD_VARIANCE."""
    problem = _random_problem(5, nlags=3, mask=[1] * 10 + [0, 0])
    _, cov = _dense_posterior(*problem)
    step_var = (
        cov[22, 22] + cov[20, 20] - 2 * cov[20, 22]
    )  # x_11 - x_10, first coordinate
    np.testing.assert_allclose(step_var, kalman.HOLD_VARIANCE, rtol=1e-9)
    samples = _draws("serial", problem)
    steps = samples[:, 22] - samples[:, 20]
    assert abs(steps.var() / kalman.HOLD_VARIANCE - 1) < 0.1


def test_serial_and_parallel_agree_with_jitter():
    problem = _random_problem(11, nlags=3, mask=[1] * 12)
    jitter = 0.05
    mean, cov = _dense_posterior(*problem)
    serial = _draws("serial", problem, jitter, seed=2)
    parallel = _draws("parallel", problem, jitter, seed=3)
    for samples in (serial, parallel):
        # jitter adds zero-mean noise: the mean is unchanged ...
        z = (samples.mean(0) - mean) / np.sqrt(samples.var(0) / len(samples))
        assert np.max(np.abs(z)) < 5
        # ... and the last frame is drawn from its filtered law plus jitter * I
        last = slice(-2, None)
        expected = cov[last, last] + jitter * np.eye(2)
        scale = np.sqrt(np.diag(expected))
        error = (np.cov(samples[:, last].T) - expected) / np.outer(scale, scale)
        assert np.max(np.abs(error)) < 5 * np.sqrt(2 / len(samples))
    # both samplers give the same (jittered) covariance
    pooled = 0.5 * (np.cov(serial.T) + np.cov(parallel.T))
    var = np.diag(pooled)
    se = np.sqrt(2 * (np.outer(var, var) + pooled**2) / len(serial))
    assert np.max(np.abs(np.cov(serial.T) - np.cov(parallel.T)) / se) < 5
    # and jitter only ever inflates the covariance
    eigenvalues = np.linalg.eigvalsh(pooled - cov)
    assert eigenvalues.min() > -0.05 and eigenvalues.max() > 0.02


def _naive_information(Y, v, h, s, sigmasq, Cd):
    """Dense C~^T R^{-1} C~ with the full O x O noise matrix."""
    num_frames, num_keypoints, num_dims = Y.shape
    lift = np.kron(center_embedding(num_keypoints), np.eye(num_dims))
    C, d = lift @ Cd[:, :-1], lift @ Cd[:, -1]
    J, linear = [], []
    for t in range(num_frames):
        rotation = np.asarray(rotation_matrices(jnp.asarray(-h[t]), num_dims))
        y = ((Y[t] - v[t]) @ rotation.T).reshape(-1)
        noise_inv = np.linalg.inv(np.diag(np.repeat(s[t] * sigmasq, num_dims)))
        J.append(C.T @ noise_inv @ C)
        linear.append(C.T @ noise_inv @ (y - d))
    return np.array(J), np.array(linear)


@pytest.mark.parametrize("num_dims", [2, 3])
def test_emission_information_matches_dense(num_dims):
    rng = np.random.default_rng(num_dims)
    num_frames, num_keypoints, latent_dim = 6, 5, 3
    Y = rng.normal(size=(num_frames, num_keypoints, num_dims)) * 5
    v = rng.normal(size=(num_frames, num_dims))
    h = rng.uniform(-np.pi, np.pi, size=num_frames)
    s = rng.uniform(0.5, 3.0, size=(num_frames, num_keypoints))
    sigmasq = rng.uniform(0.5, 2.0, size=num_keypoints)
    Cd = rng.normal(size=((num_keypoints - 1) * num_dims, latent_dim + 1))
    args = (Y, v, h, s, sigmasq, Cd)
    J, linear = kalman.emission_information(*(jnp.asarray(a) for a in args))
    J_expected, linear_expected = _naive_information(*args)
    np.testing.assert_allclose(J, J_expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(linear, linear_expected, rtol=1e-10, atol=1e-12)


def _ill_conditioned_problem(num_frames=32, latent_dim=3, nlags=2):
    """Near-unit-root dynamics, tiny Q, very informative and uninformative frames."""
    rng = np.random.default_rng(0)
    num_trans = num_frames - nlags
    A = np.zeros((num_trans, latent_dim, latent_dim * nlags))
    A[:, :, -latent_dim:] = 0.999 * np.eye(latent_dim)
    A[:, :, -2 * latent_dim : -latent_dim] = 1e-3 * rng.normal(
        size=(latent_dim, latent_dim)
    )
    b = 1e-2 * rng.normal(size=(num_trans, latent_dim, 1))
    Q = np.broadcast_to(np.diag([1e-4, 1e-2, 1.0]), (num_trans, latent_dim, latent_dim))
    scale = 10.0 ** rng.uniform(-3, 5, size=(num_frames, 1, 1))
    factors = rng.normal(size=(num_frames, latent_dim, latent_dim))
    J = scale * factors @ factors.transpose(0, 2, 1)
    J[:, :, 0] *= 1e-3  # one poorly observed direction
    J[:, 0, :] *= 1e-3
    h = np.einsum("tpq,q->tp", J, np.ones(latent_dim) * 50.0)
    mask = np.ones(num_frames)
    mask[24:] = 0
    Ab = np.concatenate([A, b], -1)
    return tuple(np.asarray(a, np.float32) for a in (J, h, Ab, Q, mask))


@pytest.mark.parametrize("name", ["serial", "parallel"])
def test_float32_smoke(name):
    with jax.enable_x64(False):
        problem = tuple(jnp.asarray(a) for a in _ill_conditioned_problem())
        keys = jax.random.split(jax.random.key(0), 4)
        samples = BATCHED[name](keys, *problem, 1e-3)
        assert samples.dtype == jnp.float32
        assert bool(jnp.all(jnp.isfinite(samples)))
        # the well-observed frames are pinned near the truth (50 in each coordinate)
        assert float(jnp.abs(samples[:, :24, 1:] - 50.0).mean()) < 1.0


def _smooth_offset_problem(num_frames=300, latent_dim=2, nlags=2, seed=0):
    """Latents near 2 with AR noise variance 1e-6: information vectors ~1e6 x."""
    rng = np.random.default_rng(seed)
    decay, noise_var = 0.999, 1e-6
    A = np.zeros((latent_dim, latent_dim * nlags))
    A[:, -latent_dim:] = decay * np.eye(latent_dim)
    b = (1 - decay) * 2.0 * np.ones(latent_dim)
    x = np.full((num_frames, latent_dim), 2.0)
    for t in range(nlags, num_frames):
        x[t] = A @ x[t - nlags : t].ravel() + b
        x[t] += np.sqrt(noise_var) * rng.normal(size=latent_dim)
    C = 10 * rng.normal(size=(7, latent_dim))
    J = np.broadcast_to(C.T @ C, (num_frames, latent_dim, latent_dim))
    h = (x @ C.T + rng.normal(size=(num_frames, 7))) @ C
    Ab = np.concatenate([A, b[:, None]], 1)
    shape = (num_frames - nlags, *Ab.shape)
    Q = np.broadcast_to(noise_var * np.eye(latent_dim), shape[:1] + (latent_dim,) * 2)
    return J, h, np.broadcast_to(Ab, shape), Q, np.ones(num_frames)


@pytest.mark.parametrize("name", ["serial", "parallel"])
def test_float32_posterior_mean_of_smooth_offset_latents(name, monkeypatch):
    """With every standard normal set to 0 a sampler returns the posterior
    mean. Without re-centring, the float32 serial filter was off by a whole
    posterior standard deviation here."""
    problem = _smooth_offset_problem()
    mean, cov = _dense_posterior(*problem)
    monkeypatch.setattr(
        jax.random, "normal", lambda key, shape, dtype=None: jnp.zeros(shape, dtype)
    )
    with jax.enable_x64(False):
        args = [jnp.asarray(a, jnp.float32) for a in problem]
        sampler = jax.jit(lambda *a: SAMPLERS[name](jax.random.key(0), *a, 0.0))
        estimate = np.asarray(sampler(*args), np.float64).ravel()
    z_scores = np.abs(estimate - mean) / np.sqrt(np.diag(cov))
    assert z_scores.max() < 0.05, z_scores.max()
