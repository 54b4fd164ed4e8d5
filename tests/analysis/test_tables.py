from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from moseq_xr.analysis import bouts, set_groups, to_dataframe
from moseq_xr.exceptions import SchemaError
from tests.analysis import results_dataset

REAL_DLC = (
    "DeepLabCut_DLC2NWB/examples/m3v1mp4DLC_resnet50_openfieldAug20shuffle1_30000.h5"
)

SYLLABLES_A = [-1, -1, 0, 0, 0, 1, 1, 2, -1, 2, 2]
SYLLABLES_B = [2, 2, 0]


def _two_recordings(**kwargs):
    return results_dataset({"a": SYLLABLES_A, "b": SYLLABLES_B}, **kwargs)


def test_one_row_per_real_frame_padding_dropped():
    frames = to_dataframe(_two_recordings())
    assert len(frames) == 11 + 3
    assert frames["recording"].tolist() == ["a"] * 11 + ["b"] * 3
    assert frames["syllable"].tolist() == SYLLABLES_A + SYLLABLES_B
    assert frames["frame"].tolist() == [*range(11), 0, 1, 2]
    np.testing.assert_allclose(frames["time"], frames["frame"] / 10.0)
    np.testing.assert_allclose(frames["timestamp"], frames["frame"] / 10.0)
    assert set(frames["individual"]) == {"individual_0"}
    assert frames.attrs["fps"] == 10.0
    for absent in ("centroid_x", "heading", "velocity", "angular_velocity", "group"):
        assert absent not in frames


def test_onset_marks_first_frame_of_each_instance():
    frames = to_dataframe(_two_recordings())
    onsets = frames.index[frames["onset"]].tolist()
    # a: 0 at 2, 1 at 5, 2 at 7, 2 again at 9 (after a gap); b starts a new instance
    assert onsets == [2, 5, 7, 9, 11, 13]


def test_velocity_is_centroid_speed_per_second_nan_on_first_frame():
    centroid_a = np.zeros((11, 2))
    centroid_a[1:] = [3.0, 4.0]  # one step of length 5
    centroid_a[2:, 0] += np.arange(9)  # then 1 unit per frame along x
    centroid_b = np.array([[0.0, 0.0], [0.0, 2.0], [0.0, 2.0]])
    frames = to_dataframe(_two_recordings(centroid={"a": centroid_a, "b": centroid_b}))
    expected_a = [np.nan, 50.0, 0.0] + [10.0] * 8
    expected_b = [np.nan, 20.0, 0.0]
    np.testing.assert_allclose(frames["velocity"], expected_a + expected_b)
    np.testing.assert_allclose(frames["centroid_x"][:3], [0.0, 3.0, 3.0])
    np.testing.assert_allclose(frames["centroid_y"][:3], [0.0, 4.0, 4.0])


def test_angular_velocity_is_wrapped_not_unwrapped():
    heading_a = np.zeros(11)
    heading_a[5:] = [3.1, -3.1, -3.1, 0.0, 0.0, 0.0]
    frames = to_dataframe(_two_recordings(heading={"a": heading_a, "b": np.zeros(3)}))
    turn = frames["angular_velocity"].to_numpy()
    # -3.1 -> 3.1 crosses +-pi: the true turn is 2 pi - 6.2 rad in one frame
    assert turn[6] == pytest.approx((2 * np.pi - 6.2) * 10.0)
    assert turn[5] == pytest.approx(31.0)
    assert turn[8] == pytest.approx(31.0)
    assert np.isnan(turn[0]) and np.isnan(turn[11])
    assert np.nanmax(np.abs(turn)) <= np.pi * 10.0


def test_smooth_heading_median_filters_and_keeps_gaps():
    heading = np.full(11, 0.5)
    heading[4] = 2.5  # a one-frame glitch
    heading[8] = np.nan
    ds = _two_recordings(heading={"a": heading, "b": np.zeros(3)})
    raw = to_dataframe(ds)
    smooth = to_dataframe(ds, smooth_heading=True)
    assert raw["heading"][4] == 2.5
    assert smooth["heading"][4] == pytest.approx(0.5)
    assert np.isnan(smooth["heading"][8])
    assert np.isnan(smooth["angular_velocity"][8])
    assert (
        np.abs(smooth["angular_velocity"][1:4]).max()
        < np.abs(raw["angular_velocity"][1:6]).max()
    )


def test_group_column_when_groups_set():
    ds = set_groups(_two_recordings(), {"a": "control", "b": "treated"})
    frames = to_dataframe(ds)
    assert frames["group"].tolist() == ["control"] * 11 + ["treated"] * 3


def test_missing_syllable_variable_is_a_clear_error():
    ds = _two_recordings().drop_vars("syllable")
    with pytest.raises(SchemaError, match="syllable"):
        to_dataframe(ds)


def test_bouts_by_hand():
    centroid_a = np.zeros((11, 2))
    centroid_a[:, 0] = np.arange(11) ** 2  # speed 10 * (2t - 1)
    table = bouts(_two_recordings(centroid={"a": centroid_a, "b": np.zeros((3, 2))}))
    assert table["recording"].tolist() == ["a"] * 4 + ["b"] * 2
    assert table["syllable"].tolist() == [0, 1, 2, 2, 2, 0]
    assert table["start_frame"].tolist() == [2, 5, 7, 9, 0, 2]
    assert table["end_frame"].tolist() == [5, 7, 8, 11, 2, 3]
    assert table["duration_frames"].tolist() == [3, 2, 1, 2, 2, 1]
    np.testing.assert_allclose(table["start_time"], [0.2, 0.5, 0.7, 0.9, 0.0, 0.2])
    np.testing.assert_allclose(table["end_time"], [0.5, 0.7, 0.8, 1.1, 0.2, 0.3])
    np.testing.assert_allclose(table["duration_s"], [0.3, 0.2, 0.1, 0.2, 0.2, 0.1])
    # frames 2, 3, 4 move 3, 5, 7 units -> mean speed 50 units/s
    assert table["velocity_mean"][0] == pytest.approx(50.0)
    assert table["velocity_mean"][4] == pytest.approx(0.0)  # frame 0 NaN ignored
    assert "angular_velocity_mean" not in table


def test_bouts_do_not_cross_individuals():
    ds = results_dataset({"a": [[0, 0, 1, 1], [1, 1, 1, 0]]})
    table = bouts(ds)
    assert table["individual"].tolist() == ["individual_0"] * 2 + ["individual_1"] * 2
    assert table["syllable"].tolist() == [0, 1, 1, 0]
    assert table["start_frame"].tolist() == [0, 2, 0, 3]
    assert table["end_frame"].tolist() == [2, 4, 3, 4]


def test_bouts_group_column():
    table = bouts(set_groups(_two_recordings(), {"a": "x", "b": "y"}))
    assert table.columns[0] == "group"
    assert table["group"].tolist() == ["x"] * 4 + ["y"] * 2


@pytest.mark.realdata
def test_real_recording_tables(real_data):
    from tests.analysis import real_results_dataset

    path = real_data / REAL_DLC
    ds = real_results_dataset(path)
    frames = to_dataframe(ds)
    raw = pd.read_hdf(path)
    scorer = raw.columns.get_level_values(0)[0]
    x = raw[scorer].xs("x", level="coords", axis=1)
    y = raw[scorer].xs("y", level="coords", axis=1)
    assert len(frames) == len(raw) == 2330
    np.testing.assert_allclose(frames["centroid_x"], x.mean(axis=1))
    np.testing.assert_allclose(frames["centroid_y"], y.mean(axis=1))
    speed = np.hypot(np.diff(x.mean(axis=1)), np.diff(y.mean(axis=1))) * 30.0
    np.testing.assert_allclose(frames["velocity"][1:], speed)
    heading = np.arctan2(
        y["snout"] - y["tailbase"], x["snout"] - x["tailbase"]
    ).to_numpy()
    np.testing.assert_allclose(frames["heading"], heading)
    turn = np.angle(np.exp(1j * np.diff(heading))) * 30.0
    np.testing.assert_allclose(frames["angular_velocity"][1:], turn, atol=1e-9)
    assert np.abs(frames["angular_velocity"]).max() <= np.pi * 30.0
    smooth = to_dataframe(ds, smooth_heading=True)
    assert (
        smooth["angular_velocity"].abs().mean()
        < frames["angular_velocity"].abs().mean()
    )

    table = bouts(ds)
    assert table["duration_frames"].sum() == int((frames["syllable"] >= 0).sum())
    assert table["start_frame"].iloc[0] == 3
    assert (
        table["start_frame"].to_numpy()[1:] == table["end_frame"].to_numpy()[:-1]
    ).all()
    assert (np.diff(table["syllable"]) != 0).all()
    first = table.iloc[0]
    expected = frames["velocity"][first.start_frame : first.end_frame].mean()
    assert first["velocity_mean"] == pytest.approx(expected)
