"""SLEAP analysis HDF5 files (``*.analysis.h5``, "Export Analysis HDF5").

Two axis orders exist (spec §2.1):

- the **"matlab" preset**, written by the SLEAP GUI and by default by sleap-io:
  ``tracks`` is ``(n_tracks, 2, n_nodes, n_frames)`` and ``point_scores``
  ``(n_tracks, n_nodes, n_frames)``. The SLEAP GUI writes no ``dims``
  attributes, so a file without them is read as matlab, after checking that
  ``tracks.shape[1] == 2``;
- sleap-io's **"standard" preset** (and any custom order): every array carries
  its axis names as a JSON ``dims`` attribute, e.g. ``["frame", "track",
  "node", "xy"]``, which is read whenever present (pitfall 1).

``track_occupancy`` is ``(n_frames, n_tracks)`` in both presets, unlike every
other array (pitfall 3); frames it marks unoccupied are blanked to NaN. When
the project had no tracks, SLEAP writes ``track_names`` as an *empty float64*
array (pitfall 2): the file is then one unnamed animal, ``individual_0``.

Tracks with no point at all are dropped (unless every track is empty). Rows
are video frames 0, 1, 2, ... (the analysis export always starts at frame 0);
SLEAP records no frame rate, so ``fps`` is left to the user.

The helpers :func:`decode_text`, :func:`decode_names`, :func:`unique_names`,
:func:`drop_empty_tracks` and :func:`read_skeleton` are shared with the
``.slp`` and sleap-anipose loaders.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from moseq_xr.exceptions import DataQualityWarning, LoaderError
from moseq_xr.io.registry import register_loader
from moseq_xr.schema import RecordingData
from moseq_xr.schema.names import DEFAULT_INDIVIDUAL

SOURCE_SOFTWARE = "SLEAP"

#: Axis names of each array in the "matlab" preset (files without ``dims``).
MATLAB_DIMS: dict[str, tuple[str, ...]] = {
    "tracks": ("track", "xy", "node", "frame"),
    "point_scores": ("track", "node", "frame"),
    "track_occupancy": ("frame", "track"),
}

#: Axis order we transpose each array to: the RecordingData layouts
#: position (time, space, keypoint, individual), confidence (time, keypoint,
#: individual) and occupancy (time, individual).
CANONICAL_DIMS: dict[str, tuple[str, ...]] = {
    "tracks": ("frame", "xy", "node", "track"),
    "point_scores": ("frame", "node", "track"),
    "track_occupancy": ("frame", "track"),
}


# --------------------------------------------------------------------------- #
# Helpers shared with the .slp and sleap-anipose loaders
# --------------------------------------------------------------------------- #
def decode_text(value: Any) -> str:
    """Return ``value`` (bytes, numpy scalar or str) as a Python str."""
    if isinstance(value, np.ndarray) and value.shape == ():
        value = value[()]
    if isinstance(value, bytes | np.bytes_):
        return value.decode("utf-8", errors="replace")
    return str(value)


def decode_names(values: Any) -> list[str]:
    """Decode an HDF5 array of names; an empty or numeric array gives ``[]``.

    SLEAP writes ``track_names`` as an empty float64 array when the project
    has no tracks (pitfall 2), so numeric arrays are never decoded.
    """
    array = np.asarray(values)
    if array.size == 0 or array.dtype.kind in "fiub":
        return []
    return [decode_text(v) for v in array.ravel()]


def unique_names(names: Sequence[str], prefix: str = "track") -> list[str]:
    """Make names non-empty and unique (``""`` -> ``track_{i}``, clashes -> ``_{i}``).

    Parameters
    ----------
    names
        Names as found in the file.
    prefix
        Stem used for empty names.

    Returns
    -------
    list of str
        Same length as ``names``; names already unique and non-empty are kept.
    """
    filled = [name.strip() or f"{prefix}_{i}" for i, name in enumerate(names)]
    result = []
    for i, name in enumerate(filled):
        result.append(f"{name}_{i}" if filled.count(name) > 1 else name)
    return result


def drop_empty_tracks(
    position: np.ndarray,
    confidence: np.ndarray | None,
    names: Sequence[str],
) -> tuple[np.ndarray, np.ndarray | None, list[str]]:
    """Drop individuals (last axis) with no finite coordinate at all.

    When every individual is empty they are all kept, so that the recording
    keeps its shape (build_dataset then yields an all-NaN individual).

    Parameters
    ----------
    position
        ``(time, space, keypoint, individual)``.
    confidence
        ``(time, keypoint, individual)`` or None.
    names
        Individual names.

    Returns
    -------
    tuple
        ``(position, confidence, names)`` without the empty individuals.
    """
    has_points = np.isfinite(position).any(axis=(0, 1, 2))
    if not has_points.any() or has_points.all():
        return position, confidence, list(names)
    keep = np.flatnonzero(has_points)
    kept_confidence = None if confidence is None else confidence[..., keep]
    return position[..., keep], kept_confidence, [names[i] for i in keep]


def read_skeleton(path: Path) -> tuple[list[str], list[tuple[str, str]] | None]:
    """Node names and edges of a SLEAP analysis file.

    Parameters
    ----------
    path
        A SLEAP analysis HDF5 file.

    Returns
    -------
    tuple
        ``(node_names, edges)``; edges are name pairs, or None when absent.

    Raises
    ------
    LoaderError
        When the file cannot be opened or has no ``node_names``.
    """
    with _open_hdf5(path) as file:
        nodes = _node_names(file, path)
        return nodes, _edges(file, nodes)


# --------------------------------------------------------------------------- #
# Reading
# --------------------------------------------------------------------------- #
def _open_hdf5(path: Path) -> h5py.File:
    try:
        return h5py.File(path, "r")
    except OSError as error:
        raise LoaderError(path, f"cannot be opened as an HDF5 file: {error}") from error


def _is_sleap_analysis(path: Path) -> bool:
    """Sniff: an HDF5 file with both a ``tracks`` and a ``node_names`` dataset."""
    try:
        with h5py.File(path, "r") as file:
            return isinstance(file.get("tracks"), h5py.Dataset) and isinstance(
                file.get("node_names"), h5py.Dataset
            )
    except (OSError, ValueError):
        return False


def _stored_dims(dataset: h5py.Dataset, name: str, path: Path) -> tuple[str, ...]:
    """Axis names of ``dataset``: its ``dims`` attribute, else the matlab preset."""
    raw = dataset.attrs.get("dims")
    if raw is None:
        return MATLAB_DIMS[name]
    try:
        dims = tuple(str(d) for d in json.loads(decode_text(raw)))
    except (TypeError, ValueError) as error:
        raise LoaderError(
            path, f"'{name}' has an unreadable dims attribute {raw!r}"
        ) from error
    if sorted(dims) != sorted(CANONICAL_DIMS[name]) or len(dims) != dataset.ndim:
        raise LoaderError(
            path,
            f"'{name}' dims attribute {list(dims)} does not name the axes "
            f"{sorted(CANONICAL_DIMS[name])} of its {dataset.ndim}-D array",
        )
    return dims


def _oriented(dataset: h5py.Dataset, name: str, path: Path) -> np.ndarray:
    """Read ``dataset`` and transpose it to :data:`CANONICAL_DIMS` order."""
    dims = _stored_dims(dataset, name, path)
    if dataset.ndim != len(dims):
        raise LoaderError(
            path, f"'{name}' has shape {dataset.shape}; expected axes {list(dims)}"
        )
    axes = [dims.index(d) for d in CANONICAL_DIMS[name]]
    return np.transpose(dataset[()], axes)


def _read_position(file: h5py.File, path: Path, n_nodes: int) -> np.ndarray:
    tracks = file["tracks"]
    if "dims" not in tracks.attrs and (tracks.ndim != 4 or tracks.shape[1] != 2):
        raise LoaderError(
            path,
            f"'tracks' has shape {tracks.shape} and no dims attribute; a SLEAP "
            "analysis file without dims must use the matlab layout "
            "(n_tracks, 2, n_nodes, n_frames)",
        )
    position = _oriented(tracks, "tracks", path).astype(np.float64)
    if position.shape[1] != 2 or position.shape[2] != n_nodes:
        raise LoaderError(
            path,
            f"'tracks' reads as (frames, xy, nodes, tracks) = {position.shape}; "
            f"expected 2 coordinates and {n_nodes} nodes (from node_names)",
        )
    return position


def _read_confidence(
    file: h5py.File, path: Path, shape: tuple[int, ...]
) -> np.ndarray | None:
    if "point_scores" not in file:
        return None
    confidence = _oriented(file["point_scores"], "point_scores", path).astype(
        np.float64
    )
    if confidence.shape != shape:
        raise LoaderError(
            path,
            f"'point_scores' reads as (frames, nodes, tracks) = {confidence.shape}; "
            f"expected {shape} to match 'tracks'",
        )
    return confidence


def _read_occupancy(
    file: h5py.File, path: Path, shape: tuple[int, int]
) -> np.ndarray | None:
    """``track_occupancy`` as a (frames, tracks) bool array, or None."""
    if "track_occupancy" not in file:
        return None
    occupancy = _oriented(file["track_occupancy"], "track_occupancy", path)
    if occupancy.shape != shape:
        warnings.warn(
            f"{path}: 'track_occupancy' has shape {occupancy.shape}, expected "
            f"(frames, tracks) = {shape}; it is ignored.",
            DataQualityWarning,
            stacklevel=4,
        )
        return None
    return occupancy.astype(bool)


def _node_names(file: h5py.File, path: Path) -> list[str]:
    if "node_names" not in file:
        raise LoaderError(
            path, "has no 'node_names' dataset; not a SLEAP analysis file"
        )
    names = decode_names(file["node_names"][()])
    if not names:
        raise LoaderError(path, "'node_names' is empty")
    return names


def _edges(file: h5py.File, nodes: list[str]) -> list[tuple[str, str]] | None:
    """Skeleton edges from ``edge_names``, else ``edge_inds``; None when absent."""
    pairs: list[tuple[str, str]] = []
    if "edge_names" in file and decode_names(file["edge_names"][()]):
        names = decode_names(file["edge_names"][()])
        pairs = list(zip(names[0::2], names[1::2], strict=True))
    elif "edge_inds" in file and np.size(file["edge_inds"]) > 0:
        inds = np.asarray(file["edge_inds"][()], dtype=np.int64).reshape(-1, 2)
        pairs = [
            (nodes[a], nodes[b])
            for a, b in inds
            if min(a, b) >= 0 and max(a, b) < len(nodes)
        ]
    pairs = [(a, b) for a, b in pairs if a in nodes and b in nodes]
    return pairs or None


def _individual_names(file: h5py.File, path: Path, n_tracks: int) -> list[str]:
    names = decode_names(file["track_names"][()]) if "track_names" in file else []
    if names:
        if len(names) != n_tracks:
            raise LoaderError(path, f"{len(names)} track_names for {n_tracks} tracks")
        return unique_names(names)
    if n_tracks == 1:
        return [DEFAULT_INDIVIDUAL]
    warnings.warn(
        f"{path}: {n_tracks} instance slots but no track names; SLEAP did not track "
        "identities, so individual_0.. may swap between frames.",
        DataQualityWarning,
        stacklevel=4,
    )
    return [f"individual_{i}" for i in range(n_tracks)]


def _blank_unoccupied(
    position: np.ndarray, confidence: np.ndarray | None, occupancy: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray | None]:
    if occupancy is None:
        return position, confidence
    position = np.where(occupancy[:, None, None, :], position, np.nan)
    if confidence is not None:
        confidence = np.where(occupancy[:, None, :], confidence, np.nan)
    return position, confidence


@register_loader(
    "sleap_analysis",
    suffixes=(".h5", ".hdf5"),
    sniff=_is_sleap_analysis,
    priority=15,
    description="SLEAP analysis HDF5 (.analysis.h5), matlab and standard presets",
)
def read_sleap_analysis(path: Path) -> list[RecordingData]:
    """Read a SLEAP analysis HDF5 file (``*.analysis.h5``).

    Parameters
    ----------
    path
        The file.

    Returns
    -------
    list of RecordingData
        One recording named ``path.stem`` (e.g. ``x.analysis``); individuals
        are the track names (``individual_0`` when the project had no tracks).

    Raises
    ------
    LoaderError
        When the file is not readable HDF5, lacks ``tracks``/``node_names``,
        or its arrays disagree in shape.
    """
    path = Path(path)
    with _open_hdf5(path) as file:
        if "tracks" not in file:
            raise LoaderError(
                path, "has no 'tracks' dataset; not a SLEAP analysis file"
            )
        nodes = _node_names(file, path)
        position = _read_position(file, path, len(nodes))
        n_frames, _, _, n_tracks = position.shape
        confidence = _read_confidence(file, path, (n_frames, len(nodes), n_tracks))
        occupancy = _read_occupancy(file, path, (n_frames, n_tracks))
        individuals = _individual_names(file, path, n_tracks)
        skeleton = _edges(file, nodes)
        video_path = decode_text(file["video_path"][()]) if "video_path" in file else ""
    position, confidence = _blank_unoccupied(position, confidence, occupancy)
    position, confidence, individuals = drop_empty_tracks(
        position, confidence, individuals
    )
    return [
        RecordingData(
            name=path.stem,
            position=position,
            keypoints=nodes,
            individuals=individuals,
            confidence=confidence,
            source_file=path.as_posix(),
            source_software=SOURCE_SOFTWARE,
            video_path=video_path,
            skeleton=skeleton,
            space_unit="pixels",
        )
    ]
