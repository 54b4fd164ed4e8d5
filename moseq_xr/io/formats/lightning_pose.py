"""Lightning Pose prediction and label CSVs (spec §2.4).

A Lightning Pose CSV is laid out exactly like a single-animal DeepLabCut CSV
(header rows ``scorer, bodyparts, coords``; integer frame index, or image paths
in ``CollectedData.csv`` label files), so it is read by the DLC-style reader of
:mod:`moseq_xr.io.formats.deeplabcut` with ``source_software="LightningPose"``.
Coordinates are selected by name, so ensemble (EKS) outputs with nine coords per
keypoint (``x, y, likelihood, x_ens_median, ..., y_posterior_var``) give x, y and
likelihood; 3-D EKS outputs (``x, y, z, x_posterior_var, ...``) give x, y, z
without confidence.

Detection: the content of an LP CSV cannot always be told from a DLC one. The
sniffer claims a CSV only when its scorer contains ``heatmap`` (LP's model
names ``heatmap_tracker``, ``heatmap_mhcrnn_tracker``, ...) or its coords hold
ensemble columns (``*_ens_*``, ``*posterior_var``). Other files, including LP
label files whose scorer is the labeller's name, are detected as
``deeplabcut``; pass ``source="lightning_pose"`` to label them LP. Sidecar CSVs
(``predictions_pixel_error.csv``, ``*_temporal_norm.csv``, ...) lack the DLC
header rows and are never claimed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from moseq_xr.io.formats.deeplabcut import (
    SINGLE_LEVELS,
    AnimalsAsPrefix,
    read_csv_header,
    read_dlc_style,
)
from moseq_xr.io.registry import register_loader
from moseq_xr.schema import RecordingData

SOURCE_SOFTWARE = "LightningPose"
_SCORER_MARKER = "heatmap"
_ENSEMBLE_MARKERS = ("_ens_", "ens_median", "ens_var", "posterior_var")


def _is_lightning_pose(path: Path) -> bool:
    """Whether ``path`` is a DLC-layout CSV with Lightning Pose markers."""
    if path.suffix.lower() != ".csv":
        return False
    header = read_csv_header(path)
    if header is None or header.levels != SINGLE_LEVELS:
        return False
    scorer_is_lp = any(_SCORER_MARKER in s.lower() for s in header.scorers)
    ensemble = any(m in c.lower() for c in header.coords for m in _ENSEMBLE_MARKERS)
    return scorer_is_lp or ensemble


@register_loader(
    "lightning_pose",
    suffixes=(".csv",),
    sniff=_is_lightning_pose,
    priority=15,
    description="Lightning Pose predictions/labels (.csv, DLC layout; EKS ensembles)",
)
def read_lightning_pose(
    path: Path,
    *,
    exclude_individuals: str | Sequence[str] | None = None,
    animals_as_prefix: AnimalsAsPrefix = False,
) -> list[RecordingData]:
    """Read a Lightning Pose predictions, EKS or labels CSV.

    Parameters
    ----------
    path
        A ``.csv`` with the DLC header rows ``scorer, bodyparts, coords``.
    exclude_individuals
        As for DeepLabCut files (LP files hold one animal, so rarely useful).
    animals_as_prefix
        Split ``<animal>_<bodypart>`` names into individuals, as for
        DeepLabCut files.

    Returns
    -------
    list of RecordingData
        One recording named after the file stem (one per image folder for
        label files spanning several videos); x, y[, z] and likelihood are
        selected by name; no fps; ``space_unit`` ``"pixels"`` for 2-D.

    Raises
    ------
    LoaderError
        When the file lacks the DLC-style header.
    """
    return read_dlc_style(path, SOURCE_SOFTWARE, exclude_individuals, animals_as_prefix)
