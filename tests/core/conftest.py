"""Core tests run in float64, switched on per test (never globally at import)."""

import jax
import pytest


@pytest.fixture(autouse=True)
def _float64():
    with jax.enable_x64(True):
        yield


@pytest.fixture
def key():
    return jax.random.key(0)
