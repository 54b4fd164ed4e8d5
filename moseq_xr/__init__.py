"""moseq_xr: behavioural syllables and states from pose tracking, on xarray.

Importing the package registers the ``ds.moseq`` accessor and nothing else:
no JAX configuration, warning filters or other global state is changed. JAX is
imported only when a model function is first used.
"""

from typing import Any

from moseq_xr import accessor as _accessor  # noqa: F401  (registers ds.moseq)
from moseq_xr._version import __version__
from moseq_xr.io import (
    detect_source,
    from_arrays,
    load_poses,
    open,
    save,
    supported_sources,
)
from moseq_xr.qc import qc as qc
from moseq_xr.schema import validate

_LAZY = {
    "apply": "moseq_xr.fitting.apply",
    "estimate_syllable_marginals": "moseq_xr.fitting.marginals",
    "expected_marginal_likelihoods": "moseq_xr.fitting.comparison",
    "fit": "moseq_xr.fitting.api",
    "kappa_scan": "moseq_xr.fitting.selection",
    "resume": "moseq_xr.fitting.api",
    "simulate": "moseq_xr.simulation",
    "update_hyperparameters": "moseq_xr.fitting.hyperparameters",
}


def __getattr__(name: str) -> Any:
    """Import the model entry points on first use (keeps ``import moseq_xr`` light)."""
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'moseq_xr' has no attribute {name!r}")


__all__ = [
    "__version__",
    "apply",
    "detect_source",
    "estimate_syllable_marginals",
    "expected_marginal_likelihoods",
    "fit",
    "from_arrays",
    "kappa_scan",
    "load_poses",
    "open",
    "qc",
    "resume",
    "save",
    "simulate",
    "supported_sources",
    "update_hyperparameters",
    "validate",
]
