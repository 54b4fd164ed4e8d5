from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from scipy.spatial.distance import cosine, euclidean

from moseq_xr.analysis import (
    bouts,
    merge_syllables,
    suggest_merges,
    syllable_similarity,
    to_dataframe,
    transition_matrices,
    typical_trajectories,
)
from moseq_xr.exceptions import SchemaError
from tests.analysis import RESULT_DIMS, real_results_dataset, results_dataset

REAL_DLC = (
    "DeepLabCut_DLC2NWB/examples/m3v1mp4DLC_resnet50_openfieldAug20shuffle1_30000.h5"
)

# egocentric templates (keypoint, space): nose, left, right, tail; 2 duplicates 0
TEMPLATES = {
    0: np.array([[2.0, 0.0], [0.0, 1.0], [0.0, -1.0], [-2.0, 0.0]]),
    1: np.array([[1.0, 0.5], [-0.5, 1.5], [0.5, -1.0], [-1.0, -1.0]]),
}
TEMPLATES[2] = TEMPLATES[0]
INSTANCE_LENGTH = 8
N_INSTANCES = 30


def _rotation(angle: float) -> np.ndarray:
    return np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])


def _posed_dataset(seed: int = 0) -> xr.Dataset:
    """Syllables 0, 1, 2, 0, ... of 8 frames; the body is still within an instance,
    at a random centroid and heading: position = centroid + R(heading) template."""
    rng = np.random.default_rng(seed)
    n_frames = INSTANCE_LENGTH * N_INSTANCES
    labels = np.repeat(np.arange(N_INSTANCES) % 3, INSTANCE_LENGTH)
    centroid = np.repeat(
        rng.uniform(-50, 50, (N_INSTANCES, 2)), INSTANCE_LENGTH, axis=0
    )
    heading = np.repeat(rng.uniform(-np.pi, np.pi, N_INSTANCES), INSTANCE_LENGTH)
    position = np.empty((n_frames, 4, 2))
    for frame in range(n_frames):
        pose = TEMPLATES[int(labels[frame])] @ _rotation(heading[frame]).T
        position[frame] = centroid[frame] + pose
    return results_dataset(
        {"rec": labels},
        fps=10.0,
        centroid={"rec": centroid},
        heading={"rec": heading},
        positions={"rec": position},
    )


def test_typical_trajectory_is_template_in_onset_egocentric_frame():
    trajectories = typical_trajectories(
        _posed_dataset(), pre=0.0, post=0.5, smooth_window=1
    )
    assert trajectories.dims == ("syllable", "lag", "space", "keypoint")
    assert trajectories["syllable"].values.tolist() == [0, 1, 2]
    assert trajectories["lag"].values.tolist() == [0, 1, 2, 3, 4]
    np.testing.assert_allclose(trajectories["lag_time"], [0.0, 0.1, 0.2, 0.3, 0.4])
    assert trajectories["n_instances"].values.tolist() == [10, 10, 10]
    for syllable, template in TEMPLATES.items():
        for lag in range(5):
            np.testing.assert_allclose(
                trajectories.sel(syllable=syllable, lag=lag).transpose(
                    "keypoint", "space"
                ),
                template,
                atol=1e-9,
            )
    # heading convention: the nose points along +x at onset
    assert float(
        trajectories.sel(syllable=0, lag=0, keypoint="nose", space="x")
    ) == pytest.approx(2.0)


def test_instances_must_fit_the_window_and_last_long_enough():
    ds = _posed_dataset()
    before = typical_trajectories(ds, pre=0.2, post=0.5, smooth_window=1)
    assert before["lag"].values.tolist() == [-2, -1, 0, 1, 2, 3, 4]
    # the first instance (onset 0) has no 2 frames before it
    assert before["n_instances"].values.tolist() == [9, 10, 10]
    # the last instance (onset 232) has only 8 frames after it
    after = typical_trajectories(ds, pre=0.0, post=0.9, smooth_window=1)
    assert after["n_instances"].values.tolist() == [10, 10, 9]
    none = typical_trajectories(ds, pre=0.0, post=0.5, min_duration=1.0)
    assert none.sizes["syllable"] == 0


def test_similarity_matches_hand_distances():
    distances = syllable_similarity(
        _posed_dataset(), pre=0.0, post=0.5, smooth_window=1
    )
    assert distances.dims == ("syllable", "syllable_")
    assert distances.attrs["metric"] == "cosine"
    assert distances.attrs["pre_frames"] == 0 and distances.attrs["post_frames"] == 5
    flat = {s: np.tile(t.T.ravel(), 5) for s, t in TEMPLATES.items()}
    np.testing.assert_allclose(
        distances.sel(syllable=0, syllable_=1), cosine(flat[0], flat[1])
    )
    np.testing.assert_allclose(distances.sel(syllable=0, syllable_=2), 0.0, atol=1e-12)
    np.testing.assert_allclose(distances.values, distances.values.T)
    np.testing.assert_allclose(np.diag(distances.values), 0.0, atol=1e-12)
    euclid = syllable_similarity(
        _posed_dataset(), pre=0.0, post=0.5, metric="euclidean", smooth_window=1
    )
    np.testing.assert_allclose(
        euclid.sel(syllable=1, syllable_=2), euclidean(flat[1], flat[2])
    )


def test_suggest_merges_groups_near_duplicates():
    distances = syllable_similarity(
        _posed_dataset(), pre=0.0, post=0.5, smooth_window=1
    )
    assert suggest_merges(distances, threshold=1e-6) == {0: 0, 1: 1, 2: 0}
    assert suggest_merges(distances, threshold=10.0) == {0: 0, 1: 0, 2: 0}
    single = distances.isel(syllable=[1], syllable_=[1])
    assert suggest_merges(single, threshold=1.0) == {1: 1}
    broken = distances.copy()
    broken[0, 1] = np.nan
    with pytest.raises(ValueError, match="finite"):
        suggest_merges(broken, threshold=1.0)


def test_merge_syllables_relabels_and_records_provenance():
    ds = results_dataset({"a": [-1, 0, 2, 2, 1, -1], "b": [2, 0]})
    merged = merge_syllables(ds, {2: 0, 1: 1})
    np.testing.assert_array_equal(
        merged["syllable"].sel(recording="a").squeeze(), [-1, 0, 0, 0, 1, -1]
    )
    np.testing.assert_array_equal(
        merged["syllable"].sel(recording="b").squeeze()[:2], [0, 0]
    )
    assert int(merged["syllable"].sel(recording="b").squeeze()[2]) == -1  # padding
    assert merged["syllable"].dtype == ds["syllable"].dtype
    assert (
        merged.attrs["provenance"][-1]["operation"]
        == "moseq_xr.analysis.merge_syllables"
    )
    assert merged.attrs["provenance"][-1]["arguments"]["mapping"] == {"2": 0, "1": 1}
    assert len(ds.attrs["provenance"]) == len(merged.attrs["provenance"]) - 1
    np.testing.assert_array_equal(
        ds["syllable"].sel(recording="a").squeeze(), [-1, 0, 2, 2, 1, -1]
    )
    # merged instances fuse: 0, 2, 2 -> one instance of 0
    assert bouts(merged)["syllable"].tolist() == [0, 1, 0]
    counts = transition_matrices(merged, normalize=None)
    assert int(counts.sel(recording="a", syllable_from=0, syllable_to=1)) == 1


def test_merge_syllables_rejects_bad_mappings():
    ds = results_dataset({"a": [0, 1, 1, -1]})
    with pytest.raises(SchemaError, match=r"\[7\] do not occur"):
        merge_syllables(ds, {7: 0})
    with pytest.raises(SchemaError, match=">= 0"):
        merge_syllables(ds, {-1: 0})
    with pytest.raises(SchemaError, match=">= 0"):
        merge_syllables(ds, {1: -1})
    with pytest.raises(SchemaError, match="integers"):
        merge_syllables(ds, {1.5: 0})


def test_merge_sums_syllable_probabilities():
    ds = results_dataset({"a": [0, 1, 2]})
    probability = np.array([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3], [0.2, 0.2, 0.6]])
    ds["syllable_probability"] = (
        (*RESULT_DIMS, "syllable_id"),
        probability[None, None],
    )
    merged = merge_syllables(ds, {2: 1})
    expected = np.array([[0.7, 0.3, 0.0], [0.1, 0.9, 0.0], [0.2, 0.8, 0.0]])
    np.testing.assert_allclose(merged["syllable_probability"].squeeze(), expected)
    np.testing.assert_array_equal(merged["syllable"].squeeze(), [0, 1, 1])


def test_similarity_needs_centroid_and_heading():
    with pytest.raises(SchemaError, match="centroid"):
        syllable_similarity(results_dataset({"a": [0, 1, 1]}))


@pytest.mark.realdata
def test_real_recording_similarity_and_merge(real_data):
    ds = real_results_dataset(real_data / REAL_DLC)
    trajectories = typical_trajectories(ds)
    assert trajectories["lag"].values.tolist() == list(range(-5, 15))
    instances = bouts(ds)
    qualifying = instances[
        (instances["duration_frames"] >= 3)
        & (instances["start_frame"] >= 5)
        & (instances["start_frame"] + 15 <= 2330)
    ]
    expected_counts = qualifying["syllable"].value_counts().sort_index()
    assert trajectories["syllable"].values.tolist() == expected_counts.index.tolist()
    assert trajectories["n_instances"].values.tolist() == expected_counts.tolist()
    at_onset = trajectories.sel(lag=0)
    assert (at_onset.sel(keypoint="snout", space="x") > 0).all()
    assert (at_onset.sel(keypoint="tailbase", space="x") < 0).all()

    distances = syllable_similarity(ds)
    assert distances.shape == (8, 8)
    np.testing.assert_allclose(distances.values, distances.values.T)
    assert np.all(np.isfinite(distances.values)) and (distances.values >= -1e-12).all()
    threshold = float(np.sort(distances.values[np.triu_indices(8, 1)])[0]) + 1e-9
    mapping = suggest_merges(distances, threshold)
    merged_pair = [s for s, r in mapping.items() if s != r]
    assert len(merged_pair) == 1
    merged = merge_syllables(ds, mapping)
    assert merged_pair[0] not in set(np.unique(merged["syllable"].values))
    frames = to_dataframe(merged)
    assert (frames["syllable"] == -1).sum() == 3
