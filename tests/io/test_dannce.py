"""DANNCE ``.mat`` loader: real markerless_mouse_1 predictions, synthetic files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.io

import moseq_xr
from moseq_xr.exceptions import (
    DataQualityWarning,
    FormatDetectionError,
    LoaderError,
    SchemaError,
)
from moseq_xr.io.formats.dannce import read_dannce, read_dannce_skeleton

DANNCE_DIR = Path("spoonsso_dannce")
PREDICTIONS = (
    DANNCE_DIR / "demo/markerless_mouse_1/DANNCE/predict_results/save_data_AVG.mat"
)
SKELETON = DANNCE_DIR / "configs/mouse22_skeleton.mat"
LABEL3D = DANNCE_DIR / "demo/markerless_mouse_1/label3d_dannce.mat"


@pytest.fixture(scope="module")
def real_mat(real_data: Path) -> dict[str, np.ndarray]:
    """The real predictions, read independently with scipy."""
    return scipy.io.loadmat(real_data / PREDICTIONS)


@pytest.fixture(scope="module")
def real_skeleton(real_data: Path) -> dict[str, np.ndarray]:
    return scipy.io.loadmat(real_data / SKELETON)


def _joint_names(skeleton: dict[str, np.ndarray]) -> list[str]:
    return [str(cell[0]) for cell in skeleton["joint_names"][0]]


def _write_predictions(path: Path, pred: np.ndarray, p_max: np.ndarray) -> Path:
    """Synthesis recipe of the spec (§2.9)."""
    scipy.io.savemat(
        path,
        {
            "pred": pred,
            "data": np.zeros_like(pred),
            "p_max": p_max,
            "sampleID": np.arange(len(pred), dtype=float),
        },
    )
    return path


# --- real file ---


@pytest.mark.realdata
def test_detect_source_real_predictions(real_data: Path) -> None:
    assert moseq_xr.detect_source(real_data / PREDICTIONS) == "dannce"


@pytest.mark.realdata
def test_real_predictions_with_skeleton_file(
    real_data: Path, real_mat: dict, real_skeleton: dict
) -> None:
    ds = moseq_xr.load_poses(
        real_data / PREDICTIONS, fps=100, skeleton_file=real_data / SKELETON
    )
    names = _joint_names(real_skeleton)
    assert dict(ds.sizes) == {
        "recording": 1,
        "time": 1000,
        "space": 3,
        "keypoint": 22,
        "individual": 1,
    }
    assert ds.recording.values.tolist() == ["save_data_AVG"]
    assert ds.keypoint.values.tolist() == names
    assert names[5] == "Tail(base)"
    assert ds.individual.values.tolist() == ["individual_0"]
    assert ds.space.values.tolist() == ["x", "y", "z"]
    assert ds.attrs["fps"] == 100.0
    assert ds.attrs["space_unit"] == "millimeters"
    assert ds.source_software.values.tolist() == ["DANNCE"]
    position = ds.position.isel(recording=0, individual=0).values
    np.testing.assert_array_equal(
        position, real_mat["pred"]
    )  # (T, 3, K) as in the file
    assert position[0, 0, 0] == real_mat["pred"][0, 0, 0]
    assert position[999, 2, 21] == real_mat["pred"][999, 2, 21]
    assert bool(ds.confidence_filled.values[0])
    assert np.all(ds.confidence.values == 1.0)


@pytest.mark.realdata
def test_real_skeleton_edges_are_one_based(
    real_data: Path, real_skeleton: dict
) -> None:
    ds = moseq_xr.load_poses(
        real_data / PREDICTIONS, fps=100, skeleton_file=real_data / SKELETON
    )
    names = _joint_names(real_skeleton)
    pairs = real_skeleton["joints_idx"].astype(int)
    expected = [[names[a - 1], names[b - 1]] for a, b in pairs]
    assert len(expected) == 24
    assert ds.attrs["skeleton"] == expected
    assert ds.attrs["skeleton"][0] == ["EarL", "EarR"]


@pytest.mark.realdata
def test_real_predictions_without_fps_need_fps(real_data: Path) -> None:
    with pytest.raises(SchemaError, match="fps"):
        moseq_xr.load_poses(real_data / PREDICTIONS, skeleton_file=real_data / SKELETON)


@pytest.mark.realdata
def test_real_p_max_as_confidence(real_data: Path, real_mat: dict) -> None:
    ds = moseq_xr.load_poses(
        real_data / PREDICTIONS,
        fps=100,
        skeleton_file=real_data / SKELETON,
        confidence="p_max",
    )
    assert not bool(ds.confidence_filled.values[0])
    conf = ds.confidence.isel(recording=0, individual=0).values
    np.testing.assert_array_equal(conf, real_mat["p_max"])
    assert conf.max() < 1.0  # p_max is a probability-map peak, not a 0-1 likelihood


@pytest.mark.realdata
def test_real_sample_id_kept_in_extra(real_data: Path, real_mat: dict) -> None:
    records = read_dannce(real_data / PREDICTIONS, skeleton_file=real_data / SKELETON)
    assert len(records) == 1
    assert records[0].fps is None
    np.testing.assert_array_equal(
        records[0].extra["sampleID"], real_mat["sampleID"].ravel()
    )
    assert records[0].extra["sampleID"][:3].tolist() == [1.0, 11.0, 21.0]


@pytest.mark.realdata
def test_real_predictions_without_names_warn(real_data: Path) -> None:
    with pytest.warns(DataQualityWarning, match="keypoint_names"):
        ds = moseq_xr.load_poses(real_data / PREDICTIONS, fps=100)
    assert ds.keypoint.values.tolist() == [f"keypoint_{i}" for i in range(22)]
    assert "skeleton" not in ds.attrs


@pytest.mark.realdata
def test_label3d_file_is_not_predictions(real_data: Path) -> None:
    with pytest.raises(FormatDetectionError):
        moseq_xr.detect_source(real_data / LABEL3D)
    with pytest.raises(LoaderError, match=r"label3d_dannce\.mat.*no 'pred'"):
        moseq_xr.load_poses(real_data / LABEL3D, source="dannce", fps=100)


@pytest.mark.realdata
def test_skeleton_file_is_not_predictions(real_data: Path) -> None:
    with pytest.raises(FormatDetectionError):
        moseq_xr.detect_source(real_data / SKELETON)


@pytest.mark.realdata
def test_read_dannce_skeleton(real_data: Path, real_skeleton: dict) -> None:
    names, edges = read_dannce_skeleton(real_data / SKELETON)
    assert names == _joint_names(real_skeleton)
    assert len(edges) == len(real_skeleton["joints_idx"])


# --- synthetic files ---


def test_pitfall_11_dannce_multi_instance_pred_becomes_individuals(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    n_time, n_instances, n_markers = 6, 2, 4
    pred = rng.normal(size=(n_time, n_instances, 3, n_markers))
    p_max = rng.uniform(size=(n_time, n_instances, n_markers))
    path = _write_predictions(tmp_path / "save_data_AVG0.mat", pred, p_max)
    names = ["snout", "ear(l)", "ear(r)", "tail"]
    assert moseq_xr.detect_source(path) == "dannce"
    ds = moseq_xr.load_poses(path, fps=50, keypoint_names=names, confidence="p_max")
    assert ds.individual.values.tolist() == ["instance_0", "instance_1"]
    assert ds.keypoint.values.tolist() == names
    for i in range(n_instances):
        got = ds.position.isel(recording=0).sel(individual=f"instance_{i}").values
        np.testing.assert_array_equal(got, pred[:, i])
        conf = ds.confidence.isel(recording=0).sel(individual=f"instance_{i}").values
        np.testing.assert_array_equal(conf, p_max[:, i])
    assert ds.position.values[0, 2, 1, 3, 1] == pred[2, 1, 1, 3]


def test_synthetic_single_instance_values(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    pred = rng.normal(size=(5, 3, 3))
    pred[1, :, 2] = np.nan
    path = _write_predictions(
        tmp_path / "save_data_MAX.mat", pred, rng.uniform(size=(5, 3))
    )
    ds = moseq_xr.load_poses(path, fps=25, keypoint_names=["a", "b", "c"])
    np.testing.assert_array_equal(
        ds.position.isel(recording=0, individual=0).values, pred
    )
    assert ds.time.values[1] == pytest.approx(0.04)
    assert np.isnan(ds.confidence.values[0, 1, 2, 0])
    assert ds.confidence.values[0, 1, 1, 0] == 1.0


def test_keypoint_names_rename_skeleton_edges(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    skeleton = tmp_path / "tiny_skeleton.mat"
    joint_names = np.empty((1, 3), dtype=object)
    joint_names[0, :] = ["A", "B", "C"]
    scipy.io.savemat(
        skeleton, {"joint_names": joint_names, "joints_idx": np.array([[1, 2], [2, 3]])}
    )
    path = _write_predictions(
        tmp_path / "pred.mat", rng.normal(size=(4, 3, 3)), rng.uniform(size=(4, 3))
    )
    ds = moseq_xr.load_poses(path, fps=10, skeleton_file=skeleton)
    assert ds.keypoint.values.tolist() == ["A", "B", "C"]
    assert ds.attrs["skeleton"] == [["A", "B"], ["B", "C"]]
    ds = moseq_xr.load_poses(
        path, fps=10, skeleton_file=skeleton, keypoint_names=["x", "y", "z"]
    )
    assert ds.attrs["skeleton"] == [["x", "y"], ["y", "z"]]


def test_wrong_number_of_keypoint_names(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    path = _write_predictions(
        tmp_path / "pred.mat", rng.normal(size=(4, 3, 3)), rng.uniform(size=(4, 3))
    )
    with pytest.raises(LoaderError, match=r"pred\.mat.*3 names"):
        moseq_xr.load_poses(path, fps=10, keypoint_names=["a", "b"])


def test_skeleton_with_other_marker_count(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    skeleton = tmp_path / "skel.mat"
    names = np.empty((1, 2), dtype=object)
    names[0, :] = ["A", "B"]
    scipy.io.savemat(skeleton, {"joint_names": names, "joints_idx": np.array([[1, 2]])})
    path = _write_predictions(
        tmp_path / "pred.mat", rng.normal(size=(4, 3, 3)), rng.uniform(size=(4, 3))
    )
    with pytest.raises(
        LoaderError,
        match=r"pred\.mat.*3 keypoints in the file but the skeleton names 2",
    ):
        moseq_xr.load_poses(path, fps=10, skeleton_file=skeleton)


def test_skeleton_file_errors(tmp_path: Path, rng: np.random.Generator) -> None:
    path = _write_predictions(
        tmp_path / "pred.mat", rng.normal(size=(4, 3, 3)), rng.uniform(size=(4, 3))
    )
    with pytest.raises(LoaderError, match=r"missing\.mat.*not found"):
        moseq_xr.load_poses(path, fps=10, skeleton_file=tmp_path / "missing.mat")
    with pytest.raises(LoaderError, match=r"pred\.mat.*joint_names"):
        moseq_xr.load_poses(path, fps=10, skeleton_file=path)


def test_bad_pred_shape_names_file(tmp_path: Path) -> None:
    path = tmp_path / "odd.mat"
    scipy.io.savemat(path, {"pred": np.zeros((4, 5, 6))})
    with pytest.raises(LoaderError, match=r"odd\.mat.*'pred' has shape"):
        moseq_xr.load_poses(
            path, source="dannce", fps=10, keypoint_names=list("abcdef")
        )


def test_missing_p_max_with_p_max_confidence(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    path = tmp_path / "nopmax.mat"
    scipy.io.savemat(path, {"pred": rng.normal(size=(4, 3, 2))})
    with pytest.raises(LoaderError, match=r"nopmax\.mat.*p_max"):
        moseq_xr.load_poses(path, fps=10, keypoint_names=["a", "b"], confidence="p_max")


def test_unknown_confidence_choice(tmp_path: Path, rng: np.random.Generator) -> None:
    path = _write_predictions(
        tmp_path / "pred.mat", rng.normal(size=(4, 3, 2)), rng.uniform(size=(4, 2))
    )
    with pytest.raises(ValueError, match="confidence"):
        moseq_xr.load_poses(path, fps=10, keypoint_names=["a", "b"], confidence="max")


def test_non_mat_file_is_not_detected(tmp_path: Path) -> None:
    path = tmp_path / "notes.mat"
    path.write_text("not a MATLAB file")
    with pytest.raises(FormatDetectionError):
        moseq_xr.detect_source(path)
    with pytest.raises(LoaderError, match=r"notes\.mat"):
        moseq_xr.load_poses(path, source="dannce", fps=10)
