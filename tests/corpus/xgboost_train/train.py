"""XGBoost's native API: xgb.train with a train and a valid set, two eval metrics, verbose_eval=5.

Prints `[0]\ttrain-logloss:0.65014\ttrain-auc:0.93...\tvalid-logloss:...\tvalid-auc:...` for
rounds 0, 5, 10, ... and the last round. The truth is `evals_result` (every round); `printed`
follows XGBoost's documented rule for an integer verbose_eval: every verbose_eval-th round and the
last one.
"""

import json
import os

import numpy as np
import xgboost as xgb
from sklearn.datasets import make_classification
from sklearn.model_selection import train_test_split

ROUNDS = 30
VERBOSE_EVAL = 5

X, y = make_classification(n_samples=1000, n_features=20, n_informative=8, flip_y=0.05,
                           random_state=0)
X_train, X_valid, y_train, y_valid = train_test_split(X, y, test_size=0.2, random_state=0)
dtrain = xgb.DMatrix(X_train, label=y_train)
dvalid = xgb.DMatrix(X_valid, label=y_valid)
params = {
    "objective": "binary:logistic",
    "eval_metric": ["logloss", "auc"],
    "max_depth": 3,
    "eta": 0.1,
    "subsample": 0.8,
    "tree_method": "hist",
    "seed": 0,
    "nthread": 1,
}
print(f"training xgboost {xgb.__version__}: {len(y_train)} train rows, {len(y_valid)} valid rows")
evals_result: dict = {}
booster = xgb.train(params, dtrain, num_boost_round=ROUNDS,
                    evals=[(dtrain, "train"), (dvalid, "valid")],
                    evals_result=evals_result, verbose_eval=VERBOSE_EVAL)
print(f"done: {booster.num_boosted_rounds()} rounds")

truth_path = os.environ.get("EXPBOOK_CORPUS_TRUTH")
if truth_path:
    points = []
    for round_index in range(ROUNDS):
        # xgb.train(verbose_eval=int): every verbose_eval-th round ([0], [5], ...) and the last
        printed = round_index % VERBOSE_EVAL == 0 or round_index == ROUNDS - 1
        for data, metrics in evals_result.items():
            for metric, values in metrics.items():
                points.append({"key": f"{data}-{metric}", "step": round_index, "epoch": None,
                               "value": float(values[round_index]), "printed": printed})
    import sklearn
    truth = {
        "framework": "xgboost",
        "versions": {"xgboost": xgb.__version__, "scikit-learn": sklearn.__version__,
                     "numpy": np.__version__},
        "points": points,
        "notes": ("evals_result of xgb.train; step = the boosting round as XGBoost prints it "
                  "([0] is step 0); keys are the printed names DATA-METRIC (train-logloss). "
                  "printed follows verbose_eval=5: rounds 0, 5, ..., 25 and the last round (29). "
                  "The final 'done: 30 rounds' line and the row counts are not metrics."),
    }
    with open(truth_path, "w") as handle:
        json.dump(truth, handle)
