"""The memory plan's estimate against XLA's accounting of the compiled sweep.

For each configuration the Gibbs sweep is compiled from shapes alone at 2 and 6
segment rows (:func:`moseq_xr.fitting.placement.measure_frame_bytes`), which
gives the bytes a sweep really needs per frame and its fixed part; these are
compared with the plan's ``frame_bytes`` and ``block_bytes``. Prints a table
and appends it to ``benchmarks/RESULTS.md`` (``--no-append`` to skip).

Run from the repository root: ``.venv/bin/python benchmarks/memory_plan.py``
(about 10 minutes on a 2-core CPU; ``--quick`` for two AR configurations).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path

import jax

from moseq_xr.core import model as core
from moseq_xr.fitting.placement import block_bytes, frame_bytes, measure_frame_bytes

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
from compare_reference import machine_description  # noqa: E402

#: (states, latent dim, lags, keypoints, dims) measured for both stages.
CONFIGS = [(100, 4, 3, 8, 2), (12, 3, 3, 8, 2), (50, 10, 3, 12, 3), (25, 6, 1, 8, 3)]
#: Configurations measured with the parallel samplers (their S x S scans).
PARALLEL_CONFIGS = [(12, 3, 3, 8, 2), (50, 4, 3, 8, 2)]


def measure(stage: str, parallel: bool, spec: tuple, precision: str) -> dict:
    states, dim, lags, keypoints, dims = spec
    config = core.ModelConfig(
        num_states=states,
        latent_dim=dim,
        nlags=lags,
        stage=stage,
        parallel_message_passing=parallel,
    )
    per_frame, fixed = measure_frame_bytes(config, keypoints, dims, precision=precision)
    itemsize = 8 if precision == "float64" else 4
    working, _ = frame_bytes(config, keypoints, dims, itemsize)
    return {
        "stage": stage,
        "sampler": "parallel" if parallel else "serial",
        "states": states,
        "latent_dim": dim,
        "nlags": lags,
        "keypoints": f"{keypoints} × {dims}D",
        "measured": per_frame,
        "estimate": working,
        "fixed_mb": fixed / 1e6,
        "block_mb": block_bytes(config, itemsize) / 1e6,
    }


def table(rows: list[dict]) -> list[str]:
    lines = [
        "| stage | sampler | states | latent dim | lags | keypoints | "
        "measured B/frame | plan B/frame (ratio) | measured fixed MB | "
        "`block_bytes` MB |",
        "|---|---|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['stage']} | {r['sampler']} | {r['states']} | {r['latent_dim']} "
            f"| {r['nlags']} | {r['keypoints']} | {r['measured']:.0f} | "
            f"{r['estimate']} ({r['estimate'] / r['measured']:.2f}×) | "
            f"{r['fixed_mb']:.1f} | {r['block_mb']:.1f} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--precision", default="float64")
    parser.add_argument("--quick", action="store_true", help="two AR configs only")
    parser.add_argument("--no-append", action="store_true")
    parser.add_argument("--results-file", type=Path, default=BENCH_DIR / "RESULTS.md")
    args = parser.parse_args()
    jobs = [("ar", False, spec) for spec in CONFIGS[:2]]
    if not args.quick:
        jobs = [(s, False, spec) for spec in CONFIGS for s in ("ar", "full")]
        jobs += [(s, True, spec) for spec in PARALLEL_CONFIGS for s in ("ar", "full")]
    rows = []
    for stage, parallel, spec in jobs:
        rows.append(measure(stage, parallel, spec, args.precision))
        print(table(rows)[-1], flush=True)
    ratios = [r["estimate"] / r["measured"] for r in rows]
    lines = table(rows)
    print("\n".join(lines))
    print(f"plan / measured: {min(ratios):.2f}–{max(ratios):.2f}")
    if args.no_append:
        return
    stamp = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    block = [
        "",
        f"## {stamp} — memory plan against XLA's accounting of the compiled sweep",
        "",
        f"`benchmarks/memory_plan.py` ({args.precision}, backend "
        f"{jax.default_backend()}): each sweep compiled from shapes at 2 and 6 "
        "segment rows of 5000 frames; bytes per frame from the difference, "
        "fixed bytes from the intercept.",
        "",
        *lines,
        "",
        f"- plan / measured bytes per frame: {min(ratios):.2f}–{max(ratios):.2f}",
        f"- machine: {json.dumps(machine_description())}; jax {jax.__version__}",
    ]
    with open(args.results_file, "a") as results:
        results.write("\n".join(block) + "\n")
    print(f"appended to {args.results_file}")


if __name__ == "__main__":
    main()
