"""Writing pose Datasets and model results to files read by other tools."""

from moseq_xr.export.nwb import to_nwb
from moseq_xr.export.reference_layout import to_reference_results

__all__ = ["to_nwb", "to_reference_results"]
