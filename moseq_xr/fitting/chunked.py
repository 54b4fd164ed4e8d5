"""Applying a fitted model chunk by chunk of recordings (Dask, ``dask.distributed``).

:func:`moseq_xr.apply` comes here when the Dataset is Dask-backed (a project
store opened with :func:`moseq_xr.open`), or when ``client=`` or
``recordings_per_chunk=`` is given. Recordings are independent given the
fitted parameters, so the Dataset is cut along ``recording`` into chunks and
each chunk is labelled by the in-memory :func:`~moseq_xr.fitting.apply.apply`:

* one :func:`dask.delayed` task per chunk loads that chunk's ``position`` and
  ``confidence``, labels it and returns its result arrays;
* every result variable is :func:`dask.array.from_delayed` per chunk (shapes
  and dtypes are known in advance, see :func:`result_specs`), concatenated
  along ``recording``.

The result is therefore lazy: nothing is computed until it is, and then at most
one chunk per worker thread is in memory, so writing it with
:func:`moseq_xr.save` or ``to_zarr`` streams chunk by chunk. With a
``dask.distributed`` client the same graph is persisted on the cluster.

Chunk ``i`` is labelled with the seed :func:`chunk_seed` ``(seed, i)``, so the
labels do not depend on the order in which chunks run, but they do depend on
the chunking (and the segment length is chosen per chunk, as for a separate
call). JAX compiles the sweep once per distinct array shape and process:
chunks with the same number of recordings of similar length reuse it.

A chunk with no tracked frame at all gets what the in-memory path gives such
recordings (syllable -1, NaN, ``False``) instead of failing the whole job; any
other error names the chunk's recordings.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import dask
import dask.array as da
import numpy as np
import xarray as xr

from moseq_xr._provenance import with_provenance
from moseq_xr.exceptions import FitError
from moseq_xr.fitting.compile_cache import resolve_cache_dir
from moseq_xr.schema import names as N
from moseq_xr.schema import validate

if TYPE_CHECKING:
    from distributed import Client

#: Working memory aimed at per chunk when neither the Dataset's chunking nor
#: ``recordings_per_chunk`` says how many recordings to take (see
#: :func:`recording_chunks`).
CHUNK_BYTES = 2**30

#: Variables each chunk task loads (plus the coordinates).
_INPUT_VARS = ["position", "confidence"]


class ResultSpec(NamedTuple):
    """Layout of one result variable, known before anything is computed.

    Attributes
    ----------
    extra_dims
        Axes after ``(recording, individual, time)``.
    extra_shape
        Their sizes.
    dtype
        Data type.
    attrs
        Attributes of the variable.
    """

    extra_dims: tuple[str, ...]
    extra_shape: tuple[int, ...]
    dtype: np.dtype
    attrs: dict[str, str]


def is_dask_backed(ds: xr.Dataset) -> bool:
    """Whether any data variable of ``ds`` is a Dask array."""
    return any(var.chunks is not None for var in ds.data_vars.values())


def wants_chunks(
    ds: xr.Dataset, client: Client | None, recordings_per_chunk: int | None
) -> bool:
    """Whether :func:`moseq_xr.apply` should work chunk by chunk."""
    return client is not None or recordings_per_chunk is not None or is_dask_backed(ds)


def chunk_seed(seed: int, index: int) -> int:
    """Seed of the sweeps of chunk ``index`` (in ``[0, 2**31)``).

    The ``index``-th child of ``numpy.random.SeedSequence(seed)`` (what
    ``SeedSequence(seed).spawn(n)[index]`` gives): independent streams per
    chunk that do not depend on the order in which chunks run.

    Parameters
    ----------
    seed
        Seed passed to :func:`moseq_xr.apply`.
    index
        Position of the chunk along ``recording`` (0 for the first).

    Returns
    -------
    int
        Pass it as ``seed=`` to label the chunk's recordings in memory and get
        the same labels.
    """
    sequence = np.random.SeedSequence(seed, spawn_key=(index,))
    return int(sequence.generate_state(1, np.uint32)[0] >> 1)


def _bytes_per_recording(ds: xr.Dataset, num_states: int) -> int:
    """Rough working memory of one recording: float64 per frame and individual.

    Per frame and individual: positions and confidences (twice, raw and
    cleaned) and four arrays over the syllables (log-likelihoods, marginals,
    probabilities and their padded copy).
    """
    pose = ds.sizes[N.KEYPOINT] * (ds.sizes[N.SPACE] + 1)
    per_frame = 2 * pose + 4 * num_states
    return 8 * ds.sizes[N.TIME] * ds.sizes[N.INDIVIDUAL] * per_frame


def _even_chunks(total: int, size: int) -> tuple[int, ...]:
    full, rest = divmod(total, size)
    return (size,) * full + ((rest,) if rest else ())


def recording_chunks(
    ds: xr.Dataset, recordings_per_chunk: int | None, num_states: int
) -> tuple[int, ...]:
    """Number of recordings in each chunk, in order.

    Parameters
    ----------
    ds
        The pose Dataset to label.
    recordings_per_chunk
        Chunk size; the last chunk takes what is left.
    num_states
        Syllables of the model (for the memory estimate).

    Returns
    -------
    tuple of int
        ``recordings_per_chunk`` when given; else the chunking of ``position``
        along ``recording`` when it is a Dask array; else as many recordings as
        fit in :data:`CHUNK_BYTES` by the estimate
        ``8 bytes x time x individuals x (2 keypoints (space + 1) + 4 syllables)``
        (at least one).

    Raises
    ------
    ValueError
        If ``recordings_per_chunk`` is not a positive integer.
    """
    total = ds.sizes[N.RECORDING]
    if recordings_per_chunk is not None:
        if isinstance(recordings_per_chunk, bool) or not (
            isinstance(recordings_per_chunk, int | np.integer)
            and recordings_per_chunk >= 1
        ):
            raise ValueError(
                "recordings_per_chunk must be a positive integer, got "
                f"{recordings_per_chunk!r}"
            )
        return _even_chunks(total, int(recordings_per_chunk))
    position = ds["position"]
    if position.chunks is not None:
        return tuple(position.chunks[position.dims.index(N.RECORDING)])
    size = CHUNK_BYTES // max(_bytes_per_recording(ds, num_states), 1)
    return _even_chunks(total, max(1, int(size)))


def result_specs(ds: xr.Dataset, model_attrs: dict[str, Any]) -> dict[str, ResultSpec]:
    """Names and layouts of the variables :func:`moseq_xr.apply` adds.

    Parameters
    ----------
    ds
        The pose Dataset to label.
    model_attrs
        Attributes of the fitted ``/model`` group.

    Returns
    -------
    dict
        ``{name: ResultSpec}`` in the order the in-memory path adds them.
    """
    config = model_attrs["config"]
    f64, none = np.dtype(np.float64), ResultSpec((), (), np.dtype(np.float64), {})
    specs = {
        "syllable": ResultSpec((), (), np.dtype(np.int32), {}),
        "syllable_probability": ResultSpec(
            (N.SYLLABLE_ID,), (int(config["num_states"]),), f64, {}
        ),
        "max_syllable_probability": none,
    }
    if model_attrs.get("frame_log_likelihood"):
        specs["ood_score"] = none
        specs["out_of_distribution"] = ResultSpec((), (), np.dtype(bool), {})
    if config["stage"] == "full":
        specs.update(_continuous_specs(ds, int(config["latent_dim"])))
    return specs


def _continuous_specs(ds: xr.Dataset, latent_dim: int) -> dict[str, ResultSpec]:
    f64 = np.dtype(np.float64)
    return {
        "centroid": ResultSpec(
            (N.SPACE,),
            (ds.sizes[N.SPACE],),
            f64,
            {"description": "model centroid (mean keypoint position)"},
        ),
        "heading": ResultSpec(
            (), (), f64, {"description": "model heading", "units": "radians"}
        ),
        "latent_state": ResultSpec(
            ("latent",),
            (latent_dim,),
            f64,
            {"description": "pose latent state (whitened PCA coordinates)"},
        ),
    }


def _model_only(fitted: xr.DataTree) -> xr.DataTree:
    """The ``/model`` and ``/pca`` groups, in memory (small; shipped to tasks)."""
    from moseq_xr.fitting.apply import _model_parts

    model, pca, _ = _model_parts(fitted)
    return xr.DataTree.from_dict({"model": model.load(), "pca": pca.load()})


def _untracked(chunk: xr.Dataset) -> bool:
    """Whether no frame of the chunk has a keypoint with a finite position."""
    return not bool(np.isfinite(chunk["position"]).all(N.SPACE).any())


def _unlabelled(chunk: xr.Dataset, specs: dict[str, ResultSpec]) -> tuple:
    """What the in-memory path gives untracked recordings: -1, NaN, False."""
    grid = (chunk.sizes[N.RECORDING], chunk.sizes[N.INDIVIDUAL], chunk.sizes[N.TIME])
    fills = {"i": -1, "b": False, "f": np.nan}
    return tuple(
        np.full((*grid, *spec.extra_shape), fills[spec.dtype.kind], spec.dtype)
        for spec in specs.values()
    )


def _label_chunk(
    chunk: xr.Dataset,
    model: xr.DataTree,
    specs: dict[str, ResultSpec],
    options: dict[str, Any],
) -> tuple[np.ndarray, ...]:
    """Label one in-memory chunk; its result arrays in the order of ``specs``."""
    from moseq_xr.fitting.apply import apply

    if _untracked(chunk):
        return _unlabelled(chunk, specs)
    try:
        labelled = apply(chunk, model, **options)
    except FitError as error:
        names = [str(name) for name in chunk[N.RECORDING].values]
        raise FitError(f"recordings {names}: {error}") from error
    arrays = []
    for name, spec in specs.items():
        dims = (N.RECORDING, N.INDIVIDUAL, N.TIME, *spec.extra_dims)
        variable = labelled[name].transpose(*dims).variable
        arrays.append(np.asarray(variable.values).astype(spec.dtype, copy=False))
    return tuple(arrays)


def _lazy_results(
    ds: xr.Dataset,
    model: xr.DataTree,
    sizes: tuple[int, ...],
    specs: dict[str, ResultSpec],
    options: dict[str, Any],
) -> xr.Dataset:
    """One delayed task per chunk; per variable the chunks concatenated."""
    inputs = ds[_INPUT_VARS]
    shared = dask.delayed(model, pure=True)
    label = dask.delayed(_label_chunk, nout=len(specs), pure=True)
    grid = (ds.sizes[N.INDIVIDUAL], ds.sizes[N.TIME])
    blocks: dict[str, list[da.Array]] = {name: [] for name in specs}
    start = 0
    for index, size in enumerate(sizes):
        chunk = inputs.isel({N.RECORDING: slice(start, start + size)})
        seed = chunk_seed(options["seed"], index)
        task = label(chunk, shared, specs, {**options, "seed": seed})
        for position, (name, spec) in enumerate(specs.items()):
            shape = (size, *grid, *spec.extra_shape)
            blocks[name].append(
                da.from_delayed(task[position], shape, dtype=spec.dtype)
            )
        start += size
    dims = (N.RECORDING, N.INDIVIDUAL, N.TIME)
    return xr.Dataset(
        {
            name: xr.Variable(
                (*dims, *spec.extra_dims),
                da.concatenate(blocks[name], axis=0),
                spec.attrs,
            )
            for name, spec in specs.items()
        }
    )


def apply_chunked(
    ds: xr.Dataset,
    fitted: xr.DataTree,
    num_iters: int = 50,
    *,
    seed: int = 0,
    progress: bool = True,
    precision: str | None = None,
    client: Client | None = None,
    recordings_per_chunk: int | None = None,
    compile_cache: bool | str | Path | None = None,
) -> xr.Dataset:
    """Label ``ds`` chunk of recordings by chunk of recordings (lazily).

    The chunked path of :func:`moseq_xr.apply`; see there and this module's
    docstring.

    Parameters
    ----------
    ds
        A pose Dataset, Dask-backed or in memory.
    fitted
        The tree returned by :func:`moseq_xr.fit`.
    num_iters, seed, precision
        As for :func:`moseq_xr.apply`; chunk ``i`` uses ``chunk_seed(seed, i)``.
    progress
        Show a Gibbs progress bar per chunk as it runs (not on a client: watch
        its dashboard or use ``distributed.progress`` there).
    client
        A ``dask.distributed.Client``: the result is persisted there.
    recordings_per_chunk
        See :func:`recording_chunks`.
    compile_cache
        As for :func:`moseq_xr.apply`; with a directory every worker process
        loads the compiled sampler from it instead of compiling its own.

    Returns
    -------
    xarray.Dataset
        ``ds`` plus the result variables as Dask arrays chunked like the
        recordings (futures on the cluster when ``client`` is given).
    """
    model = _model_only(fitted)
    attrs = dict(model["model"].attrs)
    validate(ds, deep=False)
    sizes = recording_chunks(ds, recordings_per_chunk, attrs["config"]["num_states"])
    options = {
        "num_iters": num_iters,
        "seed": seed,
        "progress": progress and client is None,
        "precision": precision,
        "compile_cache": resolve_cache_dir(compile_cache),
    }
    results = _lazy_results(ds, model, sizes, result_specs(ds, attrs), options)
    if client is not None:
        results = client.persist(results)
    out = ds.assign(dict(results.data_vars))
    out.attrs = with_provenance(
        ds.attrs,
        "moseq_xr.apply",
        {
            "num_iters": num_iters,
            "seed": seed,
            "model_stage": attrs["config"]["stage"],
            "recording_chunks": list(sizes),
        },
    )
    return out
