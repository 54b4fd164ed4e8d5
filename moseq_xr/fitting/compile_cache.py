"""Compiled samplers kept on disk between fits (opt-in: ``compile_cache=``).

XLA compiles a full-model Gibbs sweep in about half a minute on a CPU, and a
new process (a CLI call, a resumed fit, the next seed of a model comparison)
paid that again every time. With a cache directory, each compiled executable
is serialised after its first compilation
(:mod:`jax.experimental.serialize_executable`) and loaded by later calls whose
computation is identical: the same lowered program text, JAX and jaxlib
versions, backend, devices, CPU and ``XLA_FLAGS``.

Nothing global changes: the directory is chosen per call with
:func:`compile_cache_scope` (a context variable, so threads and nested calls
keep their own), and JAX's own persistent cache, which is process-wide
configuration, is not touched. Within a process every :class:`CachedJit`
also keeps its executables in memory, as ``jax.jit`` does.

Loading an entry runs code from the file: point the cache only at directories
you own.

Every compilation here passes :data:`COMPILER_OPTIONS` to XLA (per call,
never through ``XLA_FLAGS``), and :func:`compile_concurrently` compiles
several programs at once (a sweep split into parts, see
:class:`ChainedJit`), which is how a full-model sweep compiles in a fraction
of the time of one large program.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import contextvars
import ctypes
import functools
import hashlib
import inspect
import os
import platform
import sys
import tempfile
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp

from moseq_xr.exceptions import MoseqXrWarning

#: Executables each function keeps in memory (least recently used dropped).
MEMORY_ENTRIES = 8

#: File suffix of a cache entry.
SUFFIX = ".xla"

#: Disk hits, misses (compiled and written) and failed loads, for diagnostics.
CACHE_STATS = {"hits": 0, "misses": 0, "failed_loads": 0}

#: Options given to XLA with every compilation here. jaxlib 0.10's MLIR fusion
#: emitters take about a fifth longer to compile a Gibbs sweep on a CPU than
#: the elemental emitters, for the same run time (``benchmarks/RESULTS.md``).
#: Dropped, with a warning, where the installed XLA does not know an option.
COMPILER_OPTIONS: dict[str, Any] = {"xla_cpu_use_fusion_emitters": False}

_DIRECTORY: contextvars.ContextVar[Path | None] = contextvars.ContextVar(
    "moseq_xr_compile_cache", default=None
)


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/moseq_xr/xla`` (``~/.cache/moseq_xr/xla`` by default)."""
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "moseq_xr" / "xla"


def resolve_cache_dir(compile_cache: bool | str | Path | None) -> Path | None:
    """The directory named by a ``compile_cache=`` argument (``None``: no cache).

    ``True`` means :func:`default_cache_dir`; ``None`` or ``False``, no cache.
    """
    if compile_cache is None or compile_cache is False:
        return None
    if compile_cache is True:
        return default_cache_dir()
    if isinstance(compile_cache, str | os.PathLike):
        return Path(compile_cache).expanduser()
    raise TypeError(
        "compile_cache must be None, True/False or a directory path, "
        f"got {type(compile_cache).__name__}"
    )


@contextlib.contextmanager
def compile_cache_scope(compile_cache: bool | str | Path | None) -> Iterator[None]:
    """Use a compile cache directory for :class:`CachedJit` calls in this block."""
    token = _DIRECTORY.set(resolve_cache_dir(compile_cache))
    try:
        yield
    finally:
        _DIRECTORY.reset(token)


def _cpu_description() -> str:
    """The CPU model and feature flags (executables use the host's instructions)."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            lines = [
                line.strip()
                for line in cpuinfo
                if line.startswith(("model name", "flags"))
            ]
        return "\n".join(sorted(set(lines)))
    except OSError:
        return platform.processor()


def _environment(lowered: jax.stages.Lowered) -> str:
    """Everything besides the program text that an executable depends on."""
    import jaxlib

    first = jax.devices()[0]
    devices = sorted({device.device_kind for device in jax.devices()})
    parts = [
        jax.__version__,
        jaxlib.__version__,
        first.platform,
        first.client.platform_version,
        ",".join(devices),
        str(len(jax.devices())),
        os.environ.get("XLA_FLAGS", ""),
        repr(sorted(compiler_options().items())),
        platform.machine(),
        _cpu_description() if first.platform == "cpu" else "",
        str(lowered.in_tree),
        str(lowered.out_tree),
    ]
    return "\n".join(parts)


def entry_name(lowered: jax.stages.Lowered) -> str:
    """File name of a lowered computation's cache entry (a SHA-256 digest)."""
    digest = hashlib.sha256(_environment(lowered).encode())
    digest.update(lowered.as_text().encode())
    return digest.hexdigest() + SUFFIX


def _load(path: Path, lowered: jax.stages.Lowered) -> jax.stages.Compiled | None:
    from jax.experimental.serialize_executable import deserialize_and_load

    try:
        payload = path.read_bytes()
        compiled = deserialize_and_load(payload, lowered.in_tree, lowered.out_tree)
    except Exception as error:  # a truncated, foreign or stale entry
        CACHE_STATS["failed_loads"] += 1
        warnings.warn(
            f"compile cache: could not load {path} ({type(error).__name__}: "
            f"{error}); compiling again and replacing it",
            MoseqXrWarning,
            stacklevel=4,
        )
        return None
    CACHE_STATS["hits"] += 1
    return compiled


def _store(path: Path, compiled: jax.stages.Compiled) -> None:
    """Write an entry atomically (temporary file, then rename); never raise."""
    from jax.experimental.serialize_executable import serialize

    try:
        payload, _, _ = serialize(compiled)
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(handle, "wb") as file:
            file.write(payload)
        os.replace(temporary, path)
    except Exception as error:  # e.g. an op XLA cannot serialise: never fatal
        warnings.warn(
            f"compile cache: could not write {path} ({type(error).__name__}: "
            f"{error}); the fit goes on without caching this executable",
            MoseqXrWarning,
            stacklevel=4,
        )


def compile_lowered(
    lowered: jax.stages.Lowered, directory: Path | None
) -> jax.stages.Compiled:
    """Compile, or load the executable from ``directory`` when it is there."""
    if directory is None:
        return _compile(lowered)
    path = directory / entry_name(lowered)
    if path.is_file():
        compiled = _load(path, lowered)
        if compiled is not None:
            return compiled
    CACHE_STATS["misses"] += 1
    compiled = _compile(lowered)
    _store(path, compiled)
    return compiled


@functools.cache
def compiler_options() -> dict[str, Any]:
    """:data:`COMPILER_OPTIONS` as far as the installed XLA accepts them.

    Checked once per process by compiling an identity function; an option
    XLA does not know is dropped with a warning rather than failing every
    compilation.
    """
    probe = jax.jit(lambda value: value).lower(jnp.zeros((), jnp.int32))
    accepted = {}
    for name, value in COMPILER_OPTIONS.items():
        try:
            probe.compile(compiler_options={name: value})
        except jax.errors.JaxRuntimeError as error:
            warnings.warn(
                f"XLA does not accept the compiler option {name}={value!r} "
                f"({error}); compiling without it",
                MoseqXrWarning,
                stacklevel=2,
            )
            continue
        accepted[name] = value
    return accepted


def _compile(lowered: jax.stages.Lowered) -> jax.stages.Compiled:
    """Compile with :func:`compiler_options`, then return freed memory to the OS.

    XLA's CPU compiler leaves hundreds of MB of freed heap behind (glibc
    keeps it); the sampler's large buffers are mapped separately and never
    reuse it, so without the trim it would add to every later peak.
    """
    compiled = lowered.compile(compiler_options=compiler_options())
    release_free_memory()
    return compiled


def release_free_memory() -> bool:
    """Return the C heap's free pages to the operating system (glibc only).

    Calls ``malloc_trim(0)``: nothing allocated is touched, so it is safe at
    any time. Returns whether it could be called (False on other C libraries).
    """
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    if sys.platform != "linux":
        return None
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # musl and other C libraries
        return None


def _abstract(leaf: Any) -> Any:
    if isinstance(leaf, jax.Array):
        return (
            leaf.shape,
            leaf.dtype,
            getattr(leaf, "weak_type", False),
            leaf.sharding,
        )
    return (type(leaf), jnp.shape(leaf), jnp.result_type(leaf))


class CachedJit:
    """``jax.jit(fun, static_argnames=...)`` whose compilations go through the cache.

    Calls trace and compile once per abstract signature (shapes, dtypes,
    shardings, static arguments, precision), keep the executable in memory,
    and, inside :func:`compile_cache_scope` with a directory, load it from or
    store it to disk.
    """

    def __init__(self, fun: Callable[..., Any], static_argnames: str | tuple = ()):
        if isinstance(static_argnames, str):
            static_argnames = (static_argnames,)
        self.fun = fun
        self.static_argnames = tuple(static_argnames)
        self._parameters = list(inspect.signature(fun).parameters)
        self._jitted = jax.jit(fun, static_argnames=self.static_argnames)
        self._memory: OrderedDict[Any, jax.stages.Compiled] = OrderedDict()
        self._lock = threading.Lock()

    def _split(self, args: tuple, kwargs: dict) -> tuple[tuple, dict, dict]:
        """Positional and keyword arguments without the static ones, and those."""
        static = {k: v for k, v in kwargs.items() if k in self.static_argnames}
        dynamic_kwargs = {k: v for k, v in kwargs.items() if k not in static}
        dynamic_args = []
        for name, value in zip(self._parameters, args, strict=False):
            if name in self.static_argnames:
                static[name] = value
            else:
                dynamic_args.append(value)
        return tuple(dynamic_args), dynamic_kwargs, static

    def _signature(self, args: tuple, kwargs: dict) -> tuple:
        dynamic_args, dynamic_kwargs, static = self._split(args, kwargs)
        leaves, treedef = jax.tree_util.tree_flatten((dynamic_args, dynamic_kwargs))
        return (
            treedef,
            tuple(_abstract(leaf) for leaf in leaves),
            tuple(sorted(static.items())),
            jnp.result_type(float),
            _DIRECTORY.get(),
        )

    def _remembered(self, signature: tuple) -> jax.stages.Compiled | None:
        with self._lock:
            compiled = self._memory.get(signature)
            if compiled is not None:
                self._memory.move_to_end(signature)
            return compiled

    def _remember(self, signature: tuple, compiled: jax.stages.Compiled) -> None:
        with self._lock:
            self._memory[signature] = compiled
            while len(self._memory) > MEMORY_ENTRIES:
                self._memory.popitem(last=False)

    def compiled(self, *args: Any, **kwargs: Any) -> jax.stages.Compiled:
        """The executable for these arguments (compiled or loaded on first use)."""
        return compile_concurrently([(self, args, kwargs)])[0]

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run ``fun`` compiled (as ``jax.jit(fun)(*args, **kwargs)`` would)."""
        dynamic_args, dynamic_kwargs, _ = self._split(args, kwargs)
        return self.compiled(*args, **kwargs)(*dynamic_args, **dynamic_kwargs)

    def clear_memory(self) -> None:
        """Forget the executables held in memory (the disk cache stays)."""
        with self._lock:
            self._memory.clear()


def compile_concurrently(
    calls: Sequence[tuple[CachedJit, tuple, dict]],
) -> list[jax.stages.Compiled]:
    """Executables of several :class:`CachedJit` calls, compiled at the same time.

    Programs are traced and lowered here, in the caller's thread (tracing
    reads the caller's precision and cache directory); their XLA
    compilations, which release the GIL, run in threads, each starting as
    soon as its program is lowered. On a CPU with a few cores, several
    mid-sized programs compile faster this way than one large one: XLA spends
    part of each compilation on one core.

    Parameters
    ----------
    calls
        ``(function, args, kwargs)`` for each executable wanted; those already
        in a function's memory are not compiled again.

    Returns
    -------
    list of jax.stages.Compiled
        In the order of ``calls``.
    """
    directory = _DIRECTORY.get()
    results: list[Any] = [None] * len(calls)
    missing = []
    for index, (function, args, kwargs) in enumerate(calls):
        signature = function._signature(args, kwargs)
        results[index] = function._remembered(signature)
        if results[index] is None:
            missing.append((index, function, signature, args, kwargs))
    if not missing:
        return results
    compiler_options()  # checked here, so that a warning reaches the caller
    with concurrent.futures.ThreadPoolExecutor(len(missing)) as pool:
        pending = []
        for index, function, signature, args, kwargs in missing:
            lowered = function._jitted.lower(*args, **kwargs)
            future = pool.submit(compile_lowered, lowered, directory)
            pending.append((index, function, signature, future))
        for index, function, signature, future in pending:
            results[index] = future.result()
            function._remember(signature, results[index])
    return results


class ChainedJit:
    """Consecutive jitted parts run as one function, compiled concurrently.

    ``ChainedJit([f, g, h], static_argnames)(carry, *rest)`` is
    ``h(g(f(carry, *rest), *rest), *rest)`` with the carried value at
    position ``carry_argnum`` of every part's arguments; every part but the
    last returns a value of the same structure, shapes and shardings, so all
    parts are compiled from the first call's arguments, at the same time
    (:func:`compile_concurrently`).
    """

    def __init__(
        self,
        parts: Sequence[Callable[..., Any]],
        static_argnames: str | tuple = (),
        carry_argnum: int = 0,
    ):
        self.parts = [CachedJit(part, static_argnames) for part in parts]
        self.carry_argnum = carry_argnum

    def compiled(self, *args: Any, **kwargs: Any) -> list[jax.stages.Compiled]:
        """The parts' executables for these arguments (compiled on first use)."""
        return compile_concurrently([(part, args, kwargs) for part in self.parts])

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the parts in turn, each on the previous part's result."""
        executables = self.compiled(*args, **kwargs)
        dynamic_args, dynamic_kwargs, _ = self.parts[0]._split(args, kwargs)
        dynamic_args = list(dynamic_args)
        result = None
        for executable in executables:
            result = executable(*dynamic_args, **dynamic_kwargs)
            dynamic_args[self.carry_argnum] = result
        return result

    def clear_memory(self) -> None:
        """Forget the parts' executables held in memory (the disk cache stays)."""
        for part in self.parts:
            part.clear_memory()


__all__ = [
    "CACHE_STATS",
    "COMPILER_OPTIONS",
    "CachedJit",
    "ChainedJit",
    "compile_cache_scope",
    "compile_concurrently",
    "compile_lowered",
    "compiler_options",
    "default_cache_dir",
    "entry_name",
    "release_free_memory",
    "resolve_cache_dir",
]
