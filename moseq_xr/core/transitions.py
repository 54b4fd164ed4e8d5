r"""Sticky HDP-HMM transitions in the weak-limit approximation.

Generative model (S states)::

    beta        ~ Dir(gamma / S, ..., gamma / S)
    pi_i | beta ~ Dir(alpha * beta + kappa * e_i)
    z_{t+1}     ~ Cat(pi_{z_t}),  z_0 uniform

The Gibbs update draws the Chinese-restaurant-franchise table counts exactly,
on the device: each counted transition ``i -> j`` that is the k-th of its kind
opens a new table with probability ``rho_ij / (k + rho_ij)``,
``rho_ij = alpha beta_j + kappa [i == j]``. Transitions are sorted by cell so
that every transition knows its rank ``k`` without a loop over counts; the cost
is one sort of the frames per sweep. The sticky override correction (Fox et al.
2011, supplement), ``m_jj ~ Binomial(m_jj, alpha beta_j / (alpha beta_j + kappa))``,
is applied as the equivalent thinning of each opened diagonal table, so no
binomial sampler is needed.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from moseq_xr.core.distributions import dirichlet_log_density, sample_dirichlet


class TransitionHypers(NamedTuple):
    """Hyperparameters of the sticky HDP prior.

    Scalars, stored as arrays so they can be vmapped.
    """

    alpha: jax.Array
    gamma: jax.Array
    kappa: jax.Array


def transition_cells(z: jax.Array, mask: jax.Array, num_states: int) -> jax.Array:
    """Flat cell index ``i * S + j`` of each transition, or ``S * S`` when not counted.

    Parameters
    ----------
    z
        State sequences, shape ``(N, T)``.
    mask
        1 where the frame of ``z`` is real, shape ``(N, T)``. A transition counts
        when its destination frame is real.
    num_states
        S.

    Returns
    -------
    jax.Array
        Shape ``(N * (T - 1),)``, integer.
    """
    cells = z[:, :-1] * num_states + z[:, 1:]
    return jnp.where(mask[:, 1:] > 0, cells, num_states * num_states).ravel()


def count_transitions(z: jax.Array, mask: jax.Array, num_states: int) -> jax.Array:
    """Transition counts ``n_ij`` of shape ``(S, S)``."""
    cells = transition_cells(z, mask, num_states)
    counts = jnp.bincount(cells, length=num_states * num_states + 1)
    return counts[:-1].reshape(num_states, num_states)


def sample_table_counts(
    key: jax.Array,
    z: jax.Array,
    mask: jax.Array,
    betas: jax.Array,
    hypers: TransitionHypers,
    override: bool = True,
) -> jax.Array:
    """Exact CRT table counts ``m_ij`` for the observed transitions.

    Parameters
    ----------
    key
        PRNG key.
    z, mask
        State sequences and real-frame mask, ``(N, T)``.
    betas
        Global weights ``(S,)``.
    hypers
        ``alpha, gamma, kappa``.
    override
        Apply the sticky override correction to the diagonal (each opened
        diagonal table is kept with probability ``a b_j / (a b_j + kappa)``).

    Returns
    -------
    jax.Array
        Shape ``(S, S)``; without the override
        ``m_ij = sum_{k < n_ij} Bernoulli(rho_ij / (k + rho_ij))``.
    """
    num_states = betas.shape[0]
    dtype = betas.dtype
    cells = jnp.sort(transition_cells(z, mask, num_states))
    rank = jnp.arange(cells.shape[0]) - jnp.searchsorted(cells, cells, side="left")
    valid = cells < num_states * num_states
    source, destination = jnp.divmod(
        jnp.minimum(cells, num_states * num_states - 1), num_states
    )
    diagonal = source == destination
    alpha_beta = hypers.alpha * betas[destination]
    rho = alpha_beta + hypers.kappa * diagonal
    key_open, key_keep = jax.random.split(key)
    opened = jax.random.uniform(key_open, cells.shape, dtype) < rho / (rank + rho)
    if override:
        keep = jax.random.uniform(key_keep, cells.shape, dtype) < alpha_beta / (
            alpha_beta + hypers.kappa
        )
        opened = opened & (~diagonal | keep)
    tables = jnp.bincount(
        cells,
        weights=(opened & valid).astype(dtype),
        length=num_states * num_states + 1,
    )
    return tables[:-1].reshape(num_states, num_states)


def sample_betas(key: jax.Array, tables: jax.Array, gamma: jax.Array) -> jax.Array:
    """``beta ~ Dir(sum_i m_ij + gamma / S)``."""
    num_states = tables.shape[0]
    return sample_dirichlet(key, tables.sum(axis=0) + gamma / num_states)


def sample_pi(
    key: jax.Array, counts: jax.Array, betas: jax.Array, hypers: TransitionHypers
) -> jax.Array:
    """``pi_i ~ Dir(n_i + alpha beta + kappa e_i)`` for every row i."""
    num_states = betas.shape[0]
    concentration = (
        counts.astype(betas.dtype)
        + hypers.alpha * betas[None, :]
        + hypers.kappa * jnp.eye(num_states, dtype=betas.dtype)
    )
    return sample_dirichlet(key, concentration)


def resample_transitions(
    key: jax.Array,
    z: jax.Array,
    mask: jax.Array,
    betas: jax.Array,
    hypers: TransitionHypers,
) -> tuple[jax.Array, jax.Array]:
    """One Gibbs update of ``(beta, pi)`` given state sequences.

    Parameters
    ----------
    key
        PRNG key (split internally for each draw).
    z, mask
        State sequences and real-frame mask, shape ``(N, T)``.
    betas
        Current global weights, shape ``(S,)``.
    hypers
        ``alpha, gamma, kappa``.

    Returns
    -------
    tuple
        New ``(betas, pi)``.
    """
    key_tables, key_beta, key_pi = jax.random.split(key, 3)
    num_states = betas.shape[0]
    tables = sample_table_counts(key_tables, z, mask, betas, hypers)
    new_betas = sample_betas(key_beta, tables, hypers.gamma)
    counts = count_transitions(z, mask, num_states)
    return new_betas, sample_pi(key_pi, counts, new_betas, hypers)


def init_transitions(
    key: jax.Array, num_states: int, hypers: TransitionHypers, dtype
) -> tuple[jax.Array, jax.Array]:
    """Draw ``(beta, pi)`` from the prior."""
    key_beta, key_pi = jax.random.split(key)
    gamma = jnp.asarray(hypers.gamma, dtype)
    betas = sample_dirichlet(
        key_beta, jnp.full((num_states,), gamma / num_states, dtype)
    )
    zeros = jnp.zeros((num_states, num_states), dtype)
    return betas, sample_pi(key_pi, zeros, betas, hypers)


def transitions_log_prior(
    betas: jax.Array, pi: jax.Array, hypers: TransitionHypers
) -> jax.Array:
    """``log p(beta) + sum_i log p(pi_i | beta)``."""
    num_states = betas.shape[0]
    log_p_beta = dirichlet_log_density(
        betas, jnp.full_like(betas, hypers.gamma / num_states)
    )
    concentration = hypers.alpha * betas[None, :] + hypers.kappa * jnp.eye(
        num_states, dtype=betas.dtype
    )
    return log_p_beta + dirichlet_log_density(pi, concentration).sum()
