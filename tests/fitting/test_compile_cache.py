"""The opt-in on-disk cache of compiled samplers."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import moseq_xr
from moseq_xr.exceptions import MoseqXrWarning
from moseq_xr.fitting import api
from moseq_xr.fitting import compile_cache as cc
from moseq_xr.fitting.apply import FROZEN_STEP


def _affine(x, scale, *, power: int):
    return jnp.sum(scale * x**power, axis=-1)


def _entries(directory: Path) -> list[Path]:
    return sorted(directory.glob(f"*{cc.SUFFIX}"))


def _stats() -> dict[str, int]:
    return dict(cc.CACHE_STATS)


def _delta(before: dict[str, int]) -> dict[str, int]:
    return {k: cc.CACHE_STATS[k] - before[k] for k in before}


def test_cached_jit_stores_then_loads_the_same_executable(tmp_path):
    fun = cc.CachedJit(_affine, static_argnames="power")
    x, scale = jnp.arange(6.0).reshape(2, 3), jnp.asarray(2.0)
    before = _stats()
    with cc.compile_cache_scope(tmp_path):
        first = fun(x, scale, power=2)
    assert _delta(before) == {"hits": 0, "misses": 1, "failed_loads": 0}
    assert len(_entries(tmp_path)) == 1
    fun.clear_memory()
    with cc.compile_cache_scope(tmp_path):
        again = fun(x, scale, power=2)
        fun(x, scale, power=2)  # in memory now: no disk access
    assert _delta(before) == {"hits": 1, "misses": 1, "failed_loads": 0}
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(first, [10.0, 100.0])


def test_new_shapes_and_static_values_get_their_own_entries(tmp_path):
    fun = cc.CachedJit(_affine, static_argnames="power")
    scale = jnp.asarray(1.0)
    with cc.compile_cache_scope(tmp_path):
        fun(jnp.ones((2, 3)), scale, power=2)
        fun(jnp.ones((4, 3)), scale, power=2)
        cubes = fun(jnp.full((2, 3), 2.0), scale, power=3)
    assert len(_entries(tmp_path)) == 3
    np.testing.assert_array_equal(cubes, [24.0, 24.0])


def test_without_a_scope_nothing_is_written(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    fun = cc.CachedJit(_affine, static_argnames="power")
    np.testing.assert_array_equal(fun(jnp.ones(3), 2.0, power=1), 6.0)
    assert not any(tmp_path.rglob("*"))


def test_a_corrupt_entry_is_compiled_again_and_replaced(tmp_path):
    fun = cc.CachedJit(_affine, static_argnames="power")
    x = jnp.arange(3.0)
    with cc.compile_cache_scope(tmp_path):
        fun(x, 1.0, power=2)
    (entry,) = _entries(tmp_path)
    entry.write_bytes(b"not an executable")
    fun.clear_memory()
    before = _stats()
    with (
        cc.compile_cache_scope(tmp_path),
        pytest.warns(MoseqXrWarning, match="could not load"),
    ):
        result = fun(x, 1.0, power=2)
    assert _delta(before) == {"hits": 0, "misses": 1, "failed_loads": 1}
    np.testing.assert_array_equal(result, 5.0)
    assert entry.read_bytes() != b"not an executable"


def test_the_entry_name_depends_on_the_xla_flags(monkeypatch):
    lowered = jax.jit(_affine, static_argnames="power").lower(jnp.ones(3), 1.0, power=2)
    name = cc.entry_name(lowered)
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_enable_fast_math=true")
    assert cc.entry_name(lowered) != name


def test_cache_argument_is_checked(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cc.resolve_cache_dir(True) == tmp_path / "moseq_xr" / "xla"
    assert cc.resolve_cache_dir(None) is None
    assert cc.resolve_cache_dir(False) is None
    assert cc.resolve_cache_dir(str(tmp_path / "c")) == tmp_path / "c"
    with pytest.raises(TypeError, match="compile_cache"):
        cc.resolve_cache_dir(3)


_CHILD = textwrap.dedent(
    """
    import json, sys
    import jax.numpy as jnp
    from moseq_xr.fitting import compile_cache as cc

    def polynomial(x, *, degree):
        return sum(x**k for k in range(degree + 1))

    fun = cc.CachedJit(polynomial, static_argnames="degree")
    with cc.compile_cache_scope(sys.argv[1]):
        value = fun(jnp.arange(4.0), degree=3)
    print(json.dumps({"stats": cc.CACHE_STATS, "value": value.tolist()}))
    """
)


def test_a_second_process_loads_what_the_first_compiled(tmp_path):
    import json

    def child():
        run = subprocess.run(
            [sys.executable, "-c", _CHILD, str(tmp_path)],
            capture_output=True,
            text=True,
            check=True,
        )
        return json.loads(run.stdout.strip().splitlines()[-1])

    first, second = child(), child()
    assert first["stats"] == {"hits": 0, "misses": 1, "failed_loads": 0}
    assert second["stats"] == {"hits": 1, "misses": 0, "failed_loads": 0}
    assert first["value"] == second["value"] == [1.0, 4.0, 15.0, 40.0]


def test_fit_and_apply_load_their_samplers_from_the_cache(tmp_path):
    ds = moseq_xr.simulate(num_recordings=2, num_frames=400, seed=7)
    options = dict(num_iters=3, latent_dim=3, num_states=8, seed=1, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MoseqXrWarning)
        first = api.fit(ds, compile_cache=tmp_path, **options)
        written = _entries(tmp_path)
        for fun in (api._JITTED_STEP, api._JITTED_INIT, api._JITTED_INIT_POSE):
            fun.clear_memory()
        before = _stats()
        second = api.fit(ds, compile_cache=tmp_path, **options)
        assert _delta(before)["misses"] == 0
        assert _delta(before)["hits"] >= 3
        FROZEN_STEP.clear_memory()
        applied = moseq_xr.apply(ds, first, num_iters=2, compile_cache=tmp_path)
    assert len(written) >= 3
    np.testing.assert_array_equal(first["syllable"].values, second["syllable"].values)
    assert (applied["syllable"].values >= 0).any()
    assert len(_entries(tmp_path)) > len(written)


def test_an_executable_that_cannot_be_saved_still_runs(tmp_path, monkeypatch):
    """XLA refuses to serialise some programs (e.g. sorts with a comparator)."""
    import jax.experimental.serialize_executable as serialization

    def refuse(compiled):
        raise RuntimeError("UNIMPLEMENTED: `LessThan` is not serializable.")

    monkeypatch.setattr(serialization, "serialize", refuse)
    fun = cc.CachedJit(_affine, static_argnames="power")
    with (
        cc.compile_cache_scope(tmp_path),
        pytest.warns(MoseqXrWarning, match="could not write"),
    ):
        result = fun(jnp.arange(3.0), 1.0, power=2)
    np.testing.assert_array_equal(result, 5.0)
    assert not _entries(tmp_path)


@pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="malloc_trim is glibc's"
)
def test_freed_heap_memory_goes_back_to_the_os():
    """After a compilation the freed heap is returned (``malloc_trim``)."""
    script = textwrap.dedent(
        """
        import ctypes
        from moseq_xr.fitting.compile_cache import release_free_memory

        libc = ctypes.CDLL("libc.so.6")
        libc.malloc.restype = ctypes.c_void_p
        libc.free.argtypes = [ctypes.c_void_p]

        def rss_mb():
            with open("/proc/self/status") as status:
                line = next(x for x in status if x.startswith("VmRSS"))
            return int(line.split()[1]) / 1024

        blocks = [libc.malloc(4096) for _ in range(50_000)]  # ~200 MB of heap
        for block in blocks:
            ctypes.memset(block, 1, 4096)
        for block in blocks[:-1]:  # the last keeps the heap from shrinking
            libc.free(block)
        before = rss_mb()
        assert release_free_memory()
        print(before - rss_mb())
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert float(result.stdout) > 150.0
