"""Facemap keypoints (``<video>_FacemapPose.h5``).

Layout: an HDF5 group ``Facemap`` with one subgroup per bodypart, each holding
1-D datasets ``x``, ``y`` and ``likelihood`` of length T (float32, pixels).

Bodypart order
--------------
h5py lists the subgroups alphabetically unless the file tracks link creation
order, and Facemap writes without tracking it. The order is therefore taken,
in this priority, from:

1. the creation order, when the ``Facemap`` group tracks it;
2. the ``bodyparts`` list of the sibling ``<stem>_metadata.pkl`` that Facemap
   writes beside the ``.h5`` (read with a restricted unpickler that only
   accepts builtin containers and numpy arrays/scalars, so a hostile pickle
   cannot run code);
3. alphabetical order otherwise (this is also what keypoint-MoSeq uses).

Very old Facemap versions wrote a DeepLabCut-style ``df_with_missing`` table
instead; those files load with the ``deeplabcut`` loader.
"""

from __future__ import annotations

import io
import pickle
import warnings
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from moseq_xr.exceptions import DataQualityWarning, LoaderError
from moseq_xr.io.registry import register_loader
from moseq_xr.schema import RecordingData
from moseq_xr.schema.names import DEFAULT_INDIVIDUAL

FACEMAP_GROUP = "Facemap"
SOURCE_SOFTWARE = "Facemap"
_METADATA_SUFFIX = "_metadata.pkl"

#: Globals a Facemap metadata pickle may reference (numpy arrays and scalars).
_SAFE_PICKLE_GLOBALS = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("_codecs", "encode"),
    ("builtins", "tuple"),
    ("builtins", "list"),
    ("builtins", "dict"),
    ("builtins", "set"),
    ("collections", "OrderedDict"),
}


def _is_facemap(path: Path) -> bool:
    """Whether ``path`` is an HDF5 file with a top-level ``Facemap`` group."""
    if not h5py.is_hdf5(path):
        return False
    with h5py.File(path, "r") as h5:
        return isinstance(h5.get(FACEMAP_GROUP), h5py.Group)


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that refuses every global outside :data:`_SAFE_PICKLE_GLOBALS`."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _SAFE_PICKLE_GLOBALS:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed")
        return super().find_class(module, name)


def _metadata_bodyparts(path: Path) -> list[str] | None:
    """Bodypart list of the sibling ``<stem>_metadata.pkl``, or None."""
    metadata_path = path.with_name(path.stem + _METADATA_SUFFIX)
    if not metadata_path.is_file():
        return None
    try:
        metadata = _RestrictedUnpickler(io.BytesIO(metadata_path.read_bytes())).load()
        bodyparts = [str(name) for name in metadata["bodyparts"]]
    except Exception as error:  # any unreadable pickle: fall back, but say so
        warnings.warn(
            f"{metadata_path}: cannot read the bodyparts list ({error}); "
            "bodyparts are ordered alphabetically",
            DataQualityWarning,
            stacklevel=4,
        )
        return None
    return bodyparts


def _bodypart_order(path: Path, group: h5py.Group) -> list[str]:
    """Bodypart names in file order (see the module docstring)."""
    names = [name for name, item in group.items() if isinstance(item, h5py.Group)]
    if group.id.get_create_plist().get_link_creation_order():
        return names  # h5py iterates in creation order when it is tracked
    listed = _metadata_bodyparts(path)
    if listed is None:
        return sorted(names)
    if sorted(listed) != sorted(names):
        warnings.warn(
            f"{path}: the bodyparts of {path.stem + _METADATA_SUFFIX} {listed} "
            f"differ from the file's {sorted(names)}; ordering them alphabetically",
            DataQualityWarning,
            stacklevel=3,
        )
        return sorted(names)
    return listed


def _read_bodypart(
    path: Path, group: h5py.Group, name: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """``x``, ``y`` and ``likelihood`` (None if absent) of one bodypart."""
    part = group[name]
    missing = [key for key in ("x", "y") if key not in part]
    if missing:
        raise LoaderError(
            path,
            f"bodypart {name!r} has no {missing} dataset(s); expected x, y, likelihood",
        )
    x = np.asarray(part["x"][()], dtype=np.float64).ravel()
    y = np.asarray(part["y"][()], dtype=np.float64).ravel()
    likelihood = None
    if "likelihood" in part:
        likelihood = np.asarray(part["likelihood"][()], dtype=np.float64).ravel()
    lengths = {x.size, y.size} | (
        {likelihood.size} if likelihood is not None else set()
    )
    if len(lengths) != 1:
        raise LoaderError(path, f"bodypart {name!r}: x, y, likelihood differ in length")
    return x, y, likelihood


def _stack_bodyparts(
    path: Path, group: h5py.Group, names: list[str]
) -> tuple[np.ndarray, np.ndarray | None]:
    """Position (time, 2, keypoint, 1) and confidence (time, keypoint, 1)."""
    columns = [_read_bodypart(path, group, name) for name in names]
    lengths = sorted({x.size for x, _, _ in columns})
    if len(lengths) != 1:
        raise LoaderError(path, f"bodyparts have different numbers of frames {lengths}")
    position = np.stack([np.stack([x, y], axis=1) for x, y, _ in columns], axis=-1)[
        ..., None
    ]
    if all(likelihood is None for _, _, likelihood in columns):
        return position, None
    n_time = lengths[0]
    confidence = np.stack(
        [np.full(n_time, np.nan) if lik is None else lik for _, _, lik in columns],
        axis=-1,
    )
    return position, confidence[..., None]


@register_loader(
    "facemap",
    suffixes=(".h5", ".hdf5"),
    sniff=_is_facemap,
    priority=30,
    description="Facemap keypoints (<video>_FacemapPose.h5), 2D, single animal",
)
def read_facemap(path: Path) -> list[RecordingData]:
    """Read a Facemap ``_FacemapPose.h5`` keypoint file.

    Parameters
    ----------
    path
        The ``.h5`` file written by Facemap's pose estimation.

    Returns
    -------
    list of RecordingData
        One recording named after the file stem, 2-D in pixels, one individual
        (``individual_0``), ``likelihood`` as confidence. The file records no
        frame rate. Bodypart order: see the module docstring.
    """
    path = Path(path)
    with h5py.File(path, "r") as h5:
        group = h5.get(FACEMAP_GROUP)
        if not isinstance(group, h5py.Group):
            raise LoaderError(
                path,
                f"no '{FACEMAP_GROUP}' group; expected a Facemap _FacemapPose.h5 file",
            )
        names = _bodypart_order(path, group)
        if not names:
            raise LoaderError(path, f"the '{FACEMAP_GROUP}' group holds no bodyparts")
        position, confidence = _stack_bodyparts(path, group, names)
    return [
        RecordingData(
            name=path.stem,
            position=position,
            keypoints=names,
            individuals=[DEFAULT_INDIVIDUAL],
            confidence=confidence,
            source_file=path.as_posix(),
            source_software=SOURCE_SOFTWARE,
            space_unit="pixels",
        )
    ]
