"""Devices and memory: row batching, the memory plan and sharding over devices."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from moseq_xr.core import model as core
from moseq_xr.core.rows import map_rows, row_keys
from moseq_xr.exceptions import FitError
from moseq_xr.fitting import api
from moseq_xr.fitting.placement import (
    block_bytes,
    frame_bytes,
    measure_frame_bytes,
    parse_bytes,
    plan_memory,
)
from moseq_xr.simulation import simulate

OPTIONS = dict(latent_dim=3, num_states=12, seed=4, progress=False, kappa=1e4)


@pytest.fixture(scope="module")
def simulated():
    return simulate(num_recordings=2, num_frames=[700, 500], seed=8)


def _draw_block(keys, offsets, scale):
    noise = jax.vmap(lambda k: jax.random.normal(k, (5,)))(keys)
    return noise, offsets * scale


def test_map_rows_batches_give_the_same_rows():
    key = jax.random.key(0)
    offsets = jnp.arange(7.0)
    rows = (row_keys(key, 7), offsets)
    whole = map_rows(_draw_block, rows, (2.0,))
    for batch in (1, 3, 7, 10):
        batched = map_rows(_draw_block, rows, (2.0,), batch_size=batch)
        for part, expected in zip(batched, whole, strict=True):
            np.testing.assert_array_equal(part, expected)
    # a row's draws do not depend on how many rows there are
    fewer = map_rows(_draw_block, (row_keys(key, 4), offsets[:4]), (2.0,))
    np.testing.assert_array_equal(fewer[0], whole[0][:4])


def test_parse_bytes():
    assert parse_bytes("8GB") == 8_000_000_000
    assert parse_bytes("512 MiB") == 512 * 2**20
    assert parse_bytes(1e6) == 1_000_000
    with pytest.raises(ValueError, match="memory_limit"):
        parse_bytes("lots")


def test_plan_batches_rows_to_fit_the_limit():
    config = core.ModelConfig(num_states=100, latent_dim=10, stage="full")
    working, resident = frame_bytes(config, 8, 2, 8)
    assert working > 100 * 8  # the likelihood of every state at least
    devices = jax.devices()[:1]
    roomy = plan_memory(40, 1000, config, 8, 2, 8, devices, memory_limit="100GB")
    assert roomy.rows_per_batch is None
    fixed = block_bytes(config, 8)
    limit = 40 * 1000 * resident + fixed + 5 * 1000 * working
    tight = plan_memory(40, 1000, config, 8, 2, 8, devices, memory_limit=limit)
    assert tight.rows_per_batch == 5
    assert tight.bytes_needed > limit
    with pytest.raises(FitError, match="max_seg_length"):
        plan_memory(40, 1000, config, 8, 2, 8, devices, memory_limit=1e6)


def _fit_pair(simulated, stage, **extra):
    kwargs = dict(OPTIONS, max_seg_length=200, **extra)
    whole = api.fit(simulated, stage=stage, num_iters=3, **kwargs)
    batched = api.fit(
        simulated, stage=stage, num_iters=3, memory_limit=_tight(stage), **kwargs
    )
    return whole, batched


def _tight(stage: str) -> int:
    """A limit that leaves room for about two rows of 230 frames at a time."""
    config = core.ModelConfig(num_states=12, latent_dim=3, stage=stage)
    working, resident = frame_bytes(config, 8, 2, 8)
    return 8 * 230 * resident + block_bytes(config, 8) + 2 * 230 * working


@pytest.mark.parametrize("stage", ["ar", "full"])
def test_batched_rows_give_the_same_fit(simulated, stage):
    whole, batched = _fit_pair(simulated, stage)
    np.testing.assert_array_equal(whole["syllable"].values, batched["syllable"].values)
    for name in ("Ab", "Q", "pi"):
        np.testing.assert_allclose(
            whole["model"][name].values,
            batched["model"][name].values,
            rtol=1e-8,
            atol=1e-12,
        )
    if stage == "full":
        np.testing.assert_allclose(
            whole["latent_state"].values, batched["latent_state"].values, rtol=1e-8
        )


def test_initial_state_follows_the_memory_plan(simulated, monkeypatch):
    """The initial syllable draw is batched like the sweeps (planned first)."""
    planned_batches = []
    original = api._JITTED_INIT

    def recording(key, data, hypers, config, pose):
        planned_batches.append((config.rows_per_batch, data.Y.shape[0]))
        return original(key, data, hypers, config, pose)

    monkeypatch.setattr(api, "_JITTED_INIT", recording)
    kwargs = dict(OPTIONS, max_seg_length=200, num_iters=1, stage="ar")
    api.fit(simulated, memory_limit=_tight("ar"), **kwargs)
    api.fit(simulated, **kwargs)
    (batch, num_rows), (roomy, _) = planned_batches
    assert batch is not None and batch < num_rows
    assert roomy is None


def test_apply_in_batches_gives_the_same_labels(simulated):
    from moseq_xr.fitting.apply import apply

    fitted = api.fit(
        simulated, stage="full", num_iters=2, max_seg_length=200, **OPTIONS
    )
    whole = apply(simulated, fitted, num_iters=2, progress=False)
    batched = apply(
        simulated, fitted, num_iters=2, progress=False, memory_limit=_tight("full")
    )
    np.testing.assert_array_equal(whole["syllable"].values, batched["syllable"].values)
    np.testing.assert_allclose(
        whole["syllable_probability"].values,
        batched["syllable_probability"].values,
        atol=1e-12,
    )


def test_a_fit_that_cannot_fit_says_what_it_needs(simulated):
    with pytest.raises(FitError, match=r"GB per device.*max_seg_length"):
        api.fit(simulated, num_iters=1, memory_limit="10kB", **OPTIONS)


_SHARDED_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import jax, numpy as np
    from moseq_xr.fitting import api
    from moseq_xr.simulation import simulate

    assert len(jax.devices()) == 4
    ds = simulate(num_recordings=3, num_frames=[400, 350, 300],
                  seed=2)
    options = dict(latent_dim=4, num_states=10, seed=5, progress=False,
                   kappa=1e4, num_iters=3)
    out = {}
    for stage in ("ar", "full"):
        one = api.fit(ds, stage=stage, devices=1, **options)
        four = api.fit(ds, stage=stage, devices=4, **options)
        out[stage] = {
            "same_syllables": bool(np.array_equal(one["syllable"].values,
                                                  four["syllable"].values)),
            "Ab": float(np.max(np.abs(one["model"]["Ab"].values
                                      - four["model"]["Ab"].values))),
            "latent": float(np.nanmax(np.abs(
                one["latent_state"].values - four["latent_state"].values)))
                if stage == "full" else 0.0,
        }
    from moseq_xr.fitting.apply import apply
    applied = [apply(ds, one, num_iters=2, devices=n, progress=False) for n in (1, 4)]
    out["apply"] = {
        "same_syllables": bool(np.array_equal(applied[0]["syllable"].values,
                                              applied[1]["syllable"].values)),
        "probability": float(np.nanmax(np.abs(
            applied[0]["syllable_probability"].values
            - applied[1]["syllable_probability"].values))),
    }
    print("RESULT", json.dumps(out))
    """
)


@pytest.mark.slow
def test_same_seed_same_result_on_one_and_four_devices(tmp_path):
    script = tmp_path / "sharded.py"
    script.write_text(_SHARDED_SCRIPT)
    env = dict(os.environ)
    env["XLA_FLAGS"] = (
        "--xla_force_host_platform_device_count=4 "
        "--xla_cpu_enable_concurrency_optimized_scheduler=false"
    )
    env["JAX_PLATFORMS"] = "cpu"
    done = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT"))
    result = json.loads(line.removeprefix("RESULT "))
    for stage in ("ar", "full"):
        assert result[stage]["same_syllables"], result
        assert result[stage]["Ab"] < 1e-9, result
        assert result[stage]["latent"] < 1e-7, result
    assert result["apply"]["same_syllables"], result
    assert result["apply"]["probability"] < 1e-9, result


@pytest.mark.parametrize(
    "stage, parallel",
    [
        ("ar", False),
        pytest.param("ar", True, marks=pytest.mark.slow),
        pytest.param("full", False, marks=pytest.mark.slow),
        pytest.param("full", True, marks=pytest.mark.slow),
    ],
)
def test_frame_bytes_bound_the_compiled_sweep(stage, parallel):
    """The plan's bytes per frame are at least, and at most 1.5 times, XLA's."""
    config = core.ModelConfig(
        num_states=20,
        latent_dim=3,
        stage=stage,
        parallel_message_passing=parallel,
    )
    measured, fixed = measure_frame_bytes(config, 8, 2, frames=5000, rows=(2, 6))
    working, _ = frame_bytes(config, 8, 2, 8)
    assert measured <= working <= 1.5 * measured
    small = fixed + 2 * 5000 * measured  # the 2-row sweep's temporaries
    assert fixed <= block_bytes(config, 8) + 0.01 * small
