"""Applying a fitted model to new data with the parameters frozen."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import moseq_xr
from moseq_xr.analysis import normalized_mutual_information
from moseq_xr.exceptions import FitError
from moseq_xr.fitting import api

OPTIONS = dict(latent_dim=4, num_states=20, seed=3, progress=False)


@pytest.fixture(scope="module")
def data() -> xr.Dataset:
    return moseq_xr.simulate(num_recordings=3, num_frames=2500, seed=11)


@pytest.fixture(scope="module")
def fitted(data) -> xr.DataTree:
    return api.fit(data.isel(recording=[0, 1]), num_iters=40, kappa=1e4, **OPTIONS)


@pytest.fixture(scope="module")
def applied(data, fitted) -> xr.Dataset:
    return data.isel(recording=[2]).moseq.apply(fitted, num_iters=10, progress=False)


def test_apply_labels_new_data_with_the_fitted_syllables(applied, fitted):
    truth = applied["true_syllable"].transpose(*applied["syllable"].dims).values
    assert normalized_mutual_information(applied["syllable"].values, truth) > 0.45
    fitted_labels = set(np.unique(fitted["syllable"].values)) - {-1}
    applied_labels = set(np.unique(applied["syllable"].values)) - {-1}
    assert applied_labels <= set(range(20))
    assert len(applied_labels & fitted_labels) >= len(applied_labels) - 2


def test_apply_reports_probabilities_and_ood(applied):
    probability = applied["syllable_probability"]
    assert probability.dims == ("recording", "individual", "time", "syllable_id")
    real = applied["syllable"].values >= 0
    np.testing.assert_allclose(
        probability.sum("syllable_id").values[real], 1.0, rtol=1e-9
    )
    assert (applied["max_syllable_probability"].values[real] > 0).all()
    flagged = applied["out_of_distribution"].values[real].mean()
    assert flagged < 0.1  # data from the same model: few frames unexplained
    moseq_xr.validate(applied)


def test_apply_flags_out_of_distribution_frames(data, fitted):
    odd = data.isel(recording=[2]).copy(deep=True)
    position = odd["position"].values
    rng = np.random.default_rng(0)
    position[0, 1000:1300] += rng.normal(scale=25.0, size=position[0, 1000:1300].shape)
    odd["position"] = (odd["position"].dims, position)
    applied = odd.moseq.apply(fitted, num_iters=5, progress=False)
    flags = applied["out_of_distribution"].values[0, 0]
    assert flags[1010:1290].mean() > 3 * flags[:900].mean()


def test_apply_refuses_what_is_not_a_fit(data):
    with pytest.raises(FitError, match="tree returned by fit"):
        data.moseq.apply(data, num_iters=1)


def test_fit_and_apply_from_the_command_line(data, tmp_path, capsys):
    from moseq_xr.cli import main

    moseq_xr.save(
        data.isel(recording=[0]).drop_vars(
            ["true_syllable", "true_latent_state", "true_centroid", "true_heading"]
        ),
        tmp_path / "train.zarr",
    )
    moseq_xr.save(data.isel(recording=[2]), tmp_path / "new.zarr")
    assert (
        main(
            [
                "fit",
                str(tmp_path / "train.zarr"),
                "--num-iters",
                "3",
                "--num-states",
                "20",
                "--latent-dim",
                "4",
                "--kappa",
                "1e4",
                "--devices",
                "1",
                "--memory-limit",
                "4GB",
                "--compile-cache",
                str(tmp_path / "cache"),
                "--no-progress",
            ]
        )
        == 0
    )
    compiled = sorted((tmp_path / "cache").glob("*.xla"))
    assert len(compiled) >= 3  # pose init, state init, sweep
    assert (
        main(
            [
                "apply",
                str(tmp_path / "new.zarr"),
                "--model",
                str(tmp_path / "train.zarr"),
                "-o",
                str(tmp_path / "labelled.zarr"),
                "--num-iters",
                "2",
                "--compile-cache",
                str(tmp_path / "cache"),
                "--no-progress",
            ]
        )
        == 0
    )
    assert len(list((tmp_path / "cache").glob("*.xla"))) > len(compiled)
    labelled = moseq_xr.open(tmp_path / "labelled.zarr")
    assert labelled["syllable"].dims == ("recording", "individual", "time")
    assert "syllable_probability" in labelled
    assert (
        main(
            [
                "apply",
                str(tmp_path / "new.zarr"),
                "--model",
                str(tmp_path / "new.zarr"),
                "-o",
                str(tmp_path / "x.zarr"),
            ]
        )
        == 2
    )
    assert "holds no fitted model" in capsys.readouterr().err
