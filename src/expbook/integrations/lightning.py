"""``ExpbookLogger``: a PyTorch Lightning logger recording into an expbook run.

    trainer = L.Trainer(max_epochs=10, logger=ExpbookLogger(run))

Lightning hands a logger what it logs (``self.log(...)`` values at ``log_every_n_steps``, and
epoch values; ``epoch`` comes with them) and the module's ``hparams``; this logger stores them
as points and ``hparams.*`` params, the parameter count as ``model.params``, and after each
checkpoint the best and last checkpoint files as artifacts (``checkpoints=False`` to skip).
For every value logged on step, use ``expbook.autolog()`` instead, whose callback reads them
after each batch. Works with ``lightning`` and ``pytorch_lightning``.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

from expbook.integrations import autolog_for, hooks

try:
    from lightning.pytorch.loggers.logger import Logger, rank_zero_experiment
    from lightning.pytorch.utilities import rank_zero_only
except ImportError:  # the older package name
    from pytorch_lightning.loggers.logger import Logger, rank_zero_experiment
    from pytorch_lightning.utilities import rank_zero_only

if TYPE_CHECKING:
    from expbook.tracking import Run

FRAMEWORK = "lightning"


class ExpbookLogger(Logger):  # type: ignore[misc]
    def __init__(self, run: Run | None = None, *, checkpoints: bool = True) -> None:
        super().__init__()
        self._run = run
        self._log = autolog_for(run)
        self._checkpoints = checkpoints
        self._attached: dict[str, tuple[int, int]] = {}  # path -> (mtime ns, size) kept

    @property
    def name(self) -> str:
        return "expbook"

    @property
    def version(self) -> str:
        run = self._run
        return run.id if run is not None else "active"

    @property
    @rank_zero_experiment
    def experiment(self) -> Any:
        """The expbook run (or None: the active one is used)."""
        return self._run

    @rank_zero_only
    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        core = hooks()
        values = params if isinstance(params, dict) else vars(params)
        self._log.guard(FRAMEWORK, self._log.params, FRAMEWORK, core.flat(values, "hparams."))
        module = _calling_module()
        if module is not None:
            count = self._log.guard(FRAMEWORK, core.parameter_count, module)
            if count is not None:
                self._log.summary(FRAMEWORK, {"model.params": count})

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        values = {key: value for key, value in metrics.items() if key != "epoch"}
        epoch = metrics.get("epoch")
        epoch = None if epoch is None else float(epoch)
        self._log.point(FRAMEWORK, values, step=step, epoch=epoch)

    @rank_zero_only
    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        if not self._checkpoints:
            return
        for attribute in ("best_model_path", "last_model_path"):
            path = getattr(checkpoint_callback, attribute, "") or ""
            version = _version(path)
            if version is not None and self._attached.get(path) != version:
                self._attached[path] = version  # last.ckpt again when it was rewritten
                self._log.guard(FRAMEWORK, self._log.attach, FRAMEWORK, path)


def _version(path: str) -> tuple[int, int] | None:
    """A checkpoint file's (modification time, size), None when there is none."""
    try:
        info = os.stat(path) if path else None
    except OSError:
        return None
    return (info.st_mtime_ns, info.st_size) if info else None


def _calling_module() -> Any:
    """The LightningModule of the trainer that is logging the hyperparameters: Lightning
    gives loggers no model, so it is read from the caller's ``trainer`` (Lightning's
    ``_log_hyperparams(trainer)``); None if it is not there."""
    frame = sys._getframe(1)
    for _ in range(6):
        if frame is None:
            return None
        trainer = frame.f_locals.get("trainer")
        module = getattr(trainer, "lightning_module", None)
        if module is not None:
            return module
        frame = frame.f_back
    return None
