"""The keypoint-SLDS state, its initialisation and one Gibbs sweep.

Blackjax-style kernel API::

    state = init(key, data, hypers, config, pose_init)
    state, info = step(key, state, data, hypers, config)

``config`` (:class:`ModelConfig`) holds the static choices (shapes, stage,
message-passing mode); changing it recompiles. ``hypers`` (:class:`Hypers`)
holds hyperparameters as arrays so they can be changed, or vmapped over (a
kappa scan), without recompiling. ``state`` carries parameters and latent
variables; ``info`` carries diagnostics and is never fed back.

Stages: ``"ar"`` resamples the sticky-HDP transitions, the AR parameters and
the syllables with the pose trajectories ``x`` fixed at their PCA
initialisation; ``"full"`` adds the pose latents, heading, centroid and noise
scales of the keypoint model.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from moseq_xr.core.autoregression import (
    ARPrior,
    ar_log_likelihood_chosen,
    ar_log_likelihoods,
    ar_log_prior,
    ar_scaled_likelihoods,
    ar_sufficient_stats,
    init_ar_params,
    resample_ar_params,
)
from moseq_xr.core.durations import median_run_length
from moseq_xr.core.hmm import sample_states_parallel, sample_states_scaled
from moseq_xr.core.rows import map_rows, row_keys
from moseq_xr.core.transitions import (
    TransitionHypers,
    init_transitions,
    resample_transitions,
    transitions_log_prior,
)


class ModelConfig(NamedTuple):
    """Static configuration (hashable; part of the compiled step's identity).

    Attributes
    ----------
    num_states
        Truncation level S of the HDP.
    nlags
        Order L of the autoregression.
    latent_dim
        Dimension P of the pose latent space.
    stage
        ``"ar"`` or ``"full"``.
    parallel_message_passing
        Use the associative-scan samplers instead of the serial ones.
    fix_heading
        Keep the heading fixed (head-fixed animals).
    resample_global_noise
        Resample the per-keypoint variances ``sigma^2``.
    resample_params
        Resample the parameters (``False`` when applying a fitted model).
    rows_per_batch
        Segment rows whose syllables and pose latents are sampled at once on
        each device; the rest wait their turn (``None``: all rows). Set by the
        memory plan; results do not depend on it.
    mesh
        One-axis ``jax.sharding.Mesh`` (axis ``"rows"``) to split the rows
        over, or ``None``. Not part of a saved model.
    """

    num_states: int = 100
    nlags: int = 3
    latent_dim: int = 4
    stage: str = "ar"
    parallel_message_passing: bool = False
    fix_heading: bool = False
    resample_global_noise: bool = False
    resample_params: bool = True
    rows_per_batch: int | None = None
    mesh: Any = None

    def to_attrs(self) -> dict[str, Any]:
        """The model-defining fields (without this machine's batching and devices)."""
        return {
            k: v
            for k, v in self._asdict().items()
            if k not in ("rows_per_batch", "mesh")
        }


class ObservationHypers(NamedTuple):
    """Hyperparameters of the keypoint observation model (arrays).

    Attributes
    ----------
    nu_s
        Degrees of freedom of the per-frame noise scales.
    sigmasq_0, nu_sigma
        Scaled-inverse-chi2 prior of the per-keypoint variances.
    sigmasq_loc
        Variance of the centroid random walk per frame.
    jitter
        Variance added to the backward conditionals of the pose latents.
    """

    nu_s: jax.Array
    sigmasq_0: jax.Array
    nu_sigma: jax.Array
    sigmasq_loc: jax.Array
    jitter: jax.Array


class Hypers(NamedTuple):
    """Hyperparameters as arrays: transitions, AR prior, observation model."""

    trans: TransitionHypers
    ar: ARPrior
    obs: ObservationHypers


class Params(NamedTuple):
    """Model parameters.

    Attributes
    ----------
    betas
        Global state weights, ``(S,)``.
    pi
        Transition matrix, ``(S, S)``.
    Ab
        AR matrices with bias column, ``(S, P, P*L + 1)``.
    Q
        AR noise covariances, ``(S, P, P)``.
    Cd
        Emission matrix with offset column, ``((K-1)*D, P + 1)``.
    sigmasq
        Per-keypoint noise scale, ``(K,)``.
    """

    betas: jax.Array
    pi: jax.Array
    Ab: jax.Array
    Q: jax.Array
    Cd: jax.Array
    sigmasq: jax.Array


class Latents(NamedTuple):
    """Latent variables of every segment row.

    Attributes
    ----------
    z
        Syllables of frames L..T-1, ``(N, T - L)`` int32.
    x
        Pose latent trajectories, ``(N, T, P)``.
    v
        Centroids, ``(N, T, D)``.
    h
        Headings in radians, ``(N, T)``.
    s
        Per-frame, per-keypoint noise scales, ``(N, T, K)``.
    """

    z: jax.Array
    x: jax.Array
    v: jax.Array
    h: jax.Array
    s: jax.Array


class ModelState(NamedTuple):
    """Everything the next sweep needs."""

    params: Params
    latents: Latents


class ModelData(NamedTuple):
    """Observed data of every segment row.

    Attributes
    ----------
    Y
        Keypoints, ``(N, T, K, D)``.
    mask
        1 on real frames, 0 on padding, ``(N, T)``.
    noise_prior
        Prior scale s0 of the per-keypoint noise, ``(N, T, K)`` (from confidences).
    """

    Y: jax.Array
    mask: jax.Array
    noise_prior: jax.Array


class StepInfo(NamedTuple):
    """Diagnostics of one sweep (scalars).

    ``log_joint = log_prior + log_prob_states + log_likelihood`` where the
    likelihood term is that of the pose trajectories under the AR dynamics
    (AR stage) and the prior covers the transition and AR parameters.
    """

    log_joint: jax.Array
    log_likelihood: jax.Array
    log_prob_states: jax.Array
    log_prior: jax.Array
    median_duration: jax.Array
    num_states_used: jax.Array
    finite: jax.Array


def state_mask(mask: jax.Array, nlags: int) -> jax.Array:
    """Mask of the frames that have a syllable (frames L..T-1)."""
    return mask[:, nlags:]


def _syllables_block(keys, x, zmask, log_pi, Ab, Q, config: ModelConfig):
    """Syllables of a block of rows and their AR log-likelihood per row."""
    if config.parallel_message_passing:
        log_lik = ar_log_likelihoods(x, Ab, Q, config.nlags) * zmask[..., None]
        sampler = jax.vmap(sample_states_parallel, in_axes=(0, None, 0))
        z, _ = sampler(keys, log_pi, log_lik)
        chosen = jnp.take_along_axis(log_lik, z[..., None], axis=-1)[..., 0]
        return z, chosen.sum(-1)
    # The same draws as vmap(sample_states_serial), walked time-major over
    # scaled likelihoods: one (frames, rows, S) array in all.
    likelihoods, peaks = ar_scaled_likelihoods(x, Ab, Q, zmask, config.nlags)
    z, _, chosen = sample_states_scaled(keys, log_pi, likelihoods)
    return z, chosen + peaks.sum(0)


def sample_syllables_given_x(
    key: jax.Array,
    pi: jax.Array,
    Ab: jax.Array,
    Q: jax.Array,
    x: jax.Array,
    zmask: jax.Array,
    config: ModelConfig,
) -> tuple[jax.Array, jax.Array]:
    """Draw ``z ~ p(z | x, pi, Ab, Q)`` row block by row block.

    The ``(frames, S)`` log-likelihoods only ever exist for
    ``config.rows_per_batch`` rows per device at a time.

    Returns
    -------
    tuple
        ``(z (N, T - L) int32, log p(x | z))`` (the AR log-likelihood of the
        drawn sequence, summed over real frames).
    """
    z, chosen = map_rows(
        lambda *args: _syllables_block(*args, config=config),
        (row_keys(key, x.shape[0]), x, zmask),
        (jnp.log(pi), Ab, Q),
        batch_size=config.rows_per_batch,
        mesh=config.mesh,
    )
    return z, chosen.sum()


def _log_prob_states(z: jax.Array, pi: jax.Array, zmask: jax.Array) -> jax.Array:
    log_pi = jnp.log(pi)
    return (log_pi[z[:, :-1], z[:, 1:]] * zmask[:, 1:]).sum()


def _step_info(
    state: ModelState,
    zmask: jax.Array,
    hypers: Hypers,
    log_likelihood: jax.Array,
    median_duration: jax.Array,
) -> StepInfo:
    """Diagnostics shared by both stages, given the stage's likelihood term."""
    params, z = state.params, state.latents.z
    log_states = _log_prob_states(z, params.pi, zmask)
    log_prior = transitions_log_prior(
        params.betas, params.pi, hypers.trans
    ) + ar_log_prior(params.Ab, params.Q, hypers.ar)
    leaves = jax.tree_util.tree_leaves(state)
    finite = jnp.stack([jnp.all(jnp.isfinite(leaf)) for leaf in leaves])
    used = (
        jnp.bincount(z.ravel(), weights=zmask.ravel(), length=params.betas.shape[0]) > 0
    )
    return StepInfo(
        log_joint=log_prior + log_states + log_likelihood,
        log_likelihood=log_likelihood,
        log_prob_states=log_states,
        log_prior=log_prior,
        median_duration=median_duration,
        num_states_used=used.sum(),
        finite=finite,
    )


def ar_params_part(
    key: jax.Array,
    state: ModelState,
    data: ModelData,
    hypers: Hypers,
    config: ModelConfig,
) -> ModelState:
    """First part of :func:`ar_step`: ``(beta, pi)``, then ``(Ab, Q)``."""
    key_trans, key_ar, _ = jax.random.split(key, 3)
    params = _resample_discrete_params(key_trans, key_ar, state, data, hypers, config)
    return state._replace(params=params)


def ar_syllable_part(
    key: jax.Array,
    state: ModelState,
    data: ModelData,
    hypers: Hypers,
    config: ModelConfig,
) -> tuple[ModelState, StepInfo]:
    """Last part of :func:`ar_step`: ``z`` given ``x``, then the info."""
    _, _, key_z = jax.random.split(key, 3)
    params, latents = state.params, state.latents
    zmask = state_mask(data.mask, config.nlags)
    z, log_lik = sample_syllables_given_x(
        key_z, params.pi, params.Ab, params.Q, latents.x, zmask, config
    )
    new_state = ModelState(params, latents._replace(z=z))
    return new_state, _step_info(
        new_state, zmask, hypers, log_lik, median_run_length(z, zmask)
    )


def ar_step(
    key: jax.Array,
    state: ModelState,
    data: ModelData,
    hypers: Hypers,
    config: ModelConfig,
) -> tuple[ModelState, StepInfo]:
    """One sweep of the AR stage: ``(beta, pi)``, then ``(Ab, Q)``, then ``z``.

    :func:`ar_params_part` then :func:`ar_syllable_part`. With
    ``config.resample_params=False`` (applying a fitted model) only ``z`` is
    resampled.
    """
    state = ar_params_part(key, state, data, hypers, config)
    return ar_syllable_part(key, state, data, hypers, config)


def _resample_discrete_params(key_trans, key_ar, state, data, hypers, config) -> Params:
    """``(beta, pi)`` then ``(Ab, Q)`` given the current ``z`` and ``x``.

    Returns the parameters unchanged when ``config.resample_params`` is false.
    """
    params, latents = state.params, state.latents
    if not config.resample_params:
        return params
    zmask = state_mask(data.mask, config.nlags)
    betas, pi = resample_transitions(
        key_trans, latents.z, zmask, params.betas, hypers.trans
    )
    stats = ar_sufficient_stats(
        latents.x, latents.z, zmask, config.num_states, config.nlags
    )
    Ab, Q = resample_ar_params(key_ar, stats, hypers.ar)
    return params._replace(betas=betas, pi=pi, Ab=Ab, Q=Q)


def _rowwise(fn, key, rows: tuple, shared: tuple, config: ModelConfig) -> jax.Array:
    """``fn(key, *rows, *shared)`` for every row with its own key (see ``row_keys``).

    ``fn`` works on a batch of rows; it is given one row at a time (a batch of
    one) so that a row's draws depend only on its key, never on how many
    rows, batches or devices there are.
    """

    def one_row(row_key, *args):
        singles = [a[None] for a in args[: len(rows)]]
        return fn(row_key, *singles, *args[len(rows) :])[0]

    def block(keys, *args):
        row_part, shared_part = args[: len(rows)], args[len(rows) :]
        return jax.vmap(lambda k, *r: one_row(k, *r, *shared_part))(keys, *row_part)

    num_rows = rows[0].shape[0]
    return map_rows(
        block,
        (row_keys(key, num_rows), *rows),
        shared,
        batch_size=config.rows_per_batch,
        mesh=config.mesh,
    )


def _resample_pose_latents(
    key: jax.Array,
    params: Params,
    latents: Latents,
    data: ModelData,
    hypers: Hypers,
    config: ModelConfig,
) -> jax.Array:
    """``x`` given the syllables, row by row with per-row keys (Kalman sampler)."""
    from moseq_xr.core import keypoint_slds as kp

    rows = (row_keys(key, data.Y.shape[0]), data.Y, latents.v, latents.h, latents.s)
    return map_rows(
        lambda *args: kp.resample_pose_latents(
            *args, parallel=config.parallel_message_passing
        ),
        (*rows, latents.z, data.mask),
        (params.sigmasq, params.Cd, params.Ab, params.Q, hypers.obs.jitter),
        batch_size=config.rows_per_batch,
        mesh=config.mesh,
    )


def _resample_observation_latents(
    keys: jax.Array,
    params: Params,
    latents: Latents,
    data: ModelData,
    hypers: Hypers,
    config: ModelConfig,
) -> Latents:
    """``h`` (unless fixed), then ``v`` and ``s`` given ``x``, with keys ``keys[:3]``.

    Every conditional runs row by row with per-row keys, in the memory plan's
    batches and on the fit's devices.
    """
    from moseq_xr.core import keypoint_slds as kp

    obs, Y, mask, x = hypers.obs, data.Y, data.mask, latents.x
    shared = (params.sigmasq, params.Cd)
    h = latents.h
    if not config.fix_heading:
        h = _rowwise(
            lambda k, Y, v, x, s, m, sq, Cd: kp.resample_heading(
                k, Y, v, x, s, sq, Cd, m
            ),
            keys[0],
            (Y, latents.v, x, latents.s, mask),
            shared,
            config,
        )
    v = _rowwise(
        lambda k, Y, x, h, s, m, sq, Cd, loc: kp.resample_centroid(
            k, Y, x, h, s, sq, Cd, m, loc, config.parallel_message_passing
        ),
        keys[1],
        (Y, x, h, latents.s, mask),
        (*shared, obs.sigmasq_loc),
        config,
    )
    s = _rowwise(
        lambda k, Y, x, v, h, prior, sq, Cd, nu: kp.resample_noise_scales(
            k, Y, x, v, h, sq, Cd, prior, nu
        ),
        keys[2],
        (Y, x, v, h, data.noise_prior),
        (*shared, obs.nu_s),
        config,
    )
    return latents._replace(h=h, v=v, s=s)


def _full_info(
    state: ModelState,
    data: ModelData,
    hypers: Hypers,
    config: ModelConfig,
    median_z: jax.Array,
) -> StepInfo:
    from moseq_xr.core import keypoint_slds as kp

    params, latents = state.params, state.latents
    zmask = state_mask(data.mask, config.nlags)
    ar_term = (
        ar_log_likelihood_chosen(
            latents.x, latents.z, params.Ab, params.Q, config.nlags
        )
        * zmask
    ).sum()
    obs = hypers.obs
    keypoint_term = kp.log_likelihood_keypoints(
        data.Y,
        latents.x,
        latents.v,
        latents.h,
        latents.s,
        params.sigmasq,
        params.Cd,
        data.mask,
    )
    noise_term = kp.log_prior_noise_scales(
        latents.s, data.noise_prior, obs.nu_s, data.mask
    )
    centroid_term = kp.log_likelihood_centroid(latents.v, data.mask, obs.sigmasq_loc)
    log_lik = ar_term + keypoint_term + noise_term + centroid_term
    return _step_info(state, zmask, hypers, log_lik, median_z)


def full_discrete_part(
    key: jax.Array,
    state: ModelState,
    data: ModelData,
    hypers: Hypers,
    config: ModelConfig,
) -> ModelState:
    """First part of :func:`full_step`: ``(beta, pi)``, ``(Ab, Q)``, ``z``, ``sigma^2``.

    Uses the first three of the sweep's seven keys; this, :func:`full_latent_part`
    and :func:`full_observation_part` in turn with the same ``key`` are
    :func:`full_step`.
    """
    from moseq_xr.core import keypoint_slds as kp

    keys = jax.random.split(key, 7)
    params = _resample_discrete_params(
        *jax.random.split(keys[0]), state, data, hypers, config
    )
    latents = state.latents
    zmask = state_mask(data.mask, config.nlags)
    z, _ = sample_syllables_given_x(
        keys[1], params.pi, params.Ab, params.Q, latents.x, zmask, config
    )
    latents = latents._replace(z=z)
    if config.resample_global_noise and config.resample_params:
        sigmasq = kp.resample_sigmasq(
            keys[2],
            data.Y,
            latents.x,
            latents.v,
            latents.h,
            latents.s,
            params.Cd,
            data.mask,
            hypers.obs.sigmasq_0,
            hypers.obs.nu_sigma,
        )
        params = params._replace(sigmasq=sigmasq)
    return ModelState(params, latents)


def full_latent_part(
    key: jax.Array,
    state: ModelState,
    data: ModelData,
    hypers: Hypers,
    config: ModelConfig,
) -> ModelState:
    """Second part of :func:`full_step`: the pose latents ``x`` (the sweep's key 3)."""
    keys = jax.random.split(key, 7)
    x = _resample_pose_latents(
        keys[3], state.params, state.latents, data, hypers, config
    )
    return state._replace(latents=state.latents._replace(x=x))


def full_observation_part(
    key: jax.Array,
    state: ModelState,
    data: ModelData,
    hypers: Hypers,
    config: ModelConfig,
) -> tuple[ModelState, StepInfo]:
    """Last part of :func:`full_step`: ``h``, ``v``, ``s`` (keys 4-6), then the info."""
    keys = jax.random.split(key, 7)
    latents = _resample_observation_latents(
        keys[4:], state.params, state.latents, data, hypers, config
    )
    new_state = state._replace(latents=latents)
    zmask = state_mask(data.mask, config.nlags)
    return new_state, _full_info(
        new_state, data, hypers, config, median_run_length(latents.z, zmask)
    )


def full_step(
    key: jax.Array,
    state: ModelState,
    data: ModelData,
    hypers: Hypers,
    config: ModelConfig,
) -> tuple[ModelState, StepInfo]:
    """One sweep of the keypoint-SLDS, in the reference's order.

    ``(beta, pi)``, ``(Ab, Q)``, ``z``, [``sigma^2``], ``x``, ``h``, ``v``, ``s``:
    :func:`full_discrete_part`, :func:`full_latent_part`, then
    :func:`full_observation_part`.
    """
    state = full_discrete_part(key, state, data, hypers, config)
    state = full_latent_part(key, state, data, hypers, config)
    return full_observation_part(key, state, data, hypers, config)


def step(
    key: jax.Array,
    state: ModelState,
    data: ModelData,
    hypers: Hypers,
    config: ModelConfig,
) -> tuple[ModelState, StepInfo]:
    """One Gibbs sweep of the stage named in ``config`` (``"ar"`` or ``"full"``)."""
    *first, last = step_parts(config.stage)
    for part in first:
        state = part(key, state, data, hypers, config)
    return last(key, state, data, hypers, config)


#: Stages with a Gibbs sweep of their own (``"both"`` runs one, then the other).
SWEEP_STAGES = ("ar", "full")


def step_parts(stage: str) -> tuple[Callable[..., Any], ...]:
    """The sweep of ``stage`` as parts ``part(key, state, data, hypers, config)``.

    Every part but the last returns the state; the last returns ``(state,
    info)``. Running them in turn with the sweep's key is :func:`step`; a
    caller may compile them separately (and concurrently), which is faster
    than compiling one large program on a multi-core CPU.
    """
    if stage == "ar":
        return (ar_params_part, ar_syllable_part)
    if stage == "full":
        return (full_discrete_part, full_latent_part, full_observation_part)
    raise ValueError(f"unknown stage {stage!r}")


def init_discrete(
    key: jax.Array,
    latents: Latents,
    mask: jax.Array,
    hypers: Hypers,
    config: ModelConfig,
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array, jax.Array]:
    """Prior draws of ``(beta, pi, Ab, Q)`` and ``z`` sampled given ``x``."""
    key_trans, key_ar, key_z = jax.random.split(key, 3)
    dtype = latents.x.dtype
    betas, pi = init_transitions(key_trans, config.num_states, hypers.trans, dtype)
    Ab, Q = init_ar_params(key_ar, config.num_states, hypers.ar)
    zmask = state_mask(mask, config.nlags)
    z, _ = sample_syllables_given_x(key_z, pi, Ab, Q, latents.x, zmask, config)
    return betas, pi, Ab, Q, z


def init(
    key: jax.Array,
    data: ModelData,
    hypers: Hypers,
    config: ModelConfig,
    pose: tuple[jax.Array, jax.Array, jax.Array, jax.Array],
) -> ModelState:
    """Initial state from the PCA-based pose initialisation.

    Parameters
    ----------
    key
        PRNG key.
    data, hypers, config
        See the module docstring.
    pose
        ``(Cd, x, v, h)`` from :func:`moseq_xr.core.keypoints.init_pose`.

    Returns
    -------
    ModelState
        Transition and AR parameters drawn from the prior, syllables sampled
        given ``x``, ``sigma^2 = 1`` and noise scales drawn from their
        conditional given that pose (reference §3.5).
    """
    from moseq_xr.core.keypoint_slds import init_noise_scales

    Cd, x, v, h = pose
    key_discrete, key_noise = jax.random.split(key)
    num_keypoints = data.Y.shape[2]
    s = init_noise_scales(
        key_noise,
        data.Y,
        x,
        v,
        h,
        Cd,
        data.noise_prior.astype(x.dtype),
        hypers.obs.nu_s,
    )
    latents = Latents(
        z=jnp.zeros((x.shape[0], x.shape[1] - config.nlags), jnp.int32),
        x=x,
        v=v,
        h=h,
        s=s,
    )
    betas, pi, Ab, Q, z = init_discrete(
        key_discrete, latents, data.mask, hypers, config
    )
    params = Params(betas, pi, Ab, Q, Cd, jnp.ones((num_keypoints,), x.dtype))
    return ModelState(params, latents._replace(z=z))


def make_hypers(
    config: ModelConfig,
    *,
    alpha: float = 5.7,
    gamma: float = 1e3,
    kappa: float = 1e6,
    S_0_scale: float = 0.01,
    K_0_scale: float = 10.0,
    nu_s: float = 5.0,
    sigmasq_0: float = 0.1,
    nu_sigma: float = 1e5,
    sigmasq_loc: float = 0.5,
    jitter: float = 1e-3,
    dtype=None,
) -> Hypers:
    """Hyperparameters with the keypoint-MoSeq defaults."""
    from moseq_xr.core.autoregression import make_ar_prior

    dtype = dtype or jnp.result_type(float)
    trans = TransitionHypers(*(jnp.asarray(v, dtype) for v in (alpha, gamma, kappa)))
    ar = make_ar_prior(config.latent_dim, config.nlags, S_0_scale, K_0_scale, dtype)
    obs = ObservationHypers(
        *(
            jnp.asarray(v, dtype)
            for v in (nu_s, sigmasq_0, nu_sigma, sigmasq_loc, jitter)
        )
    )
    return Hypers(trans=trans, ar=ar, obs=obs)
