"""Synthetic NWB pose files (pynwb 4 / ndx-pose 0.4), written per spec section 3.2.

Reusable by loader and exporter tests. The building blocks are
:func:`new_nwbfile`, :func:`add_pose_estimation`,
:func:`add_multicamera_pose_estimation` and :func:`write_nwbfile`;
:func:`write_pose_nwb` does all four for the common one-container file.

Positions are given in the keypoint-MoSeq layout ``(time, keypoint, space)`` and
stored as float32, as the ndx-pose spec asks; compare against
``position.astype(np.float32)``.

ndx-pose 0.4 / pynwb 4 rules followed here (pitfalls 17 and 18):
the camera Device is added to the NWBFile before the PoseEstimation that links
it, the Skeleton carries the nodes (never ``nodes=`` on PoseEstimation), and an
external-file ImageSeries timed by ``rate`` gets ``num_samples``.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
from ndx_pose import (
    CalibratedCamera,
    MultiCameraPoseEstimation,
    PoseEstimation,
    PoseEstimationSeries,
    Skeleton,
    Skeletons,
)
from pynwb import NWBHDF5IO, NWBFile, TimeSeries
from pynwb.behavior import CompassDirection, Position, SpatialSeries
from pynwb.file import Subject
from pynwb.image import ImageSeries

Naming = Literal["nodes", "neuroconv"]

PIXEL_FRAME = "(0,0) is the top-left corner of the video frame, x right, y down"
WORLD_FRAME = "arena centre at (0,0,0), z up"
SESSION_START = datetime.datetime(2024, 5, 1, 9, 30, tzinfo=datetime.UTC)


def new_nwbfile(
    *, subject_id: str | None = "mouse1", identifier: str = "test"
) -> NWBFile:
    """Build an NWBFile with recipe step 1 metadata (no Subject if subject_id=None)."""
    nwbfile = NWBFile(
        session_description="synthetic pose session",
        identifier=identifier,
        session_start_time=SESSION_START,
        experimenter=["Doe, Jane"],
        lab="test lab",
        institution="test institution",
        experiment_description="open field",
        session_id="session1",
        keywords=["pose"],
    )
    if subject_id is not None:
        nwbfile.subject = Subject(
            subject_id=subject_id,
            species="Mus musculus",
            sex="M",
            age="P90D",
            description="synthetic mouse",
        )
    return nwbfile


def _module(nwbfile: NWBFile, name: str):
    if name in nwbfile.processing:
        return nwbfile.processing[name]
    return nwbfile.create_processing_module(name, "processed behavioral data")


def _add_skeleton(nwbfile: NWBFile, module_name: str, skeleton: Skeleton) -> None:
    module = _module(nwbfile, module_name)
    if "Skeletons" in module.data_interfaces:
        module["Skeletons"].add_skeletons(skeleton)
    else:
        module.add(Skeletons(skeletons=[skeleton]))


def _skeleton(
    nwbfile: NWBFile,
    name: str,
    nodes: Sequence[str],
    edges: Sequence[tuple[int, int]] | None,
    link_subject: bool,
) -> Skeleton:
    edge_array = np.asarray(edges if edges else np.zeros((0, 2)), dtype=np.uint8)
    subject = nwbfile.subject if link_subject else None
    return Skeleton(
        name=name, nodes=list(nodes), edges=edge_array.reshape(-1, 2), subject=subject
    )


def series_names_for(keypoints: Sequence[str], naming: Naming) -> list[str]:
    """Series names: the node names, or NeuroConv's ``PoseEstimationSeries<Kp>``."""
    if naming == "nodes":
        return list(keypoints)
    if naming == "neuroconv":
        return [f"PoseEstimationSeries{k.capitalize()}" for k in keypoints]
    raise ValueError(f"naming must be 'nodes' or 'neuroconv', got {naming!r}")


def make_series(
    names: Sequence[str],
    position: np.ndarray,
    *,
    confidence: np.ndarray | None = None,
    rate: float | None = 30.0,
    starting_time: float = 0.0,
    timestamps: np.ndarray | None = None,
    unit: str = "pixels",
    reference_frame: str = PIXEL_FRAME,
) -> list[PoseEstimationSeries]:
    """One PoseEstimationSeries per keypoint (recipe step 5).

    With ``timestamps`` the first series stores them and the others link to it.
    """
    position = np.asarray(position)
    series: list[PoseEstimationSeries] = []
    for k, name in enumerate(names):
        timing: dict = {"rate": float(rate), "starting_time": float(starting_time)}
        if timestamps is not None:
            timing = {
                "timestamps": series[0] if series else np.asarray(timestamps, float)
            }
        extra: dict = {}
        if confidence is not None:
            extra = {
                "confidence": np.asarray(confidence[:, k], dtype=np.float32),
                "confidence_definition": "synthetic likelihood",
            }
        series.append(
            PoseEstimationSeries(
                name=name,
                description=f"Pose estimation series for {name}.",
                data=position[:, k, :].astype(np.float32),
                unit=unit,
                reference_frame=reference_frame,
                **timing,
                **extra,
            )
        )
    return series


def _add_video(
    nwbfile: NWBFile, name: str, video_path: str, device, rate: float, n_frames: int
) -> ImageSeries:
    video = ImageSeries(
        name=name,
        description="behaviour video",
        unit="n.a.",
        format="external",
        external_file=[video_path],
        starting_frame=[0],
        rate=float(rate),
        num_samples=n_frames,  # pitfall 18: required for rate-timed external video
        dimension=[640, 480],
        device=device,
    )
    nwbfile.add_acquisition(video)
    return video


def add_pose_estimation(
    nwbfile: NWBFile,
    *,
    keypoints: Sequence[str],
    position: np.ndarray,
    confidence: np.ndarray | None = None,
    rate: float | None = 30.0,
    starting_time: float = 0.0,
    timestamps: np.ndarray | None = None,
    naming: Naming = "nodes",
    series_names: Sequence[str] | None = None,
    name: str | None = None,
    module: str = "behavior",
    edges: Sequence[tuple[int, int]] | None = None,
    source_software: str = "DeepLabCut",
    source_software_version: str = "2.3.9",
    unit: str = "pixels",
    video_path: str | None = None,
    link_subject: bool = True,
) -> PoseEstimation:
    """Add one PoseEstimation (recipe steps 2-7) to ``nwbfile`` and return it.

    Parameters
    ----------
    keypoints
        Skeleton node names, in node order.
    position
        ``(time, keypoint, space)`` coordinates, space 2 or 3.
    confidence
        ``(time, keypoint)`` scores, or None for series without confidence.
    rate, starting_time, timestamps
        Timing: ``rate`` + ``starting_time``, or explicit ``timestamps``.
    naming
        ``"nodes"`` (series named as nodes) or ``"neuroconv"``
        (``PoseEstimationSeries<Keypoint>``, container ``PoseEstimation<Software>``).
    series_names
        Explicit series names, overriding ``naming``.
    name
        Container name (default ``PoseEstimation`` or NeuroConv's name).
    module, edges, source_software, source_software_version, unit
        As in the recipe; ``edges`` are node index pairs.
    video_path
        When given, an external ImageSeries linked as ``source_video``.
    link_subject
        Link the file's Subject to the Skeleton.

    Returns
    -------
    ndx_pose.PoseEstimation
    """
    default = (
        "PoseEstimation" if naming == "nodes" else f"PoseEstimation{source_software}"
    )
    name = name or default
    subject = nwbfile.subject.subject_id if nwbfile.subject is not None else "subject"
    camera = nwbfile.create_device(  # pitfall 17: device in the file before linking
        name=f"camera_{name}", description="top camera"
    )
    video = None
    if video_path is not None:
        video = _add_video(
            nwbfile, f"video_{name}", video_path, camera, rate or 30.0, len(position)
        )
    skeleton = _skeleton(
        nwbfile, f"{subject}_{name}_skeleton", keypoints, edges, link_subject
    )
    _add_skeleton(nwbfile, module, skeleton)
    names = list(series_names) if series_names else series_names_for(keypoints, naming)
    pose = PoseEstimation(
        name=name,
        pose_estimation_series=make_series(
            names,
            position,
            confidence=confidence,
            rate=rate,
            starting_time=starting_time,
            timestamps=timestamps,
            unit=unit,
        ),
        description="synthetic pose estimates",
        skeleton=skeleton,  # pitfall 17: nodes live on the Skeleton, never nodes=
        device=camera,
        source_video=video,
        scorer="synthetic_scorer",
        source_software=source_software,
        source_software_version=source_software_version,
    )
    _module(nwbfile, module).add(pose)
    return pose


def add_multicamera_pose_estimation(
    nwbfile: NWBFile,
    *,
    keypoints: Sequence[str],
    position: np.ndarray,
    confidence: np.ndarray | None = None,
    rate: float = 30.0,
    starting_time: float = 0.0,
    n_views: int = 2,
    name: str = "MultiCameraPoseEstimation",
    module: str = "behavior",
    unit: str = "millimeters",
    edges: Sequence[tuple[int, int]] | None = None,
) -> MultiCameraPoseEstimation:
    """Add a MultiCameraPoseEstimation with 3-D world series and 2-D view children.

    ``position`` is ``(time, keypoint, 3)``; each camera view gets a
    PoseEstimation holding the x, y columns (a stand-in for projections).
    """
    subject = nwbfile.subject.subject_id if nwbfile.subject is not None else "subject"
    skeleton = _skeleton(nwbfile, f"{subject}_{name}_skeleton", keypoints, edges, True)
    _add_skeleton(nwbfile, module, skeleton)
    views = []
    for view in range(n_views):
        camera = CalibratedCamera(
            name=f"camera{view}",
            description=f"calibrated camera {view}",
            intrinsic_matrix=np.eye(3, dtype=np.float32),
        )
        nwbfile.add_device(camera)  # pitfall 17: device before the PoseEstimation
        views.append(
            PoseEstimation(
                name=f"view{view}",
                pose_estimation_series=make_series(
                    keypoints,
                    position[:, :, :2] + view,
                    rate=rate,
                    starting_time=starting_time,
                ),
                skeleton=skeleton,
                device=camera,
                source_software="anipose",
            )
        )
    world = make_series(
        keypoints,
        position,
        confidence=confidence,
        rate=rate,
        starting_time=starting_time,
        unit=unit,
        reference_frame=WORLD_FRAME,
    )
    multi = MultiCameraPoseEstimation(
        name=name,
        pose_estimation_series=world,
        pose_estimations=views,
        description="triangulated 3-D pose",
        scorer="synthetic_scorer",
        source_software="anipose",
        source_software_version="1.1.0",
        skeleton=skeleton,
    )
    _module(nwbfile, module).add(multi)
    return multi


def _neuroconv_bouts(syllables: np.ndarray, rate: float, starting_time: float):
    """Runs of one label >= 0 as (label, start_time, stop_time), NeuroConv style."""
    bouts, first = [], 0
    for t in range(1, syllables.size + 1):
        if t == syllables.size or syllables[t] != syllables[first]:
            if syllables[first] >= 0:
                start = starting_time + first / rate
                stop = starting_time + (t - 1) / rate + 1 / rate
                bouts.append((int(syllables[first]), start, stop))
            first = t
    return bouts


def add_neuroconv_moseq_results(
    nwbfile: NWBFile,
    pose: PoseEstimation,
    *,
    syllables: np.ndarray,
    centroid: np.ndarray,
    heading: np.ndarray,
    latent_state: np.ndarray,
    rate: float = 30.0,
    starting_time: float = 0.0,
    module: str = "behavior",
) -> None:
    """Add keypoint-MoSeq results as NeuroConv 0.10.2's MoseqKeyPointsInterface does.

    Spec section 3.3: float32 ``Position/MoseqKeyPointsCentroid`` (unit
    ``"unknown"`` and a placeholder reference frame, as NeuroConv writes),
    ``CompassDirection/MoseqKeyPointsHeading``, ``MoseqKeyPointsLatentState``,
    ``MoseqKeyPointsEthogram`` and ``MoseqKeyPointsEthogramBouts`` (source =
    the latent state), and no per-frame syllable series.
    """
    from ndx_ethogram import Ethogram, EthogramBouts

    behavior = _module(nwbfile, module)
    timing = {"rate": float(rate), "starting_time": float(starting_time)}
    frame = "PLACEHOLDER: keypoint-MoSeq does not record the coordinate frame."
    position = Position(name="Position")
    position.add_spatial_series(
        SpatialSeries(
            name="MoseqKeyPointsCentroid",
            description="centroid",
            data=np.asarray(centroid, np.float32),
            unit="unknown",
            reference_frame=frame,
            **timing,
        )
    )
    compass = CompassDirection(name="CompassDirection")
    compass.add_spatial_series(
        SpatialSeries(
            name="MoseqKeyPointsHeading",
            description="heading",
            data=np.asarray(heading, np.float32),
            unit="radians",
            reference_frame=frame,
            **timing,
        )
    )
    latent = TimeSeries(
        name="MoseqKeyPointsLatentState",
        description="latent state",
        data=np.asarray(latent_state, np.float32),
        unit="a.u.",
        **timing,
    )
    behavior.add(position)
    behavior.add(compass)
    behavior.add(latent)
    ethogram = Ethogram(
        name="MoseqKeyPointsEthogram", description="syllables", exclusive=True
    )
    ethogram.add_column("native_code", "syllable id")
    for syllable in np.unique(syllables[syllables >= 0]):
        ethogram.add_row(
            behavior=str(syllable), definition="syllable", native_code=int(syllable)
        )
    behavior.add(ethogram)
    bouts = EthogramBouts(
        name="MoseqKeyPointsEthogramBouts",
        description="keypoint-MoSeq syllables",
        labeling_method="automated",
        source_software="keypoint-MoSeq",
        parameters='{"kappa": 1000000.0, "nlags": 3}',
        source=latent,
        source_pose=pose,
        ethogram=ethogram,
    )
    for label, start, stop in _neuroconv_bouts(
        np.asarray(syllables), rate, starting_time
    ):
        bouts.add_row(start_time=start, stop_time=stop, label=str(label))
    behavior.add(bouts)


def write_nwbfile(nwbfile: NWBFile, path: str | Path) -> Path:
    """Write ``nwbfile`` to ``path`` (recipe step 8) and return the path."""
    path = Path(path)
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwbfile)
    return path


def write_pose_nwb(
    path: str | Path,
    *,
    keypoints: Sequence[str],
    position: np.ndarray,
    confidence: np.ndarray | None = None,
    rate: float | None = 30.0,
    starting_time: float = 0.0,
    timestamps: np.ndarray | None = None,
    naming: Naming = "nodes",
    subject_id: str | None = "mouse1",
    **container_options,
) -> Path:
    """Write a one-PoseEstimation NWB file (see :func:`add_pose_estimation`)."""
    nwbfile = new_nwbfile(subject_id=subject_id)
    add_pose_estimation(
        nwbfile,
        keypoints=keypoints,
        position=position,
        confidence=confidence,
        rate=rate,
        starting_time=starting_time,
        timestamps=timestamps,
        naming=naming,
        **container_options,
    )
    return write_nwbfile(nwbfile, path)


def random_pose(
    rng: np.random.Generator, n_frames: int, n_keypoints: int, n_space: int = 2
) -> tuple[np.ndarray, np.ndarray]:
    """Float32-exact positions ``(T, K, D)`` in pixels and confidences ``(T, K)``."""
    position = rng.uniform(0, 640, (n_frames, n_keypoints, n_space)).astype(np.float32)
    confidence = rng.uniform(0, 1, (n_frames, n_keypoints)).astype(np.float32)
    return position.astype(np.float64), confidence.astype(np.float64)
