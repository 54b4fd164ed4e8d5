"""sleap-anipose ``points3d.h5`` loader (spec §2.6, pitfall 12)."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

import moseq_xr
from moseq_xr.exceptions import DataQualityWarning, LoaderError

SESSION = "talmolab_sleap-anipose/tests/data/minimal_session"
TOP_H5 = f"{SESSION}/top/minimal_top_proofread.analysis.h5"
TOP_SLP = f"{SESSION}/top/minimal_top_proofread.slp"
NAMES = ["nose", "head", "tail", "paw"]


def _node_names(path: Path) -> list[str]:
    with h5py.File(path, "r") as f:
        return [n.decode() for n in f["node_names"][()]]


def _write_points3d(path: Path, tracks: np.ndarray, **extra: np.ndarray) -> Path:
    """sleap-anipose layout: tracks (n_frames, n_tracks, n_nodes, 3), gzip."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f.create_dataset("tracks", data=tracks, chunks=True, compression="gzip")
        f["tracks"].attrs["Description"] = "Shape: (n_frames, n_tracks, n_nodes, 3)."
        for name, value in extra.items():
            f[name] = value
    return path


def _write_analysis(path: Path, node_names: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f["tracks"] = np.zeros((1, 2, len(node_names), 4))
        f["node_names"] = np.array([n.encode() for n in node_names])
        f["edge_names"] = np.array([[node_names[0].encode(), node_names[1].encode()]])
    return path


def _tkds(ds, individual: str = "individual_0") -> np.ndarray:
    sel = ds.position.isel(recording=0).sel(individual=individual)
    return sel.transpose("time", "keypoint", "space").values


def test_real_points3d_takes_node_names_from_sibling_views(real_data):
    path = real_data / f"{SESSION}/points3d.h5"
    assert moseq_xr.detect_source(path) == "sleap_anipose"
    with h5py.File(path, "r") as f:
        raw = f["tracks"][()]
        assert "node_names" not in f
    ds = moseq_xr.load_poses(path, fps=30)
    assert raw.shape == (120, 1, 15, 3)
    assert dict(ds.sizes) == {
        "recording": 1,
        "time": 120,
        "space": 3,
        "keypoint": 15,
        "individual": 1,
    }
    assert list(ds.recording.values) == ["points3d"]
    assert list(ds.keypoint.values) == _node_names(real_data / TOP_H5)
    assert list(ds.space.values) == ["x", "y", "z"]
    assert list(ds.individual.values) == ["individual_0"]
    assert ds.attrs["space_unit"] == "unknown"  # calibration units, not recorded
    assert ds.source_software.values[0] == "sleap-anipose"
    assert bool(ds.confidence_filled.values[0])
    np.testing.assert_array_equal(_tkds(ds), raw[:, 0])
    assert ds.position.values[0, 7, 2, 4, 0] == raw[7, 0, 4, 2]
    assert ["TTI", "Head"] in ds.attrs["skeleton"]


def test_real_points3d_names_from_slp_or_list(real_data):
    path = real_data / f"{SESSION}/points3d.h5"
    nodes = _node_names(real_data / TOP_H5)
    from_slp = moseq_xr.load_poses(path, fps=30, names_from=real_data / TOP_SLP)
    assert list(from_slp.keypoint.values) == nodes
    custom = [f"kp{i}" for i in range(15)]
    from_list = moseq_xr.load_poses(path, fps=30, keypoint_names=custom)
    assert list(from_list.keypoint.values) == custom
    assert "skeleton" not in from_list.attrs
    np.testing.assert_array_equal(from_list.position.values, from_slp.position.values)


def test_pitfall_12_points3d_without_names_falls_back_with_warning(tmp_path, rng):
    tracks = rng.normal(size=(6, 1, 4, 3))
    path = _write_points3d(tmp_path / "alone" / "points3d.h5", tracks)
    with pytest.warns(DataQualityWarning, match="no node names"):
        ds = moseq_xr.load_poses(path, fps=30)
    assert list(ds.keypoint.values) == [
        "bodypart0",
        "bodypart1",
        "bodypart2",
        "bodypart3",
    ]
    np.testing.assert_array_equal(_tkds(ds), tracks[:, 0])
    named = moseq_xr.load_poses(path, fps=30, keypoint_names=NAMES)
    assert list(named.keypoint.values) == NAMES
    with pytest.raises(LoaderError, match="3 keypoint names"):
        moseq_xr.load_poses(path, fps=30, keypoint_names=NAMES[:3])


def test_sibling_one_folder_down_is_used_only_when_counts_match(tmp_path, rng):
    session = tmp_path / "session"
    path = _write_points3d(session / "points3d.h5", rng.normal(size=(5, 1, 4, 3)))
    wrong_count = ["a", "b", "c"]
    _write_analysis(session / "cam1" / "cam1.analysis.h5", wrong_count)
    _write_analysis(session / "cam2" / "cam2.analysis.h5", NAMES)
    ds = moseq_xr.load_poses(path, fps=30)
    assert list(ds.keypoint.values) == NAMES
    assert ds.attrs["skeleton"] == [["nose", "head"]]
    (session / "cam2" / "cam2.analysis.h5").unlink()
    with pytest.warns(DataQualityWarning, match="bodypart0"):
        moseq_xr.load_poses(path, fps=30)


def test_names_from_must_be_a_sleap_file(tmp_path, rng):
    path = _write_points3d(tmp_path / "points3d.h5", rng.normal(size=(5, 1, 4, 3)))
    with pytest.raises(LoaderError, match=r"missing\.analysis\.h5"):
        moseq_xr.load_poses(path, fps=30, names_from=tmp_path / "missing.analysis.h5")
    with pytest.raises(ValueError, match="not both"):
        moseq_xr.load_poses(
            path, fps=30, keypoint_names=NAMES, names_from=tmp_path / "x.analysis.h5"
        )


def test_points3d_scores_frames_range_and_several_tracks(tmp_path, rng):
    tracks = rng.normal(size=(5, 2, 4, 3))
    scores = rng.uniform(size=(5, 2, 4))
    path = _write_points3d(
        tmp_path / "multi.h5", tracks, point_scores=scores, frames=np.array([10, 15])
    )
    ds = moseq_xr.load_poses(path, fps=30, keypoint_names=NAMES)
    assert list(ds.individual.values) == ["track_0", "track_1"]
    assert ds.sizes["time"] == 15 and int(ds.n_frames.values[0]) == 15
    assert np.isnan(ds.position.values[0, :10]).all()
    np.testing.assert_array_equal(_tkds(ds, "track_1")[10:], tracks[:, 1])
    conf = ds.confidence.sel(individual="track_0").values[0]
    np.testing.assert_array_equal(conf[10:], scores[:, 0])
    assert not bool(ds.confidence_filled.values[0])


def test_points3d_detection_and_corrupt_file(tmp_path, rng):
    path = _write_points3d(tmp_path / "p3d.h5", rng.normal(size=(3, 1, 4, 3)))
    assert moseq_xr.detect_source(path) == "sleap_anipose"
    analysis = _write_analysis(tmp_path / "view.analysis.h5", NAMES)
    assert moseq_xr.detect_source(analysis) == "sleap_analysis"
    broken = tmp_path / "points3d_broken.h5"
    broken.write_bytes(b"\x89HDF\r\n\x1a\n truncated")
    with pytest.raises(LoaderError, match=r"points3d_broken\.h5"):
        moseq_xr.load_poses(broken, source="sleap_anipose", fps=30)
    with pytest.raises(LoaderError, match=r"points3d_broken\.h5"):
        moseq_xr.load_poses(broken, fps=30)
    flat = _write_points3d(tmp_path / "flat.h5", rng.normal(size=(3, 4, 3)))
    with pytest.raises(LoaderError, match=r"n_frames, n_tracks, n_nodes, 3"):
        moseq_xr.load_poses(flat, source="sleap_anipose", fps=30)
