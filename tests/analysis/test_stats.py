from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

import moseq_xr
from moseq_xr.analysis import (
    benjamini_hochberg,
    compare_groups,
    set_groups,
    syllable_stats,
)
from moseq_xr.exceptions import DataQualityWarning, LoaderError, SchemaError
from tests.analysis import RESULT_DIMS, real_results_dataset, results_dataset

REAL_DLC = (
    "DeepLabCut_DLC2NWB/examples/m3v1mp4DLC_resnet50_openfieldAug20shuffle1_30000.h5"
)


def _hand_dataset(**kwargs):
    # a: instances 0 (2 frames), 1 (3), 0 (1), 2 (2); b: one instance of 1
    return results_dataset(
        {"a": [0, 0, 1, 1, 1, 0, 2, 2], "b": [-1, 1, 1, 1, 1]}, **kwargs
    )


def _row(table, recording, syllable):
    match = table[(table["recording"] == recording) & (table["syllable"] == syllable)]
    assert len(match) == 1
    return match.iloc[0]


def test_syllable_stats_by_hand():
    table = syllable_stats(_hand_dataset(), min_frequency=0.0)
    assert list(table.columns) == [
        "recording",
        "individual",
        "syllable",
        "count",
        "count_frames",
        "frequency_instances",
        "frequency_frames",
        "duration_s",
    ]
    assert len(table) == 2 * 3  # complete grid: every recording x kept syllable
    a0, a1, a2 = (_row(table, "a", s) for s in (0, 1, 2))
    assert (a0["count"], a1["count"], a2["count"]) == (2, 1, 1)
    assert (a0["frequency_instances"], a1["frequency_instances"]) == (0.5, 0.25)
    assert (a0["frequency_frames"], a1["frequency_frames"], a2["frequency_frames"]) == (
        3 / 8,
        3 / 8,
        2 / 8,
    )
    assert a0["duration_s"] == pytest.approx(0.15)
    assert a1["duration_s"] == pytest.approx(0.3)
    b0, b1 = _row(table, "b", 0), _row(table, "b", 1)
    assert (
        b0["count"] == 0
        and b0["frequency_instances"] == 0
        and np.isnan(b0["duration_s"])
    )
    assert (
        b1["count"] == 1
        and b1["frequency_frames"] == 1.0
        and b1["duration_s"] == pytest.approx(0.4)
    )


def test_min_frequency_uses_pooled_instance_share():
    # pooled instances: 0 x2, 1 x2, 2 x1 -> shares 0.4, 0.4, 0.2
    table = syllable_stats(_hand_dataset(), min_frequency=0.3)
    assert sorted(table["syllable"].unique()) == [0, 1]
    # frequencies stay shares of all instances of the recording
    assert _row(table, "a", 1)["frequency_instances"] == 0.25


def test_kinematic_statistics_by_hand():
    centroid = np.zeros((8, 2))
    centroid[:, 0] = [0, 1, 3, 6, 10, 15, 21, 28]  # speeds 10, 20, ..., 70 per s
    heading = np.array([0, 0.1, 0.2, 0.3, 0.3, 0.3, 0.1, 0.1])
    table = syllable_stats(
        _hand_dataset(
            centroid={"a": centroid, "b": np.zeros((5, 2))},
            heading={"a": heading, "b": np.zeros(5)},
        ),
        min_frequency=0.0,
    )
    a0, a1 = _row(table, "a", 0), _row(table, "a", 1)
    # syllable 0 on frames 0, 1, 5: velocity NaN, 10, 50
    assert a0["velocity_mean"] == pytest.approx(30.0)
    assert a0["velocity_min"] == pytest.approx(10.0)
    assert a0["velocity_max"] == pytest.approx(50.0)
    assert a0["velocity_std"] == pytest.approx(np.std([10, 50], ddof=1))
    # syllable 1 on frames 2, 3, 4: angular velocity 1, 1, 0 rad/s
    assert a1["angular_velocity_mean"] == pytest.approx(2 / 3)
    assert a1["angular_velocity_max"] == pytest.approx(1.0)


def test_set_groups_dict_and_provenance():
    ds = set_groups(_hand_dataset(), {"a": "ctrl", "b": "drug"})
    assert ds["group"].dims == ("recording",)
    assert ds["group"].values.tolist() == ["ctrl", "drug"]
    assert ds.attrs["provenance"][-1]["operation"] == "moseq_xr.analysis.set_groups"
    moseq_xr.validate(ds)
    table = syllable_stats(_hand_dataset(), groups={"a": "ctrl", "b": "drug"})
    assert table.columns[0] == "group"
    assert set(zip(table["recording"], table["group"], strict=True)) == {
        ("a", "ctrl"),
        ("b", "drug"),
    }


@pytest.mark.parametrize("key", ["recording", "name"])
def test_set_groups_from_csv(tmp_path, key):
    path = tmp_path / "index.csv"
    pd.DataFrame({key: ["b", "a"], "group": ["drug", "ctrl"]}).to_csv(path, index=False)
    ds = set_groups(_hand_dataset(), path)
    assert ds["group"].values.tolist() == ["ctrl", "drug"]


def test_set_groups_strict_checks(tmp_path):
    ds = _hand_dataset()
    with pytest.raises(SchemaError, match=r"not in the Dataset: \['c'\]"):
        set_groups(ds, {"a": "x", "b": "y", "c": "z"})
    with pytest.raises(SchemaError, match=r"no group given for recordings \['b'\]"):
        set_groups(ds, {"a": "x"})
    with pytest.raises(SchemaError, match="empty group"):
        set_groups(ds, {"a": "x", "b": ""})
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"file": ["a", "b"], "group": ["x", "y"]}).to_csv(bad, index=False)
    with pytest.raises(LoaderError, match="columns"):
        set_groups(ds, bad)
    twice = tmp_path / "twice.csv"
    pd.DataFrame({"recording": ["a", "a", "b"], "group": ["x", "y", "y"]}).to_csv(
        twice, index=False
    )
    with pytest.raises(LoaderError, match="more than once"):
        set_groups(ds, twice)


def _stats_table(values_by_group: dict[str, list[list[float]]]) -> pd.DataFrame:
    """Tidy table: values_by_group[group][sample] = values per syllable."""
    rows = []
    for group, samples in values_by_group.items():
        for index, values in enumerate(samples):
            for syllable, value in enumerate(values):
                rows.append(
                    {
                        "group": group,
                        "recording": f"{group}{index}",
                        "individual": "individual_0",
                        "syllable": syllable,
                        "frequency_instances": value,
                    }
                )
    return pd.DataFrame(rows)


def test_kruskal_h_matches_scipy_with_ties_and_three_groups():
    groups = {"A": [1, 2, 2, 3], "B": [3, 4, 5, 5], "C": [5, 6, 7, 2]}
    table = _stats_table({g: [[v] for v in vals] for g, vals in groups.items()})
    result = compare_groups(table, n_permutations=200)
    assert len(result) == 3  # pairs AB, AC, BC
    expected = scipy_stats.kruskal(*groups.values()).statistic
    np.testing.assert_allclose(result["H"], expected)
    assert result[["group_1", "group_2"]].values.tolist() == [
        ["A", "B"],
        ["A", "C"],
        ["B", "C"],
    ]
    assert result["n_1"].tolist() == [4, 4, 4]
    assert result["mean_1"].iloc[0] == pytest.approx(2.0)


def test_dunn_z_by_hand():
    # ranks: 1 -> 1; 2, 2 -> 2.5; 3 -> 4; 4 -> 5; 5, 5 -> 6.5; 6 -> 8; 7 -> 9
    groups = {"A": [1, 2, 2], "B": [3, 4, 5], "C": [5, 6, 7]}
    table = _stats_table({g: [[v] for v in vals] for g, vals in groups.items()})
    result = compare_groups(table, n_permutations=100)
    mean_rank = {"A": 6 / 3, "B": 15.5 / 3, "C": 23.5 / 3}
    variance = 9 * 10 / 12 - (6 + 6) / (12 * 8)  # two pairs of ties
    for _, row in result.iterrows():
        expected = abs(mean_rank[row.group_1] - mean_rank[row.group_2]) / np.sqrt(
            variance * (1 / 3 + 1 / 3)
        )
        assert row["z"] == pytest.approx(expected)
    assert result["z"].iloc[0] == pytest.approx(1.428131, rel=1e-5)


def test_small_group_warns():
    table = _stats_table({"A": [[1.0], [2.0], [3.0]], "B": [[4.0], [5.0]]})
    with pytest.warns(DataQualityWarning, match=r"fewer than 3 recordings: \{'B': 2\}"):
        result = compare_groups(table, n_permutations=10)
    assert result["n_2"].iloc[0] == 2


def test_permutation_p_value_counts_ties_and_adds_one():
    # H = 0 is the smallest value: every permutation ties or exceeds it -> p = 1 exactly
    table = _stats_table(
        {"A": [[1.0], [4.0], [5.0], [8.0]], "B": [[2.0], [3.0], [6.0], [7.0]]}
    )
    result = compare_groups(table, n_permutations=500)
    assert result["H"].iloc[0] == pytest.approx(0.0)
    assert result["p_value"].iloc[0] == 1.0
    assert result["p_dunn"].iloc[0] == 1.0
    # full separation of 3 vs 3: 2 of the 20 splits reach H_obs -> p ~ 0.1
    separated = _stats_table({"A": [[1.0], [2.0], [3.0]], "B": [[4.0], [5.0], [6.0]]})
    p_value = compare_groups(separated, n_permutations=20000, seed=1)["p_value"].iloc[0]
    assert p_value == pytest.approx(0.1, abs=0.01)
    assert p_value >= 1 / 20001
    one = compare_groups(separated, n_permutations=1)["p_value"].iloc[0]
    assert one in (0.5, 1.0)


def test_all_tied_syllable_gives_nan_and_is_skipped_by_bh():
    table = _stats_table(
        {
            "A": [[0.0, 1.0], [0.0, 2.0], [0.0, 3.0]],
            "B": [[0.0, 4.0], [0.0, 5.0], [0.0, 6.0]],
        }
    )
    result = compare_groups(table, n_permutations=100).set_index("syllable")
    assert np.isnan(result.loc[0, "H"]) and np.isnan(result.loc[0, "q_value"])
    assert result.loc[1, "q_value"] == result.loc[1, "p_value"]  # one test left
    assert not result.loc[0, "significant"]


def test_bh_matches_scipy_and_q_values_across_syllables():
    p_values = np.array([0.01, 0.04, 0.03, 0.2, 0.5, 0.001])
    np.testing.assert_allclose(
        benjamini_hochberg(p_values), scipy_stats.false_discovery_control(p_values)
    )
    with_nan = np.array([0.01, np.nan, 0.04])
    np.testing.assert_allclose(
        benjamini_hochberg(with_nan)[[0, 2]],
        scipy_stats.false_discovery_control([0.01, 0.04]),
    )
    rng = np.random.default_rng(3)
    samples = {
        g: rng.normal(size=(4, 6)) + shift for g, shift in (("A", 0.0), ("B", 1.0))
    }
    result = compare_groups(
        _stats_table({g: s.tolist() for g, s in samples.items()}), n_permutations=300
    )
    np.testing.assert_allclose(
        result["q_value"], scipy_stats.false_discovery_control(result["p_value"])
    )


def test_dunn_q_within_syllable_and_significance():
    rng = np.random.default_rng(0)
    samples = {
        "A": rng.normal(0, 0.1, 6),
        "B": rng.normal(5, 0.1, 6),
        "C": rng.normal(10, 0.1, 6),
    }
    table = _stats_table({g: [[v] for v in s] for g, s in samples.items()})
    result = compare_groups(table, n_permutations=2000)
    np.testing.assert_allclose(
        result["q_dunn"], scipy_stats.false_discovery_control(result["p_dunn"])
    )
    assert result.set_index(["group_1", "group_2"]).loc[("A", "C"), "significant"]
    assert (result["p_value"] < 0.01).all()


def test_compare_groups_input_errors():
    table = _stats_table({"A": [[1.0], [2.0], [3.0]]})
    with pytest.raises(SchemaError, match="at least two groups"):
        compare_groups(table)
    with pytest.raises(SchemaError, match="set_groups"):
        compare_groups(table.drop(columns="group"))
    with pytest.raises(SchemaError, match="duration_s"):
        compare_groups(table, statistic="duration_s")


def test_ten_thousand_permutations_fifty_syllables_in_seconds():
    rng = np.random.default_rng(1)
    table = _stats_table({g: rng.random((8, 50)).tolist() for g in "ABC"})
    start = time.perf_counter()
    result = compare_groups(table, n_permutations=10000)
    elapsed = time.perf_counter() - start
    assert len(result) == 50 * 3
    assert elapsed < 15.0


def test_compare_groups_is_reproducible_with_seed():
    rng = np.random.default_rng(2)
    table = _stats_table({g: rng.random((4, 3)).tolist() for g in "AB"})
    first = compare_groups(table, n_permutations=500, seed=7)
    again = compare_groups(table, n_permutations=500, seed=7)
    pd.testing.assert_frame_equal(first, again)


@pytest.mark.realdata
def test_real_recording_split_into_groups(real_data):
    real = real_results_dataset(real_data / REAL_DLC)
    length = 388  # six chunks of the 2330 frames
    positions = {
        f"chunk{k}": real["position"]
        .isel(recording=0, individual=0, time=slice(k * length, (k + 1) * length))
        .transpose("time", "keypoint", "space")
        .values
        for k in range(6)
    }
    ds = moseq_xr.from_arrays(positions, list(real["keypoint"].values), fps=30.0)
    for name in ("syllable", "centroid", "heading"):
        chunks = [
            real[name].isel(time=slice(k * length, (k + 1) * length)) for k in range(6)
        ]
        values = np.concatenate([c.values for c in chunks], axis=0)
        ds[name] = (
            RESULT_DIMS if name != "centroid" else (*RESULT_DIMS, "space"),
            values,
        )
    groups = {f"chunk{k}": "early" if k < 3 else "late" for k in range(6)}
    table = syllable_stats(ds, groups=groups)
    assert len(table) == 6 * table["syllable"].nunique()
    sums = table.groupby("recording")["frequency_instances"].sum()
    assert (sums <= 1 + 1e-12).all() and (sums > 0.9).all()
    first = table[(table["recording"] == "chunk0")]
    labels = real["syllable"].values[0, 0, :length]
    for syllable in (0, 1):
        assert first.set_index("syllable").loc[syllable, "count_frames"] == int(
            np.sum(labels == syllable)
        )
    result = compare_groups(table, n_permutations=999)
    assert len(result) == table["syllable"].nunique()
    assert result["p_value"].between(1 / 1000, 1).all()
    for statistic in ("duration_s", "velocity_mean", "angular_velocity_mean"):
        assert len(compare_groups(table, statistic=statistic, n_permutations=99)) > 0
