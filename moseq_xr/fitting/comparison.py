"""Comparing fitted models by expected marginal likelihood (EML, reference §4.3).

For models ``i = 1..M`` fitted to the same pose data, with pose trajectories
``x^j`` and parameters ``theta^i = (pi, Ab, Q)``::

    mll[i, j] = log p(x^j | theta^i)     (syllables summed out by the forward
                                           algorithm, uniform initial state,
                                           padding frames masked, rows summed)
    score_i   = mean over j != i of mll[i, j]
    SE_i      = sqrt(var_i / (M - 1)),  var_i = mean_{j != i} mll[i, j]^2 - score_i^2

A model whose dynamics explain the *other* models' pose trajectories well
scores high; the model with the highest score is the best. ``x^j`` is the
``latent_state`` result of a full-stage fit, and for an AR-stage fit the PCA
projection of the keypoints (the AR stage never changes it, so every AR fit
of the same data has the same ``x``).

Differences from the reference: the models must share the pose data, the
preparation options, ``nlags`` and the emission ``Cd`` (that is, the same
latent space), which is checked; the variance is computed as
``mean((mll - score)^2)``, equal to the reference's formula but without its
cancellation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from moseq_xr._provenance import with_provenance
from moseq_xr.core.autoregression import ar_log_likelihoods
from moseq_xr.core.hmm import forward_filter
from moseq_xr.exceptions import FitError
from moseq_xr.fitting.apply import _model_parts, projected_latents
from moseq_xr.fitting.bridge import segment_values
from moseq_xr.fitting.prepare import PreparedData, PrepareOptions, prepare

#: Tolerance when checking that two models share the emission ``Cd``.
_CD_RTOL = 1e-6


def eml_scores(mll: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """EML scores and standard errors from a matrix of log-likelihoods.

    Parameters
    ----------
    mll
        ``(M, M)``: ``mll[i, j] = log p(x^j | theta^i)``; the diagonal is ignored.

    Returns
    -------
    score, standard_error : numpy.ndarray
        ``(M,)``: the mean of row ``i`` off the diagonal, and
        ``sqrt(var_i / (M - 1))`` with ``var_i`` the (population) variance
        of those ``M - 1`` values.
    """
    mll = np.asarray(mll, dtype=np.float64)
    size = mll.shape[0]
    if mll.shape != (size, size) or size < 2:
        raise ValueError(f"mll must be a square matrix of size >= 2, got {mll.shape}")
    values = mll[~np.eye(size, dtype=bool)].reshape(size, size - 1)
    score = values.mean(axis=1)
    variance = ((values - score[:, None]) ** 2).mean(axis=1)
    return score, np.sqrt(variance / (size - 1))


def _load(name: str, item: Any) -> xr.DataTree:
    if isinstance(item, str | Path):
        from moseq_xr.io.store import open as open_store

        if not Path(item).exists():
            raise FileNotFoundError(f"{item}: no such project store")
        item = open_store(item)
    if not isinstance(item, xr.DataTree) or "model" not in item.children:
        raise FitError(
            f"model {name!r}: not a fitted model (expected the tree returned by "
            "moseq_xr.fit or the path of a project store holding one)"
        )
    return item


def _default_names(fits: Sequence[Any]) -> list[str]:
    names = [
        Path(f).stem if isinstance(f, str | Path) else f"model_{i}"
        for i, f in enumerate(fits)
    ]
    if len(set(names)) < len(names):
        names = [
            str(f) if isinstance(f, str | Path) else n
            for f, n in zip(fits, names, strict=True)
        ]
    if len(set(names)) < len(names):
        names = [f"model_{i}" for i in range(len(fits))]
    return names


def _named_fits(fits: Any) -> dict[str, xr.DataTree]:
    """``{name: tree}`` from a mapping or a sequence of trees or store paths."""
    single = isinstance(fits, xr.DataTree | xr.Dataset | str | bytes | Path)
    if not single and isinstance(fits, Mapping):  # (trees are mappings too)
        named = {str(k): v for k, v in fits.items()}
    elif not single and isinstance(fits, Sequence):
        named = dict(zip(_default_names(list(fits)), fits, strict=True))
    else:
        raise TypeError(
            "fits must be a list or dict of fitted trees or project store paths, "
            f"got {type(fits).__name__}"
        )
    if len(named) < 2:
        raise FitError(
            f"the EML compares at least 2 models, got {len(named)}: pass several "
            "fits of the same data (e.g. different seeds or kappas)"
        )
    return {name: _load(name, item) for name, item in named.items()}


def _check_same_data(name: str, tree: xr.DataTree, reference: xr.Dataset, what: str):
    from moseq_xr.fitting.api import same_pose_data

    if not same_pose_data(tree.to_dataset(), reference):
        raise FitError(
            f"model {name!r} was fitted to other pose data than {what} (recordings, "
            "keypoints, lengths or values differ); the EML compares models fitted "
            "to the same data"
        )


def _space_differences(attrs: dict, cd: np.ndarray, ref_attrs: dict, ref_cd) -> list:
    """What makes two models' pose latent spaces differ (empty if nothing)."""
    problems = [
        f"{key} {attrs['config'][key]} vs {ref_attrs['config'][key]}"
        for key in ("nlags", "latent_dim")
        if attrs["config"][key] != ref_attrs["config"][key]
    ]
    if not problems and not np.allclose(cd, ref_cd, rtol=_CD_RTOL, atol=0):
        problems.append("the emission Cd (PCA and whitening) differs")
    prepare, ref_prepare = attrs["prepare"], ref_attrs["prepare"]
    problems += [
        f"preparation option {key}={prepare.get(key)!r} vs {ref_prepare.get(key)!r}"
        for key in sorted(set(prepare) | set(ref_prepare))
        if prepare.get(key) != ref_prepare.get(key)
    ]
    return problems


def _check_comparable(
    trees: dict[str, xr.DataTree], reference: xr.Dataset, given: bool
) -> None:
    """Same pose data, preparation and latent space for every model."""
    names = list(trees)
    first = trees[names[0]]["model"]
    for index, (name, tree) in enumerate(trees.items()):
        if given or index:
            what = "the Dataset given" if given else f"model {names[0]!r}"
            _check_same_data(name, tree, reference, what)
        model = tree["model"]
        problems = _space_differences(
            dict(model.attrs), model["Cd"].values, dict(first.attrs), first["Cd"].values
        )
        if problems:
            raise FitError(
                f"model {name!r} cannot be compared with {names[0]!r}: "
                f"{'; '.join(problems)}. The EML compares models of the same pose "
                "latent space: fit them with the same options (and init= the same "
                "AR fit for full-stage models)"
            )


def _trajectories(
    name: str, tree: xr.DataTree, prepared: PreparedData, dtype
) -> jax.Array:
    """``x`` of one model on the prepared rows, ``(N, T, P)``."""
    segments = prepared.segments
    if tree["model"].attrs["stage"] == "ar":
        Y = jnp.asarray(prepared.initial_Y, dtype)
        Cd = jnp.asarray(tree["model"]["Cd"].values, dtype)
        return projected_latents(Y, prepared.centroid, prepared.heading, Cd)
    root = tree.to_dataset()
    if "latent_state" not in root:
        raise FitError(f"model {name!r}: a full-stage fit without latent_state")
    rows = segment_values(root["latent_state"], segments, ("latent",))
    real = segments.mask > 0
    if not np.isfinite(rows[real]).all():
        raise FitError(f"model {name!r}: latent_state is not finite on modelled frames")
    return jnp.asarray(np.where(real[..., None], rows, 0.0), dtype)


def _latents(
    trees: dict[str, xr.DataTree], prepared: PreparedData, dtype
) -> tuple[jax.Array, list[int]]:
    """Distinct pose trajectories ``(U, N, T, P)`` and, per model, which one."""
    position: dict[str, int] = {}
    arrays, index = [], []
    for name, tree in trees.items():
        source = "projection" if tree["model"].attrs["stage"] == "ar" else name
        if source not in position:
            position[source] = len(arrays)
            arrays.append(_trajectories(name, tree, prepared, dtype))
        index.append(position[source])
    return jnp.stack(arrays), index


@partial(jax.jit, static_argnames="nlags")
def _log_likelihoods_under(log_pi, Ab, Q, latents, zmask, nlags: int) -> jax.Array:
    """``log p(x^u | theta)`` summed over rows, for every trajectory ``u``: ``(U,)``.

    One trajectory at a time (``lax.map``), its rows in parallel (``vmap``), so
    memory stays that of one fit's syllable log-likelihoods.
    """

    def one(x):
        log_lik = ar_log_likelihoods(x, Ab, Q, nlags) * zmask[..., None]
        _, log_norm = jax.vmap(forward_filter, in_axes=(None, 0))(log_pi, log_lik)
        return log_norm.sum()

    return jax.lax.map(one, latents)


def _mll_matrix(trees, latents, index, zmask, nlags: int, dtype) -> np.ndarray:
    rows = []
    for tree in trees.values():
        model = tree["model"]
        Ab, Q, pi = (jnp.asarray(model[v].values, dtype) for v in ("Ab", "Q", "pi"))
        values = _log_likelihoods_under(jnp.log(pi), Ab, Q, latents, zmask, nlags=nlags)
        rows.append(np.asarray(values, dtype=np.float64)[index])
    return np.stack(rows)


def _result(trees, mll, num_frames: int) -> xr.Dataset:
    names = list(trees)
    score, error = eml_scores(mll)
    result = xr.Dataset(
        {
            "eml_score": (("model",), score),
            "eml_standard_error": (("model",), error),
            "marginal_log_likelihood": (("model", "latents_of"), mll),
        },
        coords={
            "model": names,
            "latents_of": names,
            "stage": (("model",), [t["model"].attrs["stage"] for t in trees.values()]),
        },
    )
    result["eml_score"].attrs["description"] = "mean of log p(x^j | theta^i), j != i"
    result["marginal_log_likelihood"].attrs["description"] = (
        "log p(x^j | theta^i): syllables summed out, rows summed"
    )
    attrs = {"best_model": names[int(np.argmax(score))], "num_frames": num_frames}
    result.attrs = with_provenance(
        attrs, "moseq_xr.expected_marginal_likelihoods", {"models": names}
    )
    return result


def expected_marginal_likelihoods(
    fits: Sequence[Any] | Mapping[str, Any], ds: xr.Dataset | None = None
) -> xr.Dataset:
    """Score fitted models by their expected marginal likelihood (EML).

    Model ``i``'s score is the mean over the other models ``j`` of
    ``log p(x^j | theta^i)``: the likelihood of model ``j``'s pose
    trajectories under model ``i``'s transition and AR parameters, with the
    syllables summed out (forward algorithm). Higher is better.

    Parameters
    ----------
    fits
        At least two fits of the same pose data with the same options: a
        dict ``{name: tree}``, or a list of trees (named ``model_0``, ...) or
        of project store paths (named after the stores).
    ds
        The pose Dataset the models were fitted to (default: the first fit's
        root); every fit is checked against it.

    Returns
    -------
    xarray.Dataset
        Over ``model``: ``eml_score``, ``eml_standard_error`` and
        ``marginal_log_likelihood`` over ``(model, latents_of)`` (the diagonal,
        a model's own trajectories, is not used by the score); coordinate
        ``stage``; attrs ``best_model`` and ``num_frames`` (frames with a
        syllable, overlaps between rows counted twice, as in the reference).

    Raises
    ------
    FitError
        Fewer than two models, something that is not a fit, fits of other
        pose data, or fits with another latent space (``nlags``,
        ``latent_dim``, PCA or preparation options differ); the message names
        the offending model.

    Notes
    -----
    ``x^j`` is a full-stage fit's ``latent_state`` cut into the model's rows
    (in the overlap of two rows both take the owning row's values), or for an
    AR-stage fit the PCA projection of the keypoints, which the AR stage
    never changes: AR fits of the same data share it, so their scores are
    plain log-likelihoods and their standard error is 0 among themselves.
    Runs in float64 if any model was fitted in float64.
    """
    from moseq_xr.fitting.api import precision_scope

    trees = _named_fits(fits)
    first = next(iter(trees.values()))
    reference = ds if ds is not None else first.to_dataset()
    _check_comparable(trees, reference, ds is not None)
    _, pca, attrs = _model_parts(first)
    prepared = prepare(reference, PrepareOptions(**attrs["prepare"]), pca)
    nlags = int(attrs["config"]["nlags"])
    precisions = {t["model"].attrs["precision"] for t in trees.values()}
    with precision_scope("float64" if "float64" in precisions else "float32"):
        dtype = jnp.result_type(float)
        latents, index = _latents(trees, prepared, dtype)
        zmask = jnp.asarray(prepared.segments.mask[:, nlags:], dtype)
        mll = _mll_matrix(trees, latents, index, zmask, nlags, dtype)
    return _result(trees, mll, int(np.asarray(zmask).sum()))


__all__ = ["eml_scores", "expected_marginal_likelihoods"]
