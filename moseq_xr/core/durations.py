"""Run lengths of state sequences, computed on the device."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def run_lengths(z: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Lengths of the runs of equal states within real frames.

    Parameters
    ----------
    z
        States, shape ``(N, T)``.
    mask
        1 on real frames, shape ``(N, T)``. A run ends at a state change, at a
        padded frame and at the end of a row.

    Returns
    -------
    tuple
        ``(lengths, count)``: ``lengths`` has shape ``(N*T,)`` with the run
        lengths first (in frames) and zeros after; ``count`` is the number of runs.
    """
    valid = mask > 0
    previous_valid = jnp.pad(valid[:, :-1], ((0, 0), (1, 0)))
    changed = jnp.pad(z[:, 1:] != z[:, :-1], ((0, 0), (1, 0)), constant_values=True)
    starts = valid & (changed | ~previous_valid)
    run_id = jnp.cumsum(starts.ravel())
    lengths = jax.ops.segment_sum(
        valid.ravel().astype(jnp.int32), run_id, num_segments=run_id.shape[0] + 1
    )
    return lengths[1:], starts.sum()


def median_run_length(z: jax.Array, mask: jax.Array) -> jax.Array:
    """Median run length in frames (NaN when there are no real frames)."""
    lengths, count = run_lengths(z, mask)
    big = jnp.iinfo(lengths.dtype).max
    ordered = jnp.sort(jnp.where(jnp.arange(lengths.shape[0]) < count, lengths, big))
    low = ordered[jnp.maximum((count - 1) // 2, 0)]
    high = ordered[jnp.maximum(count // 2, 0)]
    median = 0.5 * (low + high).astype(jnp.result_type(float))
    return jnp.where(count > 0, median, jnp.nan)
