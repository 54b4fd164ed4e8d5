"""Data preparation for fitting: what initialises the pose latents."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import moseq_xr
from moseq_xr.core import model as core
from moseq_xr.core.keypoints import embed, to_egocentric
from moseq_xr.fitting import api
from moseq_xr.fitting.apply import _FROZEN_STATE
from moseq_xr.fitting.prepare import PrepareOptions, prepare

#: Frames of the injected low-confidence jump, and its keypoint.
JUMP = slice(120, 125)
KEYPOINT = 3


@pytest.fixture(scope="module")
def jumpy():
    """A clean simulated recording with one low-confidence keypoint jump."""
    ds = moseq_xr.simulate(
        num_recordings=1, num_frames=400, seed=2, outlier_rate=0.0, nan_rate=0.0
    )
    position = ds["position"].values.copy()
    confidence = np.maximum(ds["confidence"].values, 0.6)
    position[0, JUMP, :, KEYPOINT, 0] += 80.0
    confidence[0, JUMP, KEYPOINT, 0] = 0.05
    return ds.assign(
        position=(ds["position"].dims, position),
        confidence=(ds["confidence"].dims, confidence),
    )


def test_initial_positions_interpolate_low_confidence_keypoints(jumpy):
    prepared = prepare(
        jumpy, PrepareOptions(anterior=["nose"], posterior=["tail_base"])
    )
    raw = prepared.segments.Y[0]
    initial = prepared.initial_Y[0]
    assert raw.shape == initial.shape
    # The model still sees the raw jump...
    assert np.abs(raw[JUMP, KEYPOINT] - initial[JUMP, KEYPOINT] - 80.0).max() < 20
    # ...but initialisation sees the straight line between the confident frames.
    before, after = JUMP.start - 1, JUMP.stop
    weights = (np.arange(JUMP.start, JUMP.stop) - before) / (after - before)
    line = (1 - weights)[:, None] * raw[before, KEYPOINT] + weights[:, None] * raw[
        after, KEYPOINT
    ]
    np.testing.assert_allclose(initial[JUMP, KEYPOINT], line, atol=1e-9)
    others = np.ones(raw.shape[:2], bool)
    others[JUMP, KEYPOINT] = False
    np.testing.assert_array_equal(initial[others], raw[others])


def test_initial_and_applied_pose_latents_use_the_interpolated_positions(jumpy):
    options = PrepareOptions(anterior=["nose"], posterior=["tail_base"])
    prepared = prepare(jumpy, options)
    with api.precision_scope("float64"):
        config = core.ModelConfig(num_states=10, nlags=3, latent_dim=4, stage="ar")
        hypers = core.make_hypers(config)
        data = api._model_data(prepared, jnp.float64)
        state = api._initial_state(
            jax.random.key(0, impl=api.KEY_IMPL), prepared, data, hypers, config
        )
        x = np.asarray(state.latents.x[0])
        Cd = np.asarray(state.params.Cd)
        centroid, heading = prepared.centroid, prepared.heading

        def projected(Y):
            flat = embed(to_egocentric(*map(jnp.asarray, (Y, centroid, heading))))
            return np.asarray((flat - Cd[:, -1]) @ np.linalg.pinv(Cd[:, :-1]).T)[0]

        np.testing.assert_allclose(x, projected(prepared.initial_Y), atol=1e-8)
        raw_x = projected(prepared.segments.Y)
        # Applying a model projects new data the same way.
        frozen = _FROZEN_STATE(
            jax.random.key(1, impl=api.KEY_IMPL),
            state.params,
            data,
            prepared.initial_Y,
            centroid,
            heading,
            hypers,
            config=config,
        )
        np.testing.assert_allclose(frozen.latents.x[0], x, atol=1e-8)
    jump_error = np.abs(raw_x[JUMP] - x[JUMP]).max()
    typical_step = np.abs(np.diff(x, axis=0)).mean()
    assert jump_error > 5 * typical_step
