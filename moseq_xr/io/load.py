"""Public loading entry points: :func:`load_poses` and :func:`from_arrays`."""

from __future__ import annotations

import glob
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from moseq_xr.exceptions import DataQualityWarning, FormatDetectionError, LoaderError
from moseq_xr.io.registry import detect_source, read_file, supported_sources
from moseq_xr.schema import RecordingData, build_dataset, validate
from moseq_xr.schema import names as N
from moseq_xr.schema.names import DEFAULT_INDIVIDUAL

PathLike = str | Path

#: Files that sit beside pose files but are not pose files (Lightning Pose sidecars,
#: DLC metadata, configs).
_SIDECAR_MARKERS = (
    "_pixel_error",
    "_temporal_norm",
    "_pca_singleview_error",
    "_pca_multiview_error",
    "_meta.pickle",
    "config.yaml",
)


def _is_sidecar(path: Path) -> bool:
    return any(marker in path.name for marker in _SIDECAR_MARKERS)


def _known_suffixes() -> tuple[str, ...]:
    return tuple(
        sorted({s for loader in supported_sources().values() for s in loader.suffixes})
    )


def expand_paths(paths: PathLike | Sequence[PathLike]) -> list[Path]:
    """Expand a file, directory, glob or list of these into sorted pose files.

    Parameters
    ----------
    paths
        One path or pattern, or a sequence of them. Directories are searched
        recursively for files with a known pose-file ending.

    Returns
    -------
    list of Path
        Unique files, sorted within each argument.

    Raises
    ------
    LoaderError
        When an argument matches nothing.
    """
    return [path for path, _ in _expand_with_origin(paths)]


def _expand_with_origin(
    paths: PathLike | Sequence[PathLike],
) -> list[tuple[Path, bool]]:
    """Files to read, each with whether it was found by searching a directory."""
    items = [paths] if isinstance(paths, str | Path) else list(paths)
    found: list[tuple[Path, bool]] = []
    for item in items:
        path = Path(item)
        searched = path.is_dir()
        if searched:
            suffixes = _known_suffixes()
            matches = sorted(
                p
                for p in path.rglob("*")
                if p.is_file()
                and p.name.lower().endswith(suffixes)
                and not _is_sidecar(p)
            )
        elif path.is_file():
            matches = [path]
        else:
            matches = sorted(Path(p) for p in glob.glob(str(item), recursive=True))
            matches = [p for p in matches if p.is_file()]
        if not matches:
            raise LoaderError(item, "no such file, or no pose files match it")
        known = {p for p, _ in found}
        found.extend((m, searched) for m in matches if m not in known)
    return found


def _recognised(files: list[tuple[Path, bool]], source: str) -> list[Path]:
    """Drop files found by a directory search that no format recognises (warn once)."""
    if source != "auto":
        return [path for path, _ in files]
    kept, skipped = [], []
    for path, searched in files:
        if searched:
            try:
                detect_source(path)
            except FormatDetectionError:
                skipped.append(path.as_posix())
                continue
        kept.append(path)
    if skipped:
        warnings.warn(
            f"skipped {len(skipped)} file(s) that are not pose files of a known "
            f"format: {skipped}",
            DataQualityWarning,
            stacklevel=3,
        )
    if not kept:
        raise LoaderError(", ".join(skipped), "none of these files is a pose file")
    return kept


def _unique_names(records: list[RecordingData]) -> None:
    """Make recording names unique by prefixing parent folders where needed."""
    for _ in range(8):
        names = [r.name for r in records]
        clashes = {n for n in names if names.count(n) > 1}
        if not clashes:
            return
        for record in records:
            if record.name in clashes and record.source_file:
                parents = Path(record.source_file).resolve().parent.parts
                depth = record.extra.setdefault("_name_depth", 0) + 1
                record.extra["_name_depth"] = depth
                prefix = "-".join(parents[-depth:])
                record.name = (
                    f"{prefix}-{record.extra.setdefault('_base_name', record.name)}"
                )
    names = [r.name for r in records]
    raise LoaderError(
        ", ".join(r.source_file for r in records if names.count(r.name) > 1),
        "these files give the same recording name; rename them",
    )


def load_poses(
    paths: PathLike | Sequence[PathLike],
    source: str = "auto",
    fps: float | None = None,
    keypoints: Sequence[str] | None = None,
    individuals: Sequence[str] | None = None,
    **options: Any,
) -> xr.Dataset:
    """Load pose-tracking files into one moseq_xr pose Dataset.

    Parameters
    ----------
    paths
        A file, a directory (searched recursively), a glob pattern, or a list
        of these. Each file becomes one recording (or one per camera view or
        pose container it holds), named after the file stem.
    source
        Format name (see :func:`moseq_xr.io.supported_sources`) or ``"auto"``
        to detect each file's format from its ending and content.
    fps
        Frames per second. Required when the files do not record it; when
        given, it overrides (with a warning) what the files record.
    keypoints
        Keep these keypoints, in this order. Needed when the files' keypoint
        sets differ (their common subset can be loaded this way).
    individuals
        Keep these individuals, in this order.
    **options
        Format-specific options passed to the loader (for example
        ``keypoint_names=`` for DANNCE or sleap-anipose files).

    Returns
    -------
    xarray.Dataset
        A Dataset satisfying :func:`moseq_xr.validate`.

    Examples
    --------
    >>> ds = moseq_xr.load_poses("videos/*.h5", fps=30)  # doctest: +SKIP
    >>> ds.position.sel(recording="mouse1", keypoint="nose")  # doctest: +SKIP
    """
    files = _recognised(_expand_with_origin(paths), source)
    records: list[RecordingData] = []
    for path in files:
        records.extend(read_file(path, source, dict(options)))
    _unique_names(records)
    arguments = {
        "paths": [p.as_posix() for p in files],
        "source": source,
        "fps": fps,
        "keypoints": keypoints,
        "individuals": individuals,
        **options,
    }
    ds = build_dataset(
        records,
        fps=fps,
        keypoints=keypoints,
        individuals=individuals,
        operation="moseq_xr.load_poses",
        arguments=arguments,
    )
    return _attach_results(ds, records)


def _as_position(name: str, array: Any) -> np.ndarray:
    array = np.asarray(array, dtype=np.float64)
    if array.ndim == 3:
        array = array[..., None]  # (T, K, D) -> (T, K, D, 1)
    if array.ndim != 4 or array.shape[2] not in (2, 3):
        raise LoaderError(
            name,
            f"expected an array of shape (time, keypoint, space[, individual]) with "
            f"space 2 or 3, got {array.shape}",
        )
    return array.transpose(0, 2, 1, 3)


def from_arrays(
    positions: Mapping[str, Any],
    keypoints: Sequence[str],
    fps: float,
    confidences: Mapping[str, Any] | None = None,
    individuals: Sequence[str] | None = None,
    source_software: str = "",
) -> xr.Dataset:
    """Build a pose Dataset from plain arrays.

    Parameters
    ----------
    positions
        ``{recording name: array}``, each of shape ``(time, keypoint, space)``
        (the keypoint-MoSeq layout) or ``(time, keypoint, space, individual)``.
    keypoints
        Keypoint names, in array order.
    fps
        Frames per second.
    confidences
        Optional ``{recording name: array}`` of shape ``(time, keypoint)`` or
        ``(time, keypoint, individual)``; missing recordings get 1.0 (flagged).
    individuals
        Individual names (default ``individual_0``, ``individual_1``, ...).
    source_software
        Recorded per recording.

    Returns
    -------
    xarray.Dataset
        A valid pose Dataset.
    """
    confidences = dict(confidences or {})
    unknown = sorted(set(confidences) - set(positions))
    if unknown:
        raise LoaderError("confidences", f"recordings {unknown} have no positions")
    records = []
    for name, array in positions.items():
        position = _as_position(name, array)
        n_ind = position.shape[3]
        names = (
            list(individuals)
            if individuals is not None
            else (
                [DEFAULT_INDIVIDUAL]
                if n_ind == 1
                else [f"individual_{i}" for i in range(n_ind)]
            )
        )
        confidence = confidences.get(name)
        if confidence is not None:
            confidence = np.asarray(confidence, dtype=np.float64)
            confidence = confidence[..., None] if confidence.ndim == 2 else confidence
        records.append(
            RecordingData(
                name=str(name),
                position=position,
                keypoints=list(keypoints),
                individuals=names,
                confidence=confidence,
                fps=fps,
                source_software=source_software,
            )
        )
    return build_dataset(
        records,
        fps=fps,
        operation="moseq_xr.from_arrays",
        arguments={
            "recordings": list(positions),
            "keypoints": keypoints,
            "fps": fps,
            "source_software": source_software,
        },
    )


# ---------------------------------------------------------------- model results
# Loaders of files that also hold model results (NWB exports) return them in
# ``record.extra["results"]`` as ``{variable: (time, individual, ...) array}``,
# rows aligned with ``record.position``.


def _place_results(
    values: np.ndarray,
    r: int,
    record: RecordingData,
    array: np.ndarray,
    individuals: list[str],
) -> None:
    """Write one record's ``(time, individual, ...)`` array into ``values[r]``."""
    rows = np.arange(len(record.position)) if record.frame is None else record.frame
    for i, individual in enumerate(record.individuals):
        if individual in individuals:
            block = np.asarray(array)[:, i]
            tail = tuple(slice(0, n) for n in block.shape[1:])
            values[(r, individuals.index(individual), np.asarray(rows), *tail)] = block


def _attach_results(ds: xr.Dataset, records: Sequence[RecordingData]) -> xr.Dataset:
    """Add the result variables loaders returned to ``ds`` (same time grid)."""
    found = [r.extra.get("results") or {} for r in records]
    names = [n for n in N.RESULT_VARS if any(n in f for f in found)]
    if not names:
        return ds
    individuals = [str(i) for i in ds[N.INDIVIDUAL].values]
    for name in names:
        tail = max(np.shape(f[name])[2:] for f in found if name in f)
        syllable = name == "syllable"
        shape = (len(records), len(individuals), ds.sizes[N.TIME], *tail)
        values = np.full(
            shape,
            -1 if syllable else np.nan,
            dtype=np.int32 if syllable else np.float64,
        )
        for r, (record, results) in enumerate(zip(records, found, strict=True)):
            if name in results:
                _place_results(values, r, record, results[name], individuals)
        ds[name] = (N.RESULT_VARS[name].dims[: 3 + len(tail)], values)
    return validate(ds)
