"""moseq_xr side of ``compare_reference.py``: fit moseq_xr on the same arrays.

Runs in moseq_xr's virtualenv as a child process of ``compare_reference.py``
(so that its peak memory is its own). It rebuilds a pose Dataset from the raw
arrays the reference gets (``moseq_xr.io.load.from_arrays``), calls
``moseq_xr.fitting.api.fit`` and reads the per-iteration wall times from the
result's ``/trace`` (``seconds``: one compiled Gibbs sweep plus the finite
check that synchronises it, timed by moseq_xr's own loop).

Syllables per frame come from the result's root ``syllable`` variable; the
first ``nlags`` frames of every recording are -1 there (no AR history).

Prints one line ``RESULT_JSON {...}`` on stdout.
"""

import argparse
import json
import resource
import sys
import time

import numpy as np

RESULT_PREFIX = "RESULT_JSON "

#: Benchmark stage name -> moseq_xr ``fit(stage=...)``.
STAGES = {"ar": "ar", "full": "full"}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", required=True, help=".npz written by compare_reference.py"
    )
    parser.add_argument("--stage", choices=sorted(STAGES), default="ar")
    parser.add_argument("--iters", type=int, default=50)
    parser.add_argument("--kappa", type=float, default=1e5)
    parser.add_argument("--latent-dim", type=int, default=4)
    parser.add_argument("--num-states", type=int, default=100)
    parser.add_argument("--nlags", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--precision", choices=("float64", "float32"), default="float64"
    )
    parser.add_argument("--parallel-message-passing", action="store_true")
    parser.add_argument(
        "--compile-cache", help="compile_cache= of fit (default: none, cold compile)"
    )
    return parser.parse_args(argv)


def load_dataset(path):
    """The pose Dataset built from the benchmark's raw arrays."""
    from moseq_xr.io.load import from_arrays

    with np.load(path, allow_pickle=False) as npz:
        names = [str(n) for n in npz["recording_names"]]
        positions = {n: np.array(npz[f"coordinates_{i}"]) for i, n in enumerate(names)}
        confidences = {
            n: np.array(npz[f"confidences_{i}"]) for i, n in enumerate(names)
        }
        keypoints = [str(k) for k in npz["keypoints"]]
        body_axis = (
            [str(k) for k in npz["anterior"]],
            [str(k) for k in npz["posterior"]],
        )
        fps = float(npz["fps"])
    ds = from_arrays(
        positions,
        keypoints=keypoints,
        fps=fps,
        confidences=confidences,
        source_software="benchmark",
    )
    return ds, body_axis


def frame_syllables(tree):
    """``{recording: labels}`` of the first individual, trimmed to its length."""
    syllable = tree["syllable"].isel(individual=0)
    lengths = tree["n_frames"].values if "n_frames" in tree.coords else None
    out = {}
    for i, name in enumerate(syllable["recording"].values):
        labels = np.asarray(syllable.isel(recording=i).values, dtype=np.int64)
        if lengths is not None:
            labels = labels[: int(np.ravel(lengths)[i])]
        out[str(name)] = labels.tolist()
    return out


def peak_device_bytes(jax):
    """Peak bytes in use on the default device (None on CPU backends)."""
    stats = jax.devices()[0].memory_stats() or {}
    return stats.get("peak_bytes_in_use")


def versions(jax):
    import jaxlib

    from moseq_xr._version import __version__

    return {
        "moseq_xr": __version__,
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "backend": jax.default_backend(),
        "device": str(jax.devices()[0]),
        "python": sys.version.split()[0],
    }


def main(argv=None):
    args = parse_args(argv)
    start = time.perf_counter()
    import jax

    from moseq_xr.fitting.api import fit

    import_seconds = time.perf_counter() - start
    ds, (anterior, posterior) = load_dataset(args.data)
    tic = time.perf_counter()
    tree = fit(
        ds,
        stage=STAGES[args.stage],
        num_iters=args.iters,
        kappa=args.kappa,
        latent_dim=args.latent_dim,
        num_states=args.num_states,
        nlags=args.nlags,
        seed=args.seed,
        progress=False,
        precision=args.precision,
        parallel_message_passing=args.parallel_message_passing,
        compile_cache=args.compile_cache,
        anterior=anterior,
        posterior=posterior,
    )
    fit_seconds = time.perf_counter() - tic
    trace = tree["trace"].to_dataset()
    seconds = [float(s) for s in trace["seconds"].values]
    result = {
        "method": "moseq_xr",
        "stage": args.stage,
        "precision": args.precision,
        "iterations": len(seconds),
        "seconds": seconds,
        "setup_seconds": fit_seconds - sum(seconds),
        "import_seconds": import_seconds,
        "total_seconds": time.perf_counter() - start,
        "stopped": tree["model"].attrs.get("stopped_early") or None,
        "median_duration_own": float(trace["median_duration"].values[-1])
        if seconds
        else None,
        "timing": "moseq_xr's /trace seconds: one jitted sweep + its finite check "
        "(synchronising); setup_seconds = fit() wall time minus the sweeps "
        "(prepare, PCA, init, result tree)",
        "first_frames": f"first nlags={args.nlags} frames of each recording are -1",
        "syllables": frame_syllables(tree.to_dataset()),
        "peak_rss_self_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "peak_device_bytes": peak_device_bytes(jax),
        "versions": versions(jax),
    }
    sys.stdout.write(RESULT_PREFIX + json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
