"""The Zarr project store: :func:`save` and :func:`open`.

A project store is one Zarr (format 3) group. Its root holds the pose Dataset;
fitting adds child groups (``/model``, ``/trace``, ``/pca``, ``/checkpoint``).
Writes never touch the previous store until the new one is complete: the store
is written beside the target and swapped in with two renames, so a failure (or
a crash) mid-write leaves the old store readable.

Strings are stored as variable-length UTF-8 (the stable Zarr v3 string type)
and come back as fixed-width numpy strings, so a round trip is lossless.
"""

from __future__ import annotations

import contextlib
import shutil
import uuid
import warnings
from pathlib import Path

import numpy as np
import xarray as xr

from moseq_xr._provenance import with_provenance
from moseq_xr.exceptions import StoreError
from moseq_xr.schema import names as N
from moseq_xr.schema import validate

STORE_MARKER = "moseq_xr_store"
#: Child directory of a project store that holds the checkpoint of a fit.
CHECKPOINT_GROUP = "checkpoint"
_CHUNK_BYTES = 8 * 2**20


def _time_chunk(ds: xr.Dataset) -> int:
    bytes_per_frame = sum(
        var.dtype.itemsize
        * int(
            np.prod([ds.sizes[d] for d in var.dims if d not in (N.RECORDING, N.TIME)])
        )
        for var in ds.data_vars.values()
        if N.TIME in var.dims
    )
    return int(max(1000, _CHUNK_BYTES // max(bytes_per_frame, 1)))


def _strings_for_zarr(ds: xr.Dataset) -> xr.Dataset:
    """Fixed-width numpy strings -> object strings (Zarr v3 variable-length)."""
    converted = {
        name: var.astype(object)
        for name, var in ds.variables.items()
        if var.dtype.kind == "U"
    }
    return ds.assign_coords(
        {k: v for k, v in converted.items() if k in ds.coords}
    ).assign({k: v for k, v in converted.items() if k not in ds.coords})


def _strings_from_zarr(ds: xr.Dataset) -> xr.Dataset:
    """Zarr string arrays (StringDType or object) -> fixed-width numpy strings."""
    converted = {
        name: xr.Variable(
            var.dims,
            np.array(np.asarray(var.values, dtype=object).tolist(), dtype=str),
            var.attrs,
        )
        for name, var in ds.variables.items()
        if var.dtype.kind in "TO"
    }
    coords = {k: v for k, v in converted.items() if k in ds.coords}
    data = {k: v for k, v in converted.items() if k not in ds.coords}
    return ds.assign_coords(coords).assign(data)


def _load_small_coords(ds: xr.Dataset) -> xr.Dataset:
    """Bring coordinates without a time axis into memory (they are tiny)."""
    small = {
        name: ds[name].compute() for name in ds.coords if N.TIME not in ds[name].dims
    }
    return ds.assign_coords(small)


def _prepare(ds: xr.Dataset) -> xr.Dataset:
    """Strings to variable-length, numeric time series chunked per recording."""
    ds = _strings_for_zarr(ds)
    chunks = {N.RECORDING: 1}
    if N.TIME in ds.dims:
        chunks[N.TIME] = min(ds.sizes[N.TIME], _time_chunk(ds))
    for name, var in ds.variables.items():
        var.encoding.clear()
        if var.dtype.kind != "O" and name not in ds.dims:
            ds[name] = ds[name].chunk(
                {d: c for d, c in chunks.items() if d in var.dims}
            )
    return ds


def _write_tree(tree: xr.DataTree, target: Path) -> None:
    prepared = tree.map_over_datasets(_prepare)
    prepared.attrs = dict(tree.attrs, **{STORE_MARKER: "tree"})
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Consolidated metadata.*")
        prepared.to_zarr(target, mode="w", zarr_format=3, consolidated=True)


def _write_dataset(ds: xr.Dataset, target: Path) -> None:
    prepared = _prepare(ds)
    prepared.attrs = dict(ds.attrs, **{STORE_MARKER: "dataset"})
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Consolidated metadata.*")
        prepared.to_zarr(target, mode="w", zarr_format=3, consolidated=True)


def _store_kind(path: Path) -> str | None:
    import json

    meta = path / "zarr.json"
    if not meta.is_file():
        return None
    try:
        attrs = json.loads(meta.read_text()).get("attributes", {})
    except (OSError, ValueError):
        return None
    return attrs.get(STORE_MARKER)


def _carry_children(old_store: Path, new_store: Path, names: tuple[str, ...]) -> None:
    """Move child groups (e.g. an ongoing fit's checkpoint) into the new store."""
    for name in names:
        child = old_store / name
        if child.is_dir() and not (new_store / name).exists():
            child.rename(new_store / name)


def _swap_in(tmp: Path, target: Path, keep: tuple[str, ...] = ()) -> None:
    old = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
    if target.exists():
        _carry_children(target, tmp, keep)
        target.rename(old)
    try:
        tmp.rename(target)
    except OSError:
        if old.exists():
            old.rename(target)
        raise
    if old.exists():
        shutil.rmtree(old, ignore_errors=True)


def write_atomic(
    obj: xr.Dataset | xr.DataTree, path: Path, keep: tuple[str, ...] = ()
) -> None:
    """Write ``obj`` to ``path`` beside the old store, then swap it in.

    Parameters
    ----------
    obj
        What to write.
    path
        Target directory; an existing one stays readable until the swap.
    keep
        Child directories of the existing store to move into the new one
        (used for the checkpoint of an ongoing fit).
    """
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        if isinstance(obj, xr.DataTree):
            _write_tree(obj, tmp)
        else:
            _write_dataset(obj, tmp)
        _swap_in(tmp, path, keep)
    except BaseException as error:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(error, OSError):
            raise StoreError(f"{path}: could not be written: {error}") from error
        raise


def _append_recordings(existing: xr.Dataset, new: xr.Dataset, path: Path) -> xr.Dataset:
    clash = sorted(
        {str(r) for r in existing[N.RECORDING].values}
        & {str(r) for r in new[N.RECORDING].values}
    )
    if clash:
        raise StoreError(f"{path}: recordings {clash} are already in the store")
    for coord in (N.KEYPOINT, N.SPACE):
        have = [str(v) for v in existing[coord].values]
        given = [str(v) for v in new[coord].values]
        if sorted(have) != sorted(given):
            raise StoreError(
                f"{path}: new recordings have {coord}s {given}, the store has {have}"
            )
        new = new.sel({coord: have})
    if not np.isclose(existing.attrs["fps"], new.attrs["fps"]):
        raise StoreError(
            f"{path}: new recordings have fps {new.attrs['fps']}, the store has "
            f"{existing.attrs['fps']}"
        )
    pose_vars = list(N.DATA_VARS)
    combined = xr.concat(
        [existing, new[pose_vars]],
        dim=N.RECORDING,
        join="outer",
        combine_attrs="override",
        data_vars="minimal",
        coords="different",
        compat="equals",
    )
    n_time = combined.sizes[N.TIME]
    combined = combined.assign_coords(
        {
            N.TIME: np.arange(n_time) / existing.attrs["fps"],
            "frame": (N.TIME, np.arange(n_time)),
        }
    )
    combined[N.TIME].attrs = dict(existing[N.TIME].attrs)
    combined.attrs = with_provenance(
        existing.attrs,
        "moseq_xr.save",
        {"mode": "a", "added": [str(r) for r in new[N.RECORDING].values]},
    )
    return combined


def save(data: xr.Dataset | xr.DataTree, path: str | Path, mode: str = "w") -> Path:
    """Save a pose Dataset (or a fitted DataTree) as a project store.

    Parameters
    ----------
    data
        A valid pose Dataset, or a DataTree whose root is one.
    path
        Directory of the Zarr store, e.g. ``"project.zarr"``.
    mode
        ``"w"`` replaces an existing moseq_xr store; ``"a"`` adds the
        recordings of ``data`` to the store's pose Dataset (names must be new,
        keypoints, space and fps must match).

    Returns
    -------
    Path
        The store path.

    Raises
    ------
    StoreError
        If ``path`` exists but is not a moseq_xr store, or appending is
        impossible. The previous store is left untouched on any failure.
    """
    path = Path(path)
    if mode not in ("w", "a"):
        raise ValueError(f"mode must be 'w' or 'a', got {mode!r}")
    root = data.to_dataset(inherit=False) if isinstance(data, xr.DataTree) else data
    validate(root, deep=False)
    kind = _store_kind(path) if path.exists() else None
    if path.exists() and kind is None:
        raise StoreError(
            f"{path}: exists and is not a moseq_xr project store; "
            "refusing to overwrite it"
        )
    if mode == "a" and kind is not None:
        existing = open(path)
        if isinstance(existing, xr.DataTree):
            tree = existing.copy()
            tree.dataset = _append_recordings(
                existing.to_dataset(inherit=False), root, path
            )
            data = tree
        else:
            data = _append_recordings(existing, root, path)
    write_atomic(data, path, keep=(CHECKPOINT_GROUP,))
    return path


def open(path: str | Path) -> xr.Dataset | xr.DataTree:
    """Open a project store lazily (Dask-backed).

    Parameters
    ----------
    path
        Store written by :func:`save`.

    Returns
    -------
    xarray.Dataset or xarray.DataTree
        What was saved: a pose Dataset, or a DataTree (fitted project).
    """
    path = Path(path)
    kind = _store_kind(path)
    if kind is None:
        raise StoreError(
            f"{path}: not a moseq_xr project store (no {STORE_MARKER} marker)"
        )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Consolidated metadata.*")
        if kind == "tree":
            tree = xr.open_datatree(path, engine="zarr", chunks={}, consolidated=True)
            tree = tree.map_over_datasets(
                lambda node: _load_small_coords(_strings_from_zarr(node))
            )
            tree.attrs.pop(STORE_MARKER, None)
            return tree
        ds = xr.open_zarr(path, consolidated=True)
    ds = _load_small_coords(_strings_from_zarr(ds))
    ds.attrs.pop(STORE_MARKER, None)
    for var in ds.variables.values():
        var.encoding.pop("chunks", None)
        var.encoding.pop("preferred_chunks", None)
    return ds


def is_store(path: str | Path) -> bool:
    """Whether ``path`` is a moseq_xr project store."""
    with contextlib.suppress(OSError):
        return _store_kind(Path(path)) is not None
    return False
