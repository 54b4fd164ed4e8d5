"""The centring basis that removes the translation of a pose.

Keypoint-MoSeq models poses in the (K-1)-dimensional subspace of keypoint
configurations whose mean is zero. :func:`center_embedding` returns an
orthonormal basis of that subspace (Helmert contrasts); it works with numpy
and JAX arrays alike because it is built with numpy once per K.
"""

from __future__ import annotations

import numpy as np


def center_embedding(num_keypoints: int) -> np.ndarray:
    """Orthonormal basis of the zero-sum subspace of R^K.

    Parameters
    ----------
    num_keypoints
        K, at least 2.

    Returns
    -------
    numpy.ndarray
        Shape ``(K, K-1)``; columns are orthonormal and orthogonal to the
        all-ones vector, so ``G.T @ G = I`` and ``G @ G.T = I - 1/K``.
        Column ``i`` is proportional to ``e_{i+1} - mean(e_0..e_i)``.
    """
    if num_keypoints < 2:
        raise ValueError(f"need at least 2 keypoints, got {num_keypoints}")
    basis = np.zeros((num_keypoints, num_keypoints - 1))
    for column in range(num_keypoints - 1):
        count = column + 1
        basis[:count, column] = -1.0 / count
        basis[count, column] = 1.0
        basis[:, column] /= np.linalg.norm(basis[:, column])
    return basis
