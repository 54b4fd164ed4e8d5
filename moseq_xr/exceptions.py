"""Exceptions and warnings raised by moseq_xr.

Every error a user can trigger with bad input derives from :class:`MoseqXrError`
and names the file, variable or argument at fault and what was expected. The
command line turns these into a one-line message and exit code 2.
"""


class MoseqXrError(Exception):
    """Base class of every error raised on purpose by moseq_xr."""


class SchemaError(MoseqXrError, ValueError):
    """A Dataset breaks one rule of the pose data contract."""

    def __init__(self, rule: str, message: str) -> None:
        self.rule = rule
        super().__init__(f"[{rule}] {message}")


class LoaderError(MoseqXrError, ValueError):
    """A pose file cannot be read, or reads into something inconsistent."""

    def __init__(self, path: object, message: str) -> None:
        self.path = str(path)
        super().__init__(f"{self.path}: {message}")


class FormatDetectionError(LoaderError):
    """The format of a file could not be recognised from its name and content."""


class StoreError(MoseqXrError, OSError):
    """A project store cannot be written or read."""


class FitError(MoseqXrError, RuntimeError):
    """A model fit cannot start or had to stop."""


class HyperparameterError(MoseqXrError, ValueError):
    """A hyperparameter name or value is not allowed (the message says why)."""


class MoseqXrWarning(UserWarning):
    """Base class of warnings issued by moseq_xr."""


class DataQualityWarning(MoseqXrWarning):
    """The data are usable but something in them deserves attention."""
