"""expbook's framework hooks, one per framework (see ``_expbook_autolog``, which loads this
module when the first watched module is imported and sets ``core`` to itself).

Standard library only; each framework is imported only by its own hook, once the program has
imported it. Every hook hands what it sees to ``log`` (an ``Autolog``) and never changes what the
framework does: calls, return values and exceptions pass through untouched.
"""

import os
import sys

core = globals().get("core")  # the _expbook_autolog module: set before this one runs


# --- Hugging Face Trainer ------------------------------------------------------------------------

HF = "transformers"
_HF_POSITIONS = ("epoch", "step")


_classes = {}  # callback classes, made once each framework is imported


def hf_callback(log, checkpoints=False):
    return hf_callback_class()(log, checkpoints)


def hf_callback_class():
    """A ``TrainerCallback`` class, taking ``(log, checkpoints)``, writing to ``log``:
    ``on_log`` dicts as points at ``state.global_step`` and their ``epoch``; the
    TrainingArguments that differ from their defaults as ``args.*`` params, the model config's
    as ``model.config.*``, the parameter count as ``model.params``; checkpoints (``on_save``)
    attached when ``checkpoints``."""
    if "hf" in _classes:
        return _classes["hf"]
    from transformers import TrainerCallback

    class ExpbookTrainerCallback(TrainerCallback):
        def __init__(self, log, checkpoints=False):
            self.log = log
            self.checkpoints = checkpoints

        def on_train_begin(self, args, state, control, model=None, **kwargs):
            self.log.guard(HF, self._begin, args, model)

        def _begin(self, args, model):
            self.log.params(HF, hf_params(args, model))
            count = core.parameter_count(model) if model is not None else None
            if count is not None:
                self.log.summary(HF, {"model.params": count})

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs:
                self.log.guard(HF, self._log, state, logs)

        def _log(self, state, logs):
            values = {k: v for k, v in logs.items() if k not in _HF_POSITIONS}
            epoch = logs.get("epoch", state.epoch)
            self.log.point(HF, values, step=int(state.global_step), epoch=core.number(epoch))

        def on_save(self, args, state, control, **kwargs):
            if self.checkpoints:
                folder = os.path.join(args.output_dir, f"checkpoint-{state.global_step}")
                self.log.guard(HF, self.log.attach, HF, folder)

    _classes["hf"] = ExpbookTrainerCallback
    return ExpbookTrainerCallback


def hf_params(args, model):
    import dataclasses

    params = {}
    if dataclasses.is_dataclass(args):
        for field in dataclasses.fields(args):
            if not field.init or field.name.startswith("_"):
                continue
            value = getattr(args, field.name, None)
            default = field.default
            if default is dataclasses.MISSING or core.plain(value) != core.plain(default):
                params["args." + field.name] = core.plain(value)
    config = getattr(model, "config", None)
    diff = getattr(config, "to_diff_dict", None)
    if callable(diff):
        params.update(core.flat(diff(), "model.config."))
    return params


def hook_transformers(log, module):
    trainer_class = module.Trainer
    original = trainer_class.__init__

    def __init__(self, *args, **kwargs):
        original(self, *args, **kwargs)
        log.guard(HF, _add_hf_callback, log, self)

    trainer_class.__init__ = __init__
    log.hooked(HF, "transformers")


def _add_hf_callback(log, trainer):
    # First in the list: our on_log writes before the progress/printer callback prints.
    trainer.callback_handler.callbacks.insert(0, hf_callback(log))


# --- PyTorch Lightning ---------------------------------------------------------------------------

LIGHTNING = "lightning"


def lightning_callback(log, package):
    """A Lightning ``Callback`` writing to ``log``: metrics logged on step at
    ``trainer.global_step`` after each training batch, validation metrics after each validation
    run of ``fit`` and epoch metrics after each training epoch (at the global step, with
    ``trainer.current_epoch``); ``hparams.*`` params and ``model.params``."""
    base = __import__(package + ".callbacks", fromlist=["Callback"]).Callback

    class ExpbookLightningCallback(base):
        def __init__(self):
            self._seen = {}  # key -> id of the value last recorded (new tensor per log call)

        def on_fit_start(self, trainer, pl_module):
            log.guard(LIGHTNING, self._start, trainer, pl_module)

        def _start(self, trainer, pl_module):
            log.params(LIGHTNING, lightning_params(trainer, pl_module))
            count = core.parameter_count(pl_module)
            if count is not None:
                log.summary(LIGHTNING, {"model.params": count})

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            log.guard(LIGHTNING, self._step, trainer)

        def _step(self, trainer):
            values = {}
            for name, metric in _lightning_logged(trainer, on_step=True):
                cache = metric._forward_cache
                if cache is not None and self._seen.get(name) is not id(cache):
                    self._seen[name] = id(cache)
                    values[name] = cache
            self._emit(trainer, values)

        def on_validation_end(self, trainer, pl_module):
            if getattr(trainer, "sanity_checking", False) or not _fitting(trainer):
                return
            log.guard(LIGHTNING, self._epoch, trainer, "validation")

        def on_train_epoch_end(self, trainer, pl_module):
            log.guard(LIGHTNING, self._epoch, trainer, "training")

        def _epoch(self, trainer, stage):
            loop = trainer.fit_loop
            if stage == "validation":
                loop = loop.epoch_loop.val_loop
            metrics = trainer.callback_metrics
            names = [name for name, _ in _lightning_logged(trainer, on_step=False, loop=loop)]
            self._emit(trainer, {name: metrics[name] for name in names if name in metrics})

        def _emit(self, trainer, values):
            if values:
                log.point(LIGHTNING, values, step=int(trainer.global_step),
                          epoch=float(trainer.current_epoch))  # fmt: skip

    return ExpbookLightningCallback()


def _fitting(trainer):
    state = getattr(trainer, "state", None)
    fn = getattr(state, "fn", None)
    return str(getattr(fn, "value", fn)) == "fit"


def _lightning_logged(trainer, on_step, loop=None):
    """(name, result metric) of the values logged in ``loop``'s results (default: the active
    loop's): on step, the ``name_step``/``name`` of those logged with ``on_step``; else the
    ``name_epoch``/``name`` of those logged with ``on_epoch``."""
    results = loop._results if loop is not None else trainer._results
    if results is None:
        return []
    found = []
    for _, metric in results.valid_items():
        meta = metric.meta
        if on_step and meta.on_step:
            found.append((meta.forked_name(True), metric))
        elif not on_step and meta.on_epoch:
            found.append((meta.forked_name(False), metric))
    return found


def lightning_params(trainer, pl_module):
    params = {}
    for owner, prefix in ((pl_module, "hparams."), (getattr(trainer, "datamodule", None),
                                                    "datamodule.hparams.")):  # fmt: skip
        hparams = getattr(owner, "hparams", None)
        if hparams:
            try:  # noqa: SIM105
                params.update(core.flat(dict(hparams), prefix))
            except (TypeError, ValueError):
                pass
    for name in ("max_epochs", "max_steps", "accumulate_grad_batches", "precision"):
        value = getattr(trainer, name, None)
        if value is not None:
            params["trainer." + name] = core.plain(value)
    return params


def hook_lightning(log, module, package):
    trainer_class = module.Trainer
    original_init = trainer_class.__init__

    def __init__(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        log.guard(LIGHTNING, _add_lightning_callback, log, self, package)

    trainer_class.__init__ = __init__
    for method, prefix in (("test", ""), ("validate", "validate/")):
        setattr(trainer_class, method, _lightning_results(log, getattr(trainer_class, method),
                                                          prefix))  # fmt: skip
    log.hooked(LIGHTNING, package)


def _add_lightning_callback(log, trainer, package):
    # First in the list: our values are written before the progress bar shows them.
    trainer.callbacks.insert(0, lightning_callback(log, package))


def _lightning_results(log, original, prefix):
    """``trainer.test``/``validate``: the returned metrics as summary values of their own keys
    (``test_loss``; ``validate/val_loss``, so that they do not join the training series)."""

    def method(self, *args, **kwargs):
        results = original(self, *args, **kwargs)
        log.guard(LIGHTNING, _lightning_summary, log, results, prefix)
        return results

    method.__wrapped__ = original
    return method


def _lightning_summary(log, results, prefix):
    for result in results or ():
        log.summary(LIGHTNING, {prefix + key: value for key, value in result.items()},
                    claim=list(result))  # fmt: skip


# --- Keras 3 -------------------------------------------------------------------------------------

KERAS = "keras"


def keras_callback(log, evaluate=False):
    return keras_callback_class()(log, evaluate)


def keras_callback_class():
    """A Keras callback class, taking ``(log, evaluate)``, writing to ``log``: each epoch's
    logs (the values ``History`` keeps) at step = epoch = the epoch as Keras prints it
    (``Epoch 1/4`` is 1); for ``evaluate``, the results as summary values named
    ``test_<metric>``; the parameter count and the fit's settings and optimizer config as
    params."""
    if "keras" in _classes:
        return _classes["keras"]
    import keras

    class ExpbookKerasCallback(keras.callbacks.Callback):
        def __init__(self, log, evaluate=False):
            super().__init__()
            self.log = log
            self.evaluate = evaluate
            self._fitting = False

        def on_train_begin(self, logs=None):
            self._fitting = True
            self.log.guard(KERAS, self._begin)

        def on_train_end(self, logs=None):
            self._fitting = False

        def _begin(self):
            params = {"fit." + k: core.plain(v) for k, v in (self.params or {}).items()}
            optimizer = getattr(self.model, "optimizer", None)
            if optimizer is not None:
                params.update(core.flat(optimizer.get_config(), "optimizer."))
            self.log.params(KERAS, params)
            self.log.summary(KERAS, {"model.params": self.model.count_params()})

        def on_epoch_end(self, epoch, logs=None):
            if logs:
                step = epoch + 1
                self.log.guard(KERAS, self.log.point, KERAS, logs, step=step, epoch=float(step))

        def on_test_end(self, logs=None):
            if self.evaluate and not self._fitting and logs:
                self.log.guard(KERAS, _keras_test, self.log, logs)

    _classes["keras"] = ExpbookKerasCallback
    return ExpbookKerasCallback


def _keras_test(log, logs):
    values = {key if key.startswith("test_") else "test_" + key: v for key, v in logs.items()}
    log.summary(KERAS, values, claim=list(logs))


def hook_keras(log, module):
    model_class = module.Model
    fit, evaluate = model_class.fit, model_class.evaluate
    state = {"depth": 0}  # fit calls evaluate for validation: only outer calls are hooked

    def patched_fit(self, *args, **kwargs):
        return _keras_call(log, state, fit, self, args, kwargs, False)

    def patched_evaluate(self, *args, **kwargs):
        return _keras_call(log, state, evaluate, self, args, kwargs, True)

    patched_fit.__wrapped__, patched_evaluate.__wrapped__ = fit, evaluate
    model_class.fit, model_class.evaluate = patched_fit, patched_evaluate
    log.hooked(KERAS, "keras")


def _keras_call(log, state, original, model, args, kwargs, evaluate):
    if state["depth"] or KERAS in log.off:
        return original(model, *args, **kwargs)
    callback = log.guard(KERAS, keras_callback, log, evaluate)
    state["depth"] += 1
    try:
        if callback is None:
            return original(model, *args, **kwargs)
        return core.call_with(
            original, (model, *args), kwargs, "callbacks", core._prepend(callback)
        )
    finally:
        state["depth"] -= 1


# --- XGBoost -------------------------------------------------------------------------------------

XGBOOST = "xgboost"


def xgboost_callback(log, params=None):
    """An XGBoost ``TrainingCallback``: each boosting round's evaluation results, named as
    XGBoost prints them (``validation_0-logloss``), at step = the round (``[0]`` is 0)."""
    from xgboost.callback import TrainingCallback

    class ExpbookXGBoostCallback(TrainingCallback):
        def before_training(self, model):
            if params:
                log.guard(XGBOOST, _xgboost_params, log, params)
            return model

        def after_iteration(self, model, epoch, evals_log):
            log.guard(XGBOOST, self._round, epoch, evals_log)
            return False

        def _round(self, epoch, evals_log):
            values = {}
            for data, metrics in evals_log.items():
                for metric, history in metrics.items():
                    if history:
                        last = history[-1]
                        values[f"{data}-{metric}"] = last[0] if isinstance(last, tuple) else last
            log.point(XGBOOST, values, step=int(epoch))

    return ExpbookXGBoostCallback()


def _xgboost_params(log, params):
    log.params(XGBOOST, core.flat(dict(params), "xgboost."))


def hook_xgboost(log, module):
    original = module.train

    def train(*args, **kwargs):
        if XGBOOST in log.off:
            return original(*args, **kwargs)
        params = args[0] if args else kwargs.get("params")
        callback = log.guard(XGBOOST, xgboost_callback, log, params)
        if callback is None:
            return original(*args, **kwargs)
        # First: our record is written before EvaluationMonitor prints the round.
        return core.call_with(original, args, kwargs, "callbacks", core._prepend(callback))

    train.__wrapped__ = original
    _replace(original, train, module, "xgboost", "xgboost.sklearn")
    log.hooked(XGBOOST, "xgboost")


def _replace(original, function, module, *others):
    """``module.train = function``, and in the modules that imported ``train`` from it already
    (``expbook.autolog()`` called after ``import xgboost``)."""
    module.train = function
    for name in others:
        other = sys.modules.get(name)
        if other is not None and getattr(other, "train", None) is original:
            other.train = function


# --- LightGBM ------------------------------------------------------------------------------------

LIGHTGBM = "lightgbm"


def lightgbm_callback(log):
    """A LightGBM callback (``order`` 5: before ``log_evaluation``, 10, prints): each
    iteration's evaluation results as ``<dataset>/<metric>`` (``valid_0/binary_logloss``) at
    step = the iteration as LightGBM prints it (``[1]`` is the first)."""

    def callback(env):
        log.guard(LIGHTGBM, _lightgbm_iteration, log, env)

    callback.order = 5
    callback.before_iteration = False
    return callback


def _lightgbm_iteration(log, env):
    values = {f"{item[0]}/{item[1]}": item[2] for item in env.evaluation_result_list or ()}
    log.point(LIGHTGBM, values, step=int(env.iteration) + 1)


def _lightgbm_params(log, params):
    log.params(LIGHTGBM, core.flat(dict(params or {}), "lightgbm."))


def hook_lightgbm(log, module):
    original = module.train

    def train(*args, **kwargs):
        if LIGHTGBM in log.off:
            return original(*args, **kwargs)
        params = args[0] if args else kwargs.get("params")
        log.guard(LIGHTGBM, _lightgbm_params, log, params)
        callback = lightgbm_callback(log)
        return core.call_with(original, args, kwargs, "callbacks", core._prepend(callback))

    train.__wrapped__ = original
    _replace(original, train, module, "lightgbm", "lightgbm.sklearn")
    log.hooked(LIGHTGBM, "lightgbm")


# --- scikit-learn --------------------------------------------------------------------------------

SKLEARN = "sklearn"


def _estimator_params(estimator):
    name = type(estimator).__name__
    return core.flat(
        {k: v for k, v in estimator.get_params(deep=False).items() if not hasattr(v, "fit")},
        name + ".",
    )


def hook_sklearn_mlp(log, module):
    """``MLPClassifier``/``MLPRegressor``: ``loss_curve_`` as ``loss`` and
    ``validation_scores_`` as ``validation_score`` (as printed with ``verbose``), at step = the
    iteration as printed (``Iteration 1`` is 1), written when ``fit``/``partial_fit`` returns;
    the keys are claimed when it starts, so the printed copies are dropped."""
    base = module.BaseMultilayerPerceptron
    original = base._fit

    def _fit(self, *args, **kwargs):
        if SKLEARN in log.off:
            return original(self, *args, **kwargs)
        incremental = kwargs.get("incremental", args[3] if len(args) > 3 else False)
        before = log.guard(SKLEARN, _mlp_start, log, self, incremental)
        try:
            return original(self, *args, **kwargs)
        finally:
            if before is not None:
                log.guard(SKLEARN, _mlp_end, log, self, before)

    _fit.__wrapped__ = original
    base._fit = _fit
    log.hooked(SKLEARN, "sklearn")


def _mlp_start(log, estimator, incremental):
    log.claim(SKLEARN, ["loss", "validation_score"])
    if not incremental:
        log.params(SKLEARN, _estimator_params(estimator))
        return 0, 0
    curves = [getattr(estimator, name, None) for name in ("loss_curve_", "validation_scores_")]
    return tuple(0 if curve is None else len(curve) for curve in curves)


def _mlp_end(log, estimator, before):
    _curve(log, "loss", getattr(estimator, "loss_curve_", None), before[0])
    _curve(log, "validation_score", getattr(estimator, "validation_scores_", None), before[1])


def _curve(log, key, values, start):
    values = [] if values is None else list(values)
    for index, value in enumerate(values[start:], start=start + 1):
        log.point(SKLEARN, {key: value}, step=index)


def hook_sklearn_gb(log, module):
    """``GradientBoostingClassifier``/``Regressor``: ``train_score_`` as ``train_loss`` (the
    printed ``Train Loss`` column) at step = the iteration (``Iter 1`` is 1)."""
    base = module.BaseGradientBoosting
    original = base.fit

    def fit(self, *args, **kwargs):
        if SKLEARN in log.off:
            return original(self, *args, **kwargs)
        started = log.guard(SKLEARN, _gb_start, log, self)
        try:
            return original(self, *args, **kwargs)
        finally:
            if started:
                log.guard(
                    SKLEARN, _curve, log, "train_loss", getattr(self, "train_score_", None), 0
                )

    fit.__wrapped__ = original
    base.fit = fit
    log.hooked(SKLEARN, "sklearn")


def _gb_start(log, estimator):
    log.claim(SKLEARN, ["train_loss"])
    log.params(SKLEARN, _estimator_params(estimator))
    return True


def hook_sklearn_search(log, module):
    """``GridSearchCV``/``RandomizedSearchCV``: each fold's test score as ``score`` at step =
    candidate * folds + fold (the order of the ``[CV]`` lines), ``best_score`` as a summary
    value and the best params as ``best_params.*``."""
    base = module.BaseSearchCV
    original = base.fit

    def fit(self, *args, **kwargs):
        if SKLEARN in log.off:
            return original(self, *args, **kwargs)
        log.guard(SKLEARN, log.claim, SKLEARN, ["score", "best_score"])
        result = original(self, *args, **kwargs)
        log.guard(SKLEARN, _search_end, log, self)
        return result

    fit.__wrapped__ = original
    base.fit = fit
    log.hooked(SKLEARN, "sklearn")


def _search_end(log, search):
    results = search.cv_results_
    folds = int(getattr(search, "n_splits_", 0) or 0)
    candidates = len(results.get("params", ()))
    for candidate in range(candidates):
        for fold in range(folds):
            column = results.get(f"split{fold}_test_score")
            if column is not None:
                step = candidate * folds + fold
                log.point(SKLEARN, {"score": column[candidate]}, step=step)
    best = getattr(search, "best_score_", None)
    if best is not None:
        log.summary(SKLEARN, {"best_score": best})
    best_params = getattr(search, "best_params_", None)
    if best_params:
        log.params(SKLEARN, core.flat(best_params, "best_params."))


# --- tqdm ----------------------------------------------------------------------------------------

TQDM = "tqdm"


def hook_tqdm(log, module):
    """``set_postfix`` values at the bar's position: the items the bar has yielded (exact, not
    the displayed ``n``, which lags) or its ``n`` when updated by hand, plus the positions of
    earlier bars that had postfixes, so a bar per epoch gives one rising step; the epoch from
    the description (``Epoch 3/10``). Bars driven by a hooked framework are left to its hook."""
    import re

    bar_class = module.tqdm
    original_postfix = bar_class.set_postfix
    original_iter = bar_class.__iter__
    epoch_pattern = re.compile(r"(?i)\bepoch\b\D{0,3}(\d+)")
    state = {"bar": None, "base": 0, "last": 0}

    def __iter__(self):
        counter = log.guard(TQDM, _tqdm_counter, self) if TQDM not in log.off else None
        if counter is None:
            yield from original_iter(self)
            return
        for item in original_iter(self):
            counter[0] += 1
            yield item

    def set_postfix(self, ordered_dict=None, refresh=True, **kwargs):
        result = original_postfix(self, ordered_dict, refresh=False, **kwargs)
        if TQDM not in log.off:
            log.guard(TQDM, _tqdm_postfix, log, self, state, epoch_pattern, ordered_dict, kwargs,
                      sys._getframe(1))  # fmt: skip
        if refresh:
            self.refresh()
        return result

    __iter__.__wrapped__, set_postfix.__wrapped__ = original_iter, original_postfix
    bar_class.__iter__, bar_class.set_postfix = __iter__, set_postfix
    log.hooked(TQDM, "tqdm")


def _tqdm_counter(bar):
    """The items a bar has yielded, counted as they are (tqdm's ``n`` lags behind)."""
    if bar.disable:
        return None
    counter = bar.__dict__["_expbook_position"] = [bar.n]
    return counter


def _tqdm_postfix(log, bar, state, epoch_pattern, ordered_dict, kwargs, caller):
    if caller.f_globals.get("__name__", "").partition(".")[0] in core.FRAMEWORK_PACKAGES:
        return  # a framework's own bar: its hook records the values
    values = dict(ordered_dict or {})
    values.update(kwargs)
    values = core.numbers(values)
    if not values:
        return
    counter = bar.__dict__.get("_expbook_position")
    position = counter[0] if counter is not None else int(bar.n)
    if state["bar"] is not bar:  # a new bar: its positions follow the last one's
        state["base"] += state["last"]
        state["bar"] = bar
    state["last"] = position
    match = epoch_pattern.search(str(bar.desc or ""))
    epoch = float(match.group(1)) if match else None
    log.point(TQDM, values, step=state["base"] + position, epoch=epoch)


def hook_lightning_package(package):
    return lambda log, module: hook_lightning(log, module, package)
