"""DeepLabCut loader: every real DLC file, synthetic variants, pitfall 4."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import moseq_xr
from moseq_xr.exceptions import FormatDetectionError, LoaderError
from moseq_xr.io.formats.deeplabcut import read_deeplabcut

pytestmark = pytest.mark.realdata

DLC = "DeepLabCut_DeepLabCut/examples"
M3V1 = "DeepLabCut_DLC2NWB/examples/m3v1mp4DLC_resnet50_openfieldAug20shuffle1_30000.h5"
VID1_3D = f"{DLC}/3Dtestviews_videos/vid1_DLC_3D"
REACHING = (
    f"{DLC}/TEST-Alex-2019-11-04/videos/"
    "reachingvideo1shortDLC_resnet50_TESTNov4shuffle1_10"
)
MULTI = (
    f"{DLC}/multi_mouse-dlc_team-2022-04-12/videos/"
    "m3v1mp4shortDLC_effnet_b0_multi_mouseApr12shuffle1_5"
)
MULTI_H5 = f"{MULTI}_el.h5"
MULTI_CSV = f"{MULTI}_el_filtered.csv"
PRANAV = f"{DLC}/openfield-Pranav-2018-10-30/labeled-data/m4s1/CollectedData_Pranav"
EPM = (
    "ETHZ-INS_DLCAnalyzer/data/EPM/Output_DLC/"
    "EPM_15DeepCut_resnet50_epmMay17shuffle1_1030000.csv"
)
DEEPOF = "mlfpm_deepof/tests/test_examples"
DEEPOF_MADLC = f"{DEEPOF}/test_madlc_topview/Tables/testDLC_h5_table_madlc.h5"
DEEPOF_H5 = f"{DEEPOF}/test_single_topview/Tables/test2DLC_h5_table.h5"
DEEPOF_CSV = f"{DEEPOF}/test_single_topview/Tables/testDLC_csv_table.csv"
DEEPOF_SQUARE = f"{DEEPOF}/test_square_arena_topview/Tables/testDLC_square_arena.h5"
WASP = "neuroinformatics-unit_movement/data/DLC_sample_poses"

M3V1_KP = ["snout", "leftear", "rightear", "tailbase"]
REACH_KP = ["bodypart1", "bodypart2", "bodypart3", "objectA"]
DEEPOF_KP = [
    "Nose",
    "Left_ear",
    "Right_ear",
    "Spine_1",
    "Center",
    "Spine_2",
    "Tail_base",
    "Tail_1",
    "Tail_2",
    "Tail_tip",
    "Left_bhip",
    "Right_bhip",
    "Left_fhip",
    "Right_fhip",
]
SQUARE_KP = [
    "Nose",
    "Left_ear",
    "Right_ear",
    "Left_fhip",
    "Right_fhip",
    "Left_bhip",
    "Right_bhip",
    "Spine_1",
    "Center",
    "Spine_2",
    "Tail_base",
    "Tail_1",
    "Tail_2",
    "Tail_tip",
]
EPM_KP = [
    "tl",
    "tr",
    "bl",
    "br",
    "lt",
    "lb",
    "rt",
    "rb",
    "ctl",
    "ctr",
    "cbl",
    "cbr",
    "nose",
    "headcentre",
    "neck",
    "earl",
    "earr",
    "bodycentre",
    "bcl",
    "bcr",
    "hipl",
    "hipr",
    "tailbase",
    "tailcentre",
    "tailtip",
]
MULTI_KP = ["bodypart1", "bodypart2", "bodypart3", "corner1", "corner2"]
MULTI_IND = ["individual1", "individual2", "individual3", "single"]
ONE = ["individual_0"]

# path, n_frames, keypoints, individuals, n_space, has likelihood, labels file
REAL_FILES = [
    (M3V1, 2330, M3V1_KP, ONE, 2, True, False),
    (f"{VID1_3D}.csv", 12, REACH_KP, ONE, 3, False, False),
    (f"{VID1_3D}.h5", 12, REACH_KP, ONE, 3, False, False),
    (f"{REACHING}.csv", 12, REACH_KP, ONE, 2, True, False),
    (f"{REACHING}.h5", 12, REACH_KP, ONE, 2, True, False),
    (MULTI_H5, 31, MULTI_KP, MULTI_IND, 2, True, False),
    (MULTI_CSV, 31, MULTI_KP, MULTI_IND, 2, True, False),
    (f"{PRANAV}.csv", 116, M3V1_KP, ONE, 2, False, True),
    (f"{PRANAV}.h5", 116, M3V1_KP, ONE, 2, False, True),
    (EPM, 962, EPM_KP, ONE, 2, True, False),
    (
        DEEPOF_MADLC,
        100,
        DEEPOF_KP,
        ["mouse_black_tail", "mouse_white_tail"],
        2,
        True,
        False,
    ),
    (DEEPOF_H5, 100, DEEPOF_KP, ONE, 2, True, False),
    (DEEPOF_CSV, 97, DEEPOF_KP, ONE, 2, True, False),
    (DEEPOF_SQUARE, 451, SQUARE_KP, ONE, 2, True, False),
    (f"{WASP}.csv", 1085, ["head", "stinger"], ONE, 2, True, False),
    (f"{WASP}.h5", 1085, ["head", "stinger"], ONE, 2, True, False),
]


def read_with_pandas(path: Path) -> pd.DataFrame:
    """The file as pandas reads it, independently of the loader."""
    if path.suffix == ".h5":
        return pd.read_hdf(path)
    with open(path) as handle:
        handle.readline()
        n_header = 4 if handle.readline().startswith("individuals") else 3
    return pd.read_csv(path, header=list(range(n_header)), index_col=0)


def frames_of(index: pd.Index) -> np.ndarray:
    """Frame of each row: the integer index, or the digits of label image names."""
    if pd.api.types.is_integer_dtype(index.dtype):
        return index.to_numpy()
    return np.array([int(re.findall(r"\d+", Path(p).stem)[-1]) for p in index])


def assert_matches_pandas(ds, df: pd.DataFrame) -> None:
    """Every column of ``df`` sits at its (individual, keypoint, coord) in ``ds``."""
    rec = ds.isel(recording=0)
    frames = frames_of(df.index)
    for column in df.columns:
        individual = column[1] if df.columns.nlevels == 4 else "individual_0"
        bodypart, coord = column[-2], column[-1]
        if coord == "likelihood":
            got = rec.confidence.sel(keypoint=bodypart, individual=individual)
        else:
            got = rec.position.sel(
                space=coord, keypoint=bodypart, individual=individual
            )
        np.testing.assert_array_equal(
            got.isel(time=frames).to_numpy(), df[column].to_numpy()
        )


def write_dlc(
    path: Path,
    bodyparts: list[str],
    n_frames: int = 6,
    individuals: list[str] | None = None,
    coords: tuple[str, ...] = ("x", "y", "likelihood"),
    index: list | None = None,
    scorer: str = "DLC_resnet50_testOct30shuffle1_1000",
    seed: int = 0,
) -> pd.DataFrame:
    """Write a DLC table following the spec's synthesis recipe (.h5 or .csv)."""
    levels = [
        [scorer],
        *([individuals] if individuals else []),
        bodyparts,
        list(coords),
    ]
    names = ["scorer", *(["individuals"] if individuals else []), "bodyparts", "coords"]
    columns = pd.MultiIndex.from_product(levels, names=names)
    values = np.random.default_rng(seed).uniform(0, 500, (n_frames, len(columns)))
    df = pd.DataFrame(values, columns=columns, index=index)
    if "likelihood" in coords:
        df.loc[:, df.columns.get_level_values("coords") == "likelihood"] /= 500
    if n_frames > 1:
        df.iloc[1, 0] = np.nan
    save(df, path)
    return df


def save(df: pd.DataFrame, path: Path) -> None:
    if path.suffix == ".h5":
        df.to_hdf(path, key="df_with_missing", format="table", mode="w")
    else:
        df.to_csv(path)


# ----------------------------------------------------------------- real files


@pytest.mark.parametrize(
    (
        "relpath",
        "n_frames",
        "keypoints",
        "individuals",
        "n_space",
        "has_likelihood",
        "labels",
    ),
    REAL_FILES,
    ids=[Path(f[0]).name[:40] for f in REAL_FILES],
)
def test_real_file_loads_like_pandas(
    real_data,
    relpath,
    n_frames,
    keypoints,
    individuals,
    n_space,
    has_likelihood,
    labels,
):
    path = real_data / relpath
    assert moseq_xr.detect_source(path) == "deeplabcut"
    ds = moseq_xr.load_poses(path, fps=30)
    assert ds.sizes["recording"] == 1
    assert ds.recording.item() == path.stem
    assert int(ds.n_frames.item()) == n_frames
    assert ds.keypoint.to_numpy().tolist() == keypoints
    assert ds.individual.to_numpy().tolist() == individuals
    assert ds.space.to_numpy().tolist() == ["x", "y", "z"][:n_space]
    assert ds.source_software.item() == "DeepLabCut"
    assert bool(ds.confidence_filled.item()) is not has_likelihood
    assert ds.attrs["space_unit"] == ("pixels" if n_space == 2 else "unknown")
    assert ds.attrs["fps"] == 30
    assert_matches_pandas(ds, read_with_pandas(path))


def test_real_scorer_in_extra(real_data):
    (record,) = read_deeplabcut(real_data / M3V1)
    assert record.extra["scorer"] == "DLC_resnet50_openfieldAug20shuffle1_30000"
    assert record.fps is None
    assert record.frame is None


@pytest.mark.parametrize(
    ("relpath", "row", "bodypart", "expected"),
    [
        (
            f"{WASP}.csv",
            0,
            "head",
            (1086.237548828125, 421.5012512207031, 0.053050994873046875),
        ),
        (
            f"{WASP}.csv",
            1,
            "stinger",
            (1083.3699951171875, 421.45770263671875, 0.03293059021234512),
        ),
        (
            f"{REACHING}.csv",
            0,
            "bodypart1",
            (786.5689558982849, 11.98408342897892, 0.6033688187599182),
        ),
        (EPM, 0, "tl", (571.6292436122894, 128.82243990898132, 0.9999990463256836)),
        (
            DEEPOF_CSV,
            0,
            "Nose",
            (280.4508361816406, 328.9118347167969, 0.9999960660934448),
        ),
    ],
)
def test_real_values_copied_from_file_text(real_data, relpath, row, bodypart, expected):
    ds = moseq_xr.load_poses(real_data / relpath, fps=30)
    rec = ds.isel(recording=0, time=row).sel(
        keypoint=bodypart, individual="individual_0"
    )
    assert rec.position.to_numpy().tolist() == list(expected[:2])
    assert rec.confidence.item() == expected[2]


def test_labels_file_frames_from_image_names(real_data):
    ds = moseq_xr.load_poses(real_data / f"{PRANAV}.csv", fps=30)
    rec = ds.isel(recording=0)
    first = rec.sel(keypoint="snout", individual="individual_0").isel(time=0)
    assert first.position.to_numpy().tolist() == [21.521, 265.428]
    assert (
        rec.position.sel(keypoint="tailbase", space="y").isel(time=0).item()
        == 152.69799999999998
    )
    assert bool(ds.confidence_filled.item())
    (record,) = read_deeplabcut(real_data / f"{PRANAV}.h5")
    assert record.extra["scorer"] == "Pranav"
    assert record.extra["image_paths"][0] == "labeled-data/m4s1/img0000.png"


@pytest.mark.parametrize(
    "stem",
    [REACHING, WASP, PRANAV, VID1_3D],
    ids=["reaching", "wasp", "pranav", "vid1_3d"],
)
def test_csv_and_h5_twins_load_identically(real_data, stem):
    from_csv = moseq_xr.load_poses(real_data / f"{stem}.csv", fps=30)
    from_h5 = moseq_xr.load_poses(real_data / f"{stem}.h5", fps=30)
    assert from_csv.sizes == from_h5.sizes
    np.testing.assert_array_equal(
        from_csv.position.to_numpy(), from_h5.position.to_numpy()
    )
    np.testing.assert_array_equal(
        from_csv.confidence.to_numpy(), from_h5.confidence.to_numpy()
    )


def test_vid1_3d_csv_starts_at_frame_one(real_data):
    """The CSV has rows 1..11: frame 0 becomes a NaN row, as in the 12-row h5."""
    (record,) = read_deeplabcut(real_data / f"{VID1_3D}.csv")
    assert record.frame.tolist() == list(range(1, 12))
    assert record.confidence is None
    ds = moseq_xr.load_poses(real_data / f"{VID1_3D}.csv", fps=30)
    assert np.isnan(ds.position.isel(recording=0, time=0)).all()


def test_multi_animal_deepof_values_in_place(real_data):
    df = pd.read_hdf(real_data / DEEPOF_MADLC)
    ds = moseq_xr.load_poses(real_data / DEEPOF_MADLC, fps=30)
    scorer = df.columns.get_level_values(0)[0]
    got = ds.position.isel(recording=0).sel(
        individual="mouse_white_tail", keypoint="Tail_tip", space="y"
    )
    np.testing.assert_array_equal(
        got, df[(scorer, "mouse_white_tail", "Tail_tip", "y")]
    )
    assert ds.sizes["individual"] == 2


# ------------------------------------------------------------------ pitfall 4


def test_pitfall_04_dlc_single_individual_not_scrambled(real_data):
    df = pd.read_hdf(real_data / MULTI_H5)
    scorer = df.columns.get_level_values(0)[0]
    ds = moseq_xr.load_poses(real_data / MULTI_H5, fps=30)
    rec = ds.isel(recording=0)
    assert rec.sizes["time"] == 31
    # Each individual's values stay with that individual and bodypart.
    for individual, bodypart in [
        ("individual2", "bodypart3"),
        ("individual1", "bodypart1"),
        ("individual3", "bodypart2"),
        ("single", "corner1"),
        ("single", "corner2"),
    ]:
        for coord in ("x", "y"):
            np.testing.assert_array_equal(
                rec.position.sel(individual=individual, keypoint=bodypart, space=coord),
                df[(scorer, individual, bodypart, coord)],
            )
        np.testing.assert_array_equal(
            rec.confidence.sel(individual=individual, keypoint=bodypart),
            df[(scorer, individual, bodypart, "likelihood")],
        )
    # Individuals are NaN at keypoints they do not have.
    assert (
        rec.position.sel(
            individual="single", keypoint=["bodypart1", "bodypart2", "bodypart3"]
        )
        .isnull()
        .all()
    )
    assert (
        rec.position.sel(
            individual=["individual1", "individual2", "individual3"],
            keypoint=["corner1", "corner2"],
        )
        .isnull()
        .all()
    )
    assert (
        rec.confidence.sel(individual="individual1", keypoint="corner1").isnull().all()
    )


def test_pitfall_04_exclude_single_drops_its_keypoints(real_data):
    ds = moseq_xr.load_poses(
        real_data / MULTI_CSV, fps=30, exclude_individuals=["single"]
    )
    assert ds.individual.to_numpy().tolist() == [
        "individual1",
        "individual2",
        "individual3",
    ]
    assert ds.keypoint.to_numpy().tolist() == ["bodypart1", "bodypart2", "bodypart3"]
    df = read_with_pandas(real_data / MULTI_CSV)
    assert_matches_pandas(ds, df.drop(columns="single", level="individuals"))


def test_pitfall_04_single_csv_values_from_file_text(real_data):
    ds = moseq_xr.load_poses(real_data / MULTI_CSV, fps=30)
    row0 = ds.isel(recording=0, time=0).sel(individual="single")
    assert row0.position.sel(keypoint="corner1").to_numpy().tolist() == [
        135.268,
        139.63,
    ]
    assert row0.position.sel(keypoint="corner2", space="x").item() == 215.291
    assert row0.confidence.sel(keypoint="corner1").item() == 0.7609999775886536
    assert (
        ds.position.isel(recording=0, time=0)
        .sel(individual="individual1")
        .isnull()
        .all()
    )


def test_pitfall_04_synthetic_single_with_unique_bodyparts(tmp_path):
    main = write_dlc(
        tmp_path / "a.h5", ["nose", "tail"], individuals=["mouseA", "mouseB"]
    )
    extra = write_dlc(
        tmp_path / "b.h5", ["arena_corner"], individuals=["single"], seed=1
    )
    path = tmp_path / "ma_el.csv"
    pd.concat([main, extra], axis=1).to_csv(path)
    ds = moseq_xr.load_poses(path, fps=25)
    assert ds.individual.to_numpy().tolist() == ["mouseA", "mouseB", "single"]
    assert ds.keypoint.to_numpy().tolist() == ["nose", "tail", "arena_corner"]
    scorer = main.columns.get_level_values(0)[0]
    got = ds.position.isel(recording=0).sel(
        individual="single", keypoint="arena_corner"
    )
    np.testing.assert_allclose(
        got.sel(space="x"), extra[(scorer, "single", "arena_corner", "x")]
    )
    got = ds.position.isel(recording=0).sel(
        individual="mouseB", keypoint="tail", space="y"
    )
    np.testing.assert_allclose(got, main[(scorer, "mouseB", "tail", "y")])


# --------------------------------------------------------- synthetic variants


def test_prediction_index_gaps_become_nan_rows(tmp_path):
    path = tmp_path / "gappy.csv"
    df = write_dlc(path, ["nose", "tail"], n_frames=3, index=[0, 1, 5])
    ds = moseq_xr.load_poses(path, fps=10)
    assert int(ds.n_frames.item()) == 6
    assert ds.position.isel(recording=0, time=[2, 3, 4]).isnull().all()
    scorer = df.columns.get_level_values(0)[0]
    np.testing.assert_allclose(
        ds.position.isel(recording=0, time=5).sel(keypoint="tail", space="x").item(),
        df.loc[5, (scorer, "tail", "x")],
    )


def test_unsorted_index_is_sorted_and_duplicates_rejected(tmp_path):
    path = tmp_path / "unsorted.h5"
    df = write_dlc(path, ["nose"], n_frames=3, index=[2, 0, 1])
    (record,) = read_deeplabcut(path)
    assert record.frame is None
    np.testing.assert_allclose(record.position[0, 0, 0, 0], df.iloc[1, 0])
    write_dlc(path, ["nose"], n_frames=3, index=[0, 1, 1])
    with pytest.raises(LoaderError, match="repeats frame numbers"):
        read_deeplabcut(path)


def test_labels_gaps_and_several_video_folders(tmp_path):
    images = [
        "labeled-data/vidA/img003.png",
        "labeled-data/vidA/img010.png",
        "labeled-data/vidB/img001.png",
    ]
    path = tmp_path / "CollectedData_me.csv"
    df = write_dlc(
        path, ["nose", "tail"], n_frames=3, coords=("x", "y"), index=images, scorer="me"
    )
    records = read_deeplabcut(path)
    assert [r.name for r in records] == [
        "CollectedData_me_vidA",
        "CollectedData_me_vidB",
    ]
    assert records[0].frame.tolist() == [3, 10]
    assert records[1].frame.tolist() == [1]
    assert all(r.confidence is None for r in records)
    ds = moseq_xr.load_poses(path, fps=30)
    vid_a = ds.sel(recording="CollectedData_me_vidA")
    assert int(vid_a.n_frames) == 11
    assert vid_a.position.isel(time=[0, 1, 2, 4, 9]).isnull().all()
    np.testing.assert_allclose(
        vid_a.position.isel(time=10).sel(keypoint="tail", space="y"),
        df.iloc[1][("me", "tail", "y")],
    )


def test_new_style_labels_with_three_index_columns(tmp_path):
    index = pd.MultiIndex.from_tuples(
        [("labeled-data", "m1", "img0002.png"), ("labeled-data", "m1", "img0004.png")]
    )
    columns = pd.MultiIndex.from_product(
        [["me"], ["nose"], ["x", "y"]], names=["scorer", "bodyparts", "coords"]
    )
    df = pd.DataFrame([[1.0, 2.0], [3.0, 4.0]], index=index, columns=columns)
    # Recent DLC writes labels h5 in fixed format under the key "keypoints".
    df.to_hdf(tmp_path / "CollectedData_me.h5", key="keypoints", mode="w")
    df.to_csv(tmp_path / "CollectedData_me.csv")
    for path in (tmp_path / "CollectedData_me.h5", tmp_path / "CollectedData_me.csv"):
        assert moseq_xr.detect_source(path) == "deeplabcut"
        (record,) = read_deeplabcut(path)
        assert record.frame.tolist() == [2, 4]
        assert record.position[:, :, 0, 0].tolist() == [[1.0, 2.0], [3.0, 4.0]]
        assert record.extra["image_paths"] == [
            "labeled-data/m1/img0002.png",
            "labeled-data/m1/img0004.png",
        ]


def test_label_image_without_digits_is_an_error(tmp_path):
    path = tmp_path / "CollectedData_x.csv"
    write_dlc(
        path, ["nose"], n_frames=1, coords=("x", "y"), index=["labeled-data/v/img.png"]
    )
    with pytest.raises(LoaderError, match="no frame number"):
        read_deeplabcut(path)


def test_3d_dlc_has_no_confidence(tmp_path):
    path = tmp_path / "tri_DLC_3D.h5"
    write_dlc(path, ["a", "b"], coords=("x", "y", "z"))
    (record,) = read_deeplabcut(path)
    assert record.position.shape == (6, 3, 2, 1)
    assert record.confidence is None
    assert record.space_unit is None


def test_h5_key_choice(tmp_path):
    df = write_dlc(tmp_path / "tmp.h5", ["nose"])
    only = tmp_path / "only_tracks_el.h5"
    df.to_hdf(only, key="tracks", format="table", mode="w")
    assert moseq_xr.detect_source(only) == "deeplabcut"
    assert read_deeplabcut(only)[0].position.shape == (6, 2, 1, 1)
    both = tmp_path / "two_keys.h5"
    df.to_hdf(both, key="first", mode="w")
    df.to_hdf(both, key="second", mode="a")
    with pytest.raises(LoaderError, match="several pandas tables"):
        read_deeplabcut(both)
    df.to_hdf(both, key="df_with_missing", mode="a")
    assert read_deeplabcut(both)[0].position.shape == (6, 2, 1, 1)


def test_unknown_individual_to_exclude_is_ignored_but_all_excluded_errors(tmp_path):
    path = tmp_path / "one.csv"
    write_dlc(path, ["nose"])
    ds = moseq_xr.load_poses(path, fps=30, exclude_individuals=["single"])
    assert ds.individual.to_numpy().tolist() == ["individual_0"]
    with pytest.raises(LoaderError, match="leaves no individual"):
        read_deeplabcut(path, exclude_individuals="individual_0")


# ---------------------------------------------------------- animals as prefix


PREFIXED = ["mouse1_nose", "mouse1_tail_base", "mouse2_nose", "mouse2_tail_base"]


def test_animals_as_prefix_true(tmp_path):
    path = tmp_path / "pref.csv"
    df = write_dlc(path, PREFIXED)
    ds = moseq_xr.load_poses(path, fps=30, animals_as_prefix=True)
    assert ds.individual.to_numpy().tolist() == ["mouse1", "mouse2"]
    assert ds.keypoint.to_numpy().tolist() == ["nose", "tail_base"]
    scorer = df.columns.get_level_values(0)[0]
    got = ds.position.isel(recording=0).sel(
        individual="mouse2", keypoint="tail_base", space="x"
    )
    np.testing.assert_allclose(got, df[(scorer, "mouse2_tail_base", "x")])
    got = ds.confidence.isel(recording=0).sel(individual="mouse1", keypoint="nose")
    np.testing.assert_allclose(got, df[(scorer, "mouse1_nose", "likelihood")])


def test_animals_as_prefix_list(tmp_path):
    path = tmp_path / "pref.h5"
    write_dlc(path, ["m1_nose", "m10_nose", "m1_ear", "m10_ear"])
    (record,) = read_deeplabcut(path, animals_as_prefix=["m1", "m10"])
    assert record.individuals == ["m1", "m10"]
    assert record.keypoints == ["nose", "ear"]


@pytest.mark.parametrize(
    ("bodyparts", "option", "message"),
    [
        (["mouse1_nose", "tail"], True, "these are not"),
        (["mouse1_nose", "mouse2_ear"], True, "different bodyparts"),
        (["mouse1_nose", "arena"], ["mouse1"], "does not start with"),
    ],
)
def test_animals_as_prefix_errors(tmp_path, bodyparts, option, message):
    path = tmp_path / "bad.csv"
    write_dlc(path, bodyparts)
    with pytest.raises(LoaderError, match=message):
        read_deeplabcut(path, animals_as_prefix=option)


def test_animals_as_prefix_on_multi_animal_file_errors(real_data):
    with pytest.raises(LoaderError, match="individuals' level"):
        read_deeplabcut(real_data / MULTI_H5, animals_as_prefix=True)


# ---------------------------------------------------------- detection, errors


def test_garbage_csv_names_the_file(tmp_path):
    path = tmp_path / "garbage.csv"
    path.write_text("hello,world\n1,2\n")
    with pytest.raises(FormatDetectionError, match=r"garbage\.csv"):
        moseq_xr.load_poses(path, fps=30)
    with pytest.raises(LoaderError, match=r"garbage\.csv.*not a DeepLabCut-style CSV"):
        moseq_xr.load_poses(path, fps=30, source="deeplabcut")


def test_sniff_rejects_other_files(tmp_path):
    from moseq_xr.io.formats.deeplabcut import _is_dlc

    sidecar = tmp_path / "predictions_pixel_error.csv"
    sidecar.write_text(",nose,tail,set\n0,1.5,2.5,train\n")
    binary = tmp_path / "junk.csv"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    not_hdf5 = tmp_path / "fake.h5"
    not_hdf5.write_text("scorer,a\n")
    other_table = tmp_path / "other.h5"
    pd.DataFrame({"a": [1.0]}).to_hdf(other_table, key="df_with_missing", mode="w")
    for path in (sidecar, binary, not_hdf5, other_table):
        assert _is_dlc(path) is False


def test_mixed_keypoint_sets_need_keypoints(real_data, tmp_path):
    subset = tmp_path / "subset.h5"
    write_dlc(subset, ["snout", "tailbase"])
    files = [real_data / M3V1, subset]
    with pytest.raises(LoaderError, match="keypoints differ"):
        moseq_xr.load_poses(files, fps=30)
    ds = moseq_xr.load_poses(files, fps=30, keypoints=["snout", "tailbase"])
    assert ds.sizes["recording"] == 2
    assert ds.keypoint.to_numpy().tolist() == ["snout", "tailbase"]


def test_directory_gives_one_recording_per_file(real_data, tmp_path):
    folder = tmp_path / "project"
    folder.mkdir()
    for relpath in (DEEPOF_H5, DEEPOF_CSV, DEEPOF_SQUARE):
        (folder / Path(relpath).name).symlink_to(real_data / relpath)
    (folder / "predictions_pixel_error.csv").write_text(",Nose\n0,1.0\n")
    ds = moseq_xr.load_poses(folder, fps=30)
    assert sorted(ds.recording.to_numpy().tolist()) == [
        "test2DLC_h5_table",
        "testDLC_csv_table",
        "testDLC_square_arena",
    ]
    assert ds.keypoint.to_numpy().tolist() == DEEPOF_KP  # first file's order
    n_frames = dict(zip(ds.recording.to_numpy(), ds.n_frames.to_numpy(), strict=True))
    assert n_frames == {
        "test2DLC_h5_table": 100,
        "testDLC_csv_table": 97,
        "testDLC_square_arena": 451,
    }
    square = pd.read_hdf(real_data / DEEPOF_SQUARE)
    scorer = square.columns.get_level_values(0)[0]
    got = ds.position.sel(
        recording="testDLC_square_arena",
        keypoint="Tail_tip",
        space="x",
        individual="individual_0",
    ).isel(time=slice(0, 451))
    np.testing.assert_array_equal(got, square[(scorer, "Tail_tip", "x")])
