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
from moseq_xr.fitting.checkpoint import (
    Checkpoint,
    read_checkpoint,
    segments_index,
    write_checkpoint,
)
from moseq_xr.fitting.compile_cache import CachedJit, compile_cache_scope
from moseq_xr.fitting.hyperparameters import fit_hyperparameters
from moseq_xr.fitting.loop import ChainResult, run_chain
from moseq_xr.fitting.placement import device_mesh, place, plan_memory
from moseq_xr.fitting.prepare import PreparedData, PrepareOptions, prepare
from moseq_xr.fitting.results import (
    frame_syllables,
    frequency_order,
    model_dataset,
    relabel,
    result_tree,
    trace_dataset,
)
from moseq_xr.fitting.sweep import SweepJit
from moseq_xr.io.store import is_store
from moseq_xr.io.store import open as open_store
from moseq_xr.io.store import save as save_store
from moseq_xr.preprocess.pca import pca_embedded
from moseq_xr.schema import names as N

PRECISIONS = ("float64", "float32")
STAGES = ("ar", "full", "both")

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


#: The fitting loop's sweep. ``TRACE_COUNTS[stage]`` counts traces of the
#: stage's parts (one per part and compilation).
_JITTED_STEP = SweepJit(trace_counts=TRACE_COUNTS)
_JITTED_INIT = CachedJit(core.init, static_argnames="config")
_JITTED_INIT_POSE = CachedJit(init_pose, static_argnames="whiten")

#: PRNG implementation of the chains. XLA's RngBitGenerator compiles several
#: times faster than threefry on CPUs, which dominates the first iteration.
KEY_IMPL = "rbg"


def _hypers_dict(hypers: core.Hypers) -> dict[str, dict[str, np.ndarray]]:
    return {
        group: {name: np.asarray(value) for name, value in part._asdict().items()}
        for group, part in hypers._asdict().items()
    }


def _hypers_from_dict(values: dict[str, dict[str, Any]], dtype) -> core.Hypers:
    from moseq_xr.core.autoregression import ARPrior
    from moseq_xr.core.transitions import TransitionHypers

    def arrays(group, cls):
        return cls(**{k: jnp.asarray(v, dtype) for k, v in values[group].items()})

    return core.Hypers(
        trans=arrays("trans", TransitionHypers),
        ar=arrays("ar", ARPrior),
        obs=arrays("obs", core.ObservationHypers),
    )


def _model_data(prepared: PreparedData, dtype) -> core.ModelData:
    """Segments as device arrays; the noise prior from the confidences (ref. §1.6)."""
    from moseq_xr.core.keypoint_slds import noise_prior_from_confidence

    segments, options = prepared.segments, prepared.options
    return core.ModelData(
        Y=jnp.asarray(segments.Y, dtype),
        mask=jnp.asarray(segments.mask, dtype),
        noise_prior=noise_prior_from_confidence(
            jnp.asarray(segments.conf, dtype), options.slope, options.intercept
        ),
    )


def _initial_state(
    key, prepared: PreparedData, data, hypers, config
) -> core.ModelState:
    mean, components = pca_embedded(prepared.pca)
    dtype = data.Y.dtype
    pose = _JITTED_INIT_POSE(
        jnp.asarray(prepared.initial_Y, dtype),
        data.mask,
        jnp.asarray(prepared.centroid, dtype),
        jnp.asarray(prepared.heading, dtype),
        jnp.asarray(mean, dtype),
        jnp.asarray(components[: config.latent_dim], dtype),
    )
    return _JITTED_INIT(key, data, hypers, config, pose)


def _state_arrays(state: core.ModelState) -> dict[str, dict[str, np.ndarray]]:
    return {
        "params": {k: np.asarray(v) for k, v in state.params._asdict().items()},
        "latents": {k: np.asarray(v) for k, v in state.latents._asdict().items()},
    }


def _state_from_arrays(
    arrays: dict[str, dict[str, np.ndarray]], dtype
) -> core.ModelState:
    def convert(value):
        value = np.asarray(value)
        return jnp.asarray(value, dtype if value.dtype.kind == "f" else value.dtype)

    return core.ModelState(
        params=core.Params(**{k: convert(v) for k, v in arrays["params"].items()}),
        latents=core.Latents(**{k: convert(v) for k, v in arrays["latents"].items()}),
    )


class _Run:
    """Everything one chain needs; built by ``fit`` or from a checkpoint by ``resume``.

    A chain runs one or more *phases* (``{"stage", "num_iters", "kappa"}``):
    ``stage="both"`` is an AR phase followed by a full phase. Sweep ``i`` of
    phase ``p`` uses the key ``fold_in(fold_in(key, p), i)`` (phase 0:
    ``fold_in(key, i)``).
    """

    def __init__(
        self,
        *,
        data,
        hypers,
        config,
        state,
        key,
        seed,
        segments,
        pca,
        options,
        precision,
        fit_args,
        trace=None,
        start=0,
        phase=0,
    ):
        self.data, self.hypers, self.config, self.state = data, hypers, config, state
        self.key, self.seed, self.segments, self.pca = key, seed, segments, pca
        self.options, self.precision, self.fit_args = options, precision, fit_args
        self.trace, self.start, self.phase = trace or {}, start, phase

    @property
    def phases(self) -> list[dict[str, Any]]:
        return self.fit_args["phases"]

    def _enter_phase(self, index: int) -> None:
        phase = self.phases[index]
        self.phase = index
        self.config = self.config._replace(stage=phase["stage"])
        kappa = jnp.asarray(phase["kappa"], self.hypers.trans.kappa.dtype)
        self.hypers = self.hypers._replace(
            trans=self.hypers.trans._replace(kappa=kappa)
        )

    def phase_key(self) -> jax.Array:
        return self.key if self.phase == 0 else jax.random.fold_in(self.key, self.phase)

    def checkpoint(self, state, done: int, trace) -> Checkpoint:
        return Checkpoint(
            state=_state_arrays(state),
            data={k: np.asarray(v) for k, v in self.data._asdict().items()},
            hypers=_hypers_dict(self.hypers),
            config=self.config.to_attrs(),
            segments=self.segments,
            pca=self.pca,
            trace={k: np.asarray(v) for k, v in trace.items()},
            meta={
                "iteration": done,
                "phase": self.phase,
                "seed": self.seed,
                "key": np.asarray(jax.random.key_data(self.key)).tolist(),
                "key_impl": str(jax.random.key_impl(self.key)),
                "precision": self.precision,
                "prepare": self.options,
                "fit": self.fit_args,
                "version": __version__,
            },
        )

    def _run_phase(self, store, checkpoint_every, progress) -> ChainResult:
        def on_checkpoint(state, done, trace):
            if store is not None:
                write_checkpoint(store, self.checkpoint(state, done, trace))

        def step(key, state):
            return _JITTED_STEP(key, state, self.data, self.hypers, config=self.config)

        return run_chain(
            step,
            self.state,
            self.phase_key(),
            self.start,
            self.phases[self.phase]["num_iters"],
            fps=self.segments["fps"],
            trace=self.trace,
            on_checkpoint=on_checkpoint,
            checkpoint_every=checkpoint_every,
            progress=progress,
            precision=self.precision,
            labels={"stage": self.config.stage},
        )

    def run(
        self, store: Path | None, checkpoint_every: int, progress: bool
    ) -> ChainResult:
        """Run the remaining sweeps of every remaining phase."""
        self._enter_phase(self.phase)
        total = sum(p["num_iters"] for p in self.phases[: self.phase])
        while True:
            chain = self._run_phase(store, checkpoint_every, progress)
            self.state = chain.state
            total += chain.iteration
            if chain.stop_reason is not None or self.phase + 1 == len(self.phases):
                from moseq_xr.fitting.apply import frame_log_likelihood_reference

                self.reference = frame_log_likelihood_reference(
                    chain.state, self.data, self.config
                )
                return chain._replace(iteration=total)
            self._enter_phase(self.phase + 1)
            self.start = 0


def _results(ds: xr.Dataset, run: _Run, chain: ChainResult) -> xr.DataTree:
    from moseq_xr.fitting.bridge import Segments

    index = run.segments
    shell = Segments(
        Y=np.zeros((len(index["start"]), run.data.Y.shape[1], 0, 0)),
        conf=None,
        mask=None,
        **{
            k: index[k]
            for k in (
                "recording_index",
                "individual_index",
                "start",
                "end",
                "recordings",
                "individuals",
                "keypoints",
                "space",
                "fps",
                "seg_length",
                "overlap",
                "time",
                "n_frames",
            )
        },
    )
    params = {k: np.asarray(v) for k, v in chain.state.params._asdict().items()}
    latents = _real_rows(chain.state.latents, len(index["start"]))
    syllables = frame_syllables(np.asarray(latents.z), run.config.nlags, shell)
    order = frequency_order(syllables.values, run.config.num_states)
    syllables = syllables.copy(data=relabel(syllables.values, order))
    syllables.attrs = {
        "description": "syllable label (0 = most frequent); -1 = none",
        "stage": run.config.stage,
    }
    attrs = {
        "stage": run.config.stage,
        "iterations": chain.iteration,
        "stopped_early": chain.stop_reason or "",
        "seed": run.seed,
        "precision": run.precision,
        "version": __version__,
        "config": run.config.to_attrs(),
        "hypers": {
            g: {k: np.asarray(v).tolist() for k, v in part.items()}
            for g, part in _hypers_dict(run.hypers).items()
            if g in ("trans", "obs")
        },
        "prepare": run.options,
        "fit": run.fit_args,
        "frame_log_likelihood": getattr(run, "reference", {}),
    }
    model = model_dataset(params, order, list(index["keypoints"]), attrs)
    trace = trace_dataset(chain.trace, {"fps": index["fps"]})
    variables = {"syllable": syllables}
    if run.config.stage == "full":
        variables.update(_continuous_results(latents, shell))
    return result_tree(
        ds,
        variables,
        model,
        trace,
        run.pca,
        {"stage": run.config.stage, **run.fit_args},
    )


def _real_rows(latents: core.Latents, num_rows: int) -> core.Latents:
    """The latents of the real segment rows (without the devices' padding rows)."""
    return jax.tree_util.tree_map(lambda a: a[:num_rows], latents)


def _planned(
    data: core.ModelData,
    config: core.ModelConfig,
    devices: Any,
    memory_limit: int | float | str | None,
) -> core.ModelConfig:
    """The config with the fit's memory plan (``rows_per_batch``) and mesh.

    See :mod:`moseq_xr.fitting.placement`: rows are split over the devices
    and sampled ``rows_per_batch`` at a time when memory is short. Plan before
    building the initial state, whose syllable draw follows the same plan
    (its rows are drawn with per-row keys, so batching changes no draw).
    """
    chosen, mesh = device_mesh(devices)
    num_rows, row_length, num_keypoints, num_dims = data.Y.shape
    plan = plan_memory(
        num_rows,
        row_length,
        config,
        num_keypoints,
        num_dims,
        data.Y.dtype.itemsize,
        chosen,
        memory_limit,
    )
    return config._replace(rows_per_batch=plan.rows_per_batch, mesh=mesh)


def _placed(
    data: core.ModelData,
    state: core.ModelState,
    config: core.ModelConfig,
    devices: Any,
    memory_limit: int | float | str | None,
) -> tuple[core.ModelData, core.ModelState, core.ModelConfig]:
    """Data and state on the fit's devices; the config with its memory plan."""
    config = _planned(data, config, devices, memory_limit)
    data, state = place(data, state, config.mesh)
    return data, state, config


def _continuous_results(latents: core.Latents, shell) -> dict[str, xr.DataArray]:
    """Centroid, heading and pose latents of the full model on the Dataset's grid."""
    from moseq_xr.fitting.bridge import from_segments

    centroid = from_segments(np.asarray(latents.v), shell, (N.SPACE,))
    heading = from_segments(np.asarray(latents.h), shell)
    latent = from_segments(np.asarray(latents.x), shell, ("latent",))
    centroid.attrs = {"description": "model centroid (mean keypoint position)"}
    heading.attrs = {"description": "model heading", "units": "radians"}
    latent.attrs = {"description": "pose latent state (whitened PCA coordinates)"}
    return {"centroid": centroid, "heading": heading, "latent_state": latent}


def _same_pose_data(stored: xr.Dataset, ds: xr.Dataset) -> bool:
    """Cheap identity check: names, sizes and per-recording lengths."""
    return (
        all(
            [str(v) for v in stored[name].values] == [str(v) for v in ds[name].values]
            for name in (N.RECORDING, N.KEYPOINT, N.INDIVIDUAL, "n_frames")
        )
        and stored.sizes == ds.sizes
    )


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
    stored = (
        stored.to_dataset(inherit=False) if isinstance(stored, xr.DataTree) else stored
    )
    pose = ds[list(N.DATA_VARS)]
    if not _same_pose_data(stored[list(N.DATA_VARS)], pose):
        raise StoreError(
            f"{path}: this project store holds other pose data than the Dataset "
            "being fitted; fit the store's own data (moseq_xr.open(path)) or choose "
            "a new path"
        )
    return path


def _phases(
    stage: str, num_iters: int, kappa: float, ar_iters: int, ar_kappa: float | None
) -> list[dict[str, Any]]:
    if stage == "both":
        return [
            {
                "stage": "ar",
                "num_iters": ar_iters,
                "kappa": float(kappa * 100 if ar_kappa is None else ar_kappa),
            },
            {"stage": "full", "num_iters": num_iters, "kappa": float(kappa)},
        ]
    return [{"stage": stage, "num_iters": num_iters, "kappa": float(kappa)}]


def _check_fit_arguments(
    stage: str, num_iters: int, prepare_options: dict[str, Any]
) -> None:
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
    if num_iters < 0:
        raise ValueError(f"num_iters must be >= 0, got {num_iters}")
    unknown = set(prepare_options) - set(PrepareOptions.__dataclass_fields__)
    if unknown:
        raise TypeError(
            f"fit() got unknown options {sorted(unknown)}; see PrepareOptions"
        )


def same_pose_data(a: xr.Dataset, b: xr.Dataset) -> bool:
    """Whether two Datasets hold the same pose data: names, sizes and values."""
    names = list(N.DATA_VARS)
    if not all(v in a and v in b for v in names):
        return False
    return _same_pose_data(a[names], b[names]) and all(
        np.array_equal(a[v].values, b[v].values, equal_nan=True) for v in names
    )


def _fitted_on(init: xr.DataTree, ds: xr.Dataset) -> bool:
    """Whether ``init`` was fitted to exactly these pose data (and has syllables)."""
    root = init.to_dataset()
    return "syllable" in root and same_pose_data(root, ds)


def _from_previous_fit(
    init: xr.DataTree,
    ds: xr.Dataset,
    prepared: PreparedData,
    state: core.ModelState,
    chain: tuple[core.ModelData, core.Hypers, core.ModelConfig, jax.Array],
) -> core.ModelState:
    """Continue from a fitted tree: its parameters replace the prior draws.

    On the data it was fitted to, its syllables are kept. On other data
    (e.g. new recordings), the state is built as :func:`moseq_xr.apply` builds
    it: pose latents projected with the fitted emission and syllables drawn
    from the fitted model. ``chain`` is ``(data, hypers, config, key)``.
    """
    from moseq_xr.fitting.apply import _FROZEN_STATE, fitted_params
    from moseq_xr.fitting.bridge import segment_values

    data, hypers, config, key = chain
    params = fitted_params(init["model"].to_dataset(), state.params.Ab.dtype)
    if not _fitted_on(init, ds):
        return _FROZEN_STATE(
            key,
            params,
            data,
            prepared.initial_Y,
            prepared.centroid,
            prepared.heading,
            hypers,
            config=config,
        )
    root = init.to_dataset()
    rows = segment_values(root["syllable"], prepared.segments)[:, config.nlags :]
    z = jnp.asarray(np.maximum(rows, 0), jnp.int32)
    latents = _fitted_continuous(root, prepared, state.latents)
    return core.ModelState(params, latents._replace(z=z))


def _fitted_continuous(
    root: xr.Dataset, prepared: PreparedData, latents: core.Latents
) -> core.Latents:
    """Pose latents, centroid and heading of a full-stage fit, where it has them.

    Continuing a full-stage fit on its own data starts from where it stopped,
    not from the PCA projection.
    """
    from moseq_xr.fitting.bridge import segment_values

    fields = {"x": ("latent_state", ("latent",)), "v": ("centroid", (N.SPACE,))}
    fields["h"] = ("heading", ())
    updates = {}
    for field, (name, dims) in fields.items():
        current = np.asarray(getattr(latents, field))
        if name not in root:
            continue
        fitted = segment_values(root[name], prepared.segments, dims)
        if fitted.shape != current.shape:
            continue
        merged = np.where(np.isfinite(fitted), fitted, current)
        updates[field] = jnp.asarray(merged, current.dtype)
    return latents._replace(**updates)


def _init_settings(
    init: xr.DataTree | None, prepare_options: dict[str, Any], pca: xr.Dataset | None
) -> tuple[PrepareOptions, xr.Dataset | None, dict]:
    """Preparation options, PCA and model sizes; taken from ``init`` when given."""
    if init is None:
        return PrepareOptions(**prepare_options), _own_pca(pca), {}
    attrs = init["model"].attrs
    options = PrepareOptions(**{**attrs["prepare"], **prepare_options})
    sizes = {k: attrs["config"][k] for k in ("num_states", "nlags", "latent_dim")}
    return options, _own_pca(init["pca"].to_dataset()), sizes


def _own_pca(pca: xr.Dataset | None) -> xr.Dataset | None:
    """The PCA without the dims it inherited from another tree (e.g. ``recording``).

    A PCA taken from a fitted tree with its inherited coordinates (to keep the
    keypoint labels) also carries that tree's recordings and times, which
    would clash with another Dataset's in the new result tree.
    """
    if pca is None:
        return None
    used = {dim for var in pca.data_vars.values() for dim in var.dims}
    return pca.drop_dims([dim for dim in pca.dims if dim not in used])


def fit(
    ds: xr.Dataset,
    stage: str = "ar",
    num_iters: int = 50,
    *,
    kappa: float | None = None,
    init: xr.DataTree | None = None,
    ar_iters: int = 50,
    ar_kappa: float | None = None,
    latent_dim: int | None = None,
    num_states: int = 100,
    nlags: int = 3,
    alpha: float | None = None,
    gamma: float | None = None,
    S_0_scale: float | None = None,
    K_0_scale: float | None = None,
    nu_s: float | None = None,
    sigmasq_loc: float | None = None,
    jitter: float | None = None,
    resample_global_noise: bool = False,
    seed: int = 0,
    checkpoint: str | Path | None = None,
    checkpoint_every: int = 10,
    precision: str = "float64",
    parallel_message_passing: bool = False,
    progress: bool = True,
    pca: xr.Dataset | None = None,
    devices: Any = None,
    memory_limit: int | float | str | None = None,
    compile_cache: bool | str | Path | None = None,
    **prepare_options: Any,
) -> xr.DataTree:
    """Fit keypoint-MoSeq to a pose Dataset.

    Parameters
    ----------
    ds
        A pose Dataset (see :func:`moseq_xr.validate`).
    stage
        ``"ar"``: the autoregressive-HMM stage (pose trajectories fixed at
        their PCA projection); ``"full"``: the keypoint-SLDS (pose latents,
        heading, centroid and noise scales resampled too), best started from
        an AR fit with ``init=``; ``"both"``: ``ar_iters`` AR sweeps at
        ``ar_kappa`` then ``num_iters`` full sweeps at ``kappa``.
    num_iters
        Gibbs sweeps to run (of the full stage for ``"both"``).
    kappa
        Stickiness: larger gives longer syllables. The full model needs a
        smaller kappa than the AR stage for the same durations (1e6 / 1e4 are
        the usual AR / full values). Default: ``init``'s kappa when given,
        else 1e6.
    init
        A tree returned by ``fit`` (e.g. the AR stage) to continue from: its
        parameters, PCA, preparation options and hyperparameters (those not
        passed here; see :func:`moseq_xr.update_hyperparameters`) are used,
        and, on the data it was fitted to, its syllables. On other data (new
        recordings) the syllables are drawn from its parameters, as
        :func:`moseq_xr.apply` does.
    ar_iters, ar_kappa
        AR phase of ``stage="both"`` (``ar_kappa`` defaults to ``100 * kappa``).
    latent_dim
        Dimension of the pose latent space (default: the PCA's suggestion,
        90 % variance, at most 10).
    num_states
        Truncation level of the HDP (an upper bound on the number of syllables).
    nlags
        Order of the autoregression.
    alpha, gamma, S_0_scale, K_0_scale
        Transition and AR hyperparameters. Default: ``init``'s values when
        given, else keypoint-MoSeq's (5.7, 1e3, 0.01, 10.0).
    nu_s, sigmasq_loc, jitter, resample_global_noise
        Observation model: noise-scale degrees of freedom, centroid step
        variance, jitter of the pose-latent sampler, and whether to resample
        the per-keypoint variances. Defaults as above (5.0, 0.5, 1e-3).
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
    devices
        Devices to split the segment rows over: ``None`` (every visible
        device of JAX's default backend), a number (the first ``n``) or a list.
        The same seed gives the same result on any number of devices.
    memory_limit
        Bytes (or ``"8GB"``) a device may use; default: 80 % of its free
        memory. When a sweep would need more, rows are sampled in serial
        batches that fit (same results, slower); when even one row per device
        does not fit, the fit stops before starting and says what it needs.
    compile_cache
        Directory keeping the compiled samplers between processes (``True``:
        ``~/.cache/moseq_xr/xla``; default ``None``: none). A later fit of the
        same shapes and options loads them instead of compiling again; see
        :mod:`moseq_xr.fitting.compile_cache`.
    **prepare_options
        Data preparation options, see :class:`moseq_xr.fitting.prepare.PrepareOptions`
        (``anterior``, ``posterior``, ``use_keypoints``, ``fix_heading``,
        ``outlier_removal``, ``added_noise_level``, ...).

    Returns
    -------
    xarray.DataTree
        Root: ``ds`` plus ``syllable`` over ``(recording, individual, time)``
        (-1 where none) and, after the full stage, ``centroid``, ``heading``
        and ``latent_state``; ``/model``: parameters with hyperparameters in
        attrs; ``/trace``: per-iteration log joint, median duration, ...; ``/pca``.
    """
    _check_fit_arguments(stage, num_iters, prepare_options)
    hyper = fit_hyperparameters(
        init,
        dict(alpha=alpha, gamma=gamma, kappa=kappa, S_0_scale=S_0_scale)
        | dict(K_0_scale=K_0_scale, nu_s=nu_s, sigmasq_loc=sigmasq_loc, jitter=jitter),
    )
    alpha, gamma, kappa = hyper["alpha"], hyper["gamma"], hyper["kappa"]
    S_0_scale, K_0_scale, nu_s = hyper["S_0_scale"], hyper["K_0_scale"], hyper["nu_s"]
    sigmasq_loc, jitter = hyper["sigmasq_loc"], hyper["jitter"]
    options, pca, sizes = _init_settings(init, prepare_options, pca)
    prepared = prepare(ds, options, pca)
    num_states, nlags = sizes.get("num_states", num_states), sizes.get("nlags", nlags)
    latent_dim = sizes.get("latent_dim", latent_dim)
    latent_dim = int(
        prepared.pca.attrs["suggested_latent_dim"] if latent_dim is None else latent_dim
    )
    if not 1 <= latent_dim <= prepared.pca.sizes["pc"]:
        raise ValueError(
            f"latent_dim must be between 1 and {prepared.pca.sizes['pc']}, "
            f"got {latent_dim}"
        )
    phases = _phases(stage, num_iters, kappa, ar_iters, ar_kappa)
    config = core.ModelConfig(
        num_states=num_states,
        nlags=nlags,
        latent_dim=latent_dim,
        stage=phases[0]["stage"],
        fix_heading=options.fix_heading,
        parallel_message_passing=parallel_message_passing,
        resample_global_noise=resample_global_noise,
    )
    fit_args = {
        "stage": stage,
        "num_iters": num_iters,
        "kappa": kappa,
        "phases": phases,
        "latent_dim": latent_dim,
        "num_states": num_states,
        "nlags": nlags,
        "alpha": alpha,
        "gamma": gamma,
        "S_0_scale": S_0_scale,
        "K_0_scale": K_0_scale,
        "nu_s": nu_s,
        "sigmasq_loc": sigmasq_loc,
        "jitter": jitter,
        "resample_global_noise": resample_global_noise,
        "seed": seed,
        "precision": precision,
        "parallel_message_passing": parallel_message_passing,
        "init": init is not None,
    }
    store = _store_path(checkpoint, ds)
    with precision_scope(precision), compile_cache_scope(compile_cache):
        dtype = jnp.result_type(float)
        hypers = core.make_hypers(
            config,
            alpha=alpha,
            gamma=gamma,
            kappa=phases[0]["kappa"],
            S_0_scale=S_0_scale,
            K_0_scale=K_0_scale,
            nu_s=nu_s,
            sigmasq_loc=sigmasq_loc,
            jitter=jitter,
            sigmasq_0=hyper["sigmasq_0"],
            nu_sigma=hyper["nu_sigma"],
            dtype=dtype,
        )
        data = _model_data(prepared, dtype)
        key = jax.random.key(seed, impl=KEY_IMPL)
        config = _planned(data, config, devices, memory_limit)
        one_device = config._replace(mesh=None)  # the rows are placed after
        state = _initial_state(
            jax.random.fold_in(key, _INIT_STREAM), prepared, data, hypers, one_device
        )
        if init is not None:
            state = _from_previous_fit(
                init,
                ds,
                prepared,
                state,
                (data, hypers, one_device, jax.random.fold_in(key, _INIT_STREAM - 1)),
            )
        data, state = place(data, state, config.mesh)
        run = _Run(
            data=data,
            hypers=hypers,
            config=config,
            state=state,
            key=key,
            seed=seed,
            segments=segments_index(prepared.segments),
            pca=prepared.pca,
            options=options.to_dict(),
            precision=precision,
            fit_args=fit_args,
        )
        chain = run.run(store, checkpoint_every, progress)
    tree = _results(ds, run, chain)
    if store is not None:
        save_store(tree, store)
    return tree


def _saved_rows(saved: Checkpoint, dtype) -> tuple[core.ModelData, core.ModelState]:
    """Data and state of a checkpoint's real rows (without device padding)."""
    num_rows = len(saved.segments["start"])
    data = core.ModelData(
        **{k: jnp.asarray(v[:num_rows], dtype) for k, v in saved.data.items()}
    )
    state = _state_from_arrays(saved.state, dtype)
    return data, state._replace(latents=_real_rows(state.latents, num_rows))


def resume(
    store: str | Path,
    num_iters: int | None = None,
    *,
    checkpoint_every: int = 10,
    progress: bool = True,
    devices: Any = None,
    memory_limit: int | float | str | None = None,
    compile_cache: bool | str | Path | None = None,
) -> xr.DataTree:
    """Continue a fit from the checkpoint in a project store.

    Parameters
    ----------
    store
        The project store given as ``checkpoint=`` to :func:`fit`.
    num_iters
        New target number of sweeps of the last phase (default: the original).
    checkpoint_every
        Sweeps between checkpoints.
    progress
        Show a progress bar.
    devices, memory_limit, compile_cache
        As for :func:`fit` (chosen again for this machine).

    Returns
    -------
    xarray.DataTree
        As :func:`fit`, identical to what the uninterrupted fit would return.
    """
    store = Path(store)
    saved = read_checkpoint(store)
    meta = saved.meta
    fit_args = dict(meta["fit"])
    if num_iters is not None:
        fit_args["phases"] = [
            *fit_args["phases"][:-1],
            {**fit_args["phases"][-1], "num_iters": int(num_iters)},
        ]
        fit_args["num_iters"] = int(num_iters)
    phase = int(meta["phase"])
    if fit_args["phases"][phase]["num_iters"] < meta["iteration"]:
        raise FitError(
            f"{store}: the checkpoint is at iteration {meta['iteration']}, "
            f"past {fit_args['phases'][phase]['num_iters']}"
        )
    opened = open_store(store)
    ds = opened.to_dataset(inherit=False) if isinstance(opened, xr.DataTree) else opened
    ds = ds.drop_vars([v for v in N.RESULT_VARS if v in ds])
    with precision_scope(meta["precision"]), compile_cache_scope(compile_cache):
        dtype = jnp.result_type(float)
        data, state, config = _placed(
            *_saved_rows(saved, dtype),
            core.ModelConfig(**saved.config),
            devices,
            memory_limit,
        )
        run = _Run(
            data=data,
            hypers=_hypers_from_dict(saved.hypers, dtype),
            config=config,
            state=state,
            key=jax.random.wrap_key_data(
                np.asarray(meta["key"], dtype=np.uint32),
                impl=meta.get("key_impl", KEY_IMPL),
            ),
            seed=meta["seed"],
            segments=saved.segments,
            pca=saved.pca,
            options=meta["prepare"],
            precision=meta["precision"],
            fit_args=fit_args,
            trace={k: list(v) for k, v in saved.trace.items()},
            start=int(meta["iteration"]),
            phase=phase,
        )
        chain = run.run(store, checkpoint_every, progress)
    tree = _results(ds.load(), run, chain)
    save_store(tree, store)
    return tree


__all__ = ["TRACE_COUNTS", "fit", "resume"]
