"""Averaged syllable marginals: :func:`estimate_syllable_marginals`.

:func:`moseq_xr.apply` reports ``p(z_t | x, theta)`` for one draw of the pose
trajectories ``x``. For a full-stage model ``x`` is itself uncertain, so this
module averages the exact (forward-backward) syllable marginals over many
draws of ``x`` from a chain with the parameters frozen (reference §4.2):

1. build the same initial state as ``apply`` and run ``burn_in_iters`` sweeps;
2. then, ``num_samples`` times, run ``steps_per_sample`` sweeps and add the
   analytic marginals of the current state to a running sum kept on the
   device (one compiled call per sample; no sample is stored unless asked);
3. divide by the number of samples.

Sweep ``i`` uses the key ``fold_in(key(seed), i)``, as in ``apply``: with
``num_samples=1`` the result is ``apply(num_iters=burn_in_iters +
steps_per_sample)``'s probability. For an AR-stage model ``x`` is fixed and
the parameters are frozen, so the marginals are exact without any sweep and
the sweeps are run only when the sampled syllables are asked for.
"""

from __future__ import annotations

import warnings
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr
from tqdm.auto import tqdm

from moseq_xr._provenance import with_provenance
from moseq_xr.core import model as core
from moseq_xr.fitting.apply import (
    _POSTERIOR,
    FROZEN_STEP,
    FrozenChain,
    _front_pad,
    _posterior,
    frozen_chain,
)
from moseq_xr.fitting.bridge import Segments, from_segments
from moseq_xr.fitting.loop import (
    FitStoppedWarning,
    _nan_advice,
    leaf_names,
    run_chain,
)
from moseq_xr.fitting.results import frame_syllables
from moseq_xr.schema import names as N


class _Accumulated(NamedTuple):
    """Outcome of the sampling sweeps."""

    total: jax.Array
    count: int
    samples: list[np.ndarray]
    state: core.ModelState


@partial(jax.jit, static_argnames=("config", "steps"))
def _sample_block(key, first, state, total, data, hypers, config, steps):
    """``steps`` sweeps (keys ``fold_in(key, first + k)``), then add the marginals.

    Returns the new state, the new running sum and, per state leaf, whether it
    stayed finite through every sweep of the block.
    """

    def sweep(k, carry):
        current, finite = carry
        new, info = core.step(
            jax.random.fold_in(key, first + k), current, data, hypers, config
        )
        return new, finite & info.finite

    leaves = len(jax.tree_util.tree_leaves(state))
    state, finite = jax.lax.fori_loop(
        0, steps, sweep, (state, jnp.ones((leaves,), bool))
    )
    marginals, _ = _posterior(state, data, config)
    return state, total + marginals, finite


def _block(frozen: FrozenChain, state, total, first: int, steps: int):
    """One sampling block; returns ``(state, total, names of non-finite leaves)``."""
    new_state, new_total, finite = _sample_block(
        frozen.key,
        first,
        state,
        total,
        frozen.data,
        frozen.hypers,
        config=frozen.config,
        steps=steps,
    )
    finite = np.asarray(finite)
    bad = [n for n, ok in zip(leaf_names(state), finite, strict=True) if not ok]
    return new_state, new_total, bad


def _accumulate(
    frozen: FrozenChain,
    state: core.ModelState,
    schedule: tuple[int, int, int],
    return_samples: bool,
    progress: bool,
) -> _Accumulated:
    """Run the sampling sweeps; ``schedule`` is ``(first sweep, samples, steps)``."""
    first, num_samples, steps = schedule
    shape = (*state.latents.z.shape, frozen.config.num_states)
    total = jnp.zeros(shape, frozen.data.Y.dtype)
    samples: list[np.ndarray] = []
    count, reason = 0, None
    bar = tqdm(total=num_samples * steps, disable=not progress, desc="marginals")
    try:
        for sample in range(num_samples):
            new = _block(frozen, state, total, first + sample * steps, steps)
            if new[2]:
                reason = _nan_advice(new[2], frozen.precision)
                break
            state, total, count = new[0], new[1], count + 1
            if return_samples:
                samples.append(np.asarray(state.latents.z))
            bar.update(steps)
    except KeyboardInterrupt:
        reason = "interrupted"
    finally:
        bar.close()
    if reason is not None:
        warnings.warn(
            f"sampling stopped after {count} of {num_samples} samples: {reason}. "
            "The marginals average the samples drawn so far.",
            FitStoppedWarning,
            stacklevel=4,
        )
    return _Accumulated(total, count, samples, state)


def _burn_in(frozen: FrozenChain, num_iters: int, progress: bool) -> Any:
    config, data, hypers = frozen.config, frozen.data, frozen.hypers
    return run_chain(
        lambda k, s: FROZEN_STEP(k, s, data, hypers, config=config),
        frozen.state,
        frozen.key,
        0,
        num_iters,
        fps=frozen.prepared.segments.fps,
        progress=progress,
        precision=frozen.precision,
    )


def _run(
    frozen: FrozenChain,
    schedule: tuple[int, int, int],
    return_samples: bool,
    progress: bool,
) -> tuple[np.ndarray, int, list[np.ndarray]]:
    """Averaged marginals ``(N, T - L, S)``, samples averaged, sampled ``z``.

    The count is 0 when the marginals are exact (AR stage, no samples asked).
    """
    from moseq_xr.fitting.api import precision_scope

    burn_in, num_samples, steps = schedule
    with precision_scope(frozen.precision):
        if frozen.config.stage == "ar" and not return_samples:
            return _marginals_of(frozen, frozen.state), 0, []
        chain = _burn_in(frozen, burn_in, progress)
        done = _Accumulated(None, 0, [], chain.state)
        if chain.stop_reason is None:
            first = (chain.iteration, num_samples, steps)
            done = _accumulate(frozen, chain.state, first, return_samples, progress)
        if done.count == 0:  # stopped before the first sample: use the last state
            z = [np.asarray(done.state.latents.z)] if return_samples else []
            return _marginals_of(frozen, done.state), 1, z
        return np.asarray(done.total) / done.count, done.count, done.samples


def _marginals_of(frozen: FrozenChain, state: core.ModelState) -> np.ndarray:
    return np.asarray(_POSTERIOR(state, frozen.data, config=frozen.config)[0])


def _output_variables(
    marginals: np.ndarray,
    samples: list[np.ndarray],
    segments: Segments,
    nlags: int,
    count: int,
) -> dict[str, xr.DataArray]:
    num_rows = len(segments.start)  # without the devices' padding rows
    marginals, samples = marginals[:num_rows], [z[:num_rows] for z in samples]
    probability = from_segments(
        _front_pad(marginals, nlags, np.nan), segments, (N.SYLLABLE_ID,)
    )
    probability.attrs = {
        "description": "posterior probability of each syllable, "
        + (
            f"averaged over {count} sample(s) of the pose trajectories"
            if count
            else "exact (AR stage: the pose trajectories are fixed)"
        )
    }
    syllable = frame_syllables(marginals.argmax(-1).astype(np.int32), nlags, segments)
    syllable.attrs = {
        "description": "most probable syllable (fitted labels); -1 = none"
    }
    variables = {
        "syllable": syllable,
        "syllable_probability": probability,
        "max_syllable_probability": probability.max(N.SYLLABLE_ID),
    }
    if samples:
        stacked = _front_pad(np.stack(samples, axis=-1), nlags, -1)
        sampled = from_segments(stacked, segments, ("sample",), fill=-1)
        sampled = sampled.astype(np.int32).assign_coords(sample=np.arange(len(samples)))
        sampled.attrs = {"description": "sampled syllables; -1 = none"}
        variables["syllable_sample"] = sampled
    return variables


def _check_schedule(burn_in_iters: int, num_samples: int, steps_per_sample: int):
    for name, value, lowest in (
        ("burn_in_iters", burn_in_iters, 0),
        ("num_samples", num_samples, 1),
        ("steps_per_sample", steps_per_sample, 1),
    ):
        if int(value) != value or value < lowest:
            raise ValueError(f"{name} must be an integer >= {lowest}, got {value!r}")


def estimate_syllable_marginals(
    ds: xr.Dataset,
    fitted: xr.DataTree,
    burn_in_iters: int = 200,
    num_samples: int = 100,
    steps_per_sample: int = 10,
    *,
    seed: int = 0,
    progress: bool = True,
    precision: str | None = None,
    return_samples: bool = False,
) -> xr.Dataset:
    """Posterior syllable probabilities averaged over samples of the latents.

    The parameters stay frozen, as in :func:`moseq_xr.apply`. After
    ``burn_in_iters`` sweeps, the exact marginals ``p(z_t | x, theta)`` are
    added up every ``steps_per_sample`` sweeps, ``num_samples`` times, and
    averaged.

    Parameters
    ----------
    ds
        A pose Dataset with the model's keypoints.
    fitted
        The tree returned by :func:`moseq_xr.fit`.
    burn_in_iters
        Sweeps before the first sample.
    num_samples
        Number of marginals averaged.
    steps_per_sample
        Sweeps between two samples.
    seed
        Seed of the sweeps (the same seed as ``apply`` gives the same chain).
    progress
        Show progress bars (burn-in, then sampling).
    precision
        Default: the precision the model was fitted in.
    return_samples
        Also return the syllables drawn at every sample (``syllable_sample``).

    Returns
    -------
    xarray.Dataset
        ``ds`` plus ``syllable_probability`` over ``(recording, individual,
        time, syllable_id)`` (NaN where no syllable: the first ``nlags``
        frames of a sequence and unmodelled frames), ``max_syllable_probability``,
        ``syllable`` (the most probable syllable, fitted labels, -1 where none)
        and, with ``return_samples``, ``syllable_sample`` over ``(recording,
        individual, time, sample)``.

    Notes
    -----
    For an AR-stage model the pose trajectories are fixed, so the marginals
    are exact and equal to ``apply``'s; no sweep is run unless
    ``return_samples`` is set. If a sweep produces NaNs (or on Ctrl-C) the
    samples drawn so far are averaged and a ``FitStoppedWarning`` says so.
    """
    _check_schedule(burn_in_iters, num_samples, steps_per_sample)
    frozen = frozen_chain(ds, fitted, seed, precision)
    schedule = (int(burn_in_iters), int(num_samples), int(steps_per_sample))
    marginals, count, samples = _run(frozen, schedule, return_samples, progress)
    variables = _output_variables(
        marginals, samples, frozen.prepared.segments, frozen.config.nlags, count
    )
    out = ds.assign(
        {n: xr.Variable(da.dims, da.values, da.attrs) for n, da in variables.items()}
    )
    if "syllable_sample" in variables:
        out = out.assign_coords(sample=variables["syllable_sample"]["sample"].values)
    out.attrs = with_provenance(
        ds.attrs,
        "moseq_xr.estimate_syllable_marginals",
        {
            "burn_in_iters": burn_in_iters,
            "num_samples": num_samples,
            "steps_per_sample": steps_per_sample,
            "samples_averaged": count,
            "seed": seed,
            "model_stage": frozen.config.stage,
        },
    )
    return out


__all__ = ["estimate_syllable_marginals"]
