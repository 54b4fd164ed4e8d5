"""Export of pose Datasets and model results to NWB, and reading them back."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import warnings
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import xarray as xr

import moseq_xr
from moseq_xr.exceptions import StoreError
from moseq_xr.export import nwb as nwb_export
from moseq_xr.export.nwb import to_nwb
from moseq_xr.simulation import simulate
from tests.analysis import real_results_dataset
from tests.io import nwb_fixtures as fx

pynwb = pytest.importorskip("pynwb")
ndx_pose = pytest.importorskip("ndx_pose")
ndx_ethogram = pytest.importorskip("ndx_ethogram")

START = datetime.datetime(2024, 5, 1, 9, 30, tzinfo=datetime.UTC)
SUBJECT = {
    "subject_id": "mouse1",
    "species": "Mus musculus",
    "sex": "M",
    "age": "P90D",
    "description": "C57BL/6J male, open field",
}
METADATA = {
    "session_start_time": START,
    "subject": SUBJECT,
    "experimenter": ["Doe, Jane"],
    "institution": "Test Institute",
    "lab": "Test Lab",
    "experiment_description": "open field, top camera",
}
RESULTS = ("syllable", "centroid", "heading", "latent_state")
POSE = ("position", "confidence", "timestamp")
REAL_DLC = (
    "DeepLabCut_DLC2NWB/examples/m3v1mp4DLC_resnet50_openfieldAug20shuffle1_30000.h5"
)
REAL_VIDEO = (
    "DeepLabCut_DeepLabCut/examples/openfield-Pranav-2018-10-30/videos/m3v1mp4.mp4"
)
NLAGS = 3


def _with_results(ds: xr.Dataset) -> xr.Dataset:
    """Ground truth of the simulation as results; the first nlags frames unlabelled."""
    ds = ds.rename({f"true_{name}": name for name in RESULTS})
    if "true_latent" in ds.dims:  # the simulation's latent dim, the fit's name
        ds = ds.rename({"true_latent": "latent"})
    ds["syllable"] = ds["syllable"].astype(np.int32)
    ds["syllable"][..., :NLAGS] = -1
    return moseq_xr.validate(ds)


@pytest.fixture(scope="module")
def results_ds() -> xr.Dataset:
    return _with_results(simulate(num_recordings=2, num_frames=300))


@pytest.fixture(scope="module")
def one_ds(results_ds) -> xr.Dataset:
    """The first recording only (one file per export keeps the tests fast)."""
    return results_ds.isel(recording=[0])


def _two_individuals(ds: xr.Dataset) -> xr.Dataset:
    """One recording whose two individuals are the two simulated recordings."""
    parts = [
        ds.isel(recording=[r]).assign_coords(recording=["pair"], individual=[name])
        for r, name in enumerate(("resident", "intruder"))
    ]
    pair = xr.concat(parts, dim="individual", coords="minimal", compat="override")
    for name in pair.data_vars:
        pair[name] = pair[name].transpose(*ds[name].dims)
    return moseq_xr.validate(pair)


def _assert_same(original: xr.Dataset, back: xr.Dataset, names=POSE + RESULTS) -> None:
    for dim in ("recording", "keypoint", "individual", "space"):
        assert list(back[dim].values) == list(original[dim].values), dim
    assert back.attrs["fps"] == original.attrs["fps"]
    assert back.attrs["space_unit"] == original.attrs["space_unit"]
    assert back.attrs.get("skeleton") == original.attrs.get("skeleton")
    np.testing.assert_array_equal(back["n_frames"], original["n_frames"])
    np.testing.assert_array_equal(back["start_time"], original["start_time"])
    for name in names:
        assert back[name].dims == original[name].dims, name
        assert back[name].dtype.kind == original[name].dtype.kind, name
        np.testing.assert_array_equal(back[name].values, original[name].values, name)


def _export(ds, path, **options) -> list[Path]:
    return to_nwb(ds, path, **{**METADATA, **options})


def _open(path: Path):
    io = pynwb.NWBHDF5IO(str(path), "r", load_namespaces=False)
    return io, io.read()


def _inspect(path: Path) -> list:
    from nwbinspector import Importance, inspect_nwbfile, load_config

    return list(
        inspect_nwbfile(
            nwbfile_path=path,
            config=load_config("dandi"),
            importance_threshold=Importance.BEST_PRACTICE_VIOLATION,
        )
    )


def _inspect_object(path: Path) -> list:
    """The inspector's checks without schema validation (fast: no namespace load)."""
    from nwbinspector import Importance, inspect_nwbfile_object, load_config

    with pynwb.NWBHDF5IO(str(path), "r", load_namespaces=False) as io:
        return list(
            inspect_nwbfile_object(
                io.read(),
                config=load_config("dandi"),
                importance_threshold=Importance.BEST_PRACTICE_VIOLATION,
            )
        )


def _serious(messages: list) -> list:
    return [
        (m.importance.name, m.check_function_name, m.location, m.message)
        for m in messages
        if m.importance.name in ("CRITICAL", "BEST_PRACTICE_VIOLATION", "ERROR")
    ]


def _assert_inspector_clean(path: Path, validate: bool = False) -> None:
    """No CRITICAL / BEST_PRACTICE_VIOLATION message (with schema validation
    when ``validate``: slower, a few seconds per file)."""
    assert _serious(_inspect(path) if validate else _inspect_object(path)) == []


def _write_video(path: Path, n_frames: int = 5) -> Path:
    """A tiny real H.264 video (imageio-ffmpeg), else a placeholder file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import imageio.v2 as imageio

        frames = np.zeros((n_frames, 16, 16, 3), dtype=np.uint8)
        imageio.mimwrite(path, frames, fps=30, macro_block_size=1)
    except Exception:  # no ffmpeg here: the inspector only checks existence
        path.write_bytes(b"\x00" * 64)
    return path


# ------------------------------------------------------------------ round trip


def test_round_trip_is_exact(results_ds, tmp_path):
    paths = _export(results_ds, tmp_path)
    assert paths == [tmp_path / "recording_0.nwb", tmp_path / "recording_1.nwb"]
    back = moseq_xr.load_poses(paths)
    _assert_same(results_ds, back)
    assert list(back["source_software"].values) == ["moseq_xr.simulate"] * 2
    assert back["syllable"].dtype == np.int32


def test_round_trip_two_individuals(results_ds, tmp_path):
    pair = _two_individuals(results_ds)
    video = _write_video(tmp_path / "pair.mp4")
    pair = pair.assign_coords(video_path=("recording", [str(video)]))
    (path,) = _export(pair, tmp_path)
    io, nwbfile = _open(path)
    with io:
        module = nwbfile.processing["behavior"]
        names = set(module.data_interfaces)
        assert {"PoseEstimation_resident", "PoseEstimation_intruder"} <= names
        assert {
            "MoseqKeyPointsSyllable_resident",
            "MoseqKeyPointsEthogram_intruder",
            "MoseqKeyPointsEthogramBouts_resident",
            "MoseqKeyPointsLatentState_intruder",
        } <= names
        assert set(module["Position"].spatial_series) == {
            "MoseqKeyPointsCentroid_resident",
            "MoseqKeyPointsCentroid_intruder",
        }
        assert set(module["Skeletons"].skeletons) == {
            "resident_skeleton",
            "intruder_skeleton",
        }
    back = moseq_xr.load_poses(path)
    assert list(back["individual"].values) == ["intruder", "resident"]  # file order
    _assert_same(pair, back.sel(individual=["resident", "intruder"]))
    assert back["video_path"].values[0] == video.as_posix()
    _assert_inspector_clean(path, validate=True)


def test_round_trip_neuroconv_naming(one_ds, tmp_path):
    ds = one_ds.assign_coords(
        source_software=("recording", ["DeepLabCut"]),
        timestamp=one_ds["timestamp"] + 100.0,  # starting_time is kept
        start_time=one_ds["start_time"] + 100.0,
    )
    paths = _export(ds, tmp_path, naming="neuroconv")
    io, nwbfile = _open(paths[0])
    with io:
        pose = nwbfile.processing["behavior"]["PoseEstimationDeepLabCut"]
        assert "PoseEstimationSeriesLeft_ear" in pose.pose_estimation_series
        assert list(pose.skeleton.nodes[:]) == list(ds["keypoint"].values)
        assert pose.source_software == "DeepLabCut"
        series = pose.pose_estimation_series["PoseEstimationSeriesNose"]
        assert series.starting_time == 100.0 and series.rate == 30.0
    _assert_same(ds, moseq_xr.load_poses(paths))


def _irregular(ds: xr.Dataset) -> xr.Dataset:
    """Camera hiccups: a few frames 4-9 ms late, the rest on the 30 fps grid."""
    rng = np.random.default_rng(1)
    stamps = ds["timestamp"].values + 12.5
    late = rng.choice(np.arange(5, 295), size=12, replace=False)
    stamps[:, late] += rng.uniform(0.004, 0.009, size=(stamps.shape[0], 12))
    return moseq_xr.validate(
        ds.assign_coords(
            timestamp=(("recording", "time"), stamps),
            start_time=("recording", stamps[:, 0]),
        )
    )


def test_round_trip_irregular_timestamps(one_ds, tmp_path):
    ds = _irregular(one_ds)
    paths = _export(ds, tmp_path)
    with h5py.File(paths[0], "r") as file:
        behavior = file["processing/behavior"]
        stored = behavior["PoseEstimation/nose/timestamps"]  # the first keypoint
        np.testing.assert_array_equal(stored[()], ds["timestamp"].values[0])
        assert "starting_time" not in behavior["PoseEstimation/nose"]
        for linked in ("PoseEstimation/neck", "MoseqKeyPointsSyllable"):
            link = behavior[linked].get("timestamps", getlink=True)
            assert isinstance(link, h5py.SoftLink), linked
            assert behavior[f"{linked}/timestamps"] == stored
    _assert_same(ds, moseq_xr.load_poses(paths))


def test_round_trip_3d(tmp_path):
    ds = _with_results(simulate(num_recordings=1, num_frames=200, num_dims=3))
    ds.attrs["space_unit"] = "millimeters"
    (path,) = _export(ds, tmp_path)
    io, nwbfile = _open(path)
    with io:
        pose = nwbfile.processing["behavior"]["PoseEstimation"]
        series = pose.pose_estimation_series["nose"]
        assert series.data.shape == (200, 3)
        assert series.unit == "millimeters"
        assert series.reference_frame == "(0,0) is unknown."
        centroid = nwbfile.processing["behavior"]["Position"]["MoseqKeyPointsCentroid"]
        assert centroid.data.shape == (200, 3) and centroid.unit == "millimeters"
    _assert_same(ds, moseq_xr.load_poses(path))
    _assert_inspector_clean(path)


def test_padding_is_not_written(tmp_path):
    ds = _with_results(simulate(num_recordings=2, num_frames=[120, 80]))
    paths = _export(ds, tmp_path)
    with h5py.File(paths[1], "r") as file:
        behavior = file["processing/behavior"]
        assert behavior["PoseEstimation/nose/data"].shape == (80, 2)
        assert behavior["PoseEstimation/nose/confidence"].shape == (80,)
        assert behavior["MoseqKeyPointsSyllable/data"].shape == (80,)
        assert behavior["MoseqKeyPointsLatentState/data"].shape == (80, 4)
        assert not np.isnan(behavior["PoseEstimation/tail_mid/data"][-1]).all()


def test_pose_only_and_filled_confidence(tmp_path, rng):
    position = rng.normal(size=(50, 4, 2)) * 10
    position[7, 1] = np.nan
    ds = moseq_xr.from_arrays({"session": position}, ["a", "b", "c", "d"], fps=25.0)
    (path,) = _export(ds, tmp_path)
    with h5py.File(path, "r") as file:
        series = file["processing/behavior/PoseEstimation/a"]
        assert "confidence" not in series
        assert series["data"].dtype == np.float64
        assert series["data"].attrs["unit"] == "n.a."  # space_unit unknown
    back = moseq_xr.load_poses(path)
    assert bool(back["confidence_filled"].values[0])
    assert not set(RESULTS) & set(back.data_vars)
    _assert_same(ds, back, POSE)


# ---------------------------------------------------------------------- layout


def test_file_layout_follows_neuroconv_moseq_names(one_ds, tmp_path):
    paths = _export(one_ds, tmp_path)
    ds = one_ds.isel(recording=0)
    io, nwbfile = _open(paths[0])
    with io:
        assert nwbfile.session_id == "recording_0"
        assert nwbfile.subject.subject_id == "mouse1"
        assert [list(row) for row in nwbfile.was_generated_by[:]] == [
            ["moseq_xr", moseq_xr.__version__]
        ]
        module = nwbfile.processing["behavior"]
        assert set(module.data_interfaces) == {
            "Skeletons",
            "PoseEstimation",
            "MoseqKeyPointsSyllable",
            "MoseqKeyPointsEthogram",
            "MoseqKeyPointsEthogramBouts",
            "Position",
            "CompassDirection",
            "MoseqKeyPointsLatentState",
        }
        pose = module["PoseEstimation"]
        assert list(pose.skeleton.nodes[:]) == list(ds["keypoint"].values)
        assert pose.skeleton.edges[:].dtype == np.uint8
        assert pose.skeleton.edges[:].tolist() == [[i, i + 1] for i in range(7)]
        assert pose.skeleton.subject is nwbfile.subject
        series = pose.pose_estimation_series["neck"]
        assert series.rate == 30.0 and series.starting_time == 0.0
        assert series.data.dtype == np.float64 and series.unit == "pixels"
        np.testing.assert_array_equal(
            series.data[:], ds["position"].sel(keypoint="neck").squeeze().values
        )
        syllable = module["MoseqKeyPointsSyllable"]
        assert syllable.data.dtype == np.int32 and syllable.unit == "n.a."
        assert "-1" in syllable.description
        centroid = module["Position"]["MoseqKeyPointsCentroid"]
        assert centroid.unit == "pixels"  # pitfall 16: never "unknown"
        assert centroid.reference_frame == series.reference_frame
        heading = module["CompassDirection"]["MoseqKeyPointsHeading"]
        assert heading.unit == "radians"
        assert module["MoseqKeyPointsLatentState"].unit == "a.u."
        assert module["MoseqKeyPointsLatentState"].data.shape == (300, 4)
        _check_bouts(module, ds["syllable"].squeeze().values)


def _check_bouts(module, labels: np.ndarray) -> None:
    bouts = module["MoseqKeyPointsEthogramBouts"].to_dataframe()
    ethogram = module["MoseqKeyPointsEthogram"]
    present = sorted(int(s) for s in set(labels.tolist()) - {-1})
    assert ethogram.exclusive
    assert list(ethogram["behavior"].data[:]) == [str(s) for s in present]
    assert list(ethogram["native_code"].data[:]) == present
    changes = np.flatnonzero(np.diff(labels)) + 1
    starts = [s for s in [0, *changes] if labels[s] >= 0]
    assert list(bouts["label"]) == [str(labels[s]) for s in starts]
    np.testing.assert_allclose(bouts["start_time"], np.asarray(starts) / 30.0)
    np.testing.assert_array_equal(
        bouts["stop_time"].values[:-1], bouts["start_time"][1:]
    )
    np.testing.assert_allclose(bouts["stop_time"].values[-1], labels.size / 30.0)
    table = module["MoseqKeyPointsEthogramBouts"]
    assert table.labeling_method == "automated"
    assert table.source_software.startswith("moseq_xr ")
    assert table.source.name == "MoseqKeyPointsSyllable"
    assert table.source_pose.name == "PoseEstimation"
    assert table.ethogram.name == "MoseqKeyPointsEthogram"


def test_fit_tree_hyperparameters_in_bouts_parameters(one_ds, tmp_path):
    model = xr.Dataset(
        attrs={
            "version": "9.9.9",
            "config": {"num_states": 100, "nlags": 3, "latent_dim": 4, "stage": "full"},
            "fit": {"kappa": 1e4, "num_iters": 50},
        }
    )
    tree = xr.DataTree.from_dict({"/": one_ds, "/model": model})
    paths = _export(tree, tmp_path)
    io, nwbfile = _open(paths[0])
    with io:
        bouts = nwbfile.processing["behavior"]["MoseqKeyPointsEthogramBouts"]
        parameters = json.loads(bouts.parameters)
        assert "first 3 frames" in bouts.description
    assert parameters["kappa"] == 1e4
    assert parameters["num_states"] == 100 and parameters["latent_dim"] == 4
    assert parameters["nlags"] == 3 and parameters["stage"] == "full"
    assert parameters["moseq_xr_version"] == "9.9.9"


def test_heading_outside_pi_is_wrapped(one_ds, tmp_path):
    ds = one_ds.copy(deep=True)
    ds["heading"][..., 10] = 7.0
    ds["heading"][..., 11] = -20.0
    (path,) = _export(ds, tmp_path)
    back = moseq_xr.load_poses(path)
    heading = back["heading"].values[0, 0]
    np.testing.assert_allclose(heading[10], 7.0 - 2 * np.pi)
    np.testing.assert_allclose(heading[11], -20.0 + 6 * np.pi)
    keep = np.r_[0:10, 12:300]
    np.testing.assert_array_equal(heading[keep], ds["heading"].values[0, 0, keep])
    _assert_inspector_clean(path)


# --------------------------------------------------------------------- reading


def test_reads_neuroconv_moseq_output_decoding_bouts(tmp_path, rng):
    """NeuroConv writes bouts but no per-frame series: syllables come from the bouts."""
    keypoints = ["snout", "tailbase"]
    position, confidence = fx.random_pose(rng, 60, 2)
    labels = np.repeat([-1, 4, 2, 4, 0], [3, 20, 7, 20, 10])
    nwbfile = fx.new_nwbfile()
    pose = fx.add_pose_estimation(
        nwbfile, keypoints=keypoints, position=position, confidence=confidence
    )
    centroid = position.mean(axis=1)
    heading = rng.uniform(-3, 3, 60)
    latent = rng.normal(size=(60, 5))
    fx.add_neuroconv_moseq_results(
        nwbfile,
        pose,
        syllables=labels,
        centroid=centroid,
        heading=heading,
        latent_state=latent,
    )
    path = fx.write_nwbfile(nwbfile, tmp_path / "neuroconv.nwb")
    ds = moseq_xr.load_poses(path)
    np.testing.assert_array_equal(ds["syllable"].values[0, 0], labels)
    np.testing.assert_array_equal(
        ds["centroid"].values[0, 0], centroid.astype(np.float32).astype(np.float64)
    )
    np.testing.assert_array_equal(
        ds["heading"].values[0, 0], heading.astype(np.float32).astype(np.float64)
    )
    assert ds["latent_state"].shape == (1, 1, 60, 5)


def test_load_poses_without_results_is_unchanged(tmp_path, rng):
    position, confidence = fx.random_pose(rng, 20, 3)
    path = fx.write_pose_nwb(
        tmp_path / "plain.nwb",
        keypoints=["a", "b", "c"],
        position=position,
        confidence=confidence,
    )
    ds = moseq_xr.load_poses(path)
    assert set(ds.data_vars) == {"position", "confidence"}
    assert list(ds["individual"].values) == ["mouse1"]  # the Subject, as before


# -------------------------------------------------------------------- pitfalls


def test_pitfall_14_padding_frames_are_in_no_bout(one_ds, tmp_path):
    """kpms repeats the first syllable over the nlags padding frames; we keep -1."""
    paths = _export(one_ds, tmp_path)
    io, nwbfile = _open(paths[0])
    with io:
        module = nwbfile.processing["behavior"]
        bouts = module["MoseqKeyPointsEthogramBouts"].to_dataframe()
        frames = module["MoseqKeyPointsSyllable"].data[:]
    assert bouts["start_time"].iloc[0] == pytest.approx(NLAGS / 30.0)
    np.testing.assert_array_equal(frames[:NLAGS], -1)
    back = moseq_xr.load_poses(paths)
    np.testing.assert_array_equal(back["syllable"].values[..., :NLAGS], -1)


def test_pitfall_15_inspector_messages_checked_in_python(one_ds, tmp_path):
    """The CLI exits 0 even on CRITICAL findings, so messages are checked in Python."""
    (without,) = _export(one_ds, tmp_path / "bare", subject=None)
    critical = {
        m.check_function_name
        for m in _inspect_object(without)
        if m.importance.name == "CRITICAL"
    }
    assert critical == {"check_subject_exists"}


def test_pitfall_16_centroid_unit_is_real(one_ds, tmp_path):
    """NeuroConv writes unit "unknown" (an inspector violation); pixels are tested
    in the layout test, an unknown unit becomes "n.a."."""
    unknown = one_ds.copy()
    unknown.attrs["space_unit"] = "unknown"
    (path,) = _export(unknown, tmp_path)
    with h5py.File(path, "r") as file:
        behavior = file["processing/behavior"]
        centroid = behavior["Position/MoseqKeyPointsCentroid/data"]
        assert centroid.attrs["unit"] == "n.a."
        assert behavior["PoseEstimation/nose/data"].attrs["unit"] == "n.a."
    _assert_inspector_clean(path)
    assert moseq_xr.load_poses(path).attrs["space_unit"] == "unknown"


def test_pitfall_17_device_in_file_no_deprecated_fields(one_ds, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        paths = _export(one_ds, tmp_path)
    io, nwbfile = _open(paths[0])
    with io:
        pose = nwbfile.processing["behavior"]["PoseEstimation"]
        assert pose.device is nwbfile.devices["camera"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            assert pose.original_videos is None and pose.dimensions is None


def test_pitfall_18_external_video_relative_with_num_samples(one_ds, tmp_path):
    video = _write_video(tmp_path / "videos" / "recording_0.mp4")
    ds = one_ds.assign_coords(video_path=("recording", [str(video)]))
    (path,) = _export(ds, tmp_path / "nwb")
    io, nwbfile = _open(path)
    with io:
        series = nwbfile.acquisition["video"]
        assert list(series.external_file[:]) == ["../videos/recording_0.mp4"]
        assert series.num_samples == 300 and series.rate == 30.0
        assert series.device is nwbfile.devices["camera"]
        pose = nwbfile.processing["behavior"]["PoseEstimation"]
        assert pose.source_video is series
        bouts = nwbfile.processing["behavior"]["MoseqKeyPointsEthogramBouts"]
        assert bouts.source_video is series
    _assert_inspector_clean(path)
    back = moseq_xr.load_poses(path)
    assert back["video_path"].values[0] == video.as_posix()
    (no_video,) = _export(ds, tmp_path / "plain", video=False)
    io, nwbfile = _open(no_video)
    with io:
        assert "video" not in nwbfile.acquisition


def test_existing_file_refused_before_anything_is_written(results_ds, tmp_path):
    (tmp_path / "recording_1.nwb").write_bytes(b"keep me")
    with pytest.raises(StoreError, match=r"recording_1\.nwb.*overwrite=True"):
        _export(results_ds, tmp_path)
    assert not (tmp_path / "recording_0.nwb").exists()
    assert (tmp_path / "recording_1.nwb").read_bytes() == b"keep me"
    paths = _export(results_ds, tmp_path, overwrite=True)
    assert h5py.is_hdf5(paths[1])


def test_failed_write_leaves_no_half_written_file(one_ds, tmp_path, monkeypatch):
    ds = one_ds
    (path,) = _export(ds, tmp_path)
    before = path.read_bytes()

    def broken_write(self, *args, **kwargs):
        self._file.create_group("half_written")  # the HDF5 file is open by now
        raise OSError("disk full")

    monkeypatch.setattr(pynwb.NWBHDF5IO, "write", broken_write)
    with pytest.raises(OSError, match="disk full"):
        _export(ds, tmp_path, overwrite=True)
    with pytest.raises(OSError, match="disk full"):
        _export(ds, tmp_path / "new")
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["new", "recording_0.nwb"]
    assert os.listdir(tmp_path / "new") == []


def test_session_start_time_required_and_timezone_aware(one_ds, tmp_path):
    ds = one_ds
    with pytest.raises(ValueError, match="session_start_time is required"):
        _export(ds, tmp_path, session_start_time=None)
    with pytest.raises(ValueError, match="timezone-aware"):
        _export(ds, tmp_path, session_start_time=datetime.datetime(2024, 5, 1))
    assert not list(tmp_path.iterdir())
    (path,) = _export(
        ds, tmp_path, session_start_time=None, allow_placeholder_time=True
    )
    io, nwbfile = _open(path)
    with io:
        assert "placeholder" in nwbfile.notes
        assert nwbfile.session_start_time.tzinfo is not None


def test_metadata_per_recording(results_ds, tmp_path):
    later = START + datetime.timedelta(days=1)
    paths = _export(
        results_ds,
        tmp_path,
        session_start_time={"recording_0": START, "recording_1": later},
        subject=lambda recording: {**SUBJECT, "subject_id": f"mouse_{recording[-1]}"},
    )
    found = []
    for path in paths:
        with h5py.File(path, "r") as file:
            start = datetime.datetime.fromisoformat(
                file["session_start_time"][()].decode()
            )
            found.append((start, file["general/subject/subject_id"][()].decode()))
    assert found == [(START, "mouse_0"), (later, "mouse_1")]
    with pytest.raises(ValueError, match="no entry for recording 'recording_1'"):
        _export(results_ds, tmp_path / "x", subject={"recording_0": SUBJECT})


def test_bad_names_refused(one_ds, tmp_path):
    ds = one_ds.assign_coords(individual=["a/b"])
    with pytest.raises(StoreError, match="'/'"):
        _export(ds, tmp_path)
    with pytest.raises(ValueError, match="naming"):
        _export(one_ds, tmp_path, naming="kpms")


# ------------------------------------------------------------------- real data


def test_real_dlc_recording_exports_cleanly_and_round_trips(real_data, tmp_path):
    h5 = real_data / REAL_DLC
    ds = real_results_dataset(h5)
    video = (real_data / REAL_VIDEO).resolve()
    ds = ds.assign_coords(
        video_path=("recording", [video.as_posix()]),
        source_software=("recording", ["DeepLabCut"]),
    )
    (path,) = _export(ds, tmp_path)
    _assert_inspector_clean(path)
    table = pd.read_hdf(h5)
    scorer = table.columns.get_level_values(0)[0]
    io, nwbfile = _open(path)
    with io:
        pose = nwbfile.processing["behavior"]["PoseEstimation"]
        assert pose.scorer == scorer == "DLC_resnet50_openfieldAug20shuffle1_30000"
        snout = pose.pose_estimation_series["snout"]
        assert snout.data.shape == (2330, 2)
        first_xy = [table[(scorer, "snout", c)].values[0] for c in ("x", "y")]
        np.testing.assert_array_equal(snout.data[0], first_xy)
        np.testing.assert_array_equal(
            snout.confidence[:], table[(scorer, "snout", "likelihood")].values
        )
        assert os.path.normpath(
            path.parent / nwbfile.acquisition["video"].external_file[0]
        ) == str(video)
    back = moseq_xr.load_poses(path)
    _assert_same(ds, back, (*POSE, "syllable", "centroid", "heading"))
    assert back["video_path"].values[0] == video.as_posix()


# ------------------------------------------------------------------------- CLI


def test_cli_handler_exports_a_store(one_ds, tmp_path):
    store = tmp_path / "project.zarr"
    moseq_xr.save(one_ds, store)  # reopened lazily (Dask) by the command
    parser = argparse.ArgumentParser()
    nwb_export.add_export_nwb_arguments(parser)
    start = ["--session-start-time", "2024-05-01T09:30:00Z", "--naming", "neuroconv"]
    subject = ["--subject-id", "mouse1", "--species", "Mus musculus", "--age", "P90D"]
    args = parser.parse_args(
        [str(store), "-o", str(tmp_path / "nwb"), *start, *subject]
    )
    printed = []

    class Console:
        def print(self, text):
            printed.append(str(text))

    assert nwb_export.export_nwb_command(args, Console()) == 0
    assert len(printed) == 1 and "recording_0.nwb" in printed[0]
    _assert_same(one_ds, moseq_xr.load_poses(tmp_path / "nwb"))
    with h5py.File(tmp_path / "nwb" / "recording_0.nwb", "r") as file:
        assert file["general/subject/species"][()].decode() == "Mus musculus"
        assert file["session_start_time"][()].decode().startswith("2024-05-01T09:30")
    with pytest.raises(StoreError, match="--overwrite"):
        nwb_export.export_nwb_command(args, Console())
    for extra, message in (
        ([], "--session-start-time"),
        (["--session-start-time", "2024-05-01T09:30:00"], "UTC offset"),
    ):
        bad = parser.parse_args([str(store), "-o", str(tmp_path / "bad"), *extra])
        with pytest.raises(ValueError, match=message):
            nwb_export.export_nwb_command(bad, Console())
    assert not (tmp_path / "bad").exists()
