"""FreiPose ``.json`` loader, on synthetic files built from the spec's recipe (§2.8)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import moseq_xr
from moseq_xr.exceptions import (
    DataQualityWarning,
    FormatDetectionError,
    LoaderError,
    SchemaError,
)
from moseq_xr.io.formats.freipose import read_freipose_skeleton

NAMES = ["Ear Right", "Ear Left", "Nose", "Tail"]

#: A FreiPose skeleton config in the style of config/skel_rat.cfg.json:
#: JSON with // comments, [name, color] keypoints and a midpoint limb.
SKELETON_CFG = """{
    "keypoints": [
        ["Ear Right", [0, 128, 255]],  // 0
        ["Ear Left", [0, 128, 255]],  // 1
        ["Nose", [0, 200, 255]], // 2 "quoted // not a comment"
        ["Tail", [0, 0, 255]] /* 3 */
    ],
    "limbs": [
        [[0, 1], [0, 0, 255]],  // ear axis
        [[2, 0], [0, 0, 255]],
        [[[0, 1], 3], [0, 0, 255]],  // midpoint of the ears to the tail
        [[2, 1], [0, 0, 255]]
    ],
    "viewer": {"example_path": "http://example.org/rat.png"}  // "//" in strings stays
}
"""


def _write_predictions(
    path: Path,
    xyz: np.ndarray,
    scores: np.ndarray,
    skipped: tuple[int, ...] = (),
) -> Path:
    """One dict per frame; frames in ``skipped`` have no root point and no kp_xyz."""
    frames = []
    for t in range(len(xyz)):
        if t in skipped:
            frames.append({"xyz": None, "boxes": [[0.0, 1.0, 0.0, 1.0]]})
            continue
        frames.append(
            {
                "xyz": [0.0, 0.0, 0.0],
                "boxes": [[0.0, 1.0, 0.0, 1.0]],
                "kp_xyz": xyz[t][None].tolist(),
                "kp_score": scores[t][None].tolist(),
            }
        )
    path.write_text(json.dumps(frames))
    return path


@pytest.fixture
def arrays(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    xyz = rng.normal(size=(6, len(NAMES), 3))
    scores = rng.uniform(
        0.0, 3.0, size=(6, len(NAMES))
    )  # kp_score is not bounded to [0, 1]
    return xyz, scores


def test_detect_source(tmp_path: Path, arrays: tuple) -> None:
    path = _write_predictions(tmp_path / "pred_run000__00.json", *arrays)
    assert moseq_xr.detect_source(path) == "freipose"


def test_load_with_keypoint_names(tmp_path: Path, arrays: tuple) -> None:
    xyz, _ = arrays
    path = _write_predictions(tmp_path / "pred_run000__00.json", *arrays)
    ds = moseq_xr.load_poses(path, fps=30, keypoint_names=NAMES)
    assert dict(ds.sizes) == {
        "recording": 1,
        "time": 6,
        "space": 3,
        "keypoint": 4,
        "individual": 1,
    }
    assert ds.recording.values.tolist() == ["pred_run000__00"]
    assert ds.keypoint.values.tolist() == NAMES
    assert ds.individual.values.tolist() == ["individual_0"]
    assert ds.space.values.tolist() == ["x", "y", "z"]
    assert ds.source_software.values.tolist() == ["FreiPose"]
    assert ds.attrs["fps"] == 30.0
    assert ds.attrs["space_unit"] == "unknown"
    raw = json.loads(path.read_text())
    assert (
        ds.position.sel(keypoint="Nose", space="y").values[0, 3, 0]
        == raw[3]["kp_xyz"][0][2][1]
    )
    np.testing.assert_array_equal(
        ds.position.isel(recording=0, individual=0).values, xyz.transpose(0, 2, 1)
    )
    assert bool(ds.confidence_filled.values[0])
    assert np.all(ds.confidence.values == 1.0)


def test_without_fps_needs_fps(tmp_path: Path, arrays: tuple) -> None:
    path = _write_predictions(tmp_path / "pred.json", *arrays)
    with pytest.raises(SchemaError, match="fps"):
        moseq_xr.load_poses(path, keypoint_names=NAMES)


def test_pitfall_10_freipose_frames_without_kp_xyz_are_nan(
    tmp_path: Path, arrays: tuple
) -> None:
    xyz, scores = arrays
    path = _write_predictions(tmp_path / "pred.json", xyz, scores, skipped=(0, 3))
    ds = moseq_xr.load_poses(path, fps=30, keypoint_names=NAMES, use_scores=True)
    position = ds.position.isel(recording=0, individual=0).values
    assert ds.sizes["time"] == 6
    assert np.isnan(position[[0, 3]]).all()
    assert np.isnan(ds.confidence.values[0, [0, 3]]).all()
    np.testing.assert_array_equal(
        position[[1, 2, 4, 5]], xyz[[1, 2, 4, 5]].transpose(0, 2, 1)
    )


def test_use_scores_keeps_unbounded_kp_score(tmp_path: Path, arrays: tuple) -> None:
    _, scores = arrays
    path = _write_predictions(tmp_path / "pred.json", *arrays)
    ds = moseq_xr.load_poses(path, fps=30, keypoint_names=NAMES, use_scores=True)
    assert not bool(ds.confidence_filled.values[0])
    np.testing.assert_array_equal(
        ds.confidence.isel(recording=0, individual=0).values, scores
    )
    assert ds.confidence.values.max() > 1.0


def test_skeleton_file_json_with_comments(tmp_path: Path, arrays: tuple) -> None:
    skeleton = tmp_path / "skel_rat.cfg.json"
    skeleton.write_text(SKELETON_CFG)
    path = _write_predictions(tmp_path / "pred.json", *arrays)
    ds = moseq_xr.load_poses(path, fps=30, skeleton_file=skeleton)
    assert ds.keypoint.values.tolist() == NAMES
    # the midpoint limb [[0, 1], 3] is not a keypoint pair and is left out
    assert ds.attrs["skeleton"] == [
        ["Ear Right", "Ear Left"],
        ["Nose", "Ear Right"],
        ["Nose", "Ear Left"],
    ]


def test_skeleton_file_yaml(tmp_path: Path, arrays: tuple) -> None:
    pytest.importorskip("yaml")
    skeleton = tmp_path / "skeleton.yaml"
    skeleton.write_text(
        "keypoints:\n"
        + "".join(f"  - ['{name}', [0, 0, 255]]\n" for name in NAMES)
        + "limbs:\n  - [[2, 3], [0, 0, 255]]\n"
    )
    names, edges = read_freipose_skeleton(skeleton)
    assert names == NAMES
    assert edges == [("Nose", "Tail")]


def test_keypoint_names_override_skeleton_names(tmp_path: Path, arrays: tuple) -> None:
    skeleton = tmp_path / "skel.cfg.json"
    skeleton.write_text(SKELETON_CFG)
    path = _write_predictions(tmp_path / "pred.json", *arrays)
    ds = moseq_xr.load_poses(
        path, fps=30, skeleton_file=skeleton, keypoint_names=["er", "el", "n", "t"]
    )
    assert ds.attrs["skeleton"][0] == ["er", "el"]


def test_default_names_warn(tmp_path: Path, arrays: tuple) -> None:
    path = _write_predictions(tmp_path / "pred.json", *arrays)
    with pytest.warns(DataQualityWarning, match="keypoint_names"):
        ds = moseq_xr.load_poses(path, fps=30)
    assert ds.keypoint.values.tolist() == [
        "keypoint_0",
        "keypoint_1",
        "keypoint_2",
        "keypoint_3",
    ]


def test_bounding_box_only_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "pred_bb.json"
    path.write_text(json.dumps([{"xyz": None, "boxes": [[0, 1, 0, 1]]}] * 3))
    assert moseq_xr.detect_source(path) == "freipose"
    with pytest.raises(LoaderError, match=r"pred_bb\.json.*no frame has 'kp_xyz'"):
        moseq_xr.load_poses(path, fps=30, keypoint_names=NAMES)


def test_inconsistent_keypoint_count_names_file(tmp_path: Path, arrays: tuple) -> None:
    path = _write_predictions(tmp_path / "pred.json", *arrays)
    frames = json.loads(path.read_text())
    frames[4]["kp_xyz"] = [[[0.0, 0.0, 0.0]]]
    path.write_text(json.dumps(frames))
    with pytest.raises(LoaderError, match=r"pred\.json: frame 4"):
        moseq_xr.load_poses(path, fps=30, keypoint_names=NAMES)


def test_wrong_number_of_names(tmp_path: Path, arrays: tuple) -> None:
    path = _write_predictions(tmp_path / "pred.json", *arrays)
    with pytest.raises(LoaderError, match=r"pred\.json.*4 names"):
        moseq_xr.load_poses(path, fps=30, keypoint_names=NAMES[:2])


def test_skeleton_without_keypoints_is_refused(tmp_path: Path, arrays: tuple) -> None:
    model_cfg = tmp_path / "model_rat.cfg.json"
    model_cfg.write_text('{"skeleton": "config/skel_rat.cfg.json"}')
    path = _write_predictions(tmp_path / "pred.json", *arrays)
    with pytest.raises(LoaderError, match=r"model_rat\.cfg\.json.*'keypoints'"):
        moseq_xr.load_poses(path, fps=30, skeleton_file=model_cfg)


@pytest.mark.parametrize(
    "content",
    [SKELETON_CFG, "[1, 2, 3]", "[]", '[{"frame": 1}]', "not json at all", ""],
)
def test_other_json_files_are_not_freipose(tmp_path: Path, content: str) -> None:
    path = tmp_path / "other.json"
    path.write_text(content)
    with pytest.raises(FormatDetectionError):
        moseq_xr.detect_source(path)


def test_large_file_sniffed_from_its_start(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    n_time = 600
    xyz = rng.normal(size=(n_time, 12, 3))
    path = _write_predictions(
        tmp_path / "pred_big.json", xyz, rng.uniform(size=(n_time, 12))
    )
    assert path.stat().st_size > 1 << 16
    assert moseq_xr.detect_source(path) == "freipose"
    big_other = tmp_path / "big_other.json"
    big_other.write_text(json.dumps([{"value": list(range(50))}] * 600))
    assert big_other.stat().st_size > 1 << 16
    with pytest.raises(FormatDetectionError):
        moseq_xr.detect_source(big_other)


def test_invalid_json_names_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('[{"kp_xyz": [[[1, 2, 3]]]}, ')
    with pytest.raises(LoaderError, match=r"broken\.json.*not valid JSON"):
        moseq_xr.load_poses(path, source="freipose", fps=30)
