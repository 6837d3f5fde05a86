"""``ExpbookCallback``: a Hugging Face ``TrainerCallback`` recording into an expbook run.

    trainer = Trainer(model, args, ..., callbacks=[ExpbookCallback(run)])

Logs every ``on_log`` dict at ``state.global_step`` (with its ``epoch``), the TrainingArguments
that differ from their defaults as ``args.*`` params, the model config's changes as
``model.config.*``, the parameter count as ``model.params``, and each checkpoint folder's files
as artifacts (``checkpoints=False`` to skip). The same code as autolog's hook.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from expbook.integrations import autolog_for, hooks

if TYPE_CHECKING:
    from expbook.tracking import Run

_Base = hooks().hooks_module().hf_callback_class()


class ExpbookCallback(_Base):  # type: ignore[misc, valid-type]
    def __init__(self, run: Run | None = None, *, checkpoints: bool = True) -> None:
        super().__init__(autolog_for(run), checkpoints)
