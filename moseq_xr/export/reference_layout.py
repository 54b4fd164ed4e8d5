"""Model results in keypoint-MoSeq's file layout (reference §4.5).

:func:`to_reference_results` writes ``results.h5`` and ``results/{name}.csv``
exactly where and how keypoint-MoSeq writes them, so that scripts written for
its output keep working on results fitted with moseq_xr.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

import h5py
import numpy as np
import pandas as pd
import xarray as xr

from moseq_xr.analysis.tables import result_array, syllable_array
from moseq_xr.exceptions import StoreError
from moseq_xr.schema import names as N

RESULTS_FILE = "results.h5"
CSV_FOLDER = "results"
CSV_DECIMALS = 4


class _Sequence(NamedTuple):
    """Results of one recording x individual, cut to its real frames."""

    name: str
    arrays: dict[str, np.ndarray]


def _output_name(recording: str, individual: str, several_individuals: bool) -> str:
    name = f"{recording}_{individual}" if several_individuals else recording
    return name.replace("/", "-")


def _sequences(ds: xr.Dataset) -> list[_Sequence]:
    """One entry per recording x individual with at least one syllable."""
    syllable = syllable_array(ds)
    optional = {
        "latent_state": result_array(ds, "latent_state"),
        "centroid": result_array(ds, "centroid"),
        "heading": result_array(ds, "heading"),
    }
    recordings = ds[N.RECORDING].values.astype(str)
    individuals = ds[N.INDIVIDUAL].values.astype(str)
    several = len(individuals) > 1
    sequences = []
    for r, recording in enumerate(recordings):
        length = int(ds["n_frames"].values[r])
        for i, individual in enumerate(individuals):
            labels = syllable[r, i, :length]
            if not np.any(labels >= 0):
                continue
            arrays = {"syllable": labels.astype(syllable.dtype)}
            for name, values in optional.items():
                if values is not None:
                    arrays[name] = values[r, i, :length].astype(np.float32)
            sequences.append(
                _Sequence(_output_name(recording, individual, several), arrays)
            )
    return sequences


def _check_names(sequences: list[_Sequence]) -> None:
    names = [s.name for s in sequences]
    clashes = sorted({n for n in names if names.count(n) > 1})
    if clashes:
        raise StoreError(f"recording names {clashes} clash once '/' is replaced by '-'")
    if not sequences:
        raise StoreError("no recording x individual has a syllable; nothing to write")


def _csv_table(arrays: dict[str, np.ndarray], space: list[str]) -> pd.DataFrame:
    columns: dict[str, np.ndarray] = {"syllable": arrays["syllable"]}
    if "centroid" in arrays:
        for axis, label in enumerate(space):
            columns[f"centroid {label}"] = arrays["centroid"][:, axis]
    if "heading" in arrays:
        columns["heading"] = arrays["heading"]
    if "latent_state" in arrays:
        for dim in range(arrays["latent_state"].shape[1]):
            columns[f"latent_state {dim}"] = arrays["latent_state"][:, dim]
    table = pd.DataFrame(columns)
    floats = [c for c in table if c != "syllable"]
    table[floats] = table[floats].astype(np.float64).round(CSV_DECIMALS)
    return table


@contextlib.contextmanager
def _atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; move it onto ``target`` on success."""
    handle, temporary = tempfile.mkstemp(
        dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"
    )
    os.close(handle)
    try:
        yield Path(temporary)
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(temporary)
        raise


def _write_atomic(target: Path, writer: Callable[[Path], None]) -> None:
    with _atomic_path(target) as temporary:
        writer(temporary)


def _write_h5(path: Path, sequences: list[_Sequence], fps: float) -> None:
    with h5py.File(path, "w") as file:
        file.attrs["fps"] = fps
        file.attrs["missing_syllable"] = -1
        for sequence in sequences:
            group = file.create_group(sequence.name)
            for name, values in sequence.arrays.items():
                group.create_dataset(name, data=values)


def to_reference_results(
    ds: xr.Dataset, directory: str | os.PathLike, overwrite: bool = False
) -> list[Path]:
    """Write model results as keypoint-MoSeq's ``results.h5`` and per-recording CSVs.

    ``{directory}/results.h5`` holds one HDF5 group per recording (named
    ``{recording}_{individual}`` when the Dataset has several individuals),
    with datasets ``syllable`` (T,) int, and when present ``latent_state``
    (T, P), ``centroid`` (T, D) and ``heading`` (T,) as float32; T is the
    recording's ``n_frames`` (padding is not written). ``{directory}/results/
    {name}.csv`` holds the same per recording with columns ``syllable,
    centroid x, centroid y[, centroid z], heading, latent_state 0 .. P-1``,
    floats rounded to 4 decimals. ``/`` in names becomes ``-``.

    Frames without a syllable are written as ``-1``: the first ``nlags`` frames
    of each sequence, untracked and skipped frames. keypoint-MoSeq instead
    repeats the first syllable over the first ``nlags`` frames, which invents
    labels; scripts that index arrays by syllable should skip ``-1``. Float
    values of those frames are written as they are (NaN where unknown; an
    empty CSV field). Recording x individual pairs without any syllable are not
    written.

    Parameters
    ----------
    ds
        A pose Dataset with a ``syllable`` variable.
    directory
        Model folder (keypoint-MoSeq's ``{project}/{model_name}``); created if
        needed.
    overwrite
        Replace existing files. Otherwise nothing is written when any target
        file exists.

    Returns
    -------
    list of pathlib.Path
        ``results.h5`` first, then the CSV files in recording order.

    Raises
    ------
    StoreError
        When a target exists and ``overwrite`` is False, when names clash after
        replacing ``/``, or when there is nothing to write.
    """
    sequences = _sequences(ds)
    _check_names(sequences)
    directory = Path(directory)
    h5_path = directory / RESULTS_FILE
    csv_paths = [directory / CSV_FOLDER / f"{s.name}.csv" for s in sequences]
    existing = [str(p) for p in [h5_path, *csv_paths] if p.exists()]
    if existing and not overwrite:
        raise StoreError(
            f"files exist, pass overwrite=True to replace them: {existing}"
        )
    (directory / CSV_FOLDER).mkdir(parents=True, exist_ok=True)
    _write_atomic(
        h5_path, lambda path: _write_h5(path, sequences, float(ds.attrs["fps"]))
    )
    space = [str(s) for s in ds[N.SPACE].values]
    for sequence, csv_path in zip(sequences, csv_paths, strict=True):
        table = _csv_table(sequence.arrays, space)
        _write_atomic(
            csv_path, lambda path, table=table: table.to_csv(path, index=False)
        )
    return [h5_path, *csv_paths]
