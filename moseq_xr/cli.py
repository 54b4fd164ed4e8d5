"""The ``moseq-xr`` command line.

Each subcommand is a :class:`Command` in :data:`COMMANDS`: a function that adds
its arguments to a parser and a function that runs it. Later subcommands (fit,
apply, kappa-scan, export-nwb) are added the same way.

Errors caused by bad input end the program with exit status 2 and one line on
standard error; ``moseq-xr --debug ...`` prints the traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import os
import platform
import sys
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from rich.console import Console
from rich.table import Table
from rich.text import Text

from moseq_xr._version import __version__
from moseq_xr.exceptions import MoseqXrError, MoseqXrWarning, SchemaError
from moseq_xr.schema import names as N

PROG = "moseq-xr"

#: Exit status for bad input (the same as argparse uses for bad arguments).
EXIT_BAD_INPUT = 2

#: Errors reported as one line (exit status 2) rather than a traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (
    MoseqXrError,
    FileNotFoundError,
    ValueError,
)

#: Packages listed by ``doctor``: (distribution name, what it is for).
PACKAGES: tuple[tuple[str, str], ...] = (
    ("numpy", "required"),
    ("scipy", "required"),
    ("pandas", "required"),
    ("xarray", "required"),
    ("dask", "required"),
    ("zarr", "required"),
    ("h5py", "required"),
    ("tables", "required"),
    ("jax", "required"),
    ("jaxlib", "required"),
    ("tqdm", "required"),
    ("rich", "required"),
    ("sleap-io", "optional [sleap]"),
    ("pynwb", "optional [nwb]"),
    ("ndx-pose", "optional [nwb]"),
    ("ndx-ethogram", "optional [nwb]"),
    ("nwbinspector", "optional [nwb]"),
    ("matplotlib", "optional [viz]"),
    ("holoviews", "optional [viz]"),
    ("bokeh", "optional [viz]"),
    ("panel", "optional [viz]"),
    ("imageio", "optional [video]"),
    ("imageio-ffmpeg", "optional [video]"),
    ("distributed", "optional [distributed]"),
)


@dataclass(frozen=True)
class Command:
    """One subcommand of ``moseq-xr``.

    Attributes
    ----------
    help
        One line shown by ``moseq-xr --help``.
    add_arguments
        Adds the subcommand's arguments to its parser.
    run
        ``run(args, console) -> exit status``.
    """

    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace, Console], int]


# --------------------------------------------------------------------- helpers


def _open_project(path: str | Path) -> tuple[xr.Dataset, list[str]]:
    """Open a project store: its pose Dataset and the names of its child groups."""
    from moseq_xr.io.store import open as open_store

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such project store")
    data = open_store(path)
    if isinstance(data, xr.DataTree):
        return data.to_dataset(inherit=False), sorted(data.children)
    return data, []


def _key_value_table(rows: list[tuple[str, str]]) -> Table:
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for key, value in rows:
        table.add_row(Text(key), Text(value))
    return table


def _fmt_names(values: Any) -> str:
    return ", ".join(str(v) for v in values)


# ------------------------------------------------------------------------ info


def _recordings_table(ds: xr.Dataset) -> Table:
    fps = float(ds.attrs["fps"])
    table = Table(title="Recordings", title_justify="left")
    for header in ("recording", "frames", "duration", "software", "source file"):
        justify = "right" if header in ("frames", "duration") else "left"
        table.add_column(header, justify=justify, overflow="fold")
    for rec, name in enumerate(ds[N.RECORDING].values):
        n_frames = int(ds["n_frames"].values[rec])
        table.add_row(
            Text(str(name)),
            str(n_frames),
            f"{n_frames / fps:.1f} s",
            Text(str(ds["source_software"].values[rec]) or "-"),
            Text(str(ds["source_file"].values[rec]) or "-"),
        )
    return table


def _provenance_tail(ds: xr.Dataset, count: int = 5) -> list[str]:
    entries = list(ds.attrs.get("provenance", []))[-count:]
    return [
        f"{entry.get('time', '?')}  {entry.get('operation', '?')}  "
        f"(moseq_xr {entry.get('version', '?')})"
        for entry in entries
    ]


def _summary_rows(ds: xr.Dataset, groups: list[str]) -> list[tuple[str, str]]:
    n_frames = ds["n_frames"].values
    fps = float(ds.attrs["fps"])
    software = sorted({str(s) for s in ds["source_software"].values if str(s)})
    return [
        ("recordings", str(ds.sizes[N.RECORDING])),
        ("frames", f"{int(n_frames.sum())} in all ({n_frames.sum() / fps:.1f} s)"),
        ("fps", f"{fps:g}"),
        (
            "space",
            f"{_fmt_names(ds[N.SPACE].values)} ({ds.attrs.get('space_unit', '?')})",
        ),
        ("keypoints", f"{ds.sizes[N.KEYPOINT]}: {_fmt_names(ds[N.KEYPOINT].values)}"),
        (
            "individuals",
            f"{ds.sizes[N.INDIVIDUAL]}: {_fmt_names(ds[N.INDIVIDUAL].values)}",
        ),
        ("source software", _fmt_names(software) or "-"),
        ("variables", _fmt_names(ds.data_vars)),
        ("groups", _fmt_names(groups) or "-"),
        ("skeleton", f"{len(ds.attrs.get('skeleton') or [])} edges"),
        ("schema", str(ds.attrs.get("schema_version", "?"))),
    ]


def print_info(
    ds: xr.Dataset, console: Console, path: str | Path | None = None, groups: Any = ()
) -> None:
    """Print a summary of a pose Dataset (what ``moseq-xr info`` shows).

    Parameters
    ----------
    ds
        A pose Dataset.
    console
        Where to print.
    path
        Store it was read from, shown in the heading.
    groups
        Child groups of the store (model, trace, ...).
    """
    console.print(
        Text(f"Project store {path}" if path else "Pose dataset", style="bold")
    )
    console.print(_key_value_table(_summary_rows(ds, list(groups))))
    console.print(_recordings_table(ds))
    console.print(Text("Provenance (latest last):", style="bold"))
    for line in _provenance_tail(ds):
        console.print(Text(f"  {line}"))


def _add_info_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "store", help="project store (.zarr) written by 'moseq-xr load'"
    )


def cmd_info(args: argparse.Namespace, console: Console) -> int:
    """Describe a project store."""
    ds, groups = _open_project(args.store)
    print_info(ds, console, path=args.store, groups=groups)
    return 0


# ------------------------------------------------------------------------ load


def _add_load_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", help="pose files, folders or glob patterns")
    parser.add_argument(
        "--source", default="auto", help="file format (default: detect; see 'doctor')"
    )
    parser.add_argument(
        "--fps", type=float, help="frames per second, if the files lack it"
    )
    parser.add_argument(
        "--keypoints", nargs="+", help="keep these keypoints, in this order"
    )
    parser.add_argument("--individuals", nargs="+", help="keep these individuals")
    parser.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="format option passed to the loader, e.g. "
        'keypoint_names=\'["nose","tail"]\' or skeleton_file=skel.mat '
        "(VALUE is read as JSON when it parses, else as text)",
    )
    parser.add_argument("-o", "--output", required=True, help="project store to write")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--append", action="store_true", help="add to an existing store")
    mode.add_argument(
        "--overwrite", action="store_true", help="replace an existing store"
    )


def _loader_options(pairs: list[str]) -> dict[str, Any]:
    """Turn ``["name=value", ...]`` into ``{name: value}``.

    Values are parsed as JSON when possible, else kept as text.
    """
    import json

    options: dict[str, Any] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"--option {pair!r}: expected NAME=VALUE")
        try:
            options[name.strip()] = json.loads(value)
        except ValueError:
            options[name.strip()] = value
    return options


def _check_load_arguments(args: argparse.Namespace) -> None:
    from moseq_xr.io.registry import supported_sources

    if args.source != "auto" and args.source not in supported_sources():
        raise ValueError(
            f"--source {args.source!r} is not a known format; choose one of "
            f"{sorted(supported_sources())} or 'auto'"
        )
    if args.fps is not None and not args.fps > 0:
        raise ValueError(f"--fps must be a positive number, got {args.fps}")
    output = Path(args.output)
    if output.exists() and not (args.append or args.overwrite):
        raise ValueError(
            f"{output}: already exists; pass --append to add recordings or "
            "--overwrite to replace it"
        )


def cmd_load(args: argparse.Namespace, console: Console) -> int:
    """Read pose files into a project store."""
    from moseq_xr.io import load_poses, save

    _check_load_arguments(args)
    try:
        ds = load_poses(
            args.paths,
            source=args.source,
            fps=args.fps,
            keypoints=args.keypoints,
            individuals=args.individuals,
            **_loader_options(args.option),
        )
    except SchemaError as error:
        if error.rule == "fps" and args.fps is None:
            message = str(error).removeprefix("[fps] ")
            raise SchemaError("fps", f"{message} (command line: --fps)") from error
        raise
    save(ds, args.output, mode="a" if args.append else "w")
    n_frames = int(ds["n_frames"].sum())
    console.print(
        Text(
            f"{'Added' if args.append else 'Wrote'} {ds.sizes[N.RECORDING]} "
            f"recording(s), {n_frames} frames, {ds.sizes[N.KEYPOINT]} keypoints "
            f"to {args.output}"
        )
    )
    return 0


# -------------------------------------------------------------------------- qc


#: qc thresholds: (option, type, default, help); defaults are those of moseq_xr.qc.
QC_OPTIONS: tuple[tuple[str, type, float | None, str], ...] = (
    ("--conf-threshold", float, 0.5, "confidence below this is low"),
    ("--outlier-scale", float, 6.0, "MADs from the body medoid that make an outlier"),
    ("--min-frames", int, None, "shortest recording worth modelling (default 10 s)"),
    ("--nan-warn", float, 0.5, "warn above this share of missing frames"),
    ("--low-conf-warn", float, 0.5, "warn above this share of low-confidence frames"),
    ("--outlier-warn", float, 0.05, "warn above this share of outlier frames"),
)


def _add_qc_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("store", help="project store (.zarr)")
    for option, kind, default, text in QC_OPTIONS:
        shown = "" if default is None else f" (default {default:g})"
        parser.add_argument(option, type=kind, default=default, help=text + shown)
    parser.add_argument(
        "--strict",
        action="store_true",
        help="exit with status 1 when there are warnings",
    )


def cmd_qc(args: argparse.Namespace, console: Console) -> int:
    """Print the data-quality report of a project store."""
    from moseq_xr.exceptions import DataQualityWarning
    from moseq_xr.qc import qc

    ds, _ = _open_project(args.store)
    names = [option.removeprefix("--").replace("-", "_") for option, *_ in QC_OPTIONS]
    thresholds = {name: getattr(args, name) for name in names}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataQualityWarning)  # the table lists them
        report = qc(ds, show=True, console=console, **thresholds)
    return 1 if args.strict and report.attrs["warnings"] else 0


# ---------------------------------------------------------------------- doctor


def _package_version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _jax_rows() -> list[tuple[str, str]]:
    """JAX backend, devices and x64 setting, read without changing the config."""
    try:
        jax = importlib.import_module("jax")
    except ImportError as error:
        return [("jax", f"cannot be imported: {error}")]
    try:
        devices = ", ".join(
            f"{d.platform}:{d.id} ({d.device_kind})" for d in jax.devices()
        )
        backend = jax.default_backend()
    except Exception as error:  # a diagnostic must never crash
        devices, backend = f"error: {error}", "unavailable"
    return [
        ("backend", backend),
        ("devices", devices),
        ("x64 enabled", str(bool(jax.config.jax_enable_x64))),
        ("JAX_PLATFORMS", os.environ.get("JAX_PLATFORMS", "(not set)")),
    ]


def _meminfo() -> dict[str, int]:
    """Total and available memory in bytes."""
    try:
        fields = {}
        for line in Path("/proc/meminfo").read_text().splitlines():
            key, _, value = line.partition(":")
            fields[key] = int(value.split()[0]) * 1024
        return {"total": fields["MemTotal"], "available": fields["MemAvailable"]}
    except (OSError, KeyError, ValueError, IndexError):
        pass
    try:
        page = os.sysconf("SC_PAGE_SIZE")
        return {
            "total": page * os.sysconf("SC_PHYS_PAGES"),
            "available": page * os.sysconf("SC_AVPHYS_PAGES"),
        }
    except (OSError, ValueError, AttributeError):
        return {}


def _system_rows() -> list[tuple[str, str]]:
    memory = _meminfo()
    gib = 2**30
    memory_text = "unknown"
    if memory:
        memory_text = (
            f"{memory['total'] / gib:.1f} GiB total, "
            f"{memory['available'] / gib:.1f} GiB available"
        )
    return [
        ("moseq_xr", __version__),
        ("python", f"{platform.python_version()} ({sys.executable})"),
        ("platform", platform.platform()),
        ("cpus", str(os.cpu_count())),
        ("memory", memory_text),
    ]


def _formats_table() -> Table:
    from moseq_xr.io.registry import supported_sources

    table = Table(title="Supported formats", title_justify="left")
    for header in ("source", "file endings", "description"):
        table.add_column(header, overflow="fold")
    for name, loader in supported_sources().items():
        table.add_row(
            Text(name), Text(" ".join(loader.suffixes)), Text(loader.description)
        )
    return table


def _add_doctor_arguments(parser: argparse.ArgumentParser) -> None:
    del parser  # no arguments


def cmd_doctor(args: argparse.Namespace, console: Console) -> int:
    """Print versions, the JAX set-up, memory and the supported formats."""
    del args
    console.print(Text("System", style="bold"))
    console.print(_key_value_table(_system_rows()))
    console.print(Text("Packages", style="bold"))
    console.print(
        _key_value_table(
            [(name, f"{_package_version(name)}  ({kind})") for name, kind in PACKAGES]
        )
    )
    console.print(Text("JAX", style="bold"))
    console.print(_key_value_table(_jax_rows()))
    formats = _formats_table()
    console.print(formats if formats.row_count else Text("No formats registered."))
    return 0


# ------------------------------------------------------------------------- fit


def _add_fit_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("store", help="project store (.zarr) holding the pose data")
    parser.add_argument(
        "--stage",
        default="ar",
        choices=("ar", "full", "both"),
        help="model stage (default: ar)",
    )
    parser.add_argument(
        "--ar-iters", type=int, default=50, help="AR sweeps of --stage both"
    )
    parser.add_argument("--num-iters", type=int, default=50, help="Gibbs sweeps")
    parser.add_argument("--kappa", type=float, default=1e6, help="stickiness")
    parser.add_argument("--latent-dim", type=int, help="pose latent dimension")
    parser.add_argument("--num-states", type=int, default=100, help="max syllables")
    parser.add_argument("--nlags", type=int, default=3, help="AR order")
    parser.add_argument("--seed", type=int, default=0, help="seed of the chain")
    parser.add_argument("--checkpoint-every", type=int, default=10, help="sweeps")
    parser.add_argument(
        "--precision", default="float64", choices=("float64", "float32")
    )
    parser.add_argument("--anterior", nargs="+", help="anterior keypoint(s)")
    parser.add_argument("--posterior", nargs="+", help="posterior keypoint(s)")
    parser.add_argument("--use-keypoints", nargs="+", help="keypoints to model")
    parser.add_argument("--fix-heading", action="store_true", help="head-fixed animal")
    parser.add_argument("--outlier-removal", action="store_true", help="drop outliers")
    parser.add_argument(
        "--parallel",
        action="store_true",
        help="associative-scan message passing (GPUs)",
    )
    parser.add_argument(
        "--devices", type=int, help="devices to split the rows over (default: all)"
    )
    parser.add_argument(
        "--memory-limit", help="memory per device, e.g. 8GB (default: 80%% of free)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_compile_cache_arguments(parser)


def _add_compile_cache_arguments(parser: argparse.ArgumentParser) -> None:
    cache = parser.add_mutually_exclusive_group()
    cache.add_argument(
        "--compile-cache",
        metavar="DIR",
        help="keep the compiled samplers in DIR between runs "
        "(default: ~/.cache/moseq_xr/xla)",
    )
    cache.add_argument(
        "--no-compile-cache",
        action="store_true",
        help="compile afresh and keep nothing on disk",
    )


def _compile_cache(args: argparse.Namespace) -> str | bool:
    """The ``compile_cache=`` of a command: on by default on the command line."""
    if args.no_compile_cache:
        return False
    return args.compile_cache or True


def _fit_summary(tree: xr.DataTree, console: Console, store: str) -> None:
    trace = tree["trace"].to_dataset()
    model = tree["model"]
    syllable = tree.to_dataset()["syllable"].values
    used = len(np.unique(syllable[syllable >= 0]))
    rows = [
        ("iterations", str(model.attrs["iterations"])),
        ("stopped early", model.attrs["stopped_early"] or "no"),
        ("syllables used", str(used)),
        (
            "median duration",
            f"{float(trace['median_duration_s'][-1]):.3f} s"
            if trace.sizes["iteration"]
            else "-",
        ),
        (
            "log joint",
            f"{float(trace['log_joint'][-1]):.6g}" if trace.sizes["iteration"] else "-",
        ),
        ("saved to", store),
    ]
    console.print(_key_value_table(rows))


def cmd_fit(args: argparse.Namespace, console: Console) -> int:
    """Fit keypoint-MoSeq to the pose data of a project store."""
    from moseq_xr.fitting.api import fit

    ds, _ = _open_project(args.store)
    options = {
        name: getattr(args, name)
        for name in ("anterior", "posterior", "use_keypoints")
        if getattr(args, name) is not None
    }
    tree = fit(
        ds,
        stage=args.stage,
        num_iters=args.num_iters,
        kappa=args.kappa,
        latent_dim=args.latent_dim,
        num_states=args.num_states,
        nlags=args.nlags,
        seed=args.seed,
        checkpoint=args.store,
        checkpoint_every=args.checkpoint_every,
        precision=args.precision,
        parallel_message_passing=args.parallel,
        progress=not args.no_progress,
        devices=args.devices,
        memory_limit=args.memory_limit,
        compile_cache=_compile_cache(args),
        fix_heading=args.fix_heading,
        outlier_removal=args.outlier_removal,
        **options,
    )
    _fit_summary(tree, console, args.store)
    return 0


def _add_apply_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("store", help="project store with the pose data to label")
    parser.add_argument(
        "--model", required=True, help="project store of a fitted model"
    )
    parser.add_argument("-o", "--output", required=True, help="project store to write")
    parser.add_argument(
        "--num-iters", type=int, default=50, help="sweeps of the latents"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the sweeps")
    parser.add_argument(
        "--recordings-per-chunk",
        type=int,
        help="recordings labelled together (default: one chunk per stored chunk)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_compile_cache_arguments(parser)


def _unsure_share(labelled: xr.Dataset) -> float:
    """Share of labelled frames with no syllable above 50 % (computed lazily)."""
    unsure = labelled["max_syllable_probability"] < 0.5
    return float(unsure.where(labelled["syllable"] >= 0).mean().compute())


def cmd_apply(args: argparse.Namespace, console: Console) -> int:
    """Label the pose data of a store with a fitted model; write the result.

    The store is read and labelled chunk by chunk and written beside the output
    path, then swapped in (see :func:`moseq_xr.save`).
    """
    from moseq_xr.fitting.apply import apply
    from moseq_xr.io.store import open as open_store
    from moseq_xr.io.store import save

    ds, _ = _open_project(args.store)
    fitted = open_store(args.model)
    if not isinstance(fitted, xr.DataTree) or "model" not in fitted.children:
        raise ValueError(
            f"{args.model}: holds no fitted model (run 'moseq-xr fit' first)"
        )
    if (
        Path(args.output).exists()
        and Path(args.output).resolve() != Path(args.store).resolve()
    ):
        raise ValueError(f"{args.output}: already exists")
    labelled = apply(
        ds.drop_vars([v for v in N.RESULT_VARS if v in ds]),
        fitted,
        num_iters=args.num_iters,
        seed=args.seed,
        progress=not args.no_progress,
        recordings_per_chunk=args.recordings_per_chunk,
        compile_cache=_compile_cache(args),
    )
    save(labelled, args.output)
    unsure = _unsure_share(open_store(args.output))
    console.print(
        Text(
            f"Labelled {labelled.sizes[N.RECORDING]} recording(s); "
            f"{unsure:.1%} of frames with no syllable above 50 % probability; "
            f"wrote {args.output}"
        )
    )
    return 0


def _add_kappa_scan_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("store", help="project store holding the pose data")
    parser.add_argument(
        "--kappas", type=float, nargs="+", default=[1e3, 1e4, 1e5, 1e6, 1e7]
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--num-iters", type=int, default=50, help="sweeps per chain")
    parser.add_argument("--target-duration", type=float, default=0.4, help="seconds")
    parser.add_argument("--stage", default="ar", choices=("ar", "full"))
    parser.add_argument("--latent-dim", type=int, help="pose latent dimension")
    parser.add_argument("--num-states", type=int, default=100, help="max syllables")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def cmd_kappa_scan(args: argparse.Namespace, console: Console) -> int:
    """Run a kappa x seed scan and print the median durations."""
    from moseq_xr.fitting.selection import kappa_scan

    ds, _ = _open_project(args.store)
    scan = kappa_scan(
        ds,
        args.kappas,
        args.seeds,
        args.num_iters,
        args.target_duration,
        stage=args.stage,
        latent_dim=args.latent_dim,
        num_states=args.num_states,
        progress=not args.no_progress,
    )
    rows = [
        (f"kappa {k:g}", f"{d:.3f} s")
        for k, d in zip(
            scan["kappa"].values, scan["final_duration_s"].values, strict=True
        )
    ]
    rows.append(
        (
            "best kappa",
            f"{scan.attrs['best_kappa']:g} (target {args.target_duration:g} s)",
        )
    )
    console.print(_key_value_table(rows))
    return 0


def _add_eml_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "stores", nargs="+", help="project stores of fits of the same data (2 or more)"
    )


def _eml_table(scores: xr.Dataset) -> Table:
    table = Table(box=None, pad_edge=False)
    for column in ("model", "stage", "EML score", "standard error", ""):
        table.add_column(
            column, justify="left" if column in ("model", "stage") else "right"
        )
    best = scores.attrs["best_model"]
    for name in scores.sortby("eml_score", ascending=False)["model"].values:
        row = scores.sel(model=name)
        table.add_row(
            Text(str(name)),
            str(row["stage"].values),
            f"{float(row['eml_score']):.6g}",
            f"{float(row['eml_standard_error']):.3g}",
            "best" if name == best else "",
        )
    return table


def cmd_eml(args: argparse.Namespace, console: Console) -> int:
    """Compare the fitted models of several stores by expected marginal likelihood."""
    from moseq_xr.fitting.comparison import expected_marginal_likelihoods

    scores = expected_marginal_likelihoods(args.stores)
    console.print(_eml_table(scores))
    return 0


def _add_resume_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("store", help="project store with an interrupted fit")
    parser.add_argument("--num-iters", type=int, help="new target number of sweeps")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_compile_cache_arguments(parser)


def cmd_resume(args: argparse.Namespace, console: Console) -> int:
    """Continue a fit from its last checkpoint."""
    from moseq_xr.fitting.api import resume

    tree = resume(
        args.store,
        args.num_iters,
        progress=not args.no_progress,
        compile_cache=_compile_cache(args),
    )
    _fit_summary(tree, console, args.store)
    return 0


# ------------------------------------------------------------------------ demo


def _add_demo_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output-dir", default=".", help="where to write project.zarr")


def cmd_demo(args: argparse.Namespace, console: Console) -> int:
    """Run the demo: example data, a project store, info and QC."""
    from moseq_xr.demo import run_demo

    run_demo(args.output_dir, console=console)
    return 0


def _export_nwb() -> tuple[Callable[..., None], Callable[..., int]]:
    """The export-nwb argument builder and handler (pynwb is imported lazily)."""
    from moseq_xr.export.nwb import add_export_nwb_arguments, export_nwb_command

    return add_export_nwb_arguments, export_nwb_command


# ---------------------------------------------------------------------- parser

COMMANDS: dict[str, Command] = {
    "load": Command(
        "read pose files into a project store", _add_load_arguments, cmd_load
    ),
    "info": Command("describe a project store", _add_info_arguments, cmd_info),
    "qc": Command("data-quality report of a project store", _add_qc_arguments, cmd_qc),
    "doctor": Command(
        "versions, JAX devices, memory and formats", _add_doctor_arguments, cmd_doctor
    ),
    "fit": Command(
        "fit keypoint-MoSeq to a project store", _add_fit_arguments, cmd_fit
    ),
    "resume": Command("continue an interrupted fit", _add_resume_arguments, cmd_resume),
    "apply": Command(
        "label a store with a fitted model", _add_apply_arguments, cmd_apply
    ),
    "kappa-scan": Command(
        "median syllable duration for several kappas",
        _add_kappa_scan_arguments,
        cmd_kappa_scan,
    ),
    "eml": Command(
        "compare fitted models by expected marginal likelihood",
        _add_eml_arguments,
        cmd_eml,
    ),
    "export-nwb": Command(
        "write one NWB file per recording (poses and model results)",
        lambda parser: _export_nwb()[0](parser),
        lambda args, console: _export_nwb()[1](args, console),
    ),
    "demo": Command(
        "run the demo on generated example data", _add_demo_arguments, cmd_demo
    ),
}


def build_parser() -> argparse.ArgumentParser:
    """Build the ``moseq-xr`` argument parser from :data:`COMMANDS`.

    Returns
    -------
    argparse.ArgumentParser
        With one subparser per command; ``args.command`` names the one chosen.
    """
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Behavioural syllables from pose tracking, on xarray data.",
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {__version__}"
    )
    parser.add_argument(
        "--debug", action="store_true", help="show the full traceback of errors"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, command in COMMANDS.items():
        sub = subparsers.add_parser(name, help=command.help, description=command.help)
        command.add_arguments(sub)
    return parser


def _make_console() -> Console:
    """Console on standard output; 120 columns when it is not a terminal."""
    interactive = sys.stdout.isatty()
    return Console(width=None if interactive else 120, soft_wrap=False)


def _warning_printer(original: Callable[..., None]) -> Callable[..., None]:
    """``warnings.showwarning`` that prints our own warnings as one line."""

    def show(
        message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any
    ) -> None:
        if issubclass(category, MoseqXrWarning):
            print(f"{PROG}: warning: {message}", file=sys.stderr)
        else:
            original(message, category, *args, **kwargs)

    return show


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    if isinstance(error, FileNotFoundError) and error.filename:
        text = f"{error.filename}: {error.strerror or 'not found'}"
    return f"{PROG}: error: {text or type(error).__name__}"


def main(argv: list[str] | None = None) -> int:
    """Run the ``moseq-xr`` command line.

    Parameters
    ----------
    argv
        Arguments without the program name (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit status: 0 success, 1 failed check (``qc --strict``), 2 bad input.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_request:  # --help, --version or bad arguments
        return int(exit_request.code or 0)
    command = COMMANDS[args.command]
    with warnings.catch_warnings():
        warnings.simplefilter("always", MoseqXrWarning)
        warnings.showwarning = _warning_printer(warnings.showwarning)
        try:
            return command.run(args, _make_console())
        except USER_ERRORS as error:
            if args.debug:
                traceback.print_exc()
            else:
                print(_one_line(error), file=sys.stderr)
            return EXIT_BAD_INPUT


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
