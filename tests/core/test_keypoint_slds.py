"""Keypoint-model conditionals against their closed forms."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special, stats

from moseq_xr.core import keypoint_slds as kp
from moseq_xr.core.keypoints import estimate_pose, rotation_matrices


def _scene(seed, num_rows=2, num_frames=10, num_keypoints=5, num_dims=2, latent_dim=3):
    """Random parameters, latents and keypoints drawn from the model."""
    rng = np.random.default_rng(seed)
    Cd = rng.normal(size=((num_keypoints - 1) * num_dims, latent_dim + 1))
    x = rng.normal(size=(num_rows, num_frames, latent_dim))
    v = rng.normal(size=(num_rows, num_frames, num_dims)) * 3
    h = rng.uniform(-np.pi, np.pi, size=(num_rows, num_frames))
    s = rng.uniform(0.3, 2.0, size=(num_rows, num_frames, num_keypoints))
    sigmasq = rng.uniform(0.5, 1.5, size=num_keypoints)
    mean = np.asarray(
        kp.world_pose(*(jnp.asarray(a) for a in (x, v, h, Cd)), num_keypoints)
    )
    noise = rng.normal(size=mean.shape) * np.sqrt(s * sigmasq)[..., None]
    mask = np.ones((num_rows, num_frames))
    if num_rows > 1:  # a padded end and a masked frame inside
        mask[1, -3:] = 0
        mask[0, num_frames // 2] = 0
    arrays = {"Y": mean + noise, "x": x, "v": v, "h": h, "s": s, "sigmasq": sigmasq}
    arrays.update(Cd=Cd, mask=mask)
    return {name: jnp.asarray(value) for name, value in arrays.items()}


def _z_scores(samples, expected, axis=0):
    """Standardised differences of Monte-Carlo means."""
    count = samples.shape[axis]
    se = samples.std(axis) / np.sqrt(count)
    return (samples.mean(axis) - expected) / se


# ---------------------------------------------------------------------------
# heading
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("num_dims", [2, 3])
def test_heading_concentration_matches_likelihood(num_dims):
    """log p(Y | h) - const == kappa_cos cos h + kappa_sin sin h on a grid of h."""
    scene = _scene(num_dims, num_rows=1, num_frames=3, num_dims=num_dims)
    kappa_cos, kappa_sin = jax.jit(kp.heading_concentration)(
        scene["Y"], scene["v"], scene["x"], scene["s"], scene["sigmasq"], scene["Cd"]
    )
    grid = jnp.linspace(-np.pi, np.pi, 9)
    for t in range(3):
        tiled = {n: jnp.repeat(scene[n][:, t : t + 1], 9, axis=1) for n in "Yxvs"}
        residuals = jax.jit(kp.squared_residuals)(
            tiled["Y"], tiled["x"], tiled["v"], grid[None], scene["Cd"]
        )
        log_lik = -0.5 * (residuals / (tiled["s"] * scene["sigmasq"])).sum(-1)[0]
        expected = kappa_cos[0, t] * jnp.cos(grid) + kappa_sin[0, t] * jnp.sin(grid)
        np.testing.assert_allclose(
            log_lik - log_lik.mean(), expected - expected.mean(), rtol=1e-9, atol=1e-9
        )


def test_heading_samples_match_von_mises_moments(key):
    scene = _scene(0, num_rows=2, num_frames=4)
    # spread the concentrations over several regimes by scaling the noise
    scene["s"] = scene["s"] * jnp.array([30.0, 3.0, 0.3, 0.003])[None, :, None]
    args = [scene[n] for n in ("Y", "v", "x", "s", "sigmasq", "Cd", "mask")]
    draws = jax.jit(jax.vmap(kp.resample_heading, in_axes=(0, *[None] * 7)))(
        jax.random.split(key, 20000), *args
    )
    kappa_cos, kappa_sin = kp.heading_concentration(*args[:-1])
    kappa = np.hypot(kappa_cos, kappa_sin) * np.asarray(scene["mask"])
    ratio = special.i1e(kappa) / special.i0e(kappa)
    direction = np.arctan2(kappa_sin, kappa_cos)
    assert kappa.max() > 1e3 and kappa[kappa > 0].min() < 3  # several regimes
    for moment, expected in ((np.cos, np.cos(direction)), (np.sin, np.sin(direction))):
        assert (
            np.max(np.abs(_z_scores(moment(np.asarray(draws)), ratio * expected))) < 5
        )
    assert np.all(np.abs(draws) <= np.pi)


@pytest.mark.parametrize("concentration", [0.0, 0.4, 4.0, 400.0])
def test_von_mises_sampler_matches_scipy(key, concentration):
    draws = jax.jit(kp.sample_von_mises)(
        key, jnp.full(20000, 2.5), jnp.asarray(concentration)
    )
    assert np.all(np.abs(draws) <= np.pi)
    centred = np.angle(np.exp(1j * (np.asarray(draws) - 2.5)))  # wrapped to (-pi, pi]
    if concentration == 0:
        reference = stats.uniform(loc=-np.pi, scale=2 * np.pi)
    else:
        reference = stats.vonmises(kappa=concentration)
    assert stats.kstest(centred, reference.cdf).pvalue > 1e-3


# ---------------------------------------------------------------------------
# centroid
# ---------------------------------------------------------------------------


def _dense_centroid_posterior(scene, sigmasq_loc):
    """Per row: mean (T, D) and covariance (T, T) from the raw keypoints."""
    Y, mask = np.asarray(scene["Y"]), np.asarray(scene["mask"])
    num_rows, num_frames, _, num_dims = Y.shape
    pose = np.asarray(estimate_pose(scene["x"], scene["Cd"], Y.shape[2]))
    rotation = np.asarray(rotation_matrices(scene["h"], num_dims))
    offsets = Y - np.einsum("ntde,ntke->ntkd", rotation, pose)
    weights = 1.0 / np.asarray(scene["s"] * scene["sigmasq"])
    results = []
    for n in range(num_rows):
        precision = np.zeros((num_frames, num_frames))
        precision[0, 0] = 1.0 / kp.CENTROID_PRIOR_VARIANCE
        for t in range(1, num_frames):
            step = sigmasq_loc * (
                kp.CENTROID_HOLD_FACTOR if mask[n, t - 1] == 0 else 1.0
            )
            diff = np.zeros(num_frames)
            diff[t], diff[t - 1] = 1.0, -1.0
            precision += np.outer(diff, diff) / step
        precision += np.diag(mask[n] * weights[n].sum(-1))
        linear = mask[n, :, None] * np.einsum("tk,tkd->td", weights[n], offsets[n])
        cov = np.linalg.inv(precision)
        results.append((cov @ linear, cov))  # mean (T, D); cov shared by coordinates
    return results


@pytest.mark.parametrize("parallel", [False, True])
def test_centroid_samples_match_dense_posterior(key, parallel):
    scene = _scene(3)
    sigmasq_loc = 0.5
    args = [scene[n] for n in ("Y", "x", "h", "s", "sigmasq", "Cd", "mask")]
    sampler = jax.jit(
        jax.vmap(kp.resample_centroid, in_axes=(0, *[None] * 8, None)), static_argnums=9
    )
    draws = np.asarray(
        sampler(jax.random.split(key, 6000), *args, sigmasq_loc, parallel)
    )
    for n, (mean, cov) in enumerate(_dense_centroid_posterior(scene, sigmasq_loc)):
        for d in range(mean.shape[1]):
            samples = draws[:, n, :, d]
            assert np.max(np.abs(_z_scores(samples, mean[:, d]))) < 5
            variance = np.diag(cov)
            se = np.sqrt((np.outer(variance, variance) + cov**2) / len(samples))
            assert np.max(np.abs(np.cov(samples.T) - cov) / se) < 5


# ---------------------------------------------------------------------------
# noise scales and variances
# ---------------------------------------------------------------------------


NUM_DRAWS = 20000


def _tiled_scene(num_dims):
    """One row of three frames, repeated NUM_DRAWS times (rows = independent draws)."""
    scene = _scene(num_dims, num_rows=1, num_frames=3, num_dims=num_dims)
    for name in ("Y", "x", "v", "h"):
        scene[name] = jnp.repeat(scene[name], NUM_DRAWS, axis=0)
    scene["noise_prior"] = jnp.full((NUM_DRAWS, 3, 5), 2.0)
    return scene


# Jitted: eager, every operation of the gamma sampler is dispatched and compiled
# on its own (8 s in a fresh process). The tiled rows keep the large-array path.


@pytest.mark.parametrize("num_dims", [2, 3])
def test_noise_scales_are_scaled_inverse_chi2_with_df_nu_plus_d(key, num_dims):
    scene, nu_s = _tiled_scene(num_dims), 5.0
    names = ("Y", "x", "v", "h", "sigmasq", "Cd", "noise_prior")
    sampler = jax.jit(kp.resample_noise_scales)
    draws = np.asarray(sampler(key, *[scene[n] for n in names], nu_s))
    residual = kp.squared_residuals(
        *[scene[n][:1] for n in ("Y", "x", "v", "h")], scene["Cd"]
    )
    scale_sum = nu_s * 2.0 + np.asarray(residual[0] / scene["sigmasq"])
    df = nu_s + num_dims
    # E[1/s] = df / scale_sum exactly; with df = nu_s + 3 in 2-D this is 14% off
    assert np.max(np.abs(_z_scores(1.0 / draws, df / scale_sum))) < 5
    np.testing.assert_allclose(draws.mean(0), scale_sum / (df - 2), rtol=0.05)


def test_init_noise_scales_uses_unit_sigmasq(key):
    scene = _tiled_scene(2)
    args = [scene[n] for n in ("Y", "x", "v", "h")]
    init = jax.jit(kp.init_noise_scales)(
        key, *args, scene["Cd"], scene["noise_prior"], 5.0
    )
    ones = jnp.ones_like(scene["sigmasq"])
    resampled = jax.jit(kp.resample_noise_scales)(
        key, *args, ones, scene["Cd"], scene["noise_prior"], 5.0
    )
    np.testing.assert_array_equal(init, resampled)


@pytest.mark.parametrize("num_dims", [2, 3])
def test_sigmasq_is_scaled_inverse_chi2_with_df_nu_plus_d_frames(key, num_dims):
    scene = _scene(num_dims + 10, num_dims=num_dims)
    nu_sigma, sigmasq_0 = 4.0, 0.7
    names = ("Y", "x", "v", "h", "s", "Cd", "mask")
    sampler = jax.jit(jax.vmap(kp.resample_sigmasq, in_axes=(0, *[None] * 9)))
    draws = sampler(
        jax.random.split(key, NUM_DRAWS),
        *[scene[n] for n in names],
        sigmasq_0,
        nu_sigma,
    )
    residual = np.asarray(
        kp.squared_residuals(*[scene[n] for n in ("Y", "x", "v", "h", "Cd")])
    )
    mask = np.asarray(scene["mask"])
    weighted = (residual / np.asarray(scene["s"]) * mask[..., None]).sum((0, 1))
    scale_sum = nu_sigma * sigmasq_0 + weighted
    df = nu_sigma + num_dims * mask.sum()
    assert np.max(np.abs(_z_scores(1.0 / np.asarray(draws), df / scale_sum))) < 5
    np.testing.assert_allclose(
        np.asarray(draws).mean(0), scale_sum / (df - 2), rtol=0.01
    )


def test_noise_prior_from_confidence():
    values = kp.noise_prior_from_confidence(jnp.array([1.0, 0.1, 1e-3]))
    np.testing.assert_allclose(values, [10**0.5, 10**1.5, 10**3.5], rtol=1e-3)
    np.testing.assert_allclose(values[:2], [3.16, 31.6], rtol=2e-3)
    custom = kp.noise_prior_from_confidence(jnp.array([0.5]), slope=-1.0, intercept=0.0)
    np.testing.assert_allclose(custom, (1.0 / (0.5 + 1e-6)) ** 2, rtol=1e-9)


# ---------------------------------------------------------------------------
# log joint terms
# ---------------------------------------------------------------------------


def test_log_likelihood_keypoints_matches_scipy():
    scene = _scene(4, num_dims=3)
    Y = np.asarray(scene["Y"])
    mean = np.asarray(kp.world_pose(scene["x"], scene["v"], scene["h"], scene["Cd"], 5))
    sd = np.sqrt(np.asarray(scene["s"] * scene["sigmasq"]))[..., None]
    per_frame = stats.norm.logpdf(Y, mean, sd).sum((-1, -2))
    expected = (per_frame * np.asarray(scene["mask"])).sum()
    names = ("Y", "x", "v", "h", "s", "sigmasq", "Cd", "mask")
    np.testing.assert_allclose(
        kp.log_likelihood_keypoints(*[scene[n] for n in names]), expected
    )


def test_log_prior_noise_scales_matches_scipy():
    scene = _scene(5)
    s, mask = np.asarray(scene["s"]), np.asarray(scene["mask"])
    prior = np.linspace(0.5, 4.0, s.size).reshape(s.shape)
    nu = 5.0
    # Scaled-Inv-chi2(nu, s0) == InvGamma(nu / 2, scale = nu s0 / 2)
    log_pdf = stats.invgamma.logpdf(s, a=nu / 2, scale=nu * prior / 2)
    expected = (log_pdf * mask[..., None]).sum()
    np.testing.assert_allclose(
        kp.log_prior_noise_scales(scene["s"], jnp.asarray(prior), nu, scene["mask"]),
        expected,
    )


def test_log_likelihood_centroid_matches_scipy():
    scene = _scene(6, num_dims=3)
    v, mask = np.asarray(scene["v"]), np.asarray(scene["mask"])
    steps = stats.norm.logpdf(v[:, 1:], v[:, :-1], np.sqrt(0.5)).sum(-1)
    expected = (steps * mask[:, 1:]).sum()
    np.testing.assert_allclose(
        kp.log_likelihood_centroid(scene["v"], scene["mask"], 0.5), expected
    )


# ---------------------------------------------------------------------------
# pose latents of all rows, float32
# ---------------------------------------------------------------------------


def test_resample_pose_latents_recovers_well_observed_poses(key):
    scene = _scene(7, num_frames=12)
    scene["s"] = scene["s"] * 1e-6  # nearly noise-free keypoints
    scene["Y"] = kp.world_pose(scene["x"], scene["v"], scene["h"], scene["Cd"], 5)
    rng = np.random.default_rng(0)
    num_states, latent_dim, nlags = 3, 3, 2
    Ab = jnp.asarray(
        0.1 * rng.normal(size=(num_states, latent_dim, latent_dim * nlags + 1))
    )
    Q = jnp.broadcast_to(jnp.eye(latent_dim), (num_states, latent_dim, latent_dim))
    z = jnp.asarray(rng.integers(0, num_states, size=(2, 10)))
    args = [scene[n] for n in ("Y", "v", "h", "s")]
    args += [z, scene["mask"], scene["sigmasq"], scene["Cd"], Ab, Q]
    x = jax.jit(kp.resample_pose_latents)(key, *args, jitter=0.0)
    assert x.shape == scene["x"].shape
    real = np.asarray(scene["mask"]) > 0
    np.testing.assert_allclose(
        np.asarray(x)[real], np.asarray(scene["x"])[real], atol=1e-2
    )


def _float32_scene():
    """Pixel-scale coordinates and tiny noise: concentrations ~1e9, precisions ~1e7."""
    scene = {
        n: jnp.asarray(a, jnp.float32) for n, a in _scene(8, num_frames=40).items()
    }
    scene["Y"] = scene["Y"] * 300.0 + 500.0
    scene["v"] = scene["v"] * 300.0 + 500.0
    scene["Cd"] = scene["Cd"] * 300.0
    scene["s"] = scene["s"] * 1e-4
    return scene


@jax.jit
def _all_conditionals(key, scene):
    keys = jax.random.split(key)
    names = ("Y", "v", "x", "s", "sigmasq", "Cd", "mask")
    h = kp.resample_heading(keys[0], *[scene[n] for n in names])
    centroid_args = [scene[n] for n in ("Y", "x", "h", "s", "sigmasq", "Cd", "mask")]
    serial = kp.resample_centroid(keys[1], *centroid_args, 0.5, False)
    parallel = kp.resample_centroid(keys[1], *centroid_args, 0.5, True)
    return h, serial, parallel


def test_float32_conditionals_are_finite(key):
    with jax.enable_x64(False):
        for value in _all_conditionals(jax.random.key(0), _float32_scene()):
            assert value.dtype == jnp.float32
            assert bool(jnp.all(jnp.isfinite(value)))
