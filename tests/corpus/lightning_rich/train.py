"""PyTorch Lightning on synthetic data with the Rich progress bar (``--progress-bar rich``, the
default here) or its default TQDM bar (``--progress-bar tqdm``), then ``trainer.test``.

A small MLP classifies 16-dimensional points (two noisy Gaussian blobs) for 3 epochs:
10 training batches and 4 validation batches per epoch. It logs ``train_loss`` (on_step and
on_epoch, so Lightning shows ``train_loss_step`` and ``train_loss_epoch``), ``val_loss`` and
``val_acc`` in the progress bar, then ``trainer.test`` prints its results table.

The truth comes from Lightning itself: a callback reads ``trainer.progress_bar_metrics`` at every
point where the bar is given new metrics (after each training batch, after validation, at the
end of each training epoch) and ``trainer.callback_metrics`` where a value is produced; the test
metrics are the dict ``trainer.test`` returns. See ``NOTES`` for numbering and the printed rule.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, RichProgressBar, TQDMProgressBar
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

BAR = sys.argv[sys.argv.index("--progress-bar") + 1] if "--progress-bar" in sys.argv else "rich"
assert BAR in ("rich", "tqdm"), f"--progress-bar {BAR}: rich or tqdm"
# On a terminal Rich redraws from a thread (Lightning's refresh_rate=100: every 10 ms, when a
# redraw was asked for), so a state the bar shows for less than that may never be drawn; one
# shown for 2.5 refresh periods is.
SURELY_DRAWN_S = 0.025


class Classifier(L.LightningModule):
    def __init__(self, lr: float = 0.05) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch, batch_idx):  # type: ignore[no-untyped-def]
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss, prog_bar=True, on_step=True, on_epoch=True)
        return loss

    def _evaluate(self, batch, stage: str) -> None:  # type: ignore[no-untyped-def]
        x, y = batch
        logits = self(x)
        self.log(f"{stage}_loss", F.cross_entropy(logits, y), prog_bar=True)
        self.log(f"{stage}_acc", (logits.argmax(1) == y).float().mean(), prog_bar=True)

    def validation_step(self, batch, batch_idx):  # type: ignore[no-untyped-def]
        self._evaluate(batch, "val")

    def test_step(self, batch, batch_idx):  # type: ignore[no-untyped-def]
        self._evaluate(batch, "test")

    def configure_optimizers(self):  # type: ignore[no-untyped-def]
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


def blobs(n: int, generator: torch.Generator) -> TensorDataset:
    y = torch.randint(0, 2, (n,), generator=generator)
    centre = torch.zeros(n, 16)
    centre[:, 0] = y.float() * 2 - 1
    x = centre * 0.6 + torch.randn(n, 16, generator=generator)
    return TensorDataset(x, y)


class Record:
    """One value the framework produced: its key, where it belongs, and when the bar showed it."""

    def __init__(self, key: str, value: float, step: int | None, epoch: int | None) -> None:
        self.key, self.value, self.step, self.epoch = key, value, step, epoch
        self.shown: list[float] = []  # monotonic times of the displays that showed it
        self.superseded: float | None = None  # the first display that showed a newer value


class BarTruth(Callback):
    """Lightning's own records, and which of them the progress bar showed.

    A value is produced when Lightning computes it: ``*_step`` metrics after each training
    batch (at ``trainer.global_step``), validation metrics after each validation run, and
    ``*_epoch`` metrics at the end of each training epoch. At every point where the progress
    bar is given new metrics, this callback reads ``trainer.progress_bar_metrics`` and notes,
    for each key, that its current record was shown then.
    """

    def __init__(self) -> None:
        self.records: list[Record] = []
        self.current: dict[str, Record] = {}
        self.displays: list[float] = []

    def _produce(self, trainer: L.Trainer, keys: list[str], step: int | None, epoch: int) -> None:
        metrics = trainer.progress_bar_metrics
        for key in keys:
            if key in metrics:
                value = float(metrics[key])
                callback_value = float(trainer.callback_metrics[key])
                assert abs(value - callback_value) < 1e-7, (key, value, callback_value)
                record = Record(key, value, step, epoch)
                self.records.append(record)
                self.current[key] = record

    def _display(self, trainer: L.Trainer) -> None:
        now = time.monotonic()
        self.displays.append(now)
        for key, value in trainer.progress_bar_metrics.items():
            record = self.current.get(key)
            assert record is not None and abs(record.value - float(value)) < 1e-7, key
            if self._visible(trainer, key, float(value)):
                record.shown.append(now)
        for record in self.records:
            replaced = self.current[record.key] is not record
            if record.shown and record.superseded is None and replaced:
                record.superseded = now

    @staticmethod
    def _visible(trainer: L.Trainer, key: str, value: float) -> bool:
        """Whether the bar's line, as the bar renders it now, holds ``key=value`` whole.

        tqdm cuts its line at the width of the terminal (dynamic_ncols), which can cut the last
        items of the postfix off; Rich wraps its metrics column instead of cutting it."""
        bar = trainer.progress_bar_callback
        if not isinstance(bar, TQDMProgressBar):
            return True
        line = str(bar.train_progress_bar)  # what tqdm's display() writes
        return f"{key}={bar.train_progress_bar.format_num(value)}" in line

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):  # type: ignore[no-untyped-def]
        keys = [k for k in trainer.progress_bar_metrics if k.endswith("_step")]
        self._produce(trainer, keys, trainer.global_step, trainer.current_epoch)
        self._display(trainer)

    def on_validation_end(self, trainer, pl_module):  # type: ignore[no-untyped-def]
        if trainer.sanity_checking:
            return
        keys = [k for k in trainer.progress_bar_metrics if k.startswith("val_")]
        self._produce(trainer, keys, None, trainer.current_epoch)
        self._display(trainer)

    def on_train_epoch_end(self, trainer, pl_module):  # type: ignore[no-untyped-def]
        keys = [k for k in trainer.progress_bar_metrics if k.endswith("_epoch")]
        self._produce(trainer, keys, None, trainer.current_epoch)
        self._display(trainer)

    def shown_for(self, record: Record) -> float | None:
        """Seconds the bar showed this record, None while it was still shown at the end."""
        if not record.shown or record.superseded is None:
            return None
        return round(record.superseded - record.shown[0], 4)

    def printed(self, record: Record, terminal: bool) -> bool:
        """Whether the bar drew this record (the rule is in NOTES)."""
        if not record.shown:
            return False
        final = record.superseded is None  # still shown when the bar was closed
        if BAR == "tqdm":
            return True
        if not terminal:
            return final
        return final or record.superseded - record.shown[0] >= SURELY_DRAWN_S


NOTES = {
    "rich": (
        "Records: Lightning's progress_bar_metrics (checked equal to callback_metrics), read by a "
        "callback when each value is produced: train_loss_step after every training batch at "
        "step=trainer.global_step (1..30, 10 batches an epoch), val_loss/val_acc after each "
        "validation run and train_loss_epoch at each training epoch's end (step null, "
        "epoch=trainer.current_epoch, the number Lightning prints: 'Epoch 0/2' is epoch 0); "
        "test_loss/test_acc are the dict trainer.test returns (step and epoch null). Printed: "
        "the RichProgressBar (leave=False) is one Rich Live display for the whole fit, given new "
        "metrics after each training batch, after validation and at each epoch end. In pipe mode "
        "Rich draws a Live display once, when it stops at the end of fit, so only the values of "
        "that final state are printed (the last train_loss_step, the last epoch's val_loss, "
        "val_acc and train_loss_epoch); no other value reaches the output. On a terminal Rich "
        "redraws from a thread at most every 10 ms (refresh_rate=100) when asked to, so a value "
        f"counts as printed when the bar showed it for at least {SURELY_DRAWN_S} s (shown_s: "
        "seconds from the display that first showed it to the one that replaced it) or in its "
        "final state; a value shown for less may or may not have been drawn and is not counted "
        "(printed false; a parser that captures it still scores it as a true point). The test "
        "table is printed in both modes. The model summary's parameter counts and the bar's "
        "v_num are not metrics."
    ),
    "tqdm": (
        "Records: Lightning's progress_bar_metrics (checked equal to callback_metrics), read by a "
        "callback when each value is produced: train_loss_step after every training batch at "
        "step=trainer.global_step (1..30, 10 batches an epoch; the bar shows the batch in the "
        "epoch, n/10), val_loss/val_acc after each validation run and train_loss_epoch at each "
        "training epoch's end (step null, epoch=trainer.current_epoch, the number Lightning "
        "prints: 'Epoch 0' is epoch 0); test_loss/test_acc are the dict trainer.test returns "
        "(step and epoch null). Printed: TQDMProgressBar (refresh_rate=1) calls set_postfix with "
        "the progress bar metrics after every training batch, after validation and at each "
        "epoch end, and tqdm writes every such refresh to the stream, in a pipe as on a terminal "
        "('\\r' and the redrawn line), so a value is printed when the bar's line as tqdm "
        "rendered it (str(bar), what its display() writes) held 'key=value' whole at one of "
        "those refreshes. On the 120-column terminal tqdm cuts the line at 119 characters "
        "(dynamic_ncols), which cuts train_loss_epoch, the last item, off every line: it is "
        "printed in pipe mode only. The test table is printed in both modes. The model "
        "summary's parameter counts and the bar's v_num are not metrics."
    ),
}


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="lightning-corpus-") as root:  # the CSVLogger's files
        run(root)


def run(root: str) -> None:
    L.seed_everything(7)
    generator = torch.Generator().manual_seed(7)
    train, val, test = blobs(640, generator), blobs(256, generator), blobs(256, generator)
    truth = BarTruth()
    bar = RichProgressBar() if BAR == "rich" else TQDMProgressBar()
    trainer = L.Trainer(
        max_epochs=3,
        accelerator="cpu",
        devices=1,
        callbacks=[bar, truth],
        log_every_n_steps=5,
        default_root_dir=root,
        deterministic=True,
    )
    model = Classifier()
    trainer.fit(
        model,
        DataLoader(train, batch_size=64, shuffle=True, generator=torch.Generator().manual_seed(1)),
        DataLoader(val, batch_size=64),
    )
    results = trainer.test(model, DataLoader(test, batch_size=64))

    terminal = sys.stdout.isatty()
    points = [
        {"key": r.key, "step": r.step, "epoch": r.epoch, "value": r.value,
         "printed": truth.printed(r, terminal), "shown_s": truth.shown_for(r)}
        for r in truth.records
    ]  # fmt: skip
    for key, value in results[0].items():
        points.append({"key": key, "step": None, "epoch": None, "value": float(value),
                       "printed": True, "shown_s": None})  # fmt: skip
    path = os.environ.get("EXPBOOK_CORPUS_TRUTH")
    if path:
        import lightning

        versions = {"lightning": lightning.__version__, "torch": torch.__version__}
        if BAR == "rich":
            from importlib.metadata import version

            versions["rich"] = version("rich")
        else:
            import tqdm

            versions["tqdm"] = tqdm.__version__
        with open(path, "w", encoding="utf-8") as handle:
            json.dump({"framework": "lightning", "versions": versions, "points": points,
                       "notes": NOTES[BAR]}, handle, indent=1)  # fmt: skip


if __name__ == "__main__":
    main()
