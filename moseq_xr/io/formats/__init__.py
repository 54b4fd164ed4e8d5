"""One module per pose-file format; importing this package registers them all.

The import order sets nothing: each module declares its own ``priority``.
Modules whose third-party reader is optional (sleap-io, pynwb) import it
inside their read function, so registering them costs nothing.
"""

from importlib import import_module

_FORMAT_MODULES = (
    "deeplabcut",
    "lightning_pose",
    "anipose",
    "sleap_analysis",
    "sleap_slp",
    "sleap_anipose",
    "nwb",
    "facemap",
    "freipose",
    "dannce",
    "movement_netcdf",
)

for _name in _FORMAT_MODULES:
    try:
        import_module(f"moseq_xr.io.formats.{_name}")
    except ModuleNotFoundError as _error:  # a format module not written yet
        if _error.name != f"moseq_xr.io.formats.{_name}":
            raise
