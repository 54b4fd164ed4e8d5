"""NWB files holding ndx-pose pose estimates (``.nwb``).

Read with pynwb and ndx-pose (the ``nwb`` extra). Every processing module is
searched, nested containers included, for ``PoseEstimation`` and
``MultiCameraPoseEstimation`` containers (ndx-pose >= 0.2 layout; files written
by ndx-pose 0.1 are read through ndx-pose's back-compatibility layer).

Recordings
    One recording per container, named after the file stem when the file holds
    one, else ``{stem}_{container name}`` (``{stem}_{module}_{container}`` when
    two modules use the same container name). sleap-io writes one
    ``PoseEstimation`` per track, named ``track=<track name>``, in a module
    ``SLEAP_VIDEO_<i>_<video>``: all ``track=`` containers of one module form
    ONE recording whose individuals are the track names (the module name is
    the suffix when the file holds several recordings). A
    ``MultiCameraPoseEstimation`` gives one recording from its 3-D world-space
    series; its per-camera ``PoseEstimation`` children are read as recordings
    of their own only when it has no world-space series. Files written by
    moseq_xr (``NWBFile.was_generated_by`` names ``moseq_xr``) hold one
    recording: all ``PoseEstimation`` containers of a module, one per
    individual, named by their Skeleton ``<individual>_skeleton``.

Keypoints (never sorted alphabetically; tried in this order)
    1. DLC2NWB files (series ``ind1_snout`` described as ``"Keypoint snout from
       individual ind1."``): keypoint = the bodypart, individual = the animal.
    2. Series matched to ``Skeleton.nodes``, exactly, or after removing a
       ``PoseEstimationSeries`` prefix (NeuroConv) and comparing without case,
       ``_`` or spaces. Keypoints take the node names, in node order.
    3. A common ``<individual>_`` prefix of all series whose remainders match
       the nodes: the prefix names the individual.
    4. Otherwise the series names in file order (a ``PoseEstimationSeries``
       prefix shared by all is removed), with a warning if a Skeleton exists.

Individuals
    The track name (sleap-io), the Skeleton name (moseq_xr exports), the DLC
    prefix (rules 1 and 3), else the ``subject_id`` of the Subject linked to
    the Skeleton, else of the file's Subject, else ``individual_0``.

Timing
    ``rate`` + ``starting_time`` give fps and the start time (kept, so
    ``starting_time`` is never lost); explicit ``timestamps`` are kept as the
    ``timestamp`` coordinate, fps being the median rate rounded to 6 decimals.
    Series of one recording with different times (sleap-io drops missing rows)
    are aligned on the union of their times. Times that are whole numbers with
    step 1 (DLC2NWB stores frame indices; sleap-io writes ``rate=1.0`` by
    default) are frame numbers, not seconds: they place rows on video frames,
    no fps is taken from them, and a :class:`DataQualityWarning` asks for
    ``fps=``.

Results
    keypoint-MoSeq results stored with NeuroConv's names (spec section 3.3; a
    ``_<individual>`` suffix when the recording has several individuals) are
    read onto the recording's frames by time and returned in
    ``RecordingData.extra["results"]`` (``{variable: (time, individual, ...)}``):
    ``syllable`` from ``MoseqKeyPointsSyllable``, or decoded from
    ``MoseqKeyPointsEthogramBouts`` (-1 outside every bout); ``centroid``
    (``Position/MoseqKeyPointsCentroid``), ``heading``
    (``CompassDirection/MoseqKeyPointsHeading``) and ``latent_state``
    (``MoseqKeyPointsLatentState``). ``load_poses`` adds them to the Dataset.
"""

from __future__ import annotations

import contextlib
import os
import re
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from moseq_xr.exceptions import DataQualityWarning, LoaderError
from moseq_xr.io.registry import register_loader
from moseq_xr.schema import RecordingData
from moseq_xr.schema.names import DEFAULT_INDIVIDUAL

_INSTALL_HINT = "pip install 'moseq-xr[nwb]'"

#: Software name moseq_xr's exporter records in ``NWBFile.was_generated_by``.
PRODUCER = "moseq_xr"
#: Skeletons of moseq_xr exports are named ``{individual}_skeleton``.
SKELETON_SUFFIX = "_skeleton"
#: NeuroConv's keypoint-MoSeq result names (spec section 3.3); suffixed
#: ``_<individual>`` when a file holds several individuals.
SYLLABLE_SERIES = "MoseqKeyPointsSyllable"
ETHOGRAM = "MoseqKeyPointsEthogram"
ETHOGRAM_BOUTS = "MoseqKeyPointsEthogramBouts"
CENTROID_SERIES = "MoseqKeyPointsCentroid"
HEADING_SERIES = "MoseqKeyPointsHeading"
LATENT_SERIES = "MoseqKeyPointsLatentState"
POSITION = "Position"
COMPASS = "CompassDirection"
_SERIES_PREFIX = "PoseEstimationSeries"
_TRACK_PREFIX = "track="
_CACHED_NAMESPACE_WARNING = "Ignoring the following cached namespace"
_DLC2NWB_DESCRIPTION = re.compile(
    r"^Keypoint (?P<kpt>.+) from individual (?P<ind>.+)\.$"
)
_VIDEO_PLACEHOLDERS = ("", "fake_path")  # DLC2NWB writes "fake_path" without a video
_UNITS = {
    "pixels": "pixels",
    "pixel": "pixels",
    "px": "pixels",
    "millimeters": "millimeters",
    "millimetres": "millimeters",
    "millimeter": "millimeters",
    "mm": "millimeters",
    "centimeters": "centimeters",
    "centimetres": "centimeters",
    "centimeter": "centimeters",
    "cm": "centimeters",
    "meters": "meters",
    "metres": "meters",
    "meter": "meters",
    "m": "meters",
}


def _is_nwb(path: Path) -> bool:
    """Whether ``path`` is an HDF5 file whose root is an NWBFile."""
    try:
        if not h5py.is_hdf5(path):
            return False
        with h5py.File(path, "r") as file:
            kind = file.attrs.get("neurodata_type")
    except (OSError, ValueError):
        return False
    if isinstance(kind, bytes):
        kind = kind.decode()
    return kind == "NWBFile"


def _import_pynwb() -> Any:
    """Import pynwb and ndx-pose (registering the pose types); return NWBHDF5IO."""
    try:
        import ndx_pose  # noqa: F401
        from pynwb import NWBHDF5IO
    except ImportError as error:
        raise ImportError(
            f"reading NWB pose files needs pynwb and ndx-pose: {_INSTALL_HINT}"
        ) from error
    with contextlib.suppress(ImportError):  # the types of our result exports
        import ndx_ethogram  # noqa: F401
    return NWBHDF5IO


# --------------------------------------------------------------------------- finding


@dataclass
class _Source:
    """One pose container and the individual it holds (when known from outside)."""

    module: str
    container: Any
    track: str | None = None


@dataclass
class _Group:
    """The containers of one recording; ``label`` is its recording-name suffix."""

    label: str
    sources: list[_Source] = field(default_factory=list)
    name: str = ""


def _type_name(obj: Any) -> str | None:
    return getattr(obj, "neurodata_type", None)


def _walk_pose_containers(obj: Any) -> Iterator[Any]:
    """Pose containers at or below ``obj``, depth first, in file order."""
    kind = _type_name(obj)
    if kind == "PoseEstimation":
        yield obj
        return
    if kind == "MultiCameraPoseEstimation" and len(obj.pose_estimation_series):
        yield obj
        return
    for child in getattr(obj, "children", ()):
        yield from _walk_pose_containers(child)


def _written_by_moseq_xr(nwbfile: Any) -> bool:
    """Whether ``NWBFile.was_generated_by`` names moseq_xr's exporter."""
    generated_by = getattr(nwbfile, "was_generated_by", None)
    if generated_by is None:
        return False
    rows = np.asarray(generated_by[:], dtype=object).reshape(-1, 2)
    return any(str(_decoded(name)) == PRODUCER for name, _ in rows)


def _decoded(value: Any) -> Any:
    return value.decode() if isinstance(value, bytes) else value


def _export_individual(container: Any) -> str | None:
    """Return the individual of a moseq_xr export: its Skeleton name minus suffix."""
    skeleton = getattr(container, "skeleton", None)
    name = getattr(skeleton, "name", "") or ""
    if name.endswith(SKELETON_SUFFIX) and len(name) > len(SKELETON_SUFFIX):
        return name[: -len(SKELETON_SUFFIX)]
    return None


def _track(container: Any, ours: bool) -> str | None:
    """Name the individual of a container that shares its module's recording."""
    if _type_name(container) != "PoseEstimation":
        return None
    if ours:
        return _export_individual(container)
    if container.name.startswith(_TRACK_PREFIX):
        return container.name[len(_TRACK_PREFIX) :]
    return None


def _find_sources(nwbfile: Any) -> list[_Source]:
    ours = _written_by_moseq_xr(nwbfile)
    sources = []
    for module_name, module in nwbfile.processing.items():
        for container in _walk_pose_containers(module):
            sources.append(_Source(module_name, container, _track(container, ours)))
    return sources


def _group_sources(sources: list[_Source]) -> list[_Group]:
    """One group per container, except sleap-io track containers: one per module."""
    groups: list[_Group] = []
    track_groups: dict[str, _Group] = {}
    for source in sources:
        if source.track is None:
            groups.append(_Group(source.container.name, [source]))
            continue
        if source.module not in track_groups:
            track_groups[source.module] = _Group(source.module)
            groups.append(track_groups[source.module])
        track_groups[source.module].sources.append(source)
    labels = [g.label for g in groups]
    for group in groups:
        source = group.sources[0]
        if labels.count(group.label) > 1 and source.track is None:
            group.label = f"{source.module}_{group.label}"
    return groups


def _select_groups(
    groups: list[_Group], wanted: Sequence[str] | None, path: Path
) -> list[_Group]:
    if wanted is None:
        return groups
    if isinstance(wanted, str):
        wanted = [wanted]
    by_key: dict[str, _Group] = {}
    for group in groups:
        by_key[group.label] = group
        for source in group.sources:
            by_key.setdefault(source.container.name, group)
            by_key.setdefault(f"{source.module}/{source.container.name}", group)
    missing = [w for w in wanted if w not in by_key]
    if missing:
        raise LoaderError(
            path,
            f"containers {missing} not found; the file has {[g.label for g in groups]}",
        )
    chosen = [by_key[w] for w in wanted]
    return [g for g in groups if any(g is c for c in chosen)]


# --------------------------------------------------------------------------- series


@dataclass
class _Series:
    """One PoseEstimationSeries read into memory."""

    name: str
    description: str
    data: np.ndarray
    confidence: np.ndarray | None
    times: np.ndarray
    rate: float | None
    start: float
    unit: str


def _read_series(series: Any, path: Path) -> _Series:
    data = np.asarray(series.data[:], dtype=np.float64)
    if data.ndim != 2 or data.shape[1] not in (2, 3):
        raise LoaderError(
            path,
            f"series {series.name!r} has shape {data.shape}; expected (time, 2 or 3)",
        )
    conversion = float(series.conversion if series.conversion is not None else 1.0)
    offset = float(getattr(series, "offset", 0.0) or 0.0)
    if conversion != 1.0 or offset != 0.0:
        data = data * conversion + offset
    confidence = None
    if series.confidence is not None:
        confidence = np.asarray(series.confidence[:], dtype=np.float64).reshape(-1)
        if confidence.shape != (data.shape[0],):
            raise LoaderError(
                path, f"series {series.name!r}: confidence length differs"
            )
    n_rows = data.shape[0]
    if series.timestamps is not None:
        times = np.asarray(series.timestamps[:], dtype=np.float64)
        rate, start = None, float(times[0]) if times.size else 0.0
    elif series.rate is None:
        raise LoaderError(
            path, f"series {series.name!r} has neither rate nor timestamps"
        )
    else:
        rate = float(series.rate)
        start = float(series.starting_time or 0.0)
        times = start + np.arange(n_rows) / rate
    if times.shape != (n_rows,):
        raise LoaderError(
            path, f"series {series.name!r}: {times.size} timestamps for {n_rows} rows"
        )
    if np.any(np.diff(times) <= 0):
        raise LoaderError(path, f"series {series.name!r}: timestamps must increase")
    return _Series(
        series.name,
        str(series.description or ""),
        data,
        confidence,
        times,
        rate,
        start,
        str(series.unit or ""),
    )


# --------------------------------------------------------------------------- keypoints


@dataclass
class _KeypointMap:
    """Output keypoints, the series index of each, the node they came from."""

    keypoints: list[str]
    series_index: list[int]
    node_to_keypoint: dict[str, str]
    individual: str | None = None


def _normalise(name: str) -> str:
    if name.startswith(_SERIES_PREFIX) and len(name) > len(_SERIES_PREFIX):
        name = name[len(_SERIES_PREFIX) :]
    return name.replace("_", "").replace(" ", "").lower()


def _match_nodes(names: Sequence[str], nodes: Sequence[str]) -> dict[str, int] | None:
    """``{node: series index}`` in node order, or None unless every series matches."""
    exact = {name: i for i, name in enumerate(names)}
    loose: dict[str, list[int]] = {}
    for i, name in enumerate(names):
        loose.setdefault(_normalise(name), []).append(i)
    matched: dict[str, int] = {}
    for node in nodes:
        candidates = [exact[node]] if node in exact else loose.get(_normalise(node), [])
        if len(candidates) == 1 and candidates[0] not in matched.values():
            matched[node] = candidates[0]
    return matched if len(matched) == len(names) else None


def _from_nodes(matched: dict[str, int], individual: str | None = None) -> _KeypointMap:
    return _KeypointMap(
        list(matched), list(matched.values()), {n: n for n in matched}, individual
    )


def _dlc2nwb_map(
    series: Sequence[_Series], nodes: Sequence[str]
) -> _KeypointMap | None:
    """DLC2NWB: ``{animal}_{bodypart}`` series described by animal and bodypart."""
    parsed = [_DLC2NWB_DESCRIPTION.match(s.description) for s in series]
    if not all(parsed) or len({m["ind"] for m in parsed}) != 1:
        return None
    if any(
        s.name != f"{m['ind']}_{m['kpt']}" for s, m in zip(series, parsed, strict=True)
    ):
        return None
    names = [s.name for s in series]
    order = [names.index(n) for n in nodes if n in names]
    if len(order) != len(names):
        order = list(range(len(names)))
    keypoints = [parsed[i]["kpt"] for i in order]
    node_to_keypoint = {names[i]: parsed[i]["kpt"] for i in order}
    return _KeypointMap(keypoints, order, node_to_keypoint, parsed[0]["ind"])


def _prefix_map(names: Sequence[str], nodes: Sequence[str]) -> _KeypointMap | None:
    """Strip a common ``<individual>_`` prefix whose remainders match the nodes."""
    if len(names) < 2:
        return None
    shortest = min(names, key=len)
    for cut in (i + 1 for i, char in enumerate(shortest) if char == "_"):
        prefix = shortest[:cut]
        if cut < len(shortest) and all(n.startswith(prefix) for n in names):
            matched = _match_nodes([n[cut:] for n in names], nodes)
            if matched:
                return _from_nodes(matched, prefix[:-1])
    return None


def _fallback_map(names: Sequence[str]) -> _KeypointMap:
    keypoints = list(names)
    stripped = [n[len(_SERIES_PREFIX) :] for n in names]
    prefixed = all(n.startswith(_SERIES_PREFIX) for n in names) and all(stripped)
    if prefixed and len(set(stripped)) == len(stripped):
        keypoints = stripped
    return _KeypointMap(keypoints, list(range(len(names))), {})


def _map_keypoints(
    series: Sequence[_Series], nodes: Sequence[str], where: str
) -> _KeypointMap:
    """Series -> keypoints, by the rules in the module docstring."""
    names = [s.name for s in series]
    mapped = _dlc2nwb_map(series, nodes)
    if mapped is None and nodes:
        matched = _match_nodes(names, nodes)
        mapped = _from_nodes(matched) if matched else _prefix_map(names, nodes)
    if mapped is None:
        if nodes:
            warnings.warn(
                f"{where}: series names {names} do not match the Skeleton nodes "
                f"{list(nodes)}; keypoints are named after the series",
                DataQualityWarning,
                stacklevel=5,
            )
        mapped = _fallback_map(names)
    return mapped


# --------------------------------------------------------------------------- timing


@dataclass
class _Timing:
    """Where each series' rows go, and the time base of the recording."""

    n_rows: int
    rows: list[np.ndarray]
    fps: float | None = None
    start_time: float | None = None
    timestamps: np.ndarray | None = None
    frame: np.ndarray | None = None
    row_times: np.ndarray | None = None  # time of each output row, file units


def _looks_like_frame_indices(times: np.ndarray) -> bool:
    if times.size < 2 or not np.all(times == np.round(times)):
        return False
    steps = np.diff(times)
    return bool(steps.min() == 1.0)


def _frame_index_timing(
    times: np.ndarray, rows: list[np.ndarray], where: str
) -> _Timing:
    warnings.warn(
        f"{where}: the times are whole numbers with step 1 ({times[0]:g}, "
        f"{times[1]:g}, ...): they look like video frame indices, not seconds, so "
        "they are used as frame numbers and no frame rate is taken from them; pass "
        "fps= (frames per second) to load_poses",
        DataQualityWarning,
        stacklevel=5,
    )
    frame = times.astype(np.int64) - min(int(times[0]), 0)
    dense = np.array_equal(frame, np.arange(frame.size))
    return _Timing(frame.size, rows, frame=None if dense else frame, row_times=times)


def _rate_timing(series: Sequence[_Series], where: str) -> _Timing:
    rate = series[0].rate
    start = min(s.start for s in series)
    offsets = [round((s.start - start) * rate) for s in series]
    rows = [
        off + np.arange(s.data.shape[0]) for off, s in zip(offsets, series, strict=True)
    ]
    n_rows = max(int(r[-1]) + 1 if r.size else 0 for r in rows)
    times = start + np.arange(n_rows) / rate
    if _looks_like_frame_indices(times):
        return _frame_index_timing(times, rows, where)
    return _Timing(
        n_rows, rows, fps=float(rate), start_time=float(start), row_times=times
    )


def _stamp_timing(series: Sequence[_Series], where: str) -> _Timing:
    keys = [np.round(s.times, 9) for s in series]  # equal times match across series
    union_keys, first = np.unique(np.concatenate(keys), return_index=True)
    union = np.concatenate([s.times for s in series])[first]
    rows = [np.searchsorted(union_keys, k) for k in keys]
    if _looks_like_frame_indices(union):
        return _frame_index_timing(union, rows, where)
    if union.size < 2:
        start = float(union[0]) if union.size else None
        return _Timing(union.size, rows, start_time=start, row_times=union)
    fps = round(float(1.0 / np.median(np.diff(union))), 6)
    frames = np.rint((union - union[0]) * fps).astype(np.int64)
    gaps = frames[-1] != frames.size - 1 and bool(np.all(np.diff(frames) > 0))
    return _Timing(
        union.size,
        rows,
        fps=fps,
        timestamps=union,
        frame=frames if gaps else None,
        row_times=union,
    )


def _timing(series: Sequence[_Series], where: str) -> _Timing:
    rates = [s.rate for s in series]
    if all(r is not None for r in rates) and np.allclose(rates, rates[0]):
        return _rate_timing(series, where)
    return _stamp_timing(series, where)


# --------------------------------------------------------------------------- assembly


@dataclass
class _Individual:
    """The series of one individual in one container, mapped to keypoints."""

    name: str
    series: list[_Series]
    keypoints: _KeypointMap


def _skeleton_nodes(container: Any) -> list[str]:
    skeleton = getattr(container, "skeleton", None)
    if skeleton is None or skeleton.nodes is None:
        return []
    return [str(n) for n in skeleton.nodes[:]]


def _subject_id(subject: Any) -> str | None:
    subject_id = getattr(subject, "subject_id", None) if subject is not None else None
    return str(subject_id) if subject_id else None


def _read_individual(source: _Source, nwbfile: Any, path: Path) -> _Individual:
    container = source.container
    where = f"{path} [{source.module}/{container.name}]"
    series = [_read_series(s, path) for s in container.pose_estimation_series.values()]
    if not series:
        raise LoaderError(
            path, f"container {container.name!r} holds no PoseEstimationSeries"
        )
    mapped = _map_keypoints(series, _skeleton_nodes(container), where)
    skeleton = getattr(container, "skeleton", None)
    name = (
        source.track
        or mapped.individual
        or _subject_id(getattr(skeleton, "subject", None))
        or _subject_id(nwbfile.subject)
        or DEFAULT_INDIVIDUAL
    )
    ordered = [series[i] for i in mapped.series_index]
    return _Individual(name, ordered, mapped)


def _skeleton_edges(
    container: Any, mapped: _KeypointMap
) -> list[tuple[str, str]] | None:
    skeleton = getattr(container, "skeleton", None)
    if skeleton is None or skeleton.edges is None or not mapped.node_to_keypoint:
        return None
    nodes = _skeleton_nodes(container)
    edges = []
    for a, b in np.asarray(skeleton.edges[:], dtype=np.int64).reshape(-1, 2):
        names = [nodes[i] if 0 <= i < len(nodes) else None for i in (a, b)]
        if all(n in mapped.node_to_keypoint for n in names):
            edges.append(tuple(mapped.node_to_keypoint[n] for n in names))
    return edges or None


def _space_unit(series: Sequence[_Series]) -> str | None:
    units = {_UNITS.get(s.unit.strip().lower()) for s in series}
    return units.pop() if len(units) == 1 else None


def _video_path(container: Any, path: Path) -> str:
    video = getattr(container, "source_video", None)
    files: list[str] = []
    if video is not None and getattr(video, "external_file", None) is not None:
        files = [str(f) for f in video.external_file[:]]
    elif _type_name(container) == "PoseEstimation":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            original = container.original_videos
        files = [str(f) for f in original[:]] if original is not None else []
    files = [f for f in files if f not in _VIDEO_PLACEHOLDERS]
    if not files:
        return ""
    video_file = Path(files[0])
    if not video_file.is_absolute():
        video_file = Path(os.path.normpath(path.parent / video_file))
    return video_file.as_posix()


def _unique_individual_names(individuals: list[_Individual], path: Path) -> None:
    names = [i.name for i in individuals]
    if len(set(names)) != len(names):
        raise LoaderError(
            path, f"containers of one recording repeat individuals {names}"
        )


def _union_keypoints(individuals: Sequence[_Individual]) -> list[str]:
    keypoints: list[str] = []
    for individual in individuals:
        keypoints.extend(
            k for k in individual.keypoints.keypoints if k not in keypoints
        )
    return keypoints


def _arrays(
    individuals: Sequence[_Individual], keypoints: list[str], timing: _Timing
) -> tuple[np.ndarray, np.ndarray | None]:
    n_space = individuals[0].series[0].data.shape[1]
    shape = (timing.n_rows, n_space, len(keypoints), len(individuals))
    position = np.full(shape, np.nan)
    confidence = np.full((timing.n_rows, len(keypoints), len(individuals)), np.nan)
    has_confidence = any(
        s.confidence is not None for i in individuals for s in i.series
    )
    rows = iter(timing.rows)
    for i_ind, individual in enumerate(individuals):
        for keypoint, series in zip(
            individual.keypoints.keypoints, individual.series, strict=True
        ):
            row, k = next(rows), keypoints.index(keypoint)
            position[row, :, k, i_ind] = series.data
            present = np.where(np.isnan(series.data).any(axis=1), np.nan, 1.0)
            conf = series.confidence if series.confidence is not None else present
            confidence[row, k, i_ind] = conf
    return position, confidence if has_confidence else None


# --------------------------------------------------------------------------- results

#: Result variable -> series name, for the float results read per frame.
_FLOAT_RESULTS = {
    "centroid": CENTROID_SERIES,
    "heading": HEADING_SERIES,
    "latent_state": LATENT_SERIES,
}
_RESULT_HOLDERS = ("Position", "CompassDirection")


def _named_objects(modules: Sequence[Any]) -> dict[str, Any]:
    """Map names to the objects of ``modules`` and Position/CompassDirection series."""
    found: dict[str, Any] = {}
    for module in modules:
        for name, obj in module.data_interfaces.items():
            found.setdefault(name, obj)
            if _type_name(obj) in _RESULT_HOLDERS:
                for child in obj.children:
                    found.setdefault(child.name, child)
    return found


def _series_times(series: Any) -> np.ndarray:
    n_rows = len(series.data)
    if series.timestamps is not None:
        return np.asarray(series.timestamps[:], dtype=np.float64)
    start = float(series.starting_time or 0.0)
    return start + np.arange(n_rows) / float(series.rate)


def _nearest_rows(times: np.ndarray, row_times: np.ndarray) -> np.ndarray:
    """Row of each time (nearest row time), -1 where none lies within half a step."""
    if row_times.size == 1:
        rows = np.zeros(times.size, dtype=np.int64)
        return np.where(np.abs(times - row_times[0]) <= 1e-6, rows, -1)
    right = np.clip(np.searchsorted(row_times, times), 1, row_times.size - 1)
    left = right - 1
    nearer_left = np.abs(times - row_times[left]) <= np.abs(row_times[right] - times)
    rows = np.where(nearer_left, left, right)
    tolerance = 0.49 * float(np.min(np.diff(row_times)))
    return np.where(np.abs(row_times[rows] - times) <= tolerance, rows, -1)


def _per_frame(series: Any, row_times: np.ndarray, fill: float) -> np.ndarray:
    """Place a result TimeSeries on the recording's rows."""
    data = np.asarray(series.data[:])
    out = np.full((row_times.size, *data.shape[1:]), fill, dtype=data.dtype)
    if data.dtype.kind == "f":
        out = out.astype(np.float64)
        conversion = float(series.conversion if series.conversion is not None else 1)
        data = data.astype(np.float64) * conversion + float(series.offset or 0.0)
    rows = _nearest_rows(_series_times(series), row_times)
    out[rows[rows >= 0]] = data[rows >= 0]
    return out


def _decode_bouts(bouts: Any, row_times: np.ndarray, where: str) -> np.ndarray | None:
    """Per-row syllables from an EthogramBouts table; -1 outside every bout."""
    labels = [str(_decoded(v)) for v in bouts["label"].data[:]]
    try:
        codes = [int(label) for label in labels]
    except ValueError:
        warnings.warn(
            f"{where}: {bouts.name} labels are not integer syllable ids; not read",
            DataQualityWarning,
            stacklevel=6,
        )
        return None
    step = float(np.min(np.diff(row_times))) if row_times.size > 1 else 1.0
    tolerance = 0.25 * step
    out = np.full(row_times.size, -1, dtype=np.int32)
    starts = np.asarray(bouts["start_time"].data[:], dtype=np.float64)
    stops = np.asarray(bouts["stop_time"].data[:], dtype=np.float64)
    first = np.searchsorted(row_times, starts - tolerance)
    end = np.searchsorted(row_times, stops - tolerance)
    for code, a, b in zip(codes, first, end, strict=True):
        out[a:b] = code
    return out


def _result_names(base: str, individual: str, n_individuals: int) -> list[str]:
    return [f"{base}_{individual}"] + ([base] if n_individuals == 1 else [])


def _first_named(objects: dict[str, Any], names: list[str]) -> Any:
    return next((objects[n] for n in names if n in objects), None)


def _read_syllable(objects, individual, n_ind, row_times, where) -> np.ndarray | None:
    series = _first_named(objects, _result_names(SYLLABLE_SERIES, individual, n_ind))
    if series is not None:
        return _per_frame(series, row_times, -1).astype(np.int32)
    bouts = _first_named(objects, _result_names(ETHOGRAM_BOUTS, individual, n_ind))
    return None if bouts is None else _decode_bouts(bouts, row_times, where)


def _stack_individuals(
    arrays: list[np.ndarray | None], n_rows: int, fill: float
) -> np.ndarray | None:
    """``(rows, individual, ...)``; individuals without the result get ``fill``."""
    present = [a for a in arrays if a is not None]
    if not present:
        return None
    tail = max((a.shape[1:] for a in present), key=len)
    dtype = np.int32 if fill == -1 else np.float64
    out = np.full((n_rows, len(arrays), *tail), fill, dtype=dtype)
    for i, array in enumerate(arrays):
        if array is not None and array.shape[1:] == tail:
            out[:, i] = array
    return out


def _read_results(
    group: _Group, nwbfile: Any, individuals: list[str], timing: _Timing, where: str
) -> dict[str, np.ndarray]:
    """keypoint-MoSeq results (spec section 3.3) on the recording's rows.

    Returns ``{variable: array}`` with arrays ``(time, individual[, ...])``:
    ``syllable`` (int32, -1 = none; from ``MoseqKeyPointsSyllable``, else
    decoded from ``MoseqKeyPointsEthogramBouts``), ``centroid``, ``heading``,
    ``latent_state``.
    """
    if timing.row_times is None or timing.n_rows == 0:
        return {}
    module_names = dict.fromkeys(s.module for s in group.sources)
    objects = _named_objects([nwbfile.processing[m] for m in module_names])
    n_space = group.sources[0].container.pose_estimation_series.values()
    n_space = next(iter(n_space)).data.shape[1]
    n_ind, row_times = len(individuals), timing.row_times
    syllables = [
        _read_syllable(objects, ind, n_ind, row_times, where) for ind in individuals
    ]
    results = {"syllable": _stack_individuals(syllables, timing.n_rows, -1)}
    for variable, base in _FLOAT_RESULTS.items():
        found = [
            _first_named(objects, _result_names(base, i, n_ind)) for i in individuals
        ]
        arrays = [
            None if f is None else _per_frame(f, row_times, np.nan) for f in found
        ]
        results[variable] = _stack_individuals(arrays, timing.n_rows, np.nan)
    centroid = results["centroid"]
    if centroid is not None and centroid.shape[2:] != (n_space,):
        warnings.warn(
            f"{where}: the centroid has {centroid.shape[2:]} columns for {n_space}-D "
            "poses; not read",
            DataQualityWarning,
            stacklevel=5,
        )
        results["centroid"] = None
    return {k: v for k, v in results.items() if v is not None}


def _read_group(group: _Group, nwbfile: Any, path: Path) -> RecordingData:
    individuals = [_read_individual(s, nwbfile, path) for s in group.sources]
    _unique_individual_names(individuals, path)
    all_series = [s for i in individuals for s in i.series]
    if len({s.data.shape[1] for s in all_series}) > 1:
        raise LoaderError(path, f"{group.label}: series mix 2-D and 3-D coordinates")
    timing = _timing(all_series, f"{path} [{group.label}]")
    keypoints = _union_keypoints(individuals)
    position, confidence = _arrays(individuals, keypoints, timing)
    first = group.sources[0].container
    names = [i.name for i in individuals]
    results = _read_results(group, nwbfile, names, timing, f"{path} [{group.label}]")
    return RecordingData(
        name=group.name,
        position=position,
        keypoints=keypoints,
        individuals=[i.name for i in individuals],
        confidence=confidence,
        fps=timing.fps,
        frame=timing.frame,
        timestamps=timing.timestamps,
        start_time=timing.start_time,
        source_file=path.as_posix(),
        source_software=str(first.source_software or ""),
        video_path=_video_path(first, path),
        skeleton=_skeleton_edges(first, individuals[0].keypoints),
        space_unit=_space_unit(all_series),
        extra={"results": results} if results else {},
    )


def _try_read(nwb_io_class: Any, path: Path, load_namespaces: bool) -> tuple[Any, Any]:
    """Open and read ``path``; return the open IO (caller closes) and the NWBFile."""
    with warnings.catch_warnings():
        # written by others: the reader can act on neither of these
        warnings.filterwarnings("ignore", message=_CACHED_NAMESPACE_WARNING)
        warnings.simplefilter("ignore", DeprecationWarning)
        io = nwb_io_class(str(path), mode="r", load_namespaces=load_namespaces)
        try:
            return io, io.read()
        except BaseException:
            io.close()
            raise


def _read_nwbfile(path: Path) -> tuple[Any, Any]:
    """Read ``path`` with pynwb; failures become a LoaderError naming the file.

    The namespaces already loaded (core, ndx-pose) are tried first, as loading
    the file's cached namespaces costs about a second; files that use other
    extensions are then read with their cached namespaces.
    """
    nwb_io_class = _import_pynwb()
    error: Exception | None = None
    for load_namespaces in (False, True):
        try:
            return _try_read(nwb_io_class, path, load_namespaces)
        except Exception as caught:
            error = caught
    raise LoaderError(path, f"cannot be read as an NWB file: {error}") from error


@register_loader(
    "nwb",
    suffixes=(".nwb",),
    sniff=_is_nwb,
    priority=30,
    description="NWB with ndx-pose PoseEstimation / MultiCameraPoseEstimation (.nwb)",
)
def read_nwb(
    path: Path, *, containers: Sequence[str] | None = None
) -> list[RecordingData]:
    """Read the pose containers of an NWB file (ndx-pose), one recording each.

    Parameters
    ----------
    path
        An NWB (HDF5) file.
    containers
        Read only these pose containers: container names, ``module/container``
        paths, or (for sleap-io files) module names. Default: all.

    Returns
    -------
    list of RecordingData
        One per pose container (or per sleap-io video module).

    Raises
    ------
    ImportError
        When pynwb or ndx-pose is not installed.
    LoaderError
        When the file is not NWB or holds no pose estimates.
    """
    path = Path(path)
    io, nwbfile = _read_nwbfile(path)
    with io:
        groups = _group_sources(_find_sources(nwbfile))
        if not groups:
            raise LoaderError(
                path, "holds no ndx-pose PoseEstimation or MultiCameraPoseEstimation"
            )
        for group in groups:
            group.name = path.stem if len(groups) == 1 else f"{path.stem}_{group.label}"
        return [
            _read_group(g, nwbfile, path)
            for g in _select_groups(groups, containers, path)
        ]
