"""Syllable transition matrices (reference §8.1).

A transition is a pair of *consecutive instances* (run-length compressed
labels): syllable ``a`` on frame ``t - 1`` followed by a different syllable
``b`` on frame ``t``. Hence there are no self-transitions, and no transition is
counted

* across the boundary between recordings or individuals,
* across a frame without a syllable (``-1``: untracked frames, the first
  ``nlags`` frames of a sequence, padding): the instances on either side of
  such a gap are not consecutive behaviour.

Difference from the reference, on purpose: the first syllable of each recording
is kept. It is the source of the recording's first transition; keypoint-MoSeq
drops it, losing one transition per recording.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from moseq_xr.analysis.tables import GROUP, real_frames, syllable_array
from moseq_xr.exceptions import SchemaError
from moseq_xr.schema import names as N

NORMALIZATIONS = ("bigram", "rows", "columns", None)


def _transition_pairs(ds: xr.Dataset) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Find recording index, source and destination label of every transition."""
    syllable = syllable_array(ds)
    real = real_frames(ds)
    source, target = syllable[..., :-1], syllable[..., 1:]
    counted = (source >= 0) & (target >= 0) & (source != target) & real[..., 1:]
    recording = np.nonzero(counted)[0]
    return recording, source[counted], target[counted]


def _count(
    recording: np.ndarray,
    source: np.ndarray,
    target: np.ndarray,
    n_recordings: int,
    n_syllables: int,
) -> np.ndarray:
    inside = (source < n_syllables) & (target < n_syllables)
    counts = np.zeros((n_recordings, n_syllables, n_syllables), dtype=np.int64)
    np.add.at(counts, (recording[inside], source[inside], target[inside]), 1)
    return counts


def _normalized(counts: np.ndarray, normalize: str | None) -> np.ndarray:
    if normalize is None:
        return counts
    axis = {"bigram": (1, 2), "rows": 2, "columns": 1}[normalize]
    totals = counts.sum(axis=axis, keepdims=True).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, counts / totals, np.nan)


def _by_group(ds: xr.Dataset, counts: np.ndarray) -> tuple[np.ndarray, list[str]]:
    if GROUP not in ds.coords:
        raise SchemaError(
            GROUP, "by='group' needs a 'group' coordinate; see set_groups"
        )
    labels = ds[GROUP].values.astype(str)
    names = sorted(set(labels.tolist()))
    summed = np.stack([counts[labels == name].sum(axis=0) for name in names])
    return summed, names


def transition_matrices(
    ds: xr.Dataset,
    normalize: str | None = "bigram",
    by: str = "recording",
    max_syllable: int | None = None,
) -> xr.DataArray:
    """Transition counts or probabilities between consecutive syllable instances.

    Parameters
    ----------
    ds
        A pose Dataset with a ``syllable`` variable.
    normalize
        ``"bigram"``: divide by the total number of transitions of the
        recording (group); ``"rows"``: by the transitions leaving each syllable
        (``P(to | from)``); ``"columns"``: by those entering each syllable;
        None: integer counts. Rows (columns, matrices) without transitions are
        NaN after normalisation.
    by
        ``"recording"`` (individuals of a recording are summed) or ``"group"``
        (recordings summed per ``group`` coordinate, see
        :func:`moseq_xr.analysis.set_groups`).
    max_syllable
        Keep syllables ``0 .. max_syllable - 1``; transitions from or to a
        higher label are dropped (not bridged). Default: up to the largest label.

    Returns
    -------
    xarray.DataArray
        Over ``(recording | group, syllable_from, syllable_to)``, named
        ``transitions``; with ``by="recording"`` the ``group`` coordinate is
        carried along when present. ``attrs["normalize"]`` records the choice.

    Notes
    -----
    See the module docstring for what counts as a transition.
    """
    if normalize not in NORMALIZATIONS:
        raise ValueError(
            f"normalize must be one of {NORMALIZATIONS}, got {normalize!r}"
        )
    if by not in (N.RECORDING, GROUP):
        raise ValueError(f"by must be 'recording' or 'group', got {by!r}")
    recording, source, target = _transition_pairs(ds)
    if max_syllable is None:
        max_syllable = int(syllable_array(ds).max()) + 1
    if max_syllable < 0:
        raise ValueError(f"max_syllable must be >= 0, got {max_syllable}")
    counts = _count(recording, source, target, ds.sizes[N.RECORDING], max_syllable)
    coords: dict[str, object] = {}
    if by == GROUP:
        counts, names = _by_group(ds, counts)
        coords[GROUP] = names
    else:
        coords[N.RECORDING] = ds[N.RECORDING].values
        if GROUP in ds.coords:
            coords[GROUP] = (N.RECORDING, ds[GROUP].values)
    coords["syllable_from"] = np.arange(max_syllable)
    coords["syllable_to"] = np.arange(max_syllable)
    return xr.DataArray(
        _normalized(counts, normalize),
        dims=(by, "syllable_from", "syllable_to"),
        coords=coords,
        name="transitions",
        attrs={
            "normalize": str(normalize),
            "long_name": "transitions between consecutive instances",
        },
    )
