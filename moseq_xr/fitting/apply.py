"""Applying a fitted model to new data: :func:`apply`.

The same Gibbs sweep as fitting runs with the parameters frozen
(``ModelConfig.resample_params=False``): syllables (and, for a full-stage model,
pose latents, heading, centroid and noise scales) are resampled for the new
data. The fitted labels are kept (the model's parameters are already
relabelled by frequency), so syllable 3 means the same movement in the fit and
in every application. After the last sweep the exact posterior probability of
every syllable is computed per frame (forward-backward given the final pose
trajectories), so users can see where the model is unsure, and frames that no
syllable explains well are flagged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from moseq_xr._provenance import with_provenance
from moseq_xr.core import model as core
from moseq_xr.core.autoregression import ar_best_log_likelihood, ar_log_likelihoods
from moseq_xr.core.hmm import smoother_marginals
from moseq_xr.core.keypoint_slds import init_noise_scales
from moseq_xr.core.keypoints import embed, to_egocentric
from moseq_xr.core.rows import map_rows
from moseq_xr.exceptions import FitError
from moseq_xr.fitting.bridge import Segments, from_segments
from moseq_xr.fitting.compile_cache import CachedJit, compile_cache_scope
from moseq_xr.fitting.loop import run_chain
from moseq_xr.fitting.prepare import PreparedData, PrepareOptions, prepare
from moseq_xr.fitting.results import frame_syllables
from moseq_xr.fitting.sweep import SweepJit
from moseq_xr.schema import names as N


def _model_parts(fitted: xr.DataTree) -> tuple[xr.Dataset, xr.Dataset, dict[str, Any]]:
    if not isinstance(fitted, xr.DataTree) or not {"model", "pca"} <= set(
        fitted.children
    ):
        raise FitError(
            "apply() needs the tree returned by fit (with /model and /pca groups)"
        )
    model = fitted["model"].to_dataset()
    return model, fitted["pca"].to_dataset(), dict(model.attrs)


def projected_latents(Y, centroid, heading, Cd) -> jax.Array:
    """Pose latents ``pinv(C) (y - d)`` of the egocentric, embedded keypoints.

    Parameters
    ----------
    Y
        Keypoints ``(N, T, K, D)``.
    centroid, heading
        ``(N, T, D)`` and ``(N, T)``.
    Cd
        The fitted emission ``((K-1)*D, P+1)``.

    Returns
    -------
    jax.Array
        ``(N, T, P)``, in ``Y``'s dtype.
    """
    v, h = jnp.asarray(centroid, Y.dtype), jnp.asarray(heading, Y.dtype)
    flat = embed(to_egocentric(Y, v, h))
    return (flat - Cd[:, -1]) @ jnp.linalg.pinv(Cd[:, :-1]).T


def _frozen_state(
    key,
    params: core.Params,
    data: core.ModelData,
    initial_Y,
    centroid,
    heading,
    hypers: core.Hypers,
    config: core.ModelConfig,
) -> core.ModelState:
    """Fitted parameters; latents projected with the fitted emission; z sampled.

    ``x`` is projected from ``initial_Y`` (low-confidence keypoints
    interpolated, see :class:`~moseq_xr.fitting.prepare.PreparedData`), as
    when fitting.
    """
    dtype = data.Y.dtype
    v, h = jnp.asarray(centroid, dtype), jnp.asarray(heading, dtype)
    x = projected_latents(jnp.asarray(initial_Y, dtype), v, h, params.Cd)
    key_noise, key_z = jax.random.split(key)
    s = init_noise_scales(
        key_noise, data.Y, x, v, h, params.Cd, data.noise_prior, hypers.obs.nu_s
    )
    zmask = core.state_mask(data.mask, config.nlags)
    z, _ = core.sample_syllables_given_x(
        key_z, params.pi, params.Ab, params.Q, x, zmask, config
    )
    return core.ModelState(params, core.Latents(z=z, x=x, v=v, h=h, s=s))


def _hypers(attrs: dict[str, Any], config: core.ModelConfig, dtype) -> core.Hypers:
    """The model's hyperparameters (as updated by ``update_hyperparameters``)."""
    from moseq_xr.fitting.hyperparameters import model_hyperparameters

    return core.make_hypers(config, **model_hyperparameters(attrs), dtype=dtype)


def fitted_params(model: xr.Dataset, dtype) -> core.Params:
    """The parameters of a fitted tree's ``/model`` group as device arrays."""
    return core.Params(
        **{name: jnp.asarray(model[name].values, dtype) for name in core.Params._fields}
    )


class FrozenChain(NamedTuple):
    """What a chain with frozen parameters needs (see :func:`frozen_chain`)."""

    prepared: PreparedData
    data: core.ModelData
    hypers: core.Hypers
    config: core.ModelConfig
    state: core.ModelState
    key: jax.Array
    attrs: dict[str, Any]
    precision: str


def frozen_chain(
    ds: xr.Dataset,
    fitted: xr.DataTree,
    seed: int = 0,
    precision: str | None = None,
    devices: Any = None,
    memory_limit: int | float | str | None = None,
) -> FrozenChain:
    """Prepare ``ds`` for a fitted model and build the chain's initial state.

    The data are prepared with the model's options and PCA; the state holds
    the fitted parameters, pose latents projected with the fitted emission and
    syllables drawn from the fitted model (:func:`_frozen_state`). Arrays are
    made in ``precision`` (default: the model's); run the chain inside
    ``precision_scope(chain.precision)``. Sweep ``i`` uses ``fold_in(key, i)``.
    Rows are split over ``devices`` and batched to fit ``memory_limit`` as in
    :func:`moseq_xr.fit` (the initial syllable draw is batched the same way);
    the state may hold padding rows after the real ones.
    """
    from moseq_xr.fitting.api import KEY_IMPL, _model_data, _planned, precision_scope
    from moseq_xr.fitting.placement import place

    model, pca, attrs = _model_parts(fitted)
    config = core.ModelConfig(**{**attrs["config"], "resample_params": False})
    prepared = prepare(ds, PrepareOptions(**attrs["prepare"]), pca)
    precision = precision or attrs["precision"]
    with precision_scope(precision):
        dtype = jnp.result_type(float)
        hypers = _hypers(attrs, config, dtype)
        data = _model_data(prepared, dtype)
        key = jax.random.key(seed, impl=KEY_IMPL)
        config = _planned(data, config, devices, memory_limit)
        state = _FROZEN_STATE(
            jax.random.fold_in(key, 2**31 - 1),
            fitted_params(model, dtype),
            data,
            prepared.initial_Y,
            prepared.centroid,
            prepared.heading,
            hypers,
            config=config._replace(mesh=None),  # the rows are placed after
        )
        data, state = place(data, state, config.mesh)
    return FrozenChain(prepared, data, hypers, config, state, key, attrs, precision)


def frame_log_likelihood_reference(
    state: core.ModelState, data: core.ModelData, config: core.ModelConfig
) -> dict[str, float]:
    """Quantiles of the best per-frame AR log-likelihood on the fitted data.

    Stored with the model so that :func:`apply` can flag frames explained worse
    than 99 % of the training frames.
    """
    best = _BEST_LOG_LIKELIHOOD(state, data, config=config)
    zmask = np.asarray(core.state_mask(data.mask, config.nlags)) > 0
    values = np.asarray(best)[zmask]
    return {"q01": float(np.quantile(values, 0.01)), "median": float(np.median(values))}


def _posterior_block(x, zmask, log_pi, Ab, Q, nlags: int) -> tuple[Any, Any]:
    log_lik = ar_log_likelihoods(x, Ab, Q, nlags) * zmask[..., None]
    marginals = jax.vmap(smoother_marginals, in_axes=(None, 0))(log_pi, log_lik)
    return marginals, log_lik.max(-1)


def _posterior(state: core.ModelState, data: core.ModelData, config) -> tuple[Any, Any]:
    """Per-frame syllable marginals and best AR log-likelihood (rows, T-L, ...).

    Row block by row block on the chain's devices (see ``map_rows``).
    """
    params = state.params
    return map_rows(
        lambda *args: _posterior_block(*args, nlags=config.nlags),
        (state.latents.x, core.state_mask(data.mask, config.nlags)),
        (jnp.log(params.pi), params.Ab, params.Q),
        batch_size=config.rows_per_batch,
        mesh=config.mesh,
    )


#: Compiled once per process (and per shape): the frozen-parameter state, sweep
#: and posterior shared by :func:`apply` and the marginals.
_FROZEN_STATE = CachedJit(_frozen_state, static_argnames="config")
FROZEN_STEP = SweepJit()
_POSTERIOR = CachedJit(_posterior, static_argnames="config")


def _best_log_likelihood(state: core.ModelState, data: core.ModelData, config):
    """Best AR log-likelihood of every frame (rows, T-L), without the marginals."""
    params = state.params
    return map_rows(
        lambda x, Ab, Q: ar_best_log_likelihood(x, Ab, Q, config.nlags),
        (state.latents.x,),
        (params.Ab, params.Q),
        batch_size=config.rows_per_batch,
        mesh=config.mesh,
    )


_BEST_LOG_LIKELIHOOD = CachedJit(_best_log_likelihood, static_argnames="config")


def _front_pad(values: np.ndarray, nlags: int, fill: float) -> np.ndarray:
    pad = np.full((values.shape[0], nlags, *values.shape[2:]), fill, values.dtype)
    return np.concatenate([pad, values], axis=1)


def _result_variables(
    state, marginals, best, segments: Segments, config, attrs
) -> dict:
    num_rows = len(segments.start)  # without the devices' padding rows
    state = state._replace(
        latents=jax.tree_util.tree_map(lambda a: a[:num_rows], state.latents)
    )
    marginals, best = marginals[:num_rows], best[:num_rows]
    nlags = config.nlags
    probability = from_segments(
        _front_pad(np.asarray(marginals), nlags, np.nan), segments, (N.SYLLABLE_ID,)
    )
    best_ll = from_segments(_front_pad(np.asarray(best), nlags, np.nan), segments)
    reference = attrs.get("frame_log_likelihood", {})
    variables = {
        "syllable": frame_syllables(np.asarray(state.latents.z), nlags, segments),
        "syllable_probability": probability,
        "max_syllable_probability": probability.max(N.SYLLABLE_ID),
    }
    if reference:
        spread = max(reference["median"] - reference["q01"], 1e-12)
        score = (reference["median"] - best_ll) / spread
        variables["ood_score"] = score
        variables["out_of_distribution"] = (score > 1.0).where(
            np.isfinite(score), False
        )
    if config.stage == "full":
        from moseq_xr.fitting.api import _continuous_results

        variables.update(_continuous_results(state.latents, segments))
    return variables


def apply(
    ds: xr.Dataset,
    fitted: xr.DataTree,
    num_iters: int = 50,
    *,
    seed: int = 0,
    progress: bool = True,
    precision: str | None = None,
    client: Any = None,
    recordings_per_chunk: int | None = None,
    devices: Any = None,
    memory_limit: int | float | str | None = None,
    compile_cache: bool | str | Path | None = None,
) -> xr.Dataset:
    """Label new data with a fitted model (parameters frozen).

    An in-memory Dataset is labelled at once. A Dask-backed one (a store opened
    with :func:`moseq_xr.open`), or any Dataset when ``client`` or
    ``recordings_per_chunk`` is given, is labelled chunk of recordings by chunk
    of recordings (:mod:`moseq_xr.fitting.chunked`): the result variables come
    back as lazy Dask arrays with one task per chunk, so computing them, or
    writing them with :func:`moseq_xr.save` / ``to_zarr``, holds at most one
    chunk per worker thread in memory.

    Parameters
    ----------
    ds
        A pose Dataset with the model's keypoints.
    fitted
        The tree returned by :func:`moseq_xr.fit`.
    num_iters
        Sweeps of the latent variables.
    seed
        Seed of the sweeps.
    progress
        Show a progress bar (chunked: one per chunk as it runs; none on a
        client, whose dashboard or ``distributed.progress`` shows the tasks).
    precision
        Default: the precision the model was fitted in.
    client
        A ``dask.distributed.Client``: the chunk tasks are submitted there at
        once (``client.persist``) and the call returns without waiting; the
        result variables are backed by futures on the cluster (spilled to disk
        by the workers if need be). Without it the chunked result is lazy and
        runs on whatever scheduler computes it, e.g. a default client. Use
        worker processes with one thread each: JAX already uses several cores.
    recordings_per_chunk
        Recordings labelled together. Default: the Dataset's chunking along
        ``recording`` when Dask-backed, else a rough memory estimate (see
        :func:`moseq_xr.fitting.chunked.recording_chunks`).
    devices, memory_limit
        Devices to split the rows over and memory each may use, as for
        :func:`moseq_xr.fit` (in-memory path).
    compile_cache
        Directory keeping the compiled samplers between processes, as for
        :func:`moseq_xr.fit` (chunked: shared by the worker processes).

    Returns
    -------
    xarray.Dataset
        ``ds`` plus ``syllable`` (the fitted labels), ``syllable_probability``
        (over ``syllable_id``), ``max_syllable_probability``, ``ood_score``
        and ``out_of_distribution`` (frames whose best syllable explains them
        worse than 99 % of the training frames), and for a full-stage model
        ``centroid``, ``heading`` and ``latent_state``.

    Notes
    -----
    Chunk ``i`` is labelled exactly as ``apply`` would label its recordings in
    memory with ``seed=chunked.chunk_seed(seed, i)``: results do not depend on
    the order in which chunks run, but they do depend on the chunking. JAX
    compiles once per distinct chunk shape and process, so equally sized
    chunks of similar recordings compile once per worker.
    """
    from moseq_xr.fitting.chunked import apply_chunked, wants_chunks

    if wants_chunks(ds, client, recordings_per_chunk):
        return apply_chunked(
            ds,
            fitted,
            num_iters,
            seed=seed,
            progress=progress,
            precision=precision,
            client=client,
            recordings_per_chunk=recordings_per_chunk,
            compile_cache=compile_cache,
        )
    from moseq_xr.fitting.api import precision_scope

    with compile_cache_scope(compile_cache):
        frozen = frozen_chain(ds, fitted, seed, precision, devices, memory_limit)
    config, data, hypers = frozen.config, frozen.data, frozen.hypers
    with precision_scope(frozen.precision), compile_cache_scope(compile_cache):
        chain = run_chain(
            lambda k, s: FROZEN_STEP(k, s, data, hypers, config=config),
            frozen.state,
            frozen.key,
            0,
            num_iters,
            fps=frozen.prepared.segments.fps,
            progress=progress,
            precision=frozen.precision,
        )
        marginals, best = _POSTERIOR(chain.state, data, config=config)
    variables = _result_variables(
        chain.state, marginals, best, frozen.prepared.segments, config, frozen.attrs
    )
    out = ds.assign(
        {
            name: xr.Variable(da.dims, da.values, da.attrs)
            for name, da in variables.items()
        }
    )
    out.attrs = with_provenance(
        ds.attrs,
        "moseq_xr.apply",
        {"num_iters": num_iters, "seed": seed, "model_stage": config.stage},
    )
    return out
