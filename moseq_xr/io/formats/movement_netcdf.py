"""movement poses Datasets saved as netCDF (``ds.to_netcdf("poses.nc")``).

A movement (https://movement.neuroinformatics.dev) poses Dataset has
``position`` with dims ``(time, space, keypoint, individual)`` and
``confidence`` point-wise ``(time, keypoint, individual)`` or individual-wise
``(time, individual)``. Files written before movement 0.17 use the plural dim
names ``keypoints`` and ``individuals``; both spellings are read.

What is taken from the file:

- ``fps`` attribute (absent when the Dataset was built without one);
- ``time``: frame numbers when ``time_unit == "frames"`` (or, without that
  attribute, when the coordinate is integer), else seconds, turned into frame
  numbers with ``fps``. Seconds that are not whole frames, or seconds without
  ``fps``, are kept as ``timestamps`` and the rows are taken as consecutive
  frames;
- ``confidence``: an all-NaN confidence (movement's placeholder when the
  source had none) counts as no confidence (1.0 filled and flagged);
  individual-wise confidence is repeated for every keypoint;
- ``source_software``, ``video_path`` and ``space_unit`` (attribute of
  ``position`` or of the Dataset) when present.

Bounding-box Datasets (``ds_type == "bboxes"``) and multi-recording moseq_xr
Datasets are refused with a clear error.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from moseq_xr.exceptions import DataQualityWarning, LoaderError
from moseq_xr.io.registry import register_loader
from moseq_xr.schema import RecordingData
from moseq_xr.schema.names import DEFAULT_INDIVIDUAL, SPACE_LABELS, SPACE_UNITS

SOURCE_SOFTWARE = "movement"
POSE_DIMS = ("time", "space", "keypoint", "individual")
LEGACY_DIMS = {"keypoints": "keypoint", "individuals": "individual"}
_NETCDF3_MAGIC = b"CDF"
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_HDF5_ENGINES = ("netcdf4", "h5netcdf")
_UNIT_ALIASES = {
    "px": "pixels",
    "pixel": "pixels",
    "mm": "millimeters",
    "millimetres": "millimeters",
    "cm": "centimeters",
    "centimetres": "centimeters",
    "m": "meters",
    "metres": "meters",
}


def _open(path: Path, magic: bytes) -> xr.Dataset:
    """Open lazily with xarray, explaining a missing netCDF-4 backend."""
    if magic.startswith(_HDF5_MAGIC) and not any(
        engine in xr.backends.list_engines() for engine in _HDF5_ENGINES
    ):
        raise ImportError(
            f"{path}: reading netCDF-4 files needs the netCDF4 (or h5netcdf) package: "
            "pip install netCDF4"
        )
    return xr.open_dataset(path)


def _magic(path: Path) -> bytes:
    with open(path, "rb") as handle:
        return handle.read(len(_HDF5_MAGIC))


def _is_movement_netcdf(path: Path) -> bool:
    """Whether ``path`` is a netCDF file holding a ``position`` variable."""
    magic = _magic(path)
    if not (magic.startswith(_NETCDF3_MAGIC) or magic.startswith(_HDF5_MAGIC)):
        return False
    try:
        with _open(path, magic) as ds:
            return "position" in ds.data_vars
    except (OSError, ValueError):  # HDF5 but not netCDF, or undecodable
        return False


def _rename_legacy_dims(ds: xr.Dataset) -> xr.Dataset:
    """Plural dim names of movement < 0.17 to the singular ones."""
    renames = {
        old: new
        for old, new in LEGACY_DIMS.items()
        if old in ds.dims and new not in ds.dims
    }
    return ds.rename(renames) if renames else ds


def _check_pose_dims(path: Path, ds: xr.Dataset) -> None:
    if ds.attrs.get("ds_type") == "bboxes":
        raise LoaderError(
            path, "a movement bounding-box Dataset (ds_type='bboxes'), not poses"
        )
    dims = set(ds["position"].dims)
    if "recording" in dims:
        raise LoaderError(
            path,
            "has a 'recording' dimension: a moseq_xr Dataset, not a movement one; "
            "open it with xarray.open_dataset",
        )
    if dims != set(POSE_DIMS):
        raise LoaderError(
            path,
            f"'position' has dims {ds['position'].dims}; expected {POSE_DIMS} "
            "(or the legacy plural keypoints/individuals)",
        )


def _labels(ds: xr.Dataset, dim: str, default_prefix: str) -> list[str]:
    if dim in ds.coords:
        values = np.asarray(ds[dim].values).tolist()
        return [v.decode() if isinstance(v, bytes) else str(v) for v in values]
    return [f"{default_prefix}_{i}" for i in range(ds.sizes[dim])]


def _space_order(path: Path, ds: xr.Dataset) -> list[int]:
    """Index of x, y[, z] along ``space`` (files may store another order)."""
    n_space = ds.sizes["space"]
    if n_space not in (2, 3):
        raise LoaderError(path, f"'space' has {n_space} entries; expected x, y[, z]")
    if "space" not in ds.coords:
        return list(range(n_space))
    labels = _labels(ds, "space", "space")
    wanted = list(SPACE_LABELS[:n_space])
    if sorted(labels) != sorted(wanted):
        raise LoaderError(path, f"'space' labels {labels}; expected {wanted}")
    return [labels.index(label) for label in wanted]


def _confidence(path: Path, ds: xr.Dataset) -> np.ndarray | None:
    """Confidence as (time, keypoint, individual), or None when absent/all-NaN."""
    if "confidence" not in ds.data_vars:
        return None
    conf = ds["confidence"]
    if bool(conf.isnull().all()):
        return None
    if set(conf.dims) == {"time", "keypoint", "individual"}:
        return conf.transpose("time", "keypoint", "individual").values.astype(
            np.float64
        )
    if set(conf.dims) == {"time", "individual"}:
        per_individual = conf.transpose("time", "individual").values.astype(np.float64)
        return np.repeat(per_individual[:, None, :], ds.sizes["keypoint"], axis=1)
    raise LoaderError(
        path,
        f"'confidence' has dims {conf.dims}; expected (time, keypoint, individual) "
        "or (time, individual)",
    )


def _fps(ds: xr.Dataset) -> float | None:
    value = ds.attrs.get("fps")
    try:
        fps = float(value)
    except (TypeError, ValueError):
        return None
    return fps if np.isfinite(fps) and fps > 0 else None


def _time_values(path: Path, ds: xr.Dataset) -> np.ndarray | None:
    if "time" not in ds.coords:
        return None
    values = np.asarray(ds["time"].values)
    if values.dtype.kind == "m":
        return values / np.timedelta64(1, "s")
    if values.dtype.kind not in "iuf":
        raise LoaderError(path, f"'time' has dtype {values.dtype}; expected numbers")
    return values


def _frames_and_timestamps(
    path: Path, ds: xr.Dataset, fps: float | None
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Video frame of each row (None = 0..T-1) and timestamps in seconds."""
    values = _time_values(path, ds)
    if values is None:
        return None, None
    is_int = values.dtype.kind in "iu"
    unit = ds.attrs.get("time_unit") or ("frames" if is_int else "seconds")
    if unit not in ("frames", "seconds"):
        raise LoaderError(path, f"time_unit {unit!r}; expected 'frames' or 'seconds'")
    if unit == "seconds" and fps is None:
        return None, values.astype(np.float64)
    frames = values.astype(np.float64) * (fps if unit == "seconds" else 1.0)
    rounded = np.rint(frames)
    if not np.allclose(frames, rounded, atol=1e-3):
        if unit == "frames":
            raise LoaderError(path, "time_unit is 'frames' but 'time' holds fractions")
        return None, values.astype(np.float64)
    frame = rounded.astype(np.int64)
    return (None if np.array_equal(frame, np.arange(frame.size)) else frame), None


def _space_unit(path: Path, ds: xr.Dataset) -> str | None:
    unit = ds["position"].attrs.get("space_unit", ds.attrs.get("space_unit"))
    if unit is None:
        return None
    unit = _UNIT_ALIASES.get(str(unit).lower(), str(unit).lower())
    if unit not in SPACE_UNITS:
        warnings.warn(
            f"{path}: space_unit {unit!r} is not one of {SPACE_UNITS}; "
            "recorded as unknown",
            DataQualityWarning,
            stacklevel=4,
        )
        return None
    return unit


def _text_attr(ds: xr.Dataset, name: str, default: str = "") -> str:
    value: Any = ds.attrs.get(name)
    return str(value) if value is not None and str(value) else default


@register_loader(
    "movement",
    suffixes=(".nc",),
    sniff=_is_movement_netcdf,
    priority=50,
    description="movement poses Dataset saved as netCDF (.nc), 2D/3D, multi-animal",
)
def read_movement_netcdf(path: Path) -> list[RecordingData]:
    """Read a movement poses Dataset saved with ``to_netcdf``.

    Parameters
    ----------
    path
        A ``.nc`` file with ``position`` (and usually ``confidence``).

    Returns
    -------
    list of RecordingData
        One recording named after the file stem, keeping the file's keypoint
        and individual names and order.
    """
    path = Path(path)
    with _open(path, _magic(path)) as lazy:
        ds = _rename_legacy_dims(lazy.load())
    if "position" not in ds.data_vars:
        raise LoaderError(
            path, "no 'position' variable; expected a movement poses Dataset"
        )
    _check_pose_dims(path, ds)
    fps = _fps(ds)
    frame, timestamps = _frames_and_timestamps(path, ds, fps)
    space = _space_order(path, ds)
    position = ds["position"].transpose(*POSE_DIMS).values.astype(np.float64)[:, space]
    individuals = _labels(ds, "individual", "individual")
    if "individual" not in ds.coords and len(individuals) == 1:
        individuals = [DEFAULT_INDIVIDUAL]
    return [
        RecordingData(
            name=path.stem,
            position=position,
            keypoints=_labels(ds, "keypoint", "keypoint"),
            individuals=individuals,
            confidence=_confidence(path, ds),
            fps=fps,
            frame=frame,
            timestamps=timestamps,
            source_file=path.as_posix(),
            source_software=_text_attr(ds, "source_software", SOURCE_SOFTWARE),
            video_path=_text_attr(ds, "video_path"),
            space_unit=_space_unit(path, ds),
        )
    ]
