"""Packaging facts: dependencies, extras, and pitfall 20 of formats_and_nwb.md."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

PYPROJECT = tomllib.loads(
    (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
)


def _names(requirements: list[str]) -> set[str]:
    return {re.split(r"[\[<>=!~; ]", r, maxsplit=1)[0].lower() for r in requirements}


def test_pitfall_20_no_dependency_that_cannot_share_an_environment():
    """keypoint-moseq pins numpy<=1.26 and old jax; neuroconv 0.10 needs zarr<3;
    ndx-depth-moseq pins pynwb<3. None of them may be a dependency of ours (the
    benchmark installs keypoint-moseq into its own virtual environment)."""
    project = PYPROJECT["project"]
    every = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        every.extend(extra)
    forbidden = {
        "keypoint-moseq",
        "jax-moseq",
        "neuroconv",
        "ndx-depth-moseq",
        "movement",
    }
    assert not (_names(every) & forbidden)
    assert "zarr>=3.0" in project["dependencies"]


def test_lower_bounds_not_pins():
    project = PYPROJECT["project"]
    for requirement in project["dependencies"]:
        assert "==" not in requirement and "<" not in requirement, requirement


def test_extras_by_capability():
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert {"gpu", "sleap", "nwb", "viz", "video", "all", "test"} <= set(extras)
    assert PYPROJECT["project"]["scripts"]["moseq-xr"] == "moseq_xr.cli:main"
    assert PYPROJECT["project"]["requires-python"] == ">=3.11"
