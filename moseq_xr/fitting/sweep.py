"""The Gibbs sweep compiled as its parts, which XLA compiles at the same time.

:func:`moseq_xr.core.model.step_parts` splits a stage's sweep into
consecutive parts (three for the full model: the discrete parameters and
syllables, the pose latents, the heading, centroid and noise scales). Each
part is compiled as its own program and all of them concurrently
(:class:`~moseq_xr.fitting.compile_cache.ChainedJit`); run in turn with the
sweep's key they draw exactly what ``core.step`` draws.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from moseq_xr.core import model as core
from moseq_xr.fitting.compile_cache import ChainedJit
from moseq_xr.fitting.placement import constrain


def _constrained(
    part: Callable[..., Any], trace_counts: dict[str, int] | None
) -> Callable[..., Any]:
    """``part`` keeping the state on the fit's mesh, counting its traces."""

    def constrained(key, state, data, hypers, config: core.ModelConfig):
        if trace_counts is not None:
            trace_counts[config.stage] = trace_counts.get(config.stage, 0) + 1
        result = part(key, state, data, hypers, config)
        if isinstance(result, core.ModelState):
            return constrain(result, config.mesh)
        state, info = result
        return constrain(state, config.mesh), info

    constrained.__name__ = part.__name__
    return constrained


class SweepJit:
    """The sweep of each stage, ``sweep(key, state, data, hypers, config=config)``.

    The same as ``core.step(key, state, data, hypers, config)``, with the
    state constrained to ``config.mesh``; compiled on first use per stage and
    shape, part by part and concurrently.

    Parameters
    ----------
    trace_counts
        Dictionary in which ``trace_counts[stage]`` is incremented every time
        one of the stage's parts is traced (tests use it to check that a fit
        compiles once).
    """

    def __init__(self, trace_counts: dict[str, int] | None = None):
        self._stages = {
            stage: ChainedJit(
                [_constrained(part, trace_counts) for part in core.step_parts(stage)],
                static_argnames="config",
                carry_argnum=1,
            )
            for stage in core.SWEEP_STAGES
        }

    def __call__(self, key, state, data, hypers, config: core.ModelConfig):
        """One sweep of ``config.stage``: ``(state, info)``."""
        return self._stages[config.stage](key, state, data, hypers, config=config)

    def clear_memory(self) -> None:
        """Forget the compiled parts held in memory (a disk cache stays)."""
        for chained in self._stages.values():
            chained.clear_memory()


__all__ = ["SweepJit"]
