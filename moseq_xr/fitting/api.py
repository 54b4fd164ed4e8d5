"""Public fitting entry points: :func:`fit` and :func:`resume`.

``fit`` prepares the data (:mod:`moseq_xr.fitting.prepare`), builds the initial
state, runs the compiled Gibbs step (:mod:`moseq_xr.fitting.loop`), checkpoints
into the project store (:mod:`moseq_xr.fitting.checkpoint`) and returns the result
tree (:mod:`moseq_xr.fitting.results`). Precision is chosen per call: the whole fit
runs inside ``jax.enable_x64(precision == "float64")``; nothing global changes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from moseq_xr._version import __version__
from moseq_xr.core import model as core
from moseq_xr.core.keypoints import init_pose
from moseq_xr.exceptions import FitError, StoreError
from moseq_xr.fitting.checkpoint import Checkpoint, read_checkpoint, segments_index, write_checkpoint
from moseq_xr.fitting.loop import ChainResult, run_chain
from moseq_xr.fitting.prepare import PreparedData, PrepareOptions, prepare
from moseq_xr.fitting.results import (
    frame_syllables,
    frequency_order,
    model_dataset,
    relabel,
    result_tree,
    trace_dataset,
)
from moseq_xr.io.store import is_store
from moseq_xr.io.store import open as open_store
from moseq_xr.io.store import save as save_store
from moseq_xr.preprocess.pca import pca_embedded
from moseq_xr.schema import names as N

PRECISIONS = ("float64", "float32")
STAGES = ("ar",)

#: ``fold_in`` stream of the initialisation draws (sweep i uses stream i).
_INIT_STREAM = 2**31 - 1

#: Number of times each stage's step has been traced (compiled); tests use it.
TRACE_COUNTS: dict[str, int] = {}


@contextlib.contextmanager
def precision_scope(precision: str) -> Iterator[None]:
    """Run JAX code in float64 or float32 for this block only."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    with jax.enable_x64(precision == "float64"):
        yield


def _counted_step(key, state, data, hypers, config: core.ModelConfig):
    TRACE_COUNTS[config.stage] = TRACE_COUNTS.get(config.stage, 0) + 1
    return core.step(key, state, data, hypers, config)


_JITTED_STEP = jax.jit(_counted_step, static_argnames="config")
_JITTED_INIT = jax.jit(core.init, static_argnames="config")
_JITTED_INIT_POSE = jax.jit(init_pose, static_argnames="whiten")

#: PRNG implementation of the chains. XLA's RngBitGenerator compiles several
#: times faster than threefry on CPUs, which dominates the first iteration.
KEY_IMPL = "rbg"


def _hypers_dict(hypers: core.Hypers) -> dict[str, dict[str, np.ndarray]]:
    return {group: {name: np.asarray(value) for name, value in part._asdict().items()}
            for group, part in hypers._asdict().items()}


def _hypers_from_dict(values: dict[str, dict[str, Any]], dtype) -> core.Hypers:
    from moseq_xr.core.autoregression import ARPrior
    from moseq_xr.core.transitions import TransitionHypers

    def arrays(group, cls):
        return cls(**{k: jnp.asarray(v, dtype) for k, v in values[group].items()})

    return core.Hypers(trans=arrays("trans", TransitionHypers), ar=arrays("ar", ARPrior))


def _model_data(prepared: PreparedData, dtype) -> core.ModelData:
    segments = prepared.segments
    return core.ModelData(Y=jnp.asarray(segments.Y, dtype), mask=jnp.asarray(segments.mask, dtype),
                          noise_prior=jnp.asarray(prepared.noise_prior, dtype))


def _initial_state(key, prepared: PreparedData, data, hypers, config) -> core.ModelState:
    mean, components = pca_embedded(prepared.pca)
    dtype = data.Y.dtype
    pose = _JITTED_INIT_POSE(data.Y, data.mask, jnp.asarray(prepared.centroid, dtype),
                     jnp.asarray(prepared.heading, dtype), jnp.asarray(mean, dtype),
                     jnp.asarray(components[: config.latent_dim], dtype))
    return _JITTED_INIT(key, data, hypers, config, pose)


def _state_arrays(state: core.ModelState) -> dict[str, dict[str, np.ndarray]]:
    return {"params": {k: np.asarray(v) for k, v in state.params._asdict().items()},
            "latents": {k: np.asarray(v) for k, v in state.latents._asdict().items()}}


def _state_from_arrays(arrays: dict[str, dict[str, np.ndarray]], dtype) -> core.ModelState:
    def convert(value):
        value = np.asarray(value)
        return jnp.asarray(value, dtype if value.dtype.kind == "f" else value.dtype)

    return core.ModelState(
        params=core.Params(**{k: convert(v) for k, v in arrays["params"].items()}),
        latents=core.Latents(**{k: convert(v) for k, v in arrays["latents"].items()}),
    )


class _Run:
    """Everything one chain needs; built by ``fit`` or from a checkpoint by ``resume``."""

    def __init__(self, *, data, hypers, config, state, key, seed, segments, pca, options,
                 precision, fit_args, trace=None, start=0, num_iters=0):
        self.data, self.hypers, self.config, self.state = data, hypers, config, state
        self.key, self.seed, self.segments, self.pca = key, seed, segments, pca
        self.options, self.precision, self.fit_args = options, precision, fit_args
        self.trace, self.start, self.num_iters = trace or {}, start, num_iters

    def checkpoint(self, state, done: int, trace) -> Checkpoint:
        return Checkpoint(
            state=_state_arrays(state),
            data={k: np.asarray(v) for k, v in self.data._asdict().items()},
            hypers=_hypers_dict(self.hypers),
            config=self.config._asdict(),
            segments=self.segments,
            pca=self.pca,
            trace={k: np.asarray(v) for k, v in trace.items()},
            meta={"iteration": done, "num_iters": self.num_iters, "seed": self.seed,
                  "key": np.asarray(jax.random.key_data(self.key)).tolist(),
                  "key_impl": str(jax.random.key_impl(self.key)),
                  "precision": self.precision, "prepare": self.options,
                  "fit": self.fit_args, "version": __version__},
        )

    def run(self, store: Path | None, checkpoint_every: int, progress: bool) -> ChainResult:
        def on_checkpoint(state, done, trace):
            if store is not None:
                write_checkpoint(store, self.checkpoint(state, done, trace))

        def step(key, state):
            return _JITTED_STEP(key, state, self.data, self.hypers, config=self.config)

        return run_chain(step, self.state, self.key, self.start, self.num_iters,
                         fps=self.segments["fps"], trace=self.trace, on_checkpoint=on_checkpoint,
                         checkpoint_every=checkpoint_every, progress=progress,
                         precision=self.precision)


def _results(ds: xr.Dataset, run: _Run, chain: ChainResult) -> xr.DataTree:
    from moseq_xr.fitting.bridge import Segments

    index = run.segments
    shell = Segments(Y=np.zeros((len(index["start"]), run.data.Y.shape[1], 0, 0)), conf=None,
                     mask=None, **{k: index[k] for k in (
                         "recording_index", "individual_index", "start", "end", "recordings",
                         "individuals", "keypoints", "space", "fps", "seg_length", "overlap",
                         "time", "n_frames")})
    params = {k: np.asarray(v) for k, v in chain.state.params._asdict().items()}
    syllables = frame_syllables(np.asarray(chain.state.latents.z), run.config.nlags, shell)
    order = frequency_order(syllables.values, run.config.num_states)
    syllables = syllables.copy(data=relabel(syllables.values, order))
    syllables.attrs = {"description": "syllable label (0 = most frequent); -1 = none",
                       "stage": run.config.stage}
    attrs = {"stage": run.config.stage, "iterations": chain.iteration,
             "stopped_early": chain.stop_reason or "", "seed": run.seed,
             "precision": run.precision, "version": __version__,
             "config": run.config._asdict(),
             "hypers": {g: {k: np.asarray(v).tolist() for k, v in part.items()}
                        for g, part in _hypers_dict(run.hypers).items()
                        if g == "trans"},
             "prepare": run.options, "fit": run.fit_args}
    model = model_dataset(params, order, list(index["keypoints"]), attrs)
    trace = trace_dataset(chain.trace, {"fps": index["fps"]})
    return result_tree(ds, {"syllable": syllables}, model, trace, run.pca,
                       {"stage": run.config.stage, **run.fit_args})


def _same_pose_data(stored: xr.Dataset, ds: xr.Dataset) -> bool:
    """Cheap identity check: names, sizes and per-recording lengths."""
    return all(
        [str(v) for v in stored[name].values] == [str(v) for v in ds[name].values]
        for name in (N.RECORDING, N.KEYPOINT, N.INDIVIDUAL, "n_frames")
    ) and stored.sizes == ds.sizes


def _store_path(checkpoint: str | Path | None, ds: xr.Dataset) -> Path | None:
    """The project store to checkpoint into; created from ``ds`` if missing.

    An existing store must hold the same pose data (same recordings,
    keypoints, individuals and lengths), so that ``resume`` finds them there.
    """
    if checkpoint is None:
        return None
    path = Path(checkpoint)
    if not is_store(path):
        save_store(ds, path)
        return path
    stored = open_store(path)
    stored = stored.to_dataset(inherit=False) if isinstance(stored, xr.DataTree) else stored
    pose = ds[list(N.DATA_VARS)]
    if not _same_pose_data(stored[list(N.DATA_VARS)], pose):
        raise StoreError(
            f"{path}: this project store holds other pose data than the Dataset being "
            "fitted; fit the store's own data (moseq_xr.open(path)) or choose a new path"
        )
    return path


def fit(
    ds: xr.Dataset,
    stage: str = "ar",
    num_iters: int = 50,
    *,
    kappa: float = 1e6,
    latent_dim: int | None = None,
    num_states: int = 100,
    nlags: int = 3,
    alpha: float = 5.7,
    gamma: float = 1e3,
    S_0_scale: float = 0.01,
    K_0_scale: float = 10.0,
    seed: int = 0,
    checkpoint: str | Path | None = None,
    checkpoint_every: int = 10,
    precision: str = "float64",
    parallel_message_passing: bool = False,
    progress: bool = True,
    pca: xr.Dataset | None = None,
    **prepare_options: Any,
) -> xr.DataTree:
    """Fit keypoint-MoSeq to a pose Dataset.

    Parameters
    ----------
    ds
        A pose Dataset (see :func:`moseq_xr.validate`).
    stage
        ``"ar"``: the autoregressive-HMM stage (pose trajectories fixed at
        their PCA projection).
    num_iters
        Gibbs sweeps to run.
    kappa
        Stickiness: larger gives longer syllables (1e6 is the usual AR-stage value).
    latent_dim
        Dimension of the pose latent space (default: the PCA's suggestion,
        90 % variance, at most 10).
    num_states
        Truncation level of the HDP (an upper bound on the number of syllables).
    nlags
        Order of the autoregression.
    alpha, gamma, S_0_scale, K_0_scale
        Remaining hyperparameters (keypoint-MoSeq defaults).
    seed
        Seed of the chain.
    checkpoint
        Project store (``"project.zarr"``) to checkpoint into; created from
        ``ds`` when it does not exist. The final result tree is saved there too.
    checkpoint_every
        Sweeps between checkpoints.
    precision
        ``"float64"`` (default) or ``"float32"``, for this call only.
    parallel_message_passing
        Use associative-scan samplers (useful on GPUs; slower on CPUs).
    progress
        Show a progress bar.
    pca
        A PCA Dataset to use instead of fitting one.
    **prepare_options
        Data preparation options, see :class:`moseq_xr.fitting.prepare.PrepareOptions`
        (``anterior``, ``posterior``, ``use_keypoints``, ``fix_heading``,
        ``outlier_removal``, ``added_noise_level``, ...).

    Returns
    -------
    xarray.DataTree
        Root: ``ds`` plus ``syllable`` over ``(recording, individual, time)``
        (-1 where none); ``/model``: parameters with hyperparameters in attrs;
        ``/trace``: per-iteration log joint, median duration, ...; ``/pca``.
    """
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
    if num_iters < 0:
        raise ValueError(f"num_iters must be >= 0, got {num_iters}")
    unknown = set(prepare_options) - set(PrepareOptions.__dataclass_fields__)
    if unknown:
        raise TypeError(f"fit() got unknown options {sorted(unknown)}; see PrepareOptions")
    options = PrepareOptions(**prepare_options)
    prepared = prepare(ds, options, pca)
    suggested = int(prepared.pca.attrs["suggested_latent_dim"])
    latent_dim = suggested if latent_dim is None else int(latent_dim)
    if not 1 <= latent_dim <= prepared.pca.sizes["pc"]:
        raise ValueError(f"latent_dim must be between 1 and {prepared.pca.sizes['pc']}, got {latent_dim}")
    config = core.ModelConfig(num_states=num_states, nlags=nlags, latent_dim=latent_dim,
                              stage=stage, parallel_message_passing=parallel_message_passing)
    fit_args = {"num_iters": num_iters, "kappa": kappa, "latent_dim": latent_dim,
                "num_states": num_states, "nlags": nlags, "alpha": alpha, "gamma": gamma,
                "S_0_scale": S_0_scale, "K_0_scale": K_0_scale, "seed": seed,
                "precision": precision, "parallel_message_passing": parallel_message_passing}
    store = _store_path(checkpoint, ds)
    with precision_scope(precision):
        dtype = jnp.result_type(float)
        hypers = core.make_hypers(config, alpha=alpha, gamma=gamma, kappa=kappa,
                                  S_0_scale=S_0_scale, K_0_scale=K_0_scale, dtype=dtype)
        data = _model_data(prepared, dtype)
        key = jax.random.key(seed, impl=KEY_IMPL)
        state = _initial_state(jax.random.fold_in(key, _INIT_STREAM), prepared, data, hypers, config)
        run = _Run(data=data, hypers=hypers, config=config, state=state, key=key, seed=seed,
                   segments=segments_index(prepared.segments), pca=prepared.pca,
                   options=options.to_dict(), precision=precision, fit_args=fit_args,
                   num_iters=num_iters)
        chain = run.run(store, checkpoint_every, progress)
    tree = _results(ds, run, chain)
    if store is not None:
        save_store(tree, store)
    return tree


def resume(
    store: str | Path, num_iters: int | None = None, *, checkpoint_every: int = 10,
    progress: bool = True,
) -> xr.DataTree:
    """Continue a fit from the checkpoint in a project store.

    Parameters
    ----------
    store
        The project store given as ``checkpoint=`` to :func:`fit`.
    num_iters
        New target number of sweeps (default: the original target).
    checkpoint_every
        Sweeps between checkpoints.
    progress
        Show a progress bar.

    Returns
    -------
    xarray.DataTree
        As :func:`fit`, identical to what the uninterrupted fit would return.
    """
    store = Path(store)
    saved = read_checkpoint(store)
    meta = saved.meta
    target = int(meta["num_iters"] if num_iters is None else num_iters)
    if target < meta["iteration"]:
        raise FitError(f"{store}: the checkpoint is at iteration {meta['iteration']}, past {target}")
    opened = open_store(store)
    ds = opened.to_dataset(inherit=False) if isinstance(opened, xr.DataTree) else opened
    ds = ds.drop_vars([v for v in ("syllable",) if v in ds])
    config = core.ModelConfig(**saved.config)
    with precision_scope(meta["precision"]):
        dtype = jnp.result_type(float)
        run = _Run(
            data=core.ModelData(**{k: jnp.asarray(v, dtype) for k, v in saved.data.items()}),
            hypers=_hypers_from_dict(saved.hypers, dtype), config=config,
            state=_state_from_arrays(saved.state, dtype),
            key=jax.random.wrap_key_data(np.asarray(meta["key"], dtype=np.uint32),
                                         impl=meta.get("key_impl", KEY_IMPL)),
            seed=meta["seed"], segments=saved.segments, pca=saved.pca,
            options=meta["prepare"], precision=meta["precision"],
            fit_args={**meta["fit"], "num_iters": target},
            trace={k: list(v) for k, v in saved.trace.items()},
            start=int(meta["iteration"]), num_iters=target,
        )
        chain = run.run(store, checkpoint_every, progress)
    tree = _results(ds.load(), run, chain)
    save_store(tree, store)
    return tree


__all__ = ["TRACE_COUNTS", "fit", "resume"]
