"""The one conversion point between pose Datasets and the model's arrays.

:func:`to_segments` cuts every recording x individual into fixed-length rows
(reference §3.3) and returns plain NumPy arrays plus the index needed to put
per-frame results back; :func:`from_segments` does that, returning a labelled
DataArray over ``(recording, individual, time, ...)``.

Choices that differ from the reference, on purpose:

* A *sequence* is one recording x individual, from its first to its last frame
  with at least one observed keypoint. Untracked frames before and after are
  not modelled (the reference models them as held copies of the edge frames,
  which invents stationary behaviour); they come back as ``fill``.
* Rows whose frames all lie in the previous row's overlap are not made (the
  reference makes them, e.g. a 4-frame row padded to 10 030 frames).
* Sequences shorter than ``min_fragment_length`` are skipped with a warning
  (the reference's length search does not terminate on them).
* In the overlap of two consecutive rows, the earlier row owns the first half
  and the later row the second half. The reference lets the later row
  overwrite the whole overlap, but the first frames of a row have no AR
  history (no syllable for the first ``nlags`` frames and a cold-started
  Kalman filter), while the earlier row has seen them in context.
"""

from __future__ import annotations

import itertools
import warnings
from typing import Any, NamedTuple

import numpy as np
import xarray as xr

from moseq_xr.exceptions import DataQualityWarning, FitError
from moseq_xr.schema import names as N

_SEQUENCE_DIMS = (N.INDIVIDUAL, N.TIME, N.KEYPOINT, N.SPACE)


class Segments(NamedTuple):
    """Model-ready rows cut from a pose Dataset, with the index to undo it.

    Attributes
    ----------
    Y
        ``(N, T, K, D)`` float64 positions; ``T = seg_length + overlap``.
    conf
        ``(N, T, K)`` float64 confidences.
    mask
        ``(N, T)`` float64, 1 on real frames and 0 on padding.
    recording_index, individual_index
        ``(N,)`` int64 positions in ``recordings`` / ``individuals``.
    start, end
        ``(N,)`` int64: row n holds frames ``[start[n], end[n])`` of its
        recording (overlap included) in its first ``end - start`` entries.
    recordings, individuals, keypoints, space
        Names along the Dataset's axes (all of them, modelled or not).
    fps
        Frames per second.
    seg_length, overlap
        Row length without and with overlap is ``seg_length`` /
        ``seg_length + overlap``.
    time
        The Dataset's ``time`` coordinate, so results align with it.
    n_frames
        ``(num_recordings,)`` real frames per recording.
    """

    Y: np.ndarray
    conf: np.ndarray
    mask: np.ndarray
    recording_index: np.ndarray
    individual_index: np.ndarray
    start: np.ndarray
    end: np.ndarray
    recordings: tuple[str, ...]
    individuals: tuple[str, ...]
    keypoints: tuple[str, ...]
    space: tuple[str, ...]
    fps: float
    seg_length: int
    overlap: int
    time: np.ndarray
    n_frames: np.ndarray

    @property
    def num_rows(self) -> int:
        """Number of rows N."""
        return int(self.Y.shape[0])


def choose_segment_length(
    lengths: np.ndarray | list[int],
    max_seg_length: int = 10_000,
    max_padding: float = 0.5,
    min_fragment_length: int = 4,
) -> int:
    """Segment length for sequences of the given lengths (reference §3.3).

    Candidates are the distinct values of ``min(length, max_seg_length)``,
    largest first; the first whose total padding
    ``sum(-length mod L) / sum(length)`` is at most ``max_padding`` wins
    (``max_seg_length`` with a warning if none does). Then, while a sequence
    longer than L would end in a fragment shorter than
    ``min_fragment_length``, L grows by the shortest such fragment.

    Parameters
    ----------
    lengths
        Frames per sequence (each at least ``min_fragment_length``).
    max_seg_length
        Upper bound on the candidates.
    max_padding
        Largest allowed fraction of padding frames.
    min_fragment_length
        Shortest allowed final piece of a sequence.

    Returns
    -------
    int
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    candidates = np.unique(np.minimum(lengths, max_seg_length))[::-1]
    chosen = None
    for length in candidates:
        if np.sum(-lengths % length) / lengths.sum() <= max_padding:
            chosen = int(length)
            break
    if chosen is None:
        chosen = int(max_seg_length)
        warnings.warn(
            f"no segment length keeps padding at or below {max_padding:.0%}; "
            f"using max_seg_length={max_seg_length}",
            DataQualityWarning,
            stacklevel=3,
        )
    while True:
        remainders = lengths[lengths > chosen] % chosen
        short = remainders[(remainders > 0) & (remainders < min_fragment_length)]
        if short.size == 0:
            return chosen
        chosen += int(short.min())


def _row_starts(length: int, seg_length: int, overlap: int) -> np.ndarray:
    """Row starts of one sequence, without rows covered by the previous row."""
    starts = np.arange(0, length, seg_length)
    return starts[(starts == 0) | (starts < length - overlap)]


def _pad_row(values: np.ndarray, row_length: int) -> np.ndarray:
    """Pad along axis 0 to ``row_length`` by repeating the last frame."""
    missing = row_length - values.shape[0]
    if missing == 0:
        return values
    return np.concatenate([values, np.repeat(values[-1:], missing, axis=0)])


class _Sequence(NamedTuple):
    recording: int
    individual: int
    first: int
    Y: np.ndarray
    conf: np.ndarray


def _recording_sequences(ds: xr.Dataset, recording: int) -> list[_Sequence]:
    """Return the tracked sequences of one recording, checked for gaps."""
    name = str(ds[N.RECORDING].values[recording])
    n_frames = int(ds["n_frames"].values[recording])
    one = ds.isel({N.RECORDING: recording, N.TIME: slice(0, n_frames)})
    positions = one["position"].transpose(*_SEQUENCE_DIMS).values
    confidences = one["confidence"].transpose(*_SEQUENCE_DIMS[:-1]).values
    sequences = []
    for individual in range(positions.shape[0]):
        observed = np.isfinite(positions[individual]).all(axis=2).any(axis=1)
        if not observed.any():
            continue
        first = int(np.argmax(observed))
        stop = int(n_frames - np.argmax(observed[::-1]))
        Y = positions[individual, first:stop]
        conf = confidences[individual, first:stop]
        gaps = int(
            (~np.isfinite(Y).all(axis=(1, 2)) | ~np.isfinite(conf).all(axis=1)).sum()
        )
        if gaps:
            raise FitError(
                f"recording {name!r}, individual "
                f"{ds[N.INDIVIDUAL].values[individual]!r}: {gaps} tracked frames have "
                "NaN positions or confidences; run "
                "moseq_xr.preprocess.interpolate_missing first"
            )
        sequences.append(_Sequence(recording, individual, first, Y, conf))
    return sequences


def _drop_short(
    sequences: list[_Sequence], ds: xr.Dataset, min_length: int
) -> list[_Sequence]:
    short = [s for s in sequences if s.Y.shape[0] < min_length]
    if short:
        names = [
            f"{ds[N.RECORDING].values[s.recording]}/{ds[N.INDIVIDUAL].values[s.individual]}"
            f" ({s.Y.shape[0]} frames)"
            for s in short
        ]
        warnings.warn(
            f"skipping sequences shorter than min_fragment_length={min_length}: "
            f"{names}",
            DataQualityWarning,
            stacklevel=3,
        )
    return [s for s in sequences if s.Y.shape[0] >= min_length]


def _cut_rows(
    sequences: list[_Sequence], seg_length: int, overlap: int
) -> dict[str, list[Any]]:
    """Cut sequences into padded rows; return per-row lists of arrays and indices."""
    row_length = seg_length + overlap
    rows: dict[str, list[Any]] = {
        key: [] for key in ("Y", "conf", "mask", "rec", "ind", "lo", "hi")
    }
    for sequence in sequences:
        length = sequence.Y.shape[0]
        for start in _row_starts(length, seg_length, overlap):
            stop = min(start + row_length, length)
            mask = np.zeros(row_length)
            mask[: stop - start] = 1.0
            rows["Y"].append(_pad_row(sequence.Y[start:stop], row_length))
            rows["conf"].append(_pad_row(sequence.conf[start:stop], row_length))
            rows["mask"].append(mask)
            rows["rec"].append(sequence.recording)
            rows["ind"].append(sequence.individual)
            rows["lo"].append(sequence.first + start)
            rows["hi"].append(sequence.first + stop)
    return rows


def to_segments(
    ds: xr.Dataset,
    seg_length: int | None = None,
    max_seg_length: int = 10_000,
    max_padding: float = 0.5,
    overlap: int = 30,
    min_fragment_length: int = 4,
) -> Segments:
    """Cut a pose Dataset into padded rows for the model.

    Each recording x individual with data is one sequence, from its first to
    its last frame with an observed keypoint; inside it every position and
    confidence must be finite (run
    :func:`moseq_xr.preprocess.interpolate_missing` first). A sequence of
    length n gives rows starting at ``0, L, 2L, ...`` holding frames
    ``[start, min(start + L + overlap, n))``, padded to ``L + overlap`` by
    repeating the last real frame (mask 0 there).

    Parameters
    ----------
    ds
        A pose Dataset.
    seg_length
        Row length L without overlap; default chosen by
        :func:`choose_segment_length`.
    max_seg_length, max_padding, min_fragment_length
        See :func:`choose_segment_length`. Sequences shorter than
        ``min_fragment_length`` are skipped with a warning.
    overlap
        Frames shared by consecutive rows of a sequence.

    Returns
    -------
    Segments

    Raises
    ------
    FitError
        When no sequence is left or a tracked frame has NaNs.
    """
    sequences = [
        s for r in range(ds.sizes[N.RECORDING]) for s in _recording_sequences(ds, r)
    ]
    sequences = _drop_short(sequences, ds, min_fragment_length)
    if not sequences:
        raise FitError("no recording x individual has enough tracked frames to model")
    lengths = [s.Y.shape[0] for s in sequences]
    if seg_length is None:
        seg_length = choose_segment_length(
            lengths, max_seg_length, max_padding, min_fragment_length
        )
    if int(seg_length) < 1 or int(overlap) < 0:
        raise FitError(
            f"need seg_length >= 1 and overlap >= 0, got {seg_length}, {overlap}"
        )
    seg_length, overlap = int(seg_length), int(overlap)
    rows = _cut_rows(sequences, seg_length, overlap)
    return Segments(
        Y=np.stack(rows["Y"]).astype(np.float64),
        conf=np.stack(rows["conf"]).astype(np.float64),
        mask=np.stack(rows["mask"]),
        recording_index=np.asarray(rows["rec"], dtype=np.int64),
        individual_index=np.asarray(rows["ind"], dtype=np.int64),
        start=np.asarray(rows["lo"], dtype=np.int64),
        end=np.asarray(rows["hi"], dtype=np.int64),
        recordings=tuple(str(r) for r in ds[N.RECORDING].values),
        individuals=tuple(str(i) for i in ds[N.INDIVIDUAL].values),
        keypoints=tuple(str(k) for k in ds[N.KEYPOINT].values),
        space=tuple(str(s) for s in ds[N.SPACE].values),
        fps=float(ds.attrs["fps"]),
        seg_length=seg_length,
        overlap=overlap,
        time=np.asarray(ds[N.TIME].values),
        n_frames=np.asarray(ds["n_frames"].values, dtype=np.int64),
    )


def owned_ranges(segments: Segments) -> tuple[np.ndarray, np.ndarray]:
    """Frames ``[owner_start, owner_end)`` whose results each row provides.

    Where consecutive rows of a sequence overlap, the earlier row owns the
    first half of the overlap (rounded down) and the later row the rest.

    Parameters
    ----------
    segments
        Output of :func:`to_segments`.

    Returns
    -------
    owner_start, owner_end : numpy.ndarray
        ``(N,)`` recording frame ranges; they tile each sequence exactly.
    """
    owner_start = segments.start.copy()
    owner_end = segments.end.copy()
    order = np.lexsort(
        (segments.start, segments.individual_index, segments.recording_index)
    )
    for earlier, later in itertools.pairwise(order):
        same = (
            segments.recording_index[earlier] == segments.recording_index[later]
            and segments.individual_index[earlier] == segments.individual_index[later]
        )
        if same and segments.start[later] < segments.end[earlier]:
            shared = segments.end[earlier] - segments.start[later]
            cut = segments.start[later] + shared // 2
            owner_end[earlier] = cut
            owner_start[later] = cut
    return owner_start, owner_end


def _extra_coords(
    segments: Segments, dims: tuple[str, ...], shape: tuple[int, ...]
) -> dict[str, Any]:
    known = {N.KEYPOINT: segments.keypoints, N.SPACE: segments.space}
    return {
        dim: list(known[dim])
        for dim, size in zip(dims, shape, strict=True)
        if dim in known and len(known[dim]) == size
    }


def from_segments(
    values: Any,
    segments: Segments,
    dims_after_time: tuple[str, ...] | list[str] = (),
    fill: Any = np.nan,
) -> xr.DataArray:
    """Put per-frame row values back on the Dataset's grid.

    Parameters
    ----------
    values
        Array-like of shape ``(N, T, *extra)`` aligned with ``segments.Y``
        (per-frame values of each row; e.g. syllables padded at the front to
        length T).
    segments
        Output of :func:`to_segments`.
    dims_after_time
        Names of the ``extra`` axes. ``keypoint`` and ``space`` get their
        labels.
    fill
        Value of frames no row models (untracked, skipped, padding); use -1
        for integer syllables. The result dtype is the common type of
        ``values`` and ``fill``.

    Returns
    -------
    xarray.DataArray
        Over ``(recording, individual, time, *dims_after_time)``.
    """
    values = np.asarray(values)
    dims_after_time = tuple(dims_after_time)
    expected = (segments.num_rows, segments.Y.shape[1])
    if values.shape[:2] != expected or values.ndim != 2 + len(dims_after_time):
        raise FitError(
            f"values of shape {values.shape} do not match {segments.num_rows} rows of "
            f"{segments.Y.shape[1]} frames with extra dims {dims_after_time}"
        )
    extra = values.shape[2:]
    shape = (
        len(segments.recordings),
        len(segments.individuals),
        len(segments.time),
        *extra,
    )
    dtype = np.result_type(values.dtype, np.asarray(fill).dtype)
    out = np.full(shape, fill, dtype=dtype)
    owner_start, owner_end = owned_ranges(segments)
    for row in range(segments.num_rows):
        lo, hi = int(owner_start[row]), int(owner_end[row])
        offset = lo - int(segments.start[row])
        out[segments.recording_index[row], segments.individual_index[row], lo:hi] = (
            values[row, offset : offset + hi - lo]
        )
    coords = {
        N.RECORDING: list(segments.recordings),
        N.INDIVIDUAL: list(segments.individuals),
        N.TIME: segments.time,
        "frame": (N.TIME, np.arange(len(segments.time), dtype=np.int64)),
        "n_frames": (N.RECORDING, segments.n_frames),
        **_extra_coords(segments, dims_after_time, extra),
    }
    return xr.DataArray(
        out, dims=(N.RECORDING, N.INDIVIDUAL, N.TIME, *dims_after_time), coords=coords
    )


def segment_values(
    values: xr.DataArray, segments: Segments, dims_after_time: tuple[str, ...] = ()
) -> np.ndarray:
    """Cut a per-frame DataArray into rows exactly as :func:`to_segments` cut ``Y``.

    Parameters
    ----------
    values
        Over ``(recording, individual, time, *dims_after_time)`` on the same
        grid as the Dataset the segments came from (e.g. initial centroids).
    segments
        Output of :func:`to_segments`.
    dims_after_time
        Order of the extra axes.

    Returns
    -------
    numpy.ndarray
        ``(N, T, *extra)``, padded by repeating the last real frame.
    """
    array = values.transpose(N.RECORDING, N.INDIVIDUAL, N.TIME, *dims_after_time).values
    row_length = segments.Y.shape[1]
    rows = [
        _pad_row(array[rec, ind, lo:hi], row_length)
        for rec, ind, lo, hi in zip(
            segments.recording_index,
            segments.individual_index,
            segments.start,
            segments.end,
            strict=True,
        )
    ]
    return np.stack(rows)
