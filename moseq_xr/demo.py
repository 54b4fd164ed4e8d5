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

import numpy as np
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
    from moseq_xr.simulation import simulate

    state.dataset = simulate(num_recordings=2, num_frames=3000, num_syllables=8, seed=7)
    ds = state.dataset
    state.console.print(
        f"Simulated {ds.sizes['recording']} recordings of "
        f"{int(ds['n_frames'].max())} frames, {ds.sizes['keypoint']} keypoints, "
        f"{ds.attrs['fps']:g} fps, from a keypoint-SLDS with 8 true syllables "
        "(ground truth kept as true_* variables)."
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


def _fit_ar(state: DemoState) -> None:
    from moseq_xr.fitting.api import fit
    from moseq_xr.io.store import open as open_store

    tree = fit(
        open_store(state.store),
        stage="ar",
        num_iters=30,
        kappa=1e4,
        latent_dim=4,
        num_states=20,
        checkpoint=state.store,
        progress=False,
    )
    state.results["ar"] = tree
    trace = tree["trace"].to_dataset()
    state.console.print(
        f"AR stage: {int(trace.sizes['iteration'])} iterations, "
        "median syllable duration "
        f"{float(trace['median_duration_s'][-1]):.2f} s; "
        f"results saved to {state.store}"
    )


def _compare_truth(state: DemoState) -> None:
    from moseq_xr.analysis import normalized_mutual_information

    root = state.results["ar"].to_dataset()
    syllable = root["syllable"]
    truth = root["true_syllable"].transpose(*syllable.dims)
    score = normalized_mutual_information(syllable.values, truth.values)
    used = int(np.unique(syllable.values[syllable.values >= 0]).size)
    state.console.print(
        f"ds.syllable {tuple(syllable.dims)}: {used} syllables used; normalised mutual "
        f"information with the true syllables: {score:.2f}"
    )


def _export_nwb(state: DemoState) -> None:
    import datetime as dt

    from moseq_xr.export.nwb import to_nwb

    directory = state.output_dir / "nwb"
    subjects = {
        str(name): {
            "subject_id": f"sim{i}",
            "species": "Mus musculus",
            "sex": "U",
            "age": "P90D",
            "description": "simulated by moseq_xr.simulate",
        }
        for i, name in enumerate(state.results["ar"].to_dataset()["recording"].values)
    }
    files = to_nwb(
        state.results["ar"],
        directory,
        subject=subjects,
        overwrite=True,
        session_start_time=dt.datetime(2026, 1, 1, 9, 0, tzinfo=dt.UTC),
        session_description="moseq_xr demo: simulated poses and AR-stage syllables",
    )
    state.results["nwb"] = files
    state.console.print(
        f"Wrote {len(files)} NWB files (pose + syllables) to {directory}"
    )


def _statistics(state: DemoState) -> None:
    from moseq_xr.analysis import syllable_stats

    table = syllable_stats(state.results["ar"].to_dataset())
    path = state.output_dir / "syllable_stats.csv"
    table.to_csv(path, index=False)
    state.results["stats"] = table
    state.console.print(
        f"Per-recording syllable statistics ({len(table)} rows) in {path}:"
    )
    columns = [
        c
        for c in ("recording", "syllable", "frequency_instances", "count", "duration_s")
        if c in table.columns
    ]
    state.console.print(table[columns].head(8).to_string(index=False))


#: Steps run by :func:`run_demo`, in order; later features append to this list.
DEMO_STEPS: list[DemoStep] = [
    DemoStep("Simulate example poses", _generate),
    DemoStep("Save the project store", _save),
    DemoStep("Describe the store", _info),
    DemoStep("Check data quality", _quality),
    DemoStep("Fit the autoregressive (AR-HMM) stage", _fit_ar),
    DemoStep("Syllables back in the Dataset, compared with the truth", _compare_truth),
    DemoStep("Export NWB files for sharing", _export_nwb),
    DemoStep("Syllable statistics table", _statistics),
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
