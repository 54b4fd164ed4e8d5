"""Unrolled small-matrix Cholesky and triangular solves against LAPACK (numpy)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from moseq_xr.core import small_linalg


def _spd(rng, batch, size):
    factor = rng.normal(size=(*batch, size, size))
    return factor @ np.swapaxes(factor, -1, -2) + size * np.eye(size)


@pytest.mark.parametrize("size", [1, 2, 4, 7, small_linalg.UNROLL_MAX, 14])
def test_cholesky_and_solves_match_lapack(size):
    rng = np.random.default_rng(size)
    with jax.enable_x64(True):
        matrix = _spd(rng, (3, 5), size)
        rhs = rng.normal(size=(3, 5, size, 6))
        vector = rng.normal(size=(3, 5, size))
        chol = np.asarray(small_linalg.cholesky(jnp.asarray(matrix)))
        np.testing.assert_allclose(
            chol, np.linalg.cholesky(matrix), rtol=1e-12, atol=1e-12
        )
        solved = small_linalg.solve_lower(jnp.asarray(chol), jnp.asarray(rhs))
        np.testing.assert_allclose(
            chol @ np.asarray(solved), rhs, rtol=1e-10, atol=1e-10
        )
        back = small_linalg.solve_lower_transpose(
            jnp.asarray(chol), jnp.asarray(vector)
        )
        np.testing.assert_allclose(
            np.einsum("...ji,...j->...i", chol, np.asarray(back)), vector, atol=1e-10
        )


def test_cholesky_of_an_indefinite_matrix_is_nan():
    with jax.enable_x64(True):
        chol = small_linalg.cholesky(jnp.array([[1.0, 2.0], [2.0, 1.0]]))
    assert np.isnan(np.asarray(chol)).any()


def test_cholesky_reads_only_the_lower_triangle():
    rng = np.random.default_rng(0)
    matrix = _spd(rng, (), 5)
    garbage_upper = np.tril(matrix) + np.triu(rng.normal(size=(5, 5)), 1)
    with jax.enable_x64(True):
        chol = small_linalg.cholesky(jnp.asarray(garbage_upper))
    np.testing.assert_allclose(np.asarray(chol), np.linalg.cholesky(matrix), rtol=1e-12)


@pytest.mark.parametrize("size", [1, 3, 12, 20])
def test_rolled_cholesky_and_solves_match_lapack(size):
    rng = np.random.default_rng(size + 100)
    with jax.enable_x64(True):
        matrix = _spd(rng, (3, 5), size)
        vector = rng.normal(size=(3, 5, size))
        chol = np.asarray(jax.jit(small_linalg.cholesky_rolled)(jnp.asarray(matrix)))
        np.testing.assert_allclose(
            chol, np.linalg.cholesky(matrix), rtol=1e-12, atol=1e-12
        )
        forward = small_linalg.solve_lower_rolled(
            jnp.asarray(chol), jnp.asarray(vector)
        )
        np.testing.assert_allclose(
            np.einsum("...ij,...j->...i", chol, np.asarray(forward)), vector, atol=1e-10
        )
        back = small_linalg.solve_lower_transpose_rolled(
            jnp.asarray(chol), jnp.asarray(vector)
        )
        np.testing.assert_allclose(
            np.einsum("...ji,...j->...i", chol, np.asarray(back)), vector, atol=1e-10
        )
