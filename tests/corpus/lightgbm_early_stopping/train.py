"""LightGBM's lgb.train with a train and a valid set, log_evaluation(10), early_stopping(20) and
record_evaluation, at LightGBM's default verbosity (its `[LightGBM] [Info]` lines are printed).

Prints `Training until validation scores don't improve for 20 rounds`, then every 10th iteration
`[10]\ttrain's binary_logloss: 0.4\tvalid's binary_logloss: 0.5`, then
`Early stopping, best iteration is:` and the best iteration's line. The truth is
`record_evaluation` (every iteration, 1-based as printed).
"""

import json
import os

import lightgbm as lgb
import numpy as np
from sklearn.datasets import make_classification
from sklearn.model_selection import train_test_split

PERIOD = 10
PATIENCE = 20

X, y = make_classification(n_samples=1000, n_features=20, n_informative=6, flip_y=0.15,
                           class_sep=0.8, random_state=1)
X_train, X_valid, y_train, y_valid = train_test_split(X, y, test_size=0.2, random_state=1)
train = lgb.Dataset(X_train, label=y_train)
valid = lgb.Dataset(X_valid, label=y_valid, reference=train)
params = {
    "objective": "binary",
    "metric": "binary_logloss",
    "learning_rate": 0.1,
    "num_leaves": 31,
    "seed": 1,
    "deterministic": True,
    "num_threads": 1,
}
results: dict = {}
booster = lgb.train(params, train, num_boost_round=500, valid_sets=[train, valid],
                    valid_names=["train", "valid"],
                    callbacks=[lgb.log_evaluation(PERIOD), lgb.early_stopping(PATIENCE),
                               lgb.record_evaluation(results)])
evaluated = len(results["valid"]["binary_logloss"])
print(f"stopped after {evaluated} iterations; keeping the best, {booster.best_iteration}")

truth_path = os.environ.get("EXPBOOK_CORPUS_TRUTH")
if truth_path:
    best = booster.best_iteration  # 1-based, as the early-stopping line prints it
    points = []
    iterations = len(next(iter(next(iter(results.values())).values())))
    for index in range(iterations):
        iteration = index + 1
        # log_evaluation(period) prints when iteration % period == 0; early stopping reprints the
        # best iteration's line after "Early stopping, best iteration is:"
        printed = iteration % PERIOD == 0 or iteration == best
        for data, metrics in results.items():
            for metric, values in metrics.items():
                points.append({"key": f"{data}_{metric}", "step": iteration, "epoch": None,
                               "value": float(values[index]), "printed": printed})
    import sklearn
    truth = {
        "framework": "lightgbm",
        "versions": {"lightgbm": lgb.__version__, "scikit-learn": sklearn.__version__,
                     "numpy": np.__version__},
        "points": points,
        "notes": ("record_evaluation of lgb.train; step = the iteration as LightGBM prints it "
                  "(1-based: [10] is step 10). Keys are DATASET_METRIC for the printed "
                  "\"train's binary_logloss\" (train_binary_logloss, valid_binary_logloss). "
                  "printed: iterations that log_evaluation(10) printed (multiples of 10) and the "
                  f"best iteration ({best}), which early stopping prints again after 'Early "
                  "stopping, best iteration is:' -- one truth point per iteration, so a "
                  "reprinted best iteration that is also a multiple of 10 is one point, and "
                  "storing it again at a later step is a false point. Recording runs until the "
                  "iteration that triggered early stopping (best + 20). Not metrics: the "
                  "[LightGBM] [Info] lines (Number of positive/negative, Total Bins, number of "
                  "data points, start training from score) and the final 'best iteration' line."),
    }
    with open(truth_path, "w") as handle:
        json.dump(truth, handle)
