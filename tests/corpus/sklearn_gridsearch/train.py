"""scikit-learn GridSearchCV(SVC(), param_grid, cv=3, verbose=3): one line per fit,
`[CV 1/3] END ..............C=0.1, gamma=scale;, score=0.850 total time=   0.0s`.

The truth is `cv_results_`: `split{fold}_test_score` of every candidate. The printed
parameters (`C=0.1`, `gamma=scale`) and `total time` are not metrics.
"""

import json
import os

import numpy as np
import sklearn
from sklearn.datasets import make_classification
from sklearn.model_selection import GridSearchCV
from sklearn.svm import SVC

X, y = make_classification(n_samples=300, n_features=10, n_informative=5, flip_y=0.05,
                           random_state=4)
param_grid = {"C": [0.1, 1, 10], "gamma": ["scale", 0.01]}
search = GridSearchCV(SVC(random_state=4), param_grid, cv=3, verbose=3)
search.fit(X, y)
print(f"best params: {search.best_params_}, best score: {search.best_score_:.3f}")

truth_path = os.environ.get("EXPBOOK_CORPUS_TRUTH")
if truth_path:
    results = search.cv_results_
    n_splits = search.n_splits_
    points = []
    # sequential GridSearchCV (n_jobs=None) fits candidate by candidate, folds inside:
    # fit number candidate * n_splits + fold (0-based) is the order of the [CV f/3] lines
    for candidate in range(len(results["params"])):
        for fold in range(n_splits):
            points.append({"key": "score", "step": candidate * n_splits + fold, "epoch": None,
                           "value": float(results[f"split{fold}_test_score"][candidate]),
                           "printed": True})
    points.append({"key": "best_score", "step": None, "epoch": None,
                   "value": float(search.best_score_), "printed": True})
    truth = {
        "framework": "scikit-learn",
        "versions": {"scikit-learn": sklearn.__version__, "numpy": np.__version__},
        "points": points,
        "notes": ("GridSearchCV(cv=3, verbose=3), sequential. 'score': cv_results_ "
                  "split{fold}_test_score per candidate, step = the order of the CV fit, "
                  "candidate_index * n_splits + fold_index (0-based; the line '[CV 2/3] ...' of "
                  "the second candidate is step 4); printed with 3 decimals. 'best_score': "
                  "best_score_ (mean test score of the best candidate), printed once at the end "
                  "by the program, no step. Not metrics: the parameters in each line (C=0.1, "
                  "gamma=scale / gamma=0.01), 'total time', the fold counter [CV 1/3], "
                  "'Fitting 3 folds for each of 6 candidates, totalling 18 fits', the best "
                  "params dict."),
    }
    with open(truth_path, "w") as handle:
        json.dump(truth, handle)
