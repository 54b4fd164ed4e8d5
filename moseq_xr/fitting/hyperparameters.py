"""Hyperparameters of a fitted model: reading, checking and updating them.

A fit records its hyperparameters in the attrs of its ``/model`` group
(``attrs["hypers"]``, grouped as ``trans``, ``ar`` and ``obs``). Everything
that uses a fitted model (:func:`moseq_xr.apply`,
:func:`moseq_xr.estimate_syllable_marginals`, ``moseq_xr.fit(..., init=tree)``)
reads them with :func:`model_hyperparameters`, so that a tree returned by
:func:`update_hyperparameters` is used with its new values.

The usual reason to update is the two-stage recipe of keypoint-MoSeq (lower
kappa before the full stage); ``fit(stage="full", init=ar, kappa=1e4)`` does
the same in one call, because keywords passed to ``fit`` win over the tree's
values.
"""

from __future__ import annotations

import copy
import inspect
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import xarray as xr

from moseq_xr._provenance import with_provenance
from moseq_xr.core.model import make_hypers
from moseq_xr.exceptions import FitError, HyperparameterError

#: Updatable hyperparameters: name -> (group, smallest allowed value, strict).
HYPERPARAMETERS: dict[str, tuple[str, float, bool]] = {
    "alpha": ("trans", 0.0, True),
    "gamma": ("trans", 0.0, True),
    "kappa": ("trans", 0.0, False),
    "S_0_scale": ("ar", 0.0, True),
    "K_0_scale": ("ar", 0.0, True),
    "nu_s": ("obs", 0.0, True),
    "sigmasq_0": ("obs", 0.0, True),
    "nu_sigma": ("obs", 0.0, True),
    "sigmasq_loc": ("obs", 0.0, True),
    "jitter": ("obs", 0.0, False),
}

#: keypoint-MoSeq's defaults (those of :func:`moseq_xr.core.model.make_hypers`).
DEFAULTS: dict[str, float] = {
    name: float(parameter.default)
    for name, parameter in inspect.signature(make_hypers).parameters.items()
    if name in HYPERPARAMETERS
}

#: Names that would change the shape of the model's arrays.
SHAPE_NAMES = ("num_states", "nlags", "latent_dim")

#: Derived quantities: name -> what they are derived from.
_DERIVED = {
    "S_0": "S_0_scale (S_0 = S_0_scale * I)",
    "K_0": "K_0_scale (K_0 = K_0_scale * I)",
    "nu_0": "latent_dim (nu_0 = latent_dim + 2)",
    "M_0": "nothing: it is the random walk",
}


def _valid_names() -> str:
    return ", ".join(HYPERPARAMETERS)


def _refuse_name(name: str) -> HyperparameterError:
    """The error for a name that cannot be updated, saying why."""
    if name in SHAPE_NAMES:
        return HyperparameterError(
            f"{name} cannot be updated: it sets the shape of the model's arrays "
            "(transition matrix, AR matrices, pose latents), so a fitted model "
            f"cannot keep its parameters with another {name}; fit a new model "
            f"with fit(..., {name}=...) instead"
        )
    if name in _DERIVED:
        return HyperparameterError(
            f"{name} cannot be set directly: it is derived from {_DERIVED[name]}"
        )
    return HyperparameterError(
        f"unknown hyperparameter {name!r}; valid names: {_valid_names()}"
    )


def check_value(name: str, value: Any) -> float:
    """Check one hyperparameter value and return it as a float.

    Parameters
    ----------
    name
        One of :data:`HYPERPARAMETERS`.
    value
        A finite real scalar; ``kappa`` and ``jitter`` may be 0, the others
        must be positive.

    Returns
    -------
    float

    Raises
    ------
    HyperparameterError
        Naming the argument and what was expected.
    """
    if name not in HYPERPARAMETERS:
        raise _refuse_name(name)
    _, lowest, strict = HYPERPARAMETERS[name]
    wanted = "> 0" if strict else ">= 0"
    array = np.asarray(value) if not isinstance(value, str | bytes) else None
    if (
        array is None
        or array.ndim != 0
        or array.dtype.kind not in "iuf"
        or isinstance(value, bool | np.bool_)
    ):
        raise HyperparameterError(
            f"{name} must be a real number (a scalar {wanted}), got {value!r}"
        )
    number = float(array)
    if not math.isfinite(number) or number < lowest or (strict and number == lowest):
        raise HyperparameterError(f"{name} must be finite and {wanted}, got {number}")
    return number


def model_hyperparameters(attrs: Mapping[str, Any]) -> dict[str, float]:
    """The hyperparameters a fitted model uses, by name.

    Parameters
    ----------
    attrs
        Attributes of a fitted tree's ``/model`` group.

    Returns
    -------
    dict
        One float per name of :data:`HYPERPARAMETERS`: from ``attrs["hypers"]``,
        else from the fit's arguments (``attrs["fit"]``; trees written before
        the AR scales were grouped), else keypoint-MoSeq's default.
    """
    hypers = attrs.get("hypers", {}) or {}
    fit_args = attrs.get("fit", {}) or {}
    values = {}
    for name, (group, _, _) in HYPERPARAMETERS.items():
        stored = (hypers.get(group) or {}).get(name, fit_args.get(name))
        values[name] = DEFAULTS[name] if stored is None else float(stored)
    return values


def fit_hyperparameters(
    init: xr.DataTree | None, explicit: Mapping[str, Any]
) -> dict[str, float]:
    """Hyperparameters of a fit: explicit keywords, else ``init``'s, else defaults.

    Parameters
    ----------
    init
        The tree a fit continues from, or None.
    explicit
        The keywords given to ``fit``; None means "not given".

    Returns
    -------
    dict
        Checked values for every name of :data:`HYPERPARAMETERS`.
    """
    base = model_hyperparameters(init["model"].attrs) if init is not None else DEFAULTS
    chosen = {name: explicit.get(name) for name in HYPERPARAMETERS}
    return {
        name: check_value(name, base[name] if value is None else value)
        for name, value in chosen.items()
    }


def _model_attrs(fitted: Any) -> dict[str, Any]:
    if not isinstance(fitted, xr.DataTree) or "model" not in fitted.children:
        raise FitError(
            "update_hyperparameters() needs the tree returned by fit (with a "
            f"/model group), got {type(fitted).__name__}"
        )
    return copy.deepcopy(dict(fitted["model"].attrs))


def update_hyperparameters(fitted: xr.DataTree, **values: Any) -> xr.DataTree:
    """A copy of a fitted tree whose model uses new hyperparameters.

    The parameters and results are unchanged; only the hyperparameters recorded
    in ``/model`` attrs (``attrs["hypers"]``) change, so that
    :func:`moseq_xr.apply`, :func:`moseq_xr.estimate_syllable_marginals` and
    ``moseq_xr.fit(..., init=tree)`` use the new values (keywords given to
    ``fit`` still win). The input tree is not modified.

    Parameters
    ----------
    fitted
        A tree returned by :func:`moseq_xr.fit`.
    **values
        New values. Transitions: ``alpha``, ``gamma``, ``kappa``; AR prior:
        ``S_0_scale``, ``K_0_scale`` (``S_0`` and ``K_0`` are derived from
        them); observation model: ``nu_s``, ``sigmasq_0``, ``nu_sigma``,
        ``sigmasq_loc``, ``jitter``. Each must be a finite real scalar,
        positive (``kappa`` and ``jitter`` may be 0).

    Returns
    -------
    xarray.DataTree
        A new tree; its root provenance records the update.

    Raises
    ------
    HyperparameterError
        For an unknown name (the message lists the valid ones), a name that
        would change the shape of the model (``num_states``, ``nlags``,
        ``latent_dim``), or a bad value.

    Notes
    -----
    With the parameters frozen (``apply``, marginals) only the observation
    hyperparameters change results, and only for a full-stage model: the
    transition and AR hyperparameters are priors of parameters that are no
    longer resampled. They matter when the tree is given to ``fit(init=...)``.
    """
    attrs = _model_attrs(fitted)
    checked = {name: check_value(name, value) for name, value in values.items()}
    current = model_hyperparameters(attrs)
    hypers = dict(attrs.get("hypers", {}) or {})
    for name, value in {**current, **checked}.items():
        group = HYPERPARAMETERS[name][0]
        hypers[group] = {**(hypers.get(group) or {}), name: value}
    attrs["hypers"] = hypers
    tree = fitted.copy(deep=False)
    tree["model"].attrs = attrs
    tree.attrs = with_provenance(
        fitted.attrs,
        "moseq_xr.update_hyperparameters",
        {"changed": {k: {"from": current[k], "to": v} for k, v in checked.items()}},
    )
    return tree


__all__ = [
    "DEFAULTS",
    "HYPERPARAMETERS",
    "check_value",
    "fit_hyperparameters",
    "model_hyperparameters",
    "update_hyperparameters",
]
