"""Cholesky factors and triangular solves of small matrices, unrolled.

The Kalman samplers factor one ``P x P`` matrix per frame (P, the latent
dimension, is rarely above 16). Inside a ``lax.scan`` every LAPACK call is a
separate custom call with a fixed cost of several microseconds on CPU, which
dominated the forward filter. Here the factorisation and the substitutions are
written out entry by entry for the static size, so XLA fuses them into a few
element-wise kernels over the batch; above :data:`UNROLL_MAX` the LAPACK
routines are used. The arithmetic is the textbook (Cholesky-Banachiewicz)
order, as accurate as LAPACK's for well-conditioned matrices.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.scipy.linalg import solve_triangular

#: Largest matrix size that is unrolled; larger ones call LAPACK.
UNROLL_MAX = 12


def cholesky(matrix: jax.Array) -> jax.Array:
    """Lower Cholesky factor of a (batch of) symmetric positive-definite matrices.

    Only the lower triangle of ``matrix`` is read. A matrix that is not
    positive definite gives NaN (as LAPACK's ``potrf`` through JAX does).
    """
    size = matrix.shape[-1]
    if size > UNROLL_MAX:
        return jnp.linalg.cholesky(matrix)
    entries: dict[tuple[int, int], jax.Array] = {}
    for j in range(size):
        total = matrix[..., j, j]
        for k in range(j):
            total = total - entries[j, k] ** 2
        pivot = jnp.sqrt(total)
        entries[j, j] = pivot
        for i in range(j + 1, size):
            total = matrix[..., i, j]
            for k in range(j):
                total = total - entries[i, k] * entries[j, k]
            entries[i, j] = total / pivot
    zero = jnp.zeros_like(matrix[..., 0, 0])
    rows = [
        jnp.stack([entries.get((i, j), zero) for j in range(size)], axis=-1)
        for i in range(size)
    ]
    return jnp.stack(rows, axis=-2)


def solve_lower(chol: jax.Array, rhs: jax.Array) -> jax.Array:
    """``L^{-1} B`` for lower-triangular ``L`` (..., n, n) and ``B`` (..., n, m)."""
    size = chol.shape[-1]
    if size > UNROLL_MAX:
        return solve_triangular(chol, rhs, lower=True)
    solved: list[jax.Array] = []
    for i in range(size):
        total = rhs[..., i, :]
        for k in range(i):
            total = total - chol[..., i, k, None] * solved[k]
        solved.append(total / chol[..., i, i, None])
    return jnp.stack(solved, axis=-2)


def solve_lower_transpose(chol: jax.Array, rhs: jax.Array) -> jax.Array:
    """``L^{-T} b`` for lower-triangular ``L`` (..., n, n) and ``b`` (..., n)."""
    size = chol.shape[-1]
    if size > UNROLL_MAX:
        return solve_triangular(chol, rhs[..., None], lower=True, trans="T")[..., 0]
    solved: list[jax.Array | None] = [None] * size
    for i in reversed(range(size)):
        total = rhs[..., i]
        for k in range(i + 1, size):
            total = total - chol[..., k, i] * solved[k]
        solved[i] = total / chol[..., i, i]
    return jnp.stack(solved, axis=-1)


def cholesky_rolled(matrix: jax.Array) -> jax.Array:
    """:func:`cholesky` as a loop over columns, for factorisations done once.

    Unrolling a ``P x P`` factorisation emits about ``P^2 / 2`` small kernels,
    each compiled on its own; outside a scan (e.g. once per row) the loop's
    ``P`` tiny iterations cost nothing at run time and the program stays
    small. No LAPACK call (see :mod:`moseq_xr.core.kalman`).
    """
    size = matrix.shape[-1]
    index = jnp.arange(size)

    def column(j, lower):
        done = jnp.where(index < j, jnp.take(lower, j, axis=-2), 0.0)  # L[j, :j]
        pivot = jnp.sqrt(jnp.take(matrix, j, axis=-1)[..., j] - (done**2).sum(-1))
        below = jnp.take(matrix, j, axis=-1) - (lower * done[..., None, :]).sum(-1)
        entries = jnp.where(index > j, below / pivot[..., None], 0.0)
        entries = jnp.where(index == j, pivot[..., None], entries)
        return jnp.where(index == j, entries[..., :, None], lower)

    return jax.lax.fori_loop(0, size, column, jnp.zeros_like(matrix))


def _rolled_substitution(rows: jax.Array, rhs: jax.Array, *, backward: bool):
    """Solve a triangular system one unknown per loop step.

    Row ``i`` of the system's coefficients is ``rows[..., i, :]``: lower
    triangular, solved first unknown first, or upper triangular
    (``backward``), solved last unknown first.
    """
    size = rows.shape[-1]
    index = jnp.arange(size)

    def solve_one(step, solved):
        i = size - 1 - step if backward else step
        coefficients = jnp.take(rows, i, axis=-2)
        known = index > i if backward else index < i
        total = jnp.take(rhs, i, axis=-1) - (
            jnp.where(known, coefficients, 0.0) * solved
        ).sum(-1)
        value = total / coefficients[..., i]
        return jnp.where(index == i, value[..., None], solved)

    return jax.lax.fori_loop(0, size, solve_one, jnp.zeros_like(rhs))


def solve_lower_rolled(chol: jax.Array, rhs: jax.Array) -> jax.Array:
    """:func:`solve_lower` for a vector ``rhs`` (..., n), as a loop over rows."""
    return _rolled_substitution(chol, rhs, backward=False)


def solve_lower_transpose_rolled(chol: jax.Array, rhs: jax.Array) -> jax.Array:
    """:func:`solve_lower_transpose` as a loop over rows (last first)."""
    return _rolled_substitution(jnp.swapaxes(chol, -1, -2), rhs, backward=True)


__all__ = [
    "UNROLL_MAX",
    "cholesky",
    "cholesky_rolled",
    "solve_lower",
    "solve_lower_rolled",
    "solve_lower_transpose",
    "solve_lower_transpose_rolled",
]
