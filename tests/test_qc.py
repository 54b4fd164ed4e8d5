"""Quality checks: exact proportions on hand-built data, warnings, printing."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import xarray as xr
from rich.console import Console

import moseq_xr
from moseq_xr.exceptions import DataQualityWarning
from moseq_xr.qc import MIN_MODEL_FRAMES, default_min_frames, qc

KEYPOINTS = ["k0", "k1", "k2", "k3", "k4"]
TEMPLATE = np.array([[20.0, 0.0], [10.0, 5.0], [10.0, -5.0], [0.0, 0.0], [-15.0, 0.0]])
FPS = 10.0  # default min_frames = 100 frames
PLANTED_OUTLIERS = [(30, 0), (120, 4), (150, 2)]  # (frame, keypoint) in recording "a"


def _body(n_frames: int, seed: int) -> np.ndarray:
    """A rigid body translating slowly, with small tracking noise: (T, K, 2)."""
    rng = np.random.default_rng(seed)
    walk = np.cumsum(rng.normal(0.0, 1.0, size=(n_frames, 1, 2)), axis=0)
    return (
        TEMPLATE[None] + walk + rng.normal(0.0, 0.5, size=(n_frames, len(TEMPLATE), 2))
    )


def _hand_built() -> xr.Dataset:
    """Recording a: 200 frames; recording b: 60 frames (60 padding frames)."""
    pos_a = _body(200, seed=1)
    # Missing points chosen so that the per-coordinate medoid does not move.
    pos_a[0:50, 4] = np.nan  # k4 missing 50/200
    pos_a[10:20, 2, 1] = np.nan  # k2 only y missing 10/200 (any coordinate counts)
    for frame, keypoint in PLANTED_OUTLIERS:
        pos_a[frame, keypoint] += [120.0, -80.0]
    conf_a = np.full((200, 5), 0.9)
    conf_a[0:80, 3] = 0.2  # k3 low confidence 80/200
    conf_a[0:60, 4] = 0.1  # k4: 50 of these frames are missing, so 10/200 low
    conf_a[100, 0] = 0.5  # exactly at the threshold: not low
    pos_b = _body(60, seed=2)
    pos_b[0:6, 0] = np.nan  # k0 missing 6/60
    pos_b[:, 3] = np.nan  # k3 never tracked
    conf_b = np.full((60, 5), 0.3)  # all low, but k0 NaN frames and k3 not counted
    return moseq_xr.from_arrays(
        {"a": pos_a, "b": pos_b}, KEYPOINTS, FPS, confidences={"a": conf_a, "b": conf_b}
    )


@pytest.fixture(scope="module")
def dataset() -> xr.Dataset:
    return _hand_built()


@pytest.fixture(scope="module")
def report(dataset: xr.Dataset) -> xr.Dataset:
    with pytest.warns(DataQualityWarning):
        return qc(dataset, show=False)


def _value(report: xr.Dataset, name: str, recording: str, keypoint: str) -> float:
    return report[name].sel(recording=recording, keypoint=keypoint).item()


def test_nan_proportion_exact(report):
    expected_a = {"k0": 0.0, "k1": 0.0, "k2": 10 / 200, "k3": 0.0, "k4": 50 / 200}
    for keypoint, value in expected_a.items():
        assert _value(report, "nan_proportion", "a", keypoint) == pytest.approx(value)


def test_padding_never_counts(report):
    # recording b has 60 frames in a 200-frame Dataset: 140 padding frames
    assert report["n_frames"].sel(recording="b").item() == 60
    assert _value(report, "nan_proportion", "b", "k0") == pytest.approx(6 / 60)
    assert _value(report, "nan_proportion", "b", "k1") == 0.0
    assert _value(report, "low_confidence_proportion", "b", "k0") == pytest.approx(
        54 / 60
    )
    assert report["outlier_frames"].sel(recording="b").item() == 0


def test_low_confidence_counts_tracked_frames_only(report):
    assert _value(report, "low_confidence_proportion", "a", "k3") == pytest.approx(0.4)
    assert _value(report, "low_confidence_proportion", "a", "k4") == pytest.approx(0.05)
    assert (
        _value(report, "low_confidence_proportion", "a", "k0") == 0.0
    )  # 0.5 not < 0.5
    assert (
        _value(report, "low_confidence_proportion", "b", "k3") == 0.0
    )  # never tracked


def test_planted_outliers_found(report):
    counts = report["outlier_count"].sel(recording="a")
    assert counts.sel(keypoint="k0").item() == 1
    assert counts.sel(keypoint="k2").item() == 1
    assert counts.sel(keypoint="k4").item() == 1
    assert int(counts.sum()) == len(PLANTED_OUTLIERS)
    assert report["outlier_frames"].sel(recording="a").item() == len(PLANTED_OUTLIERS)
    assert _value(report, "outlier_proportion", "a", "k4") == pytest.approx(1 / 200)


def test_unusable_is_union_of_problems(report):
    # k0 in a: one outlier frame; k3 in a: 80 low-confidence frames
    assert _value(report, "unusable_proportion", "a", "k0") == pytest.approx(1 / 200)
    assert _value(report, "unusable_proportion", "a", "k3") == pytest.approx(80 / 200)
    assert _value(report, "unusable_proportion", "b", "k3") == 1.0


def test_short_recording_flagged(report):
    assert report.attrs["min_frames"] == 100  # 10 s at 10 fps
    assert report["too_short"].sel(recording="b").item()
    assert not report["too_short"].sel(recording="a").item()
    assert report["duration"].sel(recording="b").item() == pytest.approx(6.0)


def test_always_missing_keypoint_flagged(report):
    always = report["always_missing"].sel(individual="individual_0")
    assert always.sel(recording="b").values.tolist() == [
        False,
        False,
        False,
        True,
        False,
    ]
    assert not always.sel(recording="a").any()


def test_report_layout(report):
    for name in (
        "nan_proportion",
        "low_confidence_proportion",
        "outlier_proportion",
        "outlier_count",
        "unusable_proportion",
        "always_missing",
    ):
        assert report[name].dims == ("recording", "keypoint", "individual")
    for name in ("outlier_frames", "duration", "too_short"):
        assert report[name].dims == ("recording",)
    assert report.attrs["conf_threshold"] == 0.5
    assert report.attrs["outlier_scale"] == 6.0
    assert report.attrs["nan_warn"] == 0.5
    assert report["duration"].attrs["units"] == "s"


def test_warning_messages(report):
    messages = report.attrs["warnings"]
    assert len(messages) == 3
    assert "recording 'b': only 60 frames (6.0 s)" in messages[0]
    assert "min_frames=100" in messages[0]
    assert messages[1] == "recording 'b': keypoint(s) k3 missing in every frame"
    assert messages[2].startswith(
        "recording 'b': confidence below 0.5 in more than 50%"
    )
    assert "k0 90%" in messages[2]
    assert "k3" not in messages[2]


def test_each_warning_is_emitted(dataset):
    with pytest.warns(DataQualityWarning) as caught:
        report = qc(dataset, show=False)
    assert [str(w.message) for w in caught] == report.attrs["warnings"]


def test_thresholds_change_warnings(dataset):
    with pytest.warns(DataQualityWarning) as caught:
        report = qc(dataset, nan_warn=0.2, min_frames=50, low_conf_warn=1.0, show=False)
    assert len(caught) == 2
    assert report.attrs["warnings"] == [
        "recording 'a': missing in more than 20% of frames for keypoint(s) k4 25%",
        "recording 'b': keypoint(s) k3 missing in every frame",
    ]


def test_outlier_warning(dataset):
    with pytest.warns(DataQualityWarning) as caught:
        report = qc(
            dataset, outlier_warn=0.001, min_frames=1, low_conf_warn=1.0, show=False
        )
    assert str(caught[0].message) == (
        "recording 'a': medoid-distance outliers (scale 6) in more than 0.1% of frames "
        "for keypoint(s) k0 0.5%, k2 0.5%, k4 0.5%"
    )
    assert len(report.attrs["warnings"]) == 2


def test_clean_data_no_warnings():
    ds = moseq_xr.from_arrays({"clean": _body(150, seed=3)}, KEYPOINTS, FPS)
    report = qc(ds, show=False)  # our warnings are errors in this test suite
    assert report.attrs["warnings"] == []
    assert float(report["nan_proportion"].max()) == 0.0


def test_individual_never_tracked():
    both = np.stack([_body(120, seed=4), _body(120, seed=5)], axis=-1)  # (T, K, D, I)
    both[..., 1] = np.nan
    ds = moseq_xr.from_arrays({"pair": both}, KEYPOINTS, FPS, individuals=["m1", "m2"])
    with pytest.warns(DataQualityWarning, match="individual 'm2' is never tracked"):
        report = qc(ds, show=False)
    assert report["always_missing"].sel(individual="m2").all()
    assert not report["always_missing"].sel(individual="m1").any()
    assert len(report.attrs["warnings"]) == 1


def test_lazy_store_gives_same_report(dataset, report, tmp_path):
    moseq_xr.save(dataset, tmp_path / "p.zarr")
    stored = moseq_xr.open(tmp_path / "p.zarr")
    assert stored["position"].chunks is not None
    with pytest.warns(DataQualityWarning):
        again = qc(stored, show=False)
    xr.testing.assert_allclose(again, report)
    assert again.attrs["warnings"] == report.attrs["warnings"]


def test_accessor_and_datatree_delegate(dataset, report):
    with pytest.warns(DataQualityWarning):
        via_accessor = dataset.moseq.qc(show=False)
    with pytest.warns(DataQualityWarning):
        via_tree = moseq_xr.qc(xr.DataTree(dataset=dataset), show=False)
    xr.testing.assert_identical(via_accessor, report)
    xr.testing.assert_identical(via_tree, report)


def test_printed_table(dataset):
    buffer = io.StringIO()
    with pytest.warns(DataQualityWarning):
        qc(dataset, console=Console(file=buffer, width=140))
    text = buffer.getvalue()
    assert "Data quality" in text
    assert "too short" in text
    assert "never tracked" in text
    assert "k3 40%" in text  # worst keypoint of recording a
    assert "3 data-quality warning(s)" in text


@pytest.mark.parametrize(
    "options",
    [
        {"nan_warn": 1.5},
        {"outlier_scale": 0.0},
        {"min_frames": 0},
        {"conf_threshold": float("nan")},
    ],
)
def test_bad_thresholds_raise(dataset, options):
    with pytest.raises(ValueError, match=next(iter(options))):
        qc(dataset, show=False, **options)


def test_default_min_frames():
    assert default_min_frames(30.0) == 300
    assert default_min_frames(29.97) == math.ceil(299.7)
    assert default_min_frames(0.5) == MIN_MODEL_FRAMES == 7


def _outliers_by_loops(position: np.ndarray, scale: float) -> np.ndarray:
    """The medoid-distance rule written out with explicit loops."""
    n_time, _, n_kp = position.shape
    distance = np.full((n_time, n_kp), np.nan)
    for t in range(n_time):
        medoid = [np.nanmedian(position[t, d]) for d in range(position.shape[1])]
        for k in range(n_kp):
            distance[t, k] = math.dist(position[t, :, k], medoid)
    flags = np.zeros((n_time, n_kp), dtype=bool)
    for k in range(n_kp):
        valid = distance[~np.isnan(distance[:, k]), k]
        median = np.median(valid)
        mad = np.median(np.abs(valid - median))
        flags[:, k] = np.nan_to_num(distance[:, k], nan=-np.inf) > median + scale * mad
    return flags


def test_outlier_counts_match_definition():
    """qc counts what the §1.7 rule flags, per recording and individual."""
    rng = np.random.default_rng(7)
    position = (
        rng.standard_t(2, size=(300, 6, 2, 2)) + np.arange(6)[None, :, None, None]
    )
    position[rng.random(position.shape) < 0.03] = np.nan
    ds = moseq_xr.from_arrays(
        {"long": position, "short": position[:120] * 2.0},
        [f"k{i}" for i in range(6)],
        FPS,
        individuals=["m1", "m2"],
    )
    with pytest.warns(DataQualityWarning):
        report = qc(ds, outlier_scale=2.0, min_frames=1, show=False)
    for recording, n_frames in (("long", 300), ("short", 120)):
        for individual in ("m1", "m2"):
            where = {"recording": recording, "individual": individual}
            block = ds.position.sel(where).transpose("time", "space", "keypoint")
            expected = _outliers_by_loops(block.values[:n_frames], 2.0).sum(axis=0)
            got = report["outlier_count"].sel(where).values
            assert got.tolist() == expected.tolist()
    assert int(report["outlier_count"].sum()) > 0
