"""The ``moseq-xr demo``: the whole workflow on generated example data.

The demo is a list of :class:`DemoStep` in :data:`DEMO_STEPS`, run in order on
one shared :class:`DemoState`. Later stages of the package (fitting, syllable
results, NWB export) append their own steps.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import xarray as xr
from rich.console import Console
from rich.rule import Rule

STORE_NAME = "project.zarr"


@dataclass
class DemoState:
    """What the demo steps share.

    Attributes
    ----------
    output_dir
        Folder the demo writes into.
    console
        Where steps print.
    dataset
        The pose Dataset once generated.
    store
        Path of the project store once written.
    results
        Anything later steps want to pass on (reports, models, files).
    """

    output_dir: Path
    console: Console
    dataset: xr.Dataset | None = None
    store: Path | None = None
    results: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DemoStep:
    """One step of the demo: a title and a function of the shared state."""

    title: str
    run: Callable[[DemoState], None]


def _generate(state: DemoState) -> None:
    from moseq_xr.datasets import example_poses

    state.dataset = example_poses()
    ds = state.dataset
    state.console.print(
        f"Generated {ds.sizes['recording']} recordings of "
        f"{int(ds['n_frames'].max())} frames, {ds.sizes['keypoint']} keypoints, "
        f"{ds.attrs['fps']:g} fps."
    )


def _save(state: DemoState) -> None:
    from moseq_xr.io.store import save

    state.output_dir.mkdir(parents=True, exist_ok=True)
    state.store = save(state.dataset, state.output_dir / STORE_NAME, mode="w")
    state.console.print(f"Wrote {state.store}")


def _info(state: DemoState) -> None:
    from moseq_xr.cli import print_info
    from moseq_xr.io.store import open as open_store

    stored = open_store(state.store)
    print_info(stored, state.console, path=state.store)


def _quality(state: DemoState) -> None:
    from moseq_xr.io.store import open as open_store
    from moseq_xr.qc import qc

    report = qc(open_store(state.store), show=True, console=state.console)
    state.results["qc"] = report


#: Steps run by :func:`run_demo`, in order; later features append to this list.
DEMO_STEPS: list[DemoStep] = [
    DemoStep("Generate example poses", _generate),
    DemoStep("Save the project store", _save),
    DemoStep("Describe the store", _info),
    DemoStep("Check data quality", _quality),
]


def run_demo(output_dir: str | Path = ".", console: Console | None = None) -> Path:
    """Run the demo: example poses, a project store, its summary and QC report.

    Parameters
    ----------
    output_dir
        Folder for ``project.zarr`` (a previous demo store there is replaced).
    console
        Where to print (default: standard output).

    Returns
    -------
    Path
        The project store written.
    """
    state = DemoState(output_dir=Path(output_dir), console=console or Console())
    for number, step in enumerate(DEMO_STEPS, start=1):
        state.console.print(Rule(f"{number}. {step.title}", align="left"))
        step.run(state)
    if state.store is None:
        raise RuntimeError("no demo step wrote a project store")
    return state.store
