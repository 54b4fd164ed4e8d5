"""Agreement measures and recovery errors against a simulation's truth."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from moseq_xr.analysis import (
    adjusted_rand_index,
    normalized_mutual_information,
    recovery_errors,
)
from moseq_xr.simulation import simulate


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ([0, 0, 1, 1], [0, 0, 1, 2], 4 / 7),  # scikit-learn's values
        ([0, 0, 0, 0], [0, 1, 2, 3], 0.0),
        ([0, 0, 1, 1, 2, 2], [1, 1, 0, 0, 0, 0], 4 / 9),
        ([3, 3, 5, 5], [1, 1, 0, 0], 1.0),
    ],
)
def test_adjusted_rand_index(a, b, expected):
    assert adjusted_rand_index(np.array(a), np.array(b)) == pytest.approx(expected)


def test_adjusted_rand_index_ignores_unlabelled_frames():
    a, b = np.array([0, 0, 1, 1, -1]), np.array([0, 0, 1, 2, 5])
    assert adjusted_rand_index(a, b) == pytest.approx(4 / 7)
    assert np.isnan(adjusted_rand_index(np.array([-1]), np.array([0])))


@pytest.fixture(scope="module")
def truth() -> xr.Dataset:
    return simulate(num_recordings=2, num_frames=[300, 250], num_dims=3, seed=1)


def _as_fit(truth: xr.Dataset) -> xr.Dataset:
    """The truth relabelled as a fit's result variables."""
    return truth.assign(
        syllable=(7 - truth["true_syllable"]).where(truth["true_syllable"] >= 0, -1),
        centroid=truth["true_centroid"],
        heading=truth["true_heading"],
        latent_state=(2.0 * truth["true_latent_state"] + 1.0).rename(
            true_latent="latent"
        ),
    ).drop_vars([name for name in truth if name.startswith("true_")])


def test_perfect_recovery(truth):
    errors = recovery_errors(_as_fit(truth), truth)
    assert errors["syllable_nmi"] == pytest.approx(1.0)
    assert errors["syllable_ari"] == pytest.approx(1.0)
    assert errors["centroid_rmse"] == pytest.approx(0.0, abs=1e-12)
    assert errors["heading_error"] == pytest.approx(0.0, abs=1e-12)
    assert errors["heading_offset"] == pytest.approx(0.0, abs=1e-12)
    assert errors["latent_r2"] == pytest.approx(1.0)


def test_a_fit_with_another_latent_dim_is_compared(truth):
    """A 3-d fit of 4-d true latents: the dims differ in size, R2 is below 1."""
    fit = _as_fit(truth)
    fewer = fit["latent_state"].isel(latent=slice(0, 3))
    fit = fit.drop_vars("latent_state").assign(latent_state=fewer)
    r2 = recovery_errors(fit, truth)["latent_r2"]
    assert 0.0 < r2 < 1.0


def test_centroid_error_is_euclidean_and_heading_offset_is_removed(truth):
    fit = _as_fit(truth)
    shift = xr.DataArray([3.0, 4.0, 0.0], coords={"space": fit["space"]})
    turned = np.angle(np.exp(1j * (fit["heading"] + 0.5)))
    fit = fit.assign(
        centroid=fit["centroid"] + shift, heading=fit["heading"].copy(data=turned)
    )
    errors = recovery_errors(fit, truth)
    assert errors["centroid_rmse"] == pytest.approx(5.0)
    assert errors["heading_offset"] == pytest.approx(0.5)
    assert errors["heading_error"] == pytest.approx(0.0, abs=1e-9)


def test_flipped_frames_are_counted(truth):
    fit = _as_fit(truth)
    flipped = fit["heading"].copy()
    flipped[..., ::4] += np.pi  # a quarter of the frames turned around
    errors = recovery_errors(fit.assign(heading=flipped), truth)
    assert errors["heading_error"] == pytest.approx(0.0, abs=1e-9)
    assert errors["heading_flips"] == pytest.approx(0.25, abs=0.01)


def test_missing_variables_give_nan_and_truth_defaults_to_the_result(truth):
    fit = _as_fit(truth).drop_vars(["centroid", "heading", "latent_state"])
    errors = recovery_errors(xr.merge([fit, truth]))
    assert errors["syllable_nmi"] == pytest.approx(1.0)
    assert np.isnan(errors["centroid_rmse"]) and np.isnan(errors["heading_error"])
    assert np.isnan(errors["latent_r2"])
    labels = truth["true_syllable"].values
    assert errors["syllable_nmi"] == pytest.approx(
        normalized_mutual_information(labels, labels)
    )
