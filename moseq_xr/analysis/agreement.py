"""Agreement between two labellings of the same frames (e.g. fit vs. truth)."""

from __future__ import annotations

import numpy as np


def contingency(labels_a: np.ndarray, labels_b: np.ndarray) -> np.ndarray:
    """Counts of frames per pair of labels, over frames where both are >= 0.

    Parameters
    ----------
    labels_a, labels_b
        Integer labels of the same shape; negative values mean "no label".

    Returns
    -------
    numpy.ndarray
        ``(max(a) + 1, max(b) + 1)`` counts.
    """
    a, b = np.ravel(labels_a), np.ravel(labels_b)
    if a.shape != b.shape:
        raise ValueError(f"labellings differ in size: {a.shape} vs {b.shape}")
    both = (a >= 0) & (b >= 0)
    a, b = a[both].astype(np.int64), b[both].astype(np.int64)
    if a.size == 0:
        return np.zeros((0, 0))
    table = np.zeros((a.max() + 1, b.max() + 1))
    np.add.at(table, (a, b), 1)
    return table


def normalized_mutual_information(labels_a: np.ndarray, labels_b: np.ndarray) -> float:
    """NMI with arithmetic-mean normalisation (as scikit-learn's default).

    Frames where either label is negative are ignored. Returns 1.0 when both
    labellings are constant and identical up to renaming.
    """
    table = contingency(labels_a, labels_b)
    total = table.sum()
    if total == 0:
        return float("nan")
    joint = table / total
    pa, pb = joint.sum(1), joint.sum(0)
    nonzero = joint > 0
    mutual = np.sum(joint[nonzero] * np.log(joint[nonzero] / np.outer(pa, pb)[nonzero]))
    entropy_a = -np.sum(pa[pa > 0] * np.log(pa[pa > 0]))
    entropy_b = -np.sum(pb[pb > 0] * np.log(pb[pb > 0]))
    if entropy_a == 0 and entropy_b == 0:
        return 1.0
    return float(mutual / max((entropy_a + entropy_b) / 2, 1e-300))
