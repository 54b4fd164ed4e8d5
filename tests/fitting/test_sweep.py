"""The Gibbs sweep compiled as concurrent parts, and the compiler options."""

from __future__ import annotations

import threading
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from moseq_xr.core import model as core
from moseq_xr.exceptions import MoseqXrWarning
from moseq_xr.fitting import api
from moseq_xr.fitting import compile_cache as cc
from moseq_xr.fitting.prepare import PrepareOptions, prepare
from moseq_xr.fitting.sweep import SweepJit
from moseq_xr.simulation import simulate


@pytest.fixture(scope="module")
def chain():
    """``(key, state, data, hypers, config)`` of a small full-model chain."""
    ds = simulate(num_recordings=2, num_frames=300, num_keypoints=6, seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MoseqXrWarning)
        prepared = prepare(ds, PrepareOptions())
    config = core.ModelConfig(num_states=6, nlags=2, latent_dim=3, stage="full")
    with jax.enable_x64(True):
        data = api._model_data(prepared, jnp.float64)
        hypers = core.make_hypers(config, kappa=1e3, dtype=jnp.float64)
        key = jax.random.key(0, impl=api.KEY_IMPL)
        state = api._initial_state(key, prepared, data, hypers, config)
    return jax.random.fold_in(key, 1), state, data, hypers, config


@pytest.mark.parametrize("stage", ["ar", "full"])
def test_sweep_in_parts_draws_what_one_program_draws(chain, stage):
    key, state, data, hypers, config = chain
    config = config._replace(stage=stage)
    with jax.enable_x64(True):
        whole_state, whole_info = jax.jit(core.step, static_argnames="config")(
            key, state, data, hypers, config=config
        )
        parted_state, parted_info = SweepJit()(key, state, data, hypers, config)
    np.testing.assert_array_equal(parted_state.latents.z, whole_state.latents.z)
    for whole, parted in zip(
        jax.tree_util.tree_leaves((whole_state, whole_info)),
        jax.tree_util.tree_leaves((parted_state, parted_info)),
        strict=True,
    ):
        np.testing.assert_allclose(parted, whole, rtol=1e-9, atol=1e-12)


def test_stages_have_their_parts():
    parts = core.step_parts("full")
    assert [part.__name__ for part in parts] == [
        "full_discrete_part",
        "full_latent_part",
        "full_observation_part",
    ]
    assert core.step_parts("ar") == (core.ar_params_part, core.ar_syllable_part)
    with pytest.raises(ValueError, match="unknown stage"):
        core.step_parts("both")


def test_full_fit_compiles_each_part_once():
    ds = simulate(num_recordings=1, num_frames=300, num_keypoints=6, seed=4)
    before = api.TRACE_COUNTS.get("full", 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MoseqXrWarning)
        api.fit(
            ds,
            stage="full",
            num_iters=3,
            num_states=5,
            latent_dim=3,
            seed=2,
            progress=False,
        )
    assert api.TRACE_COUNTS["full"] - before == len(core.step_parts("full"))


def _scaled(x, scale):
    return x * scale


def _shifted(x, scale):
    return x + scale


def test_chained_parts_compile_concurrently_and_run_in_turn(monkeypatch):
    threads = []
    real_compile = cc.compile_lowered

    def recording(lowered, directory):
        threads.append(threading.get_ident())
        return real_compile(lowered, directory)

    monkeypatch.setattr(cc, "compile_lowered", recording)
    chained = cc.ChainedJit([_scaled, _shifted, _scaled])
    x, scale = jnp.arange(4.0), jnp.asarray(3.0)
    np.testing.assert_array_equal(chained(x, scale), (x * 3.0 + 3.0) * 3.0)
    assert len(threads) == 3  # one compilation per part, in worker threads
    assert threading.get_ident() not in threads
    chained(x + 1.0, scale)  # same shapes: nothing compiled again
    assert len(threads) == 3


def test_unknown_compiler_options_are_dropped_with_a_warning(monkeypatch):
    cc.compiler_options.cache_clear()
    bogus = "xla_no_such_option_here"
    monkeypatch.setitem(cc.COMPILER_OPTIONS, bogus, True)
    try:
        with pytest.warns(MoseqXrWarning, match="xla_no_such_option_here"):
            accepted = cc.compiler_options()
        assert "xla_no_such_option_here" not in accepted
        assert accepted == {
            k: v
            for k, v in cc.COMPILER_OPTIONS.items()
            if k != "xla_no_such_option_here"
        }
        fun = cc.CachedJit(_scaled)
        np.testing.assert_array_equal(fun(jnp.ones(2), 2.0), [2.0, 2.0])
    finally:
        monkeypatch.undo()
        cc.compiler_options.cache_clear()
