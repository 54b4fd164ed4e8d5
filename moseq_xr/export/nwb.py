"""Pose Datasets and keypoint-MoSeq results to NWB files (ndx-pose, ndx-ethogram).

:func:`to_nwb` writes one ``.nwb`` file per recording, named
``{recording}.nwb`` (``/`` replaced by ``-``), laid out as spec section 3:

Pose (processing module ``behavior``)
    One ``PoseEstimation`` per individual (``PoseEstimation`` for one
    individual, ``PoseEstimation_<individual>`` for several), each with its own
    ``Skeleton`` named ``<individual>_skeleton`` (nodes = keypoints, edges from
    ``ds.attrs["skeleton"]``) held in ``Skeletons``, and one
    ``PoseEstimationSeries`` per keypoint named exactly as the node. With
    ``naming="neuroconv"`` the names are NeuroConv's:
    ``PoseEstimation{Software}[_<individual>]`` and
    ``PoseEstimationSeries{Keypoint}``. Only the real frames of each recording
    (``n_frames``) are written, as float64 (so the round trip is exact).
    Timing: ``rate`` + ``starting_time`` when the ``timestamp`` coordinate is
    regular within 1e-6 s, else float64 ``timestamps`` stored once on the first
    series and linked from every other series.

Results (when the Dataset has them; NeuroConv's ``MoseqKeyPointsInterface``
names, suffixed ``_<individual>`` when there are several individuals)
    ``MoseqKeyPointsSyllable`` (int32 TimeSeries, -1 = no syllable),
    ``MoseqKeyPointsEthogram`` (catalogue of the syllables present) and
    ``MoseqKeyPointsEthogramBouts`` (one row per run of one syllable; frames
    without a syllable are in no bout), ``Position/MoseqKeyPointsCentroid``,
    ``CompassDirection/MoseqKeyPointsHeading`` (radians; values outside
    [-pi, pi] are wrapped) and ``MoseqKeyPointsLatentState``.

The file records ``was_generated_by = [["moseq_xr", version]]``; the NWB
loader (:mod:`moseq_xr.io.formats.nwb`) uses it to read the individuals back
from the Skeleton names, so ``moseq_xr.load_poses("x.nwb")`` returns the same
Dataset, results included.

Files are written to a temporary file in the target folder and moved into
place, so a failed export never leaves a half-written ``.nwb`` file; existing
files are replaced only with ``overwrite=True``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import tempfile
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import xarray as xr

from moseq_xr._version import __version__
from moseq_xr.exceptions import StoreError
from moseq_xr.io.formats import nwb as nwb_names
from moseq_xr.schema import names as N
from moseq_xr.schema import validate

Naming = Literal["nodes", "neuroconv"]
SubjectSpec = (
    Mapping[str, Any] | Mapping[str, Mapping[str, Any]] | Callable[[str], Any] | None
)
StartTimeSpec = (
    datetime.datetime
    | Mapping[str, datetime.datetime]
    | Callable[[str], datetime.datetime]
    | None
)

_INSTALL_HINT = "pip install 'moseq-xr[nwb]'"
#: Timestamps within this many seconds of a regular grid are written as a rate.
REGULAR_TOLERANCE = 1e-6
_PIXEL_FRAME = (
    "(0,0) is the top-left corner of the video frame, x increasing to the right "
    "and y increasing downward."
)
_UNKNOWN_FRAME = "(0,0) is unknown."
_NWB_UNITS = {
    "pixels": "pixels",
    "millimeters": "millimeters",
    "centimeters": "centimeters",
    "meters": "meters",
}
_SYLLABLE_DEFINITION = (
    "keypoint-MoSeq unsupervised syllable; the id is specific to the model run "
    "that produced it (0 = most frequent) and has no meaning across runs."
)


# ----------------------------------------------------------------------- inputs


@dataclass
class _Recording:
    """One recording cut to its real frames, everything as numpy arrays."""

    name: str
    times: np.ndarray
    position: np.ndarray  # (time, space, keypoint, individual)
    confidence: np.ndarray | None  # (time, keypoint, individual); None = filled
    keypoints: list[str]
    individuals: list[str]
    source_software: str
    source_file: str
    video_path: str
    results: dict[str, np.ndarray] = field(default_factory=dict)  # (ind, time, ...)


def _split_input(data: xr.Dataset | xr.DataTree) -> tuple[xr.Dataset, dict[str, Any]]:
    """Return the pose Dataset and the model attrs (``/model`` of a fit DataTree)."""
    if isinstance(data, xr.DataTree):
        model = data.children.get("model")
        attrs = dict(model.attrs) if model is not None else {}
        return data.to_dataset(inherit=False), attrs
    if isinstance(data, xr.Dataset):
        return data, {}
    raise TypeError(
        f"expected an xarray Dataset or DataTree, got {type(data).__name__}"
    )


def _recording(ds: xr.Dataset, index: int) -> _Recording:
    one = ds.isel({N.RECORDING: index}).load()
    n_frames = int(one["n_frames"])
    real = one.isel({N.TIME: slice(0, n_frames)})
    filled = bool(one["confidence_filled"])
    results = {}
    for name in N.RESULT_VARS:
        if name in real.data_vars and name != "syllable_probability":
            dims = N.RESULT_VARS[name].dims[1:]
            results[name] = np.asarray(real[name].transpose(*dims).values)
    video = str(one["video_path"].values) if "video_path" in one.coords else ""
    return _Recording(
        name=str(one[N.RECORDING].values),
        times=np.asarray(real["timestamp"].values, dtype=np.float64),
        position=np.asarray(real["position"].values, dtype=np.float64),
        confidence=None if filled else np.asarray(real["confidence"].values, float),
        keypoints=[str(k) for k in ds[N.KEYPOINT].values],
        individuals=[str(i) for i in ds[N.INDIVIDUAL].values],
        source_software=str(one["source_software"].values),
        source_file=str(one["source_file"].values),
        video_path=video,
        results=results,
    )


def _per_recording(value: Any, recording: str, is_fields: Callable[[Any], bool]) -> Any:
    """Resolve an argument given once, per recording (mapping) or as a callable."""
    if callable(value) and not isinstance(value, Mapping | datetime.datetime):
        return value(recording)
    if isinstance(value, Mapping) and not is_fields(value):
        if recording not in value:
            raise ValueError(
                f"no entry for recording {recording!r} in the mapping given "
                f"(keys: {sorted(value)})"
            )
        return value[recording]
    return value


def _is_subject_fields(value: Mapping[str, Any]) -> bool:
    return not value or not all(isinstance(v, Mapping) for v in value.values())


def _session_start(
    value: StartTimeSpec, recording: str, source_file: str, allow_placeholder: bool
) -> tuple[datetime.datetime, str | None]:
    """Return the session start time, and a note when it is a placeholder."""
    start = _per_recording(value, recording, lambda v: False)
    if start is None:
        if not allow_placeholder:
            raise ValueError(
                "session_start_time is required by NWB (a timezone-aware datetime, "
                "or a mapping {recording: datetime}); pass "
                "allow_placeholder_time=True to use the pose file's modification "
                "time instead"
            )
        return _placeholder_start(source_file)
    if not isinstance(start, datetime.datetime) or start.tzinfo is None:
        raise ValueError(
            f"session_start_time for recording {recording!r} must be a "
            f"timezone-aware datetime, got {start!r}"
        )
    return start, None


def _placeholder_start(source_file: str) -> tuple[datetime.datetime, str]:
    source = Path(source_file) if source_file else None
    if source is not None and source.is_file():
        seconds, origin = source.stat().st_mtime, f"modification time of {source.name}"
    else:
        seconds, origin = datetime.datetime.now(datetime.UTC).timestamp(), "export time"
    start = datetime.datetime.fromtimestamp(int(seconds), tz=datetime.UTC)
    return start, f"session_start_time is a placeholder ({origin}), not the real start."


# ------------------------------------------------------------------------ names


def _camel(text: str) -> str:
    """``"moseq_xr.simulate"`` -> ``"MoseqXrSimulate"``; ``"DeepLabCut"`` unchanged."""
    parts = re.split(r"[^0-9A-Za-z]+", text)
    return "".join(p[:1].upper() + p[1:] for p in parts if p)


def _suffixed(base: str, individual: str, several: bool) -> str:
    return f"{base}_{individual}" if several else base


def _container_name(recording: _Recording, individual: str, naming: Naming) -> str:
    base = "PoseEstimation"
    if naming == "neuroconv":
        base += _camel(recording.source_software)
    return _suffixed(base, individual, len(recording.individuals) > 1)


def _series_names(keypoints: Sequence[str], naming: Naming) -> list[str]:
    if naming == "nodes":
        return list(keypoints)
    names = [f"PoseEstimationSeries{k.capitalize()}" for k in keypoints]
    if len({n.lower() for n in names}) != len(names):
        raise StoreError(
            f"keypoints {list(keypoints)} give clashing NeuroConv series names; "
            "use naming='nodes'"
        )
    return names


def _file_names(ds: xr.Dataset) -> list[str]:
    names = [str(r).replace("/", "-") for r in ds[N.RECORDING].values]
    clashes = sorted({n for n in names if names.count(n) > 1})
    if clashes:
        raise StoreError(f"recording names {clashes} clash once '/' is replaced by '-'")
    return [f"{n}.nwb" for n in names]


def _check_labels(ds: xr.Dataset) -> None:
    """NWB object names cannot contain '/'."""
    for dim in (N.KEYPOINT, N.INDIVIDUAL):
        bad = [str(v) for v in ds[dim].values if "/" in str(v)]
        if bad:
            raise StoreError(f"{dim} names {bad} contain '/', which NWB forbids")


def _scorer(recording: _Recording) -> str | None:
    """DeepLabCut's scorer from the file name (``...DLC_resnet50_...``)."""
    stem = Path(recording.source_file).stem if recording.source_file else ""
    at = stem.find("DLC_")
    return stem[at:] if at >= 0 else None


# ----------------------------------------------------------------------- timing


def _timing(times: np.ndarray, fps: float) -> dict[str, Any]:
    """``rate``/``starting_time`` for a regular grid, else ``timestamps``."""
    if not np.all(np.isfinite(times)):
        raise StoreError("the timestamp coordinate has NaN within the real frames")
    grid = times[0] + np.arange(times.size) / fps
    if np.max(np.abs(times - grid)) <= REGULAR_TOLERANCE:
        return {"rate": float(fps), "starting_time": float(times[0])}
    return {"timestamps": times}


def _linked(timing: dict[str, Any], first_series: Any) -> dict[str, Any]:
    """Return the timing of later series: they share the first one's timestamps."""
    return {"timestamps": first_series} if "timestamps" in timing else dict(timing)


# --------------------------------------------------------------------- building


@dataclass
class _Options:
    """Everything :func:`to_nwb` needs besides the data, resolved once."""

    fps: float
    naming: Naming
    unit: str
    reference_frame: str
    skeleton: list[list[str]]
    video: bool
    parameters: dict[str, Any]
    metadata: dict[str, Any]


def _import_nwb() -> dict[str, Any]:
    try:
        import ndx_ethogram
        import ndx_pose
        import pynwb
        from pynwb import behavior, file, image
    except ImportError as error:
        raise ImportError(
            f"writing NWB files needs pynwb, ndx-pose and ndx-ethogram: {_INSTALL_HINT}"
        ) from error
    return {
        "pynwb": pynwb,
        "pose": ndx_pose,
        "ethogram": ndx_ethogram,
        "behavior": behavior,
        "file": file,
        "image": image,
    }


def _new_nwbfile(
    nwb: dict[str, Any],
    recording: _Recording,
    start: datetime.datetime,
    note: str | None,
    subject: Any,
    options: _Options,
) -> Any:
    metadata = {k: v for k, v in options.metadata.items() if v is not None}
    metadata.setdefault("session_description", _session_description(recording))
    metadata.setdefault("keywords", _keywords(recording))
    nwbfile = nwb["pynwb"].NWBFile(
        identifier=str(uuid.uuid4()),
        session_start_time=start,
        session_id=recording.name.replace("/", "-"),
        was_generated_by=[[nwb_names.PRODUCER, __version__]],
        notes=note,
        **metadata,
    )
    if subject is not None:
        nwbfile.subject = subject
    return nwbfile


def _subject(nwb: dict[str, Any], fields: Mapping[str, Any] | None) -> Any:
    """Build the pynwb Subject early, so that bad fields fail before any write."""
    if fields is None:
        return None
    fields = dict(fields)
    if "/" in str(fields.get("subject_id", "")):
        raise ValueError(f"subject_id {fields['subject_id']!r} must not contain '/'")
    return nwb["file"].Subject(**fields)


def _session_description(recording: _Recording) -> str:
    text = f"Pose tracking of recording {recording.name}"
    if recording.results:
        text += " with keypoint-MoSeq results (syllables"
        text += "".join(f", {n}" for n in recording.results if n != "syllable") + ")"
    return text + f", exported by moseq_xr {__version__}."


def _keywords(recording: _Recording) -> list[str]:
    keywords = ["pose estimation", "behavior"]
    if recording.results:
        keywords += ["keypoint-MoSeq", "behavioral syllables"]
    return keywords


def _add_video(nwb, nwbfile, recording: _Recording, camera, directory: Path, timing):
    video = os.path.abspath(recording.video_path)  # relative paths: from the cwd
    relative = Path(os.path.relpath(video, os.path.abspath(directory))).as_posix()
    extra = {"num_samples": recording.times.size} if "rate" in timing else {}
    series = nwb["image"].ImageSeries(
        name="video",
        description=f"video the poses of recording {recording.name} were tracked on",
        unit="n.a.",
        format="external",
        external_file=[relative],
        starting_frame=[0],
        device=camera,
        **timing,
        **extra,  # pitfall 18: an external ImageSeries timed by rate needs it
    )
    nwbfile.add_acquisition(series)
    return series


def _skeleton(nwb, nwbfile, recording: _Recording, individual: str, options):
    index = {k: i for i, k in enumerate(recording.keypoints)}
    edges = [
        (index[a], index[b]) for a, b in options.skeleton if a in index and b in index
    ]
    if len(recording.keypoints) > 256:
        raise StoreError("NWB skeleton edges are uint8: at most 256 keypoints")
    return nwb["pose"].Skeleton(
        name=f"{individual}{nwb_names.SKELETON_SUFFIX}",
        nodes=list(recording.keypoints),
        edges=np.asarray(edges, dtype=np.uint8).reshape(-1, 2),
        subject=nwbfile.subject if len(recording.individuals) == 1 else None,
    )


def _pose_series(nwb, recording: _Recording, i_ind: int, timing, options) -> list:
    series: list = []
    names = _series_names(recording.keypoints, options.naming)
    software = recording.source_software or "tracker"
    for k, (keypoint, name) in enumerate(zip(recording.keypoints, names, strict=True)):
        extra: dict[str, Any] = {}
        if recording.confidence is not None:
            extra = {
                "confidence": recording.confidence[:, k, i_ind],
                "confidence_definition": f"{software} confidence; NaN where missing",
            }
        series.append(
            nwb["pose"].PoseEstimationSeries(
                name=name,
                description=f"Pose estimation series for {keypoint}.",
                data=recording.position[:, :, k, i_ind],
                unit=options.unit,
                reference_frame=options.reference_frame,
                **(_linked(timing, series[0]) if series else timing),
                **extra,
            )
        )
    return series


def _pose_estimation(nwb, nwbfile, recording, i_ind, context) -> Any:
    individual = recording.individuals[i_ind]
    options = context["options"]
    skeleton = _skeleton(nwb, nwbfile, recording, individual, options)
    context["skeletons"].append(skeleton)
    software = {}
    if recording.source_software:
        software = {"source_software": recording.source_software}
    return nwb["pose"].PoseEstimation(
        name=_container_name(recording, individual, options.naming),
        pose_estimation_series=_pose_series(
            nwb, recording, i_ind, context["timing"], options
        ),
        description=f"Pose estimates of {individual} in recording {recording.name}.",
        skeleton=skeleton,
        device=context["camera"],  # pitfall 17: the Device is already in the file
        source_video=context["video"],
        scorer=_scorer(recording),
        **software,
    )


# ---------------------------------------------------------------------- results


def _wrap_heading(heading: np.ndarray) -> np.ndarray:
    """Angles outside [-pi, pi] wrapped into it; others (and NaN) unchanged."""
    wrapped = np.mod(heading + np.pi, 2 * np.pi) - np.pi
    with np.errstate(invalid="ignore"):
        outside = np.abs(heading) > np.pi
    return np.where(outside, wrapped, heading)


def _runs(labels: np.ndarray) -> list[tuple[int, int, int]]:
    """``(label, first, last)`` frames of each run of one label >= 0."""
    change = np.flatnonzero(np.diff(labels)) + 1
    starts = np.concatenate([[0], change])
    ends = np.concatenate([change, [labels.size]]) - 1
    return [
        (int(labels[s]), int(s), int(e))
        for s, e in zip(starts, ends, strict=True)
        if labels[s] >= 0
    ]


def _bouts_table(nwb, name, labels, recording, context, links) -> Any:
    options = context["options"]
    times = recording.times
    nlags = options.parameters.get("nlags")
    padding = f" The first {nlags} frames (nlags) have no syllable." if nlags else ""
    bouts = nwb["ethogram"].EthogramBouts(
        name=name,
        description=(
            "keypoint-MoSeq syllable bouts: one row per run of one syllable, "
            "stop_time = start of the next frame. Frames without a syllable "
            f"(label -1) belong to no bout.{padding}"
        ),
        labeling_method="automated",
        source_software=f"{nwb_names.PRODUCER} {__version__} (keypoint-MoSeq)",
        parameters=json.dumps(options.parameters, sort_keys=True, default=str),
        **links,
    )
    for label, first, last in _runs(labels):
        stop = (
            times[last + 1] if last + 1 < times.size else times[last] + 1 / options.fps
        )
        bouts.add_row(
            start_time=float(times[first]),
            stop_time=float(stop),
            label=str(label),
            check_ragged=False,
        )
    return bouts


def _ethogram(nwb, name: str, labels: np.ndarray) -> Any:
    ethogram = nwb["ethogram"].Ethogram(
        name=name,
        description="Catalogue of the keypoint-MoSeq syllables present in this file.",
        exclusive=True,
    )
    ethogram.add_column("behavior_type", "syllables are states (durative)")
    ethogram.add_column("native_code", "the model's integer syllable id")
    for syllable in np.unique(labels[labels >= 0]):
        ethogram.add_row(
            behavior=str(int(syllable)),
            definition=_SYLLABLE_DEFINITION,
            behavior_type="state",
            native_code=int(syllable),
        )
    return ethogram


def _syllable_objects(nwb, module, recording, i_ind, context) -> None:
    labels = np.asarray(recording.results["syllable"][i_ind], dtype=np.int32)
    individual = recording.individuals[i_ind]
    several = len(recording.individuals) > 1
    series = nwb["pynwb"].TimeSeries(
        name=_suffixed(nwb_names.SYLLABLE_SERIES, individual, several),
        description=(
            f"keypoint-MoSeq syllable of {individual} per frame (0 = most "
            "frequent); -1 = no syllable (e.g. the first nlags frames)."
        ),
        data=labels,
        unit="n.a.",
        **_linked(context["timing"], context["first_series"]),
    )
    module.add(series)
    if not np.any(labels >= 0):
        return
    ethogram = _ethogram(
        nwb, _suffixed(nwb_names.ETHOGRAM, individual, several), labels
    )
    module.add(ethogram)
    links = {
        "source": series,
        "source_pose": context["poses"][i_ind],
        "source_video": context["video"],
        "ethogram": ethogram,
    }
    bouts_name = _suffixed(nwb_names.ETHOGRAM_BOUTS, individual, several)
    module.add(_bouts_table(nwb, bouts_name, labels, recording, context, links))


def _interface(nwb, module, kind: str) -> Any:
    name = {"Position": nwb_names.POSITION, "CompassDirection": nwb_names.COMPASS}[kind]
    if name not in module.data_interfaces:
        module.add(getattr(nwb["behavior"], kind)(name=name))
    return module[name]


def _movement_objects(nwb, module, recording, i_ind, context) -> None:
    individual = recording.individuals[i_ind]
    several = len(recording.individuals) > 1
    timing = _linked(context["timing"], context["first_series"])
    options = context["options"]
    results = recording.results
    if "centroid" in results:
        _interface(nwb, module, "Position").add_spatial_series(
            nwb["behavior"].SpatialSeries(
                name=_suffixed(nwb_names.CENTROID_SERIES, individual, several),
                description=f"keypoint-MoSeq centroid of {individual}.",
                data=np.asarray(results["centroid"][i_ind], dtype=np.float64),
                unit=options.unit,  # pitfall 16: a real unit, never "unknown"
                reference_frame=options.reference_frame,
                **timing,
            )
        )
    if "heading" in results:
        _interface(nwb, module, "CompassDirection").add_spatial_series(
            nwb["behavior"].SpatialSeries(
                name=_suffixed(nwb_names.HEADING_SERIES, individual, several),
                description=f"keypoint-MoSeq heading of {individual}, radians.",
                data=_wrap_heading(np.asarray(results["heading"][i_ind], np.float64)),
                unit="radians",
                reference_frame=options.reference_frame,
                **timing,
            )
        )
    if "latent_state" in results:
        module.add(
            nwb["pynwb"].TimeSeries(
                name=_suffixed(nwb_names.LATENT_SERIES, individual, several),
                description=f"keypoint-MoSeq pose latent state of {individual}.",
                data=np.asarray(results["latent_state"][i_ind], dtype=np.float64),
                unit="a.u.",
                **timing,
            )
        )


# ------------------------------------------------------------------------ files


def _build(nwb, recording: _Recording, nwbfile, directory: Path, options) -> None:
    timing = _timing(recording.times, options.fps)
    camera = nwbfile.create_device(  # pitfall 17: add the Device before linking it
        name="camera", description="camera the tracked video was recorded with"
    )
    video = None
    if options.video and recording.video_path:
        video = _add_video(nwb, nwbfile, recording, camera, directory, timing)
    module = nwbfile.create_processing_module(
        name="behavior", description="processed behavioral data"
    )
    context = {"options": options, "timing": timing, "camera": camera}
    context.update(video=video, skeletons=[], poses=[])
    for i_ind in range(len(recording.individuals)):
        context["poses"].append(
            _pose_estimation(nwb, nwbfile, recording, i_ind, context)
        )
    module.add(nwb["pose"].Skeletons(skeletons=context["skeletons"]))
    for pose in context["poses"]:
        module.add(pose)
    context["first_series"] = next(
        iter(context["poses"][0].pose_estimation_series.values())
    )
    for i_ind in range(len(recording.individuals)):
        if "syllable" in recording.results:
            _syllable_objects(nwb, module, recording, i_ind, context)
        _movement_objects(nwb, module, recording, i_ind, context)


def _write_atomic(nwb, nwbfile, target: Path) -> None:
    """Write to a temporary file beside ``target``, then move it into place."""
    handle, temporary = tempfile.mkstemp(
        dir=target.parent, prefix=f".{target.stem}.", suffix=".tmp.nwb"
    )
    os.close(handle)
    try:
        with nwb["pynwb"].NWBHDF5IO(temporary, mode="w") as io:
            io.write(nwbfile)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _model_parameters(model_attrs: Mapping[str, Any]) -> dict[str, Any]:
    """kappa, latent_dim, num_states, nlags, stage, version: the EthogramBouts JSON."""
    config = dict(model_attrs.get("config") or {})
    fit_args = dict(model_attrs.get("fit") or {})
    parameters = {
        k: config.get(k) for k in ("num_states", "nlags", "latent_dim", "stage")
    }
    parameters = {k: v for k, v in parameters.items() if v is not None}
    if fit_args.get("kappa") is not None:
        parameters["kappa"] = fit_args["kappa"]
    parameters["model"] = "keypoint-MoSeq (moseq_xr)"
    parameters["moseq_xr_version"] = str(model_attrs.get("version", __version__))
    return parameters


def _check_targets(targets: list[Path], overwrite: bool) -> None:
    existing = [t.as_posix() for t in targets if t.exists()]
    if existing and not overwrite:
        raise StoreError(
            f"{', '.join(existing)}: already exists; pass overwrite=True to replace"
        )


def to_nwb(
    data: xr.Dataset | xr.DataTree,
    directory: str | Path,
    *,
    subject: SubjectSpec = None,
    session_start_time: StartTimeSpec = None,
    allow_placeholder_time: bool = False,
    naming: Naming = "nodes",
    overwrite: bool = False,
    session_description: str | None = None,
    experiment_description: str | None = None,
    experimenter: Sequence[str] | str | None = None,
    lab: str | None = None,
    institution: str | None = None,
    keywords: Sequence[str] | None = None,
    reference_frame: str | None = None,
    video: bool = True,
) -> list[Path]:
    """Write each recording (poses and model results) to an NWB file.

    Parameters
    ----------
    data
        A pose Dataset, with result variables (``syllable``, ``centroid``,
        ``heading``, ``latent_state``) when fitted, or the DataTree returned
        by ``fit`` (root = data; ``/model`` attrs give the hyperparameters).
    directory
        Folder for the files (created if missing); one ``{recording}.nwb``
        per recording.
    subject
        ``pynwb.file.Subject`` fields (``subject_id``, ``species``, ``sex``,
        ``age``, ...) used for every file, a mapping ``{recording: fields}``,
        or a callable ``recording -> fields``. None writes no Subject (DANDI
        requires one: its inspector config reports a missing Subject as
        CRITICAL).
    session_start_time
        Timezone-aware datetime, mapping ``{recording: datetime}`` or callable.
        Required by NWB.
    allow_placeholder_time
        When ``session_start_time`` is None, use the pose file's modification
        time (else the export time) and say so in the file's ``notes``,
        instead of raising.
    naming
        ``"nodes"``: series named by keypoint, containers ``PoseEstimation``;
        ``"neuroconv"``: NeuroConv's ``PoseEstimation{Software}`` and
        ``PoseEstimationSeries{Keypoint}``.
    overwrite
        Replace existing files. Without it an existing file raises before
        anything is written.
    session_description, experiment_description, experimenter, lab, institution
        NWBFile metadata (a session description is made up if not given).
    keywords
        NWBFile keywords (default: pose estimation, behavior and, with
        results, keypoint-MoSeq, behavioral syllables).
    reference_frame
        Description of the coordinate frame; default: image coordinates for
        pixels, else ``"(0,0) is unknown."``.
    video
        Link the ``video_path`` of each recording as an external ImageSeries
        (path relative to the NWB file).

    Returns
    -------
    list of Path
        The files written, in recording order.

    Raises
    ------
    StoreError
        When a file exists and ``overwrite`` is False, or names clash.
    ValueError
        When ``session_start_time`` is missing or not timezone-aware.
    ImportError
        When pynwb, ndx-pose or ndx-ethogram is missing.

    Notes
    -----
    :func:`moseq_xr.load_poses` reads the files back with positions,
    confidences, timestamps and results unchanged (all float64; syllables
    int32). Not kept exactly: timestamps within 1e-6 s of a regular grid are
    stored as a rate; with irregular timestamps the reader re-estimates fps
    from the median interval; several individuals come back in the file's
    (alphabetical) order; ``syllable_probability`` is not written.

    Examples
    --------
    >>> import datetime
    >>> start = datetime.datetime(2024, 5, 1, 9, 30, tzinfo=datetime.UTC)
    >>> to_nwb(ds, "nwb", session_start_time=start, subject={  # doctest: +SKIP
    ...     "subject_id": "mouse1", "species": "Mus musculus", "sex": "M",
    ...     "age": "P90D"})
    """
    ds, model_attrs = _split_input(data)
    validate(ds, deep=False)
    if naming not in ("nodes", "neuroconv"):
        raise ValueError(f"naming must be 'nodes' or 'neuroconv', got {naming!r}")
    _check_labels(ds)
    directory = Path(directory)
    targets = [directory / name for name in _file_names(ds)]
    _check_targets(targets, overwrite)
    nwb = _import_nwb()
    options = _options(ds, model_attrs, naming, reference_frame, video)
    options.metadata = {
        "session_description": session_description,
        "experiment_description": experiment_description,
        "experimenter": [experimenter]
        if isinstance(experimenter, str)
        else experimenter,
        "lab": lab,
        "institution": institution,
        "keywords": list(keywords) if keywords is not None else None,
    }
    names = [str(r) for r in ds[N.RECORDING].values]
    sources = [str(f) for f in ds["source_file"].values]
    starts = [  # every argument is checked before the first file is written
        _session_start(session_start_time, name, source, allow_placeholder_time)
        for name, source in zip(names, sources, strict=True)
    ]
    subjects = [
        _subject(nwb, _per_recording(subject, name, _is_subject_fields))
        for name in names
    ]
    directory.mkdir(parents=True, exist_ok=True)
    for index, ((start, note), fields, target) in enumerate(
        zip(starts, subjects, targets, strict=True)
    ):
        recording = _recording(ds, index)  # one recording in memory at a time
        nwbfile = _new_nwbfile(nwb, recording, start, note, fields, options)
        _build(nwb, recording, nwbfile, directory, options)
        _write_atomic(nwb, nwbfile, target)
    return targets


def _options(ds, model_attrs, naming, reference_frame, video) -> _Options:
    space_unit = str(ds.attrs.get("space_unit", "unknown"))
    unit = _NWB_UNITS.get(space_unit, "n.a.")
    if reference_frame is None:
        reference_frame = _PIXEL_FRAME if unit == "pixels" else _UNKNOWN_FRAME
    return _Options(
        fps=float(ds.attrs["fps"]),
        naming=naming,
        unit=unit,
        reference_frame=reference_frame,
        skeleton=[[str(a), str(b)] for a, b in ds.attrs.get("skeleton") or []],
        video=video,
        parameters=_model_parameters(model_attrs),
        metadata={},
    )


# -------------------------------------------------------------------------- CLI


def add_export_nwb_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``moseq-xr export-nwb STORE -o DIR``."""
    parser.add_argument("store", help="project store (.zarr), fitted or not")
    parser.add_argument(
        "-o", "--output-dir", required=True, help="folder for .nwb files"
    )
    parser.add_argument(
        "--session-start-time",
        help="ISO 8601 date and time with a UTC offset, e.g. 2024-05-01T09:30:00+02:00",
    )
    parser.add_argument(
        "--allow-placeholder-time",
        action="store_true",
        help="without --session-start-time, use the pose file's modification time",
    )
    for option, text in (
        ("--subject-id", "Subject.subject_id"),
        ("--species", "Subject.species, e.g. 'Mus musculus'"),
        ("--sex", "Subject.sex: M, F, U or O"),
        ("--age", "Subject.age, ISO 8601 duration, e.g. P90D"),
        ("--session-description", "NWBFile.session_description"),
        ("--lab", "NWBFile.lab"),
        ("--institution", "NWBFile.institution"),
    ):
        parser.add_argument(option, help=text)
    parser.add_argument("--experimenter", nargs="+", help="'Last, First' names")
    parser.add_argument("--keywords", nargs="+", help="NWBFile.keywords")
    parser.add_argument(
        "--naming",
        choices=("nodes", "neuroconv"),
        default="nodes",
        help="series named by keypoint (default) or NeuroConv's names",
    )
    parser.add_argument("--no-video", action="store_true", help="do not link videos")
    parser.add_argument("--overwrite", action="store_true", help="replace files")


def _parse_start_time(text: str | None) -> datetime.datetime | None:
    if text is None:
        return None
    try:
        start = datetime.datetime.fromisoformat(text)
    except ValueError as error:
        raise ValueError(f"--session-start-time {text!r} is not ISO 8601") from error
    if start.tzinfo is None:
        raise ValueError(
            f"--session-start-time {text!r} needs a UTC offset, e.g. +00:00 or Z"
        )
    return start


def export_nwb_command(args: argparse.Namespace, console: Any) -> int:
    """Run ``moseq-xr export-nwb``: write one NWB file per recording of a store."""
    if not Path(args.store).exists():
        raise FileNotFoundError(f"{args.store}: no such project store")
    subject_fields = {
        "subject_id": args.subject_id,
        "species": args.species,
        "sex": args.sex,
        "age": args.age,
    }
    subject_fields = {k: v for k, v in subject_fields.items() if v is not None}
    if args.session_start_time is None and not args.allow_placeholder_time:
        raise ValueError(
            "NWB requires the session start time: pass --session-start-time "
            "(ISO 8601 with a UTC offset), or --allow-placeholder-time"
        )
    try:
        written = _export_from_args(args, subject_fields)
    except StoreError as error:
        raise StoreError(str(error).replace("overwrite=True", "--overwrite")) from error
    for path in written:
        console.print(f"wrote {path}")
    return 0


def _export_from_args(
    args: argparse.Namespace, subject_fields: dict[str, str]
) -> list[Path]:
    from moseq_xr.io.store import open as open_store

    return to_nwb(
        open_store(args.store),
        args.output_dir,
        subject=subject_fields or None,
        session_start_time=_parse_start_time(args.session_start_time),
        allow_placeholder_time=args.allow_placeholder_time,
        naming=args.naming,
        overwrite=args.overwrite,
        session_description=args.session_description,
        experimenter=args.experimenter,
        lab=args.lab,
        institution=args.institution,
        keywords=args.keywords,
        video=not args.no_video,
    )
