from __future__ import annotations

import numpy as np
import pytest

from moseq_xr.analysis import bouts, set_groups, transition_matrices
from moseq_xr.exceptions import SchemaError
from tests.analysis import real_results_dataset, results_dataset

REAL_DLC = (
    "DeepLabCut_DLC2NWB/examples/m3v1mp4DLC_resnet50_openfieldAug20shuffle1_30000.h5"
)


def _dataset():
    # a: 0 -> 1 -> 2 | gap | 2 -> 0 ; b: 1 -> 0
    return results_dataset({"a": [-1, 0, 0, 1, 1, 2, -1, 2, 0, 0], "b": [1, 0]})


def test_counts_by_hand_first_syllable_kept():
    counts = transition_matrices(_dataset(), normalize=None)
    assert counts.dims == ("recording", "syllable_from", "syllable_to")
    assert counts["syllable_from"].values.tolist() == [0, 1, 2]
    expected_a = np.zeros((3, 3), dtype=int)
    expected_a[0, 1] = expected_a[1, 2] = expected_a[2, 0] = 1
    expected_b = np.zeros((3, 3), dtype=int)
    expected_b[1, 0] = 1  # the first syllable of b is the source of its transition
    np.testing.assert_array_equal(counts.sel(recording="a"), expected_a)
    np.testing.assert_array_equal(counts.sel(recording="b"), expected_b)
    assert counts.dtype.kind == "i"


def test_no_self_transitions_and_no_transition_across_gaps():
    counts = transition_matrices(_dataset(), normalize=None)
    assert int(np.trace(counts.sel(recording="a"))) == 0
    # 2 | -1 | 2 is not a 2 -> 2 transition, and nothing bridges the gap
    assert int(counts.sel(recording="a").sum()) == 3


def test_no_transition_across_individuals_or_padding():
    ds = results_dataset(
        {"a": [[0, 0, 1, 1], [2, 2, 0, 0]], "b": [[3, 3, -1, -1], [1, 3, -1, -1]]}
    )
    counts = transition_matrices(ds, normalize=None)
    assert int(counts.sel(recording="a", syllable_from=1, syllable_to=2)) == 0
    assert int(counts.sel(recording="a").sum()) == 2  # 0 -> 1 and 2 -> 0
    assert int(counts.sel(recording="b").sum()) == 1  # 1 -> 3 of the second individual


def test_normalisations():
    ds = results_dataset({"a": [0, 1, 0, 1, 2, 0, 2]})
    counts = transition_matrices(ds, normalize=None).sel(recording="a").values
    # transitions: 0->1, 1->0, 0->1, 1->2, 2->0, 0->2
    assert counts.sum() == 6 and counts[0, 1] == 2
    bigram = transition_matrices(ds, normalize="bigram").sel(recording="a").values
    np.testing.assert_allclose(bigram, counts / 6)
    rows = transition_matrices(ds, normalize="rows").sel(recording="a").values
    np.testing.assert_allclose(rows[0], [0, 2 / 3, 1 / 3])
    np.testing.assert_allclose(rows.sum(axis=1), 1.0)
    columns = transition_matrices(ds, normalize="columns").sel(recording="a").values
    np.testing.assert_allclose(columns[:, 0], [0, 0.5, 0.5])
    np.testing.assert_allclose(columns.sum(axis=0), 1.0)
    assert transition_matrices(ds).attrs["normalize"] == "bigram"


def test_rows_without_transitions_are_nan():
    ds = results_dataset({"a": [0, 1, 1], "b": [2, 2, 2]})
    rows = transition_matrices(ds, normalize="rows")
    assert np.isnan(rows.sel(recording="a", syllable_from=1)).all()
    assert np.isnan(rows.sel(recording="b")).all()


def test_by_group_sums_recordings():
    ds = set_groups(
        results_dataset({"a": [0, 1], "b": [0, 1, 0], "c": [1, 0]}),
        {"a": "x", "b": "x", "c": "y"},
    )
    counts = transition_matrices(ds, normalize=None, by="group")
    assert counts.dims == ("group", "syllable_from", "syllable_to")
    assert counts["group"].values.tolist() == ["x", "y"]
    np.testing.assert_array_equal(counts.sel(group="x"), [[0, 2], [1, 0]])
    np.testing.assert_array_equal(counts.sel(group="y"), [[0, 0], [1, 0]])
    per_recording = transition_matrices(ds, normalize=None)
    assert per_recording["group"].values.tolist() == ["x", "x", "y"]
    with pytest.raises(SchemaError, match="set_groups"):
        transition_matrices(results_dataset({"a": [0, 1]}), by="group")


def test_max_syllable_drops_higher_labels():
    ds = results_dataset({"a": [0, 5, 1, 0]})
    counts = transition_matrices(ds, normalize=None, max_syllable=2)
    assert counts.shape == (1, 2, 2)
    # 0 -> 5 and 5 -> 1 are dropped, not bridged into 0 -> 1
    np.testing.assert_array_equal(counts.sel(recording="a"), [[0, 0], [1, 0]])
    assert transition_matrices(ds, normalize=None).shape == (1, 6, 6)


def test_bad_arguments():
    with pytest.raises(ValueError, match="normalize"):
        transition_matrices(_dataset(), normalize="total")
    with pytest.raises(ValueError, match="by"):
        transition_matrices(_dataset(), by="individual")


@pytest.mark.realdata
def test_real_recording_transitions(real_data):
    ds = real_results_dataset(real_data / REAL_DLC)
    counts = transition_matrices(ds, normalize=None)
    instances = bouts(ds)
    # one uninterrupted sequence after the first 3 frames: instances - 1 transitions
    assert int(counts.sum()) == len(instances) - 1
    source = instances["syllable"].to_numpy()[:-1]
    target = instances["syllable"].to_numpy()[1:]
    expected = np.zeros((8, 8), dtype=int)
    np.add.at(expected, (source, target), 1)
    np.testing.assert_array_equal(counts.isel(recording=0), expected)
    assert int(np.trace(counts.isel(recording=0))) == 0
    rows = transition_matrices(ds, normalize="rows")
    np.testing.assert_allclose(rows.isel(recording=0).sum("syllable_to"), 1.0)
