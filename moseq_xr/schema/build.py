"""The only constructor of pose Datasets.

Loaders never assemble xarray objects themselves: each returns
:class:`RecordingData` records (plain numpy arrays plus names), and
:func:`build_dataset` turns any number of them into one contract-valid Dataset.
That is where names are checked, recordings padded, gaps in the frame index
filled with NaN rows, fps resolved and confidences filled.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import xarray as xr

from moseq_xr._provenance import with_provenance
from moseq_xr.exceptions import DataQualityWarning, LoaderError, SchemaError
from moseq_xr.schema import names as N
from moseq_xr.schema.validate import validate


@dataclass
class RecordingData:
    """One recording as read from a file, before it becomes part of a Dataset.

    Attributes
    ----------
    name
        Suggested recording name (file stem, plus a suffix for extra views).
    position
        Coordinates, shape ``(time, space, keypoint, individual)``; NaN = missing.
    keypoints, individuals
        Names along the keypoint and individual axes of ``position``.
    confidence
        Shape ``(time, keypoint, individual)`` or None when the file has none.
    fps
        Frame rate recorded in the file, or None.
    frame
        Video frame index of each row of ``position`` (increasing). None means
        rows are consecutive frames starting at 0.
    timestamps
        Absolute time of each row in seconds, when the file records it.
    start_time
        Absolute time of frame 0 in seconds, when recorded and no timestamps.
    source_file, source_software, video_path
        Provenance of the recording.
    skeleton
        Edges as pairs of keypoint names, when the file defines them.
    space_unit
        Unit of the coordinates, when known.
    """

    name: str
    position: np.ndarray
    keypoints: Sequence[str]
    individuals: Sequence[str]
    confidence: np.ndarray | None = None
    fps: float | None = None
    frame: np.ndarray | None = None
    timestamps: np.ndarray | None = None
    start_time: float | None = None
    source_file: str = ""
    source_software: str = ""
    video_path: str = ""
    skeleton: list[tuple[str, str]] | None = None
    space_unit: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _fail(record: RecordingData, message: str) -> LoaderError:
    return LoaderError(record.source_file or record.name, message)


def _check_record_shapes(record: RecordingData) -> None:
    pos = np.asarray(record.position)
    if pos.ndim != 4:
        raise _fail(
            record,
            f"position must have 4 axes (time, space, keypoint, individual), "
            f"got shape {pos.shape}",
        )
    n_time, n_space, n_kp, n_ind = pos.shape
    if n_space not in (2, 3):
        raise _fail(record, f"expected 2 or 3 spatial coordinates, got {n_space}")
    if len(record.keypoints) != n_kp:
        raise _fail(
            record, f"{len(record.keypoints)} keypoint names for {n_kp} keypoints"
        )
    if len(record.individuals) != n_ind:
        raise _fail(
            record,
            f"{len(record.individuals)} individual names for {n_ind} individuals",
        )
    for label, values in (
        ("keypoint", record.keypoints),
        ("individual", record.individuals),
    ):
        duplicates = sorted({v for v in values if list(values).count(v) > 1})
        if duplicates:
            raise _fail(record, f"duplicate {label} names {duplicates}")
    if record.confidence is not None and np.shape(record.confidence) != (
        n_time,
        n_kp,
        n_ind,
    ):
        raise _fail(
            record,
            f"confidence shape {np.shape(record.confidence)} does not match "
            f"position (time, keypoint, individual) = {(n_time, n_kp, n_ind)}",
        )
    if n_time == 0:
        raise _fail(record, "the file holds no frames")


def _frame_rows(record: RecordingData) -> np.ndarray:
    """Row index in the output (frame number) of each input row."""
    n_time = np.shape(record.position)[0]
    if record.frame is None:
        return np.arange(n_time)
    frame = np.asarray(record.frame)
    if frame.shape != (n_time,) or not np.issubdtype(frame.dtype, np.integer):
        raise _fail(record, f"frame index must be {n_time} integers")
    if frame.min() < 0 or np.any(np.diff(frame) <= 0):
        raise _fail(record, "frame indices must be non-negative and increasing")
    return frame


def _resolve_fps(records: Sequence[RecordingData], fps: float | None) -> float:
    file_fps = {r.source_file or r.name: r.fps for r in records if r.fps is not None}
    if fps is not None:
        fps = float(fps)
        if not np.isfinite(fps) or fps <= 0:
            raise SchemaError("fps", f"fps must be a positive number, got {fps!r}")
        disagree = {k: v for k, v in file_fps.items() if not np.isclose(v, fps)}
        if disagree:
            warnings.warn(
                f"fps={fps} given, but the files record {disagree}; using {fps}.",
                DataQualityWarning,
                stacklevel=3,
            )
        return fps
    missing = [r.source_file or r.name for r in records if r.fps is None]
    if missing:
        raise SchemaError(
            "fps",
            f"no frame rate is recorded in {missing}; pass fps= (frames per "
            "second) so that time can be built",
        )
    values = sorted(set(np.round(list(file_fps.values()), 6)))
    if len(values) > 1:
        raise SchemaError(
            "fps",
            f"files record different frame rates {file_fps}; one Dataset has one "
            "fps: load them separately or pass fps=",
        )
    return float(values[0])


def _select_names(
    available: Sequence[str],
    wanted: Sequence[str] | None,
    label: str,
    record: RecordingData,
) -> list[int]:
    if wanted is None:
        return list(range(len(available)))
    missing = [w for w in wanted if w not in available]
    if missing:
        raise _fail(
            record, f"{label}s {missing} not found; the file has {list(available)}"
        )
    return [list(available).index(w) for w in wanted]


def _common_keypoints(
    records: Sequence[RecordingData], keypoints: Sequence[str] | None
) -> list[str]:
    if keypoints is not None:
        return list(keypoints)
    first = list(records[0].keypoints)
    for record in records[1:]:
        if set(record.keypoints) != set(first):
            only_first = sorted(set(first) - set(record.keypoints))
            only_this = sorted(set(record.keypoints) - set(first))
            raise _fail(
                record,
                f"keypoints differ from {records[0].source_file or records[0].name}: "
                f"missing {only_first}, extra {only_this}. Pass keypoints=[...] to "
                "load the common subset",
            )
    return first


def _union_individuals(
    records: Sequence[RecordingData], individuals: Sequence[str] | None
) -> list[str]:
    if individuals is not None:
        known = {i for record in records for i in record.individuals}
        unknown = [i for i in individuals if i not in known]
        if unknown:
            raise SchemaError(
                "individual",
                f"individuals {unknown} are in none of the files; "
                f"they have {sorted(known)}",
            )
        return list(individuals)
    union: list[str] = []
    for record in records:
        union.extend(i for i in record.individuals if i not in union)
    return union


def _place(
    record: RecordingData, keypoints: list[str], individuals: list[str], n_time: int
) -> tuple[np.ndarray, np.ndarray]:
    """Position and confidence of one record on the output grid."""
    kp_idx = _select_names(record.keypoints, keypoints, "keypoint", record)
    ind_in = [i for i in individuals if i in record.individuals]
    ind_src = [list(record.individuals).index(i) for i in ind_in]
    ind_dst = [individuals.index(i) for i in ind_in]
    rows = _frame_rows(record)
    pos_in = np.asarray(record.position, dtype=np.float64)
    n_space = pos_in.shape[1]
    position = np.full((n_time, n_space, len(keypoints), len(individuals)), np.nan)
    confidence = np.full((n_time, len(keypoints), len(individuals)), np.nan)
    sub = pos_in[:, :, kp_idx][:, :, :, ind_src]
    n_kp = len(keypoints)
    position[np.ix_(rows, range(n_space), range(n_kp), ind_dst)] = sub
    if record.confidence is None:
        conf_sub = np.where(np.isnan(sub).any(axis=1), np.nan, 1.0)
    else:
        conf_in = np.asarray(record.confidence, dtype=np.float64)
        conf_sub = conf_in[:, kp_idx][:, :, ind_src]
    confidence[np.ix_(rows, range(n_kp), ind_dst)] = conf_sub
    return position, confidence


def _timestamps(
    record: RecordingData, n_frames: int, fps: float
) -> tuple[float, np.ndarray]:
    rows = _frame_rows(record)
    if record.timestamps is None:
        start = float(record.start_time or 0.0)
        return start, start + np.arange(n_frames) / fps
    stamps = np.asarray(record.timestamps, dtype=np.float64)
    if stamps.shape != rows.shape:
        raise _fail(record, f"{stamps.size} timestamps for {rows.size} frames")
    if np.any(np.diff(stamps) <= 0):
        raise _fail(record, "timestamps must increase")
    start = float(stamps[0] - rows[0] / fps)
    full = start + np.arange(n_frames) / fps
    full[rows] = stamps
    return start, full


def _skeleton(
    records: Sequence[RecordingData], keypoints: list[str]
) -> list[list[str]] | None:
    for record in records:
        if record.skeleton:
            return [
                [str(a), str(b)]
                for a, b in record.skeleton
                if a in keypoints and b in keypoints
            ]
    return None


def _space_unit(records: Sequence[RecordingData]) -> str:
    units = {r.space_unit or "unknown" for r in records}
    return units.pop() if len(units) == 1 else "unknown"


def build_dataset(
    records: Sequence[RecordingData],
    *,
    fps: float | None = None,
    keypoints: Sequence[str] | None = None,
    individuals: Sequence[str] | None = None,
    operation: str = "moseq_xr.build_dataset",
    arguments: Mapping[str, Any] | None = None,
) -> xr.Dataset:
    """Assemble recordings into one contract-valid pose Dataset.

    Parameters
    ----------
    records
        One entry per recording; names must be unique.
    fps
        Frame rate in frames per second. Required when a record has none;
        overrides (with a warning) rates recorded in the files.
    keypoints
        Keep only these keypoints, in this order. Without it every record must
        have the same keypoint set (the first record's order is used).
    individuals
        Keep only these individuals, in this order. Without it the union of
        the records' individuals is used; individuals absent from a recording
        are all-NaN there.
    operation, arguments
        Recorded as the first provenance entry.

    Returns
    -------
    xarray.Dataset
        Valid according to :func:`moseq_xr.schema.validate`.
    """
    if not records:
        raise SchemaError("recording", "no recordings to build a Dataset from")
    for record in records:
        _check_record_shapes(record)
    names = [r.name for r in records]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise SchemaError("recording", f"recording names must be unique, got {dupes}")
    n_space = {np.shape(r.position)[1] for r in records}
    if len(n_space) > 1:
        raise SchemaError("space", "recordings mix 2D and 3D coordinates")
    fps_value = _resolve_fps(records, fps)
    keypoint_names = _common_keypoints(records, keypoints)
    individual_names = _union_individuals(records, individuals)
    lengths = [int(_frame_rows(r)[-1]) + 1 for r in records]
    n_time = max(lengths)
    placed = [_place(r, keypoint_names, individual_names, n_time) for r in records]
    stamps = [
        _timestamps(r, n, fps_value) for r, n in zip(records, lengths, strict=True)
    ]
    timestamp = np.full((len(records), n_time), np.nan)
    for row, ((_, full), n) in enumerate(zip(stamps, lengths, strict=True)):
        timestamp[row, :n] = full
    space = list(N.SPACE_LABELS[: n_space.pop()])
    frame = np.arange(n_time, dtype=np.int64)
    ds = xr.Dataset(
        {
            "position": (N.DIMS, np.stack([p for p, _ in placed])),
            "confidence": (
                N.DATA_VARS["confidence"].dims,
                np.stack([c for _, c in placed]),
            ),
        },
        coords={
            N.RECORDING: np.array(names, dtype=str),
            N.TIME: frame / fps_value,
            "frame": (N.TIME, frame),
            N.SPACE: np.array(space, dtype=str),
            N.KEYPOINT: np.array(keypoint_names, dtype=str),
            N.INDIVIDUAL: np.array(individual_names, dtype=str),
            "n_frames": (N.RECORDING, np.array(lengths, dtype=np.int64)),
            "source_file": (
                N.RECORDING,
                np.array([r.source_file for r in records], dtype=str),
            ),
            "source_software": (
                N.RECORDING,
                np.array([r.source_software for r in records], dtype=str),
            ),
            "confidence_filled": (
                N.RECORDING,
                np.array([r.confidence is None for r in records], dtype=bool),
            ),
            "start_time": (
                N.RECORDING,
                np.array([s for s, _ in stamps], dtype=np.float64),
            ),
            "timestamp": ((N.RECORDING, N.TIME), timestamp),
            "video_path": (
                N.RECORDING,
                np.array([r.video_path for r in records], dtype=str),
            ),
        },
    )
    ds["time"].attrs.update(units="s", long_name="time since video frame 0")
    ds["position"].attrs["units"] = _space_unit(records)
    attrs: dict[str, Any] = {
        "fps": fps_value,
        "schema_version": N.SCHEMA_VERSION,
        "space_unit": _space_unit(records),
    }
    skeleton = _skeleton(records, keypoint_names)
    if skeleton:
        attrs["skeleton"] = skeleton
    ds.attrs = with_provenance(attrs, operation, arguments or {})
    validate(ds)
    return ds
