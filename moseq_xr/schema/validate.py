"""Checking an existing Dataset against the pose data contract.

:func:`validate` walks the declarative tables of :mod:`moseq_xr.schema.names`
and raises one :class:`~moseq_xr.exceptions.SchemaError` naming the first rule
broken. Value-level checks (padding, time grid) read the data, so for lazy
Dask-backed Datasets they run only when asked (``deep=True``).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import xarray as xr

from moseq_xr.exceptions import SchemaError
from moseq_xr.schema import names as N


def _is_lazy(ds: xr.Dataset) -> bool:
    return any(var.chunks is not None for var in ds.variables.values())


def _check_variable(
    ds: xr.Dataset, name: str, spec: N.VariableSpec, where: str
) -> None:
    if name not in ds.variables:
        if spec.required:
            raise SchemaError(name, f"required {where} '{name}' is missing")
        return
    variable = ds.variables[name]
    if tuple(variable.dims) != spec.dims:
        raise SchemaError(
            name,
            f"{where} '{name}' must have dims {spec.dims}, got {tuple(variable.dims)}",
        )
    kind = variable.dtype.kind
    if kind == "T":  # numpy StringDType
        kind = "U"
    if kind not in spec.kind and not (kind == "O" and "U" in spec.kind):
        raise SchemaError(
            name,
            f"{where} '{name}' must have dtype kind {spec.kind!r}, "
            f"got {variable.dtype}",
        )


def _check_labels(ds: xr.Dataset) -> None:
    for dim in (N.RECORDING, N.KEYPOINT, N.INDIVIDUAL):
        values = [str(v) for v in ds[dim].values]
        if len(set(values)) != len(values):
            dupes = sorted({v for v in values if values.count(v) > 1})
            raise SchemaError(
                dim, f"'{dim}' labels must be unique, duplicated: {dupes}"
            )
        if any(v == "" for v in values):
            raise SchemaError(dim, f"'{dim}' labels must be non-empty strings")
    space = [str(v) for v in ds[N.SPACE].values]
    if space not in (list(N.SPACE_LABELS[:2]), list(N.SPACE_LABELS)):
        raise SchemaError(
            N.SPACE, f"'space' must be ['x', 'y'] or ['x', 'y', 'z'], got {space}"
        )


def _check_attrs(attrs: Mapping[str, object], keypoints: list[str]) -> None:
    for name, spec in N.ATTRS.items():
        if spec.required and name not in attrs:
            raise SchemaError(name, f"required attribute '{name}' is missing")
    fps = attrs["fps"]
    if not isinstance(fps, int | float | np.number) or not np.isfinite(fps) or fps <= 0:
        raise SchemaError(
            "fps", f"attribute 'fps' must be a positive number, got {fps!r}"
        )
    if not isinstance(attrs["provenance"], list | tuple):
        raise SchemaError(
            "provenance", "attribute 'provenance' must be a list of entries"
        )
    for edge in attrs.get("skeleton") or []:
        if len(edge) != 2 or any(str(node) not in keypoints for node in edge):
            raise SchemaError(
                "skeleton", f"skeleton edge {list(edge)} must join two known keypoints"
            )
    unit = attrs.get("space_unit")
    if unit is not None and unit not in N.SPACE_UNITS:
        raise SchemaError(
            "space_unit", f"space_unit must be one of {N.SPACE_UNITS}, got {unit!r}"
        )


def _check_values(ds: xr.Dataset) -> None:
    fps = float(ds.attrs["fps"])
    frame = ds["frame"].values
    if not np.array_equal(frame, np.arange(ds.sizes[N.TIME])):
        raise SchemaError("frame", "'frame' must be 0, 1, 2, ... along time")
    if not np.allclose(ds[N.TIME].values, frame / fps, rtol=1e-9, atol=1e-9):
        raise SchemaError(N.TIME, "'time' must equal frame / fps")
    n_frames = ds["n_frames"].values
    if np.any(n_frames < 1) or np.any(n_frames > ds.sizes[N.TIME]):
        raise SchemaError("n_frames", f"'n_frames' must lie in 1..{ds.sizes[N.TIME]}")
    padding = xr.DataArray(
        np.arange(ds.sizes[N.TIME])[None, :] >= n_frames[:, None],
        dims=(N.RECORDING, N.TIME),
    )
    for name in ("position", "confidence", "timestamp"):
        if bool(ds[name].where(padding).notnull().any()):
            raise SchemaError(
                name, f"'{name}' must be NaN beyond each recording's n_frames"
            )


def validate(ds: xr.Dataset, *, deep: bool | None = None) -> xr.Dataset:
    """Check that ``ds`` is a valid moseq_xr pose Dataset.

    Parameters
    ----------
    ds
        The Dataset to check (or a fitted DataTree, whose root is checked).
    deep
        Also check values (time grid, padding). Default: only when the data
        are in memory, so that lazy Datasets are not read.

    Returns
    -------
    xarray.Dataset
        ``ds`` itself, so that calls can be chained.

    Raises
    ------
    SchemaError
        Naming the first rule broken.
    """
    if isinstance(ds, xr.DataTree):  # a fitted project: the pose data are its root
        ds = ds.to_dataset(inherit=False)
    if not isinstance(ds, xr.Dataset):
        raise SchemaError(
            "type", f"expected an xarray.Dataset, got {type(ds).__name__}"
        )
    for name, spec in N.COORDS.items():
        _check_variable(ds, name, spec, "coordinate")
    for name, spec in N.DATA_VARS.items():
        _check_variable(ds, name, spec, "variable")
    for name, spec in N.RESULT_VARS.items():
        _check_variable(ds, name, spec, "result variable")
    _check_labels(ds)
    _check_attrs(ds.attrs, [str(k) for k in ds[N.KEYPOINT].values])
    if deep is None:
        deep = not _is_lazy(ds)
    if deep:
        _check_values(ds)
    return ds
