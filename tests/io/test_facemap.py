"""Facemap ``_FacemapPose.h5`` loader, on synthetic files (spec §2.7 recipe)."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import h5py
import numpy as np
import pytest

import moseq_xr
from moseq_xr.exceptions import DataQualityWarning, LoaderError, SchemaError
from moseq_xr.io.formats.facemap import _is_facemap

#: Facemap's default bodyparts in the order its model outputs them (not alphabetical).
FACEMAP_BODYPARTS = [
    "eye(back)", "eye(bottom)", "eye(front)", "eye(top)", "lowerlip", "mouth",
    "nose(bottom)", "nose(r)", "nose(tip)", "nose(top)", "nosebridge", "paw",
    "whisker(I)", "whisker(III)", "whisker(II)",
]  # fmt: skip
FILE_ORDER = ["nose(tip)", "eye(back)", "whisker(II)", "paw"]


def _write_facemap(
    path: Path,
    bodyparts: list[str],
    n_time: int = 5,
    track_order: bool = False,
    with_likelihood: bool = True,
) -> dict[str, np.ndarray]:
    """Synthesis recipe: ``Facemap/<bp>/{x,y,likelihood}`` float32[T]."""
    values = {}
    with h5py.File(path, "w") as h5:
        group = h5.create_group("Facemap", track_order=track_order)
        for k, name in enumerate(bodyparts):
            part = group.create_group(name)
            t = np.arange(n_time, dtype=np.float32)
            values[name] = np.stack(
                [10 * k + t, 100 + 10 * k + t, (t + k) / 20]
            ).astype(np.float32)
            part["x"], part["y"] = values[name][0], values[name][1]
            if with_likelihood:
                part["likelihood"] = values[name][2]
    return values


def _write_metadata(h5_path: Path, bodyparts: list) -> Path:
    metadata = {
        "batch_size": 1,
        "image_size": (256, 256),
        "bbox": np.array([0, 256, 0, 256]),
        "total_frames": np.int64(5),
        "bodyparts": bodyparts,
        "inference_speed": np.float64(123.4),
    }
    path = h5_path.with_name(h5_path.stem + "_metadata.pkl")
    path.write_bytes(pickle.dumps(metadata))
    return path


@pytest.fixture
def facemap_file(tmp_path: Path) -> Path:
    path = tmp_path / "cam1_G7c1_1_FacemapPose.h5"
    _write_facemap(path, FILE_ORDER, track_order=True)
    return path


def test_detect_source(facemap_file: Path) -> None:
    assert moseq_xr.detect_source(facemap_file) == "facemap"


def test_load_exact_values(facemap_file: Path) -> None:
    ds = moseq_xr.load_poses(facemap_file, fps=60)
    assert dict(ds.sizes) == {
        "recording": 1,
        "time": 5,
        "space": 2,
        "keypoint": 4,
        "individual": 1,
    }
    assert ds.recording.values.tolist() == ["cam1_G7c1_1_FacemapPose"]
    assert ds.individual.values.tolist() == ["individual_0"]
    assert ds.space.values.tolist() == ["x", "y"]
    assert ds.attrs["fps"] == 60.0
    assert ds.attrs["space_unit"] == "pixels"
    assert ds.source_software.values.tolist() == ["Facemap"]
    assert not bool(ds.confidence_filled.values[0])
    with h5py.File(facemap_file, "r") as h5:
        x = h5["Facemap/whisker(II)/x"][()]
        y = h5["Facemap/whisker(II)/y"][()]
        likelihood = h5["Facemap/whisker(II)/likelihood"][()]
    point = ds.sel(
        recording="cam1_G7c1_1_FacemapPose",
        individual="individual_0",
        keypoint="whisker(II)",
    )
    np.testing.assert_array_equal(point.position.sel(space="x").values, x)
    np.testing.assert_array_equal(point.position.sel(space="y").values, y)
    np.testing.assert_array_equal(point.confidence.values, likelihood)
    assert point.position.values[3, 1] == y[3]


def test_without_fps_needs_fps(facemap_file: Path) -> None:
    with pytest.raises(SchemaError, match="fps"):
        moseq_xr.load_poses(facemap_file)


def test_tracked_creation_order_is_file_order(facemap_file: Path) -> None:
    ds = moseq_xr.load_poses(facemap_file, fps=60)
    assert ds.keypoint.values.tolist() == FILE_ORDER


def test_metadata_pickle_gives_bodypart_order(tmp_path: Path) -> None:
    path = tmp_path / "video_FacemapPose.h5"
    _write_facemap(path, FACEMAP_BODYPARTS)  # h5py lists these alphabetically
    with h5py.File(path, "r") as h5:
        assert list(h5["Facemap"]) != FACEMAP_BODYPARTS
    _write_metadata(path, FACEMAP_BODYPARTS)
    ds = moseq_xr.load_poses(path, fps=60)
    assert ds.keypoint.values.tolist() == FACEMAP_BODYPARTS
    with h5py.File(path, "r") as h5:
        expected = h5["Facemap/whisker(III)/x"][()]
    np.testing.assert_array_equal(
        ds.position.sel(keypoint="whisker(III)", space="x").values[0, :, 0], expected
    )


def test_without_metadata_bodyparts_are_alphabetical(tmp_path: Path) -> None:
    path = tmp_path / "video_FacemapPose.h5"
    _write_facemap(path, FILE_ORDER)
    ds = moseq_xr.load_poses(path, fps=60)
    assert ds.keypoint.values.tolist() == sorted(FILE_ORDER)


def test_metadata_with_other_bodyparts_warns(tmp_path: Path) -> None:
    path = tmp_path / "video_FacemapPose.h5"
    _write_facemap(path, FILE_ORDER)
    _write_metadata(path, ["nose(tip)", "paw"])
    with pytest.warns(DataQualityWarning, match="differ"):
        ds = moseq_xr.load_poses(path, fps=60)
    assert ds.keypoint.values.tolist() == sorted(FILE_ORDER)


class _Exploit:
    def __reduce__(self) -> tuple:
        return (os.system, ("echo should-not-run",))


def test_metadata_pickle_cannot_run_code(tmp_path: Path) -> None:
    path = tmp_path / "video_FacemapPose.h5"
    _write_facemap(path, FILE_ORDER)
    path.with_name(path.stem + "_metadata.pkl").write_bytes(
        pickle.dumps({"bodyparts": [_Exploit()]})
    )
    with pytest.warns(DataQualityWarning, match="not allowed"):
        ds = moseq_xr.load_poses(path, fps=60)
    assert ds.keypoint.values.tolist() == sorted(FILE_ORDER)


def test_missing_likelihood_gives_no_confidence(tmp_path: Path) -> None:
    path = tmp_path / "video_FacemapPose.h5"
    _write_facemap(path, FILE_ORDER, with_likelihood=False)
    ds = moseq_xr.load_poses(path, fps=60)
    assert bool(ds.confidence_filled.values[0])
    assert np.all(ds.confidence.values == 1.0)


def test_missing_coordinate_names_file(tmp_path: Path) -> None:
    path = tmp_path / "broken_FacemapPose.h5"
    _write_facemap(path, FILE_ORDER)
    with h5py.File(path, "a") as h5:
        del h5["Facemap/paw/y"]
    with pytest.raises(LoaderError, match=r"broken_FacemapPose\.h5.*'paw'.*\['y'\]"):
        moseq_xr.load_poses(path, fps=60)


def test_bodyparts_of_different_lengths(tmp_path: Path) -> None:
    path = tmp_path / "ragged_FacemapPose.h5"
    _write_facemap(path, FILE_ORDER)
    with h5py.File(path, "a") as h5:
        for key in ("x", "y", "likelihood"):
            del h5[f"Facemap/paw/{key}"]
            h5[f"Facemap/paw/{key}"] = np.zeros(3, dtype=np.float32)
    with pytest.raises(LoaderError, match=r"ragged_FacemapPose\.h5.*different numbers"):
        moseq_xr.load_poses(path, fps=60)


def test_empty_facemap_group(tmp_path: Path) -> None:
    path = tmp_path / "empty_FacemapPose.h5"
    with h5py.File(path, "w") as h5:
        h5.create_group("Facemap")
    with pytest.raises(LoaderError, match=r"empty_FacemapPose\.h5.*no bodyparts"):
        moseq_xr.load_poses(path, fps=60)


def test_not_facemap_files_are_not_sniffed(tmp_path: Path) -> None:
    other = tmp_path / "tracks.h5"
    with h5py.File(other, "w") as h5:
        h5["tracks"] = np.zeros((1, 2, 3, 4))
        h5.create_dataset("Facemap", data=np.zeros(3))  # a dataset, not a group
    text = tmp_path / "text.h5"
    text.write_text("not hdf5")
    assert not _is_facemap(other)
    assert not _is_facemap(text)
    with pytest.raises(LoaderError, match=r"tracks\.h5.*'Facemap' group"):
        moseq_xr.load_poses(other, source="facemap", fps=60)
