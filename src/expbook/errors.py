"""Exceptions raised by expbook.

Every exception is named after the condition it reports and its message names the offending key,
value or reference, so a user can act on it without a traceback. The CLI prints ``str(error)`` on
one line.
"""

from __future__ import annotations


class ExpbookError(Exception):
    """Base class of every error expbook raises on purpose."""


class InvalidKeyError(ExpbookError, ValueError):
    """A metric, param or summary key is not a valid key."""


class InvalidValueError(ExpbookError, ValueError):
    """A metric or param value cannot be stored (for example a string as a metric)."""


class InvalidStepError(ExpbookError, ValueError):
    """A step is negative or not an integer."""


class RunFinishedError(ExpbookError, RuntimeError):
    """Something was logged to a run that has already finished."""


class StoreError(ExpbookError):
    """The store cannot be opened, read or written."""


class StoreUnavailableError(StoreError):
    """The store cannot be written now, but the same write can succeed later: the connection
    was lost, the file is locked by another process, the server is restarting or full."""


class StoreRefusedError(StoreError):
    """The database refused a change (a constraint, a trigger, a value or text it cannot hold):
    the same change fails again. ``reason`` is the database's own message."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class StoreReplacedError(StoreError):
    """The store's file was deleted, or replaced by another file, while it was open: writing
    on would go into the old file, which nobody can read any more."""


class SchemaVersionError(StoreError):
    """The store's schema is older or newer than this version of expbook understands."""


class RunNotFoundError(ExpbookError, LookupError):
    """No run matches the given reference."""


class AmbiguousRunError(ExpbookError, LookupError):
    """A run reference (UUID prefix or name) matches more than one run."""


class MetricNotFoundError(ExpbookError, LookupError):
    """A run has no metric of the given key."""


class NoteNotFoundError(ExpbookError, LookupError):
    """A note id names no note of the run."""


class ExperimentNotFoundError(ExpbookError, LookupError):
    """No experiment has the given name or id."""


class ArtifactNotFoundError(ExpbookError, LookupError):
    """A run has no artifact (nor folder of artifacts) of the given name."""


class SweepNotFoundError(ExpbookError, LookupError):
    """No sweep has the given name, UUID or UUID prefix."""


class AmbiguousSweepError(SweepNotFoundError):
    """A UUID prefix matches more than one sweep."""


class SweepExistsError(ExpbookError, ValueError):
    """A sweep of that name already exists in the store."""


class TrialNotFoundError(ExpbookError, LookupError):
    """A sweep has no trial of the given number."""


class TokenExistsError(ExpbookError, ValueError):
    """An API token of that name exists (and is not revoked)."""


class TokenNotFoundError(ExpbookError, LookupError):
    """No API token has the given name."""


class Terminated(BaseException):
    """Raised in the main thread when SIGTERM or SIGHUP arrives while runs are open.

    Like ``KeyboardInterrupt`` for Ctrl-C: the program unwinds (``finally`` blocks and context
    managers run, open runs are flushed and marked ``interrupted``), and when the interpreter
    exits expbook re-sends the signal, so the process still dies by it.
    """

    def __init__(self, signum: int, name: str) -> None:
        super().__init__(f"received {name}")
        self.signum = signum


class FilterSyntaxError(ExpbookError, ValueError):
    """A filter or sort expression could not be parsed.

    Attributes:
        text: the whole expression.
        position: 0-based character offset of the problem.
        reason: what was wrong, without the position.
    """

    def __init__(self, reason: str, text: str, position: int) -> None:
        self.reason = reason
        self.text = text
        self.position = position
        near = text[position : position + 12]
        where = f"at column {position + 1}" + (f" (near {near!r})" if near else " (at the end)")
        super().__init__(f"{reason} {where} in {text!r}")
