"""DANNCE 3-D predictions (``save_data_AVG.mat``, ``save_data_MAX.mat``, ...).

A MATLAB v5 file (written with ``scipy.io.savemat``) holding:

- ``pred``: ``(n_samples, 3, n_markers)`` in millimetres, or
  ``(n_samples, n_instances, 3, n_markers)`` for multi-instance sDANNCE;
- ``p_max``: ``(n_samples, n_markers)`` (or with an instance axis), the maximum
  of each marker's probability map;
- ``sampleID``: ``(n_samples,)`` sample/frame identifiers (kept in
  ``RecordingData.extra["sampleID"]``; rows are taken as consecutive frames);
- ``data``: ground truth or zeros (ignored).

The file records neither marker names nor a frame rate. Names come from
``keypoint_names=`` or from the DANNCE skeleton ``.mat`` given as
``skeleton_file=`` (``joint_names`` cell array and 1-based ``joints_idx`` edge
pairs, e.g. ``configs/mouse22_skeleton.mat``); without either the markers are
called ``keypoint_0, keypoint_1, ...`` (with a warning). No skeleton is ever
guessed from neighbouring files.

Confidence: DANNCE has no calibrated score. By default none is read (1.0 is
filled and the recording flagged ``confidence_filled``, as keypoint-MoSeq
does). ``confidence="p_max"`` uses ``p_max`` instead; note that it is the
peak of a softmax probability map over a 3-D grid, not normalised to 0-1
(in the DANNCE mouse demo it lies between 0.001 and 0.78), so it is not
comparable with the likelihoods of 2-D trackers and confidence thresholds
tuned for those do not apply.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.io
from scipy.io.matlab import MatReadError

from moseq_xr.exceptions import LoaderError
from moseq_xr.io.formats._names import resolve_keypoint_names
from moseq_xr.io.registry import register_loader
from moseq_xr.schema import RecordingData
from moseq_xr.schema.names import DEFAULT_INDIVIDUAL

SOURCE_SOFTWARE = "DANNCE"
_MAT5_MAGIC = b"MATLAB 5.0 MAT-file"
_CONFIDENCE_CHOICES = (None, "p_max")


def _pred_shape_ok(shape: tuple[int, ...]) -> bool:
    return len(shape) in (3, 4) and shape[-2] == 3


def _is_dannce(path: Path) -> bool:
    """Whether ``path`` is a MATLAB v5 file with a DANNCE-shaped ``pred``."""
    with open(path, "rb") as handle:
        if handle.read(len(_MAT5_MAGIC)) != _MAT5_MAGIC:
            return False
    try:
        variables = scipy.io.whosmat(path)
    except Exception:  # not a readable MAT file: some other format
        return False
    shapes = {name: tuple(shape) for name, shape, _ in variables}
    return "pred" in shapes and _pred_shape_ok(shapes["pred"])


def _load_mat(path: Path, variables: Sequence[str] | None = None) -> dict[str, Any]:
    """``scipy.io.loadmat`` with errors turned into :class:`LoaderError`."""
    try:
        return scipy.io.loadmat(path, variable_names=variables)
    except NotImplementedError as error:  # MATLAB v7.3 (HDF5)
        raise LoaderError(
            path, f"MATLAB v7.3 files are not supported ({error}); save it as v5/v7"
        ) from error
    except (MatReadError, ValueError, TypeError) as error:
        raise LoaderError(path, f"not a readable MATLAB .mat file ({error})") from error


def _cell_strings(path: Path, cell: Any) -> list[str]:
    """Strings of a MATLAB cell array or char matrix loaded by scipy."""
    names = []
    for item in np.ravel(np.asarray(cell, dtype=object)):
        values = np.ravel(item) if isinstance(item, np.ndarray) else [item]
        if len(values) != 1:
            raise LoaderError(path, f"joint_names holds a non-string entry {item!r}")
        names.append(str(values[0]).strip())
    return names


def read_dannce_skeleton(path: str | Path) -> tuple[list[str], list[tuple[str, str]]]:
    """Read joint names and edges from a DANNCE skeleton ``.mat``.

    Parameters
    ----------
    path
        A skeleton file with ``joint_names`` (cell array of strings) and
        ``joints_idx`` (``(n_edges, 2)``, 1-based), e.g. ``mouse22_skeleton.mat``.

    Returns
    -------
    names, edges
        Joint names in file order, and edges as pairs of names.
    """
    path = Path(path)
    if not path.is_file():
        raise LoaderError(path, "skeleton file not found")
    content = _load_mat(path, ["joint_names", "joints_idx"])
    if "joint_names" not in content:
        raise LoaderError(
            path, "no 'joint_names' variable; expected a DANNCE skeleton .mat"
        )
    names = _cell_strings(path, content["joint_names"])
    pairs = np.asarray(content.get("joints_idx", np.zeros((0, 2))), dtype=np.int64)
    if pairs.size and (pairs.ndim != 2 or pairs.shape[1] != 2):
        raise LoaderError(path, f"joints_idx must be (n_edges, 2), got {pairs.shape}")
    pairs = pairs.reshape(-1, 2)
    if pairs.size and (pairs.min() < 1 or pairs.max() > len(names)):
        raise LoaderError(
            path, f"joints_idx must be 1-based indices into {len(names)} joint_names"
        )
    edges = [(names[a - 1], names[b - 1]) for a, b in pairs]
    return names, edges


def _marker_names(
    path: Path,
    n_markers: int,
    keypoint_names: Sequence[str] | None,
    skeleton_file: str | Path | None,
) -> tuple[list[str], list[tuple[str, str]] | None]:
    """Keypoint names and skeleton edges from the options (see module doc)."""
    skeleton = None if skeleton_file is None else read_dannce_skeleton(skeleton_file)
    count = n_markers
    return resolve_keypoint_names(
        path,
        count,
        keypoint_names,
        skeleton,
        "DANNCE files do not name their markers",
        "skeleton_file='<skeleton>.mat'",
    )


def _position(path: Path, pred: np.ndarray) -> np.ndarray:
    """``pred`` as (time, space, keypoint, individual)."""
    if not _pred_shape_ok(pred.shape):
        raise LoaderError(
            path,
            f"'pred' has shape {pred.shape}; expected (n_samples, 3, n_markers) or "
            "(n_samples, n_instances, 3, n_markers)",
        )
    if pred.ndim == 3:
        return pred[..., None]
    return pred.transpose(0, 2, 3, 1)


def _p_max_confidence(
    path: Path, p_max: np.ndarray | None, pred: np.ndarray
) -> np.ndarray:
    """``p_max`` as (time, keypoint, individual), checked against ``pred``."""
    n_time, n_markers = pred.shape[0], pred.shape[-1]
    n_instances = pred.shape[1] if pred.ndim == 4 else 1
    if p_max is None:
        raise LoaderError(
            path, "confidence='p_max' but the file has no 'p_max' variable"
        )
    if pred.ndim == 3 and p_max.shape == (n_time, n_markers):
        return p_max[..., None].astype(np.float64)
    if pred.ndim == 4 and p_max.shape == (n_time, n_instances, n_markers):
        return p_max.transpose(0, 2, 1).astype(np.float64)
    raise LoaderError(
        path,
        f"'p_max' has shape {p_max.shape}, which does not match 'pred' {pred.shape}",
    )


@register_loader(
    "dannce",
    suffixes=(".mat",),
    sniff=_is_dannce,
    priority=50,
    description="DANNCE 3D predictions (save_data_AVG.mat), single or multi-instance",
)
def read_dannce(
    path: Path,
    *,
    keypoint_names: Sequence[str] | None = None,
    skeleton_file: str | Path | None = None,
    confidence: str | None = None,
) -> list[RecordingData]:
    """Read a DANNCE predictions ``.mat`` file.

    Parameters
    ----------
    path
        ``save_data_AVG.mat`` or similar, with a ``pred`` variable.
    keypoint_names
        Marker names in file order.
    skeleton_file
        DANNCE skeleton ``.mat`` (``joint_names``, ``joints_idx``) giving the
        names (unless ``keypoint_names`` is given) and the skeleton edges.
    confidence
        None (default: no confidence, 1.0 filled and flagged) or ``"p_max"``
        (the probability-map peak; not normalised to 0-1).

    Returns
    -------
    list of RecordingData
        One 3-D recording in millimetres named after the file stem; the
        instances of a multi-instance file are individuals ``instance_0``,
        ``instance_1``, ... The file records no frame rate.
    """
    path = Path(path)
    if confidence not in _CONFIDENCE_CHOICES:
        raise ValueError(
            f"confidence must be one of {_CONFIDENCE_CHOICES}, got {confidence!r}"
        )
    content = _load_mat(path, ["pred", "p_max", "sampleID"])
    if "pred" not in content:
        raise LoaderError(
            path, "no 'pred' variable: not a DANNCE predictions file (save_data_*.mat)"
        )
    pred = np.asarray(content["pred"], dtype=np.float64)
    position = _position(path, pred)
    names, edges = _marker_names(path, position.shape[2], keypoint_names, skeleton_file)
    scores = None
    if confidence == "p_max":
        scores = _p_max_confidence(path, content.get("p_max"), pred)
    n_individuals = position.shape[3]
    individuals = (
        [DEFAULT_INDIVIDUAL]
        if pred.ndim == 3
        else [f"instance_{i}" for i in range(n_individuals)]
    )
    extra = {}
    if "sampleID" in content:
        sample_id = np.asarray(content["sampleID"])
        extra["sampleID"] = (
            sample_id.ravel() if sample_id.size == len(pred) else sample_id
        )
    return [
        RecordingData(
            name=path.stem,
            position=position,
            keypoints=names,
            individuals=individuals,
            confidence=scores,
            source_file=path.as_posix(),
            source_software=SOURCE_SOFTWARE,
            skeleton=edges,
            space_unit="millimeters",
            extra=extra,
        )
    ]
