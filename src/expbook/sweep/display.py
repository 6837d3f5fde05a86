"""What ``expbook sweep run`` and ``expbook sweep agent`` show while trials run.

On a terminal: a Rich live panel (trial counts by state, the budget, the best trial so far with
its params, the last few events), redrawn twice a second. Otherwise (a pipe, a file, CI): one
plain line per event, nothing redrawn. Both end with the same summary. rich is imported only
for the live panel.
"""

from __future__ import annotations

import json
import math
import sys
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any, TextIO

from expbook.model import SweepRecord, TrialRecord, TrialState
from expbook.sweep.agent import Event, Outcome
from expbook.sweep.engine import best, slots
from expbook.sweep.spec import SweepSpec

if TYPE_CHECKING:
    from expbook.store import Store

_ORDER = ("finished", "running", "pruned", "failed", "crashed", "stopped", "queued")
_STYLES = {"finished": "green", "running": "bold blue", "pruned": "cyan", "failed": "bold red",
           "crashed": "bold magenta", "stopped": "yellow", "queued": "dim"}  # fmt: skip


def number(value: float | None) -> str:
    if value is None:
        return "—"
    if math.isnan(value):
        return "nan"
    return f"{value:.4g}"


def params_text(params: Any, width: int = 80, order: Any = ()) -> str:
    """``lr=0.001 hidden=128``: a configuration on one line, names in ``order`` first."""
    rank = {name: i for i, name in enumerate(order)}
    parts = []
    for key, value in sorted(params.items(), key=lambda item: rank.get(item[0], len(rank))):
        if isinstance(value, float):
            shown = f"{value:.4g}"
        elif isinstance(value, str):
            shown = value
        else:
            shown = json.dumps(value, separators=(",", ":"))
        parts.append(f"{key}={shown}")
    text = " ".join(parts)
    return text if len(text) <= width else text[: width - 1] + "…"


class Display:
    """Shows an agent's events (pass it as ``on_event``); use it as a context manager.

    Args:
        live: a live panel (default: when ``stream`` is a terminal).
    """

    def __init__(
        self, store: Store, sweep: SweepRecord, spec: SweepSpec, *, workers: int = 1,
        live: bool | None = None, stream: TextIO | None = None,
    ) -> None:  # fmt: skip
        self.store = store
        self.sweep = sweep
        self.spec = spec
        self.workers = workers
        self.stream = stream or sys.stdout
        self.live = self.stream.isatty() if live is None else live
        self.started_at = time.time()
        self.trials: list[TrialRecord] = []
        self.recent: deque[str] = deque(maxlen=6)
        self._read_at = 0.0
        self._order = [p.name for p in spec.parameters]
        self._lock = threading.Lock()
        self._panel: Any = None

    def __enter__(self) -> Display:
        self.trials = self.store.list_trials(self.sweep.id)
        if self.live:
            from rich.console import Console
            from rich.live import Live

            console = Console(file=self.stream, highlight=False, markup=False)
            self._panel = Live(console=console, get_renderable=self._render,
                               refresh_per_second=2, transient=False)  # fmt: skip
            self._panel.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._panel is not None:
            with self._lock:
                self.trials = self._read() or self.trials
            self._panel.stop()
            self._panel = None

    def __call__(self, event: Event) -> None:
        now = time.monotonic()
        fresh = event.kind == "finished" or (self.live and now - self._read_at >= 0.5)
        trials = self._read() if fresh else None  # a query per event would cost each trial
        with self._lock:
            if trials is not None:
                self.trials, self._read_at = trials, now
            line = self.line(event)
            if line:
                self.recent.append(line)
        if line and not self.live:
            self._write(line)

    def _read(self) -> list[TrialRecord]:
        try:
            return self.store.list_trials(self.sweep.id)
        except Exception:  # a display never stops the agent
            return []

    def _write(self, line: str) -> None:
        try:
            self.stream.write(line + "\n")
            self.stream.flush()
        except (OSError, ValueError):
            pass

    # --- text -------------------------------------------------------------------------------

    def line(self, event: Event) -> str | None:
        """One line for an event (None for events shown only as counts)."""
        trial = event.trial
        run = f" (run #{event.run_number})" if event.run_number is not None else ""
        if event.kind == "warning":
            return f"warning: {event.message}"
        if trial is None:
            return None
        name = f"trial {trial.number}"
        if event.kind == "started":
            repeat = f" repeat {trial.repeat}" if self.spec.repeats > 1 else ""
            again = f" attempt {trial.attempt}" if trial.attempt > 1 else ""
            return f"{name} started{repeat}{again}: {params_text(trial.params, order=self._order)}"
        if event.kind == "finished":
            return f"{name} finished{run}: {self._values(event.values)}{self._if_best(trial)}"
        if event.kind == "pruned":
            return f"{name} pruned{run}: {event.message}"
        if event.kind == "failed":
            return f"{name} failed{run}: {event.message}"
        if event.kind == "stopped":
            return f"{name} stopped{run}"
        if event.kind == "lost":
            return f"{name}: lease lost{run}, stopped (another agent marked it crashed)"
        if event.kind == "crashed":
            return f"{name} crashed{run}: {event.message}"
        return None

    def _values(self, values: tuple[float | None, ...] | None) -> str:
        if not self.spec.metrics:
            return "done"
        values = values or (None,) * len(self.spec.metrics)
        return ", ".join(f"{m.name} = {number(v)}" for m, v in zip(self.spec.metrics, values,
                                                                   strict=False))  # fmt: skip

    def _if_best(self, trial: TrialRecord) -> str:
        found = best(self.spec, self.trials)
        if found is not None and found[0].number == trial.number:
            return "  (best so far)"
        return ""

    def summary(self, outcome: Outcome) -> list[str]:
        """The closing lines: how the agent ended, the counts, the best trial."""
        trials = self._read() or self.trials
        counts = _counts(trials)
        shown = ", ".join(f"{counts[s]} {s}" for s in _ORDER if counts.get(s))
        lines = [f"sweep {self.sweep.name}: {outcome.reason or 'done'}",
                 f"  {len(trials)} trials: {shown or 'none'}"]  # fmt: skip
        found = best(self.spec, trials)
        if found is not None:
            trial, value = found
            run = f" (run #{trial.run_number})" if trial.run_number is not None else ""
            metric = self.spec.metric.name if self.spec.metric else "value"
            lines.append(f"  best: trial {trial.number}{run} {metric} = {number(value)}: "
                         f"{params_text(trial.params, 200, self._order)}")  # fmt: skip
        lines.append(f"  expbook sweep show {self.sweep.name}")
        return lines

    # --- the live panel -----------------------------------------------------------------------

    def _render(self) -> Any:
        from rich.console import Group
        from rich.panel import Panel
        from rich.text import Text

        with self._lock:
            trials = list(self.trials)
            recent = list(self.recent)
        spec = self.spec
        elapsed = _duration(time.time() - self.started_at)
        pruner = spec.effective_pruner
        head = Text(f"{spec.method} ({spec.effective_sampler})"
                    f"{'' if pruner == 'none' else f' · pruner {pruner}'}"
                    f" · {self.workers} worker{'s' if self.workers > 1 else ''} · {elapsed}",
                    style="dim")  # fmt: skip
        counts = _counts(trials)
        line = Text()
        for state in _ORDER:
            if counts.get(state) or state in ("finished", "running"):
                line.append(f"{counts.get(state, 0)} {state}", style=_STYLES[state])
                line.append("  ")
        budget = spec.budget()
        if budget is not None:
            line.append(f"budget {len(slots(trials))}/{budget}", style="dim")
        rows: list[Any] = [head, line]
        found = best(spec, trials)
        if found is not None:
            trial, value = found
            metric = spec.metric.name if spec.metric else "value"
            run = f" (run #{trial.run_number})" if trial.run_number is not None else ""
            shown = params_text(trial.params, 200, self._order)
            rows.append(Text.assemble(("best ", "bold"), f"trial {trial.number}{run} ",
                                      (f"{metric} = {number(value)}", "bold green"),
                                      f"  {shown}"))  # fmt: skip
        rows += [Text(r, style="dim") for r in recent]
        return Panel(Group(*rows), title=f"sweep {self.sweep.name}", title_align="left")


def _counts(trials: list[TrialRecord]) -> dict[str, int]:
    found: dict[str, int] = {}
    for trial in trials:
        state = TrialState(trial.state).value
        found[state] = found.get(state, 0) + 1
    return found


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {secs:02d}s"
