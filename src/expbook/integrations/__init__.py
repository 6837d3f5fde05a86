"""Framework integrations: expbook's hooks for Hugging Face, Lightning, Keras, XGBoost,
LightGBM, scikit-learn and tqdm (see docs/autolog.md).

One implementation serves both ways in: under ``expbook run`` the hooks (``_inject/``, standard
library only) are loaded by a ``sitecustomize`` into the program's own interpreter and write to
the run's spool; here the same code writes to a live ``Run`` (:class:`RunSink`):

- :func:`autolog` (``expbook.autolog()``) installs the post-import hooks, recording into the
  active run;
- ``expbook.integrations.transformers.ExpbookCallback``, ``.lightning.ExpbookLogger`` and
  ``.keras.ExpbookKerasCallback`` are the framework's own kind of object, for an explicit run.

Importing this package imports no framework.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from types import ModuleType

    from expbook.tracking import Run


def hooks() -> ModuleType:
    """The hooks' core module: the one ``expbook run`` injected into this process if it did
    (so that there is one set of hooks per process), else ours."""
    injected = sys.modules.get("_expbook_autolog")
    if injected is not None:
        return injected
    from expbook.integrations._inject import _expbook_autolog

    return _expbook_autolog


class RunSink:
    """Where the hooks write in code: ``run``, or the active run when each record is made
    (records made while none is active are dropped, with one warning)."""

    def __init__(self, run: Run | None = None) -> None:
        self.run = run
        self._warned = False

    def _target(self) -> Run | None:
        import expbook

        run = self.run or expbook.active_run()
        if run is None and not self._warned:
            self._warned = True
            hooks().say("expbook autolog: no active run (start one): values are not recorded")
        return run

    def point(self, framework: str, values: dict[str, float], step: Any, epoch: Any) -> None:
        run = self._target()
        if run is not None:
            run.log(values, step=step, epoch=epoch)

    def summary(self, framework: str, values: dict[str, float]) -> None:
        run = self._target()
        if run is not None:
            run.summary.update(values)

    def params(self, framework: str, params: dict[str, Any]) -> None:
        run = self._target()
        if run is not None:
            run.log_params(params)

    def claim(self, framework: str, keys: list[str]) -> None:
        """Nothing to claim: no output is parsed in code."""

    def hooked(self, framework: str, version: str | None) -> None:
        """Nothing to mark."""

    def warning(self, framework: str, text: str) -> None:
        """Said on stderr by the hooks already."""

    def attach(self, framework: str, path: str) -> None:
        """Keep a checkpoint file, or the files of a checkpoint folder, as artifacts named by
        their path relative to its parent (``checkpoint-500/model.safetensors``; see
        docs/artifacts.md). A checkpoint that cannot be kept (no artifact location, a full
        disk) is one line on stderr, never the end of the training."""
        run = self._target()
        if run is None or not path or not os.path.exists(path):
            return
        name = os.path.basename(os.path.normpath(path))
        try:
            run.log_artifact(path, name)
        except Exception as exc:
            hooks().say(f"expbook: checkpoint {name} not kept: {exc}")


def autolog(run: Run | None = None) -> None:
    """Record the metrics, params and parameter count of every framework the program uses
    (Hugging Face Trainer, Lightning, Keras, XGBoost, LightGBM, scikit-learn, tqdm postfixes)
    into ``run`` (default: the run active when a value is recorded). Imports no framework: each
    hook is installed when the program imports its framework. Once per process; under
    ``expbook run`` the hooks are installed already and record into the wrapper's run.
    """
    core = hooks()
    core.install(RunSink(run))


def autolog_for(run: Run | None) -> Any:
    """An ``Autolog`` (the hooks' recorder) writing into ``run``: what the integrations use."""
    return hooks().Autolog(RunSink(run))
