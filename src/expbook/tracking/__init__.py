"""The tracking client: ``Tracker`` starts runs, ``Run`` is the handle code logs to."""

from expbook.tracking.run import Run, Summary
from expbook.tracking.tracker import Tracker

__all__ = ["Run", "Summary", "Tracker"]
