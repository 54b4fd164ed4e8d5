"""Keypoint names for formats whose files do not name their keypoints."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

from moseq_xr.exceptions import DataQualityWarning, LoaderError

Edges = list[tuple[str, str]]


def resolve_keypoint_names(
    path: Path,
    count: int,
    keypoint_names: Sequence[str] | None,
    skeleton: tuple[list[str], Edges] | None,
    what: str,
    hint: str,
) -> tuple[list[str], Edges | None]:
    """Names (and skeleton edges) from ``keypoint_names=`` and/or a skeleton file.

    Parameters
    ----------
    path
        The pose file (for messages).
    count
        Number of keypoints in the file.
    keypoint_names
        Names given by the user, or None.
    skeleton
        ``(names, edges)`` read from a skeleton file, or None. With
        ``keypoint_names`` too, the skeleton's edges are renamed by position.
    what
        Why names are missing, e.g. ``"DANNCE files do not name their markers"``.
    hint
        How to pass a skeleton file, e.g. ``"skeleton_file='<skeleton>.mat'"``.

    Returns
    -------
    tuple
        ``(names, edges or None)``; without either option ``keypoint_0..`` and a
        :class:`DataQualityWarning`.
    """
    if skeleton is not None and len(skeleton[0]) != count:
        raise LoaderError(
            path,
            f"{count} keypoints in the file but the skeleton names {len(skeleton[0])}",
        )
    if keypoint_names is not None:
        if isinstance(keypoint_names, str) or len(keypoint_names) != count:
            raise LoaderError(
                path,
                f"keypoint_names must be a list of {count} names, "
                f"got {keypoint_names!r}",
            )
        names = [str(name) for name in keypoint_names]
        if skeleton is None:
            return names, None
        index = {old: i for i, old in enumerate(skeleton[0])}
        return names, [(names[index[a]], names[index[b]]) for a, b in skeleton[1]]
    if skeleton is not None:
        return list(skeleton[0]), skeleton[1]
    warnings.warn(
        f"{path}: {what}; using keypoint_0...keypoint_{count - 1}. Pass "
        f"keypoint_names=[...] or {hint}",
        DataQualityWarning,
        stacklevel=5,
    )
    return [f"keypoint_{i}" for i in range(count)], None
