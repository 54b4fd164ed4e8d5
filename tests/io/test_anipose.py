"""Anipose 3-D CSV loader on synthetic files (no real anipose file exists).

Files follow the spec §2.5 synthesis recipe: per bodypart ``_x,_y,_z,_error,
_ncams,_score``, then ``M_00..M_22``, ``center_0..2`` and ``fnum``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import moseq_xr
from moseq_xr.exceptions import LoaderError
from moseq_xr.io.formats.anipose import _is_anipose, read_anipose, split_column
from moseq_xr.io.formats.deeplabcut import _is_dlc
from moseq_xr.io.formats.lightning_pose import _is_lightning_pose

# File order on purpose not alphabetical; names with '-', spaces, parentheses, '_'.
BODYPARTS = ["snout", "left-ear", "tail (base)", "Ankle", "back_mid"]


def write_anipose(
    path: Path,
    bodyparts: list[str] = BODYPARTS,
    n_frames: int = 8,
    fnum: list[int] | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """Write an anipose triangulation CSV and return the table written."""
    rng = np.random.default_rng(seed)
    columns: dict[str, np.ndarray] = {}
    for bodypart in bodyparts:
        xyz = rng.normal(0, 50, (n_frames, 3))
        ncams = rng.integers(2, 4, n_frames).astype(float)
        score = rng.uniform(0, 1, n_frames)
        error = rng.uniform(0, 5, n_frames)
        ncams[1] = 1  # seen by one camera: anipose writes NaN point and stats
        xyz[1] = score[1] = error[1] = np.nan
        for axis, name in enumerate("xyz"):
            columns[f"{bodypart}_{name}"] = xyz[:, axis]
        columns[f"{bodypart}_error"] = error
        columns[f"{bodypart}_ncams"] = ncams
        columns[f"{bodypart}_score"] = score
    for i in range(3):
        for j in range(3):
            columns[f"M_{i}{j}"] = np.full(n_frames, float(i == j))
    for i in range(3):
        columns[f"center_{i}"] = np.zeros(n_frames)
    columns["fnum"] = np.arange(n_frames) if fnum is None else np.asarray(fnum)
    table = pd.DataFrame(columns)
    table.to_csv(path, index=False)
    return table


def test_split_column_from_the_right():
    assert split_column("tail (base)_score") == ("tail (base)", "score")
    assert split_column("left-ear_x") == ("left-ear", "x")
    assert split_column("back_mid_ncams") == ("back_mid", "ncams")
    assert split_column("paw_conf") is None
    assert split_column("_x") is None


def test_loads_synthetic_file(tmp_path):
    path = tmp_path / "session1.csv"
    table = write_anipose(path)
    assert moseq_xr.detect_source(path) == "anipose"
    ds = moseq_xr.load_poses(path, fps=100)
    assert ds.recording.to_numpy().tolist() == ["session1"]
    assert ds.space.to_numpy().tolist() == ["x", "y", "z"]
    assert ds.individual.to_numpy().tolist() == ["individual_0"]
    assert ds.source_software.item() == "Anipose"
    assert ds.attrs["space_unit"] == "unknown"
    assert int(ds.n_frames.item()) == 8
    rec = ds.isel(recording=0, individual=0)
    for bodypart in BODYPARTS:
        for axis in "xyz":
            np.testing.assert_array_equal(
                rec.position.sel(keypoint=bodypart, space=axis),
                table[f"{bodypart}_{axis}"],
            )
        np.testing.assert_array_equal(
            rec.confidence.sel(keypoint=bodypart), table[f"{bodypart}_score"]
        )


def test_pitfall_06_anipose_names_with_non_word_characters_survive(tmp_path):
    path = tmp_path / "names.csv"
    table = write_anipose(path)
    (record,) = read_anipose(path)
    assert "left-ear" in record.keypoints
    assert "tail (base)" in record.keypoints
    assert "back_mid" in record.keypoints
    k = record.keypoints.index("tail (base)")
    np.testing.assert_array_equal(record.position[:, 2, k, 0], table["tail (base)_z"])


def test_pitfall_07_anipose_keeps_file_order(tmp_path):
    path = tmp_path / "order.csv"
    write_anipose(path)
    ds = moseq_xr.load_poses(path, fps=30)
    assert ds.keypoint.to_numpy().tolist() == BODYPARTS
    assert sorted(BODYPARTS) != BODYPARTS


def test_confidence_nan_where_fewer_than_two_cameras(tmp_path):
    path = tmp_path / "ncams.csv"
    table = write_anipose(path, bodyparts=["nose"])
    table.loc[3, "nose_ncams"] = 1.0  # a score anipose would not write; still dropped
    table.loc[3, "nose_score"] = 0.9
    table.to_csv(path, index=False)
    (record,) = read_anipose(path)
    assert np.isnan(record.confidence[[1, 3], 0, 0]).all()
    assert record.confidence[4, 0, 0] == table.loc[4, "nose_score"]
    assert not np.isnan(record.position[3]).any()


def test_fnum_gaps_become_nan_rows(tmp_path):
    path = tmp_path / "gaps.csv"
    table = write_anipose(path, n_frames=5, fnum=[2, 3, 4, 8, 9])
    (record,) = read_anipose(path)
    assert record.frame.tolist() == [2, 3, 4, 8, 9]
    ds = moseq_xr.load_poses(path, fps=30)
    assert int(ds.n_frames.item()) == 10
    rec = ds.isel(recording=0, individual=0)
    assert rec.position.isel(time=[0, 1, 5, 6, 7]).isnull().all()
    assert (
        rec.position.sel(keypoint="Ankle", space="y").isel(time=8).item()
        == (table.loc[3, "Ankle_y"])
    )


def test_alignment_matrix_and_center_in_extra(tmp_path):
    path = tmp_path / "m.csv"
    write_anipose(path, bodyparts=["a"])
    (record,) = read_anipose(path)
    assert record.extra["M"] == np.eye(3).tolist()
    assert record.extra["center"] == [0.0, 0.0, 0.0]


def test_sniffers_tell_anipose_from_dlc(tmp_path, real_data):
    path = tmp_path / "tri.csv"
    write_anipose(path)
    assert _is_anipose(path)
    assert not _is_dlc(path)
    assert not _is_lightning_pose(path)
    dlc = real_data / "neuroinformatics-unit_movement/data/DLC_sample_poses.csv"
    assert not _is_anipose(dlc)
    kpms_csv = tmp_path / "kpms.csv"
    kpms_csv.write_text("nose_x,nose_y,nose_z,nose_conf\n1,2,3,0.5\n")
    no_z = tmp_path / "no_z.csv"
    no_z.write_text("nose_x,nose_y,nose_score,fnum\n1,2,0.5,0\n")
    for other in (kpms_csv, no_z):
        assert not _is_anipose(other)


def test_not_anipose_is_an_error_naming_the_file(tmp_path):
    path = tmp_path / "wrong.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(LoaderError, match=r"wrong\.csv.*not an anipose"):
        moseq_xr.load_poses(path, fps=30, source="anipose")


def test_bad_fnum_is_an_error(tmp_path):
    path = tmp_path / "badfnum.csv"
    write_anipose(path, n_frames=3, fnum=[0, 1, 1])
    with pytest.raises(LoaderError, match="repeats"):
        read_anipose(path)
    table = pd.read_csv(path)
    table["fnum"] = [0.0, 0.5, 2.0]
    table.to_csv(path, index=False)
    with pytest.raises(LoaderError, match="whole frame numbers"):
        read_anipose(path)


def test_directory_of_anipose_files(tmp_path):
    folder = tmp_path / "pose-3d"
    folder.mkdir()
    write_anipose(folder / "mouse1.csv", n_frames=6)
    write_anipose(folder / "mouse2.csv", n_frames=9, seed=1)
    ds = moseq_xr.load_poses(folder, fps=30)
    assert ds.recording.to_numpy().tolist() == ["mouse1", "mouse2"]
    assert ds.n_frames.to_numpy().tolist() == [6, 9]
    assert ds.keypoint.to_numpy().tolist() == BODYPARTS
