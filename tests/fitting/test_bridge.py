"""Tests of moseq_xr.fitting.bridge."""

from __future__ import annotations

import numpy as np
import pytest

import moseq_xr
from moseq_xr.exceptions import DataQualityWarning, FitError
from moseq_xr.fitting.bridge import (
    choose_segment_length,
    from_segments,
    owned_ranges,
    to_segments,
)
from moseq_xr.preprocess import interpolate_missing

KEYPOINTS = ["nose", "head", "body", "tail"]
NAN = np.nan


@pytest.fixture(scope="module")
def multi():
    """3-D, two individuals, three recordings of different lengths.

    * "long" (233 frames): individual_0 untracked for its first 7 and last 3 frames.
    * "mid" (120 frames): individual_1 absent altogether.
    * "short" (61 frames): both tracked throughout.
    """
    rng = np.random.default_rng(0)
    long = rng.normal(size=(233, 4, 3, 2))
    long[:7, :, :, 0] = NAN
    long[230:, :, :, 0] = NAN
    mid = rng.normal(size=(120, 4, 3, 2))
    mid[..., 1] = NAN
    short = rng.normal(size=(61, 4, 3, 2))
    confidences = {
        name: rng.uniform(0.1, 1, size=(len(a), 4, 2))
        for name, a in (("long", long), ("mid", mid), ("short", short))
    }
    return moseq_xr.from_arrays(
        {"long": long, "mid": mid, "short": short}, KEYPOINTS, fps=25,
        confidences=confidences, individuals=["mouse_a", "mouse_b"],
    )  # fmt: skip


def test_round_trip_returns_every_frame_to_its_place(multi):
    segments = to_segments(multi, max_seg_length=50, overlap=10)
    assert segments.Y.shape[1:] == (segments.seg_length + 10, 4, 3)
    assert segments.Y.dtype == np.float64 and segments.mask.dtype == np.float64
    # 4 sequences (mouse_b absent from "mid"), several rows each
    assert (
        len(set(zip(segments.recording_index, segments.individual_index, strict=True)))
        == 5
    )
    assert segments.num_rows > 5
    back = from_segments(segments.Y, segments, dims_after_time=("keypoint", "space"))
    assert back.dims == ("recording", "individual", "time", "keypoint", "space")
    expected = multi.position.transpose(
        "recording", "individual", "time", "keypoint", "space"
    )
    np.testing.assert_array_equal(
        back.values, expected.values
    )  # NaN where not modelled
    assert list(back.keypoint.values) == KEYPOINTS
    assert list(back.space.values) == ["x", "y", "z"]
    np.testing.assert_array_equal(back.time.values, multi.time.values)
    conf = from_segments(segments.conf, segments, dims_after_time=("keypoint",))
    expected_conf = multi.confidence.transpose(
        "recording", "individual", "time", "keypoint"
    )
    expected_conf = expected_conf.where(expected.notnull().all("space"))
    np.testing.assert_array_equal(conf.values, expected_conf.values)


def test_rows_cover_tracked_span_with_overlap_and_padding(multi):
    segments = to_segments(multi, seg_length=50, overlap=10)
    rows = (segments.recording_index == 0) & (segments.individual_index == 0)
    # "long"/mouse_a is tracked on frames 7..229 (223 frames): rows every 50
    np.testing.assert_array_equal(segments.start[rows], [7, 57, 107, 157, 207])
    np.testing.assert_array_equal(segments.end[rows], [67, 117, 167, 217, 230])
    last = np.flatnonzero(rows)[-1]
    assert segments.mask[last].sum() == 23
    np.testing.assert_array_equal(segments.mask[last, :23], 1.0)
    np.testing.assert_array_equal(segments.mask[last, 23:], 0.0)
    # padding repeats the last real frame
    final = multi.position.isel(recording=0, individual=0, time=229)
    for t in (23, 59):
        np.testing.assert_array_equal(
            segments.Y[last, t], final.transpose("keypoint", "space")
        )
    np.testing.assert_array_equal(segments.Y[last, 22], segments.Y[last, 59])
    np.testing.assert_array_equal(segments.conf[last, 59], segments.conf[last, 22])


def test_overlap_is_split_between_consecutive_rows(multi):
    segments = to_segments(multi, seg_length=50, overlap=10)
    row_ids = np.broadcast_to(
        np.arange(segments.num_rows)[:, None], segments.mask.shape
    )
    owner = from_segments(row_ids, segments, fill=-1)
    assert owner.dtype == np.int64
    track = owner.sel(recording="long", individual="mouse_a").values
    first_row = np.flatnonzero(
        (segments.recording_index == 0) & (segments.individual_index == 0)
    )[0]
    # rows 0 and 1 share frames 57..66: the earlier owns 57..61, the later 62..66
    assert (track[57:62] == first_row).all()
    assert (track[62:67] == first_row + 1).all()
    assert (track[:7] == -1).all() and (track[230:] == -1).all()
    starts, ends = owned_ranges(segments)
    sel = (segments.recording_index == 0) & (segments.individual_index == 0)
    np.testing.assert_array_equal(starts[sel][1:], ends[sel][:-1])  # tiles the span


def test_padding_rule_chooses_longest_candidate_with_at_most_half_padding():
    # L=1000 would pad (0 + 700 + 800) / 1500 = 100 %; L=300 pads 300 / 1500 = 20 %
    assert choose_segment_length([1000, 300, 200]) == 300
    assert choose_segment_length([1000, 900]) == 1000  # 100 / 1900 padding
    assert choose_segment_length([1000, 300, 200], max_padding=0.1) == 200
    with pytest.warns(DataQualityWarning, match="padding"):
        assert choose_segment_length([10, 15], max_seg_length=40, max_padding=0.1) == 40


def test_min_fragment_length_grows_the_segment():
    # L=50 would leave a 2-frame fragment of the 52-frame sequence, so L becomes 52
    assert choose_segment_length([100, 52], max_seg_length=50) == 52
    assert (
        choose_segment_length([100, 52], max_seg_length=50, min_fragment_length=2) == 50
    )
    rng = np.random.default_rng(1)
    ds = moseq_xr.from_arrays(
        {"a": rng.normal(size=(100, 4, 2)), "b": rng.normal(size=(52, 4, 2))},
        KEYPOINTS,
        fps=30,
    )
    segments = to_segments(ds, max_seg_length=50, overlap=0)
    assert segments.seg_length == 52
    assert segments.mask.sum(axis=1).min() >= 4


def test_short_sequences_skipped_and_redundant_rows_not_made():
    rng = np.random.default_rng(2)
    tiny = np.full((50, 4, 2), NAN)
    tiny[10:13] = rng.normal(size=(3, 4, 2))
    ds = moseq_xr.from_arrays(
        {"long": rng.normal(size=(104, 4, 2)), "tiny": tiny}, KEYPOINTS, fps=30
    )
    with pytest.warns(DataQualityWarning, match=r"tiny/individual_0 \(3 frames\)"):
        segments = to_segments(ds, seg_length=100, overlap=30)
    # frames 100..103 lie in the first row's overlap, so no second row is made
    assert segments.num_rows == 1
    assert (segments.start[0], segments.end[0]) == (0, 104)
    back = from_segments(segments.Y[..., 0, 0], segments)
    assert back.sel(recording="tiny").isnull().all()
    np.testing.assert_array_equal(
        back.sel(recording="long").values[0], ds.position.values[0, :, 0, 0, 0]
    )


def test_gaps_inside_tracked_span_are_refused():
    position = np.random.default_rng(3).normal(size=(30, 4, 2))
    position[12, 1, 0] = NAN
    ds = moseq_xr.from_arrays({"r": position}, KEYPOINTS, fps=30)
    with pytest.raises(
        FitError, match=r"1 tracked frames have NaN.*interpolate_missing"
    ):
        to_segments(ds)
    filled = interpolate_missing(ds)
    segments = to_segments(filled)
    assert segments.num_rows == 1 and segments.seg_length == 30


def test_from_segments_checks_shape(multi):
    segments = to_segments(multi, seg_length=50, overlap=10)
    with pytest.raises(FitError, match="do not match"):
        from_segments(np.zeros((segments.num_rows, 10)), segments)
    with pytest.raises(FitError, match="do not match"):
        from_segments(segments.Y, segments)  # extra dims not named
