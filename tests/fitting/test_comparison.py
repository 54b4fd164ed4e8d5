"""Model comparison by expected marginal likelihood (EML)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import xarray as xr
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

import moseq_xr
from moseq_xr.core.embedding import center_embedding
from moseq_xr.exceptions import FitError
from moseq_xr.fitting.bridge import segment_values
from moseq_xr.fitting.comparison import eml_scores, expected_marginal_likelihoods
from moseq_xr.fitting.prepare import PrepareOptions, prepare

# ------------------------------------------------------------- brute force


def _prepared(tree: xr.DataTree):
    attrs = tree["model"].attrs
    return prepare(
        tree.to_dataset(), PrepareOptions(**attrs["prepare"]), tree["pca"].to_dataset()
    )


def _projection(tree: xr.DataTree, prepared) -> np.ndarray:
    """``pinv(C) (Gamma^T R(-h) (Y - v) - d)`` in plain numpy, ``(N, T, P)``.

    ``Y``: the positions the pose latents are initialised from (low-confidence
    keypoints interpolated).
    """
    Y = prepared.initial_Y - prepared.centroid[..., None, :]
    cos, sin = np.cos(prepared.heading), np.sin(prepared.heading)
    rotated = np.stack(
        [
            cos[..., None] * Y[..., 0] + sin[..., None] * Y[..., 1],
            -sin[..., None] * Y[..., 0] + cos[..., None] * Y[..., 1],
        ],
        axis=-1,
    )
    basis = center_embedding(Y.shape[-2])
    flat = np.einsum("kj,ntkd->ntjd", basis, rotated).reshape(*Y.shape[:2], -1)
    Cd = tree["model"]["Cd"].values
    return (flat - Cd[:, -1]) @ np.linalg.pinv(Cd[:, :-1]).T


def _row_log_likelihoods(x, mask, Ab, Q, nlags) -> np.ndarray:
    """AR log-likelihood of frames nlags.. under every state, masked: ``(T-L, S)``."""
    length = x.shape[0]
    regressors = np.concatenate(
        [x[lag : length - nlags + lag] for lag in range(nlags)]
        + [np.ones((length - nlags, 1))],
        axis=1,
    )
    residual = x[nlags:, None, :] - np.einsum("spr,tr->tsp", Ab, regressors)
    values = np.stack(
        [
            multivariate_normal(np.zeros(Q.shape[-1]), Q[s]).logpdf(residual[:, s])
            for s in range(Ab.shape[0])
        ],
        axis=-1,
    )
    return values * mask[nlags:, None]


def _forward(log_lik: np.ndarray, log_pi: np.ndarray) -> float:
    """``log sum_z p(z) p(x | z)`` with a uniform initial state, in log space."""
    log_alpha = log_lik[0] - np.log(log_pi.shape[0])
    for frame in log_lik[1:]:
        log_alpha = logsumexp(log_alpha[:, None] + log_pi, axis=0) + frame
    return float(logsumexp(log_alpha))


def brute_force_mll(tree: xr.DataTree, x: np.ndarray, mask: np.ndarray) -> float:
    model = tree["model"]
    nlags = tree["model"].attrs["config"]["nlags"]
    Ab, Q = model["Ab"].values, model["Q"].values
    with np.errstate(divide="ignore"):
        log_pi = np.log(model["pi"].values)
    return sum(
        _forward(_row_log_likelihoods(x[n], mask[n], Ab, Q, nlags), log_pi)
        for n in range(x.shape[0])
    )


# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def scores(trained_ar, poor_ar) -> xr.Dataset:
    return expected_marginal_likelihoods({"trained": trained_ar, "poor": poor_ar})


def _with_model_attrs(tree: xr.DataTree, **changes) -> xr.DataTree:
    out = tree.copy(deep=False)
    attrs = copy.deepcopy(dict(tree["model"].attrs))
    for group, values in changes.items():
        attrs[group] = {**attrs[group], **values}
    out["model"].attrs = attrs
    return out


# ---------------------------------------------------------------------- tests


def test_mll_matches_a_brute_force_forward_algorithm(scores, trained_ar, poor_ar):
    prepared = _prepared(trained_ar)
    x, mask = _projection(trained_ar, prepared), prepared.segments.mask
    for name, tree in (("trained", trained_ar), ("poor", poor_ar)):
        expected = brute_force_mll(tree, x, mask)
        for latents_of in ("trained", "poor"):  # AR fits share the projection
            value = float(
                scores["marginal_log_likelihood"].sel(model=name, latents_of=latents_of)
            )
            np.testing.assert_allclose(value, expected, rtol=1e-9)
    assert scores.attrs["num_frames"] == int(mask[:, 3:].sum())


def test_eml_scores_by_hand():
    mll = np.array([[0.0, -10.0, -14.0], [-20.0, 99.0, -26.0], [-1.0, -3.0, -7.0]])
    score, error = eml_scores(mll)
    np.testing.assert_allclose(score, [-12.0, -23.0, -2.0])
    # var_i = mean(mll^2) - score^2 over j != i; SE = sqrt(var / (N - 1))
    variances = [(100 + 196) / 2 - 144, (400 + 676) / 2 - 529, (1 + 9) / 2 - 4]
    np.testing.assert_allclose(error, np.sqrt(np.array(variances) / 2))
    with pytest.raises(ValueError, match="square"):
        eml_scores(np.zeros((1, 1)))


def test_a_trained_model_scores_higher_than_a_poor_one(scores):
    assert scores.attrs["best_model"] == "trained"
    per_frame = (
        scores["eml_score"].sel(model="trained") - scores["eml_score"].sel(model="poor")
    ) / scores.attrs["num_frames"]
    assert float(per_frame) > 0.1  # nats per frame
    assert list(scores["model"].values) == ["trained", "poor"]
    assert list(scores["stage"].values) == ["ar", "ar"]
    np.testing.assert_allclose(scores["eml_standard_error"].values, 0.0, atol=1e-9)


def test_names_and_the_accessor(scores, trained_ar, poor_ar, train_data):
    listed = expected_marginal_likelihoods([trained_ar, poor_ar])
    assert list(listed["model"].values) == ["model_0", "model_1"]
    np.testing.assert_allclose(listed["eml_score"].values, scores["eml_score"].values)
    through = train_data.moseq.expected_marginal_likelihoods([trained_ar, poor_ar])
    np.testing.assert_allclose(through["eml_score"].values, scores["eml_score"].values)
    assert moseq_xr.expected_marginal_likelihoods is expected_marginal_likelihoods


def test_project_stores_and_the_command_line(
    scores, trained_ar, poor_ar, tmp_path, capsys
):
    from moseq_xr.cli import main

    moseq_xr.save(trained_ar, tmp_path / "trained.zarr")
    moseq_xr.save(poor_ar, tmp_path / "poor.zarr")
    paths = [str(tmp_path / "trained.zarr"), tmp_path / "poor.zarr"]
    stored = expected_marginal_likelihoods(paths)
    assert list(stored["model"].values) == ["trained", "poor"]
    np.testing.assert_allclose(
        stored["marginal_log_likelihood"].values,
        scores["marginal_log_likelihood"].values,
        rtol=1e-12,
    )
    mixed = expected_marginal_likelihoods({"trained": trained_ar, "poor": paths[1]})
    np.testing.assert_allclose(mixed["eml_score"].values, stored["eml_score"].values)
    capsys.readouterr()
    assert main(["eml", *map(str, paths)]) == 0
    out = capsys.readouterr().out
    best = next(line for line in out.splitlines() if "best" in line)
    assert best.split()[0] == "trained" and "poor" in out
    assert main(["eml", str(paths[0])]) == 2
    assert "at least 2" in capsys.readouterr().err
    assert main(["eml", str(paths[0]), str(tmp_path / "missing.zarr")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "missing.zarr" in err


def test_needs_two_fits(trained_ar):
    with pytest.raises(FitError, match="at least 2 models, got 1"):
        expected_marginal_likelihoods([trained_ar])
    with pytest.raises(TypeError, match="list or dict"):
        expected_marginal_likelihoods(trained_ar)


def test_refuses_what_is_not_a_fit(trained_ar, train_data):
    with pytest.raises(FitError, match="model 'data': not a fitted model"):
        expected_marginal_likelihoods({"fit": trained_ar, "data": train_data})


def test_refuses_fits_of_other_data(trained_ar, poor_ar, new_data):
    root = poor_ar.to_dataset()
    moved = xr.DataTree.from_dict(
        {
            "/": root.assign(position=root["position"] + 1.0),
            **{f"/{g}": poor_ar[g].to_dataset(inherit=False) for g in poor_ar.children},
        }
    )
    with pytest.raises(FitError, match="model 'moved' was fitted to other pose data"):
        expected_marginal_likelihoods({"trained": trained_ar, "moved": moved})
    with pytest.raises(FitError, match=r"model 'a' .* than the Dataset given"):
        expected_marginal_likelihoods({"a": trained_ar, "b": poor_ar}, ds=new_data)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"config": {"nlags": 2}}, "nlags 2 vs 3"),
        ({"prepare": {"noise_seed": 7}}, "preparation option noise_seed=7 vs 42"),
    ],
)
def test_refuses_fits_of_another_latent_space(trained_ar, poor_ar, changes, message):
    other = _with_model_attrs(poor_ar, **changes)
    with pytest.raises(FitError, match=f"model 'other' cannot be compared.*{message}"):
        expected_marginal_likelihoods({"trained": trained_ar, "other": other})


def test_refuses_another_emission(trained_ar, poor_ar):
    other = poor_ar.copy(deep=True)
    other["model"]["Cd"] = other["model"]["Cd"] * 1.01
    with pytest.raises(FitError, match="emission Cd"):
        expected_marginal_likelihoods([trained_ar, other])


@pytest.mark.slow
def test_full_stage_fits_use_their_own_latent_states(
    trained_ar, trained_full, train_data
):
    from moseq_xr.fitting import api

    second = api.fit(
        train_data,
        stage="full",
        num_iters=20,
        kappa=1e4,
        init=trained_ar,
        seed=6,
        progress=False,
    )
    fits = {"ar": trained_ar, "full": trained_full, "full_2": second}
    result = expected_marginal_likelihoods(fits)
    prepared = _prepared(trained_ar)
    mask = prepared.segments.mask
    latents = {
        "ar": _projection(trained_ar, prepared),
        **{
            name: segment_values(
                fits[name].to_dataset()["latent_state"], prepared.segments, ("latent",)
            )
            for name in ("full", "full_2")
        },
    }
    mll = result["marginal_log_likelihood"]
    for model in fits:
        for latents_of, x in latents.items():
            expected = brute_force_mll(fits[model], x, mask)
            np.testing.assert_allclose(
                float(mll.sel(model=model, latents_of=latents_of)), expected, rtol=1e-9
            )
    score, error = eml_scores(mll.values)
    np.testing.assert_allclose(result["eml_standard_error"].values, error)
    np.testing.assert_allclose(result["eml_score"].values, score)
    assert (result["eml_standard_error"].sel(model=["full", "full_2"]) > 0).all()
    assert list(result["stage"].values) == ["ar", "full", "full"]
