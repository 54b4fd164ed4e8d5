"""Row-wise work: every segment row on its own, batched, and spread over devices.

Most of a Gibbs sweep treats the segment rows independently (syllable
sequences, pose trajectories); only the parameter updates sum over rows.
:func:`map_rows` runs such a per-row function over all rows:

* in serial batches of ``batch_size`` rows (``lax.map``), so that the
  per-frame working set (log-likelihoods of every state, Kalman covariances)
  never exceeds what the memory plan allows;
* split over the devices of a one-axis ``mesh`` (``shard_map``): every device
  runs its own rows; nothing crosses devices inside the function.

Per-row random keys are passed in as row arguments, so a row's draws do not
depend on how rows are batched or on how many devices there are.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax.sharding import Mesh, PartitionSpec

#: Name of the mesh axis that segment rows are split over.
ROW_AXIS = "rows"


def _pad_rows(tree: Any, num_rows: int) -> Any:
    """Repeat the first row so that every leaf has ``num_rows`` rows."""

    def pad(leaf):
        extra = num_rows - leaf.shape[0]
        return jnp.concatenate([leaf, jnp.repeat(leaf[:1], extra, axis=0)])

    return jax.tree_util.tree_map(pad, tree)


def _local_map(fn: Callable, batch_size: int | None) -> Callable:
    """``fn`` over all local rows at once, or over serial blocks of ``batch_size``."""

    def run(row_args: tuple, shared: tuple) -> Any:
        num_rows = jax.tree_util.tree_leaves(row_args)[0].shape[0]
        if batch_size is None or batch_size >= num_rows:
            return fn(*row_args, *shared)
        num_blocks = -(-num_rows // batch_size)
        padded = _pad_rows(row_args, num_blocks * batch_size)
        blocks = jax.tree_util.tree_map(
            lambda a: a.reshape(num_blocks, batch_size, *a.shape[1:]), padded
        )
        out = jax.lax.map(lambda block: fn(*block, *shared), blocks)
        return jax.tree_util.tree_map(
            lambda a: a.reshape(num_blocks * batch_size, *a.shape[2:])[:num_rows], out
        )

    return run


def map_rows(
    fn: Callable,
    row_args: tuple,
    shared: tuple = (),
    *,
    batch_size: int | None = None,
    mesh: Mesh | None = None,
) -> Any:
    """Apply the block function ``fn(*rows, *shared)`` to all rows of ``row_args``.

    Parameters
    ----------
    fn
        Function of a block of rows (arrays with the rows on axis 0) followed
        by the shared arguments; returns a pytree with the rows on axis 0.
        Rows must not interact inside ``fn``.
    row_args
        Tuple of pytrees whose leaves all have the rows on axis 0.
    shared
        Tuple of pytrees used by every row (parameters).
    batch_size
        Rows processed at once on each device (``None``: all); the others
        wait their turn (``lax.map`` over blocks).
    mesh
        One-axis mesh to split the rows over (``None``: no splitting). The row
        count must be a multiple of the mesh size.

    Returns
    -------
    pytree
        ``fn``'s outputs for all rows.
    """
    local = _local_map(fn, batch_size)
    if mesh is None or mesh.size == 1:
        return local(row_args, shared)
    rows, replicated = PartitionSpec(ROW_AXIS), PartitionSpec()
    return jax.shard_map(
        local,
        mesh=mesh,
        in_specs=(rows, replicated),
        out_specs=rows,
        check_vma=False,
    )(row_args, shared)


def row_keys(key: jax.Array, num_rows: int) -> jax.Array:
    """One threefry key per row, ``fold_in(key, i)``.

    Threefry, whatever ``key``'s implementation: its draws under ``vmap`` do
    not depend on the other rows of the batch (XLA's RngBitGenerator's do),
    so row ``i`` draws the same numbers for any row count, batch size and
    number of devices.
    """
    if "threefry" not in str(jax.random.key_impl(key)):
        words = jax.random.key_data(key).ravel()[:2]
        key = jax.random.wrap_key_data(words, impl="threefry2x32")
    return jax.vmap(jax.random.fold_in, in_axes=(None, 0))(key, jnp.arange(num_rows))


__all__ = ["ROW_AXIS", "map_rows", "row_keys"]
