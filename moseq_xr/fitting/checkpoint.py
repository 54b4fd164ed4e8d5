"""Checkpoints of a running fit, stored in the project store.

A checkpoint is a Zarr group ``<store>/checkpoint`` holding everything needed to
continue a chain exactly: the model state (parameters and latents), the model
data and how it maps back to the Dataset (segment index), hyperparameters and
static configuration, the PCA, the trace so far, the chain's base PRNG key and
the iteration reached, plus the preparation options and package version. It
is written beside the old one and swapped in, so a crash while writing loses
nothing but the interval since the previous checkpoint.

The state is stored raw (syllables not yet relabelled by frequency).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import xarray as xr

from moseq_xr.exceptions import StoreError
from moseq_xr.fitting.bridge import Segments
from moseq_xr.io.store import CHECKPOINT_GROUP, write_atomic

_SEGMENT_ARRAYS = (
    "recording_index",
    "individual_index",
    "start",
    "end",
    "n_frames",
    "time",
)
_SEGMENT_NAMES = ("recordings", "individuals", "keypoints", "space")
_SEGMENT_SCALARS = ("fps", "seg_length", "overlap")


class Checkpoint(NamedTuple):
    """A checkpoint as plain Python/numpy objects.

    Attributes
    ----------
    state
        ``{"params": {name: array}, "latents": {name: array}}``.
    data
        ``{name: array}`` of :class:`moseq_xr.core.model.ModelData`.
    hypers
        Nested dict of floats/arrays (``trans``, ``ar``, ...).
    config
        :class:`moseq_xr.core.model.ModelConfig` as a dict.
    segments
        The segment index (without ``Y``/``conf``, which ``data`` holds).
    pca
        The PCA Dataset.
    trace
        ``{name: array over iteration}``.
    meta
        ``iteration`` reached, ``num_iters`` target, ``seed``, ``key`` data,
        ``precision``, ``prepare`` options, ``fit`` options, ``version``.
    """

    state: dict[str, dict[str, np.ndarray]]
    data: dict[str, np.ndarray]
    hypers: dict[str, Any]
    config: dict[str, Any]
    segments: dict[str, Any]
    pca: xr.Dataset
    trace: dict[str, np.ndarray]
    meta: dict[str, Any]


def _arrays_to_dataset(arrays: dict[str, np.ndarray], prefix: str) -> xr.Dataset:
    variables = {
        name: xr.Variable(
            [f"{prefix}_{name}_{axis}" for axis in range(np.ndim(value))],
            np.asarray(value),
        )
        for name, value in arrays.items()
    }
    return xr.Dataset(variables)


def _dataset_to_arrays(ds: xr.Dataset) -> dict[str, np.ndarray]:
    return {str(name): np.asarray(var.values) for name, var in ds.data_vars.items()}


def segments_index(segments: Segments) -> dict[str, Any]:
    """The parts of :class:`Segments` needed to put results back."""
    index = {name: np.asarray(getattr(segments, name)) for name in _SEGMENT_ARRAYS}
    index.update({name: list(getattr(segments, name)) for name in _SEGMENT_NAMES})
    index.update({name: getattr(segments, name) for name in _SEGMENT_SCALARS})
    return index


def _flat_hypers(hypers: dict[str, Any]) -> dict[str, np.ndarray]:
    return {
        f"{group}.{name}": np.asarray(value)
        for group, values in hypers.items()
        for name, value in values.items()
    }


def _nested_hypers(flat: dict[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
    nested: dict[str, dict[str, np.ndarray]] = {}
    for key, value in flat.items():
        group, name = key.split(".", 1)
        nested.setdefault(group, {})[name] = value
    return nested


def to_tree(checkpoint: Checkpoint) -> xr.DataTree:
    """Lay a checkpoint out as a DataTree (one node per part)."""
    index = checkpoint.segments
    index_ds = _arrays_to_dataset({k: index[k] for k in _SEGMENT_ARRAYS}, "index")
    index_ds.attrs = {k: index[k] for k in (*_SEGMENT_NAMES, *_SEGMENT_SCALARS)}
    hypers_ds = _arrays_to_dataset(_flat_hypers(checkpoint.hypers), "hyper")
    nodes = {
        "/": xr.Dataset(
            attrs={
                "meta": json.dumps(checkpoint.meta),
                "config": json.dumps(checkpoint.config),
            }
        ),
        "/params": _arrays_to_dataset(checkpoint.state["params"], "params"),
        "/latents": _arrays_to_dataset(checkpoint.state["latents"], "latents"),
        "/data": _arrays_to_dataset(checkpoint.data, "data"),
        "/hypers": hypers_ds,
        "/index": index_ds,
        "/trace": _arrays_to_dataset(checkpoint.trace, "trace"),
        "/pca": checkpoint.pca,
    }
    return xr.DataTree.from_dict(nodes)


def write_checkpoint(store: str | Path, checkpoint: Checkpoint) -> Path:
    """Write ``checkpoint`` to ``<store>/checkpoint`` atomically.

    Returns
    -------
    Path
        The checkpoint group's path.
    """
    path = Path(store) / CHECKPOINT_GROUP
    if not Path(store).is_dir():
        raise StoreError(f"{store}: the project store does not exist")
    write_atomic(to_tree(checkpoint), path)
    return path


def read_checkpoint(store: str | Path) -> Checkpoint:
    """Read the checkpoint of the project store ``store`` into memory."""
    path = Path(store) / CHECKPOINT_GROUP
    if not (path / "zarr.json").is_file():
        raise StoreError(f"{store}: holds no checkpoint (no {CHECKPOINT_GROUP} group)")
    from moseq_xr.io.store import open as open_store

    tree = open_store(path).load()
    index_node = tree["index"].to_dataset()
    index = _dataset_to_arrays(index_node)
    index.update({k: index_node.attrs[k] for k in (*_SEGMENT_NAMES, *_SEGMENT_SCALARS)})
    root = tree.to_dataset(inherit=False).attrs
    return Checkpoint(
        state={
            "params": _dataset_to_arrays(tree["params"].to_dataset()),
            "latents": _dataset_to_arrays(tree["latents"].to_dataset()),
        },
        data=_dataset_to_arrays(tree["data"].to_dataset()),
        hypers=_nested_hypers(_dataset_to_arrays(tree["hypers"].to_dataset())),
        config=json.loads(root["config"]),
        segments=index,
        pca=tree["pca"].to_dataset(),
        trace=_dataset_to_arrays(tree["trace"].to_dataset()),
        meta=json.loads(root["meta"]),
    )
