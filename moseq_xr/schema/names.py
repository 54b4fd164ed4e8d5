"""The pose data contract, written as data.

Everything that builds, checks or serialises a moseq_xr pose Dataset reads these
tables: :func:`moseq_xr.schema.build_dataset` (the only constructor),
:func:`moseq_xr.schema.validate`, and ``schemas/pose_dataset.schema.json``
(generated from this module by :func:`moseq_xr.schema.json_schema`).

A pose Dataset holds any number of recordings::

    position    (recording, time, space, keypoint, individual)  float, NaN = missing
    confidence  (recording, time, keypoint, individual)         float, NaN = missing

Within one recording the dims are exactly those of the ``movement`` package, so
``ds.sel(recording=r)`` is a movement-style poses Dataset. Recordings shorter
than the longest are NaN-padded at the end; ``n_frames`` says how long each is.
``time`` is the frame index divided by fps (every recording starts at video
frame 0; untracked frames are NaN rows, so keypoints always line up with video
frames). ``timestamp`` carries absolute sample times where a file records them.
"""

from __future__ import annotations

from typing import NamedTuple

SCHEMA_VERSION = "1.0.0"

RECORDING = "recording"
TIME = "time"
SPACE = "space"
KEYPOINT = "keypoint"
INDIVIDUAL = "individual"

#: Dimension order of ``position``; every other variable uses a subset in this order.
DIMS: tuple[str, ...] = (RECORDING, TIME, SPACE, KEYPOINT, INDIVIDUAL)

#: Allowed labels of the ``space`` dimension, in order.
SPACE_LABELS: tuple[str, ...] = ("x", "y", "z")

#: Dimension of per-syllable result variables on the pose Dataset.
SYLLABLE_ID = "syllable_id"

#: Default individual name for formats that track one animal without naming it.
DEFAULT_INDIVIDUAL = "individual_0"


class VariableSpec(NamedTuple):
    """What the contract requires of one variable or coordinate.

    Attributes
    ----------
    dims
        Dimension names in their required order.
    kind
        numpy dtype kinds accepted (``"f"`` float, ``"i"`` signed int, ``"U"``
        string, ``"b"`` bool, ...).
    required
        Whether every pose Dataset must have it.
    description
        One line for users, the docs and the JSON Schema.
    """

    dims: tuple[str, ...]
    kind: str
    required: bool
    description: str


DATA_VARS: dict[str, VariableSpec] = {
    "position": VariableSpec(
        DIMS, "f", True, "Keypoint coordinates; NaN where missing or padded."
    ),
    "confidence": VariableSpec(
        (RECORDING, TIME, KEYPOINT, INDIVIDUAL),
        "f",
        True,
        "Tracker confidence per keypoint; NaN where missing. Filled with 1.0 "
        "for recordings whose source has none (see coordinate confidence_filled).",
    ),
}

COORDS: dict[str, VariableSpec] = {
    RECORDING: VariableSpec((RECORDING,), "UO", True, "Unique recording name."),
    TIME: VariableSpec((TIME,), "f", True, "Seconds since video frame 0: frame / fps."),
    "frame": VariableSpec((TIME,), "i", True, "Video frame index of each sample."),
    SPACE: VariableSpec((SPACE,), "UO", True, "Axis labels: x, y[, z]."),
    KEYPOINT: VariableSpec((KEYPOINT,), "UO", True, "Keypoint (body part) names."),
    INDIVIDUAL: VariableSpec((INDIVIDUAL,), "UO", True, "Individual (animal) names."),
    "n_frames": VariableSpec(
        (RECORDING,), "iu", True, "Number of real frames; the rest is padding."
    ),
    "source_file": VariableSpec(
        (RECORDING,), "UO", True, "File the recording was read from ('' if none)."
    ),
    "source_software": VariableSpec(
        (RECORDING,), "UO", True, "Tracking software that produced the file."
    ),
    "confidence_filled": VariableSpec(
        (RECORDING,), "b", True, "True where the source had no confidence (1.0 used)."
    ),
    "start_time": VariableSpec(
        (RECORDING,), "f", True, "Absolute time of frame 0 in seconds (0 if unknown)."
    ),
    "timestamp": VariableSpec(
        (RECORDING, TIME),
        "f",
        True,
        "Absolute sample times in seconds (file timestamps where recorded, else "
        "start_time + time); NaN in padding.",
    ),
    "video_path": VariableSpec(
        (RECORDING,),
        "UO",
        False,
        "Video the keypoints were tracked on ('' if unknown).",
    ),
}

#: Variables the model adds to a pose Dataset (checked when present).
RESULT_VARS: dict[str, VariableSpec] = {
    "syllable": VariableSpec(
        (RECORDING, INDIVIDUAL, TIME), "i", False, "Syllable label; -1 where none."
    ),
    "syllable_probability": VariableSpec(
        (RECORDING, INDIVIDUAL, TIME, SYLLABLE_ID),
        "f",
        False,
        "Posterior probability of each syllable per frame (dim syllable_id: a "
        "dimension cannot share the name of the syllable variable).",
    ),
    "centroid": VariableSpec(
        (RECORDING, INDIVIDUAL, TIME, SPACE), "f", False, "Model centroid."
    ),
    "heading": VariableSpec(
        (RECORDING, INDIVIDUAL, TIME), "f", False, "Model heading in radians."
    ),
    "latent_state": VariableSpec(
        (RECORDING, INDIVIDUAL, TIME, "latent"), "f", False, "Pose latent state."
    ),
}


class AttrSpec(NamedTuple):
    """What the contract requires of one Dataset attribute."""

    json_type: str
    required: bool
    description: str


ATTRS: dict[str, AttrSpec] = {
    "fps": AttrSpec("number", True, "Frames per second shared by all recordings."),
    "schema_version": AttrSpec("string", True, "Version of this contract."),
    "provenance": AttrSpec(
        "array",
        True,
        "Log of operations: {operation, arguments, version, time}, oldest first.",
    ),
    "skeleton": AttrSpec(
        "array", False, "Edges as [keypoint, keypoint] name pairs, when known."
    ),
    "space_unit": AttrSpec(
        "string", False, "Unit of position: pixels, millimeters, meters or unknown."
    ),
}

SPACE_UNITS: tuple[str, ...] = (
    "pixels",
    "millimeters",
    "centimeters",
    "meters",
    "unknown",
)
