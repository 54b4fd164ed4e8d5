"""Reference side of ``compare_reference.py``: fit keypoint-moseq 0.8.1.

Runs in the SEPARATE keypoint-moseq virtualenv (never in moseq_xr's), as a
child process of ``compare_reference.py``, so that its peak memory is its own.
It uses only keypoint-moseq's public API (and the jax-moseq sampler that
``kpms.fit_model`` calls); no keypoint-moseq code is copied here.

Steps, following the keypoint-moseq tutorial:

1. ``kpms.setup_project`` + ``kpms.load_config`` in a scratch project folder
   (the config template's defaults, with the benchmark's hyperparameters);
2. ``kpms.format_data`` -> ``kpms.fit_pca`` -> ``kpms.init_model``;
3. the Gibbs loop, timed per iteration. ``kpms.fit_model`` runs, per
   iteration, ``jax_moseq.models.keypoint_slds.resample_model(data, **model,
   ar_only=...)`` followed by ``jax_moseq.utils.debugging.check_for_nans``
   (plus checkpoint saving / plots, switched off here). This script makes the
   same two calls itself, in a loop, with ``jax.block_until_ready`` after the
   sweep, so each iteration is timed on its own: ``sampler_seconds`` (the
   sweep alone) and ``seconds`` (sweep + NaN check = what ``fit_model``'s loop
   does per iteration);
4. syllables back per frame: ``z`` is padded at the front with ``nlags``
   copies of its first value and unbatched with ``jax_moseq.utils.unbatch``
   (what ``kpms.extract_results`` does); the first ``nlags`` frames of every
   recording are then set to -1 so that both packages are scored on the same
   frames (moseq_xr leaves them at -1).

Prints one line ``RESULT_JSON {...}`` on stdout.
"""

import argparse
import json
import os
import resource
import sys
import tempfile
import time

import numpy as np

RESULT_PREFIX = "RESULT_JSON "


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", required=True, help=".npz written by compare_reference.py"
    )
    parser.add_argument("--stage", choices=("ar", "full"), default="ar")
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
    parser.add_argument("--project-dir", default=None, help="scratch project folder")
    return parser.parse_args(argv)


def load_arrays(path):
    """Raw arrays of the simulated dataset, keyed by recording name."""
    with np.load(path, allow_pickle=False) as npz:
        names = [str(n) for n in npz["recording_names"]]
        coordinates = {
            n: np.array(npz[f"coordinates_{i}"]) for i, n in enumerate(names)
        }
        confidences = {
            n: np.array(npz[f"confidences_{i}"]) for i, n in enumerate(names)
        }
        keypoints = [str(k) for k in npz["keypoints"]]
        anterior = [str(k) for k in npz["anterior"]]
        posterior = [str(k) for k in npz["posterior"]]
        fps = float(npz["fps"])
    return names, coordinates, confidences, keypoints, anterior, posterior, fps


def make_config(kpms, project_dir, args, keypoints, anterior, posterior, fps):
    """The tutorial's config: template defaults plus the benchmark's choices."""
    kpms.setup_project(
        project_dir,
        overwrite=True,
        bodyparts=keypoints,
        use_bodyparts=keypoints,
        skeleton=[],
        anterior_bodyparts=anterior,
        posterior_bodyparts=posterior,
        latent_dim=args.latent_dim,
        nlags=args.nlags,
        kappa=args.kappa,
        num_states=args.num_states,
        fps=fps,
    )
    return kpms.load_config(project_dir)


def set_precision(jax, precision):
    """keypoint-moseq turns x64 on at import; float32 turns it off again."""
    jax.config.update("jax_enable_x64", precision == "float64")


def initialise(kpms, jax, config, coordinates, confidences, seed):
    """format_data -> fit_pca -> init_model.

    Returns
    -------
    tuple
        ``(data, metadata, model, seconds)``.
    """
    tic = time.perf_counter()
    data, metadata = kpms.format_data(coordinates, confidences, **config)
    pca = kpms.fit_pca(**data, **config)
    model = kpms.init_model(data, pca=pca, seed=jax.random.PRNGKey(seed), **config)
    jax.block_until_ready(model)
    return data, metadata, model, time.perf_counter() - tic


def gibbs_loop(jax, data, model, num_iters, ar_only, parallel):
    """Run the sweeps that ``kpms.fit_model`` runs, timing each one.

    Returns
    -------
    tuple
        ``(model, sampler_seconds, nan_check_seconds, stopped_reason)``.
    """
    from jax_moseq.models.keypoint_slds import resample_model
    from jax_moseq.utils import device_put_as_scalar
    from jax_moseq.utils.debugging import check_for_nans

    model = device_put_as_scalar(model)
    sampler_seconds, check_seconds, stopped = [], [], None
    for _ in range(num_iters):
        tic = time.perf_counter()
        new_model = resample_model(
            data,
            **model,
            ar_only=ar_only,
            verbose=False,
            jitter=1e-3,
            parallel_message_passing=parallel,
        )
        jax.block_until_ready(new_model)
        toc = time.perf_counter()
        any_nans, _, messages = check_for_nans(new_model)
        check_seconds.append(time.perf_counter() - toc)
        sampler_seconds.append(toc - tic)
        if any_nans:
            stopped = "NaNs: " + "; ".join(messages)
            break
        model = new_model
    return model, sampler_seconds, check_seconds, stopped


def frame_syllables(jax, model, metadata, nlags):
    """Per-frame syllables per recording; -1 on the first ``nlags`` frames."""
    from jax_moseq.utils import unbatch

    z = np.asarray(jax.device_get(model["states"]["z"]))
    padded = np.pad(z, ((0, 0), (nlags, 0)), mode="edge")
    keys, bounds = metadata
    per_recording = unbatch(padded, np.asarray(keys), np.asarray(bounds))
    out = {}
    for name, labels in per_recording.items():
        labels = labels.astype(np.int64)
        labels[:nlags] = -1
        out[str(name)] = labels.tolist()
    return out


def own_median_duration(model, data):
    """Median duration (frames) as jax-moseq computes it, on the batched z."""
    from jax_moseq.utils import get_durations

    nlags = model["states"]["x"].shape[1] - model["states"]["z"].shape[1]
    mask = np.asarray(data["mask"])[:, nlags:]
    return float(np.median(get_durations(np.asarray(model["states"]["z"]), mask)))


def peak_device_bytes(jax):
    """Peak bytes in use on the default device (None on CPU backends)."""
    stats = jax.devices()[0].memory_stats() or {}
    return stats.get("peak_bytes_in_use")


def versions(jax, kpms):
    import jax_moseq
    import jaxlib

    return {
        "keypoint_moseq": kpms.__version__,
        "jax_moseq": jax_moseq.__version__,
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
    import keypoint_moseq as kpms

    import_seconds = time.perf_counter() - start
    set_precision(jax, args.precision)
    names, coordinates, confidences, keypoints, anterior, posterior, fps = load_arrays(
        args.data
    )
    project_dir = args.project_dir or tempfile.mkdtemp(prefix="kpms_project_")
    config = make_config(kpms, project_dir, args, keypoints, anterior, posterior, fps)
    data, metadata, model, setup_seconds = initialise(
        kpms, jax, config, coordinates, confidences, args.seed
    )
    dtype = str(np.asarray(data["Y"]).dtype)
    model, sampler, check, stopped = gibbs_loop(
        jax,
        data,
        model,
        args.iters,
        ar_only=args.stage == "ar",
        parallel=args.parallel_message_passing,
    )
    result = {
        "method": "keypoint-moseq",
        "stage": args.stage,
        "precision": args.precision,
        "data_dtype": dtype,
        "iterations": len(sampler),
        "seconds": [s + c for s, c in zip(sampler, check, strict=True)],
        "sampler_seconds": sampler,
        "nan_check_seconds": check,
        "setup_seconds": setup_seconds,
        "import_seconds": import_seconds,
        "total_seconds": time.perf_counter() - start,
        "stopped": stopped,
        "median_duration_own": own_median_duration(model, data),
        "timing": "per-iteration loop: keypoint_slds.resample_model(ar_only) + "
        "block_until_ready (sampler_seconds), + check_for_nans (seconds)",
        "first_frames": f"first nlags={args.nlags} frames of each recording set to -1 "
        "(extract_results would repeat the first label)",
        "syllables": frame_syllables(jax, model, metadata, args.nlags),
        "peak_rss_self_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "peak_device_bytes": peak_device_bytes(jax),
        "versions": versions(jax, kpms),
        "recordings": names,
        "seg_rows": int(np.asarray(data["Y"]).shape[0]),
        "seg_length": int(np.asarray(data["Y"]).shape[1]),
    }
    sys.stdout.write(RESULT_PREFIX + json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    raise SystemExit(main())
