"""Shared fixtures: the real-data folder, seeded generators, small datasets."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REAL_DATA = Path(
    os.environ.get(
        "MOSEQ_XR_REAL_DATA",
        Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real",
    )
)


@pytest.fixture(scope="session")
def real_data() -> Path:
    """The folder of real recordings (``../shared/data/real``).

    CI has it beside the checkout; a run without it fails under CI and skips
    elsewhere, so that a missing folder is never mistaken for a pass.
    """
    if not REAL_DATA.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"real data folder {REAL_DATA} is missing")
        pytest.skip(f"real data folder {REAL_DATA} not available")
    return REAL_DATA


@pytest.fixture(scope="session", autouse=True)
def _private_cache_home(tmp_path_factory):
    """Keep the CLI's default compile cache (``XDG_CACHE_HOME``) out of ~/.cache."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache_home")))
        yield


@pytest.fixture
def rng() -> np.random.Generator:
    """A numpy generator seeded with 42."""
    return np.random.default_rng(42)
