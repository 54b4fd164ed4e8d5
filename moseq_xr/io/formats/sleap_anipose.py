"""sleap-anipose triangulated 3-D points (``points3d.h5``).

Layout (spec §2.6): ``tracks`` is ``(n_frames, n_tracks, n_nodes, 3)``; an
optional ``point_scores`` is ``(n_frames, n_tracks, n_nodes)``; an optional
``frames`` holds the ``(start, end)`` frame range triangulated (inclusive,
exclusive), so row ``i`` is video frame ``start + i``.

The file stores **no node names** (pitfall 12). They come from, in order:

1. ``keypoint_names=[...]``;
2. ``names_from=`` a SLEAP ``.slp`` or analysis ``.h5`` whose nodes to use;
3. a sibling ``*.analysis.h5`` or ``*.slp`` in the same folder or one folder
   down (sleap-anipose keeps one sub-folder per camera view), the first whose
   node count matches (analysis files first, as they need no sleap-io);
4. else ``bodypart0, bodypart1, ...`` with a
   :class:`~moseq_xr.exceptions.DataQualityWarning`.

When the names come from a SLEAP file its skeleton edges are used too.
Coordinates are 3-D in calibration units, so ``space_unit`` is None; no frame
rate is stored. Tracks become individuals: ``individual_0`` for one track,
else ``track_{i}``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np

from moseq_xr.exceptions import DataQualityWarning, LoaderError
from moseq_xr.io.formats import sleap_analysis, sleap_slp
from moseq_xr.io.registry import register_loader
from moseq_xr.schema import RecordingData
from moseq_xr.schema.names import DEFAULT_INDIVIDUAL

SOURCE_SOFTWARE = "sleap-anipose"

Skeleton = tuple[list[str], list[tuple[str, str]] | None]


def _is_points3d(path: Path) -> bool:
    """Sniff: 4-D ``tracks`` with 3 coordinates last, and no ``node_names``."""
    try:
        with h5py.File(path, "r") as file:
            tracks = file.get("tracks")
            return (
                isinstance(tracks, h5py.Dataset)
                and tracks.ndim == 4
                and tracks.shape[-1] == 3
                and "node_names" not in file
            )
    except (OSError, ValueError):
        return False


def _skeleton_of(source: Path) -> Skeleton:
    """Node names and edges of a SLEAP ``.slp`` or analysis HDF5 file."""
    if source.suffix.lower() == ".slp":
        labels = sleap_slp.load_labels(source)
        nodes, edges = sleap_slp.skeleton_names(labels, source)
        return nodes, edges or None
    return sleap_analysis.read_skeleton(source)


def _sibling_sources(path: Path) -> list[Path]:
    """SLEAP files beside ``path`` or one folder down, analysis files first."""
    folder = path.parent
    found: list[Path] = []
    for pattern in ("*.analysis.h5", "*.slp"):
        found += sorted(folder.glob(pattern)) + sorted(folder.glob(f"*/{pattern}"))
    return [p for p in found if p.is_file() and p != path]


def _sibling_skeleton(path: Path, n_nodes: int) -> tuple[Skeleton, Path] | None:
    """Find the first sibling SLEAP file whose node count is ``n_nodes``."""
    for source in _sibling_sources(path):
        try:
            skeleton = _skeleton_of(source)
        except (LoaderError, ImportError):
            continue
        if len(skeleton[0]) == n_nodes:
            return skeleton, source
    return None


def _resolve_skeleton(
    path: Path,
    n_nodes: int,
    keypoint_names: Sequence[str] | None,
    names_from: str | Path | None,
) -> tuple[Skeleton, str]:
    """Keypoint names (and edges) for the file, and where they came from."""
    if keypoint_names is not None and names_from is not None:
        raise ValueError("pass keypoint_names= or names_from=, not both")
    if keypoint_names is not None:
        if isinstance(keypoint_names, str):
            raise ValueError("keypoint_names must be a list of names, not one string")
        skeleton: Skeleton = ([str(k) for k in keypoint_names], None)
        origin = "keypoint_names"
    elif names_from is not None:
        skeleton, origin = _skeleton_of(Path(names_from)), Path(names_from).as_posix()
    else:
        found = _sibling_skeleton(path, n_nodes)
        if found is None:
            warnings.warn(
                f"{path}: sleap-anipose files store no node names and no sibling "
                f"SLEAP file has {n_nodes} nodes; using bodypart0.."
                f"bodypart{n_nodes - 1}. "
                "Pass keypoint_names=[...] or names_from='view.analysis.h5'.",
                DataQualityWarning,
                stacklevel=4,
            )
            return ([f"bodypart{i}" for i in range(n_nodes)], None), "default"
        skeleton, origin = found[0], found[1].as_posix()
    if len(skeleton[0]) != n_nodes:
        raise LoaderError(
            path,
            f"{len(skeleton[0])} keypoint names ({origin}) for {n_nodes} nodes "
            "in 'tracks'",
        )
    return skeleton, origin


def _read_scores(
    file: h5py.File, path: Path, shape: tuple[int, ...]
) -> np.ndarray | None:
    """``point_scores`` (frames, tracks, nodes) as (frames, nodes, tracks)."""
    if "point_scores" not in file:
        return None
    scores = np.asarray(file["point_scores"][()], dtype=np.float64)
    if scores.shape != shape:
        raise LoaderError(
            path,
            f"'point_scores' has shape {scores.shape}, expected {shape} like 'tracks'",
        )
    return scores.transpose(0, 2, 1)


def _frame_index(file: h5py.File, path: Path, n_frames: int) -> np.ndarray | None:
    """Video frame of each row from the optional ``frames`` (start, end) range."""
    if "frames" not in file:
        return None
    bounds = np.asarray(file["frames"][()]).ravel()
    if bounds.size == 2 and bounds[0] >= 0 and bounds[1] - bounds[0] == n_frames:
        return np.arange(int(bounds[0]), int(bounds[1]), dtype=np.int64)
    warnings.warn(
        f"{path}: 'frames' = {bounds.tolist()} does not describe {n_frames} rows; "
        "rows are taken as frames 0, 1, 2, ...",
        DataQualityWarning,
        stacklevel=4,
    )
    return None


@register_loader(
    "sleap_anipose",
    suffixes=(".h5", ".hdf5"),
    sniff=_is_points3d,
    priority=40,
    description="sleap-anipose triangulated 3D points (points3d.h5)",
)
def read_sleap_anipose(
    path: Path,
    *,
    keypoint_names: Sequence[str] | None = None,
    names_from: str | Path | None = None,
) -> list[RecordingData]:
    """Read a sleap-anipose ``points3d.h5`` file.

    Parameters
    ----------
    path
        The file.
    keypoint_names
        Names of the nodes, in file order.
    names_from
        A SLEAP ``.slp`` or analysis ``.h5`` file whose node names (and edges)
        to use. Without either option a sibling SLEAP file is looked for (see
        the module notes).

    Returns
    -------
    list of RecordingData
        One 3-D recording named ``path.stem``.

    Raises
    ------
    LoaderError
        When the file is not readable or ``tracks`` is not
        ``(frames, tracks, nodes, 3)``, or the names do not fit.
    """
    path = Path(path)
    try:
        file = h5py.File(path, "r")
    except OSError as error:
        raise LoaderError(path, f"cannot be opened as an HDF5 file: {error}") from error
    with file:
        if (
            "tracks" not in file
            or file["tracks"].ndim != 4
            or file["tracks"].shape[-1] != 3
        ):
            shape = file["tracks"].shape if "tracks" in file else None
            raise LoaderError(
                path, f"'tracks' must be (n_frames, n_tracks, n_nodes, 3), got {shape}"
            )
        tracks = np.asarray(file["tracks"][()], dtype=np.float64)
        confidence = _read_scores(file, path, tracks.shape[:3])
        frame = _frame_index(file, path, tracks.shape[0])
    n_tracks, n_nodes = tracks.shape[1:3]
    (nodes, edges), origin = _resolve_skeleton(
        path, n_nodes, keypoint_names, names_from
    )
    individuals = (
        [DEFAULT_INDIVIDUAL]
        if n_tracks == 1
        else [f"track_{i}" for i in range(n_tracks)]
    )
    return [
        RecordingData(
            name=path.stem,
            position=tracks.transpose(0, 3, 2, 1),
            keypoints=nodes,
            individuals=individuals,
            confidence=confidence,
            frame=frame,
            source_file=path.as_posix(),
            source_software=SOURCE_SOFTWARE,
            skeleton=edges,
            space_unit=None,
            extra={"keypoint_names_from": origin},
        )
    ]
