"""Choosing kappa: every kappa x seed chain in one vectorised computation.

:func:`kappa_scan` prepares the data once, builds one initial state per chain
and runs ``jax.vmap`` of the compiled Gibbs sweep over the chains (kappa is an
array hyperparameter, so one compilation serves every value). It returns the
median syllable duration and the log joint of every chain at every iteration,
and the kappa whose final median duration is closest to a target duration.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr
from tqdm.auto import tqdm

from moseq_xr._provenance import with_provenance
from moseq_xr.core import model as core
from moseq_xr.fitting.prepare import PrepareOptions, prepare


def _chain_hypers(hypers: core.Hypers, kappas: np.ndarray) -> core.Hypers:
    """Hypers with a leading chain axis on kappa (the rest broadcast)."""
    trans = hypers.trans._replace(kappa=jnp.asarray(kappas, hypers.trans.kappa.dtype))
    return hypers._replace(trans=trans)


def _hypers_axes(hypers: core.Hypers) -> core.Hypers:
    axes = jax.tree_util.tree_map(lambda _: None, hypers)
    return axes._replace(trans=axes.trans._replace(kappa=0))


def _final_duration_seconds(durations: np.ndarray, fps: float, last: int) -> np.ndarray:
    """Mean over seeds and the last ``last`` iterations, in seconds: ``(kappa,)``."""
    return np.nanmean(durations[:, :, -last:], axis=(1, 2)) / fps


def kappa_scan(
    ds: xr.Dataset,
    kappas: Sequence[float] = (1e3, 1e4, 1e5, 1e6, 1e7),
    seeds: Sequence[int] = (0,),
    num_iters: int = 50,
    target_duration: float = 0.4,
    *,
    stage: str = "ar",
    latent_dim: int | None = None,
    num_states: int = 100,
    nlags: int = 3,
    precision: str = "float64",
    progress: bool = True,
    **prepare_options: Any,
) -> xr.Dataset:
    """Run one chain per kappa x seed, all at once, and pick kappa.

    Parameters
    ----------
    ds
        A pose Dataset.
    kappas, seeds
        Values to scan; ``len(kappas) * len(seeds)`` chains run as one
        vectorised computation (memory grows with the number of chains).
    num_iters
        Sweeps per chain.
    target_duration
        Wanted median syllable duration in seconds (400 ms for rodents).
    stage
        ``"ar"`` (default; fast) or ``"full"``.
    latent_dim, num_states, nlags, precision, progress
        As for :func:`moseq_xr.fit`.
    **prepare_options
        Data preparation options (``anterior``, ``posterior``, ...).

    Returns
    -------
    xarray.Dataset
        ``median_duration`` (frames) and ``median_duration_s`` and
        ``log_joint`` over ``(kappa, seed, iteration)``, ``final_duration_s``
        over ``kappa``; attrs ``best_kappa`` (final duration closest to the
        target) and ``target_duration``.
    """
    from moseq_xr.fitting.api import (
        KEY_IMPL,
        _initial_state,
        _model_data,
        precision_scope,
    )
    from moseq_xr.fitting.compile_cache import compiler_options

    prepared = prepare(ds, PrepareOptions(**prepare_options))
    latent_dim = int(latent_dim or prepared.pca.attrs["suggested_latent_dim"])
    config = core.ModelConfig(
        num_states=num_states, nlags=nlags, latent_dim=latent_dim, stage=stage
    )
    grid = [(float(k), int(s)) for k in kappas for s in seeds]
    with precision_scope(precision):
        dtype = jnp.result_type(float)
        data = _model_data(prepared, dtype)
        hypers = core.make_hypers(config, kappa=grid[0][0], dtype=dtype)
        keys = [jax.random.key(seed, impl=KEY_IMPL) for _, seed in grid]
        states = [
            _initial_state(
                jax.random.fold_in(k, 2**31 - 1), prepared, data, hypers, config
            )
            for k in keys
        ]
        state = jax.tree_util.tree_map(lambda *leaves: jnp.stack(leaves), *states)
        chain_hypers = _chain_hypers(hypers, np.array([k for k, _ in grid]))
        step = jax.jit(
            jax.vmap(core.step, in_axes=(0, 0, None, _hypers_axes(hypers), None)),
            static_argnums=4,
            compiler_options=compiler_options(),
        )
        durations, log_joint = [], []
        for iteration in tqdm(
            range(num_iters), disable=not progress, desc="kappa scan"
        ):
            iteration_keys = jnp.stack([jax.random.fold_in(k, iteration) for k in keys])
            state, info = step(iteration_keys, state, data, chain_hypers, config)
            durations.append(np.asarray(info.median_duration))
            log_joint.append(np.asarray(info.log_joint))
    shape = (len(kappas), len(seeds), num_iters)
    durations = np.stack(durations, axis=-1).reshape(shape)
    fps = prepared.segments.fps
    final = _final_duration_seconds(durations, fps, max(1, num_iters // 5))
    best = float(np.asarray(kappas)[np.nanargmin(np.abs(final - target_duration))])
    result = xr.Dataset(
        {
            "median_duration": (("kappa", "seed", "iteration"), durations),
            "median_duration_s": (("kappa", "seed", "iteration"), durations / fps),
            "log_joint": (
                ("kappa", "seed", "iteration"),
                np.stack(log_joint, axis=-1).reshape(shape),
            ),
            "final_duration_s": (("kappa",), final),
        },
        coords={
            "kappa": np.asarray(kappas, float),
            "seed": np.asarray(seeds),
            "iteration": np.arange(1, num_iters + 1),
        },
        attrs={
            "best_kappa": best,
            "target_duration": target_duration,
            "stage": stage,
            "fps": fps,
            "latent_dim": latent_dim,
            "num_states": num_states,
        },
    )
    result.attrs = with_provenance(
        result.attrs,
        "moseq_xr.kappa_scan",
        {
            "kappas": list(kappas),
            "seeds": list(seeds),
            "num_iters": num_iters,
            "target_duration": target_duration,
            "stage": stage,
        },
    )
    return result
