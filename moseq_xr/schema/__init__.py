"""The pose data contract: names, the constructor and the validator."""

from moseq_xr.schema.build import RecordingData, build_dataset
from moseq_xr.schema.json_schema import describe, json_schema
from moseq_xr.schema.names import DIMS, SCHEMA_VERSION
from moseq_xr.schema.validate import validate

__all__ = [
    "DIMS",
    "SCHEMA_VERSION",
    "RecordingData",
    "build_dataset",
    "describe",
    "json_schema",
    "validate",
]
