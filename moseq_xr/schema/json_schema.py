"""Render the pose data contract as a JSON Schema.

The schema describes the Zarr/JSON metadata of a pose Dataset (dims, variable
dtypes and attributes), as xarray writes it in ``.zmetadata``-like form. The
file ``schemas/pose_dataset.schema.json`` is this function's output; a test
keeps the two identical (``python -m moseq_xr.schema.json_schema`` rewrites it).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from moseq_xr.schema import names as N

_KIND_NAMES = {"f": "float", "i": "int", "iu": "int", "UO": "string", "b": "bool"}


def _variable_schema(spec: N.VariableSpec) -> dict[str, Any]:
    return {
        "type": "object",
        "description": spec.description,
        "properties": {
            "dims": {"const": list(spec.dims)},
            "dtype": {"const": _KIND_NAMES[spec.kind]},
        },
        "required": ["dims", "dtype"],
    }


def json_schema() -> dict[str, Any]:
    """Return the contract as a JSON Schema (draft 2020-12) dict.

    Returns
    -------
    dict
        Describes ``{"schema_version", "dims", "variables", "attrs"}``, the
        summary :func:`describe` produces for a Dataset.
    """
    variables = {**N.COORDS, **N.DATA_VARS, **N.RESULT_VARS}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://moseq-xr.org/schemas/pose_dataset/{N.SCHEMA_VERSION}",
        "title": "moseq_xr pose Dataset",
        "description": (N.__doc__ or "").strip().splitlines()[0],
        "type": "object",
        "properties": {
            "schema_version": {"const": N.SCHEMA_VERSION},
            "dims": {
                "type": "array",
                "description": "Dimension order of position.",
                "const": list(N.DIMS),
            },
            "variables": {
                "type": "object",
                "properties": {
                    name: _variable_schema(spec) for name, spec in variables.items()
                },
                "required": [n for n, s in variables.items() if s.required],
            },
            "attrs": {
                "type": "object",
                "properties": {
                    name: {"type": spec.json_type, "description": spec.description}
                    for name, spec in N.ATTRS.items()
                },
                "required": [n for n, s in N.ATTRS.items() if s.required],
            },
        },
        "required": ["schema_version", "dims", "variables", "attrs"],
    }


def _dtype_name(dtype: Any) -> str:
    kind = "U" if dtype.kind in "TO" else dtype.kind
    for kinds, name in _KIND_NAMES.items():
        if kind in kinds:
            return name
    return str(dtype)


def describe(ds: Any) -> dict[str, Any]:
    """Summarise a Dataset in the form the JSON Schema describes.

    Parameters
    ----------
    ds
        An xarray Dataset.

    Returns
    -------
    dict
        JSON-safe: dims of ``position``, each variable's dims and dtype name,
        and the attributes.
    """
    from moseq_xr._provenance import json_safe

    position_dims = list(ds["position"].dims) if "position" in ds else []
    return {
        "schema_version": ds.attrs.get("schema_version"),
        "dims": position_dims,
        "variables": {
            str(name): {"dims": list(var.dims), "dtype": _dtype_name(var.dtype)}
            for name, var in ds.variables.items()
        },
        "attrs": json_safe(dict(ds.attrs)),
    }


def write_json_schema(path: str | Path) -> None:
    """Write :func:`json_schema` to ``path`` (pretty-printed, trailing newline)."""
    Path(path).write_text(json.dumps(json_schema(), indent=2) + "\n")


if __name__ == "__main__":  # pragma: no cover
    write_json_schema(
        sys.argv[1] if len(sys.argv) > 1 else "schemas/pose_dataset.schema.json"
    )
