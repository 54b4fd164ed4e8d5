"""The data contract: constructor, validator and the JSON Schema stay in step."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import numpy as np
import pytest
import xarray as xr

import moseq_xr
from moseq_xr.exceptions import SchemaError
from moseq_xr.schema import RecordingData, build_dataset, describe, json_schema
from moseq_xr.schema import names as N

SCHEMA_FILE = (
    Path(__file__).resolve().parents[2] / "schemas" / "pose_dataset.schema.json"
)


@pytest.fixture
def ds(rng) -> xr.Dataset:
    return moseq_xr.from_arrays(
        {"a": rng.normal(size=(20, 3, 2)), "b": rng.normal(size=(12, 3, 2))},
        keypoints=["nose", "neck", "tail"],
        fps=25.0,
    )


def test_schema_file_is_generated_from_the_contract():
    assert json.loads(SCHEMA_FILE.read_text()) == json_schema()


def test_valid_dataset_matches_json_schema(ds):
    jsonschema.validate(describe(ds), json.loads(SCHEMA_FILE.read_text()))


def test_json_schema_rejects_a_broken_description(ds):
    summary = describe(ds)
    summary["variables"]["position"]["dims"] = ["time", "recording"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(summary, json_schema())


def test_dims_order_and_padding(ds):
    assert ds["position"].dims == N.DIMS
    assert ds["confidence"].dims == ("recording", "time", "keypoint", "individual")
    assert ds["n_frames"].values.tolist() == [20, 12]
    assert ds["position"].sel(recording="b").isel(time=slice(12, None)).isnull().all()
    np.testing.assert_allclose(ds["time"].values, np.arange(20) / 25.0)
    assert bool(ds["confidence_filled"].all())
    assert ds.sel(recording="a").position.dims == (
        "time",
        "space",
        "keypoint",
        "individual",
    )


@pytest.mark.parametrize(
    ("mutate", "rule"),
    [
        (lambda d: d.drop_vars("confidence"), "confidence"),
        (lambda d: d.assign_attrs(fps=-1.0), "fps"),
        (lambda d: d.assign_attrs(skeleton=[["nose", "ghost"]]), "skeleton"),
        (lambda d: d.assign(position=d.position.transpose("time", ...)), "position"),
        (lambda d: d.assign_coords(keypoint=["nose", "nose", "tail"]), "keypoint"),
        (lambda d: d.assign_coords(time=d.time * 2), "time"),
        (lambda d: d.assign(position=d.position.fillna(0.0)), "position"),
        (lambda d: d.assign_coords(space=["x", "z"]), "space"),
    ],
)
def test_validate_names_the_broken_rule(ds, mutate, rule):
    with pytest.raises(SchemaError) as info:
        moseq_xr.validate(mutate(ds), deep=True)
    assert info.value.rule == rule


def test_missing_fps_is_an_error_not_1hz(rng):
    record = RecordingData("r", rng.normal(size=(5, 2, 3, 1)), ["a", "b", "c"], ["m"])
    with pytest.raises(SchemaError, match="fps"):
        build_dataset([record])


def test_gaps_in_frame_index_become_nan_rows(rng):
    position = rng.normal(size=(3, 2, 2, 1))
    record = RecordingData(
        "r", position, ["a", "b"], ["m"], frame=np.array([0, 2, 5]), fps=10
    )
    ds = build_dataset([record])
    assert ds.sizes["time"] == 6
    assert ds["position"].isel(recording=0, time=[1, 3, 4]).isnull().all()
    np.testing.assert_array_equal(
        ds["position"].isel(recording=0, time=5, individual=0), position[2, :, :, 0]
    )


def test_individuals_are_united_across_recordings(rng):
    one = RecordingData("r1", rng.normal(size=(4, 2, 2, 1)), ["a", "b"], ["m1"], fps=10)
    two = RecordingData(
        "r2", rng.normal(size=(4, 2, 2, 2)), ["b", "a"], ["m2", "m1"], fps=10
    )
    ds = build_dataset([one, two])
    assert ds["individual"].values.tolist() == ["m1", "m2"]
    assert ds["position"].sel(recording="r1", individual="m2").isnull().all()
    np.testing.assert_array_equal(  # keypoint order follows the first file
        ds["position"].sel(recording="r2", individual="m1", keypoint="a").values,
        two.position[:, :, 1, 1],
    )


def test_differing_keypoints_need_a_selection(rng):
    one = RecordingData(
        "r1",
        rng.normal(size=(4, 2, 2, 1)),
        ["a", "b"],
        ["m"],
        fps=10,
        source_file="one.h5",
    )
    two = RecordingData(
        "r2",
        rng.normal(size=(4, 2, 3, 1)),
        ["a", "b", "c"],
        ["m"],
        fps=10,
        source_file="two.h5",
    )
    with pytest.raises(
        moseq_xr.exceptions.LoaderError, match=r"two\.h5.*keypoints differ"
    ):
        build_dataset([one, two])
    ds = build_dataset([one, two], keypoints=["b", "a"])
    assert ds["keypoint"].values.tolist() == ["b", "a"]


def test_fps_override_warns_on_disagreement(rng):
    record = RecordingData(
        "r", rng.normal(size=(4, 2, 2, 1)), ["a", "b"], ["m"], fps=30
    )
    with pytest.warns(moseq_xr.exceptions.DataQualityWarning, match="fps=25"):
        ds = build_dataset([record], fps=25)
    assert ds.attrs["fps"] == 25.0


def test_import_changes_no_global_state():
    import subprocess
    import sys

    code = (  # third-party imports first: numpy itself installs warning filters
        "import warnings, sys, numpy, pandas, xarray, scipy.signal, h5py, rich, tqdm, "
        "dask.array; before = list(warnings.filters); import moseq_xr; "
        "assert warnings.filters == before, 'filters changed'; "
        "assert 'jax' not in sys.modules, 'jax imported'; print('ok')"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "ok"
