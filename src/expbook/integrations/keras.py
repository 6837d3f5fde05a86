"""``ExpbookKerasCallback``: a Keras 3 callback recording into an expbook run.

    model.fit(x, y, epochs=10, callbacks=[ExpbookKerasCallback(run)])
    model.evaluate(x_test, y_test, callbacks=[ExpbookKerasCallback(run, evaluate=True)])

Logs each epoch's logs (what ``History`` keeps) at step = epoch = the epoch as Keras prints it,
``evaluate`` results as summary values ``test_<metric>``, the fit's settings (``fit.*``) and the
optimizer's config (``optimizer.*``) as params, and the parameter count as ``model.params``.
Keras does not tell callbacks where ``ModelCheckpoint`` writes: keep those files with
``run.log_artifact``. The same code as autolog's hook.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from expbook.integrations import autolog_for, hooks

if TYPE_CHECKING:
    from expbook.tracking import Run

_Base = hooks().hooks_module().keras_callback_class()


class ExpbookKerasCallback(_Base):  # type: ignore[misc, valid-type]
    def __init__(self, run: Run | None = None, *, evaluate: bool = False) -> None:
        super().__init__(autolog_for(run), evaluate)
