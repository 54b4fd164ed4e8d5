"""Registry of pose-file loaders.

Each format lives in its own module under :mod:`moseq_xr.io.formats` and
registers itself with :func:`register_loader`::

    @register_loader("deeplabcut", suffixes=(".h5", ".csv"), sniff=_looks_like_dlc)
    def read_deeplabcut(path: Path, **options) -> list[RecordingData]: ...

A loader reads one file and returns one :class:`~moseq_xr.schema.RecordingData`
per recording it holds (usually one; one per camera view or container where
relevant). It never builds xarray objects. ``sniff(path) -> bool`` looks at the
content (HDF5 keys, CSV header) so that ``source="auto"`` can tell apart formats
that share a suffix; sniffers run in registration priority order.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from moseq_xr.exceptions import FormatDetectionError, LoaderError
from moseq_xr.schema import RecordingData

ReadFunction = Callable[..., list[RecordingData]]
SniffFunction = Callable[[Path], bool]


@dataclass(frozen=True)
class Loader:
    """A registered pose-file format.

    Attributes
    ----------
    name
        Value of ``source=`` that selects it, e.g. ``"deeplabcut"``.
    read
        ``read(path, **options) -> list[RecordingData]``.
    suffixes
        Lower-case file endings it accepts (``".analysis.h5"`` style allowed).
    sniff
        Content check used by ``source="auto"``.
    priority
        Lower runs first when several loaders accept a suffix.
    description
        One line for ``moseq-xr doctor`` and the README table.
    """

    name: str
    read: ReadFunction
    suffixes: tuple[str, ...]
    sniff: SniffFunction
    priority: int
    description: str

    def options(self) -> list[str]:
        """Keyword options this loader accepts."""
        params = inspect.signature(self.read).parameters.values()
        return [p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY]


_LOADERS: dict[str, Loader] = {}


def register_loader(
    name: str,
    *,
    suffixes: Sequence[str],
    sniff: SniffFunction,
    priority: int = 50,
    description: str = "",
) -> Callable[[ReadFunction], ReadFunction]:
    """Register ``read`` as the loader of format ``name`` (decorator).

    Parameters
    ----------
    name
        The ``source=`` value.
    suffixes
        File endings this format uses.
    sniff
        ``sniff(path) -> bool``; must not raise on files of other formats.
    priority
        Order among loaders sharing a suffix (lower first).
    description
        Shown in format listings.

    Returns
    -------
    callable
        The decorator; it returns ``read`` unchanged.
    """

    def decorator(read: ReadFunction) -> ReadFunction:
        _LOADERS[name] = Loader(
            name=name,
            read=read,
            suffixes=tuple(s.lower() for s in suffixes),
            sniff=sniff,
            priority=priority,
            description=description or (read.__doc__ or "").strip().splitlines()[0],
        )
        return read

    return decorator


def supported_sources() -> dict[str, Loader]:
    """All registered loaders by name, in priority order."""
    _import_formats()
    return dict(sorted(_LOADERS.items(), key=lambda item: (item[1].priority, item[0])))


def get_loader(source: str) -> Loader:
    """Return the loader named ``source`` or raise a helpful ValueError."""
    loaders = supported_sources()
    if source not in loaders:
        raise ValueError(
            f"source={source!r} is not a known format; choose one of "
            f"{sorted(loaders)} or 'auto'"
        )
    return loaders[source]


def _matches_suffix(path: Path, loader: Loader) -> bool:
    name = path.name.lower()
    return any(name.endswith(suffix) for suffix in loader.suffixes)


def detect_source(path: str | Path) -> str:
    """Detect the format of ``path`` from its name and content.

    Parameters
    ----------
    path
        A pose file.

    Returns
    -------
    str
        The registered format name.

    Raises
    ------
    FormatDetectionError
        When no loader recognises the file.
    """
    path = Path(path)
    candidates = [
        loader
        for loader in supported_sources().values()
        if _matches_suffix(path, loader)
    ]
    if not candidates:
        known = sorted({s for loader in _LOADERS.values() for s in loader.suffixes})
        raise FormatDetectionError(
            path, f"unrecognised file type; known endings are {known}"
        )
    for loader in candidates:
        try:
            if loader.sniff(path):
                return loader.name
        except OSError as error:
            raise LoaderError(path, f"cannot be opened: {error}") from error
    raise FormatDetectionError(
        path,
        "content matches none of the formats using this ending "
        f"({[loader.name for loader in candidates]}); pass source= explicitly",
    )


def read_file(path: Path, source: str, options: dict[str, Any]) -> list[RecordingData]:
    """Read one file with the loader ``source`` (or the detected one)."""
    loader = get_loader(detect_source(path) if source == "auto" else source)
    unknown = sorted(set(options) - set(loader.options()))
    if unknown:
        raise ValueError(
            f"option(s) {unknown} are not understood by the {loader.name!r} loader; "
            f"it accepts {loader.options()}"
        )
    records = loader.read(path, **options)
    for record in records:
        record.source_file = record.source_file or path.as_posix()
    return records


def _import_formats() -> None:
    """Import the format modules so that their decorators register them."""
    import moseq_xr.io.formats  # noqa: F401
