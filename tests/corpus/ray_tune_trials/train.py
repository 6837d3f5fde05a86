"""Ray Tune: a search over a tiny GRU's hidden size, layers and dropout (2 x 2 grid, dropout
sampled; 4 trials of 3 iterations, 2 at a time on 2 logical CPUs) on a synthetic sequence task.

Each trial's function trainable prints its own line per epoch on its worker, which Ray's driver
prints as `(train_gru pid=1234) epoch 1/3: loss=0.6931 val_loss=0.6925 val_acc=0.5000`, and
reports the same values with `tune.report`; the driver prints Ray Tune's status tables, each
trial's config table, and each trial's result table when it completes. RAY_DEDUP_LOGS=0 keeps
every worker line (by default Ray folds similar lines into "[repeated 4x across cluster]");
reuse_actors=True runs the trials in 2 worker processes (a pid is not a trial).

The truth is Ray's own record of each trial: `Result.metrics_dataframe` of the ResultGrid that
`Tuner.fit()` returns, one row per `tune.report` (never the program's log). NOTES below says
how several trials share one truth.
"""

import json
import os
import shutil
import tempfile

# Every worker line as printed, not "[repeated 4x across cluster]" (Ray reads it on import).
os.environ.setdefault("RAY_DEDUP_LOGS", "0")

import numpy as np  # noqa: E402
import ray  # noqa: E402
import torch  # noqa: E402
from ray import tune  # noqa: E402
from ray.tune.search.basic_variant import BasicVariantGenerator  # noqa: E402

EPOCHS = 3


def make_data(seed: int = 0) -> tuple:
    """Sequences of 12 steps, 3 features; the target is whether the running sum of feature 0
    ends above 0 (a GRU learns it in a few epochs)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(256, 12, 3)).astype("float32")
    y = (x[:, :, 0].sum(axis=1) > 0).astype("float32")
    return torch.tensor(x[:192]), torch.tensor(y[:192]), torch.tensor(x[192:]), torch.tensor(y[192:])


class GRUClassifier(torch.nn.Module):
    def __init__(self, hidden_size: int, num_layers: int, dropout: float) -> None:
        super().__init__()
        self.gru = torch.nn.GRU(3, hidden_size, num_layers=num_layers, batch_first=True,
                                dropout=dropout if num_layers > 1 else 0.0)
        self.head = torch.nn.Linear(hidden_size, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.gru(x)
        return self.head(out[:, -1]).squeeze(1)


def train_gru(config: dict) -> None:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    x, y, x_val, y_val = make_data()
    model = GRUClassifier(config["hidden_size"], config["num_layers"], config["dropout"])
    optimizer = torch.optim.Adam(model.parameters(), lr=config["lr"])
    loss_fn = torch.nn.BCEWithLogitsLoss()
    for epoch in range(1, EPOCHS + 1):
        model.train()
        total = 0.0
        for start in range(0, len(x), 32):
            optimizer.zero_grad()
            loss = loss_fn(model(x[start:start + 32]), y[start:start + 32])
            loss.backward()
            optimizer.step()
            total += loss.item() * len(x[start:start + 32])
        model.eval()
        with torch.no_grad():
            logits = model(x_val)
            val_loss = loss_fn(logits, y_val).item()
            val_acc = ((logits > 0).float() == y_val).float().mean().item()
        train_loss = total / len(x)
        print(f"epoch {epoch}/{EPOCHS}: loss={train_loss:.4f} val_loss={val_loss:.4f} "
              f"val_acc={val_acc:.4f}", flush=True)
        tune.report({"loss": train_loss, "val_loss": val_loss, "val_acc": val_acc})


def main() -> None:
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False)
    storage = tempfile.mkdtemp(prefix="ray-tune-corpus-")
    tuner = tune.Tuner(
        train_gru,
        param_space={
            "hidden_size": tune.grid_search([8, 16]),
            "num_layers": tune.grid_search([1, 2]),
            "dropout": tune.uniform(0.0, 0.3),
            "lr": 0.01,
        },
        tune_config=tune.TuneConfig(num_samples=1, metric="val_loss", mode="min",
                                    search_alg=BasicVariantGenerator(random_state=7),
                                    reuse_actors=True),
        run_config=tune.RunConfig(name="gru_tune", storage_path=storage,
                                  stop={"training_iteration": EPOCHS}),
    )
    results = tuner.fit()
    best = results.get_best_result()
    print(f"best config: {best.config}, best val_loss: {best.metrics['val_loss']:.4f}")
    write_truth(results, best)
    ray.shutdown()
    shutil.rmtree(storage, ignore_errors=True)


def write_truth(results, best) -> None:
    """The truth from Ray's records: each trial's `metrics_dataframe` (one row per report)."""
    truth_path = os.environ.get("EXPBOOK_CORPUS_TRUTH")
    if not truth_path:
        return
    points, trials = [], {}
    for result in sorted(results, key=lambda r: r.metrics["trial_id"]):
        trial = result.metrics["trial_id"]
        trials[trial] = result.config
        frame = result.metrics_dataframe.sort_values("training_iteration")
        last = int(frame["training_iteration"].max())
        for row in frame.to_dict("records"):
            iteration = int(row["training_iteration"])
            for key in ("loss", "val_loss", "val_acc"):  # the worker's line, every report
                points.append({"key": key, "step": iteration, "epoch": iteration,
                               "value": float(row[key]), "printed": True, "trial": trial})
            for key in ("time_this_iter_s", "time_total_s"):  # the trial's result table
                points.append({"key": key, "step": iteration, "epoch": iteration,
                               "value": float(row[key]), "printed": iteration == last,
                               "trial": trial})
    points.append({"key": "best_val_loss", "step": None, "epoch": None,
                   "value": float(best.metrics["val_loss"]), "printed": True,
                   "trial": best.metrics["trial_id"]})
    truth = {
        "framework": "ray",
        "versions": {"ray": ray.__version__, "torch": torch.__version__},
        "trials": trials,
        "points": points,
        "notes": NOTES,
    }
    with open(truth_path, "w") as handle:
        json.dump(truth, handle)


NOTES = (
    "Several trials in one output: 4 trials (hidden_size x num_layers grid, dropout sampled), "
    "2 at a time, their worker lines interleaved. Each point is one trial's report (its "
    "`trial` id; `trials` maps ids to configs); keys are Ray's metric names without the trial, "
    "as a parser sees them once the '(train_gru pid=N)' prefix is stripped (with "
    "reuse_actors=True one worker pid runs several trials). step = epoch = Ray's "
    "training_iteration (the worker prints it as 'epoch 1/3'; the tables as "
    "'training_iteration 3' and 'iter 3'). Printed: loss, val_loss, val_acc of every report "
    "(the worker's line, 4 decimals; the last report again in the trial's result table, 5 "
    "significant digits, and in the closing status table, 6); time_this_iter_s and "
    "time_total_s of a trial's last report only (its result table; the status table prints "
    "time_total_s as 'total time (s)'); best_val_loss: the program's last line, from "
    "ResultGrid.get_best_result(). Not metrics: the config values in the status tables and "
    "the 'config' tables (dropout, hidden_size, num_layers, lr), 'iter', 'Number of trials "
    "4', resource usage '2.0/2 CPUs', times of day, 'Total running time: 21s', the 'Current "
    "best trial ... with val_loss=...' line (a repeat of a trial's last val_loss)."
)


if __name__ == "__main__":
    main()
