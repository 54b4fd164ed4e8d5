"""Syllable marginals averaged over samples of a chain with frozen parameters."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import moseq_xr
from moseq_xr.analysis import normalized_mutual_information
from moseq_xr.exceptions import FitError
from moseq_xr.fitting import marginals as marginals_module
from moseq_xr.fitting.loop import FitStoppedWarning
from moseq_xr.fitting.marginals import estimate_syllable_marginals

NUM_STATES = 20
NLAGS = 3


def _truth(ds: xr.Dataset) -> np.ndarray:
    return ds["true_syllable"].transpose(*ds["syllable"].dims).values


def _nmi(ds: xr.Dataset) -> float:
    return normalized_mutual_information(ds["syllable"].values, _truth(ds))


@pytest.fixture(scope="module")
def ar_marginals(new_data, trained_ar) -> xr.Dataset:
    return estimate_syllable_marginals(new_data, trained_ar, progress=False)


@pytest.fixture(scope="module")
def ar_applied(new_data, trained_ar) -> xr.Dataset:
    return moseq_xr.apply(new_data, trained_ar, num_iters=3, progress=False)


@pytest.fixture(scope="module")
def ar_sampled(new_data, trained_ar) -> xr.Dataset:
    return estimate_syllable_marginals(
        new_data,
        trained_ar,
        burn_in_iters=2,
        num_samples=60,
        steps_per_sample=1,
        return_samples=True,
        progress=False,
    )


def _check_probabilities(out: xr.Dataset) -> None:
    """Probabilities sum to 1 where there is a syllable; NaN and -1 elsewhere."""
    probability = out["syllable_probability"]
    assert probability.dims == ("recording", "individual", "time", "syllable_id")
    assert probability.sizes["syllable_id"] == NUM_STATES
    labelled = out["syllable"].values >= 0
    total = probability.sum("syllable_id", skipna=False).values
    np.testing.assert_allclose(total[labelled], 1.0, rtol=1e-9)
    assert np.isnan(probability.values[~labelled]).all()
    first = out["syllable"].values[..., :NLAGS]
    assert (first == -1).all()  # no AR history: no syllable, not a repeated one
    argmax = probability.fillna(-1).argmax("syllable_id").values
    np.testing.assert_array_equal(out["syllable"].values[labelled], argmax[labelled])
    np.testing.assert_allclose(
        out["max_syllable_probability"].values[labelled],
        probability.max("syllable_id").values[labelled],
    )


def test_ar_stage_marginals_are_exact_and_equal_apply(ar_marginals, ar_applied):
    _check_probabilities(ar_marginals)
    np.testing.assert_allclose(
        ar_marginals["syllable_probability"].values,
        ar_applied["syllable_probability"].values,
        atol=1e-12,
    )
    description = ar_marginals["syllable_probability"].attrs["description"]
    assert "exact" in description
    entry = ar_marginals.attrs["provenance"][-1]
    assert entry["operation"] == "moseq_xr.estimate_syllable_marginals"
    assert entry["arguments"]["samples_averaged"] == 0
    moseq_xr.validate(ar_marginals)


def test_argmax_recovers_truth_at_least_as_well_as_one_apply(ar_marginals, ar_applied):
    assert _nmi(ar_marginals) > 0.45
    assert _nmi(ar_marginals) >= _nmi(ar_applied) - 0.01


def test_sampled_syllables_follow_the_marginals(ar_sampled):
    """With x fixed every sample is an exact posterior draw of z given x."""
    _check_probabilities(ar_sampled)
    samples = ar_sampled["syllable_sample"]
    assert samples.dims == ("recording", "individual", "time", "sample")
    assert samples.sizes["sample"] == 60
    labelled = ar_sampled["syllable"].values >= 0
    values = samples.values
    assert (values[~labelled] == -1).all()
    assert ((values[labelled] >= 0) & (values[labelled] < NUM_STATES)).all()
    moseq_xr.validate(ar_sampled)
    frequency = np.stack([(values == k).mean(-1) for k in range(NUM_STATES)], -1)
    probability = ar_sampled["syllable_probability"].values
    error = np.abs(frequency[labelled] - probability[labelled])
    assert error.mean() < 0.01
    # per (frame, syllable) the count is binomial(60, p): 6 sd bounds it
    sd = np.sqrt(probability[labelled] * (1 - probability[labelled]) / 60)
    assert (error <= 6 * sd + 1e-9).mean() > 0.999


def test_same_seed_same_result(new_data, trained_ar, ar_sampled):
    again = estimate_syllable_marginals(
        new_data,
        trained_ar,
        burn_in_iters=2,
        num_samples=60,
        steps_per_sample=1,
        return_samples=True,
        progress=False,
    )
    xr.testing.assert_identical(again["syllable_sample"], ar_sampled["syllable_sample"])


def test_a_bad_sweep_stops_sampling_and_keeps_what_was_drawn(
    new_data, trained_ar, monkeypatch
):
    block = marginals_module._sample_block
    calls = []

    def failing_third(*args, **kwargs):
        state, total, finite = block(*args, **kwargs)
        calls.append(1)
        return state, total, finite & (len(calls) < 3)

    monkeypatch.setattr(marginals_module, "_sample_block", failing_third)
    with pytest.warns(FitStoppedWarning, match="after 2 of 5 samples"):
        out = estimate_syllable_marginals(
            new_data,
            trained_ar,
            burn_in_iters=0,
            num_samples=5,
            steps_per_sample=1,
            return_samples=True,
            progress=False,
        )
    assert out.sizes["sample"] == 2
    assert out.attrs["provenance"][-1]["arguments"]["samples_averaged"] == 2


def test_accessor_is_the_function(new_data, trained_ar, ar_marginals):
    out = new_data.moseq.estimate_syllable_marginals(trained_ar, progress=False)
    xr.testing.assert_identical(
        out["syllable_probability"], ar_marginals["syllable_probability"]
    )
    assert moseq_xr.estimate_syllable_marginals is estimate_syllable_marginals


@pytest.mark.parametrize(
    ("option", "value"),
    [("num_samples", 0), ("steps_per_sample", 0), ("burn_in_iters", -1)],
)
def test_bad_schedule_is_refused(new_data, trained_ar, option, value):
    with pytest.raises(ValueError, match=option):
        estimate_syllable_marginals(new_data, trained_ar, **{option: value})


def test_refuses_what_is_not_a_fit(new_data):
    with pytest.raises(FitError, match="tree returned by fit"):
        estimate_syllable_marginals(new_data, new_data)


# ------------------------------------------------------------------ full stage


@pytest.mark.slow
def test_full_stage_marginals_average_the_samples(new_data, trained_full):
    """One sample is apply's posterior at that sweep; two are their mean."""
    options = dict(burn_in_iters=3, steps_per_sample=2, progress=False)
    one = estimate_syllable_marginals(new_data, trained_full, num_samples=1, **options)
    two = estimate_syllable_marginals(new_data, trained_full, num_samples=2, **options)
    after_5, after_7 = (
        moseq_xr.apply(new_data, trained_full, num_iters=n, progress=False)
        for n in (5, 7)
    )
    probability = "syllable_probability"
    np.testing.assert_allclose(
        one[probability].values, after_5[probability].values, atol=1e-6
    )
    mean = (after_5[probability] + after_7[probability]) / 2
    np.testing.assert_allclose(two[probability].values, mean.values, atol=1e-6)


@pytest.mark.slow
def test_full_stage_marginals_recover_truth(new_data, trained_full):
    out = estimate_syllable_marginals(
        new_data,
        trained_full,
        burn_in_iters=20,
        num_samples=15,
        steps_per_sample=2,
        return_samples=True,
        progress=False,
    )
    _check_probabilities(out)
    assert out.sizes["sample"] == 15
    applied = moseq_xr.apply(new_data, trained_full, num_iters=50, progress=False)
    assert _nmi(out) > 0.45
    assert _nmi(out) >= _nmi(applied) - 0.02
    # averaging over x makes the marginals less certain than one draw's
    labelled = out["syllable"].values >= 0
    averaged = out["max_syllable_probability"].values[labelled].mean()
    single = applied["max_syllable_probability"].values[labelled].mean()
    assert averaged <= single + 0.01
