"""DeepLabCut pose files: predictions and labels, ``.h5`` and ``.csv``.

Layout (spec §2.3): a pandas table whose columns form a MultiIndex with levels
``scorer, [individuals,] bodyparts, coords``. Coordinates are selected **by
name** (``x``, ``y``, optional ``z``, optional ``likelihood``); other coords
(for example Lightning Pose ensemble statistics) are ignored. Rows are frame
numbers in prediction files and image paths (``labeled-data/<video>/img0123.png``)
in labels files (``CollectedData_*``), where the frame is the last run of digits
in the image file name.

Multi-animal files
------------------
Each DLC individual becomes one individual of the recording. Projects with
*unique bodyparts* (arena landmarks) have an extra individual ``single`` whose
bodyparts differ from the animals'. It is kept as its own individual by
default: since a recording has one keypoint set, the keypoint axis is the
**union** of all individuals' bodyparts (in file order) and every individual is
NaN at the keypoints it does not have (confidence NaN there too). Pass
``exclude_individuals=["single"]`` to drop it (keypoint-MoSeq's default); its
bodyparts then disappear from the keypoint axis.

Single-animal files can encode several animals as bodypart prefixes
(``mouse1_nose``, ``mouse2_nose``); ``animals_as_prefix`` splits them into
individuals.

The module also holds the DLC-style reader shared with
:mod:`moseq_xr.io.formats.lightning_pose`.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import h5py
import numpy as np
import pandas as pd

from moseq_xr.exceptions import LoaderError
from moseq_xr.io.registry import register_loader
from moseq_xr.schema import RecordingData
from moseq_xr.schema.names import DEFAULT_INDIVIDUAL

SOURCE_SOFTWARE = "DeepLabCut"
H5_KEY = "df_with_missing"
SINGLE_INDIVIDUAL = "single"
LIKELIHOOD = "likelihood"
SPATIAL_COORDS = ("x", "y", "z")
SINGLE_LEVELS = ("scorer", "bodyparts", "coords")
MULTI_LEVELS = ("scorer", "individuals", "bodyparts", "coords")

AnimalsAsPrefix = bool | str | Sequence[str]


# --------------------------------------------------------------------------- sniffing


@dataclass(frozen=True)
class CsvHeader:
    """The header rows of a DLC-style CSV.

    Attributes
    ----------
    levels
        Column level names, :data:`SINGLE_LEVELS` or :data:`MULTI_LEVELS`.
    n_index_columns
        Leading columns holding the row index (1, or 3 for new-style labels).
    scorers
        Distinct values of the scorer row.
    coords
        Distinct values of the coords row.
    """

    levels: tuple[str, ...]
    n_index_columns: int
    scorers: frozenset[str]
    coords: frozenset[str]


def _first_rows(path: Path, n_rows: int = 4) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        rows = []
        for row in reader:
            rows.append(row)
            if len(rows) == n_rows:
                break
    return rows


def read_csv_header(path: Path) -> CsvHeader | None:
    """Parse the DLC header rows of a CSV, or return None if it has none.

    Parameters
    ----------
    path
        A ``.csv`` file.

    Returns
    -------
    CsvHeader or None
        None when the first cells of the first rows are not
        ``scorer, [individuals,] bodyparts, coords`` or ``x``/``y`` is missing.
    """
    try:
        rows = _first_rows(path)
    except (UnicodeDecodeError, csv.Error):
        return None
    first_cells = tuple(row[0].strip().lower() if row else "" for row in rows)
    for levels in (MULTI_LEVELS, SINGLE_LEVELS):
        if first_cells[: len(levels)] == levels:
            break
    else:
        return None
    scorer_row, coords_row = rows[0], rows[len(levels) - 1]
    n_index = 1
    while n_index < len(scorer_row) and scorer_row[n_index] == "":
        n_index += 1
    coords = frozenset(c.strip() for c in coords_row[n_index:])
    if not {"x", "y"} <= coords:
        return None
    return CsvHeader(levels, n_index, frozenset(scorer_row[n_index:]), coords)


def pandas_h5_keys(path: Path) -> list[str]:
    """Top-level keys of an HDF5 file that hold pandas objects.

    Parameters
    ----------
    path
        An HDF5 file (others give an empty list).

    Returns
    -------
    list of str
        Keys whose group carries pandas' ``pandas_type`` attribute.
    """
    if not h5py.is_hdf5(path):
        return []
    with h5py.File(path, "r") as handle:
        return [
            key
            for key, item in handle.items()
            if isinstance(item, h5py.Group) and "pandas_type" in item.attrs
        ]


def choose_h5_key(path: Path, keys: Sequence[str]) -> str:
    """Pick ``df_with_missing`` or the only pandas key of a DLC ``.h5``.

    Raises
    ------
    LoaderError
        When there is no pandas table or several without ``df_with_missing``.
    """
    if H5_KEY in keys:
        return H5_KEY
    if len(keys) == 1:
        return keys[0]
    if not keys:
        raise LoaderError(
            path, "holds no pandas table (expected key 'df_with_missing')"
        )
    raise LoaderError(
        path, f"holds several pandas tables {list(keys)} and none is 'df_with_missing'"
    )


def _has_dlc_columns(columns: pd.Index) -> bool:
    names = tuple(str(n).lower() for n in columns.names)
    if names not in (SINGLE_LEVELS, MULTI_LEVELS):
        return False
    coords = set(columns.get_level_values(-1))
    return {"x", "y"} <= coords


def _is_dlc_h5(path: Path) -> bool:
    keys = pandas_h5_keys(path)
    try:
        key = choose_h5_key(path, keys)
        head = pd.read_hdf(path, key, start=0, stop=1)
    # pandas raises many exception types on foreign tables; any of them means "not DLC".
    except Exception:
        return False
    return isinstance(head, pd.DataFrame) and _has_dlc_columns(head.columns)


def _is_dlc(path: Path) -> bool:
    """Whether ``path`` is a DLC-style ``.csv`` or a pandas ``.h5`` with DLC columns."""
    if path.suffix.lower() == ".csv":
        return read_csv_header(path) is not None
    return _is_dlc_h5(path)


# --------------------------------------------------------------------------- reading


@dataclass
class DlcTable:
    """A DLC table reduced to plain arrays.

    Attributes
    ----------
    values
        Float array (rows, columns).
    columns
        ``(individual, bodypart, coord)`` per column; the individual is
        :data:`DEFAULT_INDIVIDUAL` in single-animal files.
    index
        The row index (frame numbers or image paths).
    scorers
        Distinct scorer names in file order.
    multi_animal
        Whether the file has an ``individuals`` level.
    """

    values: np.ndarray
    columns: list[tuple[str, str, str]]
    index: pd.Index
    scorers: list[str]
    multi_animal: bool


def _read_csv_frame(path: Path) -> pd.DataFrame:
    header = read_csv_header(path)
    if header is None:
        raise LoaderError(
            path,
            "is not a DeepLabCut-style CSV: its first cells must be 'scorer', "
            "['individuals',] 'bodyparts', 'coords' with x and y coords",
        )
    frame = pd.read_csv(
        path,
        header=list(range(len(header.levels))),
        index_col=list(range(header.n_index_columns)),
    )
    frame.columns = frame.columns.set_names(list(header.levels))
    return frame


def _read_h5_frame(path: Path) -> pd.DataFrame:
    key = choose_h5_key(path, pandas_h5_keys(path))
    frame = pd.read_hdf(path, key)
    if not isinstance(frame, pd.DataFrame):
        raise LoaderError(
            path, f"key {key!r} holds a {type(frame).__name__}, not a table"
        )
    return frame


def _as_table(path: Path, frame: pd.DataFrame) -> DlcTable:
    columns = frame.columns
    if not isinstance(columns, pd.MultiIndex) or not _has_dlc_columns(columns):
        raise LoaderError(
            path,
            f"column levels {list(columns.names)} are not DeepLabCut's "
            f"{list(SINGLE_LEVELS)} or {list(MULTI_LEVELS)} with x and y coords",
        )
    multi = columns.nlevels == len(MULTI_LEVELS)
    tuples = [tuple(str(v) for v in c) for c in columns]
    named = [
        (c[1], c[2], c[3]) if multi else (DEFAULT_INDIVIDUAL, c[1], c[2])
        for c in tuples
    ]
    duplicates = sorted(c for c, n in Counter(named).items() if n > 1)
    if duplicates:
        raise LoaderError(path, f"repeats columns {duplicates[:5]} (several scorers?)")
    try:
        values = frame.to_numpy(dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise LoaderError(path, f"holds non-numeric pose values ({error})") from error
    scorers = list(dict.fromkeys(c[0] for c in tuples))
    return DlcTable(values, named, frame.index, scorers, multi)


def read_dlc_table(path: Path) -> DlcTable:
    """Read a DLC-style ``.h5`` or ``.csv`` into a :class:`DlcTable`.

    Parameters
    ----------
    path
        The file.

    Returns
    -------
    DlcTable
        Values, column names and row index.

    Raises
    ------
    LoaderError
        When the file is not DLC-style.
    """
    if path.suffix.lower() == ".csv":
        frame = _read_csv_frame(path)
    else:
        frame = _read_h5_frame(path)
    if frame.shape[0] == 0:
        raise LoaderError(path, "holds no rows")
    return _as_table(path, frame)


# ---------------------------------------------------------------- rows -> frames


@dataclass
class RowGroup:
    """Rows of a table that form one recording.

    Attributes
    ----------
    suffix
        Added to the recording name ("" or ``_<video folder>``).
    rows
        Row positions in the table, in frame order.
    frame
        Video frame of each selected row, or None for rows 0..T-1.
    image_paths
        The label image of each row (labels files only).
    """

    suffix: str
    rows: np.ndarray
    frame: np.ndarray | None
    image_paths: list[str] | None = None


def _checked_frames(
    path: Path, frames: np.ndarray, what: str
) -> tuple[np.ndarray, np.ndarray]:
    """Sort ``frames`` and return (row order, sorted frames); reject bad ones."""
    if frames.size and frames.min() < 0:
        raise LoaderError(path, f"{what} has negative frame numbers")
    order = np.argsort(frames, kind="stable")
    ordered = frames[order]
    repeated = np.unique(ordered[1:][np.diff(ordered) == 0])
    if repeated.size:
        raise LoaderError(path, f"{what} repeats frame numbers {repeated[:5].tolist()}")
    return order, ordered


def _integer_frames(index: pd.Index) -> np.ndarray | None:
    if pd.api.types.is_integer_dtype(index.dtype):
        return index.to_numpy(dtype=np.int64)
    if pd.api.types.is_float_dtype(index.dtype):
        values = index.to_numpy(dtype=np.float64)
        if np.all(np.isfinite(values)) and np.all(values == np.round(values)):
            return values.astype(np.int64)
        return None
    text = [str(v).strip() for v in index]
    if all(t.isdigit() for t in text):
        return np.array([int(t) for t in text], dtype=np.int64)
    return None


def _image_paths(index: pd.Index) -> list[str]:
    if isinstance(index, pd.MultiIndex):
        return ["/".join(str(part) for part in row) for row in index]
    return [str(v).replace("\\", "/") for v in index]


def _frame_of_image(path: Path, image: str) -> int:
    digits = re.findall(r"\d+", PurePosixPath(image).stem)
    if not digits:
        raise LoaderError(
            path, f"label image {image!r} has no frame number (digits) in its file name"
        )
    return int(digits[-1])


def _label_groups(path: Path, images: list[str]) -> list[RowGroup]:
    folders = [PurePosixPath(image).parent for image in images]
    distinct = list(dict.fromkeys(folders))
    groups = []
    for folder in distinct:
        rows = np.array(
            [i for i, f in enumerate(folders) if f == folder], dtype=np.int64
        )
        frames = np.array(
            [_frame_of_image(path, images[i]) for i in rows], dtype=np.int64
        )
        order, ordered = _checked_frames(path, frames, f"labels folder {str(folder)!r}")
        suffix = f"_{folder.name}" if len(distinct) > 1 else ""
        paths = [images[i] for i in rows[order]]
        groups.append(RowGroup(suffix, rows[order], ordered, paths))
    return groups


def row_groups(path: Path, index: pd.Index) -> list[RowGroup]:
    """Split table rows into recordings and map them to video frames.

    Integer indexes are frame numbers (prediction files). Other indexes are
    label image paths: the frame is the last run of digits in the file name,
    and each image folder (video) becomes its own recording when there are
    several.

    Parameters
    ----------
    path
        The file (for error messages).
    index
        The table's row index.

    Returns
    -------
    list of RowGroup
        One per recording.
    """
    frames = _integer_frames(index) if not isinstance(index, pd.MultiIndex) else None
    if frames is None:
        return _label_groups(path, _image_paths(index))
    order, ordered = _checked_frames(path, frames, "the row index")
    consecutive = np.array_equal(ordered, np.arange(ordered.size))
    return [RowGroup("", order, None if consecutive else ordered)]


# ------------------------------------------------------------- columns -> arrays


def _prefix_list(animals_as_prefix: AnimalsAsPrefix) -> list[str] | None:
    if animals_as_prefix is False or animals_as_prefix is None:
        return None
    if animals_as_prefix is True:
        return []
    if isinstance(animals_as_prefix, str):
        return [animals_as_prefix]
    return [str(p) for p in animals_as_prefix]


def _split_on_first_underscore(
    path: Path, bodyparts: list[str]
) -> dict[str, tuple[str, str]]:
    mapping: dict[str, tuple[str, str]] = {}
    for bp in bodyparts:
        animal, _, keypoint = bp.partition("_")
        if animal and keypoint:
            mapping[bp] = (animal, keypoint)
    lacking = [bp for bp in bodyparts if bp not in mapping]
    if lacking:
        raise LoaderError(
            path,
            "animals_as_prefix=True needs every bodypart named <animal>_<bodypart>; "
            f"these are not: {lacking[:5]}. Pass the animal prefixes as a list",
        )
    suffix_sets: dict[str, set[str]] = {}
    for animal, keypoint in mapping.values():
        suffix_sets.setdefault(animal, set()).add(keypoint)
    reference = next(iter(suffix_sets.values()))
    if any(s != reference for s in suffix_sets.values()):
        detail = {a: sorted(s) for a, s in suffix_sets.items()}
        raise LoaderError(
            path,
            "animals_as_prefix=True: splitting on the first '_' gives animals with "
            f"different bodyparts {detail}; pass the animal prefixes as a list",
        )
    return mapping


def _split_on_given_prefixes(
    path: Path, bodyparts: list[str], prefixes: list[str]
) -> dict[str, tuple[str, str]]:
    longest_first = sorted(prefixes, key=len, reverse=True)
    mapping: dict[str, tuple[str, str]] = {}
    for bp in bodyparts:
        prefix = next((p for p in longest_first if bp.startswith(p)), None)
        keypoint = bp[len(prefix) :].lstrip("_") if prefix is not None else ""
        if prefix is None or not keypoint:
            raise LoaderError(
                path,
                f"bodypart {bp!r} does not start with one of the animal prefixes "
                f"{prefixes} followed by a bodypart name",
            )
        mapping[bp] = (prefix, keypoint)
    return mapping


def _apply_prefixes(
    path: Path, table: DlcTable, animals_as_prefix: AnimalsAsPrefix
) -> list[tuple[str, str, str]]:
    prefixes = _prefix_list(animals_as_prefix)
    if prefixes is None:
        return table.columns
    if table.multi_animal:
        raise LoaderError(
            path,
            "animals_as_prefix is for single-animal files; this file already has an "
            "'individuals' level",
        )
    bodyparts = list(dict.fromkeys(bp for _, bp, _ in table.columns))
    if prefixes:
        mapping = _split_on_given_prefixes(path, bodyparts, prefixes)
    else:
        mapping = _split_on_first_underscore(path, bodyparts)
    return [(*mapping[bp], coord) for _, bp, coord in table.columns]


def _excluded(exclude_individuals: str | Sequence[str] | None) -> set[str]:
    if exclude_individuals is None:
        return set()
    if isinstance(exclude_individuals, str):
        return {exclude_individuals}
    return {str(name) for name in exclude_individuals}


@dataclass
class PoseArrays:
    """Position and confidence assembled from a table's columns."""

    individuals: list[str]
    keypoints: list[str]
    position: np.ndarray
    confidence: np.ndarray | None


def _spatial_coords(path: Path, columns: list[tuple[str, str, str]]) -> list[str]:
    available = {coord for _, _, coord in columns}
    spatial = [c for c in SPATIAL_COORDS if c in available]
    pairs = dict.fromkeys((ind, bp) for ind, bp, _ in columns)
    lookup = set(columns)
    for ind, bp in pairs:
        missing = [c for c in spatial if (ind, bp, c) not in lookup]
        if missing:
            raise LoaderError(
                path, f"individual {ind!r} bodypart {bp!r} lacks coords {missing}"
            )
    return spatial


def assemble_arrays(
    path: Path,
    values: np.ndarray,
    columns: list[tuple[str, str, str]],
    exclude_individuals: str | Sequence[str] | None = None,
) -> PoseArrays:
    """Build position (T, space, keypoint, individual) and confidence arrays.

    Parameters
    ----------
    path
        The file (for error messages).
    values
        Table values (T, columns).
    columns
        ``(individual, bodypart, coord)`` per column of ``values``.
    exclude_individuals
        Individuals to leave out; names absent from the file are ignored.

    Returns
    -------
    PoseArrays
        Keypoints are the union of the kept individuals' bodyparts, in file
        order; individuals lacking a keypoint are NaN there. Confidence is the
        ``likelihood`` coord, or None when the file has none.
    """
    dropped = _excluded(exclude_individuals)
    kept = [(i, c) for i, c in enumerate(columns) if c[0] not in dropped]
    if not kept:
        raise LoaderError(
            path, f"exclude_individuals={sorted(dropped)} leaves no individual"
        )
    kept_columns = [c for _, c in kept]
    spatial = _spatial_coords(path, kept_columns)
    individuals = list(dict.fromkeys(c[0] for c in kept_columns))
    keypoints = list(dict.fromkeys(c[1] for c in kept_columns))
    has_likelihood = any(c[2] == LIKELIHOOD for c in kept_columns)
    shape = (values.shape[0], len(spatial), len(keypoints), len(individuals))
    position = np.full(shape, np.nan)
    confidence = (
        np.full((shape[0], shape[2], shape[3]), np.nan) if has_likelihood else None
    )
    for column, (ind, bp, coord) in kept:
        i, k = individuals.index(ind), keypoints.index(bp)
        if coord in spatial:
            position[:, spatial.index(coord), k, i] = values[:, column]
        elif coord == LIKELIHOOD and confidence is not None:
            confidence[:, k, i] = values[:, column]
    return PoseArrays(individuals, keypoints, position, confidence)


# --------------------------------------------------------------------------- records


def read_dlc_style(
    path: Path,
    source_software: str,
    exclude_individuals: str | Sequence[str] | None = None,
    animals_as_prefix: AnimalsAsPrefix = False,
) -> list[RecordingData]:
    """Read a DLC-style file (DeepLabCut or Lightning Pose) into records.

    Parameters
    ----------
    path
        A DLC-style ``.h5`` or ``.csv``.
    source_software
        Recorded on each record.
    exclude_individuals
        Individuals to drop (e.g. ``["single"]``).
    animals_as_prefix
        Split ``<animal>_<bodypart>`` names into individuals (see
        :func:`read_deeplabcut`).

    Returns
    -------
    list of RecordingData
        One record, or one per labelled video folder in labels files.
    """
    table = read_dlc_table(path)
    columns = _apply_prefixes(path, table, animals_as_prefix)
    arrays = assemble_arrays(path, table.values, columns, exclude_individuals)
    space_unit = "pixels" if arrays.position.shape[1] == 2 else None
    scorer = table.scorers[0] if len(table.scorers) == 1 else table.scorers
    records = []
    for group in row_groups(path, table.index):
        extra: dict[str, object] = {"scorer": scorer}
        if group.image_paths is not None:
            extra["image_paths"] = group.image_paths
        confidence = arrays.confidence
        records.append(
            RecordingData(
                name=f"{path.stem}{group.suffix}",
                position=arrays.position[group.rows],
                keypoints=arrays.keypoints,
                individuals=arrays.individuals,
                confidence=None if confidence is None else confidence[group.rows],
                frame=group.frame,
                source_file=path.as_posix(),
                source_software=source_software,
                space_unit=space_unit,
                extra=extra,
            )
        )
    return records


@register_loader(
    "deeplabcut",
    suffixes=(".h5", ".hdf5", ".csv"),
    sniff=_is_dlc,
    priority=20,
    description="DeepLabCut predictions/labels (.h5, .csv), single/multi-animal, 2D/3D",
)
def read_deeplabcut(
    path: Path,
    *,
    exclude_individuals: str | Sequence[str] | None = None,
    animals_as_prefix: AnimalsAsPrefix = False,
) -> list[RecordingData]:
    """Read a DeepLabCut predictions or labels file.

    Parameters
    ----------
    path
        ``.h5``/``.hdf5`` (key ``df_with_missing`` or the only pandas key) or ``.csv``
        with 3 (single-animal) or 4 (multi-animal) header rows.
    exclude_individuals
        Individuals to drop, e.g. ``["single"]`` for the unique-bodyparts
        individual of multi-animal projects. By default every individual is
        kept and the keypoint axis is the union of their bodyparts (each
        individual NaN where it has no such bodypart). Names the file does not
        have are ignored.
    animals_as_prefix
        For single-animal files whose bodyparts encode animals as prefixes
        (``mouse1_nose``, ``mouse2_nose``). ``True`` splits every name on its
        first ``_`` and needs all animals to share one bodypart set; a list
        gives the prefixes (a ``_`` after the prefix is dropped). The
        individuals are the prefixes, the keypoints the remainders.

    Returns
    -------
    list of RecordingData
        One recording named after the file stem; labels files with images
        from several video folders give one per folder (``<stem>_<folder>``).
        No fps (DLC files do not record it); ``space_unit`` is ``"pixels"`` for
        2-D files; 3-D files (coords ``x, y, z``, no likelihood) have no
        confidence; ``extra["scorer"]`` holds the scorer.

    Raises
    ------
    LoaderError
        When the file is not DLC-style or the options do not fit it.
    """
    return read_dlc_style(path, SOURCE_SOFTWARE, exclude_individuals, animals_as_prefix)
