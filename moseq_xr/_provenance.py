"""The provenance log kept in ``ds.attrs["provenance"]``.

Each operation that produces a new Dataset appends one entry: the operation
name, its arguments (made JSON-safe), the package version and a UTC time stamp.
The log is a plain list of dicts so that it survives Zarr and JSON.
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from moseq_xr._version import __version__

PROVENANCE_ATTR = "provenance"


def json_safe(value: Any) -> Any:
    """Convert ``value`` into something ``json.dumps`` accepts.

    Parameters
    ----------
    value
        Any argument value.

    Returns
    -------
    object
        Built from dicts, lists, strings, numbers, booleans and None only.
    """
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        value = float(value)
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Path):
        return value.as_posix()
    if isinstance(value, Mapping):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_safe(item) for item in value]
    if isinstance(value, np.ndarray):
        if value.size > 64:
            return f"<array shape={list(value.shape)} dtype={value.dtype}>"
        return json_safe(value.tolist())
    return repr(value)


def provenance_entry(operation: str, arguments: Mapping[str, Any]) -> dict[str, Any]:
    """Build one provenance entry.

    Parameters
    ----------
    operation
        Public name of the function, e.g. ``"moseq_xr.load_poses"``.
    arguments
        The arguments it was called with.

    Returns
    -------
    dict
        ``{"operation", "arguments", "version", "time"}``.
    """
    return {
        "operation": operation,
        "arguments": json_safe(dict(arguments)),
        "version": __version__,
        "time": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }


def with_provenance(
    attrs: Mapping[str, Any], operation: str, arguments: Mapping[str, Any]
) -> dict[str, Any]:
    """Return a copy of ``attrs`` whose provenance log has one more entry.

    Parameters
    ----------
    attrs
        Attributes of the Dataset the operation started from.
    operation, arguments
        See :func:`provenance_entry`.

    Returns
    -------
    dict
        New attributes; ``attrs`` itself is not modified.
    """
    new_attrs = dict(attrs)
    log = list(new_attrs.get(PROVENANCE_ATTR, []))
    log.append(provenance_entry(operation, arguments))
    new_attrs[PROVENANCE_ATTR] = log
    return new_attrs
