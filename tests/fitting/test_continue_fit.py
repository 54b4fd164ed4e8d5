"""Continuing a fit from a saved model, on the same or on new recordings."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import moseq_xr
from moseq_xr.analysis import normalized_mutual_information
from moseq_xr.fitting import api


def _nmi(tree: xr.DataTree, other: np.ndarray | None = None) -> float:
    root = tree.to_dataset()
    truth = root["true_syllable"].transpose(*root["syllable"].dims).values
    return normalized_mutual_information(
        root["syllable"].values, truth if other is None else other
    )


@pytest.fixture(scope="module")
def other_recordings(sim_data) -> xr.Dataset:
    """Recordings 2 and 1: not the fitted data (same shapes, so no recompiling)."""
    return sim_data.isel(recording=[2, 1])


def test_on_the_same_data_the_syllables_are_kept(train_data, trained_ar):
    start = api.fit(train_data, num_iters=0, init=trained_ar, progress=False)
    np.testing.assert_array_equal(
        start.to_dataset()["syllable"].values,
        trained_ar.to_dataset()["syllable"].values,
    )


def test_on_new_recordings_syllables_come_from_the_fitted_model(
    other_recordings, trained_ar
):
    """Without sweeps the labels are the initial ones: drawn from the fitted model.

    Copying the fitted recordings' syllables by position (recording_0's onto
    recording_2) would give labels unrelated to the truth.
    """
    start = api.fit(other_recordings, num_iters=0, init=trained_ar, progress=False)
    assert start.to_dataset()["syllable"].sizes["recording"] == 2
    assert _nmi(start) > 0.4
    first = start.to_dataset().isel(recording=[0])
    truth = first["true_syllable"].transpose(*first["syllable"].dims).values
    assert normalized_mutual_information(first["syllable"].values, truth) > 0.4


def test_continuing_on_new_recordings_runs_and_keeps_the_model(
    other_recordings, trained_ar, tmp_path
):
    store = tmp_path / "continued.zarr"
    tree = api.fit(
        other_recordings, num_iters=8, init=trained_ar, progress=False, checkpoint=store
    )
    assert tree["model"].attrs["fit"]["init"] is True
    assert tree["model"].attrs["iterations"] == 8
    assert _nmi(tree) > 0.4
    np.testing.assert_array_equal(
        tree["pca"]["loadings"].values, trained_ar["pca"]["loadings"].values
    )
    assert list(tree.to_dataset()["recording"].values) == list(
        other_recordings["recording"].values
    )
    reopened = moseq_xr.open(store)
    assert reopened["model"].attrs["iterations"] == 8


def test_a_pca_taken_from_a_tree_fits_other_recordings(other_recordings, trained_ar):
    """The PCA's inherited recordings and times must not leak into the new tree."""
    pca = trained_ar["pca"].to_dataset()  # with inherited coordinates (keypoint...)
    assert "recording" in pca.coords
    tree = api.fit(
        other_recordings,
        num_iters=0,
        pca=pca,
        latent_dim=4,
        num_states=20,
        progress=False,
    )
    assert "recording" not in tree["pca"].to_dataset(inherit=False).dims
    np.testing.assert_array_equal(
        tree["pca"]["loadings"].values, trained_ar["pca"]["loadings"].values
    )


@pytest.mark.slow
def test_continuing_a_full_fit_starts_where_it_stopped(train_data, trained_full):
    start = api.fit(
        train_data, "full", num_iters=0, init=trained_full, kappa=1e4, progress=False
    )
    for name in ("latent_state", "centroid", "heading", "syllable"):
        np.testing.assert_allclose(
            start[name].values, trained_full[name].values, rtol=1e-10, atol=1e-12
        )
