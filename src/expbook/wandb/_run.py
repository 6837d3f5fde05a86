"""``WandbRun``: W&B's run object over an expbook ``Run``, with W&B's step rules."""

from __future__ import annotations

import dataclasses
import fnmatch
import glob
import os
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from expbook.errors import InvalidValueError, RunFinishedError
from expbook.validation import check_key, check_step, coerce_metric
from expbook.wandb._config import Config, Summary
from expbook.wandb._media import Image, Table

if TYPE_CHECKING:
    from expbook.tracking import Run


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"train": {"loss": 1}}`` → ``{"train/loss": 1}``, as W&B shows nested dicts."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if not isinstance(key, str):
            raise InvalidValueError(f"wandb.log: key {key!r} is a {type(key).__name__}, not a str")
        full = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{full}/"))
        else:
            flat[full] = value
    return flat


def _is_media(value: Any) -> bool:
    if isinstance(value, Image | Table):
        return True
    return (
        isinstance(value, list | tuple)
        and bool(value)
        and all(isinstance(v, Image) for v in value)
    )


class WandbRun:
    """What ``wandb.init`` returns and ``wandb.run`` is. ``expbook_run`` is the expbook ``Run``."""

    def __init__(self, run: Run, *, project: str | None, group: str | None,
                 job_type: str | None, tags: tuple[str, ...], notes: str | None,
                 given_id: str | None) -> None:  # fmt: skip
        self.expbook_run = run
        self.project = project
        self.group = group
        self.job_type = job_type
        self.tags = tags
        self.notes = notes
        self._given_id = given_id
        self.config = Config(self)
        self.summary = Summary(self)
        self.step = 0  # W&B's current step: where the next committed row goes
        self._pending: dict[str, float] = {}
        self._last: dict[str, float] = {}
        self._step_metrics: dict[str, str] = {}  # pattern -> step metric
        self._saved: list[tuple[str, str]] = []  # wandb.save patterns kept again at the end
        self._ended = False

    @property
    def id(self) -> str:
        """The ``id=`` given to ``wandb.init``, else the expbook run's UUID."""
        return self._given_id or self.expbook_run.id

    @property
    def name(self) -> str:
        return self.expbook_run.name

    @name.setter
    def name(self, value: str) -> None:
        self.expbook_run.set_name(value)
        run = self.expbook_run
        run._record = dataclasses.replace(run._record, name=value)

    @property
    def entity(self) -> None:
        return None

    # --- logging --------------------------------------------------------------------------------

    def log(self, data: Mapping[str, Any], step: int | None = None,
            commit: bool | None = None) -> None:  # fmt: skip
        """Log a row, with W&B's rules (docs/wandb.md): each call without ``step`` is a new
        step unless ``commit=False``; with ``step`` the values wait at that step until a later
        step or ``commit=True``; a ``step`` behind the current one warns and is stored there.

        Raises:
            InvalidKeyError, InvalidValueError: a key is not a metric key, or a value is not a
                number, ``wandb.Image``, ``wandb.Table`` or a list of images.
            InvalidStepError: ``step`` is negative or not an integer.
            RunFinishedError: the run has finished.
        """
        if self._ended:
            raise RunFinishedError("wandb.log() after the run finished: call wandb.init() first")
        if not isinstance(data, Mapping):
            raise InvalidValueError(f"wandb.log() takes a dict, not {type(data).__name__}")
        numbers, media = self._check(flatten(data))
        if step is not None:
            step = check_step(step)
            if step < self.step:
                self._behind(step, numbers, media)
                return
            if step > self.step:
                self._commit()
                self.step = step
            committing = commit is True
        else:
            committing = commit is not False
        self._pending.update(numbers)
        self._store_media(media, self._pending)
        if committing:
            self._commit()
            self.step += 1

    def _check(self, flat: dict[str, Any]) -> tuple[dict[str, float], dict[str, Any]]:
        numbers, media = {}, {}
        for key, value in flat.items():
            check_key(key)
            if _is_media(value):
                media[key] = value
            else:
                numbers[key] = coerce_metric(key, value)
        return numbers, media

    def _behind(self, step: int, numbers: dict[str, float], media: dict[str, Any]) -> None:
        keys = ", ".join(sorted([*numbers, *media]))
        warnings.warn(
            f"wandb.log: step {step} is behind the current step {self.step} (keys {keys}); "
            f"W&B would drop these values, expbook stores them at step {step}",
            stacklevel=3,
        )
        routed = self._route(numbers, step)
        for at, values in routed.items():
            self.expbook_run.log(values, step=at)
        self._last.update(numbers)
        self._store_media(media, numbers, step)

    def _commit(self) -> None:
        """Write the row of the current step (metrics with a step metric go to its value)."""
        if not self._pending:
            return
        for at, values in self._route(self._pending, self.step).items():
            self.expbook_run.log(values, step=at)
        self._last.update(self._pending)
        self._pending = {}

    def _route(self, row: dict[str, float], step: int) -> dict[int, dict[str, float]]:
        by_step: dict[int, dict[str, float]] = {}
        for key, value in row.items():
            by_step.setdefault(self._step_for(key, row, step), {})[key] = value
        return by_step

    def _step_for(self, key: str, row: Mapping[str, float], step: int) -> int:
        metric = next((m for p, m in self._step_metrics.items()
                       if m != key and fnmatch.fnmatchcase(key, p)), None)  # fmt: skip
        if metric is None:
            return step
        value = row.get(metric, self._last.get(metric))
        if value is None or value != value or value < 0 or value != int(value):
            warnings.warn(
                f"wandb.log: {key!r} has step metric {metric!r}, which has "
                f"{'no value yet' if value is None else f'the value {value!r}, no step'}; "
                f"stored at step {step}",
                stacklevel=4,
            )
            return step
        return int(value)

    def _store_media(self, media: dict[str, Any], row: Mapping[str, float],
                     step: int | None = None) -> None:  # fmt: skip
        for key, value in media.items():
            at = self._step_for(key, row, self.step if step is None else step)
            with tempfile.TemporaryDirectory(prefix="expbook-wandb-") as folder:
                for name, payload in _media_files(key, at, value):
                    path = Path(folder) / "file"
                    path.write_bytes(payload)
                    self.expbook_run.log_artifact(path, name)

    def last_values(self) -> dict[str, float]:
        return {**self._last, **self._pending}

    def define_metric(self, name: str, step_metric: str | None = None,
                      **options: Any) -> None:  # fmt: skip
        """Declare ``name`` (a key, or a pattern ending in ``*``) to be plotted against
        ``step_metric``: its points go at the step metric's value (logged in the same row, else
        its last value). ``summary``, ``goal``, ``hidden``, ``step_sync`` and ``overwrite``
        change nothing: expbook keeps last, min and max of every key.

        Raises:
            InvalidKeyError: ``name`` or ``step_metric`` is not a metric key.
        """
        allowed = {"summary", "goal", "hidden", "step_sync", "overwrite"}
        unknown = set(options) - allowed
        if unknown:
            raise TypeError(f"wandb.define_metric() got unexpected arguments {sorted(unknown)}")
        check_key(name.rstrip("*").rstrip("/") or "x")
        if step_metric is not None:
            self._step_metrics[name] = check_key(step_metric)

    # --- files ----------------------------------------------------------------------------------

    def save(self, glob_str: str | os.PathLike[str] | None = None, base_path: str | None = None,
             policy: str = "live") -> list[str]:  # fmt: skip
        """Keep the files ``glob_str`` matches with the run as artifacts, named by their path
        relative to ``base_path`` (default: the glob's folder when it is absolute, else the
        current directory), as W&B does. They are kept now and, unless ``policy="now"``, again
        when the run ends (W&B's ``live`` and ``end``): a checkpoint overwritten during the run
        is kept as it ends. Returns the paths kept now.

        Raises:
            ValueError: an unknown ``policy``, or no ``glob_str``.
            InvalidValueError: a matched file lies outside ``base_path``.
        """
        if policy not in ("live", "now", "end"):
            raise ValueError(f"wandb.save(policy={policy!r}): use 'live', 'now' or 'end'")
        if glob_str is None:
            raise ValueError("wandb.save() needs the files to keep: wandb.save('model.pt')")
        pattern = os.fspath(glob_str)
        if base_path is None:
            base_path = os.path.dirname(pattern) if os.path.isabs(pattern) else "."
        kept = self._save_files(pattern, base_path)
        if policy != "now" and (pattern, base_path) not in self._saved:
            self._saved.append((pattern, base_path))
        return kept

    def _save_files(self, pattern: str, base_path: str) -> list[str]:
        files = sorted(p for p in glob.glob(pattern, recursive=True) if os.path.isfile(p))
        for path in files:
            name = os.path.relpath(path, base_path).replace(os.sep, "/")
            if name.startswith("../"):
                raise InvalidValueError(f"wandb.save({pattern!r}): {path!r} is not under "
                                        f"base_path {base_path!r}")  # fmt: skip
            self.expbook_run.log_artifact(path, name)
        return files

    # --- ending ---------------------------------------------------------------------------------

    def finish(self, exit_code: int | None = None, quiet: bool | None = None) -> None:
        """Write the pending row and end the run: ``finished``, or ``failed`` with a non-zero
        ``exit_code``."""
        if exit_code:
            self._end("failed", exit_code=exit_code, error=f"wandb.finish(exit_code={exit_code})")
        else:
            self._end("finished", exit_code=exit_code)

    def flush_pending(self) -> None:
        if not self._ended:
            self._commit()

    def _end(self, status: str, **details: Any) -> None:
        if not self._ended:
            self._commit()
            self._ended = True
            self._keep_saved()
            self.expbook_run.finish(status, **details)
        from expbook import wandb

        wandb._forget(self)

    def _keep_saved(self) -> None:
        """The files of ``wandb.save`` as they are at the end; a file that cannot be kept is
        a warning, never a reason not to end the run."""
        for pattern, base_path in self._saved:
            try:
                self._save_files(pattern, base_path)
            except Exception as exc:
                warnings.warn(f"wandb.save({pattern!r}) at the end of the run: {exc}",
                              stacklevel=3)  # fmt: skip

    def __enter__(self) -> WandbRun:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        from expbook.tracking.run import outcome

        status, error, code = outcome(exc_type, exc, tb)
        self._end(status.value, error=error, exit_code=code)

    def __repr__(self) -> str:
        return f"<expbook.wandb run {self.name!r} id={self.id} step={self.step}>"

    # W&B run methods expbook does not provide, with what to use instead
    def __getattr__(self, name: str) -> Any:
        from expbook.wandb import UNSUPPORTED

        if name in UNSUPPORTED:
            return UNSUPPORTED[name]
        raise AttributeError(f"wandb run has no attribute {name!r} in expbook.wandb")


def _media_files(key: str, step: int, value: Any) -> list[tuple[str, bytes]]:
    base = f"media/{key}/{step}"
    if isinstance(value, Table):
        return [(f"{base}.json", value.to_json()), (f"{base}.csv", value.to_csv())]
    if isinstance(value, Image):
        return _image_files(base, value)
    files: list[tuple[str, bytes]] = []
    for index, image in enumerate(value):
        files += _image_files(f"{base}-{index}", image)
    return files


def _image_files(base: str, image: Image) -> list[tuple[str, bytes]]:
    files = [(f"{base}{image.extension}", image.data)]
    if image.caption:
        files.append((f"{base}.caption.txt", str(image.caption).encode()))
    return files
