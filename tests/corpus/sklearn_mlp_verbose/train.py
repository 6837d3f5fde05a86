"""scikit-learn estimators with verbose output: MLPClassifier(verbose=True, early_stopping=True)
and GradientBoostingClassifier(verbose=1), one after the other in one program.

MLPClassifier prints `Iteration 1, loss = 0.69314718` and `Validation score: 0.850000` per
iteration, and a stopping message (or a ConvergenceWarning on stderr at max_iter).
GradientBoostingClassifier prints a table `Iter  Train Loss  Remaining Time` with rows for
iterations 1-10, then every 10th (verbose=1 lowers the frequency by powers of ten).
The truth is the estimators' own records: `loss_curve_`, `validation_scores_`, `train_score_`.
"""

import json
import os
import warnings

import numpy as np
import sklearn
from sklearn.datasets import make_classification
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler

X, y = make_classification(n_samples=1200, n_features=20, n_informative=10, flip_y=0.05,
                           random_state=3)
X = StandardScaler().fit_transform(X)

print("== MLPClassifier")
mlp = MLPClassifier(hidden_layer_sizes=(32,), max_iter=30, early_stopping=True,
                    validation_fraction=0.2, n_iter_no_change=5, learning_rate_init=0.01,
                    verbose=True, random_state=3)
with warnings.catch_warnings():
    warnings.simplefilter("default")  # a ConvergenceWarning, if any, goes to stderr as usual
    mlp.fit(X, y)
print(f"MLP stopped after {mlp.n_iter_} iterations")

print("== GradientBoostingClassifier")
gb = GradientBoostingClassifier(n_estimators=100, max_depth=3, learning_rate=0.1, verbose=1,
                                random_state=3)
gb.fit(X, y)


def gb_printed(n_estimators: int) -> list[bool]:
    """Which iterations verbose=1 prints (sklearn.ensemble._gb.VerboseReporter: a row when
    (i + 1) % verbose_mod == 0, verbose_mod starting at 1 and multiplied by 10 once i + 1
    reaches 10 * verbose_mod -- "the more trees the lower the frequency")."""
    printed, mod = [], 1
    for i in range(n_estimators):
        shown = (i + 1) % mod == 0
        printed.append(shown)
        if shown and (i + 1) // (mod * 10) > 0:
            mod *= 10
    return printed


truth_path = os.environ.get("EXPBOOK_CORPUS_TRUTH")
if truth_path:
    points = []
    for index, loss in enumerate(mlp.loss_curve_):
        points.append({"key": "loss", "step": index + 1, "epoch": None, "value": float(loss),
                       "printed": True})
    for index, score in enumerate(mlp.validation_scores_):
        points.append({"key": "validation_score", "step": index + 1, "epoch": None,
                       "value": float(score), "printed": True})
    for index, (loss, shown) in enumerate(zip(gb.train_score_, gb_printed(gb.n_estimators_))):
        points.append({"key": "train_loss", "step": index + 1, "epoch": None,
                       "value": float(loss), "printed": shown})
    truth = {
        "framework": "scikit-learn",
        "versions": {"scikit-learn": sklearn.__version__, "numpy": np.__version__},
        "points": points,
        "notes": ("Two estimators in one program. MLPClassifier: loss_curve_ as 'loss' and "
                  "validation_scores_ as 'validation_score' (printed 'Validation score: ...'), "
                  "step = the iteration as printed (1-based), every iteration printed. "
                  "GradientBoostingClassifier(verbose=1): train_score_ as 'train_loss' (the "
                  "printed column 'Train Loss'), step = the 'Iter' column (1-based); printed for "
                  "iterations 1-10 and 20, 30, ..., 100 (VerboseReporter's verbose_mod rule). Its "
                  "steps restart at 1 after the MLP's. Not metrics: 'Remaining Time' (e.g. "
                  "0.12s), the MLP's stopping message (tol=0.000100, 5 consecutive epochs), the "
                  "'stopped after N iterations' line."),
    }
    with open(truth_path, "w") as handle:
        json.dump(truth, handle)
