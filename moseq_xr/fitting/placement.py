"""Where a fit runs: devices, row sharding and the memory plan.

* :func:`device_mesh` picks the devices (default: every visible device of
  JAX's default backend) and builds the one-axis mesh that segment rows are
  split over.
* :func:`plan_memory` estimates the bytes a Gibbs sweep needs per frame for the
  chosen options, reads the free memory of the devices and chooses how many
  segment rows each device processes at once (the rest wait their turn). A fit
  that cannot fit even one row per device stops with the figures and what to
  change.
* :func:`place` pads the rows to a multiple of the device count (padding rows
  are fully masked) and puts data and latents on the devices, rows split,
  parameters replicated.

Nothing here changes global JAX state.
"""

from __future__ import annotations

import math
import os
import re
import warnings
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from moseq_xr.core import model as core
from moseq_xr.core.autoregression import FRAME_BLOCK
from moseq_xr.core.rows import ROW_AXIS
from moseq_xr.exceptions import FitError, MoseqXrWarning

#: Fraction of the free memory a fit plans to use.
HEADROOM = 0.8

#: XLA flag without which jaxlib's CPU runtime can deadlock on several host devices.
_CPU_SCHEDULER_FLAG = "--xla_cpu_enable_concurrency_optimized_scheduler=false"


class MemoryPlan(NamedTuple):
    """How the rows of a fit are processed.

    Attributes
    ----------
    rows_per_batch
        Rows sampled at once per device (``None``: all of them).
    rows_per_device
        Rows each device holds.
    bytes_per_frame
        Estimated working memory of a sweep per frame.
    bytes_needed
        Estimated peak per device without batching.
    bytes_available
        Memory the plan may use per device.
    """

    rows_per_batch: int | None
    rows_per_device: int
    bytes_per_frame: int
    bytes_needed: int
    bytes_available: int


def parse_bytes(value: int | float | str) -> int:
    """``"8GB"``, ``"512 MiB"``, ``2e9`` -> bytes."""
    if isinstance(value, int | float):
        return int(value)
    units = {"": 1, "b": 1, "kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12}
    units |= {"kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
    match = re.fullmatch(r"([0-9.eE+]+)\s*([a-z]*)", str(value).strip().lower())
    if match is None or match.group(2) not in units:
        raise ValueError(f"memory_limit: cannot read {value!r} (e.g. '8GB', '512MiB')")
    return int(float(match.group(1)) * units[match.group(2)])


def _syllable_floats(config: core.ModelConfig) -> int:
    """Floats per frame held while the syllables are drawn.

    Serial: the scaled likelihood of every state (overwritten by the filtered
    probabilities), the time-major regressors and the draws. Parallel: the
    associative scan's ``S x S`` elements, about three per frame at its peak.
    """
    states = config.num_states
    joint = config.latent_dim * (config.nlags + 1) + 1
    serial = states + 2 * joint + 48
    if config.parallel_message_passing:
        return serial + (7 * states**2) // 2
    return serial


def _pose_floats(config: core.ModelConfig, num_keypoints: int, num_dims: int) -> int:
    """Floats per frame held while the full model's continuous latents are drawn.

    Serial Kalman sampling keeps, per frame, its inputs (emission information,
    centred lags, the state index) and the backward pass's factors (Cholesky
    factor, coupling, offset, normals); the parallel one keeps a few dense
    elements of the ``P L``-dimensional state per frame. On top: the
    per-keypoint residuals and proposals of heading, centroid and noise scales.
    """
    dim, state = config.latent_dim, config.latent_dim * config.nlags
    kalman = 2 * dim**2 + dim * state + 5 * dim + state + 1
    if config.parallel_message_passing:
        kalman = max(kalman, (11 * state**2) // 2 + 5 * state)
    return config.num_states + 2 * kalman + 6 * num_keypoints * num_dims + 80


def frame_bytes(
    config: core.ModelConfig, num_keypoints: int, num_dims: int, itemsize: int
) -> tuple[int, int]:
    """Estimated ``(working, resident)`` bytes per frame of one sweep.

    Working memory is the peak of what the per-row samplers hold at once
    (:func:`_syllable_floats`, :func:`_pose_floats`). It is calibrated against
    XLA's own accounting of the compiled sweep (``memory_analysis()``) on a
    CPU: between 1.0 and 1.4 times the measured bytes per frame for 12 to 100
    states, latent dimensions 3 to 10, 1 to 3 lags, 2D and 3D, both
    samplers (``benchmarks/RESULTS.md``; test
    ``test_frame_bytes_bound_the_compiled_sweep``). Resident memory is the
    data and latent variables kept between sweeps.
    """
    dim = config.latent_dim
    working = _syllable_floats(config)
    if config.stage == "full":
        if config.parallel_message_passing:
            # The scan's S x S elements coexist with the per-frame buffers of
            # the continuous latents (measured; the serial filter's do not).
            serial = config._replace(parallel_message_passing=False)
            working += _pose_floats(serial, num_keypoints, num_dims)
        working = max(working, _pose_floats(config, num_keypoints, num_dims))
    resident = 2 * num_keypoints * num_dims + 3 * num_keypoints + dim + num_dims + 4
    return working * itemsize, resident * itemsize


def block_bytes(config: core.ModelConfig, itemsize: int) -> int:
    """Working memory that does not grow with the frames.

    The AR log-likelihoods and sufficient statistics are computed
    ``FRAME_BLOCK`` frames at a time: every state's residuals, or the
    products of the regressors, of one block.
    """
    joint = config.latent_dim * (config.nlags + 1) + 1
    states = config.num_states
    per_frame = max(states * (config.latent_dim + 1), joint * (joint + 1) // 2 + joint)
    return FRAME_BLOCK * per_frame * itemsize


def _sweep_temp_bytes(
    config: core.ModelConfig, rows: int, frames: int, num_keypoints: int, num_dims: int
) -> int:
    """XLA's temporary bytes of the sweep compiled for these shapes (no data)."""
    from moseq_xr.fitting.api import KEY_IMPL

    dtype, dim = jnp.result_type(float), config.latent_dim

    def spec(*shape):
        return jax.ShapeDtypeStruct(shape, dtype)

    data = core.ModelData(
        spec(rows, frames, num_keypoints, num_dims),
        spec(rows, frames),
        spec(rows, frames, num_keypoints),
    )
    pose = (  # (Cd, x, v, h) of the pose initialisation
        spec((num_keypoints - 1) * num_dims, dim + 1),
        spec(rows, frames, dim),
        spec(rows, frames, num_dims),
        spec(rows, frames),
    )
    hypers = core.make_hypers(config)
    key = jax.random.key(0, impl=KEY_IMPL)
    state = jax.eval_shape(
        lambda k, d, p: core.init(k, d, hypers, config, p), key, data, pose
    )
    step = jax.jit(core.step, static_argnames="config")
    compiled = step.lower(key, state, data, hypers, config=config).compile()
    return compiled.memory_analysis().temp_size_in_bytes


def measure_frame_bytes(
    config: core.ModelConfig,
    num_keypoints: int,
    num_dims: int,
    *,
    precision: str = "float64",
    frames: int = 5000,
    rows: tuple[int, int] = (2, 6),
) -> tuple[float, float]:
    """What a sweep really needs: ``(bytes per frame, fixed bytes)`` on this backend.

    Compiles the sweep for two numbers of segment rows (``rows``) of
    ``frames`` frames (shapes only, no data) and reads XLA's own accounting
    of its temporaries (``Compiled.memory_analysis()``); the difference
    gives the bytes per frame and the intercept the fixed part. Use it to check
    :func:`frame_bytes` on a new kind of device; each call compiles the
    sweep twice (seconds for the AR stage, about a minute for the full model
    on a CPU).
    """
    with jax.enable_x64(precision == "float64"):
        small, large = (
            _sweep_temp_bytes(config, count, frames, num_keypoints, num_dims)
            for count in rows
        )
    per_frame = (large - small) / ((rows[1] - rows[0]) * frames)
    return per_frame, small - rows[0] * frames * per_frame


def available_bytes(device: jax.Device) -> int | None:
    """Free memory of a device (host memory for CPUs); ``None`` when unknown."""
    stats = device.memory_stats() if hasattr(device, "memory_stats") else None
    if stats and "bytes_limit" in stats:
        return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _too_big(needed: int, available: int, row_length: int, rows: int) -> FitError:
    return FitError(
        f"this fit needs about {needed / 1e9:.2f} GB per device for its data and "
        f"one segment row of {row_length} frames, but only {available / 1e9:.2f} GB "
        f"are available ({rows} rows per device). Use shorter segments "
        "(max_seg_length=...), fewer states (num_states=...), "
        "precision='float32', more devices, or fit fewer recordings at a time"
    )


def plan_memory(
    num_rows: int,
    row_length: int,
    config: core.ModelConfig,
    num_keypoints: int,
    num_dims: int,
    itemsize: int,
    devices: list[jax.Device],
    memory_limit: int | float | str | None = None,
) -> MemoryPlan:
    """Choose how many rows each device samples at once.

    Parameters
    ----------
    num_rows, row_length
        Segment rows and frames per row.
    config
        The model's static configuration (stage, sizes).
    num_keypoints, num_dims, itemsize
        Data sizes and bytes per float.
    devices
        The devices the rows are split over.
    memory_limit
        Bytes (or ``"8GB"``) each device may use; default: a fraction of its
        free memory.

    Returns
    -------
    MemoryPlan

    Raises
    ------
    FitError
        When not even one row per device fits.
    """
    working, resident = frame_bytes(config, num_keypoints, num_dims, itemsize)
    per_device = math.ceil(num_rows / len(devices))
    if memory_limit is not None:
        limit = parse_bytes(memory_limit)
    else:
        free = [available_bytes(d) for d in devices]
        known = [f for f in free if f is not None]
        limit = int(HEADROOM * min(known)) if known else None
    held = per_device * row_length * resident + block_bytes(config, itemsize)
    needed = held + per_device * row_length * working
    if limit is None or needed <= limit:
        return MemoryPlan(None, per_device, working, needed, limit or needed)
    spare = limit - held
    rows = spare // (row_length * working)
    if rows < 1:
        raise _too_big(held + row_length * working, limit, row_length, per_device)
    return MemoryPlan(int(rows), per_device, working, needed, limit)


def device_mesh(devices: Any = None) -> tuple[list[jax.Device], Mesh | None]:
    """The devices of a fit and the mesh its rows are split over (``None``: one device).

    Parameters
    ----------
    devices
        ``None`` (every device of the default backend), an int (the first
        ``n``), or a list of devices.
    """
    visible = jax.devices()
    if devices is None:
        chosen = visible
    elif isinstance(devices, int):
        if not 1 <= devices <= len(visible):
            raise ValueError(
                f"devices={devices}: between 1 and {len(visible)} devices are visible"
            )
        chosen = visible[:devices]
    else:
        chosen = list(devices)
    if len(chosen) == 1:
        return chosen, None
    if chosen[0].platform == "cpu" and _CPU_SCHEDULER_FLAG not in os.environ.get(
        "XLA_FLAGS", ""
    ):
        warnings.warn(
            f"splitting a fit over {len(chosen)} CPU devices: jaxlib's CPU runtime "
            f"can deadlock there unless XLA_FLAGS contains {_CPU_SCHEDULER_FLAG}; "
            "on one CPU a single device is usually faster (devices=1)",
            MoseqXrWarning,
            stacklevel=3,
        )
    return chosen, Mesh(np.array(chosen), (ROW_AXIS,))


def _pad_leaf(leaf: jax.Array, extra: int, fill: float | None) -> jax.Array:
    copies = jnp.repeat(leaf[:1], extra, axis=0)
    if fill is not None:
        copies = jnp.full_like(copies, fill)
    return jnp.concatenate([leaf, copies])


def pad_rows(
    data: core.ModelData, latents: core.Latents, multiple: int
) -> tuple[core.ModelData, core.Latents]:
    """Add fully masked rows (copies of row 0) up to a multiple of ``multiple``."""
    extra = -data.Y.shape[0] % multiple
    if extra == 0:
        return data, latents
    data = core.ModelData(
        Y=_pad_leaf(data.Y, extra, None),
        mask=_pad_leaf(data.mask, extra, 0.0),
        noise_prior=_pad_leaf(data.noise_prior, extra, None),
    )
    latents = jax.tree_util.tree_map(lambda a: _pad_leaf(a, extra, None), latents)
    return data, latents


def shardings(mesh: Mesh) -> tuple[NamedSharding, NamedSharding]:
    """``(rows split, replicated)`` shardings of a mesh."""
    return NamedSharding(mesh, PartitionSpec(ROW_AXIS)), NamedSharding(
        mesh, PartitionSpec()
    )


def place(
    data: core.ModelData, state: core.ModelState, mesh: Mesh | None
) -> tuple[core.ModelData, core.ModelState]:
    """Pad the rows to the mesh size and put them on its devices."""
    if mesh is None:
        return data, state
    data, latents = pad_rows(data, state.latents, mesh.size)
    rows, replicated = shardings(mesh)
    data = jax.device_put(data, rows)
    state = core.ModelState(
        jax.device_put(state.params, replicated), jax.device_put(latents, rows)
    )
    return data, state


def constrain(state: core.ModelState, mesh: Mesh | None) -> core.ModelState:
    """Keep a sweep's output on its input's shardings (no recompiles)."""
    if mesh is None:
        return state
    rows, replicated = shardings(mesh)
    return core.ModelState(
        jax.lax.with_sharding_constraint(state.params, replicated),
        jax.lax.with_sharding_constraint(state.latents, rows),
    )


__all__ = [
    "MemoryPlan",
    "available_bytes",
    "block_bytes",
    "constrain",
    "device_mesh",
    "frame_bytes",
    "measure_frame_bytes",
    "pad_rows",
    "parse_bytes",
    "place",
    "plan_memory",
]
