"""movement netCDF loader, on movement-style Datasets written here with ``to_netcdf``.

The Datasets follow movement's data model (spec §1.1): dims
``(time, space, keypoint, individual)`` in 0.17+, ``keypoints``/``individuals``
before; attrs ``ds_type``, ``source_software``, ``fps`` (only when known) and
``time_unit``. movement itself is not needed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import moseq_xr
from moseq_xr.exceptions import (
    DataQualityWarning,
    FormatDetectionError,
    LoaderError,
    SchemaError,
)

KEYPOINTS = ["snout", "left-ear", "tail_base"]
INDIVIDUALS = ["mouse_black", "mouse_white"]


def _movement_poses(
    rng: np.random.Generator,
    n_time: int = 8,
    fps: float | None = 30.0,
    n_space: int = 2,
    legacy: bool = False,
    confidence: str = "point",
) -> xr.Dataset:
    """A poses Dataset as movement's ``from_numpy`` builds it."""
    kp_dim, ind_dim = (
        ("keypoints", "individuals") if legacy else ("keypoint", "individual")
    )
    position = rng.normal(size=(n_time, n_space, len(KEYPOINTS), len(INDIVIDUALS)))
    if confidence == "point":
        conf = (("time", kp_dim, ind_dim), rng.uniform(size=(n_time, 3, 2)))
    elif confidence == "individual":
        conf = (("time", ind_dim), rng.uniform(size=(n_time, 2)))
    else:  # movement's placeholder when the source has no confidence
        conf = (
            ("time", kp_dim, ind_dim),
            np.full((n_time, 3, 2), np.nan, dtype=np.float32),
        )
    time = np.arange(n_time) / fps if fps else np.arange(n_time)
    ds = xr.Dataset(
        {
            "position": (("time", "space", kp_dim, ind_dim), position),
            "confidence": conf,
        },
        coords={
            "time": time,
            "space": ["x", "y", "z"][:n_space],
            kp_dim: KEYPOINTS,
            ind_dim: INDIVIDUALS,
        },
        attrs={
            "ds_type": "poses",
            "source_software": "DeepLabCut",
            "time_unit": "seconds" if fps else "frames",
            "source_file": "/data/video1DLC_resnet50.h5",
        },
    )
    if fps:
        ds.attrs["fps"] = fps
    return ds


def _save(ds: xr.Dataset, path: Path) -> Path:
    ds.to_netcdf(path, engine="netcdf4")
    return path


def test_detect_source(tmp_path: Path, rng: np.random.Generator) -> None:
    path = _save(_movement_poses(rng), tmp_path / "session1.nc")
    assert moseq_xr.detect_source(path) == "movement"


def test_load_uses_file_fps_and_exact_values(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    path = _save(_movement_poses(rng), tmp_path / "session1.nc")
    ds = moseq_xr.load_poses(path)
    assert dict(ds.sizes) == {
        "recording": 1,
        "time": 8,
        "space": 2,
        "keypoint": 3,
        "individual": 2,
    }
    assert ds.recording.values.tolist() == ["session1"]
    assert ds.keypoint.values.tolist() == KEYPOINTS
    assert ds.individual.values.tolist() == INDIVIDUALS
    assert ds.attrs["fps"] == 30.0
    assert ds.source_software.values.tolist() == ["DeepLabCut"]
    assert not bool(ds.confidence_filled.values[0])
    with xr.open_dataset(path) as raw:
        expected = raw.position.values
        expected_conf = raw.confidence.values
        assert ds.position.values[0, 5, 1, 2, 1] == raw.position.values[5, 1, 2, 1]
    np.testing.assert_array_equal(ds.position.isel(recording=0).values, expected)
    np.testing.assert_array_equal(ds.confidence.isel(recording=0).values, expected_conf)


def test_fps_given_overrides_file_with_warning(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    path = _save(_movement_poses(rng), tmp_path / "session1.nc")
    assert moseq_xr.load_poses(path, fps=30).attrs["fps"] == 30.0
    with pytest.warns(DataQualityWarning, match="fps=60"):
        ds = moseq_xr.load_poses(path, fps=60)
    assert ds.time.values[1] == pytest.approx(1 / 60)


def test_legacy_plural_dims_and_frame_time(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    source = _movement_poses(rng, fps=None, legacy=True)
    path = _save(source, tmp_path / "legacy.nc")
    assert moseq_xr.detect_source(path) == "movement"
    with pytest.raises(SchemaError, match="fps"):
        moseq_xr.load_poses(path)  # no fps in the file: time is in frames
    ds = moseq_xr.load_poses(path, fps=25)
    assert ds.keypoint.values.tolist() == KEYPOINTS
    assert ds.individual.values.tolist() == INDIVIDUALS
    expected = source.position.transpose(
        "time", "space", "keypoints", "individuals"
    ).values
    np.testing.assert_array_equal(ds.position.isel(recording=0).values, expected)
    assert ds.time.values[2] == pytest.approx(2 / 25)


def test_all_nan_confidence_is_no_confidence(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    path = _save(_movement_poses(rng, confidence="none"), tmp_path / "noconf.nc")
    ds = moseq_xr.load_poses(path)
    assert bool(ds.confidence_filled.values[0])
    assert np.all(ds.confidence.values == 1.0)


def test_individual_wise_confidence_broadcast(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    source = _movement_poses(rng, confidence="individual")
    path = _save(source, tmp_path / "perind.nc")
    ds = moseq_xr.load_poses(path)
    conf = ds.confidence.isel(recording=0)
    for keypoint in KEYPOINTS:
        np.testing.assert_array_equal(
            conf.sel(keypoint=keypoint).values, source.confidence.values
        )


def test_three_d_and_space_unit(tmp_path: Path, rng: np.random.Generator) -> None:
    source = _movement_poses(rng, n_space=3)
    source["position"].attrs["space_unit"] = "mm"
    path = _save(source, tmp_path / "points3d.nc")
    ds = moseq_xr.load_poses(path)
    assert ds.space.values.tolist() == ["x", "y", "z"]
    assert ds.attrs["space_unit"] == "millimeters"
    np.testing.assert_array_equal(
        ds.position.isel(recording=0).values, source.position.values
    )


def test_unknown_space_unit_warns(tmp_path: Path, rng: np.random.Generator) -> None:
    source = _movement_poses(rng)
    source.attrs["space_unit"] = "furlongs"
    path = _save(source, tmp_path / "odd_unit.nc")
    with pytest.warns(DataQualityWarning, match="furlongs"):
        ds = moseq_xr.load_poses(path)
    assert ds.attrs["space_unit"] == "unknown"


def test_time_with_gaps_gives_nan_rows(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    source = _movement_poses(rng, n_time=4).assign_coords(
        time=np.array([0, 1, 3, 4]) / 30
    )
    path = _save(source, tmp_path / "gaps.nc")
    ds = moseq_xr.load_poses(path)
    assert ds.frame.values.tolist() == [0, 1, 2, 3, 4]
    assert np.isnan(ds.position.values[0, 2]).all()
    np.testing.assert_array_equal(ds.position.values[0, 3], source.position.values[2])


def test_irregular_seconds_become_timestamps(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    stamps = np.array([0.0, 0.031, 0.068, 0.1])
    source = _movement_poses(rng, n_time=4).assign_coords(time=stamps)
    path = _save(source, tmp_path / "jitter.nc")
    ds = moseq_xr.load_poses(path)
    np.testing.assert_allclose(ds.timestamp.values[0], stamps)
    assert ds.frame.values.tolist() == [0, 1, 2, 3]


def test_space_order_is_normalised(tmp_path: Path, rng: np.random.Generator) -> None:
    source = _movement_poses(rng).isel(space=[1, 0])
    path = _save(source, tmp_path / "yx.nc")
    ds = moseq_xr.load_poses(path)
    assert ds.space.values.tolist() == ["x", "y"]
    np.testing.assert_array_equal(
        ds.position.isel(recording=0).sel(space="x").values,
        source.position.sel(space="x").values,
    )


def test_bboxes_dataset_is_refused(tmp_path: Path, rng: np.random.Generator) -> None:
    bboxes = xr.Dataset(
        {
            "position": (("time", "space", "individual"), rng.normal(size=(4, 2, 1))),
            "shape": (("time", "space", "individual"), rng.uniform(size=(4, 2, 1))),
        },
        coords={"time": np.arange(4), "space": ["x", "y"], "individual": ["id_0"]},
        attrs={"ds_type": "bboxes"},
    )
    path = _save(bboxes, tmp_path / "boxes.nc")
    with pytest.raises(LoaderError, match=r"boxes\.nc.*bounding-box"):
        moseq_xr.load_poses(path, fps=30)


def test_other_netcdf_is_not_movement(tmp_path: Path) -> None:
    path = _save(
        xr.Dataset({"temperature": ("x", np.arange(3.0))}), tmp_path / "climate.nc"
    )
    with pytest.raises(FormatDetectionError):
        moseq_xr.detect_source(path)
    with pytest.raises(LoaderError, match=r"climate\.nc.*no 'position'"):
        moseq_xr.load_poses(path, source="movement", fps=30)


def test_non_netcdf_file_is_not_detected(tmp_path: Path) -> None:
    path = tmp_path / "notes.nc"
    path.write_text("G1 X10 Y20\n")  # a CNC program, also .nc
    with pytest.raises(FormatDetectionError):
        moseq_xr.detect_source(path)


def test_extra_dimension_names_file(tmp_path: Path, rng: np.random.Generator) -> None:
    source = _movement_poses(rng).expand_dims(view=["top", "side"])
    path = _save(source, tmp_path / "views.nc")
    with pytest.raises(LoaderError, match=r"views\.nc.*'position' has dims"):
        moseq_xr.load_poses(path)


def test_netcdf3_without_confidence(tmp_path: Path, rng: np.random.Generator) -> None:
    source = _movement_poses(rng).drop_vars("confidence")
    path = tmp_path / "classic.nc"
    source.to_netcdf(path, engine="scipy")  # netCDF-3 classic
    assert path.read_bytes()[:3] == b"CDF"
    assert moseq_xr.detect_source(path) == "movement"
    ds = moseq_xr.load_poses(path)
    assert bool(ds.confidence_filled.values[0])
    assert ds.keypoint.values.tolist() == KEYPOINTS
    np.testing.assert_array_equal(
        ds.position.isel(recording=0).values, source.position.values
    )
