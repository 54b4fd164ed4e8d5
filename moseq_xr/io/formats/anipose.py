"""Anipose 3-D triangulation CSVs (``pose-3d/*.csv``; spec §2.5).

Columns: per bodypart ``{bp}_x, {bp}_y, {bp}_z, {bp}_error, {bp}_ncams,
{bp}_score``, then ``M_00 .. M_22`` (axis-alignment matrix), ``center_0..2`` and
``fnum`` (0-based video frame). Column names are split **from the right** on the
six known suffixes, so bodyparts such as ``left-ear`` or ``tail (base)`` keep
their names (keypoint-MoSeq's word-character regex drops them), and bodyparts keep the
**file order** (movement sorts them alphabetically).

Confidence is ``{bp}_score``, NaN where fewer than two cameras saw the point
(``ncams < 2``). Rows are placed at ``fnum`` (gaps become NaN rows). The unit is
that of the calibration board, which the CSV does not record, so
``space_unit`` is left unknown.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pandas as pd

from moseq_xr.exceptions import LoaderError
from moseq_xr.io.registry import register_loader
from moseq_xr.schema import RecordingData
from moseq_xr.schema.names import DEFAULT_INDIVIDUAL

SOURCE_SOFTWARE = "Anipose"
SPATIAL_SUFFIXES = ("x", "y", "z")
BODYPART_SUFFIXES = ("x", "y", "z", "error", "ncams", "score")
FRAME_COLUMN = "fnum"
_EXTRA_COLUMN = re.compile(r"^(M_[0-2][0-2]|center_[0-2]|fnum)$")


def split_column(name: str) -> tuple[str, str] | None:
    """Split ``{bodypart}_{suffix}`` from the right on a known suffix.

    Parameters
    ----------
    name
        A column name.

    Returns
    -------
    tuple of str or None
        ``(bodypart, suffix)``, or None if ``name`` ends in no known suffix.
    """
    bodypart, sep, suffix = name.rpartition("_")
    if not sep or not bodypart or suffix not in BODYPART_SUFFIXES:
        return None
    return bodypart, suffix


def bodypart_columns(columns: list[str]) -> dict[str, dict[str, str]] | None:
    """Group anipose columns by bodypart, in file order.

    Parameters
    ----------
    columns
        Column names of the CSV.

    Returns
    -------
    dict or None
        ``{bodypart: {suffix: column}}``; None when a column is neither a
        bodypart column nor ``M_ij``/``center_i``/``fnum``, or when a bodypart
        lacks one of x, y, z, or no bodypart is found.
    """
    groups: dict[str, dict[str, str]] = {}
    for column in columns:
        if _EXTRA_COLUMN.match(column):
            continue
        parts = split_column(column)
        if parts is None:
            return None
        groups.setdefault(parts[0], {})[parts[1]] = column
    complete = all(set(SPATIAL_SUFFIXES) <= set(g) for g in groups.values())
    return groups if groups and complete else None


def _header(path: Path) -> list[str]:
    with open(path, newline="", encoding="utf-8-sig") as handle:
        return next(csv.reader(handle), [])


def _is_anipose(path: Path) -> bool:
    """Whether the header of ``path`` is an anipose triangulation header."""
    try:
        header = _header(path)
    except (UnicodeDecodeError, csv.Error):
        return False
    return bodypart_columns([c.strip() for c in header]) is not None


def _frames(path: Path, table: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
    """Row order and frame index from ``fnum`` (None when rows are 0..T-1)."""
    if FRAME_COLUMN not in table:
        return np.arange(len(table)), None
    fnum = table[FRAME_COLUMN].to_numpy(dtype=np.float64)
    if (
        not np.all(np.isfinite(fnum))
        or np.any(fnum != np.round(fnum))
        or fnum.min() < 0
    ):
        raise LoaderError(
            path, "column 'fnum' must hold non-negative whole frame numbers"
        )
    frames = fnum.astype(np.int64)
    order = np.argsort(frames, kind="stable")
    frames = frames[order]
    if np.any(np.diff(frames) == 0):
        raise LoaderError(path, "column 'fnum' repeats frame numbers")
    consecutive = np.array_equal(frames, np.arange(frames.size))
    return order, None if consecutive else frames


def _confidence(
    table: pd.DataFrame, groups: dict[str, dict[str, str]]
) -> np.ndarray | None:
    if not any("score" in g for g in groups.values()):
        return None
    confidence = np.full((len(table), len(groups)), np.nan)
    for k, columns in enumerate(groups.values()):
        if "score" in columns:
            confidence[:, k] = table[columns["score"]].to_numpy(dtype=np.float64)
        if "ncams" in columns:
            ncams = table[columns["ncams"]].to_numpy(dtype=np.float64)
            confidence[~(ncams >= 2), k] = np.nan
    return confidence


def _alignment(table: pd.DataFrame) -> dict[str, list]:
    extra: dict[str, list] = {}
    matrix = [f"M_{i}{j}" for i in range(3) for j in range(3)]
    if all(c in table for c in matrix):
        extra["M"] = (
            table[matrix].iloc[0].to_numpy(dtype=np.float64).reshape(3, 3).tolist()
        )
    center = [f"center_{i}" for i in range(3)]
    if all(c in table for c in center):
        extra["center"] = table[center].iloc[0].to_numpy(dtype=np.float64).tolist()
    return extra


def _read_table(path: Path) -> tuple[pd.DataFrame, dict[str, dict[str, str]]]:
    table = pd.read_csv(path)
    table.columns = [str(c).strip() for c in table.columns]
    groups = bodypart_columns(list(table.columns))
    if groups is None:
        raise LoaderError(
            path,
            "is not an anipose 3-D CSV: expected columns {bodypart}_x/_y/_z[/_error/"
            "_ncams/_score] per bodypart, plus M_00..M_22, center_0..2 and fnum",
        )
    if table.empty:
        raise LoaderError(path, "holds no rows")
    return table, groups


@register_loader(
    "anipose",
    suffixes=(".csv",),
    sniff=_is_anipose,
    priority=30,
    description="Anipose 3-D triangulation (.csv: {bp}_x/_y/_z/_score..., fnum)",
)
def read_anipose(path: Path) -> list[RecordingData]:
    """Read an anipose ``triangulate`` CSV.

    Parameters
    ----------
    path
        The CSV.

    Returns
    -------
    list of RecordingData
        One 3-D recording named after the file stem, one individual
        (``individual_0``), keypoints in file order, confidence from
        ``{bp}_score`` (NaN where ``ncams < 2``), frames from ``fnum``. The
        alignment matrix and center go to ``extra["M"]`` and ``extra["center"]``.

    Raises
    ------
    LoaderError
        When the columns are not anipose's or ``fnum`` is not a frame index.
    """
    table, groups = _read_table(path)
    try:
        position = np.stack(
            [
                np.stack(
                    [table[g[s]].to_numpy(dtype=np.float64) for s in SPATIAL_SUFFIXES],
                    axis=1,
                )
                for g in groups.values()
            ],
            axis=2,
        )[..., None]
        confidence = _confidence(table, groups)
    except (TypeError, ValueError) as error:
        raise LoaderError(path, f"holds non-numeric pose values ({error})") from error
    order, frame = _frames(path, table)
    return [
        RecordingData(
            name=path.stem,
            position=position[order],
            keypoints=list(groups),
            individuals=[DEFAULT_INDIVIDUAL],
            confidence=None if confidence is None else confidence[order][..., None],
            frame=frame,
            source_file=path.as_posix(),
            source_software=SOURCE_SOFTWARE,
            extra=_alignment(table),
        )
    ]
