"""The Gibbs loop: one compiled step, a key per iteration, progress, checkpoints.

The key of iteration ``i`` is ``fold_in(base_key, i)``, so a chain resumed from
a checkpoint draws exactly what the uninterrupted chain would have drawn.
After every sweep the step reports whether each state leaf is finite; a sweep
that produced NaN or inf is discarded, the loop stops, and the caller gets the
last good state with the name of the variable that went bad. Ctrl-C stops the
loop the same way.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import numpy as np
from tqdm.auto import tqdm

from moseq_xr.exceptions import MoseqXrWarning


class FitStoppedWarning(MoseqXrWarning):
    """A fit stopped before its last iteration (NaN, inf or interruption)."""


TRACE_FIELDS = (
    "log_joint",
    "log_likelihood",
    "log_prob_states",
    "log_prior",
    "median_duration",
    "num_states_used",
)


class ChainResult(NamedTuple):
    """Outcome of :func:`run_chain`."""

    state: Any
    trace: dict[str, list[float]]
    iteration: int
    stop_reason: str | None


def leaf_names(state: Any) -> list[str]:
    """Dotted names of the state's leaves, in flattening order (``params.Ab``...)."""
    paths, _ = jax.tree_util.tree_flatten_with_path(state)
    return [jax.tree_util.keystr(path, simple=True, separator=".") for path, _ in paths]


def _nan_advice(bad: list[str], precision: str) -> str:
    advice = (
        "check the data with ds.moseq.qc() (outliers, huge coordinates) "
        "or try a smaller latent_dim"
    )
    if precision != "float64":
        advice = 'use precision="float64", or ' + advice
    return f"non-finite values in {', '.join(bad)} after the sweep; {advice}"


def _record(
    trace: dict[str, list[Any]],
    info: Any,
    seconds: float,
    fps: float,
    labels: dict[str, Any],
) -> None:
    for name, value in labels.items():
        trace.setdefault(name, []).append(value)
    for name in TRACE_FIELDS:
        trace.setdefault(name, []).append(float(getattr(info, name)))
    trace.setdefault("median_duration_s", []).append(float(info.median_duration) / fps)
    trace.setdefault("seconds", []).append(seconds)


def run_chain(
    step: Callable[[jax.Array, Any], tuple[Any, Any]],
    state: Any,
    key: jax.Array,
    start: int,
    num_iters: int,
    *,
    fps: float,
    trace: dict[str, list[float]] | None = None,
    on_checkpoint: Callable[[Any, int, dict[str, list[float]]], None] | None = None,
    checkpoint_every: int = 10,
    progress: bool = True,
    precision: str = "float64",
    labels: dict[str, Any] | None = None,
) -> ChainResult:
    """Run sweeps ``start .. num_iters - 1``.

    Parameters
    ----------
    step
        ``step(key, state) -> (state, info)``, already compiled.
    state
        State after ``start`` sweeps.
    key
        The chain's base key.
    start, num_iters
        Sweeps done so far and the target.
    fps
        Converts durations to seconds in the trace.
    trace
        Trace of the sweeps already done (extended in place).
    on_checkpoint
        Called with ``(state, sweeps_done, trace)`` every ``checkpoint_every``
        sweeps, at the end, and when the loop stops early.
    progress
        Show a progress bar.
    precision
        Mentioned in the advice when a sweep produces NaNs.
    labels
        Constant values recorded in the trace with every sweep (e.g. the stage).

    Returns
    -------
    ChainResult
    """
    trace = {} if trace is None else trace
    names = leaf_names(state)
    reason, done = None, start
    bar = tqdm(
        total=num_iters, initial=start, disable=not progress, desc="gibbs", unit="it"
    )
    try:
        for iteration in range(start, num_iters):
            tic = time.perf_counter()
            new_state, info = step(jax.random.fold_in(key, iteration), state)
            finite = np.asarray(info.finite)
            seconds = time.perf_counter() - tic
            if not finite.all():
                reason = _nan_advice(
                    [n for n, ok in zip(names, finite, strict=True) if not ok],
                    precision,
                )
                break
            state, done = new_state, iteration + 1
            _record(trace, info, seconds, fps, labels or {})
            bar.update(1)
            bar.set_postfix(
                log_joint=f"{float(info.log_joint):.4g}",
                duration=f"{float(info.median_duration) / fps:.3g}s",
                s_per_it=f"{seconds:.3g}",
            )
            if on_checkpoint and (done % checkpoint_every == 0 or done == num_iters):
                on_checkpoint(state, done, trace)
    except KeyboardInterrupt:
        reason = "interrupted"
    finally:
        bar.close()
    if reason is not None:
        if on_checkpoint and done > start:
            on_checkpoint(state, done, trace)
        warnings.warn(
            f"fit stopped after {done} of {num_iters} iterations: {reason}. "
            "The last good state is kept.",
            FitStoppedWarning,
            stacklevel=3,
        )
    return ChainResult(state, trace, done, reason)
