"""Tables, statistics, transitions and similarity of fitted syllables.

Functions take a pose Dataset carrying model results (``syllable`` and,
optionally, ``centroid``, ``heading``, ``latent_state``; see
:data:`moseq_xr.schema.names.RESULT_VARS`) and return pandas or xarray objects.
"""

from moseq_xr.analysis.agreement import (
    adjusted_rand_index,
    contingency,
    normalized_mutual_information,
    recovery_errors,
)
from moseq_xr.analysis.similarity import (
    merge_syllables,
    suggest_merges,
    syllable_similarity,
    typical_trajectories,
)
from moseq_xr.analysis.stats import (
    benjamini_hochberg,
    compare_groups,
    set_groups,
    syllable_stats,
)
from moseq_xr.analysis.tables import bouts, to_dataframe
from moseq_xr.analysis.transitions import transition_matrices

__all__ = [
    "adjusted_rand_index",
    "benjamini_hochberg",
    "bouts",
    "compare_groups",
    "contingency",
    "merge_syllables",
    "normalized_mutual_information",
    "recovery_errors",
    "set_groups",
    "suggest_merges",
    "syllable_similarity",
    "syllable_stats",
    "to_dataframe",
    "transition_matrices",
    "typical_trajectories",
]
