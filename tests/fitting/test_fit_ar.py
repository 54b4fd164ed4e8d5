"""The AR-HMM stage end to end: recovery, compilation, checkpoints, resume."""

from __future__ import annotations

import jax
import numpy as np
import pytest
import xarray as xr

import moseq_xr
from moseq_xr.analysis import normalized_mutual_information
from moseq_xr.core import model as core
from moseq_xr.fitting import api
from moseq_xr.fitting.loop import FitStoppedWarning
from moseq_xr.simulation import simulate

FIT_OPTIONS = dict(kappa=1e4, latent_dim=4, num_states=20, seed=3, progress=False)


@pytest.fixture(scope="module")
def simulated() -> xr.Dataset:
    return simulate(num_recordings=2, num_frames=[3000, 2500], seed=11)


@pytest.fixture(scope="module")
def fitted(simulated) -> xr.DataTree:
    return api.fit(simulated, num_iters=40, **FIT_OPTIONS)


def _nmi(root: xr.Dataset) -> float:
    fitted_labels = root["syllable"].values.ravel()
    truth = root["true_syllable"].transpose(*root["syllable"].dims).values.ravel()
    both = (fitted_labels >= 0) & (truth >= 0)
    return normalized_mutual_information(truth[both], fitted_labels[both])


def test_ar_stage_recovers_true_syllables(fitted):
    root = fitted.to_dataset()
    assert _nmi(root) > 0.5
    truth = root["true_syllable"].values
    runs = [
        np.diff(np.flatnonzero(np.diff(np.r_[-2, t[t >= 0], -2]))) for t in truth[:, 0]
    ]
    true_median = np.median(np.concatenate(runs))
    fitted_median = fitted["trace"]["median_duration"].values[-1]
    assert true_median / 2 < fitted_median < true_median * 2


def test_result_tree_layout(fitted, simulated):
    root = fitted.to_dataset()
    assert root["syllable"].dims == ("recording", "individual", "time")
    assert root["syllable"].dtype == np.int32
    xr.testing.assert_identical(root["position"], simulated["position"])
    syllable = root["syllable"].values[:, 0]
    n_frames = root["n_frames"].values
    for row, length in enumerate(n_frames):
        np.testing.assert_array_equal(syllable[row, :3], -1)  # no AR history yet
        assert (syllable[row, 3:length] >= 0).all()
        assert (syllable[row, length:] == -1).all()
    model = fitted["model"].to_dataset()
    assert model["Ab"].dims == ("syllable", "latent", "regressor")
    assert model.sizes["regressor"] == 4 * 3 + 1
    np.testing.assert_allclose(model["pi"].sum("next_syllable"), 1.0)
    assert model.attrs["hypers"]["trans"]["kappa"] == 1e4
    trace = fitted["trace"].to_dataset()
    assert trace.sizes["iteration"] == 40
    assert np.isfinite(trace["log_joint"]).all()
    assert trace["log_joint"].values[-5:].mean() > trace["log_joint"].values[0]
    assert (
        "provenance" in root.attrs
        and root.attrs["provenance"][-1]["operation"] == "moseq_xr.fit"
    )


def test_syllables_relabelled_by_frequency(fitted):
    labels = fitted.to_dataset()["syllable"].values
    instances = np.zeros(20, int)
    for row in labels.reshape(-1, labels.shape[-1]):
        valid = row[row >= 0]
        starts = np.r_[True, valid[1:] != valid[:-1]]
        instances += np.bincount(valid[starts], minlength=20)
    used = instances[instances > 0]
    assert (np.diff(used) <= 0).all()
    order = fitted["model"].attrs["syllable_order"]
    assert sorted(order) == list(range(20))


def test_step_is_compiled_once(simulated):
    before = api.TRACE_COUNTS.get("ar", 0)
    api.fit(simulated.isel(recording=[0]), num_iters=3, **FIT_OPTIONS)
    assert api.TRACE_COUNTS["ar"] - before == len(core.step_parts("ar"))


def test_fit_leaves_global_precision_alone(simulated):
    x64 = jax.config.jax_enable_x64
    tree = api.fit(
        simulated.isel(recording=[1]), num_iters=2, precision="float32", **FIT_OPTIONS
    )
    assert jax.config.jax_enable_x64 == x64
    assert tree["model"]["Ab"].dtype == np.float32
    with pytest.raises(ValueError, match="precision"):
        api.fit(simulated, num_iters=1, precision="float16", **FIT_OPTIONS)


def test_float32_fit_recovers_syllables(simulated):
    tree = api.fit(simulated, num_iters=40, precision="float32", **FIT_OPTIONS)
    assert _nmi(tree.to_dataset()) > 0.5


def _interrupt_after(monkeypatch, calls: int) -> None:
    real = api._JITTED_STEP
    count = {"n": 0}

    def step(*args, **kwargs):
        count["n"] += 1
        if count["n"] > calls:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(api, "_JITTED_STEP", step)


def test_resume_continues_exactly(simulated, tmp_path, monkeypatch):
    complete = api.fit(
        simulated,
        num_iters=6,
        checkpoint=tmp_path / "a.zarr",
        checkpoint_every=2,
        **FIT_OPTIONS,
    )
    _interrupt_after(monkeypatch, 3)
    with pytest.warns(FitStoppedWarning, match="interrupted"):
        partial = api.fit(
            simulated,
            num_iters=6,
            checkpoint=tmp_path / "b.zarr",
            checkpoint_every=2,
            **FIT_OPTIONS,
        )
    assert partial["model"].attrs["iterations"] == 3
    monkeypatch.undo()
    resumed = api.resume(tmp_path / "b.zarr")
    assert resumed["model"].attrs["iterations"] == 6
    np.testing.assert_array_equal(
        resumed["syllable"].values, complete["syllable"].values
    )
    for name in ("Ab", "Q", "pi", "betas"):
        np.testing.assert_array_equal(
            resumed["model"][name].values, complete["model"][name].values
        )
    np.testing.assert_array_equal(
        resumed["trace"]["log_joint"].values, complete["trace"]["log_joint"].values
    )
    reopened = moseq_xr.open(tmp_path / "b.zarr")
    assert isinstance(reopened, xr.DataTree)
    np.testing.assert_array_equal(
        reopened["syllable"].values, complete["syllable"].values
    )


def test_nan_sweep_is_discarded_and_named(simulated, monkeypatch):
    real = api._JITTED_STEP
    count = {"n": 0}

    def poisoned(key, state, data, hypers, config):
        new_state, info = real(key, state, data, hypers, config=config)
        count["n"] += 1
        if count["n"] == 3:
            params = new_state.params._replace(Ab=new_state.params.Ab * np.nan)
            new_state = new_state._replace(params=params)
            finite = np.ones(info.finite.shape, bool)
            finite[2] = False  # leaf order: params.betas, params.pi, params.Ab, ...
            info = info._replace(finite=finite)
        return new_state, info

    monkeypatch.setattr(api, "_JITTED_STEP", poisoned)
    with pytest.warns(FitStoppedWarning, match=r"params\.Ab"):
        tree = api.fit(simulated, num_iters=5, **FIT_OPTIONS)
    assert tree["model"].attrs["iterations"] == 2
    assert "params.Ab" in tree["model"].attrs["stopped_early"]
    assert np.isfinite(tree["model"]["Ab"].values).all()


def test_saved_tree_round_trips(fitted, tmp_path):
    path = moseq_xr.save(fitted, tmp_path / "fitted.zarr")
    reopened = moseq_xr.open(path)
    xr.testing.assert_identical(reopened.to_dataset().load(), fitted.to_dataset())
    xr.testing.assert_identical(
        reopened["model"].to_dataset().load(), fitted["model"].to_dataset()
    )
    xr.testing.assert_identical(
        reopened["trace"].to_dataset().load(), fitted["trace"].to_dataset()
    )


def test_bad_options_are_refused(simulated):
    with pytest.raises(TypeError, match="unknown options"):
        api.fit(simulated, num_iters=1, kapa=3)
    with pytest.raises(ValueError, match="stage"):
        api.fit(simulated, stage="banana")
    with pytest.raises(ValueError, match="latent_dim"):
        api.fit(simulated, num_iters=1, **{**FIT_OPTIONS, "latent_dim": 99})
