"""Lightning Pose loader: real LP/EKS CSVs, ensemble coords (pitfall 5), detection."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import moseq_xr
from moseq_xr.exceptions import LoaderError
from moseq_xr.io.formats.lightning_pose import _is_lightning_pose, read_lightning_pose

pytestmark = pytest.mark.realdata

IBL_PAW = (
    "paninski-lab_eks/data/ibl-paw/3f859b5c-e73a-4044-b49e-34bb81e96715.right.rng=0.csv"
)
MIRROR = "paninski-lab_eks/data/mirror-mouse/180607_004.train_frames=75.rng=0.csv"
LABELS = "paninski-lab_lightning-pose/data/mirror-mouse-example/CollectedData.csv"
MIRROR_KP = [
    "paw1LH_top",
    "paw2LF_top",
    "paw3RF_top",
    "paw4RH_top",
    "paw1LH_bot",
    "paw2LF_bot",
    "paw3RF_bot",
    "paw4RH_bot",
]
LABEL_KP = [
    "paw1LH_top",
    "paw2LF_top",
    "paw3RF_top",
    "paw4RH_top",
    "tailBase_top",
    "tailMid_top",
    "nose_top",
    "obs_top",
    "paw1LH_bot",
    "paw2LF_bot",
    "paw3RF_bot",
    "paw4RH_bot",
    "tailBase_bot",
    "tailMid_bot",
    "nose_bot",
    "obsHigh_bot",
    "obsLow_bot",
]
EKS_COORDS = [
    "x",
    "y",
    "likelihood",
    "x_ens_median",
    "y_ens_median",
    "x_ens_var",
    "y_ens_var",
    "x_posterior_var",
    "y_posterior_var",
]


def read_with_pandas(path) -> pd.DataFrame:
    return pd.read_csv(path, header=[0, 1, 2], index_col=0)


def assert_matches_pandas(rec, df: pd.DataFrame, frames: np.ndarray) -> None:
    """Every x/y/likelihood column of ``df`` sits at its keypoint in ``rec``."""
    for scorer, bodypart, coord in df.columns:
        column = df[(scorer, bodypart, coord)].to_numpy()
        point = {"keypoint": bodypart, "individual": "individual_0"}
        if coord == "likelihood":
            got = rec.confidence.sel(point)
        elif coord in ("x", "y", "z"):
            got = rec.position.sel(point).sel(space=coord)
        else:
            continue
        np.testing.assert_array_equal(got.isel(time=frames).to_numpy(), column)


def write_lp(path, bodyparts, coords, n_frames=5, scorer="heatmap_tracker", seed=0):
    """A DLC-layout CSV following the spec's Lightning Pose synthesis recipe."""
    columns = pd.MultiIndex.from_product(
        [[scorer], bodyparts, coords], names=["scorer", "bodyparts", "coords"]
    )
    values = np.random.default_rng(seed).uniform(0, 1, (n_frames, len(columns)))
    df = pd.DataFrame(values, columns=columns)
    df.iloc[2, 0] = np.nan
    df.to_csv(path)
    return df


@pytest.mark.parametrize(
    ("relpath", "n_frames", "keypoints"),
    [
        (IBL_PAW, 2500, ["paw_l", "paw_r"]),
        (MIRROR, 2000, MIRROR_KP),
    ],
    ids=["ibl-paw", "mirror-mouse"],
)
def test_real_predictions(real_data, relpath, n_frames, keypoints):
    path = real_data / relpath
    assert moseq_xr.detect_source(path) == "lightning_pose"
    ds = moseq_xr.load_poses(path, fps=250)
    assert ds.recording.item() == path.stem
    assert int(ds.n_frames.item()) == n_frames
    assert ds.keypoint.to_numpy().tolist() == keypoints
    assert ds.individual.to_numpy().tolist() == ["individual_0"]
    assert ds.source_software.item() == "LightningPose"
    assert not bool(ds.confidence_filled.item())
    assert ds.attrs["space_unit"] == "pixels"
    assert_matches_pandas(
        ds.isel(recording=0), read_with_pandas(path), np.arange(n_frames)
    )
    (record,) = read_lightning_pose(path)
    assert record.fps is None
    assert record.extra["scorer"] == "heatmap_mhcrnn_tracker"


def test_real_values_copied_from_file_text(real_data):
    paw = moseq_xr.load_poses(real_data / IBL_PAW, fps=150).isel(recording=0, time=0)
    assert paw.position.sel(keypoint="paw_l").to_numpy().ravel().tolist() == [
        35.0196647644043,
        65.88457489013672,
    ]
    assert paw.confidence.sel(keypoint="paw_l").item() == 0.9997413754463196
    mirror = moseq_xr.load_poses(real_data / MIRROR, fps=250).isel(recording=0, time=0)
    assert mirror.position.sel(keypoint="paw1LH_top").to_numpy().ravel().tolist() == [
        78.5473937988281,
        123.508247375488,
    ]
    assert mirror.confidence.sel(keypoint="paw1LH_top").item() == 0.998795211315155


def test_real_labels_file(real_data):
    """LP labels carry no LP marker: detected as DLC, loadable as LP explicitly."""
    path = real_data / LABELS
    assert moseq_xr.detect_source(path) == "deeplabcut"
    ds = moseq_xr.load_poses(path, fps=30, source="lightning_pose")
    assert ds.source_software.item() == "LightningPose"
    assert ds.keypoint.to_numpy().tolist() == LABEL_KP
    assert int(ds.n_frames.item()) == 91  # images img01..img90: frame 0 is a NaN row
    assert bool(ds.confidence_filled.item())
    rec = ds.isel(recording=0)
    assert rec.position.isel(time=0).isnull().all()
    assert rec.position.isel(time=1).sel(
        keypoint="paw1LH_top"
    ).to_numpy().ravel().tolist() == [77.25, 36.25]
    assert rec.position.isel(time=1).sel(keypoint="paw2LF_top", space="y").item() == (
        101.900392541708
    )
    assert rec.position.isel(time=1).sel(keypoint="tailBase_top").isnull().all()
    df = read_with_pandas(path)
    frames = np.array([int(name.split("img")[1].split(".")[0]) for name in df.index])
    assert_matches_pandas(rec, df, frames)


def test_pitfall_05_eks_nine_coords_selected_by_name(tmp_path):
    path = tmp_path / "eks_ensemble.csv"
    scorer = "ensemble-kalman_tracker"
    df = write_lp(path, ["nose", "paw_l", "paw_r", "tail"], EKS_COORDS, scorer=scorer)
    assert moseq_xr.detect_source(path) == "lightning_pose"  # by the ensemble coords
    ds = moseq_xr.load_poses(path, fps=60)
    assert ds.sizes["space"] == 2
    assert ds.keypoint.to_numpy().tolist() == ["nose", "paw_l", "paw_r", "tail"]
    rec = ds.isel(recording=0).sel(individual="individual_0")
    for bodypart in ("nose", "paw_r", "tail"):
        np.testing.assert_allclose(
            rec.position.sel(keypoint=bodypart, space="x"), df[(scorer, bodypart, "x")]
        )
        np.testing.assert_allclose(
            rec.position.sel(keypoint=bodypart, space="y"), df[(scorer, bodypart, "y")]
        )
        np.testing.assert_allclose(
            rec.confidence.sel(keypoint=bodypart), df[(scorer, bodypart, "likelihood")]
        )
    assert np.isnan(rec.position.sel(keypoint="nose", space="x").isel(time=2))


def test_eks_3d_has_no_confidence(tmp_path):
    path = tmp_path / "eks_3d.csv"
    coords = ["x", "y", "z", "x_posterior_var", "y_posterior_var", "z_posterior_var"]
    df = write_lp(path, ["a", "b"], coords, scorer="eks")
    (record,) = read_lightning_pose(path)
    assert record.position.shape == (5, 3, 2, 1)
    assert record.confidence is None
    np.testing.assert_allclose(record.position[:, 2, 1, 0], df[("eks", "b", "z")])


def test_sniff_positive_only_with_lp_markers(tmp_path):
    plain = tmp_path / "plain.csv"
    write_lp(plain, ["nose"], ["x", "y", "likelihood"], scorer="DLC_resnet50_x")
    assert not _is_lightning_pose(plain)
    assert moseq_xr.detect_source(plain) == "deeplabcut"
    heat = tmp_path / "heat.csv"
    write_lp(heat, ["nose"], ["x", "y", "likelihood"], scorer="heatmap_tracker")
    assert _is_lightning_pose(heat)
    pixel_error = tmp_path / "predictions_pixel_error.csv"
    pixel_error.write_text(",nose,tail,set\n0,1.5,2.5,train\n1,0.5,0.7,val\n")
    temporal = tmp_path / "video_temporal_norm.csv"
    temporal.write_text("nose,tail\n0.1,0.2\n")
    for path in (pixel_error, temporal, tmp_path / "missing.h5"):
        assert not _is_lightning_pose(path)


def test_lp_sidecars_are_skipped_in_directories(real_data, tmp_path):
    folder = tmp_path / "lp"
    folder.mkdir()
    (folder / "preds.csv").symlink_to(real_data / IBL_PAW)
    (folder / "preds_pixel_error.csv").write_text(",paw_l,paw_r\n0,1.0,2.0\n")
    (folder / "preds_temporal_norm.csv").write_text(",paw_l,paw_r\n0,1.0,2.0\n")
    ds = moseq_xr.load_poses(folder, fps=150)
    assert ds.recording.to_numpy().tolist() == ["preds"]


def test_not_a_dlc_layout_is_an_error(tmp_path):
    path = tmp_path / "pred_pixel_error.csv"
    path.write_text(",nose\n0,1.0\n")
    with pytest.raises(LoaderError, match=r"pred_pixel_error\.csv"):
        read_lightning_pose(path)
