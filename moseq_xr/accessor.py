"""The ``ds.moseq`` accessor: thin, stateless delegation to public functions.

Every method is a one- or two-line call to a public function of the same name
(``ds.moseq.qc()`` is ``moseq_xr.qc(ds)``). The accessor stores nothing but the
object it was created for, so fitted state always lives on the data.
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
        """Check the Dataset against the data contract (see :func:`moseq_xr.validate`)."""
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
