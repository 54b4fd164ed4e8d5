"""The ``ds.moseq`` accessor: thin, stateless delegation to public functions.

Every method is a one- or two-line call to a public function of the same name
(``ds.moseq.qc()`` is ``moseq_xr.qc(ds)``, ``ds.moseq.fit(...)`` is
``moseq_xr.fit(ds, ...)``). The accessor stores nothing but the object it was
created for, so fitted state always lives on the data. Implementations are
imported inside the methods so that ``import moseq_xr`` stays light.
"""

from __future__ import annotations

from typing import Any

import xarray as xr


@xr.register_dataset_accessor("moseq")
class MoseqAccessor:
    """Keypoint-MoSeq operations on a moseq_xr pose Dataset."""

    __slots__ = ("_obj",)

    def __init__(self, obj: xr.Dataset) -> None:
        self._obj = obj

    def validate(self, deep: bool | None = None) -> xr.Dataset:
        """Check against the data contract (see :func:`moseq_xr.validate`)."""
        from moseq_xr.schema import validate

        return validate(self._obj, deep=deep)

    def save(self, path: Any, mode: str = "w") -> Any:
        """Save to a project store (see :func:`moseq_xr.save`)."""
        from moseq_xr.io.store import save

        return save(self._obj, path, mode=mode)

    def qc(self, **options: Any) -> xr.Dataset:
        """Data-quality report (see :func:`moseq_xr.qc`)."""
        from moseq_xr.qc import qc

        return qc(self._obj, **options)

    def fit(
        self, stage: str = "ar", num_iters: int = 50, **options: Any
    ) -> xr.DataTree:
        """Fit keypoint-MoSeq (see :func:`moseq_xr.fit`)."""
        from moseq_xr.fitting.api import fit

        return fit(self._obj, stage=stage, num_iters=num_iters, **options)

    def kappa_scan(
        self, kappas: Any = (1e3, 1e4, 1e5, 1e6, 1e7), **options: Any
    ) -> xr.Dataset:
        """Vectorised kappa x seed scan (see :func:`moseq_xr.kappa_scan`)."""
        from moseq_xr.fitting.selection import kappa_scan

        return kappa_scan(self._obj, kappas, **options)

    def apply(
        self, fitted: xr.DataTree, num_iters: int = 50, **options: Any
    ) -> xr.Dataset:
        """Label these data with a fitted model (see :func:`moseq_xr.apply`)."""
        from moseq_xr.fitting.apply import apply

        return apply(self._obj, fitted, num_iters=num_iters, **options)

    def estimate_syllable_marginals(
        self,
        fitted: xr.DataTree,
        burn_in_iters: int = 200,
        num_samples: int = 100,
        steps_per_sample: int = 10,
        **options: Any,
    ) -> xr.Dataset:
        """Averaged syllable probabilities.

        See :func:`moseq_xr.estimate_syllable_marginals`.
        """
        from moseq_xr.fitting.marginals import estimate_syllable_marginals

        return estimate_syllable_marginals(
            self._obj, fitted, burn_in_iters, num_samples, steps_per_sample, **options
        )

    def expected_marginal_likelihoods(self, fits: Any) -> xr.Dataset:
        """EML scores of fits of these data.

        See :func:`moseq_xr.expected_marginal_likelihoods`.
        """
        from moseq_xr.fitting.comparison import expected_marginal_likelihoods

        return expected_marginal_likelihoods(fits, ds=self._obj)

    def to_dataframe(self, smooth_heading: bool = False) -> Any:
        """One row per frame (see :func:`moseq_xr.analysis.to_dataframe`)."""
        from moseq_xr.analysis import to_dataframe

        return to_dataframe(self._obj, smooth_heading=smooth_heading)

    def bouts(self, smooth_heading: bool = False) -> Any:
        """One row per syllable instance (see :func:`moseq_xr.analysis.bouts`)."""
        from moseq_xr.analysis import bouts

        return bouts(self._obj, smooth_heading=smooth_heading)

    def set_groups(self, groups: Any) -> xr.Dataset:
        """Add a ``group`` coordinate (see :func:`moseq_xr.analysis.set_groups`)."""
        from moseq_xr.analysis import set_groups

        return set_groups(self._obj, groups)

    def syllable_stats(self, **options: Any) -> Any:
        """Per-syllable statistics (see :func:`moseq_xr.analysis.syllable_stats`)."""
        from moseq_xr.analysis import syllable_stats

        return syllable_stats(self._obj, **options)

    def transition_matrices(self, **options: Any) -> xr.DataArray:
        """Syllable transitions (see :func:`moseq_xr.analysis.transition_matrices`)."""
        from moseq_xr.analysis import transition_matrices

        return transition_matrices(self._obj, **options)

    def typical_trajectories(self, **options: Any) -> xr.DataArray:
        """Egocentric trajectories.

        See :func:`moseq_xr.analysis.typical_trajectories`.
        """
        from moseq_xr.analysis import typical_trajectories

        return typical_trajectories(self._obj, **options)

    def syllable_similarity(self, **options: Any) -> xr.DataArray:
        """Syllable distances (see :func:`moseq_xr.analysis.syllable_similarity`)."""
        from moseq_xr.analysis import syllable_similarity

        return syllable_similarity(self._obj, **options)

    def merge_syllables(self, mapping: Any) -> xr.Dataset:
        """Relabel syllables (see :func:`moseq_xr.analysis.merge_syllables`)."""
        from moseq_xr.analysis import merge_syllables

        return merge_syllables(self._obj, mapping)

    def to_reference_results(self, directory: Any, overwrite: bool = False) -> Any:
        """Export to the keypoint-MoSeq results layout.

        See :func:`moseq_xr.export.to_reference_results`.
        """
        from moseq_xr.export import to_reference_results

        return to_reference_results(self._obj, directory, overwrite=overwrite)

    def to_nwb(self, directory: Any, **options: Any) -> list:
        """One NWB file per recording (see :func:`moseq_xr.export.to_nwb`)."""
        from moseq_xr.export.nwb import to_nwb

        return to_nwb(self._obj, directory, **options)
