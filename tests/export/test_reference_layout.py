from __future__ import annotations

import h5py
import numpy as np
import pandas as pd
import pytest

import moseq_xr
from moseq_xr.analysis import merge_syllables
from moseq_xr.exceptions import StoreError
from moseq_xr.export import reference_layout, to_reference_results
from tests.analysis import RESULT_DIMS, real_results_dataset, results_dataset

REAL_DLC = (
    "DeepLabCut_DLC2NWB/examples/m3v1mp4DLC_resnet50_openfieldAug20shuffle1_30000.h5"
)


def _dataset():
    rng = np.random.default_rng(0)
    return results_dataset(
        {"a": [-1, -1, 0, 0, 1], "b": [-1, 2, 2]},
        centroid={"a": rng.normal(size=(5, 2)) * 100, "b": rng.normal(size=(3, 2))},
        heading={"a": rng.uniform(-3, 3, 5), "b": [0.1, 0.2, np.nan]},
        latent_state={"a": rng.normal(size=(5, 3)), "b": rng.normal(size=(3, 3))},
    )


def test_results_h5_layout(tmp_path):
    ds = _dataset()
    written = to_reference_results(ds, tmp_path / "model")
    assert written[0] == tmp_path / "model" / "results.h5"
    with h5py.File(written[0], "r") as file:
        assert sorted(file) == ["a", "b"]
        group = file["a"]
        assert sorted(group) == ["centroid", "heading", "latent_state", "syllable"]
        assert group["syllable"].dtype.kind == "i"
        np.testing.assert_array_equal(group["syllable"][()], [-1, -1, 0, 0, 1])
        assert (
            group["centroid"].shape == (5, 2) and group["centroid"].dtype == np.float32
        )
        assert (
            group["latent_state"].shape == (5, 3)
            and group["latent_state"].dtype == np.float32
        )
        assert group["heading"].shape == (5,) and group["heading"].dtype == np.float32
        expected = ds["centroid"].sel(recording="a").squeeze("individual").values[:5]
        np.testing.assert_allclose(group["centroid"][()], expected.astype(np.float32))
        assert file["b"]["syllable"].shape == (3,)  # padding not written
        assert np.isnan(file["b"]["heading"][2])


def test_csv_layout(tmp_path):
    ds = _dataset()
    written = to_reference_results(ds, tmp_path)
    assert written[1:] == [
        tmp_path / "results" / "a.csv",
        tmp_path / "results" / "b.csv",
    ]
    table = pd.read_csv(tmp_path / "results" / "a.csv")
    assert list(table.columns) == [
        "syllable",
        "centroid x",
        "centroid y",
        "heading",
        "latent_state 0",
        "latent_state 1",
        "latent_state 2",
    ]
    assert table["syllable"].tolist() == [-1, -1, 0, 0, 1]
    centroid = ds["centroid"].sel(recording="a").squeeze("individual").values[:5]
    np.testing.assert_allclose(
        table["centroid x"], np.round(centroid[:, 0].astype(np.float32), 4), atol=1e-4
    )
    text = (tmp_path / "results" / "a.csv").read_text().splitlines()
    decimals = [len(v.split(".")[1]) for v in text[1].split(",")[1:] if "." in v]
    assert max(decimals) <= 4
    b = pd.read_csv(tmp_path / "results" / "b.csv")
    assert len(b) == 3 and np.isnan(b["heading"][2])


def test_only_present_variables_are_written(tmp_path):
    ds = results_dataset({"a": [0, 0, 1]})
    to_reference_results(ds, tmp_path)
    with h5py.File(tmp_path / "results.h5", "r") as file:
        assert list(file["a"]) == ["syllable"]
    assert list(pd.read_csv(tmp_path / "results" / "a.csv").columns) == ["syllable"]


def test_three_dimensional_centroid_column(tmp_path):
    ds = moseq_xr.from_arrays({"r": np.zeros((4, 2, 3))}, ["p", "q"], fps=30.0)
    ds["syllable"] = (RESULT_DIMS, np.array([[[0, 0, 1, 1]]]))
    ds["centroid"] = ((*RESULT_DIMS, "space"), np.arange(12.0).reshape(1, 1, 4, 3))
    to_reference_results(ds, tmp_path)
    table = pd.read_csv(tmp_path / "results" / "r.csv")
    assert list(table.columns) == ["syllable", "centroid x", "centroid y", "centroid z"]
    assert table["centroid z"].tolist() == [2.0, 5.0, 8.0, 11.0]


def test_several_individuals_and_slashes_in_names(tmp_path):
    ds = results_dataset({"day1/mouse": [[0, 1], [1, 1]], "day2": [[2, 2], [-1, -1]]})
    to_reference_results(ds, tmp_path)
    with h5py.File(tmp_path / "results.h5", "r") as file:
        # day2's second individual has no syllable: not written
        assert sorted(file) == [
            "day1-mouse_individual_0",
            "day1-mouse_individual_1",
            "day2_individual_0",
        ]
        np.testing.assert_array_equal(
            file["day1-mouse_individual_1"]["syllable"][()], [1, 1]
        )
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == [
        "day1-mouse_individual_0.csv",
        "day1-mouse_individual_1.csv",
        "day2_individual_0.csv",
    ]


def test_name_clash_after_replacing_slash(tmp_path):
    ds = results_dataset({"a/b": [0, 1], "a-b": [1, 0]})
    with pytest.raises(StoreError, match="clash"):
        to_reference_results(ds, tmp_path)
    assert not (tmp_path / "results.h5").exists()


def test_refuses_to_overwrite_unless_asked(tmp_path):
    ds = _dataset()
    to_reference_results(ds, tmp_path)
    before = (tmp_path / "results.h5").read_bytes()
    relabelled = merge_syllables(ds, {1: 0})
    with pytest.raises(StoreError, match="overwrite=True"):
        to_reference_results(relabelled, tmp_path)
    assert (tmp_path / "results.h5").read_bytes() == before
    to_reference_results(relabelled, tmp_path, overwrite=True)
    with h5py.File(tmp_path / "results.h5", "r") as file:
        np.testing.assert_array_equal(file["a"]["syllable"][()], [-1, -1, 0, 0, 0])
    assert pd.read_csv(tmp_path / "results" / "a.csv")["syllable"].tolist() == [
        -1,
        -1,
        0,
        0,
        0,
    ]


def test_failed_write_leaves_nothing_behind(tmp_path, monkeypatch):
    def broken(path, sequences, fps):
        path.write_bytes(b"partial")
        raise RuntimeError("disk full")

    monkeypatch.setattr(reference_layout, "_write_h5", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        to_reference_results(_dataset(), tmp_path)
    assert not (tmp_path / "results.h5").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["results"]
    assert list((tmp_path / "results").iterdir()) == []


def test_nothing_to_write_is_an_error(tmp_path):
    with pytest.raises(StoreError, match="nothing to write"):
        to_reference_results(results_dataset({"a": [-1, -1]}), tmp_path)


@pytest.mark.realdata
def test_real_recording_export(real_data, tmp_path):
    path = real_data / REAL_DLC
    ds = real_results_dataset(path)
    name = str(ds["recording"].values[0])
    to_reference_results(ds, tmp_path)
    raw = pd.read_hdf(path)
    scorer = raw.columns.get_level_values(0)[0]
    x_mean = raw[scorer].xs("x", level="coords", axis=1).mean(axis=1).to_numpy()
    with h5py.File(tmp_path / "results.h5", "r") as file:
        assert list(file) == [name]
        np.testing.assert_array_equal(
            file[name]["syllable"][()], ds["syllable"].values[0, 0]
        )
        np.testing.assert_allclose(
            file[name]["centroid"][:, 0], x_mean.astype(np.float32), rtol=1e-6
        )
        assert file[name]["heading"].shape == (2330,)
    table = pd.read_csv(tmp_path / "results" / f"{name}.csv")
    assert list(table.columns) == ["syllable", "centroid x", "centroid y", "heading"]
    assert len(table) == 2330
    np.testing.assert_allclose(
        table["centroid x"], x_mean, atol=1e-4 + 1e-5 * np.abs(x_mean).max()
    )
    assert table["syllable"][:3].tolist() == [-1, -1, -1]
