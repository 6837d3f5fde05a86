"""Autolog with the real frameworks: the corpus programs of tests/corpus/ under ``expbook run``
(autolog on), scored against the truth each writes from its framework's own records, and the
in-code integrations.

Needs ``.venv-frameworks`` (torch, transformers, lightning, keras, xgboost, lightgbm,
scikit-learn, tqdm; ``make corpus`` makes it): skipped without it, as in CI, which does not
install those frameworks (docs/autolog.md says which tests run where).
"""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

import expbook

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import bench_autolog

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not bench_autolog.FRAMEWORKS_PYTHON.exists(), reason="needs .venv-frameworks"
    ),
]
SRC = Path(__file__).resolve().parent.parent / "src"


@pytest.mark.parametrize("framework", sorted(bench_autolog.PROGRAMS))
def test_autolog_captures_the_frameworks_own_records(framework: str, tmp_path: Path) -> None:
    """>= 99 % of the framework's records (printed or not) at the right step/epoch, nothing
    stored twice (the printed copies of hooked keys are dropped)."""
    result = bench_autolog.run_program(bench_autolog.PROGRAMS[framework], tmp_path)
    score = bench_autolog.score(result["truth"], result["points"], result["summaries"])
    assert score["captured"] >= 0.99 * score["records"], score
    assert score["placed"] == score["captured"], score
    assert score["duplicates"] == 0, score
    assert result["summary"]["autolog"] == [framework]
    assert result["params"], "no params from the framework"


def test_autolog_off_leaves_the_output_to_the_parsers(tmp_path: Path) -> None:
    result = bench_autolog.run_program("xgboost_train", tmp_path, autolog=False)
    assert result["summary"]["autolog"] == []
    steps = sorted({p.step for p in result["points"] if p.key.endswith("logloss")})
    assert len(steps) < 30  # verbose_eval=5: only the printed rounds


INTEGRATIONS = """
import sys
sys.path[:0] = [{src!r}]
sys.path.append({site!r})  # expbook's own dependencies, after the frameworks'
import os
os.environ["KERAS_BACKEND"] = "torch"
import numpy as np, torch, keras, lightning as L, xgboost as xgb
import expbook
from expbook.integrations.keras import ExpbookKerasCallback
from expbook.integrations.lightning import ExpbookLogger
from torch.utils.data import DataLoader, TensorDataset

store = sys.argv[1]
x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
y = (x[:, 0] > 0).astype("float32")

with expbook.start_run(name="keras", store=store, capture=False) as run:
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy")
    history = model.fit(x, y, epochs=3, verbose=0, callbacks=[ExpbookKerasCallback(run)])
    print("keras", history.history["loss"])

class M(L.LightningModule):
    def __init__(self, lr=0.1):
        super().__init__(); self.save_hyperparameters(); self.layer = torch.nn.Linear(4, 1)
    def training_step(self, batch, i):
        loss = torch.nn.functional.mse_loss(self.layer(batch[0]).squeeze(1), batch[1])
        self.log("train_loss", loss)
        return loss
    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)

with expbook.start_run(name="lightning", store=store, capture=False) as run:
    data = DataLoader(TensorDataset(torch.tensor(x), torch.tensor(y)), batch_size=8)
    trainer = L.Trainer(max_epochs=2, logger=ExpbookLogger(run), log_every_n_steps=2,
                        enable_progress_bar=False, default_root_dir=sys.argv[2])
    trainer.fit(M(), data)

expbook.autolog()
with expbook.start_run(name="xgboost", store=store, capture=False) as run:
    booster = xgb.train({{"objective": "binary:logistic"}}, xgb.DMatrix(x, label=y), 4,
                        evals=[(xgb.DMatrix(x, label=y), "train")], verbose_eval=False)
"""


def test_the_integrations_record_into_a_run(tmp_path: Path) -> None:
    script = tmp_path / "integrations.py"
    site = sysconfig.get_paths()["purelib"]
    script.write_text(textwrap.dedent(INTEGRATIONS.format(src=str(SRC), site=site)))
    store = str(tmp_path / "s.db")
    done = subprocess.run(
        [str(bench_autolog.FRAMEWORKS_PYTHON), str(script), store, str(tmp_path / "lightning")],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    keras_loss = json.loads(done.stdout.split("keras", 1)[1].splitlines()[0].strip())
    with expbook.open_store(store) as opened:
        keras_run, lightning_run, xgboost_run = (opened.run(n) for n in ("keras", "lightning",
                                                                         "xgboost"))  # fmt: skip
        loss = opened.series(keras_run, "loss")
        assert list(loss.values) == keras_loss and list(loss.steps) == [1, 2, 3]
        assert keras_run.metrics["model.params"].value == 5
        assert (
            keras_run.params["fit.epochs"] == 3 and "optimizer.learning_rate" in keras_run.params
        )
        assert lightning_run.params["hparams.lr"] == 0.1
        assert lightning_run.metrics["model.params"].value == 5
        assert len(opened.series(lightning_run, "train_loss").steps) > 0
        kept = [a.name for a in opened.list_artifacts(lightning_run.id)]
        assert any(name.endswith(".ckpt") for name in kept), kept
        logloss = opened.series(xgboost_run, "train-logloss")
        assert list(logloss.steps) == [0, 1, 2, 3]
        assert xgboost_run.params["xgboost.objective"] == "binary:logistic"
