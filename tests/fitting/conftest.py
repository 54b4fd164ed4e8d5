"""Fits shared by the tests of what can be done with a fitted model.

They are session-scoped and use the same data and options as
``test_apply.py``, so that one pytest process compiles each sampler once.
"""

from __future__ import annotations

import pytest
import xarray as xr

import moseq_xr
from moseq_xr.fitting import api

#: Options of every shared fit (20 states, 4 pose dimensions).
FIT_OPTIONS = dict(latent_dim=4, num_states=20, progress=False)


@pytest.fixture(scope="session")
def sim_data() -> xr.Dataset:
    """Three simulated recordings of 2500 frames, with ground truth."""
    return moseq_xr.simulate(num_recordings=3, num_frames=2500, seed=11)


@pytest.fixture(scope="session")
def train_data(sim_data) -> xr.Dataset:
    """Recordings 0 and 1: what the shared models are fitted to."""
    return sim_data.isel(recording=[0, 1])


@pytest.fixture(scope="session")
def new_data(sim_data) -> xr.Dataset:
    """Recording 2: data the models have not seen."""
    return sim_data.isel(recording=[2])


@pytest.fixture(scope="session")
def trained_ar(train_data) -> xr.DataTree:
    """An AR-stage fit run long enough to recover the syllables (40 sweeps)."""
    return api.fit(train_data, num_iters=40, kappa=1e4, seed=3, **FIT_OPTIONS)


@pytest.fixture(scope="session")
def poor_ar(train_data) -> xr.DataTree:
    """An AR-stage fit of one sweep: parameters close to their prior draws."""
    return api.fit(train_data, num_iters=1, kappa=1e4, seed=4, **FIT_OPTIONS)


@pytest.fixture(scope="session")
def trained_full(train_data, trained_ar) -> xr.DataTree:
    """A full-stage fit continued from ``trained_ar`` (slow tests only)."""
    return api.fit(
        train_data,
        stage="full",
        num_iters=20,
        kappa=1e4,
        init=trained_ar,
        seed=5,
        progress=False,
    )
