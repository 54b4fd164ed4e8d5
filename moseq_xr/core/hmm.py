"""Discrete-state message passing: filtering, smoothing and sampling.

All functions take one sequence (``log_likelihoods`` of shape ``(T, S)``) and a
log transition matrix; use ``jax.vmap`` over sequences. Frames whose
log-likelihood is 0 for every state are uninformative (that is how padding is
handled: the caller multiplies log-likelihoods by the frame mask). The initial
state distribution is uniform.

Two samplers give draws from the same posterior ``p(z | x)``:

* :func:`sample_states_serial` — forward filtering in probability space with
  per-frame rescaling, then backward sampling; O(T S^2) work, T sequential steps.
* :func:`sample_states_parallel` — the temporal parallelisation of
  Hassan, Särkkä & García-Fernández (2021): prefix products of the S x S
  forward operators by associative scan, then backward sampling by composing,
  again by associative scan, the maps ``z_{t+1} -> z_t`` drawn for every
  possible next state. O(T S^3) work, O(log T) depth: worth it on accelerators
  for small S or long sequences, not on a CPU.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp


def _scaled_likelihoods(log_likelihoods: jax.Array) -> tuple[jax.Array, jax.Array]:
    peak = log_likelihoods.max(axis=-1, keepdims=True)
    return jnp.exp(log_likelihoods - peak), peak[..., 0]


def forward_filter(
    log_pi: jax.Array, log_likelihoods: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Filtered state probabilities ``p(z_t | x_{0:t})`` and the log normaliser.

    Parameters
    ----------
    log_pi
        Log transition matrix, shape ``(S, S)`` (rows: from).
    log_likelihoods
        Shape ``(T, S)``.

    Returns
    -------
    tuple
        ``(filtered (T, S), log p(x_{0:T-1}))``.
    """
    transition = jnp.exp(log_pi)
    likelihoods, peaks = _scaled_likelihoods(log_likelihoods)
    num_states = log_pi.shape[0]
    first = likelihoods[0] / num_states
    first_norm = first.sum()

    def step(carry, likelihood):
        previous, log_norm = carry
        unnormalised = (previous @ transition) * likelihood
        norm = unnormalised.sum()
        filtered = unnormalised / norm
        return (filtered, log_norm + jnp.log(norm)), filtered

    initial = (first / first_norm, jnp.log(first_norm))
    (_, log_norm), filtered = jax.lax.scan(step, initial, likelihoods[1:])
    filtered = jnp.concatenate([initial[0][None], filtered])
    return filtered, log_norm + peaks.sum()


def _last_positive(weights: jax.Array) -> jax.Array:
    """Index of the last positive entry along the last axis (0 if none)."""
    positions = jnp.arange(weights.shape[-1])
    return jnp.max(jnp.where(weights > 0, positions, 0), axis=-1)


def _inverse_cdf(weights: jax.Array, threshold: jax.Array) -> jax.Array:
    """First index whose cumulative weight reaches ``threshold``.

    Never an index of zero weight past the last positive one (rounding).
    """
    cumulative = jnp.cumsum(weights, axis=-1)
    count = (cumulative < threshold[..., None]).sum(axis=-1)
    return jnp.minimum(count, _last_positive(weights))


def _categorical_from_uniform(probs: jax.Array, uniform: jax.Array) -> jax.Array:
    """Inverse-CDF draw from unnormalised ``probs`` (..., S) using one uniform number.

    Two-level search: the block of ``ceil(sqrt(S))`` states holding the draw
    is found from the block totals, then the state inside that block, so a
    draw costs O(sqrt(S)) sequential sums instead of one cumulative sum over
    all S states (3-4x faster backward sampling on CPUs). ``uniform`` is a
    scalar or has a trailing axis of size 1.
    """
    num_states = probs.shape[-1]
    block = max(1, math.ceil(math.sqrt(num_states)))
    num_blocks = -(-num_states // block)
    padded = jnp.pad(
        probs, [(0, 0)] * (probs.ndim - 1) + [(0, num_blocks * block - num_states)]
    )
    blocks = padded.reshape(*probs.shape[:-1], num_blocks, block)
    totals = blocks.sum(-1)
    cumulative = jnp.cumsum(totals, axis=-1)
    threshold = (
        jnp.reshape(uniform, jnp.shape(uniform)[: probs.ndim - 1]) * cumulative[..., -1]
    )
    chosen = _inverse_cdf(totals, threshold)
    before = jnp.take_along_axis(cumulative - totals, chosen[..., None], axis=-1)[
        ..., 0
    ]
    inside = jnp.take_along_axis(blocks, chosen[..., None, None], axis=-2)[..., 0, :]
    state = chosen * block + _inverse_cdf(inside, threshold - before)
    return jnp.minimum(state, num_states - 1)


def sample_states_serial(
    key: jax.Array, log_pi: jax.Array, log_likelihoods: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Draw ``z ~ p(z | x)`` by forward filtering, backward sampling.

    Returns
    -------
    tuple
        ``(z (T,) int32, log p(x))``.
    """
    filtered, log_norm = forward_filter(log_pi, log_likelihoods)
    transition = jnp.exp(log_pi)
    uniforms = jax.random.uniform(key, (log_likelihoods.shape[0],), filtered.dtype)
    last = _categorical_from_uniform(filtered[-1], uniforms[-1])

    def step(next_state, inputs):
        probs, uniform = inputs
        state = _categorical_from_uniform(probs * transition[:, next_state], uniform)
        return state, state

    _, states = jax.lax.scan(step, last, (filtered[:-1], uniforms[:-1]), reverse=True)
    return jnp.concatenate([states, last[None]]).astype(jnp.int32), log_norm


def smoother_marginals(log_pi: jax.Array, log_likelihoods: jax.Array) -> jax.Array:
    """Exact posterior marginals ``p(z_t | x)`` (forward-backward), shape ``(T, S)``."""
    filtered, _ = forward_filter(log_pi, log_likelihoods)
    transition = jnp.exp(log_pi)
    likelihoods, _ = _scaled_likelihoods(log_likelihoods)

    def step(backward, inputs):
        likelihood = inputs
        message = transition @ (backward * likelihood)
        message = message / message.sum()
        return message, message

    last = jnp.ones_like(filtered[-1])
    _, backward = jax.lax.scan(step, last, likelihoods[1:], reverse=True)
    backward = jnp.concatenate([backward, last[None]])
    marginals = filtered * backward
    return marginals / marginals.sum(axis=-1, keepdims=True)


def _normalised_product(left: jax.Array, right: jax.Array) -> jax.Array:
    product = left @ right
    return product / product.sum(axis=(-2, -1), keepdims=True)


def parallel_filter(
    log_pi: jax.Array, log_likelihoods: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """:func:`forward_filter` by associative scan over the forward operators."""
    transition = jnp.exp(log_pi)
    likelihoods, peaks = _scaled_likelihoods(log_likelihoods)
    num_states = log_pi.shape[0]
    first = jnp.tile(likelihoods[0] / num_states, (num_states, 1))  # every row: a_0
    operators = transition[None] * likelihoods[1:, None, :]
    elements = jnp.concatenate([first[None] / first.sum(), operators])
    norms = elements.sum(axis=(-2, -1), keepdims=True)
    prefix = jax.lax.associative_scan(_normalised_product, elements / norms)
    filtered = prefix[:, 0, :] / prefix[:, 0, :].sum(axis=-1, keepdims=True)
    predicted = jnp.concatenate(
        [filtered[:1] * 0 + 1.0 / num_states, filtered[:-1] @ transition]
    )
    step_norms = (predicted * likelihoods).sum(axis=-1)
    return filtered, jnp.log(step_norms).sum() + peaks.sum()


def sample_states_parallel(
    key: jax.Array, log_pi: jax.Array, log_likelihoods: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Same distribution as :func:`sample_states_serial`, by parallel scans."""
    filtered, log_norm = parallel_filter(log_pi, log_likelihoods)
    transition = jnp.exp(log_pi)
    num_frames, num_states = filtered.shape
    key_last, key_maps = jax.random.split(key)
    last = _categorical_from_uniform(
        filtered[-1], jax.random.uniform(key_last, (), filtered.dtype)
    )
    # maps[t, k] = a draw of z_t given z_{t+1} = k
    conditional = filtered[:-1, None, :] * transition.T[None, :, :]
    uniforms = jax.random.uniform(
        key_maps, (num_frames - 1, num_states), filtered.dtype
    )
    maps = _categorical_from_uniform(conditional, uniforms[..., None])
    maps = jnp.concatenate([maps, jnp.full((1, num_states), last, maps.dtype)])

    def compose(later, earlier):
        # apply `later` (closer to the end) first, then `earlier`
        return jnp.take_along_axis(earlier, later, axis=-1)

    composed = jax.lax.associative_scan(compose, maps, reverse=True)
    return composed[:, 0].astype(jnp.int32), log_norm


def _forward_filter_in_place(
    transition: jax.Array, likelihoods: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """:func:`forward_filter` of all rows at once on scaled likelihoods ``(T, N, S)``.

    One ``(N, S) @ (S, S)`` product per frame for all rows together; the first
    frame is handled inside the loop (uniform initial distribution). Frame
    ``t``'s filtered probabilities overwrite its likelihoods, which nothing
    reads again, so no second ``(T, N, S)`` array is made. The arithmetic is
    that of ``forward_filter``. Returns the filtered probabilities and the log
    normaliser of the scaled likelihoods ``(N,)``.
    """
    num_states = transition.shape[0]

    def step(frame, carry):
        previous, log_norm, buffer = carry
        likelihood = jax.lax.dynamic_index_in_dim(buffer, frame, keepdims=False)
        unnormalised = jnp.where(
            frame == 0, likelihood / num_states, (previous @ transition) * likelihood
        )
        norm = unnormalised.sum(-1)
        filtered = unnormalised / norm[:, None]
        buffer = jax.lax.dynamic_update_index_in_dim(buffer, filtered, frame, 0)
        return filtered, log_norm + jnp.log(norm), buffer

    start = jnp.zeros(likelihoods.shape[1:], likelihoods.dtype)
    initial = (start, jnp.zeros(likelihoods.shape[1], likelihoods.dtype), likelihoods)
    _, log_norm, filtered = jax.lax.fori_loop(0, likelihoods.shape[0], step, initial)
    return filtered, log_norm


def sample_states_scaled(
    keys: jax.Array, log_pi: jax.Array, likelihoods: jax.Array
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Forward filtering, backward sampling of all rows from scaled likelihoods.

    Parameters
    ----------
    keys
        One key per row, ``(N,)``; row ``n`` draws exactly what
        ``sample_states_serial(keys[n], ...)`` draws.
    log_pi
        Log transition matrix, ``(S, S)``.
    likelihoods
        Time-major likelihoods ``(T, N, S)``, each frame scaled by a constant
        (e.g. ``exp(log_lik - max_j log_lik)``). Consumed: the filter
        overwrites them where XLA can (pass a copy to keep them).

    Returns
    -------
    tuple
        ``z (N, T) int32``; the log normaliser of the scaled likelihoods
        ``(N,)``; and the log of the drawn sequence's scaled likelihoods,
        ``sum_t log likelihoods[t, n, z[n, t]]`` ``(N,)``.

    Notes
    -----
    Only one ``(T, N, S)`` array exists. The backward pass starts from a
    virtual state ``S`` whose transition column is all ones, so the last
    frame is drawn from its filtered probabilities inside the same scan
    (multiplying by 1 is exact). The drawn sequence's likelihood comes from
    the filter's own quantities: with ``f_t`` the filtered probabilities,
    ``c_t`` the normalisers and ``w_t = f_t * P[:, z_{t+1}]``,
    ``log l_t(z_t) = log f_t(z_t) + log c_t - log sum w_{t-1}`` (and
    ``+ log S`` at ``t = 0``).
    """
    transition = jnp.exp(log_pi)
    num_frames, num_rows, num_states = likelihoods.shape
    filtered, log_norm = _forward_filter_in_place(transition, likelihoods)
    uniforms = jax.vmap(
        lambda key: jax.random.uniform(key, (num_frames,), filtered.dtype)
    )(keys).T
    columns = jnp.concatenate(
        [transition, jnp.ones((num_states, 1), transition.dtype)], axis=1
    ).T

    def step(carry, inputs):
        next_state, log_ratio = carry
        probs, uniform = inputs
        weights = probs * columns[next_state]
        state = _categorical_from_uniform(weights, uniform[:, None]).astype(jnp.int32)
        drawn = jnp.take_along_axis(probs, state[:, None], axis=-1)[:, 0]
        log_ratio = log_ratio + jnp.log(drawn) - jnp.log(weights.sum(-1))
        return (state, log_ratio), state

    virtual = jnp.full((num_rows,), num_states, jnp.int32)
    start = (virtual, jnp.zeros((num_rows,), filtered.dtype))
    (_, log_ratio), states = jax.lax.scan(
        step, start, (filtered, uniforms), reverse=True
    )
    chosen = log_norm + log_ratio + jnp.log(jnp.asarray(num_states, log_norm.dtype))
    return states.T.astype(jnp.int32), log_norm, chosen


def sample_states_rows(
    keys: jax.Array, log_pi: jax.Array, log_likelihoods: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """:func:`sample_states_serial` for every row at once (rows in lockstep).

    Row ``n`` uses ``keys[n]`` exactly as ``sample_states_serial`` would, so
    the draws are the same as ``vmap(sample_states_serial)``; the frames are
    walked once for all rows (time-major), which is faster on CPUs. See
    :func:`sample_states_scaled` for the form the Gibbs sampler uses.

    Parameters
    ----------
    keys
        One key per row, ``(N,)``.
    log_pi
        Log transition matrix, ``(S, S)``.
    log_likelihoods
        ``(N, T, S)``.

    Returns
    -------
    tuple
        ``(z (N, T) int32, log p(x) (N,))``.
    """
    likelihoods, peaks = _scaled_likelihoods(log_likelihoods)
    time_major = jnp.swapaxes(likelihoods, 0, 1)
    z, log_norm, _ = sample_states_scaled(keys, log_pi, time_major)
    return z, log_norm + peaks.sum(-1)
