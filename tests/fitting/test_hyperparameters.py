"""Updating the hyperparameters of a fitted model, and fit(init=tree) using them."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import xarray as xr

import moseq_xr
from moseq_xr.exceptions import FitError, HyperparameterError
from moseq_xr.fitting import api
from moseq_xr.fitting.apply import frozen_chain
from moseq_xr.fitting.hyperparameters import (
    DEFAULTS,
    HYPERPARAMETERS,
    model_hyperparameters,
    update_hyperparameters,
)


def test_defaults_are_keypoint_moseqs():
    assert DEFAULTS == {
        "alpha": 5.7,
        "gamma": 1e3,
        "kappa": 1e6,
        "S_0_scale": 0.01,
        "K_0_scale": 10.0,
        "nu_s": 5.0,
        "sigmasq_0": 0.1,
        "nu_sigma": 1e5,
        "sigmasq_loc": 0.5,
        "jitter": 1e-3,
    }


def test_a_fit_records_every_hyperparameter(trained_ar):
    values = model_hyperparameters(trained_ar["model"].attrs)
    assert values == {**DEFAULTS, "kappa": 1e4}


def test_update_returns_a_new_tree_and_leaves_the_input_alone(trained_ar):
    before = copy.deepcopy(dict(trained_ar["model"].attrs))
    root_before = copy.deepcopy(dict(trained_ar.attrs))
    updated = update_hyperparameters(trained_ar, kappa=2e3, S_0_scale=0.05, nu_s=3)
    assert updated is not trained_ar
    assert dict(trained_ar["model"].attrs) == before
    assert dict(trained_ar.attrs) == root_before
    values = model_hyperparameters(updated["model"].attrs)
    assert values == {**DEFAULTS, "kappa": 2e3, "S_0_scale": 0.05, "nu_s": 3.0}
    hypers = updated["model"].attrs["hypers"]
    assert hypers["trans"]["kappa"] == 2e3 and hypers["ar"]["S_0_scale"] == 0.05
    entry = updated.attrs["provenance"][-1]
    assert entry["operation"] == "moseq_xr.update_hyperparameters"
    assert entry["arguments"]["changed"]["kappa"] == {"from": 1e4, "to": 2e3}
    xr.testing.assert_equal(  # same parameters; only the attrs differ
        updated["model"].to_dataset(), trained_ar["model"].to_dataset()
    )
    assert moseq_xr.update_hyperparameters is update_hyperparameters


def test_unknown_names_list_the_valid_ones(trained_ar):
    with pytest.raises(
        HyperparameterError, match="unknown hyperparameter 'kapa'"
    ) as err:
        update_hyperparameters(trained_ar, kapa=1e4)
    assert all(name in str(err.value) for name in HYPERPARAMETERS)


@pytest.mark.parametrize("name", ["num_states", "nlags", "latent_dim"])
def test_names_that_change_shapes_are_refused(trained_ar, name):
    with pytest.raises(HyperparameterError, match=f"{name} cannot be updated.*shape"):
        update_hyperparameters(trained_ar, **{name: 5})


def test_derived_quantities_point_to_their_source(trained_ar):
    with pytest.raises(HyperparameterError, match="derived from S_0_scale"):
        update_hyperparameters(trained_ar, S_0=np.eye(4))


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("kappa", -1.0, "kappa must be finite and >= 0, got -1.0"),
        ("alpha", 0, "alpha must be finite and > 0"),
        ("nu_s", float("nan"), "nu_s must be finite"),
        ("jitter", float("inf"), "jitter must be finite"),
        ("gamma", "1e3", "gamma must be a real number"),
        ("kappa", [1e3, 1e4], "kappa must be a real number"),
        ("sigmasq_loc", True, "sigmasq_loc must be a real number"),
        ("K_0_scale", 1 + 2j, "K_0_scale must be a real number"),
    ],
)
def test_bad_values_name_the_argument(trained_ar, name, value, message):
    with pytest.raises(HyperparameterError, match=message):
        update_hyperparameters(trained_ar, **{name: value})


def test_zero_kappa_and_jitter_and_numpy_scalars_are_fine(trained_ar):
    updated = update_hyperparameters(
        trained_ar, kappa=0, jitter=np.float32(0), gamma=np.int64(10)
    )
    values = model_hyperparameters(updated["model"].attrs)
    assert (values["kappa"], values["jitter"], values["gamma"]) == (0.0, 0.0, 10.0)


def test_refuses_what_is_not_a_fit(train_data):
    with pytest.raises(FitError, match="tree returned by fit"):
        update_hyperparameters(train_data, kappa=1.0)


def test_apply_and_marginals_build_the_new_hyperparameters(new_data, trained_ar):
    updated = update_hyperparameters(trained_ar, kappa=123.0, S_0_scale=0.2, nu_s=7)
    hypers = frozen_chain(new_data, updated).hypers
    assert float(hypers.trans.kappa) == 123.0
    assert float(hypers.obs.nu_s) == 7.0
    np.testing.assert_allclose(np.asarray(hypers.ar.S_0), 0.2 * np.eye(4))
    np.testing.assert_allclose(np.asarray(hypers.ar.K_0), 10.0 * np.eye(13))


def test_updated_hyperparameters_survive_a_store(trained_ar, tmp_path):
    updated = update_hyperparameters(trained_ar, kappa=5e5, sigmasq_loc=2.0)
    moseq_xr.save(updated, tmp_path / "updated.zarr")
    reopened = moseq_xr.open(tmp_path / "updated.zarr")
    assert model_hyperparameters(reopened["model"].attrs) == model_hyperparameters(
        updated["model"].attrs
    )


def _continued(data, init, **options) -> xr.DataTree:
    return api.fit(data, num_iters=10, init=init, progress=False, seed=7, **options)


def test_fit_from_a_tree_uses_its_hyperparameters(train_data, trained_ar):
    sticky = _continued(train_data, update_hyperparameters(trained_ar, kappa=1e9))
    loose = _continued(train_data, update_hyperparameters(trained_ar, kappa=1.0))
    assert sticky["model"].attrs["hypers"]["trans"]["kappa"] == 1e9
    assert sticky["model"].attrs["fit"]["kappa"] == 1e9
    assert loose["model"].attrs["hypers"]["trans"]["kappa"] == 1.0
    # kappa acts on the transition matrix directly: with kappa = 1e9 every
    # self-transition is within 1e-6 of 1, with kappa = 1 they follow the data
    assert float(np.diag(sticky["model"]["pi"].values).min()) > 1 - 1e-6
    assert float(np.median(np.diag(loose["model"]["pi"].values))) < 0.9
    duration = {
        name: float(tree["trace"]["median_duration"][-3:].mean())
        for name, tree in (("sticky", sticky), ("loose", loose))
    }
    # the syllables follow (ratio 1.4-1.7 over chain seeds; switches the data
    # force strongly stay whatever kappa)
    assert duration["sticky"] > 1.2 * duration["loose"]


def test_explicit_keywords_win_over_the_tree(train_data, trained_ar):
    updated = update_hyperparameters(trained_ar, kappa=1e9, alpha=2.0)
    tree = _continued(train_data, updated, kappa=50.0)
    hypers = tree["model"].attrs["hypers"]["trans"]
    assert (hypers["kappa"], hypers["alpha"]) == (50.0, 2.0)


def test_fit_checks_hyperparameters_before_preparing(train_data):
    with pytest.raises(HyperparameterError, match="kappa must be finite and >= 0"):
        api.fit(train_data, kappa=-5.0, progress=False)
