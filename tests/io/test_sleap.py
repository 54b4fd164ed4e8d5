"""SLEAP loaders: ``.slp`` (sleap-io) and analysis HDF5 (``.analysis.h5``).

Real files are cross-checked against h5py / sleap-io read directly here;
synthetic files cover the variants the real data lack (spec §2.1, §2.2 and
pitfalls 1, 2, 3, 13).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

import moseq_xr
from moseq_xr.exceptions import DataQualityWarning, LoaderError

sio = pytest.importorskip("sleap_io")

CLIP_SLP = "talmolab_sleap/tests/data/tracks/clip.predictions.slp"
DEEPOF = "mlfpm_deepof/tests/test_examples/test_single_topview/Tables/SLEAP"
DEEPOF_SLP = f"{DEEPOF}/test2DLC_sleap.slp"
DEEPOF_H5 = f"{DEEPOF}/testDLC_sleap.analysis.h5"
SESSION = "talmolab_sleap-anipose/tests/data/minimal_session"
TOP_SLP = f"{SESSION}/top/minimal_top_proofread.slp"
VIEWS = ("back", "mid", "side", "top")


def _decoded(values) -> list[str]:
    return [v.decode() for v in np.asarray(values).ravel()]


def _as_tkds(ds, recording: str, individual: str) -> np.ndarray:
    """Position of one animal as (time, keypoint, space)."""
    sel = ds.position.sel(recording=recording, individual=individual)
    return sel.transpose("time", "keypoint", "space").values


# --------------------------------------------------------------------------- #
# Real .slp files
# --------------------------------------------------------------------------- #
def _raw_slp_predictions(path: Path) -> tuple[np.ndarray, list[str]]:
    """(frames, tracks, nodes, 3) = x, y, score straight from the HDF5 tables."""
    with h5py.File(path, "r") as f:
        assert float(f["metadata"].attrs["format_id"]) >= 1.1  # no half-pixel shift
        frames, instances, points = (
            f["frames"][()],
            f["instances"][()],
            f["pred_points"][()],
        )
        tracks = [json.loads(t)[1] for t in f["tracks_json"][()]]
    frame_of = dict(zip(frames["frame_id"], frames["frame_idx"], strict=True))
    n_nodes = int(instances["point_id_end"][0] - instances["point_id_start"][0])
    out = np.full((int(frames["frame_idx"].max()) + 1, len(tracks), n_nodes, 3), np.nan)
    for inst in instances:
        assert inst["instance_type"] == 1 and inst["track"] >= 0  # predicted, tracked
        pts = points[inst["point_id_start"] : inst["point_id_end"]]
        xy = np.where(
            pts["visible"][:, None], np.stack([pts["x"], pts["y"]], 1), np.nan
        )
        out[frame_of[inst["frame_id"]], inst["track"]] = np.column_stack(
            [xy, pts["score"]]
        )
    return out, tracks


def test_clip_slp_two_flies_match_raw_hdf5_tables(real_data):
    path = real_data / CLIP_SLP
    assert moseq_xr.detect_source(path) == "sleap_slp"
    ds = moseq_xr.load_poses(path, fps=25)
    assert dict(ds.sizes) == {
        "recording": 1,
        "time": 1500,
        "space": 2,
        "keypoint": 2,
        "individual": 2,
    }
    raw, track_names = _raw_slp_predictions(path)
    assert list(ds.individual.values) == track_names == ["female", "male"]
    assert list(ds.keypoint.values) == ["head", "thorax"]
    assert ds.attrs["skeleton"] == [["thorax", "head"]]
    assert ds.attrs["fps"] == 25.0 and ds.attrs["space_unit"] == "pixels"
    assert ds.video_path.values[0] == "tests/data/tracks/clip.mp4"
    assert ds.source_software.values[0] == "SLEAP"
    assert not ds.confidence_filled.values[0]
    for j, name in enumerate(track_names):
        np.testing.assert_array_equal(
            _as_tkds(ds, "clip.predictions", name), raw[:, j, :, :2]
        )
        conf = ds.confidence.sel(recording="clip.predictions", individual=name).values
        np.testing.assert_array_equal(conf, raw[:, j, :, 2])
    assert ds.position.isnull().any()  # the file has missing points


@pytest.mark.parametrize(
    ("relpath", "shape", "first_node"),
    [(DEEPOF_SLP, (101, 14), "Nose"), (TOP_SLP, (120, 15), "Nose")],
)
def test_single_track_slp_matches_sleap_io_numpy(real_data, relpath, shape, first_node):
    path = real_data / relpath
    labels = sio.load_slp(str(path), open_videos=False)
    expected = labels.numpy(return_confidence=True)  # (frames, tracks, nodes, 3)
    ds = moseq_xr.load_poses(path, fps=30)
    assert (ds.sizes["time"], ds.sizes["keypoint"]) == shape
    assert list(ds.keypoint.values) == labels.skeletons[0].node_names
    assert ds.keypoint.values[0] == first_node
    assert list(ds.individual.values) == ["track_0"]
    assert ds.video_path.values[0] == labels.videos[0].filename
    got = _as_tkds(ds, path.stem, "track_0")
    np.testing.assert_allclose(got, expected[:, 0, :, :2], rtol=1e-6)
    np.testing.assert_allclose(
        ds.confidence.values[0, :, :, 0], expected[:, 0, :, 2], rtol=1e-6
    )
    edges = [[e.source.name, e.destination.name] for e in labels.skeletons[0].edges]
    assert ds.attrs["skeleton"] == edges


def test_top_view_slp_agrees_with_its_analysis_export(real_data):
    from_slp = moseq_xr.load_poses(real_data / TOP_SLP, fps=30)
    h5 = real_data / f"{SESSION}/top/minimal_top_proofread.analysis.h5"
    from_h5 = moseq_xr.load_poses(h5, fps=30)
    np.testing.assert_allclose(
        from_slp.position.values[0], from_h5.position.values[0], rtol=1e-6
    )


# --------------------------------------------------------------------------- #
# Real analysis HDF5 files
# --------------------------------------------------------------------------- #
def _raw_analysis(path: Path) -> dict:
    with h5py.File(path, "r") as f:
        return {
            "tracks": f["tracks"][()],
            "scores": f["point_scores"][()],
            "nodes": _decoded(f["node_names"][()]),
            "tracks_names": _decoded(f["track_names"][()]),
            "edges": np.asarray(_decoded(f["edge_names"][()])).reshape(-1, 2).tolist(),
            "video": f["video_path"][()].decode(),
            "occupancy": f["track_occupancy"][()],
        }


def test_deepof_analysis_h5_matches_h5py(real_data):
    path = real_data / DEEPOF_H5
    assert moseq_xr.detect_source(path) == "sleap_analysis"
    raw = _raw_analysis(path)
    ds = moseq_xr.load_poses(path, fps=30)
    assert list(ds.recording.values) == ["testDLC_sleap.analysis"]
    assert dict(ds.sizes) == {
        "recording": 1,
        "time": 101,
        "space": 2,
        "keypoint": 14,
        "individual": 1,
    }
    assert list(ds.keypoint.values) == raw["nodes"]
    assert list(ds.individual.values) == raw["tracks_names"] == ["track_0"]
    assert ds.attrs["skeleton"] == raw["edges"]
    assert ds.video_path.values[0] == raw["video"]
    # matlab layout: tracks (tracks, xy, nodes, frames)
    np.testing.assert_array_equal(
        _as_tkds(ds, "testDLC_sleap.analysis", "track_0"),
        raw["tracks"][0].transpose(2, 1, 0),
    )
    np.testing.assert_array_equal(ds.confidence.values[0, :, :, 0], raw["scores"][0].T)
    assert ds.position.values[0, 0, 0, 0, 0] == raw["tracks"][0, 0, 0, 0]


@pytest.mark.parametrize("view", VIEWS)
def test_sleap_anipose_view_analysis_h5_matches_h5py(real_data, view):
    path = real_data / f"{SESSION}/{view}/minimal_{view}_proofread.analysis.h5"
    assert moseq_xr.detect_source(path) == "sleap_analysis"
    raw = _raw_analysis(path)
    ds = moseq_xr.load_poses(path, fps=30)
    assert (ds.sizes["time"], ds.sizes["keypoint"]) == (120, 15)
    assert list(ds.keypoint.values) == raw["nodes"]
    assert ds.keypoint.values[-1] == "Neck"
    expected = raw["tracks"][0].transpose(2, 1, 0)
    expected[raw["occupancy"][:, 0] == 0] = np.nan
    np.testing.assert_array_equal(_as_tkds(ds, path.stem, "track_0"), expected)
    assert int(ds.position.isnull().sum()) == int(np.isnan(expected).sum())


def test_four_views_load_as_four_recordings(real_data):
    paths = [
        real_data / f"{SESSION}/{v}/minimal_{v}_proofread.analysis.h5" for v in VIEWS
    ]
    ds = moseq_xr.load_poses(paths, fps=30)
    assert list(ds.recording.values) == [
        f"minimal_{v}_proofread.analysis" for v in VIEWS
    ]
    assert list(ds.n_frames.values) == [120] * 4
    assert list(ds.source_software.values) == ["SLEAP"] * 4


# --------------------------------------------------------------------------- #
# Synthetic analysis files (spec §2.1 synthesis recipe)
# --------------------------------------------------------------------------- #
NODES = ["nose", "head", "tail"]


def _canonical(rng, n_frames=20, n_tracks=2, n_nodes=3):
    xy = rng.normal(100, 20, (n_frames, n_tracks, n_nodes, 2))
    xy[3, 0, 1] = np.nan
    scores = rng.uniform(0, 1, (n_frames, n_tracks, n_nodes))
    return xy, scores


def _write_matlab(path, xy, scores=None, track_names=None, occupancy=None):
    """Write the SLEAP GUI (matlab) layout: no dims attributes."""
    n_frames, n_tracks = xy.shape[:2]
    with h5py.File(path, "w") as f:
        f["tracks"] = xy.transpose(1, 3, 2, 0)
        if scores is not None:
            f["point_scores"] = scores.transpose(1, 2, 0)
        if occupancy is None:
            occupancy = np.ones((n_frames, n_tracks), np.uint8)
        f["track_occupancy"] = occupancy
        f["instance_scores"] = np.ones((n_tracks, n_frames))
        f["tracking_scores"] = np.ones((n_tracks, n_frames))
        if track_names is None:
            track_names = [f"mouse{i}" for i in range(n_tracks)]
        f["track_names"] = (
            np.array([n.encode() for n in track_names])
            if track_names
            else np.array([], float)
        )
        f["node_names"] = np.array([n.encode() for n in NODES])
        f["edge_names"] = np.array([[b"nose", b"head"], [b"head", b"tail"]])
        f["edge_inds"] = np.array([[0, 1], [1, 2]])
        f["video_path"] = "session/video.mp4"
        f["labels_path"] = "session/labels.slp"
        f["video_ind"] = 0
        f["provenance"] = "{}"


def _labels(xy, scores, node_names, track_names, video="video.mp4"):
    """sleap-io Labels from canonical arrays (one PredictedInstance per slot)."""
    skeleton = sio.Skeleton(
        nodes=list(node_names), edges=[(node_names[0], node_names[1])]
    )
    vid = sio.Video(filename=video, open_backend=False)
    tracks = [sio.Track(name=n) for n in track_names]
    frames = []
    for t in range(xy.shape[0]):
        insts = [
            sio.PredictedInstance.from_numpy(
                points_data=xy[t, j],
                skeleton=skeleton,
                point_scores=scores[t, j],
                score=0.9,
                track=track,
            )
            for j, track in enumerate(tracks)
        ]
        frames.append(sio.LabeledFrame(video=vid, frame_idx=t, instances=insts))
    return sio.Labels(
        labeled_frames=frames, videos=[vid], skeletons=[skeleton], tracks=tracks
    )


def test_pitfall_01_standard_preset_read_through_dims_attribute(tmp_path, rng):
    xy, scores = _canonical(rng, n_frames=20, n_tracks=2)
    labels = _labels(xy, scores, NODES, ["a", "b"])
    standard = tmp_path / "std.analysis.h5"
    matlab = tmp_path / "mat.analysis.h5"
    sio.save_analysis_h5(labels, str(standard), preset="standard")
    sio.save_analysis_h5(labels, str(matlab), preset="matlab")
    with h5py.File(standard, "r") as f:
        assert f["tracks"].shape == (20, 2, 3, 2)  # shape[1] == 2 by coincidence
        assert json.loads(f["tracks"].attrs["dims"]) == ["frame", "track", "node", "xy"]
    ds = moseq_xr.load_poses(standard, fps=30)
    assert dict(ds.sizes)["time"] == 20 and list(ds.individual.values) == ["a", "b"]
    for j, name in enumerate(["a", "b"]):
        np.testing.assert_array_equal(_as_tkds(ds, "std.analysis", name), xy[:, j])
        np.testing.assert_array_equal(
            ds.confidence.sel(individual=name).values[0], scores[:, j]
        )
    ds_matlab = moseq_xr.load_poses(matlab, fps=30)
    np.testing.assert_array_equal(ds.position.values, ds_matlab.position.values)


def test_standard_layout_without_dims_is_rejected(tmp_path, rng):
    xy, _ = _canonical(rng, n_frames=20, n_tracks=3)
    path = tmp_path / "nodims.analysis.h5"
    _write_matlab(path, xy)
    with h5py.File(path, "r+") as f:
        del f["tracks"]
        f["tracks"] = xy  # frame-first but no dims attribute
    with pytest.raises(LoaderError, match=r"nodims\.analysis\.h5.*matlab layout"):
        moseq_xr.load_poses(path, fps=30)


def test_matlab_layout_without_point_scores_fills_confidence(tmp_path, rng):
    xy, _ = _canonical(rng)
    path = tmp_path / "noscores.analysis.h5"
    _write_matlab(path, xy)
    ds = moseq_xr.load_poses(path, fps=30)
    assert bool(ds.confidence_filled.values[0])
    np.testing.assert_array_equal(_as_tkds(ds, "noscores.analysis", "mouse1"), xy[:, 1])
    conf = ds.confidence.sel(individual="mouse0").values[0]
    assert np.isnan(conf[3, 1]) and np.all(conf[~np.isnan(xy[:, 0, :, 0])] == 1.0)
    assert ds.attrs["skeleton"] == [["nose", "head"], ["head", "tail"]]
    assert ds.video_path.values[0] == "session/video.mp4"


def test_pitfall_02_no_tracks_empty_float_track_names_is_one_animal(tmp_path, rng):
    xy, scores = _canonical(rng, n_frames=8, n_tracks=1)
    path = tmp_path / "notracks.analysis.h5"
    _write_matlab(path, xy, scores, track_names=[])
    with h5py.File(path, "r") as f:
        assert f["track_names"].dtype == np.float64 and f["track_names"].shape == (0,)
    ds = moseq_xr.load_poses(path, fps=30)
    assert list(ds.individual.values) == ["individual_0"]
    np.testing.assert_array_equal(
        _as_tkds(ds, "notracks.analysis", "individual_0"), xy[:, 0]
    )


def test_pitfall_03_track_occupancy_is_frame_first_and_blanks_frames(tmp_path, rng):
    xy, scores = _canonical(rng, n_frames=5, n_tracks=2)
    occupancy = np.ones((5, 2), np.uint8)  # (frames, tracks), unlike every other array
    occupancy[1, 0] = occupancy[4, 1] = 0
    path = tmp_path / "occ.analysis.h5"
    _write_matlab(path, xy, scores, occupancy=occupancy)
    ds = moseq_xr.load_poses(path, fps=30)
    pos = ds.position.values[0]  # (time, space, keypoint, individual)
    assert np.isnan(pos[1, :, :, 0]).all() and np.isnan(pos[4, :, :, 1]).all()
    assert np.isnan(ds.confidence.values[0, 1, :, 0]).all()
    np.testing.assert_array_equal(pos[2, :, :, 0], xy[2, 0].T)  # occupied: untouched
    assert np.isfinite(pos[1, :, :, 1]).all()


def test_analysis_empty_track_is_dropped(tmp_path, rng):
    xy, scores = _canonical(rng, n_frames=6, n_tracks=3)
    xy[:, 2] = np.nan
    path = tmp_path / "empty.analysis.h5"
    _write_matlab(path, xy, scores)
    ds = moseq_xr.load_poses(path, fps=30)
    assert list(ds.individual.values) == ["mouse0", "mouse1"]


def test_analysis_sniffer_rejects_other_hdf5(tmp_path):
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["tracks"] = np.zeros((10, 1, 4, 3))  # sleap-anipose style, no node_names
    from moseq_xr.io.formats.sleap_analysis import _is_sleap_analysis

    assert not _is_sleap_analysis(other)
    assert not _is_sleap_analysis(tmp_path / "missing.h5")


def test_corrupt_h5_gives_loader_error_naming_the_file(tmp_path):
    path = tmp_path / "broken.analysis.h5"
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + b"garbage" * 20)
    with pytest.raises(LoaderError, match=r"broken\.analysis\.h5"):
        moseq_xr.load_poses(path, fps=30)
    with pytest.raises(LoaderError, match=r"broken\.analysis\.h5.*HDF5"):
        moseq_xr.load_poses(path, source="sleap_analysis", fps=30)


# --------------------------------------------------------------------------- #
# Synthetic .slp files (spec §2.2 synthesis recipe)
# --------------------------------------------------------------------------- #
SLP_NODES = ["snout", "neck", "tailbase"]


@pytest.fixture
def node_list() -> list[str]:
    return list(SLP_NODES)


@pytest.fixture
def skeleton(node_list):
    # Pitfall 13: Skeleton(nodes=lst) turns the str items of lst into Nodes in
    # place, so pass a copy.
    return sio.Skeleton(nodes=list(node_list), edges=[("snout", "neck")], name="mouse")


def _predicted(skeleton, xy, track=None, scores=None, score=0.9):
    scores = np.full(len(xy), 0.8) if scores is None else scores
    return sio.PredictedInstance.from_numpy(
        points_data=np.asarray(xy, float),
        skeleton=skeleton,
        point_scores=scores,
        score=score,
        track=track,
    )


def _pose(i: float) -> np.ndarray:
    return np.array([[10 + i, 20 + i], [30 + i, 40 + i], [50 + i, 60 + i]])


def _save(tmp_path, name, frames, videos, skeleton, tracks) -> Path:
    labels = sio.Labels(
        labeled_frames=frames, videos=videos, skeletons=[skeleton], tracks=tracks
    )
    path = tmp_path / name
    sio.save_slp(labels, str(path))
    return path


def test_pitfall_13_skeleton_fixture_passes_a_copy(tmp_path, node_list, skeleton):
    assert node_list == SLP_NODES and all(type(n) is str for n in node_list)
    video = sio.Video(filename="arena/cam0.mp4", open_backend=False)
    track = sio.Track(name="mouse")
    frames = [
        sio.LabeledFrame(
            video=video, frame_idx=t, instances=[_predicted(skeleton, _pose(t), track)]
        )
        for t in range(4)
    ]
    path = _save(tmp_path, "copy.slp", frames, [video], skeleton, [track])
    ds = moseq_xr.load_poses(path, fps=30)
    assert list(ds.keypoint.values) == node_list
    assert ds.attrs["skeleton"] == [["snout", "neck"]]
    np.testing.assert_array_equal(_as_tkds(ds, "copy", "mouse")[2], _pose(2))
    assert ds.video_path.values[0] == "arena/cam0.mp4"
    assert node_list == SLP_NODES and all(type(n) is str for n in node_list)


def test_slp_fragmented_and_empty_tracks_user_over_predicted(tmp_path, skeleton):
    video = sio.Video(filename="cam.mp4", open_backend=False)
    first, second, empty = (sio.Track(name=n) for n in ("track_a", "track_b", "never"))
    frames = []
    for t in [*range(0, 4), *range(6, 9)]:  # frames 4 and 5 never labelled
        track = first if t < 4 else second  # one animal, identity broken at frame 6
        insts = [_predicted(skeleton, _pose(t), track)]
        if t == 2:  # a user correction on the same track wins
            insts.append(
                sio.Instance.from_numpy(_pose(100), skeleton=skeleton, track=track)
            )
        if t == 3:  # an untracked user correction inherits its prediction's track
            insts.append(
                sio.Instance.from_numpy(
                    _pose(200), skeleton=skeleton, from_predicted=insts[0]
                )
            )
        frames.append(sio.LabeledFrame(video=video, frame_idx=t, instances=insts))
    frames[0].instances.append(_predicted(skeleton, _pose(50)))  # untracked: ignored
    path = _save(
        tmp_path, "frag.slp", frames, [video], skeleton, [first, second, empty]
    )
    with pytest.warns(DataQualityWarning, match="1 untracked instance"):
        ds = moseq_xr.load_poses(path, fps=30)
    assert list(ds.individual.values) == ["track_a", "track_b"]  # 'never' dropped
    assert ds.sizes["time"] == 9
    a, b = _as_tkds(ds, "frag", "track_a"), _as_tkds(ds, "frag", "track_b")
    np.testing.assert_array_equal(a[0], _pose(0))
    np.testing.assert_array_equal(a[2], _pose(100))
    np.testing.assert_array_equal(a[3], _pose(200))
    assert np.isnan(a[4:]).all() and np.isnan(b[:6]).all()
    np.testing.assert_array_equal(b[7], _pose(7))
    conf_a = ds.confidence.sel(individual="track_a").values[0]
    assert np.isnan(conf_a[2]).all() and np.allclose(conf_a[1], 0.8)


def test_slp_untracked_single_animal_is_individual_0(tmp_path, skeleton):
    video = sio.Video(filename="solo.mp4", open_backend=False)
    frames = [
        sio.LabeledFrame(
            video=video, frame_idx=t, instances=[_predicted(skeleton, _pose(t))]
        )
        for t in (1, 2, 5)
    ]
    weaker_duplicate = _predicted(skeleton, _pose(99), score=0.1)
    frames[1].instances.append(weaker_duplicate)
    path = _save(tmp_path, "solo.slp", frames, [video], skeleton, [])
    with pytest.warns(DataQualityWarning, match="1 frame"):
        ds = moseq_xr.load_poses(path, fps=30)
    assert list(ds.individual.values) == ["individual_0"]
    pos = _as_tkds(ds, "solo", "individual_0")
    assert pos.shape == (6, 3, 2) and np.isnan(pos[[0, 3, 4]]).all()
    np.testing.assert_array_equal(pos[2], _pose(2))
    assert int(ds.n_frames.values[0]) == 6


def test_slp_with_two_videos_gives_two_recordings(tmp_path, skeleton):
    videos = [
        sio.Video(filename=f"C:\\data\\{n}.mp4", open_backend=False)
        for n in ("left", "right")
    ]
    track = sio.Track(name="m")
    frames = [
        sio.LabeledFrame(
            video=v,
            frame_idx=t,
            instances=[_predicted(skeleton, _pose(t + 10 * i), track)],
        )
        for i, v in enumerate(videos)
        for t in range(3 + i)
    ]
    path = _save(tmp_path, "two.slp", frames, videos, skeleton, [track])
    ds = moseq_xr.load_poses(path, fps=30)
    assert list(ds.recording.values) == ["two_left", "two_right"]
    assert list(ds.n_frames.values) == [3, 4]
    np.testing.assert_array_equal(_as_tkds(ds, "two_right", "m")[1], _pose(11))
    stored = [v.filename for v in sio.load_slp(str(path), open_videos=False).videos]
    assert list(ds.video_path.values) == stored
    assert stored[0].endswith("left.mp4")  # sleap-io may turn backslashes to slashes


def test_slp_needs_sleap_io_with_install_hint(real_data, monkeypatch):
    monkeypatch.setitem(sys.modules, "sleap_io", None)
    with pytest.raises(ImportError, match=r"pip install 'moseq-xr\[sleap\]'"):
        moseq_xr.load_poses(real_data / CLIP_SLP, fps=25)


def test_corrupt_slp_gives_loader_error_naming_the_file(tmp_path):
    path = tmp_path / "broken.slp"
    path.write_bytes(b"not an hdf5 file")
    with pytest.raises(LoaderError, match=r"broken\.slp"):
        moseq_xr.load_poses(path, fps=30)
    with pytest.raises(LoaderError, match=r"broken\.slp"):
        moseq_xr.load_poses(path, source="sleap_slp", fps=30)


def test_detect_source_tells_sleap_files_apart(real_data):
    assert moseq_xr.detect_source(real_data / DEEPOF_SLP) == "sleap_slp"
    assert moseq_xr.detect_source(real_data / TOP_SLP) == "sleap_slp"
    assert moseq_xr.detect_source(real_data / DEEPOF_H5) == "sleap_analysis"
    assert (
        moseq_xr.detect_source(real_data / f"{SESSION}/points3d.h5") == "sleap_anipose"
    )
