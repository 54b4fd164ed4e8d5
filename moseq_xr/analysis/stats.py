"""Per-recording syllable statistics and group comparisons (reference §7.3, §8.1).

:func:`syllable_stats` summarises every recording x individual x syllable
(keypoint-MoSeq's ``stats_df``); :func:`set_groups` assigns recordings to
experimental groups; :func:`compare_groups` tests each syllable for a group
difference with a Kruskal-Wallis test and Dunn's post-hoc test, both with
permutation p-values and Benjamini-Hochberg corrections.

Differences from the reference, on purpose:

* Permutation p-values are ``(#{H_perm >= H_obs} + 1) / (n_permutations + 1)``
  (the reference counts ``>`` and divides by ``n_permutations``, which can give
  p = 0 and ignores permutations tying the observed statistic).
* Frequencies are shares of *all* instances (frames) of the recording x
  individual, computed before rare syllables are dropped; they sum to at most 1.
* The table lists every kept syllable for every recording x individual with a
  syllable, with zero counts where a syllable does not occur, so that group
  tests see the zeros.
"""

from __future__ import annotations

import itertools
import os
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from scipy.stats import rankdata

from moseq_xr._provenance import with_provenance
from moseq_xr.analysis.tables import GROUP, bouts_from_frames, to_dataframe
from moseq_xr.exceptions import DataQualityWarning, LoaderError, SchemaError
from moseq_xr.schema import names as N

_KEYS = [N.RECORDING, N.INDIVIDUAL]
_KINEMATICS = ("velocity", "angular_velocity")
_AGGREGATES = ("mean", "std", "min", "max")
#: Fewest samples per group below which :func:`compare_groups` warns.
MIN_GROUP_SIZE = 3


def _read_group_table(path: Path) -> dict[str, str]:
    """Read ``{recording: group}`` from a CSV (columns recording or name, group)."""
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    key = N.RECORDING if N.RECORDING in table else "name"
    if key not in table or GROUP not in table:
        raise LoaderError(
            path,
            f"expected columns 'recording' (or 'name') and 'group', got {list(table)}",
        )
    duplicated = sorted(set(table[key][table[key].duplicated()]))
    if duplicated:
        raise LoaderError(path, f"recordings listed more than once: {duplicated}")
    return dict(zip(table[key], table[GROUP], strict=True))


def _checked_groups(groups: Mapping[str, str], recordings: list[str]) -> list[str]:
    unknown = sorted(set(groups) - set(recordings))
    if unknown:
        raise SchemaError(
            GROUP,
            f"groups given for recordings not in the Dataset: {unknown}; "
            f"its recordings are {recordings}",
        )
    missing = [r for r in recordings if r not in groups]
    if missing:
        raise SchemaError(GROUP, f"no group given for recordings {missing}")
    empty = [r for r in recordings if str(groups[r]).strip() == ""]
    if empty:
        raise SchemaError(GROUP, f"empty group name for recordings {empty}")
    return [str(groups[r]) for r in recordings]


def set_groups(
    ds: xr.Dataset, groups: Mapping[str, str] | str | os.PathLike
) -> xr.Dataset:
    """Assign every recording to an experimental group.

    Parameters
    ----------
    ds
        A pose Dataset.
    groups
        ``{recording: group}``, or the path of a CSV file with columns
        ``recording`` (or ``name``, as in keypoint-MoSeq's ``index.csv``) and
        ``group``. Every recording of ``ds`` must be listed exactly once and
        no other recording may be.

    Returns
    -------
    xarray.Dataset
        A copy of ``ds`` with a string coordinate ``group`` over ``recording``
        and one more provenance entry.

    Raises
    ------
    SchemaError
        When recordings are missing from ``groups``, unknown, or have an empty
        group name.
    LoaderError
        When the CSV lacks the columns or lists a recording twice.
    """
    if isinstance(groups, str | os.PathLike):
        mapping = _read_group_table(Path(groups))
        recorded: object = Path(groups)
    else:
        mapping = {str(k): v for k, v in groups.items()}
        recorded = mapping
    recordings = [str(r) for r in ds[N.RECORDING].values]
    labels = _checked_groups(mapping, recordings)
    out = ds.assign_coords({GROUP: (N.RECORDING, np.array(labels, dtype=str))})
    out.attrs = with_provenance(
        ds.attrs, "moseq_xr.analysis.set_groups", {"groups": recorded}
    )
    return out


def _kept_syllables(instances: pd.DataFrame, min_frequency: float) -> np.ndarray:
    shares = instances["syllable"].value_counts(normalize=True)
    return np.sort(shares.index[shares >= min_frequency].to_numpy())


def _per_syllable(frames: pd.DataFrame, instances: pd.DataFrame) -> pd.DataFrame:
    """Summarise counts, frequencies, durations, kinematics of occurring syllables."""
    keys = [*_KEYS, "syllable"]
    by_instance = instances.groupby(keys)
    table = pd.DataFrame(
        {"count": by_instance.size(), "duration_s": by_instance["duration_s"].mean()}
    )
    modelled = frames[frames["syllable"] >= 0]
    by_frame = modelled.groupby(keys)
    table["count_frames"] = by_frame.size()
    for column in _KINEMATICS:
        if column in modelled:
            summary = by_frame[column].agg(list(_AGGREGATES))
            table = table.join(summary.add_prefix(f"{column}_"))
    totals = table.groupby(level=_KEYS)[["count", "count_frames"]].transform("sum")
    table["frequency_instances"] = table["count"] / totals["count"]
    table["frequency_frames"] = table["count_frames"] / totals["count_frames"]
    return table.reset_index()


def syllable_stats(
    ds: xr.Dataset,
    groups: Mapping[str, str] | str | os.PathLike | None = None,
    min_frequency: float = 0.005,
    smooth_heading: bool = False,
) -> pd.DataFrame:
    """Tidy statistics per recording x individual x syllable.

    Parameters
    ----------
    ds
        A pose Dataset with a ``syllable`` variable (``centroid`` / ``heading``
        add kinematic columns).
    groups
        Optional group assignment, see :func:`set_groups`; otherwise the
        Dataset's ``group`` coordinate is used when present.
    min_frequency
        Keep syllables whose share of all instances, pooled over the Dataset,
        is at least this.
    smooth_heading
        See :func:`moseq_xr.analysis.to_dataframe`.

    Returns
    -------
    pandas.DataFrame
        One row per (recording, individual) that has a syllable, times kept
        syllable. Columns ``[group,] recording, individual, syllable, count``
        (instances), ``count_frames``, ``frequency_instances`` (share of the
        recording x individual's instances), ``frequency_frames`` (share of its
        modelled frames), ``duration_s`` (mean instance duration), and
        ``velocity_{mean,std,min,max}``, ``angular_velocity_{mean,std,min,max}``
        over the syllable's frames when the Dataset has a centroid / heading.
        Counts and frequencies are 0, the rest NaN, where the syllable does not
        occur.
    """
    if groups is not None:
        ds = set_groups(ds, groups)
    frames = to_dataframe(ds, smooth_heading=smooth_heading)
    instances = bouts_from_frames(frames)
    occurring = _per_syllable(frames, instances)
    kept = _kept_syllables(instances, min_frequency)
    grid = (
        instances[_KEYS]
        .drop_duplicates()
        .merge(pd.DataFrame({"syllable": kept}), how="cross")
    )
    table = grid.merge(occurring, on=[*_KEYS, "syllable"], how="left")
    zero_when_absent = [
        "count",
        "count_frames",
        "frequency_instances",
        "frequency_frames",
    ]
    table[zero_when_absent] = table[zero_when_absent].fillna(0)
    table[["count", "count_frames"]] = table[["count", "count_frames"]].astype(np.int64)
    if GROUP in ds.coords:
        recording_groups = dict(
            zip(
                ds[N.RECORDING].values.astype(str),
                ds[GROUP].values.astype(str),
                strict=True,
            )
        )
        table.insert(0, GROUP, table[N.RECORDING].map(recording_groups))
    table.attrs = {"fps": float(ds.attrs["fps"]), "min_frequency": float(min_frequency)}
    return table[_ordered_columns(table)].sort_values(
        [*_KEYS, "syllable"], ignore_index=True
    )


def _ordered_columns(table: pd.DataFrame) -> list[str]:
    first = [
        GROUP,
        *_KEYS,
        "syllable",
        "count",
        "count_frames",
        "frequency_instances",
        "frequency_frames",
        "duration_s",
    ]
    leading = [c for c in first if c in table]
    return leading + [c for c in table if c not in leading]


def benjamini_hochberg(p_values: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (q-values); NaN entries are skipped.

    Parameters
    ----------
    p_values
        1-D p-values.

    Returns
    -------
    numpy.ndarray
        ``min(1, min_{j >= i} p_(j) m / j)`` in the input order, NaN where the
        input is NaN; ``m`` counts the non-NaN p-values.
    """
    p_values = np.asarray(p_values, dtype=np.float64)
    adjusted = np.full(p_values.shape, np.nan)
    finite = np.flatnonzero(np.isfinite(p_values))
    if finite.size == 0:
        return adjusted
    order = finite[np.argsort(p_values[finite], kind="stable")]
    scaled = p_values[order] * finite.size / np.arange(1, finite.size + 1)
    adjusted[order] = np.minimum(np.minimum.accumulate(scaled[::-1])[::-1], 1.0)
    return adjusted


def _tie_sum(ranks: np.ndarray) -> float:
    """Sum of ``t^3 - t`` over groups of tied ranks."""
    _, counts = np.unique(ranks, return_counts=True)
    return float(np.sum(counts.astype(np.float64) ** 3 - counts))


def _kruskal_h(
    ranks: np.ndarray, labels: np.ndarray, n_groups: int, ties: float
) -> np.ndarray:
    """Tie-corrected Kruskal-Wallis H for each row of ``labels`` (rows, N)."""
    n_total = ranks.size
    statistic = np.zeros(labels.shape[0])
    for group in range(n_groups):
        members = labels == group
        statistic += (members @ ranks) ** 2 / members.sum(axis=1)
    statistic = 12.0 / (n_total * (n_total + 1)) * statistic - 3.0 * (n_total + 1)
    correction = 1.0 - ties / (n_total**3 - n_total)
    return (
        statistic / correction if correction > 0 else np.full(labels.shape[0], np.nan)
    )


def _dunn_z(
    ranks: np.ndarray, in_first: np.ndarray, n_total: int, ties: float
) -> np.ndarray:
    """Dunn z of the samples ``ranks`` split by boolean rows ``in_first`` (rows, n)."""
    n_first = in_first[0].sum()
    n_second = ranks.size - n_first
    mean_first = (in_first @ ranks) / n_first
    mean_second = ((~in_first) @ ranks) / n_second
    variance = n_total * (n_total + 1) / 12.0 - ties / (12.0 * (n_total - 1))
    scale = np.sqrt(variance * (1.0 / n_first + 1.0 / n_second))
    if not scale > 0:
        return np.full(in_first.shape[0], np.nan)
    return np.abs(mean_first - mean_second) / scale


def permutation_p_value(observed: float, permuted: np.ndarray) -> float:
    """``(#{permuted >= observed} + 1) / (len(permuted) + 1)``; NaN if ``observed`` is.

    A relative tolerance of 1e-12 counts permutations that reproduce the
    observed partition despite rounding.
    """
    if not np.isfinite(observed):
        return np.nan
    exceed = np.sum(permuted >= observed - 1e-12 * max(abs(observed), 1.0))
    return float((exceed + 1) / (permuted.size + 1))


def _shuffled(
    labels: np.ndarray, n_permutations: int, rng: np.random.Generator
) -> np.ndarray:
    return rng.permuted(np.tile(labels, (n_permutations, 1)), axis=1)


def _dunn_rows(
    ranks: np.ndarray,
    labels: np.ndarray,
    names: list[str],
    n_permutations: int,
    rng: np.random.Generator,
) -> list[dict[str, object]]:
    """Dunn z, permutation p and BH q for every pair of groups of one syllable."""
    ties = _tie_sum(ranks)
    rows = []
    for first, second in itertools.combinations(range(len(names)), 2):
        pair = (labels == first) | (labels == second)
        pair_ranks, pair_labels = ranks[pair], labels[pair]
        observed = _dunn_z(
            pair_ranks, (pair_labels == first)[None, :], ranks.size, ties
        )[0]
        permuted = _dunn_z(
            pair_ranks,
            _shuffled(pair_labels, n_permutations, rng) == first,
            ranks.size,
            ties,
        )
        rows.append(
            {
                "group_1": names[first],
                "group_2": names[second],
                "z": observed,
                "p_dunn": permutation_p_value(observed, permuted),
            }
        )
    q_values = benjamini_hochberg(np.array([row["p_dunn"] for row in rows]))
    for row, q_value in zip(rows, q_values, strict=True):
        row["q_dunn"] = q_value
    return rows


def _test_syllable(
    values: np.ndarray,
    labels: np.ndarray,
    names: list[str],
    n_permutations: int,
    rng: np.random.Generator,
) -> list[dict[str, object]]:
    """Kruskal-Wallis and Dunn rows of one syllable (NaN samples dropped)."""
    finite = np.isfinite(values)
    present = sorted(set(labels[finite].tolist()))
    values, labels = values[finite], np.searchsorted(present, labels[finite])
    names = [names[g] for g in present]
    if len(names) < 2:
        return []
    ranks = rankdata(values)
    ties = _tie_sum(ranks)
    observed = _kruskal_h(ranks, labels[None, :], len(names), ties)[0]
    permuted = _kruskal_h(
        ranks, _shuffled(labels, n_permutations, rng), len(names), ties
    )
    p_value = permutation_p_value(observed, permuted)
    rows = _dunn_rows(ranks, labels, names, n_permutations, rng)
    for row in rows:
        first, second = names.index(row["group_1"]), names.index(row["group_2"])
        row.update(
            H=observed,
            p_value=p_value,
            n_1=int(np.sum(labels == first)),
            n_2=int(np.sum(labels == second)),
            mean_1=float(values[labels == first].mean()),
            mean_2=float(values[labels == second].mean()),
        )
    return rows


def _sample_table(stats_df: pd.DataFrame, statistic: str) -> pd.DataFrame:
    """Tabulate ``statistic`` as samples (recording[, individual]) x syllables."""
    missing = [
        c for c in (GROUP, N.RECORDING, "syllable", statistic) if c not in stats_df
    ]
    if missing:
        hint = (
            " (assign groups with set_groups or syllable_stats(groups=...))"
            if GROUP in missing
            else ""
        )
        raise SchemaError(
            GROUP if GROUP in missing else statistic,
            f"stats table lacks columns {missing}{hint}",
        )
    keys = [k for k in _KEYS if k in stats_df]
    groups_per_sample = stats_df.groupby(keys)[GROUP].nunique()
    if (groups_per_sample > 1).any():
        raise SchemaError(GROUP, "each recording must belong to exactly one group")
    index = [*keys, GROUP, "syllable"]
    if stats_df.duplicated(index).any():
        raise SchemaError(statistic, f"stats table has several rows per {index}")
    table = stats_df.set_index(index)[statistic].unstack("syllable")
    return table.reset_index(level=GROUP)


def _warn_small_groups(sizes: pd.Series) -> None:
    small = {str(g): int(n) for g, n in sizes.items() if n < MIN_GROUP_SIZE}
    if small:
        warnings.warn(
            f"groups with fewer than {MIN_GROUP_SIZE} recordings: {small}; group tests "
            "have little power and permutation p-values are coarse",
            DataQualityWarning,
            stacklevel=3,
        )


def compare_groups(
    stats_df: pd.DataFrame,
    statistic: str = "frequency_instances",
    n_permutations: int = 10000,
    seed: int = 0,
) -> pd.DataFrame:
    """Test every syllable for a difference of ``statistic`` between groups.

    For each syllable, a Kruskal-Wallis test over all groups (H with tie
    correction, as :func:`scipy.stats.kruskal`), then Dunn's post-hoc test for
    every pair of groups (z with tie correction, ranks from all groups). The
    samples are the rows of ``stats_df`` (one per recording x individual);
    samples whose value is NaN are left out of that syllable's tests.

    p-values are permutation p-values ``(#{T_perm >= T_obs} + 1) /
    (n_permutations + 1)``: for H, group labels are shuffled over all samples;
    for Dunn's z, within the two groups of the pair (ranks stay those of the
    full sample). Kruskal-Wallis p-values are Benjamini-Hochberg corrected
    across syllables (``q_value``), Dunn p-values across pairs within each
    syllable (``q_dunn``).

    Parameters
    ----------
    stats_df
        Output of :func:`syllable_stats` with a ``group`` column (two or more
        groups).
    statistic
        Column to compare, e.g. ``"frequency_instances"``, ``"duration_s"``,
        ``"velocity_mean"``.
    n_permutations
        Number of label permutations per test.
    seed
        Seed of the permutations.

    Returns
    -------
    pandas.DataFrame
        One row per syllable and pair of groups: ``syllable, statistic,
        group_1, group_2, n_1, n_2, mean_1, mean_2, H, p_value, q_value, z,
        p_dunn, q_dunn, significant`` (both ``q_value`` and ``q_dunn`` < 0.05).
        H is NaN (and p, q too) when all values of a syllable tie.

    Warns
    -----
    DataQualityWarning
        When a group has fewer than 3 samples.
    """
    if n_permutations < 1:
        raise ValueError(f"n_permutations must be >= 1, got {n_permutations}")
    table = _sample_table(stats_df, statistic)
    names = sorted(table[GROUP].astype(str).unique())
    if len(names) < 2:
        raise SchemaError(GROUP, f"need at least two groups to compare, got {names}")
    _warn_small_groups(table[GROUP].value_counts())
    labels = np.searchsorted(names, table[GROUP].astype(str).to_numpy())
    rng = np.random.default_rng(seed)
    rows = []
    for syllable in table.columns.drop(GROUP):
        values = table[syllable].to_numpy(dtype=np.float64)
        for row in _test_syllable(values, labels, names, n_permutations, rng):
            rows.append({"syllable": int(syllable), "statistic": statistic, **row})
    return _finish_comparison(pd.DataFrame(rows), statistic)


def _finish_comparison(result: pd.DataFrame, statistic: str) -> pd.DataFrame:
    columns = [
        "syllable",
        "statistic",
        "group_1",
        "group_2",
        "n_1",
        "n_2",
        "mean_1",
        "mean_2",
        "H",
        "p_value",
        "q_value",
        "z",
        "p_dunn",
        "q_dunn",
        "significant",
    ]
    if result.empty:
        return pd.DataFrame(columns=columns)
    per_syllable = result.drop_duplicates("syllable")[["syllable", "p_value"]]
    q_values = dict(
        zip(
            per_syllable["syllable"],
            benjamini_hochberg(per_syllable["p_value"].to_numpy()),
            strict=True,
        )
    )
    result["q_value"] = result["syllable"].map(q_values)
    result["significant"] = (result["q_value"] < 0.05) & (result["q_dunn"] < 0.05)
    result.attrs = {"statistic": statistic}
    return result[columns]
