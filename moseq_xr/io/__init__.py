"""Reading pose files and the project store.

One module per tracking format lives in :mod:`moseq_xr.io.formats`; each
registers itself with :func:`moseq_xr.io.registry.register_loader`.
"""

from moseq_xr.io.load import expand_paths, from_arrays, load_poses
from moseq_xr.io.registry import detect_source, register_loader, supported_sources
from moseq_xr.io.store import is_store, open, save

__all__ = [
    "detect_source",
    "expand_paths",
    "from_arrays",
    "is_store",
    "load_poses",
    "open",
    "register_loader",
    "save",
    "supported_sources",
]
