"""SLEAP labels and predictions files (``.slp``), read with sleap-io.

sleap-io is optional (``pip install 'moseq-xr[sleap]'``) and imported inside
:func:`read_sleap_slp` only.

How a ``.slp`` becomes recordings:

- **videos**: one recording per video that has labelled frames. A file with one
  such video gives one recording named ``path.stem``; a file with several
  gives ``{path.stem}_{video stem}`` per video (clashing video stems get
  ``_{index}``).
- **individuals** are SLEAP tracks, named by track name (empty names become
  ``track_{i}``, duplicate names get ``_{i}``). Fragmented tracks stay separate
  individuals (moseq_xr never merges identities); tracks with no point at all
  in a video are dropped. Track-first reading avoids sleap-io's
  ``Labels.numpy`` shortcut that merges tracks when at most one instance is
  present per frame.
- **untracked instances**: when a video has tracked instances, untracked ones
  are ignored with a :class:`~moseq_xr.exceptions.DataQualityWarning` (a user
  instance corrected from a tracked prediction inherits its track). When no
  instance is tracked the video is one animal, ``individual_0``; a frame
  holding several instances keeps the user instance, else the best-scoring
  prediction (with a warning).
- **user vs predicted**: per frame and track the user-labelled instance wins
  over the prediction (as in SLEAP). User points have no score: their
  confidence is NaN while their position is valid.
- **rows** are video frame indices (unlabelled frames become NaN rows).
  SLEAP files record no frame rate, so ``fps`` is None. ``video_path`` is the
  video's file name as stored (the original video for embedded ``.pkg.slp``).
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from pathlib import Path, PureWindowsPath
from typing import Any

import h5py
import numpy as np

from moseq_xr.exceptions import DataQualityWarning, LoaderError
from moseq_xr.io.formats.sleap_analysis import (
    SOURCE_SOFTWARE,
    drop_empty_tracks,
    unique_names,
)
from moseq_xr.io.registry import register_loader
from moseq_xr.schema import RecordingData
from moseq_xr.schema.names import DEFAULT_INDIVIDUAL

_INSTALL_HINT = "pip install 'moseq-xr[sleap]'"


def _is_slp(path: Path) -> bool:
    """Sniff: an HDF5 file with the ``metadata`` group SLEAP writes."""
    try:
        with h5py.File(path, "r") as file:
            return isinstance(file.get("metadata"), h5py.Group)
    except (OSError, ValueError):
        return False


def import_sleap_io() -> Any:
    """Import sleap-io, or raise an ImportError that says how to install it."""
    try:
        import sleap_io
    except ImportError as error:
        raise ImportError(
            f"Reading SLEAP .slp files needs sleap-io: {_INSTALL_HINT}"
        ) from error
    return sleap_io


def load_labels(path: Path) -> Any:
    """Load ``path`` with sleap-io without opening videos (LoaderError on failure)."""
    sio = import_sleap_io()
    try:
        return sio.load_slp(str(path), open_videos=False)
    except (
        OSError,
        KeyError,
        IndexError,
        ValueError,
        TypeError,
        RuntimeError,
    ) as error:
        raise LoaderError(
            path, f"sleap-io cannot read this .slp file: {error}"
        ) from error


def skeleton_names(labels: Any, path: Path) -> tuple[list[str], list[tuple[str, str]]]:
    """Node names and edges (name pairs) of the file's single skeleton.

    Raises
    ------
    LoaderError
        When the file has no skeleton, or skeletons with different nodes.
    """
    if not labels.skeletons:
        raise LoaderError(path, "has no skeleton")
    node_lists = {tuple(s.node_names) for s in labels.skeletons}
    if len(node_lists) > 1:
        raise LoaderError(
            path,
            f"has {len(labels.skeletons)} skeletons with different nodes "
            f"{[list(n) for n in node_lists]}; moseq_xr reads one keypoint set "
            "per file",
        )
    skeleton = labels.skeletons[0]
    edges = [(e.source.name, e.destination.name) for e in skeleton.edges]
    return list(skeleton.node_names), edges


def _video_filename(video: Any) -> str:
    original = getattr(video, "source_video", None)
    filename = (original or video).filename
    if isinstance(filename, list | tuple):
        return str(filename[0]) if filename else ""
    return str(filename or "")


def _recording_names(stem: str, videos: list[Any]) -> list[str]:
    """``stem`` for one video, else ``{stem}_{video stem}`` (unique)."""
    if len(videos) == 1:
        return [stem]
    stems = [PureWindowsPath(_video_filename(v)).stem or "video" for v in videos]
    stems = [s if stems.count(s) == 1 else f"{s}_{i}" for i, s in enumerate(stems)]
    return [f"{stem}_{s}" for s in stems]


def _is_predicted(instance: Any) -> bool:
    from sleap_io import PredictedInstance

    return isinstance(instance, PredictedInstance)


def _track_of(instance: Any) -> Any:
    """Track of an instance; a user instance inherits it from its prediction."""
    if instance.track is not None:
        return instance.track
    source = getattr(instance, "from_predicted", None)
    return None if source is None else source.track


def _points(instance: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(K, 2)`` coordinates (NaN where invisible) and ``(K,)`` scores."""
    xy = np.asarray(instance.numpy(), dtype=np.float64)
    if _is_predicted(instance):
        scores = np.asarray(instance.points["score"], dtype=np.float64)
    else:
        scores = np.full(xy.shape[0], np.nan)  # user labels carry no score
    return xy, scores


def _instances_by_frame(frames: list[Any]) -> dict[int, list[Any]]:
    by_frame: dict[int, list[Any]] = defaultdict(list)
    for labeled_frame in frames:
        by_frame[int(labeled_frame.frame_idx)].extend(labeled_frame.instances)
    return dict(sorted(by_frame.items()))


def _pick_tracked(instances: list[Any]) -> tuple[dict[Any, Any], int]:
    """One instance per track (user over predicted) and the number untracked."""
    chosen: dict[Any, Any] = {}
    n_untracked = 0
    for instance in sorted(instances, key=lambda i: not _is_predicted(i)):
        track = _track_of(instance)
        if track is None:
            n_untracked += 1
        else:
            chosen[track] = instance
    return chosen, n_untracked


def _pick_untracked(instances: list[Any]) -> Any:
    """Pick the user instance if any, else the best-scoring prediction."""
    users = [i for i in instances if not _is_predicted(i)]
    if users:
        return users[0]
    return max(instances, key=lambda i: np.nan_to_num(float(i.score), nan=-np.inf))


def _tracked_columns(
    by_frame: dict[int, list[Any]], tracks: list[Any], path: Path
) -> tuple[dict[int, dict[int, Any]], list[Any]]:
    """Per frame ``{column: instance}`` and the track of each column."""
    columns = list(tracks)
    column_of = {id(t): i for i, t in enumerate(columns)}
    picked: dict[int, dict[int, Any]] = {}
    n_ignored = 0
    for frame_idx, instances in by_frame.items():
        chosen, n_untracked = _pick_tracked(instances)
        n_ignored += n_untracked
        for track in chosen:
            if id(track) not in column_of:  # a track missing from labels.tracks
                column_of[id(track)] = len(columns)
                columns.append(track)
        picked[frame_idx] = {column_of[id(t)]: inst for t, inst in chosen.items()}
    if n_ignored:
        warnings.warn(
            f"{path}: {n_ignored} untracked instance(s) ignored because the video "
            "also has tracked instances.",
            DataQualityWarning,
            stacklevel=5,
        )
    return picked, columns


def _untracked_column(
    by_frame: dict[int, list[Any]], path: Path
) -> dict[int, dict[int, Any]]:
    """One animal: per frame ``{0: instance}``."""
    crowded = sum(1 for instances in by_frame.values() if len(instances) > 1)
    if crowded:
        warnings.warn(
            f"{path}: no instance is tracked, so the file is read as one animal; "
            f"{crowded} frame(s) hold several instances and only the user-labelled "
            "or best-scoring one is kept. Track the animals in SLEAP to keep all.",
            DataQualityWarning,
            stacklevel=5,
        )
    return {f: {0: _pick_untracked(insts)} for f, insts in by_frame.items() if insts}


def _fill_arrays(
    picked: dict[int, dict[int, Any]], frames: list[int], n_nodes: int, n_columns: int
) -> tuple[np.ndarray, np.ndarray]:
    position = np.full((len(frames), 2, n_nodes, n_columns), np.nan)
    confidence = np.full((len(frames), n_nodes, n_columns), np.nan)
    for row, frame_idx in enumerate(frames):
        for column, instance in picked.get(frame_idx, {}).items():
            xy, scores = _points(instance)
            position[row, :, :, column] = xy.T
            confidence[row, :, column] = scores
    return position, confidence


def _video_record(
    path: Path, labels: Any, video: Any, frames: list[Any], name: str
) -> RecordingData:
    """One recording from the labelled frames of one video."""
    nodes, edges = skeleton_names(labels, path)
    by_frame = _instances_by_frame(frames)
    if min(by_frame) < 0:
        raise LoaderError(path, f"has a negative frame index {min(by_frame)}")
    tracked = any(
        _track_of(i) is not None for insts in by_frame.values() for i in insts
    )
    if tracked:
        picked, tracks = _tracked_columns(by_frame, list(labels.tracks), path)
        names = unique_names([str(t.name or "") for t in tracks])
    else:
        picked, names = _untracked_column(by_frame, path), [DEFAULT_INDIVIDUAL]
    frame_index = np.array(list(by_frame), dtype=np.int64)
    position, confidence = _fill_arrays(picked, list(by_frame), len(nodes), len(names))
    position, confidence, names = drop_empty_tracks(position, confidence, names)
    return RecordingData(
        name=name,
        position=position,
        keypoints=nodes,
        individuals=names,
        confidence=confidence,
        frame=frame_index,
        source_file=path.as_posix(),
        source_software=SOURCE_SOFTWARE,
        video_path=_video_filename(video),
        skeleton=edges or None,
        space_unit="pixels",
    )


@register_loader(
    "sleap_slp",
    suffixes=(".slp",),
    sniff=_is_slp,
    priority=15,
    description="SLEAP labels/predictions (.slp) via sleap-io; tracks as individuals",
)
def read_sleap_slp(path: Path) -> list[RecordingData]:
    """Read a SLEAP ``.slp`` labels or predictions file.

    Parameters
    ----------
    path
        The file.

    Returns
    -------
    list of RecordingData
        One recording per video with labelled frames (see the module notes
        for naming, tracks and user/predicted instances).

    Raises
    ------
    ImportError
        When sleap-io is not installed.
    LoaderError
        When the file cannot be read, has no labelled frames, or mixes
        skeletons with different nodes.
    """
    path = Path(path)
    labels = load_labels(path)
    frames_by_video: dict[int, list[Any]] = defaultdict(list)
    for labeled_frame in labels.labeled_frames:
        frames_by_video[id(labeled_frame.video)].append(labeled_frame)
    videos = [v for v in labels.videos if frames_by_video.get(id(v))]
    if not videos:
        raise LoaderError(path, "has no labelled frames")
    names = _recording_names(path.stem, videos)
    return [
        _video_record(path, labels, video, frames_by_video[id(video)], name)
        for video, name in zip(videos, names, strict=True)
    ]
