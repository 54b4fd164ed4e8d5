"""The example dataset and the demo (function and ``moseq-xr demo``)."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

import moseq_xr
from moseq_xr import demo
from moseq_xr.cli import main
from moseq_xr.datasets import BODY_TEMPLATE, example_poses

NAMES = [
    "nose",
    "left_ear",
    "right_ear",
    "neck",
    "left_hip",
    "right_hip",
    "tail_base",
    "tail_mid",
]


@pytest.fixture(scope="module")
def example():
    return example_poses()


def test_example_layout(example):
    moseq_xr.validate(example, deep=True)
    assert list(example.recording.values) == ["example_0", "example_1"]
    assert list(example.keypoint.values) == NAMES
    assert example.sizes["space"] == 2
    assert example.n_frames.values.tolist() == [1800, 1800]
    assert example.attrs["fps"] == 30.0
    assert example.attrs["space_unit"] == "pixels"
    assert ["tail_base", "tail_mid"] in example.attrs["skeleton"]
    assert example.attrs["provenance"][-1]["operation"] == (
        "moseq_xr.datasets.example_poses"
    )
    assert not example.confidence_filled.any()


def test_example_has_realistic_defects(example):
    position = example.position.values
    confidence = example.confidence.values
    missing = np.isnan(position).any(axis=2)
    assert 0 < missing.mean() < 0.05  # a few NaN gaps
    tracked = confidence[~np.isnan(confidence)]
    assert tracked.min() >= 0 and tracked.max() <= 1
    assert 0 < (tracked < 0.5).mean() < 0.05  # some low-confidence stretches
    report = moseq_xr.qc(example, show=False)  # and no warnings by default
    assert report.outlier_count.sum() > 0  # the planted jumps are found
    assert report.attrs["warnings"] == []


def test_example_body_is_coherent(example):
    position = example.position.isel(individual=0)
    nose = position.sel(keypoint="nose")
    tail = position.sel(keypoint="tail_base")
    length = np.hypot(*(nose - tail).transpose("space", ...).values)
    template = np.hypot(*np.subtract(BODY_TEMPLATE["nose"], BODY_TEMPLATE["tail_base"]))
    assert np.nanmedian(length) == pytest.approx(template, rel=0.2)
    centroid = position.mean("keypoint")
    step = np.hypot(*centroid.diff("time").transpose("space", ...).values)
    assert np.nanmedian(step) < 5  # moves smoothly, pixels per frame
    assert np.nanpercentile(step, 90) > 0.5  # but does move
    assert np.nanmax(position.values) < 500 and np.nanmin(position.values) > 0


def test_example_is_seeded():
    small = {"num_recordings": 1, "num_frames": 120}
    first, again = example_poses(**small, seed=3), example_poses(**small, seed=3)
    other = example_poses(**small, seed=4)
    np.testing.assert_array_equal(first.position.values, again.position.values)
    assert not np.allclose(first.position.values, other.position.values, equal_nan=True)


def test_example_fewer_keypoints():
    ds = example_poses(num_recordings=3, num_frames=60, num_keypoints=4)
    assert list(ds.keypoint.values) == NAMES[:4]
    assert ds.sizes["recording"] == 3
    assert all(a in NAMES[:4] and b in NAMES[:4] for a, b in ds.attrs["skeleton"])
    with pytest.raises(ValueError, match="num_keypoints"):
        example_poses(num_keypoints=9)
    with pytest.raises(ValueError, match="at least one recording"):
        example_poses(num_recordings=0)


def test_run_demo_writes_readable_store(tmp_path):
    buffer = io.StringIO()
    store = demo.run_demo(tmp_path, console=Console(file=buffer, width=120))
    assert store == tmp_path / "project.zarr"
    tree = moseq_xr.open(store)
    ds = moseq_xr.validate(tree, deep=True)
    assert ds.sizes["recording"] == 2
    assert ds["syllable"].dims == ("recording", "individual", "time")
    assert {"model", "trace", "pca"} <= set(tree.children)
    text = buffer.getvalue()
    assert "normalised mutual information with the true" in " ".join(text.split())
    nwb_files = sorted((tmp_path / "nwb").glob("*.nwb"))
    assert [p.name for p in nwb_files] == ["recording_0.nwb", "recording_1.nwb"]
    back = moseq_xr.load_poses(nwb_files)
    np.testing.assert_array_equal(back["syllable"].values, ds["syllable"].values)
    stats = pd.read_csv(tmp_path / "syllable_stats.csv")
    assert {"recording", "syllable", "frequency_instances"} <= set(stats.columns)
    for step in demo.DEMO_STEPS:
        assert step.title in text
    assert "Project store" in text and "Data quality" in text
    assert "No data-quality warnings." in text


def test_demo_overwrites_previous_store_and_runs_added_steps(tmp_path, monkeypatch):
    quiet = Console(file=io.StringIO())
    demo.run_demo(tmp_path, console=quiet)
    seen = []
    extra = demo.DemoStep("Extra", lambda state: seen.append(state.results["qc"]))
    monkeypatch.setattr(demo, "DEMO_STEPS", [*demo.DEMO_STEPS, extra])
    store = demo.run_demo(tmp_path, console=quiet)
    assert moseq_xr.open(store).sizes["recording"] == 2
    assert len(seen) == 1 and "nan_proportion" in seen[0]


def test_demo_command(tmp_path, capsys):
    assert main(["demo", "--output-dir", str(tmp_path / "out")]) == 0
    assert "Check data quality" in capsys.readouterr().out
    assert moseq_xr.io.is_store(tmp_path / "out" / "project.zarr")
