"""``expbook demo``: real training, logged epoch by epoch, ending with the runs table.

A small MLP (scikit-learn's ``MLPClassifier``, one ``partial_fit`` call per epoch) learns the
bundled digits data set (8x8 images, 10 classes) for each point of a hidden-size x learning-rate
grid. Every epoch logs train/valid loss and accuracy; each run ends with a test accuracy set as a
summary value and a note, the way a person would write them in a lab log. With ``seeds`` above 1,
each configuration is trained once per seed (the network's initialisation and the order of its
batches; the data split stays fixed): repeats that ``expbook compare`` and the UI's groups turn
into means with confidence intervals.
"""

from __future__ import annotations

import time
import warnings
from typing import Any

from expbook.errors import ExpbookError

GRID = [
    {"hidden": hidden, "lr": lr} for hidden in (16, 64) for lr in (0.001, 0.01)
]  # fmt: skip
SEED = 0
BATCH_SIZE = 64


def load_data() -> dict[str, Any]:
    """Digits split 60/20/20 into train/valid/test, stratified, scaled to [0, 1]."""
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ModuleNotFoundError:
        raise ExpbookError(
            "expbook demo needs scikit-learn: pip install 'expbook[demo]'"
        ) from None
    features, labels = load_digits(return_X_y=True)
    features = features / 16.0
    x_train, x_rest, y_train, y_rest = train_test_split(
        features, labels, test_size=0.4, stratify=labels, random_state=SEED
    )
    x_valid, x_test, y_valid, y_test = train_test_split(
        x_rest, y_rest, test_size=0.5, stratify=y_rest, random_state=SEED
    )
    return {
        "train": (x_train, y_train),
        "valid": (x_valid, y_valid),
        "test": (x_test, y_test),
        "classes": sorted(set(labels.tolist())),
    }


def train(
    run: Any, data: dict[str, Any], hidden: int, lr: float, epochs: int, seed: int = SEED
) -> float:
    """Train one configuration, logging every epoch to ``run``; returns the test accuracy."""
    from sklearn.metrics import accuracy_score, log_loss
    from sklearn.neural_network import MLPClassifier

    model = MLPClassifier(
        hidden_layer_sizes=(hidden,),
        learning_rate_init=lr,
        batch_size=BATCH_SIZE,
        random_state=seed,
    )
    classes = data["classes"]
    x_train, y_train = data["train"]
    best = (-1.0, 0)
    for epoch in range(epochs):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # partial_fit warns about convergence by design
            model.partial_fit(x_train, y_train, classes=classes)
        values = {}
        for split in ("train", "valid"):
            features, labels = data[split]
            probabilities = model.predict_proba(features)
            values[f"{split}/loss"] = log_loss(labels, probabilities, labels=classes)
            values[f"{split}/acc"] = accuracy_score(labels, probabilities.argmax(axis=1))
        run.log(values, step=epoch, epoch=epoch + 1)
        best = max(best, (values["valid/acc"], epoch + 1))
    x_test, y_test = data["test"]
    test_acc = float(accuracy_score(y_test, model.predict(x_test)))
    run.summary["test/acc"] = test_acc
    run.note(f"best valid/acc {best[0]:.4f} at epoch {best[1]}; test/acc {test_acc:.4f}")
    return test_acc


def main(*, epochs: int, experiment: str, store: str | None, seeds: int = 1) -> None:
    from expbook.cli.output import console, fmt_duration
    from expbook.cli.runs import print_runs
    from expbook.tracking import Tracker

    out = console()
    data = load_data()
    tracker = Tracker(store)
    target = tracker.store()
    times = f" x {seeds} seeds" if seeds > 1 else ""
    out.print(f"expbook demo: {len(GRID)} configurations{times} x {epochs} epochs -> {target.url}")
    numbers = []
    for config, seed in ((config, SEED + s) for config in GRID for s in range(seeds)):
        params = {
            "model": {"type": "mlp", "hidden": config["hidden"], "activation": "relu"},
            "optimizer": {"name": "adam", "lr": config["lr"]},
            "batch_size": BATCH_SIZE,
            "epochs": epochs,
            "seed": seed,
        }
        name = f"mlp-h{config['hidden']}-lr{config['lr']:g}"
        if seeds > 1:
            name += f"-s{seed}"
        started = time.perf_counter()
        with tracker.start_run(  # a second of numpy: its system metrics would say nothing
            name, experiment=experiment, params=params, tags=["demo", "mlp"], system_metrics=False
        ) as run:
            test_acc = train(run, data, config["hidden"], config["lr"], epochs, seed)
        numbers.append(run.number)
        took = fmt_duration(time.perf_counter() - started)
        out.print(f"  #{run.number} {name}: test/acc {test_acc:.4f} ({took})")
    runs = target.runs(f"number >= {min(numbers)} and number <= {max(numbers)}")
    print_runs(out, runs, title=f"Runs of {experiment!r}")
    if seeds > 1:
        first, other = numbers[0], numbers[seeds]  # two configurations, each over its seeds
        out.print(f"Next: expbook compare {first} {other}   expbook ui")
    else:
        out.print(
            "Next: expbook show "
            + str(max(numbers))
            + f"   expbook diff {min(numbers)} {max(numbers)}"
        )
