"""Compare moseq_xr's fit with keypoint-moseq 0.8.1 on the same simulated data.

For each size (total frames) the script

1. simulates one dataset with :func:`moseq_xr.simulation.simulate` and saves
   the raw arrays (per recording: coordinates ``(T, K, 2)``, confidences
   ``(T, K)``, true syllables ``(T,)``) to ``<work-dir>/sim_<size>.npz``;
2. fits keypoint-moseq in a child process of ITS OWN virtualenv
   (``_kpms_runner.py``; keypoint-moseq is never imported by moseq_xr);
3. fits moseq_xr in another child process (``_moseq_xr_runner.py``);
4. measures each child's peak resident memory (``os.wait4`` rusage of that
   child alone);
5. scores both against the truth: NMI and ARI on frames where both labels
   are defined, median syllable duration (frames, seconds) from the per-frame
   labels, computed here identically for truth and both methods;
6. prints a Markdown table and appends it, with the date, the machine and the
   exact parameters, to ``benchmarks/RESULTS.md`` (``--results-file``).

Run from the repository root with moseq_xr's virtualenv, e.g.::

    .venv/bin/python benchmarks/compare_reference.py --sizes 20000 --iters 50

See ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
WORK_DIR = BENCH_DIR / "_work"
KPMS_PYTHON = WORK_DIR / "kpms-venv" / "bin" / "python"
RESULT_PREFIX = "RESULT_JSON "

#: Benchmark stages (the moseq_xr runner's STAGES uses the same names; the
#: reference runner maps "full" to ``ar_only=False``).
STAGES = {
    "ar": "AR-HMM stage: pose latents fixed at their PCA projection",
    "full": "full keypoint-SLDS sweeps, both started from their initialisation",
}

#: Simulation settings other than the size (recorded with every result).
SIMULATION = {
    "num_keypoints": 8,
    "num_dims": 2,
    "num_syllables": 8,
    "latent_dim": 4,
    "target_duration": 0.4,
    "fps": 30.0,
}
BODY_AXIS = {"anterior": ["nose"], "posterior": ["tail_base"]}


# --------------------------------------------------------------------------- CLI
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="moseq_xr vs keypoint-moseq 0.8.1 on simulated data",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        default=[20_000, 100_000],
        help="total frames per dataset (split over --recordings)",
    )
    parser.add_argument("--recordings", type=int, default=4)
    parser.add_argument("--iters", type=int, default=50, help="Gibbs sweeps")
    parser.add_argument("--kappa", type=float, default=1e5)
    parser.add_argument("--latent-dim", type=int, default=4)
    parser.add_argument("--num-states", type=int, default=100)
    parser.add_argument("--nlags", type=int, default=3)
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the simulation and of both chains"
    )
    parser.add_argument("--stage", choices=sorted(STAGES), default="ar")
    parser.add_argument(
        "--precision", choices=("float64", "float32"), default="float64"
    )
    parser.add_argument(
        "--parallel-message-passing",
        action="store_true",
        help="associative-scan samplers in both (full stage; GPUs)",
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=2,
        help="first iterations left out of the steady-state time",
    )
    parser.add_argument(
        "--skip-reference", action="store_true", help="fit moseq_xr only"
    )
    parser.add_argument(
        "--compile-cache",
        type=Path,
        help="moseq_xr's compile_cache= (default: none, a cold compile); the "
        "reference has no equivalent",
    )
    parser.add_argument(
        "--kpms-python",
        type=Path,
        default=KPMS_PYTHON,
        help="python of the keypoint-moseq virtualenv",
    )
    parser.add_argument("--work-dir", type=Path, default=WORK_DIR)
    parser.add_argument("--results-file", type=Path, default=BENCH_DIR / "RESULTS.md")
    parser.add_argument(
        "--no-append",
        action="store_true",
        help="print the table without appending it to --results-file",
    )
    parser.add_argument(
        "--note", default="", help="free text recorded with the results"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="seconds before a child fit is killed",
    )
    return parser.parse_args(argv)


# -------------------------------------------------------------------- simulation
def simulate_to_npz(
    size: int, args: argparse.Namespace
) -> tuple[Path, dict[str, np.ndarray]]:
    """Simulate ``size`` frames over ``args.recordings`` recordings; save raw arrays.

    Returns
    -------
    tuple
        The ``.npz`` path and ``{recording: true syllables (T,)}``.
    """
    from moseq_xr.simulation import simulate

    per_recording = size // args.recordings
    ds = simulate(
        num_recordings=args.recordings,
        num_frames=per_recording,
        seed=args.seed,
        **SIMULATION,
    )
    arrays: dict[str, Any] = {
        "recording_names": np.array([str(r) for r in ds["recording"].values]),
        "keypoints": np.array([str(k) for k in ds["keypoint"].values]),
        "anterior": np.array(BODY_AXIS["anterior"]),
        "posterior": np.array(BODY_AXIS["posterior"]),
        "fps": np.array(float(ds.attrs["fps"])),
    }
    truth = {}
    for i, name in enumerate(arrays["recording_names"]):
        one = ds.isel(recording=i, individual=0)
        arrays[f"coordinates_{i}"] = (
            one["position"]
            .transpose("time", "keypoint", "space")
            .values[:per_recording]
        )
        arrays[f"confidences_{i}"] = (
            one["confidence"].transpose("time", "keypoint").values[:per_recording]
        )
        arrays[f"truth_{i}"] = truth[str(name)] = (
            one["true_syllable"].values[:per_recording].astype(np.int64)
        )
    path = args.work_dir / f"sim_{size}_r{args.recordings}_s{args.seed}.npz"
    np.savez(path, **arrays)
    return path, truth


# ------------------------------------------------------------------ child runs
def fit_arguments(args: argparse.Namespace, data: Path) -> list[str]:
    """Command-line arguments shared by both runners (same hyperparameters)."""
    return [
        "--data",
        str(data),
        "--stage",
        args.stage,
        "--iters",
        str(args.iters),
        "--kappa",
        repr(args.kappa),
        "--latent-dim",
        str(args.latent_dim),
        "--num-states",
        str(args.num_states),
        "--nlags",
        str(args.nlags),
        "--seed",
        str(args.seed),
        "--precision",
        args.precision,
        *(["--parallel-message-passing"] if args.parallel_message_passing else []),
    ]


def cache_arguments(args: argparse.Namespace) -> list[str]:
    """moseq_xr runner arguments for ``--compile-cache`` (none: cold compile)."""
    return ["--compile-cache", str(args.compile_cache)] if args.compile_cache else []


def run_child(
    command: list[str], log_stem: Path, timeout: float | None
) -> dict[str, Any]:
    """Run one fit in a child process; return its JSON plus wall time and peak RSS.

    The peak resident set size is the child's own (``os.wait4``), so the two
    fits never contaminate each other's figure.
    """
    print("$", shlex.join(command), flush=True)
    stdout_path, stderr_path = (
        log_stem.with_suffix(".out"),
        log_stem.with_suffix(".err"),
    )
    tic = time.perf_counter()
    with open(stdout_path, "w") as out, open(stderr_path, "w") as err:
        child = subprocess.Popen(command, stdout=out, stderr=err, cwd=REPO)
        status, rusage = wait_child(child, timeout)
    wall = time.perf_counter() - tic
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        tail = stderr_path.read_text()[-3000:]
        why = f"killed after {timeout} s" if timeout and wall >= timeout else "failed"
        raise RuntimeError(
            f"{command[1]} {why} (exit {code}); see {stderr_path}:\n{tail}"
        )
    result = read_result(stdout_path)
    result["wall_seconds"] = wall
    result["peak_rss_gib"] = rusage.ru_maxrss / 1024**2  # Linux: kilobytes
    return result


def wait_child(child: subprocess.Popen, timeout: float | None):
    """``os.wait4`` on the child (its own rusage), killing it after ``timeout``."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        pid, status, rusage = os.wait4(child.pid, os.WNOHANG if deadline else 0)
        if pid == child.pid:
            child.returncode = os.waitstatus_to_exitcode(status)
            return status, rusage
        if time.monotonic() > deadline:
            child.kill()
            deadline = None
        time.sleep(0.2)


def read_result(stdout_path: Path) -> dict[str, Any]:
    """The ``RESULT_JSON`` line a runner printed."""
    for line in reversed(stdout_path.read_text().splitlines()):
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX) :])
    raise RuntimeError(f"no {RESULT_PREFIX.strip()} line in {stdout_path}")


# --------------------------------------------------------------------- scoring
def run_lengths(labels: np.ndarray) -> np.ndarray:
    """Lengths of the runs of equal labels, ignoring frames labelled -1."""
    labels = np.asarray(labels)
    if labels.size == 0:
        return np.zeros(0, dtype=np.int64)
    change = np.flatnonzero(labels[1:] != labels[:-1]) + 1
    starts = np.concatenate([[0], change])
    lengths = np.diff(np.concatenate([starts, [labels.size]]))
    return lengths[labels[starts] >= 0]


def median_duration(per_recording: dict[str, np.ndarray]) -> float:
    """Median run length (frames) over all recordings."""
    lengths = np.concatenate([run_lengths(v) for v in per_recording.values()])
    return float(np.median(lengths)) if lengths.size else float("nan")


def aligned(
    truth: dict[str, np.ndarray], labels: dict[str, list[int]]
) -> tuple[np.ndarray, np.ndarray]:
    """Concatenated (truth, labels) on the frames where both are defined."""
    pairs = []
    for name, true in truth.items():
        found = np.asarray(labels[name], dtype=np.int64)
        if found.shape != true.shape:
            raise ValueError(
                f"{name}: {found.shape[0]} labels for {true.shape[0]} frames"
            )
        both = (true >= 0) & (found >= 0)
        pairs.append((true[both], found[both]))
    return np.concatenate([p[0] for p in pairs]), np.concatenate([p[1] for p in pairs])


def score(
    truth: dict[str, np.ndarray], labels: dict[str, list[int]]
) -> dict[str, float]:
    """NMI, ARI, median duration and number of labels used."""
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    true, found = aligned(truth, labels)
    as_arrays = {k: np.asarray(v, dtype=np.int64) for k, v in labels.items()}
    return {
        "nmi": float(normalized_mutual_info_score(true, found)),
        "ari": float(adjusted_rand_score(true, found)),
        "scored_frames": int(true.size),
        "median_duration_frames": median_duration(as_arrays),
        "syllables_used": int(np.unique(found).size),
    }


def timing_summary(seconds: list[float], warmup: int) -> dict[str, float]:
    """Steady-state seconds per iteration and compile time.

    The first ``warmup`` iterations (at least one) are left out of the steady
    state; compile time = their total minus ``warmup`` steady iterations.
    """
    seconds = np.asarray(seconds, dtype=float)
    if seconds.size == 0:
        return {"steady_seconds": float("nan"), "compile_seconds": float("nan")}
    skip = min(max(warmup, 1), seconds.size - 1) if seconds.size > 1 else 0
    steady = seconds[skip:]
    median = float(np.median(steady))
    return {
        "steady_seconds": median,
        "steady_mean_seconds": float(np.mean(steady)),
        "steady_min_seconds": float(np.min(steady)),
        "steady_iterations": int(steady.size),
        "compile_seconds": float(np.sum(seconds[:skip]) - skip * median),
    }


def summarise(
    result: dict[str, Any], truth: dict[str, np.ndarray], warmup: int, fps: float
) -> dict[str, Any]:
    """Everything the table needs for one method."""
    summary = {
        **timing_summary(result["seconds"], warmup),
        **score(truth, result["syllables"]),
    }
    if "sampler_seconds" in result:
        summary["steady_sampler_seconds"] = timing_summary(
            result["sampler_seconds"], warmup
        )["steady_seconds"]
    summary["median_duration_seconds"] = summary["median_duration_frames"] / fps
    for key in (
        "method",
        "iterations",
        "setup_seconds",
        "wall_seconds",
        "peak_rss_gib",
        "stopped",
        "median_duration_own",
    ):
        summary[key] = result.get(key)
    device_bytes = result.get("peak_device_bytes")
    summary["peak_device_gib"] = (
        None if device_bytes is None else device_bytes / 1024**3
    )
    return summary


def truth_summary(truth: dict[str, np.ndarray], fps: float) -> dict[str, Any]:
    frames = median_duration(truth)
    used = np.unique(np.concatenate(list(truth.values())))
    return {
        "method": "truth",
        "median_duration_frames": frames,
        "median_duration_seconds": frames / fps,
        "syllables_used": int(used.size),
    }


# ---------------------------------------------------------------------- report
def machine_description() -> dict[str, Any]:
    """CPU model, cores and memory of this machine."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_gib = float("nan")
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_gib = int(line.split()[1]) / 1024**2
    except OSError:
        pass
    usable = (
        len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else os.cpu_count()
    )
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "memory_gib": round(memory_gib, 1),
        "os": platform.platform(),
    }


def _fmt(value: Any, spec: str) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "–"
    return format(value, spec)


def table_rows(size: int, rows: list[dict[str, Any]]) -> list[str]:
    lines = []
    for row in rows:
        duration = (
            f"{_fmt(row.get('median_duration_frames'), '.1f')} "
            f"({_fmt(row.get('median_duration_seconds'), '.3f')} s)"
        )
        sampler = row.get("steady_sampler_seconds")
        steady = _fmt(row.get("steady_seconds"), ".4f")
        if sampler is not None:
            steady += f" ({_fmt(sampler, '.4f')})"
        lines.append(
            " | ".join(
                [
                    f"| {size}",
                    row["method"],
                    _fmt(row.get("iterations"), "d"),
                    steady,
                    _fmt(row.get("steady_min_seconds"), ".4f"),
                    _fmt(row.get("compile_seconds"), ".1f"),
                    _fmt(row.get("setup_seconds"), ".1f"),
                    _fmt(row.get("wall_seconds"), ".1f"),
                    _fmt(row.get("peak_rss_gib"), ".2f"),
                    _fmt(row.get("peak_device_gib"), ".2f"),
                    _fmt(row.get("nmi"), ".3f"),
                    _fmt(row.get("ari"), ".3f"),
                    duration,
                    _fmt(row.get("syllables_used"), "d"),
                ]
            )
            + " |"
        )
    return lines


TABLE_HEADER = [
    "| frames | method | iters | s/iter median (sampler only) | s/iter min "
    "| compile s | setup s "
    "| wall s | peak RSS GiB | peak device GiB | NMI | ARI "
    "| median duration frames (s) | syllables used |",
    "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
]


def markdown_report(
    args: argparse.Namespace,
    outcomes: list[dict[str, Any]],
    machine: dict[str, Any],
    versions: dict[str, Any],
    command: str,
) -> str:
    """The block appended to RESULTS.md."""
    now = dt.datetime.now().astimezone().isoformat(timespec="seconds")
    params = {
        "stage": args.stage,
        "iters": args.iters,
        "kappa": args.kappa,
        "latent_dim": args.latent_dim,
        "num_states": args.num_states,
        "nlags": args.nlags,
        "seed": args.seed,
        "precision": args.precision,
        "recordings": args.recordings,
        "parallel_message_passing": args.parallel_message_passing,
        "moseq_xr_compile_cache": args.compile_cache and str(args.compile_cache),
        "warmup_iterations_excluded": args.warmup,
        "simulation": SIMULATION,
        **BODY_AXIS,
    }
    lines = [f"## {now} — {args.stage} stage, moseq_xr vs keypoint-moseq", ""]
    if args.note:
        lines += [f"Note: {args.note}", ""]
    lines += [
        f"- machine: {machine['cpu']}, {machine['cores']} cores "
        f"({machine['usable_cores']} usable), {machine['memory_gib']} GiB RAM, "
        f"{machine['os']}"
    ]
    lines += [
        f"- {name}: {json.dumps(v, sort_keys=True)}" for name, v in versions.items()
    ]
    lines += [
        f"- parameters: `{json.dumps(params, sort_keys=True)}`",
        f"- command: `{command}`",
        "",
    ]
    lines += TABLE_HEADER
    for outcome in outcomes:
        lines += table_rows(outcome["size"], outcome["rows"])
    agreement = [
        f"{o['size']}: {o['nmi_between']:.3f}"
        for o in outcomes
        if o.get("nmi_between") is not None
    ]
    if agreement:
        lines += ["", "NMI between the two methods' labels: " + ", ".join(agreement)]
    lines += ["", TIMING_NOTE, ""]
    return "\n".join(lines)


RESULTS_HEADER = (
    "# Benchmark results\n\n"
    "Appended by `benchmarks/compare_reference.py` (see `benchmarks/README.md`); "
    "one section per run, newest last.\n"
)

TIMING_NOTE = (
    "s/iter median / min = median / minimum wall time of the iterations after the "
    "first `warmup` ones (min is the figure least disturbed by other load); "
    "compile s = time of those first iterations minus `warmup` times "
    "that median. moseq_xr: its "
    "own `/trace` seconds (jitted sweep + finite check). keypoint-moseq: "
    "`jax_moseq.models.keypoint_slds.resample_model(..., ar_only=stage == 'ar')` + "
    "`block_until_ready` + `check_for_nans`, called in a loop exactly as "
    "`kpms.fit_model` does per iteration (its checkpointing/plots off); the "
    "sampler-only time is in brackets. setup s: kpms format_data+fit_pca+init_model; "
    "moseq_xr fit() time outside the sweeps. Peak RSS per child process (os.wait4). "
    "NMI/ARI vs the simulated truth on frames labelled by both (the first nlags "
    "frames of each recording are excluded for both methods); median duration = "
    "median run length of the per-frame labels, computed identically for all rows."
)


# ------------------------------------------------------------------------ main
def run_size(
    size: int, args: argparse.Namespace
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Simulate, fit both, score; returns (outcome, raw child results)."""
    data, truth = simulate_to_npz(size, args)
    fps = SIMULATION["fps"]
    common = fit_arguments(args, data)
    raw: dict[str, Any] = {}
    stem = args.work_dir / f"log_{size}_{args.stage}_{args.precision}"
    if not args.skip_reference:
        raw["keypoint-moseq"] = run_child(
            [
                str(args.kpms_python),
                str(BENCH_DIR / "_kpms_runner.py"),
                *common,
                "--project-dir",
                str(args.work_dir / f"kpms_project_{size}"),
            ],
            stem.with_name(stem.name + "_kpms"),
            args.timeout,
        )
    raw["moseq_xr"] = run_child(
        [
            sys.executable,
            str(BENCH_DIR / "_moseq_xr_runner.py"),
            *common,
            *cache_arguments(args),
        ],
        stem.with_name(stem.name + "_moseq_xr"),
        args.timeout,
    )
    rows = [truth_summary(truth, fps)]
    rows += [summarise(result, truth, args.warmup, fps) for result in raw.values()]
    frames = sum(t.size for t in truth.values())
    outcome = {"size": frames, "rows": rows, "nmi_between": None}
    if len(raw) == 2:
        from sklearn.metrics import normalized_mutual_info_score

        first, second = aligned(
            {k: np.asarray(v) for k, v in raw["moseq_xr"]["syllables"].items()},
            raw["keypoint-moseq"]["syllables"],
        )
        outcome["nmi_between"] = float(normalized_mutual_info_score(first, second))
    return outcome, raw


def write_raw(
    args: argparse.Namespace, outcomes: list[dict[str, Any]], raws: dict[int, Any]
) -> Path:
    """All per-iteration figures (not the labels) as JSON in the work folder."""
    stamp = dt.datetime.now().strftime("%Y%m%dT%H%M%S")
    path = args.work_dir / f"compare_{args.stage}_{stamp}.json"
    without_labels = {
        str(size): {
            method: {k: v for k, v in result.items() if k != "syllables"}
            for method, result in raw.items()
        }
        for size, raw in raws.items()
    }
    arguments = {k: str(v) for k, v in vars(args).items()}
    payload = {"args": arguments, "outcomes": outcomes, "raw": without_labels}
    path.write_text(json.dumps(payload, indent=1))
    return path


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.work_dir.mkdir(parents=True, exist_ok=True)
    if not args.skip_reference and not args.kpms_python.exists():
        raise SystemExit(
            f"{args.kpms_python} not found; see benchmarks/README.md "
            "(or pass --skip-reference)"
        )
    command = shlex.join([Path(sys.executable).name, *sys.argv])
    outcomes, versions, raws = [], {}, {}
    for size in args.sizes:
        outcome, raw = run_size(size, args)
        outcomes.append(outcome)
        raws[size] = raw
        versions.update({name: result["versions"] for name, result in raw.items()})
    report = markdown_report(args, outcomes, machine_description(), versions, command)
    print("\n" + report)
    print(f"raw timings: {write_raw(args, outcomes, raws)}")
    if not args.no_append:
        new = not args.results_file.exists()
        with open(args.results_file, "a") as results:
            results.write((RESULTS_HEADER if new else "") + "\n" + report)
        print(f"appended to {args.results_file}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
