"""FreiPose 3-D predictions (``pred_<run>__NN.json`` from ``predict_pose.py``).

The file is a JSON list with one dict per video frame (list index = frame).
``predict_bb.py`` writes ``xyz`` (root point or null) and ``boxes``;
``predict_pose.py`` then adds ``kp_xyz`` (``[1, K, 3]``) and ``kp_score``
(``[1, K]``) to every frame that has a root point. Frames without ``kp_xyz``
become NaN rows (keypoint-MoSeq raises KeyError on them).

The file does not name its keypoints: pass ``keypoint_names=`` or the FreiPose
skeleton config as ``skeleton_file=`` (``skel_*.cfg.json``, JSON with ``//``
comments, or YAML) whose ``keypoints: [[name, color], ...]`` gives the names
and ``limbs: [[[i, j], color], ...]`` the edges (0-based). Limbs that end at
the midpoint of two keypoints (``[[i, j], k]``) are not keypoint pairs and are
left out of the skeleton. Without either option the keypoints are called
``keypoint_0, keypoint_1, ...`` (with a warning).

``kp_score`` is a network score that is not bounded to [0, 1], so by default
it is not used as confidence (1.0 is filled and flagged, as keypoint-MoSeq
does); ``use_scores=True`` takes it as confidence. Coordinates are in the
units of the camera calibration (``M.json``), which the prediction file does
not record, so ``space_unit`` is left unknown.
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from moseq_xr.exceptions import DataQualityWarning, LoaderError
from moseq_xr.io.formats._names import resolve_keypoint_names
from moseq_xr.io.registry import register_loader
from moseq_xr.schema import RecordingData
from moseq_xr.schema.names import DEFAULT_INDIVIDUAL

SOURCE_SOFTWARE = "FreiPose"
_FRAME_KEYS = ("kp_xyz", "xyz", "boxes")
_SNIFF_BYTES = 1 << 16
_LIST_OF_DICTS = re.compile(r"^\s*\[\s*\{")
_FRAME_KEY = re.compile(r'"(kp_xyz|xyz|boxes)"\s*:')


def _is_freipose(path: Path) -> bool:
    """Whether ``path`` is a JSON list of per-frame dicts with FreiPose keys.

    Small files are parsed completely; for large ones only the first 64 KiB
    are read and checked for a list of objects carrying a FreiPose key.
    """
    with open(path, "rb") as handle:
        head = handle.read(_SNIFF_BYTES + 1)
    text = head.decode("utf-8", errors="ignore").removeprefix("\ufeff")
    if not _LIST_OF_DICTS.match(text):
        return False
    if len(head) > _SNIFF_BYTES:
        return bool(_FRAME_KEY.search(text))
    try:
        frames = json.loads(text)
    except ValueError:
        return False
    return (
        isinstance(frames, list)
        and all(isinstance(frame, dict) for frame in frames)
        and any(key in frame for frame in frames for key in _FRAME_KEYS)
    )


def _strip_json_comments(text: str) -> str:
    """Remove ``//`` and ``/* */`` comments outside strings (commentjson style)."""
    out, i, in_string = [], 0, False
    while i < len(text):
        char = text[i]
        if in_string:
            out.append(char)
            if char == "\\":
                out.append(text[i + 1 : i + 2])
                i += 1
            elif char == '"':
                in_string = False
        elif text.startswith("//", i):
            end = text.find("\n", i)
            i = len(text) if end < 0 else end
            continue
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = len(text) if end < 0 else end + 2
            continue
        else:
            in_string = char == '"'
            out.append(char)
        i += 1
    return "".join(out)


def _load_config(path: Path) -> Any:
    """Parse a FreiPose config file (JSON with comments, or YAML)."""
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError as error:
            raise ImportError(
                "reading a YAML skeleton needs PyYAML: pip install pyyaml"
            ) from error
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise LoaderError(path, f"not valid YAML ({error})") from error
    try:
        return json.loads(_strip_json_comments(text))
    except ValueError as error:
        raise LoaderError(path, f"not valid JSON ({error})") from error


def _keypoint_name(path: Path, entry: Any) -> str:
    name = entry[0] if isinstance(entry, list | tuple) and entry else entry
    if not isinstance(name, str):
        raise LoaderError(path, f"keypoints entry {entry!r} is not [name, color]")
    return name


def _limb_edge(path: Path, limb: Any, names: list[str]) -> tuple[str, str] | None:
    """Edge of one ``[[i, j], color]`` limb; None for midpoint limbs."""
    ends = limb[0] if isinstance(limb, list | tuple) and limb else None
    if not isinstance(ends, list | tuple) or len(ends) != 2:
        raise LoaderError(path, f"limbs entry {limb!r} is not [[i, j], color]")
    if not all(isinstance(end, int) for end in ends):
        return None  # one end is the midpoint of two keypoints
    if not all(0 <= end < len(names) for end in ends):
        raise LoaderError(
            path, f"limb {ends} indexes outside the {len(names)} keypoints"
        )
    return names[ends[0]], names[ends[1]]


def read_freipose_skeleton(path: str | Path) -> tuple[list[str], list[tuple[str, str]]]:
    """Read keypoint names and limbs from a FreiPose skeleton config.

    Parameters
    ----------
    path
        ``skel_*.cfg.json`` (JSON with ``//`` comments) or a YAML file with
        ``keypoints: [[name, color], ...]`` and ``limbs: [[[i, j], color], ...]``.

    Returns
    -------
    names, edges
        Keypoint names in order, and limbs between two keypoints as name pairs
        (limbs to the midpoint of two keypoints are left out).
    """
    path = Path(path)
    if not path.is_file():
        raise LoaderError(path, "skeleton file not found")
    config = _load_config(path)
    if not isinstance(config, dict) or not isinstance(config.get("keypoints"), list):
        raise LoaderError(
            path,
            "no 'keypoints' list; expected a FreiPose skeleton config "
            "(skel_*.cfg.json)",
        )
    names = [_keypoint_name(path, entry) for entry in config["keypoints"]]
    edges = [_limb_edge(path, limb, names) for limb in config.get("limbs") or []]
    return names, [edge for edge in edges if edge is not None]


def _keypoint_names(
    path: Path,
    n_keypoints: int,
    keypoint_names: Sequence[str] | None,
    skeleton_file: str | Path | None,
) -> tuple[list[str], list[tuple[str, str]] | None]:
    """Keypoint names and skeleton edges from the options (see module doc)."""
    skeleton = None if skeleton_file is None else read_freipose_skeleton(skeleton_file)
    count = n_keypoints
    return resolve_keypoint_names(
        path,
        count,
        keypoint_names,
        skeleton,
        "FreiPose predictions do not name their keypoints",
        "skeleton_file='skel_<animal>.cfg.json'",
    )


def _frame_array(
    path: Path, index: int, value: Any, shape: tuple[int, ...]
) -> np.ndarray:
    """``value`` as float array of ``shape`` (a leading batch axis of 1 dropped)."""
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise LoaderError(
            path, f"frame {index}: not a numeric array ({error})"
        ) from error
    if array.ndim == len(shape) + 1 and array.shape[0] == 1:
        array = array[0]
    if array.shape != shape:
        raise LoaderError(
            path,
            f"frame {index}: expected shape [1, {', '.join(map(str, shape))}], "
            f"got {list(array.shape)}",
        )
    return array


def _load_frames(path: Path) -> list[dict[str, Any]]:
    try:
        frames = json.loads(path.read_text(encoding="utf-8-sig"))
    except (ValueError, UnicodeDecodeError) as error:
        raise LoaderError(path, f"not valid JSON ({error})") from error
    if not isinstance(frames, list) or not all(isinstance(f, dict) for f in frames):
        raise LoaderError(path, "expected a JSON list with one object per frame")
    return frames


def _n_keypoints(path: Path, frames: list[dict[str, Any]]) -> int:
    for frame in frames:
        if frame.get("kp_xyz") is not None:
            try:
                shape = np.asarray(frame["kp_xyz"], dtype=np.float64).shape
            except (TypeError, ValueError) as error:
                raise LoaderError(
                    path, f"kp_xyz is not a numeric array ({error})"
                ) from error
            if len(shape) < 2 or shape[-1] != 3:
                raise LoaderError(path, f"kp_xyz has shape {shape}; expected [1, K, 3]")
            return shape[-2]
    raise LoaderError(
        path,
        "no frame has 'kp_xyz': this holds only bounding-box predictions "
        "(run FreiPose predict_pose.py to add keypoints)",
    )


def _stack_frames(
    path: Path, frames: list[dict[str, Any]], n_keypoints: int, use_scores: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    """Position (time, 3, keypoint, 1) and, if asked, kp_score (time, keypoint, 1)."""
    position = np.full((len(frames), 3, n_keypoints, 1), np.nan)
    scores = np.full((len(frames), n_keypoints, 1), np.nan) if use_scores else None
    for index, frame in enumerate(frames):
        if frame.get("kp_xyz") is None:
            continue  # FreiPose skipped this frame (no root point): NaN row
        xyz = _frame_array(path, index, frame["kp_xyz"], (n_keypoints, 3))
        position[index, :, :, 0] = xyz.T
        if scores is not None and frame.get("kp_score") is not None:
            scores[index, :, 0] = _frame_array(
                path, index, frame["kp_score"], (n_keypoints,)
            )
    return position, scores


@register_loader(
    "freipose",
    suffixes=(".json",),
    sniff=_is_freipose,
    priority=50,
    description="FreiPose 3D predictions (pred_*.json from predict_pose.py)",
)
def read_freipose(
    path: Path,
    *,
    keypoint_names: Sequence[str] | None = None,
    skeleton_file: str | Path | None = None,
    use_scores: bool = False,
) -> list[RecordingData]:
    """Read a FreiPose prediction ``.json`` file.

    Parameters
    ----------
    path
        JSON list with one dict per frame (``kp_xyz``, ``kp_score``, ...).
    keypoint_names
        Keypoint names in file order.
    skeleton_file
        FreiPose skeleton config giving the names (unless ``keypoint_names``
        is given) and the limbs as skeleton edges.
    use_scores
        Use ``kp_score`` (unbounded network score) as confidence. Default
        False: no confidence, 1.0 filled and flagged.

    Returns
    -------
    list of RecordingData
        One 3-D recording named after the file stem, one individual; frames
        without ``kp_xyz`` are NaN. The file records no frame rate.
    """
    path = Path(path)
    frames = _load_frames(path)
    n_keypoints = _n_keypoints(path, frames)
    names, edges = _keypoint_names(path, n_keypoints, keypoint_names, skeleton_file)
    position, scores = _stack_frames(path, frames, n_keypoints, use_scores)
    if scores is not None and np.isnan(scores).all():
        warnings.warn(
            f"{path}: use_scores=True but no frame has kp_score; "
            "confidence filled with 1.0",
            DataQualityWarning,
            stacklevel=2,
        )
        scores = None
    return [
        RecordingData(
            name=path.stem,
            position=position,
            keypoints=names,
            individuals=[DEFAULT_INDIVIDUAL],
            confidence=scores,
            source_file=path.as_posix(),
            source_software=SOURCE_SOFTWARE,
            skeleton=edges,
        )
    ]
