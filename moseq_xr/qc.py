"""Data-quality report of a pose Dataset, before any modelling.

:func:`qc` measures, per recording, keypoint and individual, how much of the
data a model could not trust: missing coordinates, low tracker confidence and
keypoints that jump away from the body (the medoid-distance rule of
keypoint-MoSeq). It also flags recordings too short to model and keypoints
that are never tracked. Only the real frames of each recording count (the
NaN padding after ``n_frames`` never does).

The report is an :class:`xarray.Dataset`; each problem above a threshold is
listed in ``report.attrs["warnings"]`` and issued as a
:class:`~moseq_xr.exceptions.DataQualityWarning`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import xarray as xr

from moseq_xr.exceptions import DataQualityWarning
from moseq_xr.preprocess.cleaning import flag_outliers
from moseq_xr.schema import names as N
from moseq_xr.schema import validate

if TYPE_CHECKING:
    from rich.console import Console

#: Fewest frames the model can use at all: ``nlags`` (3) + ``min_fragment_length`` (4).
MIN_MODEL_FRAMES = 7

#: Default shortest recording worth modelling, in seconds. Syllables last about
#: 400 ms, so 10 s hold only ~25 of them: shorter recordings add almost nothing
#: to the transition and dynamics estimates and are usually truncated files.
MIN_DURATION_S = 10.0

_PER_KEYPOINT = (N.RECORDING, N.KEYPOINT, N.INDIVIDUAL)


def default_min_frames(fps: float) -> int:
    """Shortest recording length (frames) that :func:`qc` accepts by default.

    Parameters
    ----------
    fps
        Frames per second.

    Returns
    -------
    int
        ``max(ceil(10 s * fps), 7)``: ten seconds of video, and never fewer
        than the ``nlags + min_fragment_length`` frames the model needs.
    """
    return max(math.ceil(MIN_DURATION_S * float(fps)), MIN_MODEL_FRAMES)


class _RecordingStats(NamedTuple):
    nan: np.ndarray  # (keypoint, individual) proportions
    low_confidence: np.ndarray
    outlier: np.ndarray
    outlier_count: np.ndarray
    unusable: np.ndarray
    outlier_frames: int


def _recording_stats(
    position: np.ndarray,
    confidence: np.ndarray,
    outlier: np.ndarray,
    conf_threshold: float,
) -> _RecordingStats:
    """Statistics of one recording's real frames.

    ``position`` is ``(time, space, keypoint, individual)``, ``confidence``
    and ``outlier`` ``(time, keypoint, individual)``, all cut to ``n_frames``.
    """
    n_frames = position.shape[0]
    missing = np.isnan(position).any(axis=1)
    with np.errstate(invalid="ignore"):
        low_confidence = ~missing & (confidence < conf_threshold)
    unusable = missing | low_confidence | outlier
    return _RecordingStats(
        nan=missing.sum(axis=0) / n_frames,
        low_confidence=low_confidence.sum(axis=0) / n_frames,
        outlier=outlier.sum(axis=0) / n_frames,
        outlier_count=outlier.sum(axis=0),
        unusable=unusable.sum(axis=0) / n_frames,
        outlier_frames=int(outlier.any(axis=(1, 2)).sum()),
    )


def _check_thresholds(
    conf_threshold: float,
    outlier_scale: float,
    min_frames: int,
    proportions: dict[str, float],
) -> None:
    if not np.isfinite(conf_threshold):
        raise ValueError(f"conf_threshold must be a number, got {conf_threshold!r}")
    if not outlier_scale > 0:
        raise ValueError(f"outlier_scale must be positive, got {outlier_scale!r}")
    if int(min_frames) < 1:
        raise ValueError(f"min_frames must be at least 1, got {min_frames!r}")
    for name, value in proportions.items():
        if not 0.0 <= value <= 1.0:
            raise ValueError(
                f"{name} must be a proportion between 0 and 1, got {value!r}"
            )


def _pose_dataset(ds: xr.Dataset | xr.DataTree) -> xr.Dataset:
    if isinstance(ds, xr.DataTree):
        ds = ds.to_dataset(inherit=False)
    return validate(ds, deep=False)


def _collect_stats(
    ds: xr.Dataset, conf_threshold: float, outlier_scale: float
) -> list[_RecordingStats]:
    """Statistics per recording, reading one recording at a time."""
    per_frame = (N.TIME, N.KEYPOINT, N.INDIVIDUAL)
    outliers = flag_outliers(ds, scale=outlier_scale)
    stats = []
    for index, n_frames in enumerate(ds["n_frames"].values):
        frames = {N.RECORDING: index, N.TIME: slice(0, int(n_frames))}
        position = ds["position"].isel(frames).transpose(*N.DIMS[1:]).values
        confidence = ds["confidence"].isel(frames).transpose(*per_frame).values
        outlier = outliers.isel(frames).transpose(*per_frame).values
        stats.append(_recording_stats(position, confidence, outlier, conf_threshold))
    return stats


#: Report variables: name -> (dims, long_name). Values come from _report_values.
REPORT_VARIABLES: dict[str, tuple[tuple[str, ...], str]] = {
    "nan_proportion": (_PER_KEYPOINT, "share of frames with a missing coordinate"),
    "low_confidence_proportion": (
        _PER_KEYPOINT,
        "share of frames tracked with confidence below conf_threshold",
    ),
    "outlier_proportion": (_PER_KEYPOINT, "share of frames that are outliers"),
    "outlier_count": (_PER_KEYPOINT, "frames flagged by the medoid-distance rule"),
    "unusable_proportion": (
        _PER_KEYPOINT,
        "share of frames missing, low-confidence or outlying",
    ),
    "always_missing": (_PER_KEYPOINT, "keypoint missing in every frame"),
    "outlier_frames": ((N.RECORDING,), "frames with at least one outlier keypoint"),
    "duration": ((N.RECORDING,), "recording duration in seconds"),
    "too_short": ((N.RECORDING,), "fewer than min_frames frames: too short to model"),
}


def _report_values(
    stats: list[_RecordingStats], n_frames: np.ndarray, fps: float, min_frames: int
) -> dict[str, np.ndarray]:
    def stack(field: str) -> np.ndarray:
        return np.stack([getattr(s, field) for s in stats])

    return {
        "nan_proportion": stack("nan"),
        "low_confidence_proportion": stack("low_confidence"),
        "outlier_proportion": stack("outlier"),
        "outlier_count": stack("outlier_count").astype(np.int64),
        "unusable_proportion": stack("unusable"),
        "always_missing": stack("nan") >= 1.0,
        "outlier_frames": np.array([s.outlier_frames for s in stats], dtype=np.int64),
        "duration": n_frames / fps,
        "too_short": n_frames < min_frames,
    }


def _report_dataset(
    ds: xr.Dataset, values: dict[str, np.ndarray], n_frames: np.ndarray
) -> xr.Dataset:
    variables = {
        name: (dims, values[name], {"long_name": long_name})
        for name, (dims, long_name) in REPORT_VARIABLES.items()
    }
    variables["duration"][2]["units"] = "s"
    coords = {name: ds[name].values for name in _PER_KEYPOINT}
    coords["n_frames"] = (N.RECORDING, n_frames)
    return xr.Dataset(variables, coords=coords)


def _percent(value: float) -> str:
    """Whole percent, with one decimal below 10% so that small shares show."""
    return f"{value:.1%}" if value < 0.1 else f"{value:.0%}"


def _point_label(keypoint: str, individual: str, individuals: list[str]) -> str:
    return keypoint if len(individuals) == 1 else f"{individual}/{keypoint}"


def _listed(
    report: xr.Dataset, rec: int, mask: np.ndarray, values: np.ndarray | None
) -> str:
    """'nose 62%, tail_mid 80%' for the flagged (keypoint, individual) pairs."""
    keypoints = [str(k) for k in report[N.KEYPOINT].values]
    individuals = [str(i) for i in report[N.INDIVIDUAL].values]
    items = []
    for k, i in zip(*np.nonzero(mask[rec]), strict=True):
        label = _point_label(keypoints[k], individuals[i], individuals)
        items.append(
            label if values is None else f"{label} {_percent(values[rec, k, i])}"
        )
    return ", ".join(items)


def _missing_warnings(report: xr.Dataset, rec: int) -> list[str]:
    name = str(report[N.RECORDING].values[rec])
    always = report["always_missing"].values
    messages = []
    absent = always[rec].all(axis=0)
    for i in np.nonzero(absent)[0]:
        individual = str(report[N.INDIVIDUAL].values[i])
        messages.append(
            f"recording '{name}': individual '{individual}' is never tracked"
        )
    partly = always.copy()
    partly[:, :, absent] = False
    if partly[rec].any():
        messages.append(
            f"recording '{name}': keypoint(s) {_listed(report, rec, partly, None)} "
            "missing in every frame"
        )
    return messages


def _threshold_warnings(report: xr.Dataset, rec: int) -> list[str]:
    name = str(report[N.RECORDING].values[rec])
    attrs = report.attrs
    checks = (
        ("nan_proportion", attrs["nan_warn"], "missing in more than {} of frames"),
        (
            "low_confidence_proportion",
            attrs["low_conf_warn"],
            f"confidence below {attrs['conf_threshold']:g} in more than {{}} of frames",
        ),
        (
            "outlier_proportion",
            attrs["outlier_warn"],
            f"medoid-distance outliers (scale {attrs['outlier_scale']:g}) in more than "
            "{} of frames",
        ),
    )
    always = report["always_missing"].values
    messages = []
    for variable, threshold, text in checks:
        values = report[variable].values
        mask = (values > threshold) & ~always
        if mask[rec].any():
            problem = text.format(_percent(threshold))
            listed = _listed(report, rec, mask, values)
            messages.append(f"recording '{name}': {problem} for keypoint(s) {listed}")
    return messages


def _length_warnings(report: xr.Dataset, rec: int) -> list[str]:
    if not report["too_short"].values[rec]:
        return []
    name = str(report[N.RECORDING].values[rec])
    n_frames = int(report["n_frames"].values[rec])
    return [
        f"recording '{name}': only {n_frames} frames "
        f"({report['duration'].values[rec]:.1f} s), fewer than "
        f"min_frames={report.attrs['min_frames']}; too short to model"
    ]


def quality_warnings(report: xr.Dataset) -> list[str]:
    """One message per problem above the report's thresholds.

    Parameters
    ----------
    report
        A report made by :func:`qc` (its attrs hold the thresholds).

    Returns
    -------
    list of str
        Grouped per recording and kind of problem.
    """
    messages: list[str] = []
    for rec in range(report.sizes[N.RECORDING]):
        messages += _length_warnings(report, rec)
        messages += _missing_warnings(report, rec)
        messages += _threshold_warnings(report, rec)
    return messages


def qc(
    ds: xr.Dataset | xr.DataTree,
    *,
    conf_threshold: float = 0.5,
    outlier_scale: float = 6.0,
    min_frames: int | None = None,
    nan_warn: float = 0.5,
    low_conf_warn: float = 0.5,
    outlier_warn: float = 0.05,
    show: bool = True,
    console: Console | None = None,
) -> xr.Dataset:
    """Check the quality of pose data before modelling.

    Parameters
    ----------
    ds
        A pose Dataset (or a project DataTree, whose root is used). Lazy
        Datasets are read one recording at a time.
    conf_threshold
        Confidences below this count as low (keypoint-MoSeq's
        ``conf_threshold``).
    outlier_scale
        MADs above the median distance from the body medoid beyond which a
        keypoint is an outlier (see :func:`moseq_xr.preprocess.flag_outliers`).
    min_frames
        Recordings with fewer frames are flagged as too short to model.
        Default: :func:`default_min_frames` (10 s of video, at least 7).
    nan_warn, low_conf_warn, outlier_warn
        Warn about keypoints missing, low-confidence or outlying in more than
        this proportion of a recording's frames.
    show
        Print the report as a table (see :func:`print_report`).
    console
        A :class:`rich.console.Console` to print to (default: standard output).

    Returns
    -------
    xarray.Dataset
        Per ``(recording, keypoint, individual)``: ``nan_proportion``,
        ``low_confidence_proportion`` (tracked, but below ``conf_threshold``),
        ``outlier_proportion``,
        ``outlier_count``, ``unusable_proportion`` (any of the three) and
        ``always_missing``; per recording: ``outlier_frames``, ``duration``,
        ``too_short`` and coordinate ``n_frames``. ``attrs`` hold the thresholds
        and ``warnings``, the list of problems found.

    Warns
    -----
    DataQualityWarning
        Once per message in ``attrs["warnings"]``.

    Examples
    --------
    >>> report = moseq_xr.qc(ds)  # doctest: +SKIP
    >>> report.nan_proportion.sel(keypoint="nose")  # doctest: +SKIP
    """
    ds = _pose_dataset(ds)
    fps = float(ds.attrs["fps"])
    min_frames = default_min_frames(fps) if min_frames is None else int(min_frames)
    thresholds = {
        "nan_warn": nan_warn,
        "low_conf_warn": low_conf_warn,
        "outlier_warn": outlier_warn,
    }
    _check_thresholds(conf_threshold, outlier_scale, min_frames, thresholds)
    n_frames = ds["n_frames"].values.astype(np.int64)
    stats = _collect_stats(ds, conf_threshold, outlier_scale)
    values = _report_values(stats, n_frames, fps, min_frames)
    report = _report_dataset(ds, values, n_frames)
    report.attrs = {
        "fps": fps,
        "conf_threshold": float(conf_threshold),
        "outlier_scale": float(outlier_scale),
        "min_frames": min_frames,
        **{k: float(v) for k, v in thresholds.items()},
    }
    report.attrs["warnings"] = quality_warnings(report)
    if show:
        print_report(report, console=console)
    for message in report.attrs["warnings"]:
        warnings.warn(message, DataQualityWarning, stacklevel=2)
    return report


def _worst_keypoints(report: xr.Dataset, rec: int, count: int = 3) -> str:
    values = report["unusable_proportion"].values[rec]
    keypoints = [str(k) for k in report[N.KEYPOINT].values]
    individuals = [str(i) for i in report[N.INDIVIDUAL].values]
    order = np.argsort(-values, axis=None, kind="stable")[:count]
    worst = []
    for flat in order:
        k, i = np.unravel_index(flat, values.shape)
        if values[k, i] > 0:
            label = _point_label(keypoints[k], individuals[i], individuals)
            worst.append(f"{label} {_percent(values[k, i])}")
    return "\n".join(worst) or "-"


def _flags(report: xr.Dataset, rec: int) -> Iterable[str]:
    attrs = report.attrs
    always = report["always_missing"].values[rec]
    if report["too_short"].values[rec]:
        yield "too short"
    if always.any():
        yield "never tracked"
    if ((report["nan_proportion"].values[rec] > attrs["nan_warn"]) & ~always).any():
        yield "missing"
    if (report["low_confidence_proportion"].values[rec] > attrs["low_conf_warn"]).any():
        yield "low confidence"
    if (report["outlier_proportion"].values[rec] > attrs["outlier_warn"]).any():
        yield "outliers"


_TABLE_COLUMNS = (
    ("recording", "left"),
    ("frames", "right"),
    ("missing", "right"),
    ("low conf", "right"),
    ("outlier frames", "right"),
    ("worst keypoints", "left"),
    ("flags", "left"),
)


def report_table(report: xr.Dataset) -> Any:
    """Render the report as a :class:`rich.table.Table`, one row per recording.

    Parameters
    ----------
    report
        Made by :func:`qc`.

    Returns
    -------
    rich.table.Table
        Frames, duration, mean missing and low-confidence proportions, outlier
        frames, the three least usable keypoints and the flags raised.
    """
    from rich.table import Table
    from rich.text import Text

    table = Table(
        title="Data quality",
        title_justify="left",
        caption="missing, low conf: mean over keypoints; worst keypoints: share of "
        "frames missing, low-confidence or outlying",
        caption_justify="left",
    )
    for header, justify in _TABLE_COLUMNS:
        table.add_column(header, justify=justify, overflow="fold")
    for rec, name in enumerate(report[N.RECORDING].values):
        n_frames = int(report["n_frames"].values[rec])
        flags = "\n".join(_flags(report, rec))
        table.add_row(
            Text(str(name)),
            f"{n_frames}\n{report['duration'].values[rec]:.1f} s",
            f"{report['nan_proportion'].values[rec].mean():.1%}",
            f"{report['low_confidence_proportion'].values[rec].mean():.1%}",
            f"{int(report['outlier_frames'].values[rec])}\n"
            f"{report['outlier_frames'].values[rec] / n_frames:.1%}",
            Text(_worst_keypoints(report, rec)),
            Text(flags or "ok", style="bold red" if flags else "green"),
        )
    return table


def _thresholds_line(attrs: dict[str, Any]) -> str:
    return (
        f"thresholds: confidence < {attrs['conf_threshold']:g} is low; outliers "
        f"beyond {attrs['outlier_scale']:g} MAD; min_frames {attrs['min_frames']}; "
        f"warn above {_percent(attrs['nan_warn'])} missing, "
        f"{_percent(attrs['low_conf_warn'])} low confidence, "
        f"{_percent(attrs['outlier_warn'])} outliers"
    )


def print_report(report: xr.Dataset, console: Console | None = None) -> None:
    """Print a QC report: the table, the thresholds and the warnings.

    Parameters
    ----------
    report
        Made by :func:`qc`.
    console
        Where to print (default: a new console on standard output).
    """
    from rich.console import Console
    from rich.text import Text

    console = console or Console()
    attrs = report.attrs
    console.print(report_table(report))
    console.print(Text(_thresholds_line(attrs), style="dim"))
    messages = attrs.get("warnings", [])
    if not messages:
        console.print(Text("No data-quality warnings.", style="green"))
        return
    console.print(Text(f"{len(messages)} data-quality warning(s):", style="bold"))
    for message in messages:
        console.print(Text(f"  - {message}"))
