"""The full keypoint-SLDS stage: recovery of syllables, centroid and heading."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from moseq_xr.analysis import normalized_mutual_information
from moseq_xr.fitting import api
from moseq_xr.simulation import simulate

OPTIONS = dict(latent_dim=4, num_states=20, seed=5, progress=False)


@pytest.fixture(scope="module")
def simulated() -> xr.Dataset:
    return simulate(num_recordings=2, num_frames=2500, seed=21, outlier_rate=0.0)


@pytest.fixture(scope="module")
def ar_fit(simulated) -> xr.DataTree:
    return api.fit(simulated, stage="ar", num_iters=40, kappa=1e5, **OPTIONS)


@pytest.fixture(scope="module")
def full_fit(simulated, ar_fit) -> xr.DataTree:
    return api.fit(
        simulated, stage="full", num_iters=25, kappa=1e4, init=ar_fit, **OPTIONS
    )


def _nmi(tree: xr.DataTree) -> float:
    root = tree.to_dataset()
    return normalized_mutual_information(
        root["syllable"].values,
        root["true_syllable"].transpose(*root["syllable"].dims).values,
    )


def test_full_stage_recovers_syllables_at_least_as_well_as_ar(ar_fit, full_fit):
    assert _nmi(ar_fit) > 0.5
    assert _nmi(full_fit) >= _nmi(ar_fit) - 0.05


def test_full_stage_recovers_centroid_and_heading(full_fit):
    root = full_fit.to_dataset()
    for name in ("centroid", "heading", "latent_state"):
        assert name in root
    assert root["centroid"].dims == ("recording", "individual", "time", "space")
    error = root["centroid"] - root["true_centroid"].transpose(*root["centroid"].dims)
    rms = float(np.sqrt((error**2).sum("space").mean()))
    assert (
        rms < 10.0
    )  # pixels, body length 60 (the model centroid is the mean keypoint)
    heading_error = np.angle(
        np.exp(1j * (root["heading"] - root["true_heading"]).values)
    )
    finite = np.isfinite(heading_error)
    assert np.median(np.abs(heading_error[finite])) < 0.3  # radians


def test_full_trace_and_model(full_fit):
    trace = full_fit["trace"].to_dataset()
    assert set(trace["stage"].values) == {"full"}
    assert np.isfinite(trace["log_joint"]).all()
    model = full_fit["model"]
    assert model.attrs["stage"] == "full"
    assert model.attrs["hypers"]["trans"]["kappa"] == 1e4
    assert "obs" in model.attrs["hypers"]


def test_both_stages_in_one_call(simulated):
    tree = api.fit(
        simulated.isel(recording=[0]),
        stage="both",
        num_iters=3,
        ar_iters=4,
        kappa=1e4,
        **OPTIONS,
    )
    stages = tree["trace"]["stage"].values.tolist()
    assert stages == ["ar"] * 4 + ["full"] * 3
    assert tree["model"].attrs["iterations"] == 7
    assert "heading" in tree.to_dataset()


def test_fix_heading_keeps_heading_at_zero(simulated):
    fixed = simulate(num_recordings=1, num_frames=1200, seed=3, fix_heading=True)
    tree = api.fit(
        fixed,
        stage="both",
        num_iters=3,
        ar_iters=3,
        kappa=1e4,
        fix_heading=True,
        **OPTIONS,
    )
    heading = tree.to_dataset()["heading"].values
    assert np.all(heading[np.isfinite(heading)] == 0.0)
