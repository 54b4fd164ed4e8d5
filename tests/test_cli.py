"""The moseq-xr command line, in-process through main() and as the installed script."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import moseq_xr
from moseq_xr.cli import COMMANDS, Command, build_parser, main
from moseq_xr.datasets import example_poses
from moseq_xr.exceptions import DataQualityWarning

SCRIPT = Path(sys.executable).parent / "moseq-xr"
DLC_H5 = (
    "DeepLabCut_DLC2NWB/examples/m3v1mp4DLC_resnet50_openfieldAug20shuffle1_30000.h5"
)
DLC_LABELS = (
    "DeepLabCut_DeepLabCut/examples/openfield-Pranav-2018-10-30/labeled-data/m4s1/"
    "CollectedData_Pranav.h5"
)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "project.zarr"
    moseq_xr.save(example_poses(num_recordings=2, num_frames=400, seed=1), path)
    return path


def _one_error_line(captured) -> str:
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("moseq-xr: error: ")
    return lines[0]


def test_parser_has_every_command():
    parser = build_parser()
    assert set(COMMANDS) == {
        "load",
        "info",
        "qc",
        "doctor",
        "demo",
        "fit",
        "resume",
        "export-nwb",
        "apply",
        "kappa-scan",
        "eml",
    }
    args = parser.parse_args(["--debug", "qc", "x.zarr", "--min-frames", "5"])
    assert args.debug and args.command == "qc" and args.min_frames == 5


def test_help_and_bad_arguments_exit_codes(capsys):
    assert main(["--help"]) == 0
    assert "doctor" in capsys.readouterr().out
    assert main(["no-such-command"]) == 2
    assert main(["load", "x.h5"]) == 2  # -o is required
    capsys.readouterr()


def test_info(store, capsys):
    assert main(["info", str(store)]) == 0
    out = capsys.readouterr().out
    for expected in (
        "example_0",
        "example_1",
        "400",
        "13.3 s",
        "fps",
        "30",
        "nose, left_ear, right_ear, neck",
        "individual_0",
        "moseq_xr",
        "confidence, position",
        "moseq_xr.datasets.example_poses",
    ):
        assert expected in out, expected


def test_qc(store, capsys):
    assert main(["qc", str(store), "--min-frames", "10"]) == 0
    out = capsys.readouterr().out
    assert "Data quality" in out and "example_1" in out
    assert "No data-quality warnings." in out


def test_qc_thresholds_and_strict(store, capsys):
    assert main(["qc", str(store), "--strict"]) == 0  # 400 frames > 10 s at 30 fps
    capsys.readouterr()
    assert main(["qc", str(store), "--min-frames", "401"]) == 0  # warns, not strict
    assert "too short to model" in capsys.readouterr().out
    code = main(["qc", str(store), "--outlier-warn", "0", "--strict"])
    assert code == 1
    assert "medoid-distance outliers" in capsys.readouterr().out


def test_doctor(capsys):
    import jax

    x64_before = jax.config.jax_enable_x64
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert jax.config.jax_enable_x64 == x64_before  # read, never changed
    for expected in (
        "python",
        sys.version.split()[0],
        "moseq_xr",
        moseq_xr.__version__,
        "numpy",
        np.__version__,
        "jaxlib",
        "sleap-io",
        "x64 enabled",
        "backend",
        "cpu",
        "memory",
        "GiB",
        "deeplabcut",
        ".slp",
    ):
        assert expected in out, expected
    assert "not installed" in out or "optional" in out


def test_load_real_dlc_file(real_data, tmp_path, capsys):
    source = real_data / DLC_H5
    output = tmp_path / "dlc.zarr"
    assert main(["load", str(source), "--fps", "30", "-o", str(output)]) == 0
    assert "Wrote 1 recording(s), 2330 frames, 4 keypoints" in capsys.readouterr().out
    table = pd.read_hdf(source)
    ds = moseq_xr.open(output)
    bodyparts = list(dict.fromkeys(table.columns.get_level_values("bodyparts")))
    assert list(ds.keypoint.values) == bodyparts
    assert int(ds.n_frames.item()) == len(table)
    assert ds.attrs["fps"] == 30.0
    scorer = table.columns.get_level_values("scorer")[0]
    expected_x = table[(scorer, "tailbase", "x")].iloc[1234]
    got_x = ds.position.sel(keypoint="tailbase", space="x", individual="individual_0")
    got_x = got_x.isel(recording=0, time=1234)
    assert float(got_x) == pytest.approx(expected_x)


def test_load_append_and_refuse_overwrite(real_data, tmp_path, capsys):
    output = tmp_path / "both.zarr"
    assert (
        main(["load", str(real_data / DLC_H5), "--fps", "30", "-o", str(output)]) == 0
    )
    assert (
        main(["load", str(real_data / DLC_H5), "--fps", "30", "-o", str(output)]) == 2
    )
    line = _one_error_line(capsys.readouterr())
    assert str(output) in line and "--append" in line and "--overwrite" in line
    labels = real_data / DLC_LABELS
    code = main(["load", str(labels), "--fps", "30", "-o", str(output), "--append"])
    assert code == 0
    ds = moseq_xr.open(output)
    assert sorted(ds.recording.values) == sorted(
        ["m3v1mp4DLC_resnet50_openfieldAug20shuffle1_30000", "CollectedData_Pranav"]
    )
    assert ds.n_frames.values.tolist()[-1] == len(pd.read_hdf(labels))
    assert (
        main(["load", str(labels), "--fps", "30", "-o", str(output), "--overwrite"])
        == 0
    )
    assert moseq_xr.open(output).sizes["recording"] == 1


def test_missing_file_is_one_line(tmp_path, capsys):
    missing = tmp_path / "nothere.h5"
    assert (
        main(["load", str(missing), "--fps", "30", "-o", str(tmp_path / "o.zarr")]) == 2
    )
    line = _one_error_line(capsys.readouterr())
    assert str(missing) in line and "no such file" in line
    assert main(["info", str(tmp_path / "nothere.zarr")]) == 2
    assert "nothere.zarr: no such project store" in _one_error_line(capsys.readouterr())


def test_unknown_format_is_one_line(tmp_path, capsys):
    odd = tmp_path / "poses.txt"
    odd.write_text("frame,x,y\n0,1,2\n")
    assert main(["load", str(odd), "--fps", "30", "-o", str(tmp_path / "o.zarr")]) == 2
    line = _one_error_line(capsys.readouterr())
    assert str(odd) in line and "unrecognised file type" in line
    assert (
        main(["load", str(odd), "--source", "nope", "-o", str(tmp_path / "o.zarr")])
        == 2
    )
    assert "--source 'nope' is not a known format" in _one_error_line(
        capsys.readouterr()
    )


def test_not_a_store_is_one_line(tmp_path, capsys):
    (tmp_path / "plain").mkdir()
    assert main(["qc", str(tmp_path / "plain")]) == 2
    assert "not a moseq_xr project store" in _one_error_line(capsys.readouterr())


def test_missing_fps_is_one_line(real_data, tmp_path, capsys):
    source = real_data / DLC_H5
    assert main(["load", str(source), "-o", str(tmp_path / "o.zarr")]) == 2
    line = _one_error_line(capsys.readouterr())
    assert source.name in line and "--fps" in line
    assert not (tmp_path / "o.zarr").exists()


def test_debug_shows_traceback(tmp_path, capsys):
    assert main(["--debug", "info", str(tmp_path / "nothere.zarr")]) == 2
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err
    assert "FileNotFoundError" in err


def test_warnings_are_one_line(monkeypatch, capsys):
    def warn(args, console):
        warnings.warn("something odd in file.h5", DataQualityWarning, stacklevel=1)
        return 0

    monkeypatch.setitem(COMMANDS, "warn", Command("warns", lambda parser: None, warn))
    assert main(["warn"]) == 0  # a warning never stops the command
    assert capsys.readouterr().err == "moseq-xr: warning: something odd in file.h5\n"


def test_installed_script_loads_and_reports(real_data, tmp_path):
    assert SCRIPT.is_file(), "the package must be installed (pip install -e .)"
    output = tmp_path / "script.zarr"
    done = subprocess.run(
        [
            str(SCRIPT),
            "load",
            str(real_data / DLC_H5),
            "--fps",
            "30",
            "-o",
            str(output),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "2330 frames" in done.stdout
    assert moseq_xr.open(output).sizes["recording"] == 1
    failed = subprocess.run(
        [str(SCRIPT), "info", str(tmp_path / "absent.zarr")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert failed.returncode == 2
    assert failed.stderr.strip().splitlines() == [
        f"moseq-xr: error: {tmp_path / 'absent.zarr'}: no such project store"
    ]


def test_info_and_qc_on_fitted_project_tree(tmp_path, capsys):
    ds = example_poses(num_recordings=1, num_frames=400)
    model = xr.Dataset({"kappa": 1e4})
    path = tmp_path / "fitted.zarr"
    moseq_xr.save(xr.DataTree.from_dict({"/": ds, "/model": model}), path)
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "groups" in out and "model" in out and "example_0" in out
    assert main(["qc", str(path)]) == 0
    assert "example_0" in capsys.readouterr().out


def test_bad_threshold_is_one_line(store, capsys):
    assert main(["qc", str(store), "--nan-warn", "2"]) == 2
    assert "nan_warn must be a proportion" in _one_error_line(capsys.readouterr())
