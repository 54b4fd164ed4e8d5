"""The vectorised kappa scan: one computation, durations grow with kappa."""

from __future__ import annotations

import numpy as np

import moseq_xr


def test_kappa_scan_runs_all_chains_and_picks_the_target():
    ds = moseq_xr.simulate(num_recordings=2, num_frames=1500, seed=4)
    scan = ds.moseq.kappa_scan(
        kappas=[1e2, 1e4, 1e7],
        seeds=[0, 1],
        num_iters=15,
        target_duration=0.3,
        latent_dim=4,
        num_states=20,
        progress=False,
    )
    seeds_differ = scan["median_duration"].sel(kappa=1e4).values
    assert not np.array_equal(seeds_differ[0], seeds_differ[1])  # independent chains
    assert scan["median_duration"].dims == ("kappa", "seed", "iteration")
    assert scan["median_duration"].shape == (3, 2, 15)
    final = scan["final_duration_s"].values
    assert final[0] < final[2]  # stickier chains give longer syllables
    best = scan.attrs["best_kappa"]
    assert best == scan["kappa"].values[np.argmin(np.abs(final - 0.3))]
    assert np.isfinite(scan["log_joint"]).all()


def test_kappa_scan_command(tmp_path, capsys):
    from moseq_xr.cli import main

    moseq_xr.save(
        moseq_xr.simulate(num_recordings=1, num_frames=1200, seed=2),
        tmp_path / "p.zarr",
    )
    assert (
        main(
            [
                "kappa-scan",
                str(tmp_path / "p.zarr"),
                "--kappas",
                "1e3",
                "1e6",
                "--num-iters",
                "4",
                "--num-states",
                "20",
                "--latent-dim",
                "4",
                "--no-progress",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "best kappa" in out and "kappa 1e+06" in out
