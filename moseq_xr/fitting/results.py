"""From a raw model state to the labelled result tree.

Syllables are relabelled once, here, by frequency: label 0 is the syllable with
the most instances (runs), ties broken by frames; unused states come last. The
permutation is applied to every state-indexed parameter and recorded in the
model's attrs (``syllable_order[new] = old``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from moseq_xr._provenance import with_provenance
from moseq_xr.fitting.bridge import Segments, from_segments
from moseq_xr.schema import names as N

SYLLABLE = "syllable"


def frame_syllables(z: np.ndarray, nlags: int, segments: Segments) -> xr.DataArray:
    """Per-frame syllables over ``(recording, individual, time)``; -1 where none.

    The first ``nlags`` frames of each row have no syllable (the AR model needs
    that much history); thanks to the overlap between rows this leaves only the
    first ``nlags`` frames of every sequence unlabelled.
    """
    padded = np.concatenate([np.full((z.shape[0], nlags), -1, z.dtype), z], axis=1)
    return from_segments(padded, segments, fill=-1).astype(np.int32)


def frequency_order(syllables: np.ndarray, num_states: int) -> np.ndarray:
    """Old labels sorted by decreasing instance count, then frame count.

    Parameters
    ----------
    syllables
        ``(..., time)`` labels, -1 where none; runs are counted along the last axis.
    num_states
        S.

    Returns
    -------
    numpy.ndarray
        ``order[new_label] = old_label``, a permutation of ``range(S)``.
    """
    flat = syllables.reshape(-1, syllables.shape[-1])
    starts = np.concatenate(
        [np.ones((flat.shape[0], 1), bool), flat[:, 1:] != flat[:, :-1]], 1
    )
    valid = flat >= 0
    instances = np.bincount(flat[starts & valid], minlength=num_states)
    frames = np.bincount(flat[valid], minlength=num_states)
    return np.lexsort((np.arange(num_states), -frames, -instances))


def relabel(syllables: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Apply ``order`` (new -> old) to labels, keeping -1."""
    new_of_old = np.argsort(order)
    return np.where(syllables >= 0, new_of_old[np.maximum(syllables, 0)], -1).astype(
        syllables.dtype
    )


def model_dataset(
    params: dict[str, np.ndarray],
    order: np.ndarray,
    keypoints: list[str],
    attrs: dict[str, Any],
) -> xr.Dataset:
    """Relabelled parameters with named dims.

    Dims: ``syllable``/``next_syllable`` for states, ``latent``/``latent_col``
    for the pose latent space, ``regressor`` (``nlags * latent + 1``; lags
    oldest first, bias last), ``feature`` for the embedded keypoint space and
    ``emission_col`` (``latent + 1``, offset last).
    """
    num_states = order.size
    ds = xr.Dataset(
        {
            "betas": ((SYLLABLE,), params["betas"][order]),
            "pi": ((SYLLABLE, "next_syllable"), params["pi"][np.ix_(order, order)]),
            "Ab": ((SYLLABLE, "latent", "regressor"), params["Ab"][order]),
            "Q": ((SYLLABLE, "latent", "latent_col"), params["Q"][order]),
            "Cd": (("feature", "emission_col"), params["Cd"]),
            "sigmasq": ((N.KEYPOINT,), params["sigmasq"]),
        },
        coords={
            SYLLABLE: np.arange(num_states),
            "next_syllable": np.arange(num_states),
            N.KEYPOINT: np.asarray(keypoints, dtype=str),
        },
    )
    ds["betas"].attrs["description"] = "global syllable weights of the HDP"
    ds["pi"].attrs["description"] = "transition probabilities (rows: from)"
    ds["Ab"].attrs["description"] = "AR matrices [A_{t-L} .. A_{t-1} | b]"
    ds["Q"].attrs["description"] = "AR noise covariances"
    ds["Cd"].attrs["description"] = (
        "emission [C | d] into the (K-1)*D zero-sum keypoint space"
    )
    ds.attrs = {
        **attrs,
        "syllable_order": [int(o) for o in order],
        "relabelled_by": "instance count, then frame count (most frequent = 0)",
    }
    return ds


def trace_dataset(trace: dict[str, list[float]], attrs: dict[str, Any]) -> xr.Dataset:
    """Per-iteration diagnostics over ``iteration`` (1 = after the first sweep)."""
    length = len(next(iter(trace.values()), []))
    ds = xr.Dataset(
        {name: (("iteration",), np.asarray(values)) for name, values in trace.items()},
        coords={"iteration": np.arange(1, length + 1)},
    )
    ds.attrs = attrs
    return ds


def result_tree(
    ds: xr.Dataset,
    variables: dict[str, xr.DataArray],
    model: xr.Dataset,
    trace: xr.Dataset,
    pca: xr.Dataset,
    arguments: dict[str, Any],
) -> xr.DataTree:
    """Build the tree that ``fit`` returns.

    Pose Dataset + results at the root, then ``/model``, ``/trace`` and ``/pca``.
    """
    root = ds.assign(
        {
            name: xr.Variable(da.dims, da.values, da.attrs)
            for name, da in variables.items()
        }
    )
    root.attrs = with_provenance(ds.attrs, "moseq_xr.fit", arguments)
    return xr.DataTree.from_dict(
        {"/": root, "/model": model, "/trace": trace, "/pca": pca}
    )
