"""NWB (ndx-pose) loader: the real DLC2NWB file, sleap-io output, synthetic files."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

import moseq_xr
from moseq_xr.exceptions import (
    DataQualityWarning,
    FormatDetectionError,
    LoaderError,
    SchemaError,
)
from moseq_xr.io.formats import nwb as nwb_format
from moseq_xr.io.formats.nwb import read_nwb
from tests.io import nwb_fixtures as fx

DLC2NWB = "DeepLabCut_DLC2NWB/examples/m3v1mp4DLC_resnet50_openfieldAug20shuffle1_30000"
CLIP_SLP = "talmolab_sleap/tests/data/tracks/clip.predictions.slp"
FRAME_INDEX_WARNING = "look like video frame indices"
NOSE_ORDER = ["tailbase", "snout", "leftear", "rightear"]  # not alphabetical


@pytest.fixture
def pose(rng):
    return fx.random_pose(rng, n_frames=40, n_keypoints=len(NOSE_ORDER))


def _position(ds, recording=None):
    """(time, keypoint, space) of the first individual of one recording."""
    sel = (
        ds.position.isel(recording=0)
        if recording is None
        else ds.position.sel(recording=recording)
    )
    return sel.isel(individual=0).transpose("time", "keypoint", "space").values


# --------------------------------------------------------------------------- real files


@pytest.mark.realdata
def test_real_dlc2nwb_matches_its_dlc_h5_twin(real_data):
    path = real_data / f"{DLC2NWB}.nwb"
    with pytest.warns(DataQualityWarning, match=FRAME_INDEX_WARNING):
        ds = moseq_xr.load_poses(path, fps=30)
    table = pd.read_hdf(real_data / f"{DLC2NWB}.h5")
    scorer = table.columns.get_level_values("scorer")[0]
    bodyparts = list(dict.fromkeys(table.columns.get_level_values("bodyparts")))
    assert ds.sizes["time"] == 2330
    assert (
        list(ds.keypoint.values)
        == bodyparts
        == ["snout", "leftear", "rightear", "tailbase"]
    )
    assert list(ds.individual.values) == ["ind1"]
    assert list(ds.recording.values) == [path.stem]
    assert ds.attrs["fps"] == 30.0
    assert ds.attrs["space_unit"] == "pixels"
    assert str(ds.source_software.values[0]) == "DeepLabCut"
    assert not bool(ds.confidence_filled.values[0])
    assert str(ds.video_path.values[0]) == ""  # DLC2NWB's "fake_path" placeholder
    for bodypart in bodyparts:
        part = table[scorer][bodypart]
        got = ds.position.sel(keypoint=bodypart).isel(recording=0, individual=0)
        np.testing.assert_array_equal(got.sel(space="x").values, part["x"].to_numpy())
        np.testing.assert_array_equal(got.sel(space="y").values, part["y"].to_numpy())
        conf = ds.confidence.sel(keypoint=bodypart).isel(recording=0, individual=0)
        np.testing.assert_array_equal(conf.values, part["likelihood"].to_numpy())


@pytest.mark.realdata
def test_real_dlc2nwb_frame_index_timestamps_need_fps(real_data):
    path = real_data / f"{DLC2NWB}.nwb"
    with h5py.File(path) as file:
        stamps = file["processing/behavior/PoseEstimation/ind1_snout/timestamps"][:]
    assert np.array_equal(stamps, np.arange(2330))  # frame indices, not seconds
    with pytest.warns(DataQualityWarning, match=FRAME_INDEX_WARNING):
        (record,) = read_nwb(path)
    assert record.fps is None and record.timestamps is None and record.frame is None
    with pytest.warns(DataQualityWarning), pytest.raises(SchemaError, match="fps="):
        moseq_xr.load_poses(path)
    with pytest.warns(DataQualityWarning):
        ds = moseq_xr.load_poses(path, fps=30)
    np.testing.assert_allclose(ds.time.values[:3], [0, 1 / 30, 2 / 30])
    assert ds.time.values[-1] == pytest.approx(2329 / 30)


@pytest.mark.realdata
def test_real_dlc2nwb_detected_as_nwb(real_data):
    assert moseq_xr.detect_source(real_data / f"{DLC2NWB}.nwb") == "nwb"


def _sleap_instances_array(labels, n_frames: int) -> np.ndarray:
    """(frames, tracks, nodes, x/y/score) straight from sleap-io's instances."""
    tracks = [t.name for t in labels.tracks]
    expected = np.full((n_frames, len(tracks), len(labels.skeleton.nodes), 3), np.nan)
    for frame in labels.labeled_frames:
        for instance in frame.instances:
            row = tracks.index(instance.track.name)
            expected[frame.frame_idx, row] = instance.numpy(scores=True)
    return expected


@pytest.mark.realdata
def test_sleap_io_tracks_become_individuals_of_one_recording(real_data, tmp_path):
    sio = pytest.importorskip("sleap_io")
    from sleap_io.io.nwb_predictions import write_nwb

    full = sio.load_slp(real_data / CLIP_SLP)
    labels = sio.Labels(
        labeled_frames=full.labeled_frames[950:1150],  # has missing nodes and tracks
        videos=full.videos,
        skeletons=full.skeletons,
        tracks=full.tracks,
    )
    path = tmp_path / "clip.nwb"
    video_seconds = np.arange(1500) / 25.0  # clip.mp4 is 25 fps
    with warnings.catch_warnings():  # sleap-io still passes deprecated ndx-pose args
        warnings.simplefilter("ignore", DeprecationWarning)
        # track=female / track=male in module SLEAP_VIDEO_000_clip; rows with a
        # missing node are dropped, so the male series carry explicit timestamps
        write_nwb(
            labels, path, pose_estimation_metadata={"video_timestamps": video_seconds}
        )
    ds = moseq_xr.load_poses(path)
    expected = _sleap_instances_array(labels, 1150)[950:]
    assert list(ds.recording.values) == ["clip"]
    assert list(ds.individual.values) == ["female", "male"]
    assert list(ds.keypoint.values) == labels.skeleton.node_names == ["head", "thorax"]
    assert ds.sizes["time"] == 200
    assert ds.attrs["fps"] == 25.0
    assert float(ds.start_time.values[0]) == pytest.approx(38.0)  # frame 950
    assert ds.attrs["skeleton"] == [["thorax", "head"]]
    assert str(ds.source_software.values[0]) == "SLEAP"
    got = ds.position.isel(recording=0).transpose(
        "time", "individual", "keypoint", "space"
    )
    np.testing.assert_allclose(got.values, expected[..., :2], rtol=1e-6)
    conf = ds.confidence.isel(recording=0).transpose("time", "individual", "keypoint")
    missing = np.isnan(expected[..., 0])  # sleap-io scores missing points 0; we say NaN
    assert missing.any() and np.isnan(conf.values[missing]).all()
    np.testing.assert_allclose(
        conf.values[~missing], expected[..., 2][~missing], rtol=1e-6
    )


def test_rate_one_with_whole_start_is_read_as_frame_indices(tmp_path, pose):
    position, _ = pose  # sleap-io's default: rate=1.0, starting_time=first frame
    path = fx.write_pose_nwb(
        tmp_path / "frames.nwb",
        keypoints=NOSE_ORDER,
        position=position,
        rate=1.0,
        starting_time=10.0,
    )
    with pytest.warns(DataQualityWarning, match=FRAME_INDEX_WARNING):
        (record,) = read_nwb(path)
    assert record.fps is None
    np.testing.assert_array_equal(record.frame, 10 + np.arange(40))
    with pytest.warns(DataQualityWarning, match=FRAME_INDEX_WARNING):
        ds = moseq_xr.load_poses(path, fps=30)
    assert ds.sizes["time"] == 50 and np.isnan(_position(ds)[:10]).all()
    np.testing.assert_array_equal(_position(ds)[10:], position)


# --------------------------------------------------------------------------- synthetic


def test_series_named_after_nodes(tmp_path, pose):
    position, confidence = pose
    path = fx.write_pose_nwb(
        tmp_path / "session.nwb",
        keypoints=NOSE_ORDER,
        position=position,
        confidence=confidence,
        rate=30.0,
        edges=[(0, 1), (1, 2), (1, 3)],
    )
    assert moseq_xr.detect_source(path) == "nwb"
    ds = moseq_xr.load_poses(path)
    assert list(ds.recording.values) == ["session"]
    assert list(ds.keypoint.values) == NOSE_ORDER
    assert list(ds.individual.values) == ["mouse1"]  # Skeleton.subject.subject_id
    assert ds.attrs["fps"] == 30.0
    assert ds.attrs["skeleton"] == [
        ["tailbase", "snout"],
        ["snout", "leftear"],
        ["snout", "rightear"],
    ]
    assert str(ds.source_software.values[0]) == "DeepLabCut"
    np.testing.assert_array_equal(_position(ds), position)
    np.testing.assert_array_equal(
        ds.confidence.isel(recording=0, individual=0).values, confidence
    )


def test_pitfall_07_nwb_keypoints_keep_node_order_not_alphabetical(tmp_path, pose):
    position, _ = pose
    path = fx.write_pose_nwb(
        tmp_path / "order.nwb", keypoints=NOSE_ORDER, position=position
    )
    with h5py.File(path) as file:  # HDF5 lists the series alphabetically
        stored = [
            k for k in file["processing/behavior/PoseEstimation"] if k in NOSE_ORDER
        ]
    assert stored == sorted(NOSE_ORDER) != NOSE_ORDER
    ds = moseq_xr.load_poses(path)
    assert list(ds.keypoint.values) == NOSE_ORDER
    for k, keypoint in enumerate(NOSE_ORDER):
        got = ds.position.sel(keypoint=keypoint).isel(recording=0, individual=0)
        np.testing.assert_array_equal(
            got.transpose("time", "space").values, position[:, k]
        )


def test_pitfall_08_neuroconv_series_names_mapped_through_nodes(tmp_path, pose):
    position, confidence = pose
    keypoints = ["nose", "tail_base", "left_ear", "right_ear"]
    path = fx.write_pose_nwb(
        tmp_path / "neuroconv.nwb",
        keypoints=keypoints,
        position=position,
        confidence=confidence,
        naming="neuroconv",
    )
    with h5py.File(path) as file:
        stored = list(file["processing/behavior/PoseEstimationDeepLabCut"])
    assert (
        "PoseEstimationSeriesNose" in stored
        and "PoseEstimationSeriesTail_base" in stored
    )
    ds = moseq_xr.load_poses(path)
    assert list(ds.keypoint.values) == keypoints  # node names, node order
    np.testing.assert_array_equal(_position(ds), position)


def test_pitfall_08_individual_prefix_stripped_when_remainder_matches_nodes(
    tmp_path, pose
):
    position, _ = pose
    path = fx.write_pose_nwb(
        tmp_path / "prefixed.nwb",
        keypoints=NOSE_ORDER,
        position=position,
        series_names=[f"mouse_a_{k}" for k in NOSE_ORDER],
    )
    ds = moseq_xr.load_poses(path)
    assert list(ds.keypoint.values) == NOSE_ORDER
    assert list(ds.individual.values) == ["mouse_a"]
    np.testing.assert_array_equal(_position(ds), position)


def test_pitfall_08_unmatched_series_fall_back_to_series_names(tmp_path, pose):
    position, _ = pose
    names = ["p3", "p1", "p4", "p2"]
    path = fx.write_pose_nwb(
        tmp_path / "unmatched.nwb",
        keypoints=NOSE_ORDER,
        position=position,
        series_names=names,
    )
    with pytest.warns(DataQualityWarning, match="do not match the Skeleton nodes"):
        ds = moseq_xr.load_poses(path)
    assert list(ds.keypoint.values) == sorted(names)  # file (HDF5) order
    got = ds.position.sel(keypoint="p3").isel(recording=0, individual=0)
    np.testing.assert_array_equal(got.transpose("time", "space").values, position[:, 0])


def test_pitfall_09_nwb_starting_time_kept(tmp_path, pose):
    position, _ = pose
    path = fx.write_pose_nwb(
        tmp_path / "late.nwb",
        keypoints=NOSE_ORDER,
        position=position,
        rate=50.0,
        starting_time=12.5,
    )
    ds = moseq_xr.load_poses(path)
    assert ds.attrs["fps"] == 50.0
    assert float(ds.start_time.values[0]) == 12.5
    np.testing.assert_allclose(ds.timestamp.values[0], 12.5 + np.arange(40) / 50.0)
    assert ds.time.values[1] == pytest.approx(1 / 50.0)


def test_irregular_timestamps_kept_in_timestamp_coordinate(tmp_path, pose, rng):
    position, _ = pose
    stamps = 3.0 + np.cumsum(rng.uniform(0.030, 0.037, 40))
    path = fx.write_pose_nwb(
        tmp_path / "irregular.nwb",
        keypoints=NOSE_ORDER,
        position=position,
        timestamps=stamps,
    )
    ds = moseq_xr.load_poses(path)
    np.testing.assert_array_equal(ds.timestamp.values[0], stamps)
    assert ds.attrs["fps"] == round(1 / np.median(np.diff(stamps)), 6)
    assert float(ds.start_time.values[0]) == stamps[0]
    np.testing.assert_array_equal(_position(ds), position)


def test_timestamps_with_gaps_place_rows_on_frames(tmp_path, pose):
    position, _ = pose
    frames = np.r_[0:20, 30:50]
    path = fx.write_pose_nwb(
        tmp_path / "gaps.nwb",
        keypoints=NOSE_ORDER,
        position=position,
        timestamps=1.0 + frames / 30.0,
    )
    ds = moseq_xr.load_poses(path)
    assert ds.attrs["fps"] == 30.0
    assert ds.sizes["time"] == 50
    got = _position(ds)
    np.testing.assert_array_equal(got[frames], position)
    assert np.isnan(got[20:30]).all()
    np.testing.assert_allclose(ds.timestamp.values[0], 1.0 + np.arange(50) / 30.0)


def test_two_pose_containers_give_two_recordings(tmp_path, pose):
    position, confidence = pose
    nwbfile = fx.new_nwbfile()
    fx.add_pose_estimation(
        nwbfile,
        keypoints=NOSE_ORDER,
        position=position,
        confidence=confidence,
        name="PoseEstimationTop",
    )
    fx.add_pose_estimation(
        nwbfile,
        keypoints=NOSE_ORDER,
        position=position[:30] * 2,
        name="PoseEstimationSide",
        source_software="SLEAP",
    )
    path = fx.write_nwbfile(nwbfile, tmp_path / "cams.nwb")
    ds = moseq_xr.load_poses(path)
    assert sorted(ds.recording.values) == [
        "cams_PoseEstimationSide",
        "cams_PoseEstimationTop",
    ]
    np.testing.assert_array_equal(_position(ds, "cams_PoseEstimationTop"), position)
    side = _position(ds, "cams_PoseEstimationSide")
    np.testing.assert_array_equal(side[:30], position[:30] * 2)
    assert int(ds.n_frames.sel(recording="cams_PoseEstimationSide")) == 30
    assert bool(ds.confidence_filled.sel(recording="cams_PoseEstimationSide"))
    only = moseq_xr.load_poses(path, containers=["PoseEstimationTop"])
    assert list(only.recording.values) == ["cams_PoseEstimationTop"]
    with pytest.raises(LoaderError, match="not found"):
        moseq_xr.load_poses(path, containers=["nope"])


def test_three_d_series(tmp_path, rng):
    position, confidence = fx.random_pose(rng, 25, 3, n_space=3)
    path = fx.write_pose_nwb(
        tmp_path / "xyz.nwb",
        keypoints=["c", "a", "b"],
        position=position,
        confidence=confidence,
        unit="millimeters",
    )
    ds = moseq_xr.load_poses(path)
    assert list(ds.space.values) == ["x", "y", "z"]
    assert ds.attrs["space_unit"] == "millimeters"
    np.testing.assert_array_equal(_position(ds), position)


def test_multicamera_pose_estimation_reads_world_series(tmp_path, rng):
    position, confidence = fx.random_pose(rng, 25, 3, n_space=3)
    nwbfile = fx.new_nwbfile()
    fx.add_multicamera_pose_estimation(
        nwbfile,
        keypoints=["snout", "neck", "tail"],
        position=position,
        confidence=confidence,
        rate=100.0,
        edges=[(0, 1), (1, 2)],
    )
    path = fx.write_nwbfile(nwbfile, tmp_path / "arena3d.nwb")
    ds = moseq_xr.load_poses(path)
    assert list(ds.recording.values) == ["arena3d"]  # views are not extra recordings
    assert list(ds.keypoint.values) == ["snout", "neck", "tail"]
    assert ds.attrs["fps"] == 100.0
    assert ds.attrs["space_unit"] == "millimeters"
    assert ds.attrs["skeleton"] == [["snout", "neck"], ["neck", "tail"]]
    assert str(ds.source_software.values[0]) == "anipose"
    np.testing.assert_array_equal(_position(ds), position)


def test_no_confidence_is_filled_and_flagged(tmp_path, pose):
    position, _ = pose
    position[5, 1] = np.nan
    path = fx.write_pose_nwb(
        tmp_path / "noconf.nwb", keypoints=NOSE_ORDER, position=position
    )
    (record,) = read_nwb(path)
    assert record.confidence is None
    ds = moseq_xr.load_poses(path)
    assert bool(ds.confidence_filled.values[0])
    conf = ds.confidence.isel(recording=0, individual=0).values
    assert np.isnan(conf[5, 1]) and np.nansum(conf == 1.0) == conf.size - 1


def test_individual_defaults_without_subject(tmp_path, pose):
    position, _ = pose
    path = fx.write_pose_nwb(
        tmp_path / "anon.nwb", keypoints=NOSE_ORDER, position=position, subject_id=None
    )
    ds = moseq_xr.load_poses(path)
    assert list(ds.individual.values) == ["individual_0"]


def test_individual_from_file_subject_when_skeleton_has_none(tmp_path, pose):
    position, _ = pose
    path = fx.write_pose_nwb(
        tmp_path / "subj.nwb",
        keypoints=NOSE_ORDER,
        position=position,
        subject_id="m7",
        link_subject=False,
    )
    assert list(moseq_xr.load_poses(path).individual.values) == ["m7"]


@pytest.mark.parametrize(
    ("unit", "expected"),
    [
        ("pixels", "pixels"),
        ("mm", "millimeters"),
        ("meters", "meters"),
        ("furlongs", "unknown"),
    ],
)
def test_series_unit_maps_to_space_unit(tmp_path, pose, unit, expected):
    position, _ = pose
    path = fx.write_pose_nwb(
        tmp_path / "unit.nwb", keypoints=NOSE_ORDER, position=position, unit=unit
    )
    assert moseq_xr.load_poses(path).attrs["space_unit"] == expected


def test_pitfall_17_ndx_pose_04_rejects_nodes_on_pose_estimation(tmp_path, pose):
    from ndx_pose import PoseEstimation

    position, _ = pose
    series = fx.make_series(NOSE_ORDER, position)
    with pytest.raises(ValueError, match="nodes"):
        PoseEstimation(name="old", pose_estimation_series=series, nodes=NOSE_ORDER)
    # the fixture adds the Device to the file first, so the linked container writes
    path = fx.write_pose_nwb(
        tmp_path / "dev.nwb", keypoints=NOSE_ORDER, position=position
    )
    with h5py.File(path) as file:
        assert "camera_PoseEstimation" in file["general/devices"]
        assert "device" in file["processing/behavior/PoseEstimation"]
    assert list(moseq_xr.load_poses(path).keypoint.values) == NOSE_ORDER


def test_pitfall_18_external_video_needs_num_samples_and_gives_video_path(
    tmp_path, pose
):
    from pynwb.image import ImageSeries

    with pytest.raises(ValueError, match="num_samples"):
        ImageSeries(
            name="v",
            unit="n.a.",
            format="external",
            external_file=["a.mp4"],
            starting_frame=[0],
            rate=30.0,
        )
    position, _ = pose
    path = fx.write_pose_nwb(
        tmp_path / "vid.nwb",
        keypoints=NOSE_ORDER,
        position=position,
        video_path="videos/top.mp4",
    )
    ds = moseq_xr.load_poses(path)
    assert str(ds.video_path.values[0]) == (tmp_path / "videos" / "top.mp4").as_posix()


# --------------------------------------------------------------------------- errors


def test_non_nwb_file_with_nwb_suffix_names_the_file(tmp_path):
    text = tmp_path / "notes.nwb"
    text.write_text("not an NWB file\n")
    with pytest.raises(LoaderError, match=r"notes\.nwb"):
        moseq_xr.load_poses(text)
    plain = tmp_path / "plain.nwb"
    with h5py.File(plain, "w") as file:
        file["x"] = np.arange(3)
    with pytest.raises(FormatDetectionError, match=r"plain\.nwb"):
        moseq_xr.detect_source(plain)
    with pytest.raises(LoaderError, match=r"plain\.nwb"):
        moseq_xr.load_poses(plain)
    with pytest.raises(LoaderError, match=r"plain\.nwb"):
        moseq_xr.load_poses(plain, source="nwb")


def test_nwb_without_pose_containers_is_an_error(tmp_path):
    path = fx.write_nwbfile(fx.new_nwbfile(), tmp_path / "empty.nwb")
    with pytest.raises(LoaderError, match=r"empty\.nwb.*holds no ndx-pose"):
        moseq_xr.load_poses(path)


def test_missing_pynwb_names_the_extra(tmp_path, pose, monkeypatch):
    position, _ = pose
    path = fx.write_pose_nwb(
        tmp_path / "x.nwb", keypoints=NOSE_ORDER, position=position
    )
    monkeypatch.setitem(sys.modules, "pynwb", None)
    with pytest.raises(ImportError, match=r"moseq-xr\[nwb\]"):
        read_nwb(path)


def test_loader_emits_no_warning_on_clean_file(tmp_path, pose):
    position, confidence = pose
    path = fx.write_pose_nwb(
        tmp_path / "clean.nwb",
        keypoints=NOSE_ORDER,
        position=position,
        confidence=confidence,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_nwb(Path(path))


def test_file_with_other_extension_types_still_loads(tmp_path, pose):
    ndx_ethogram = pytest.importorskip("ndx_ethogram")
    position, _ = pose
    nwbfile = fx.new_nwbfile()
    fx.add_pose_estimation(nwbfile, keypoints=NOSE_ORDER, position=position)
    ethogram = ndx_ethogram.Ethogram(
        name="MoseqKeyPointsEthogram", description="syllables", exclusive=True
    )
    ethogram.add_row(behavior="0", definition="syllable 0")
    nwbfile.processing["behavior"].add(ethogram)
    path = fx.write_nwbfile(nwbfile, tmp_path / "with_ethogram.nwb")
    ds = moseq_xr.load_poses(path)
    assert list(ds.recording.values) == ["with_ethogram"]
    np.testing.assert_array_equal(_position(ds), position)


def test_cached_namespaces_loaded_when_fast_read_fails(tmp_path, pose, monkeypatch):
    position, _ = pose
    path = fx.write_pose_nwb(
        tmp_path / "slow.nwb", keypoints=NOSE_ORDER, position=position
    )
    real_try_read, calls = nwb_format._try_read, []

    def fail_without_cached_namespaces(nwb_io_class, file_path, load_namespaces):
        calls.append(load_namespaces)
        if not load_namespaces:
            raise KeyError("'ndx-unknown' not a namespace")
        return real_try_read(nwb_io_class, file_path, load_namespaces)

    monkeypatch.setattr(nwb_format, "_try_read", fail_without_cached_namespaces)
    (record,) = read_nwb(path)
    assert calls == [False, True]
    assert list(record.keypoints) == NOSE_ORDER
