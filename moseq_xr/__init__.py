"""moseq_xr: behavioural syllables and states from pose tracking, on xarray.

Importing the package registers the ``ds.moseq`` accessor and nothing else:
no JAX configuration, warning filters or other global state is changed.
"""

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

__all__ = [
    "__version__",
    "detect_source",
    "from_arrays",
    "load_poses",
    "open",
    "save",
    "supported_sources",
    "validate",
]
