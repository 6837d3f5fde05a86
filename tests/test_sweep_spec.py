"""The sweep spec layer: W&B's sweep configs read as W&B reads them, the search space on Optuna,
the grid, configuration keys, and command macros expanded as W&B's agent expands them.

Real-world configs (tests/data/sweeps/, sources in its README) are checked against W&B's published
JSON schema and parsed; sampling goes through real Optuna studies; W&B's distributions are checked
against the scipy.stats distributions W&B's own sampler (wandb/sweeps ``params.py``) draws from.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
import scipy.stats as stats
import yaml

from expbook.errors import InvalidValueError
from expbook.sweep import space
from expbook.sweep.command import trial_command
from expbook.sweep.spec import (
    SweepSpecError,
    check_params,
    load_spec,
    parse_duration,
    parse_spec,
)
from tests.helpers import run_python

DATA = Path(__file__).parent / "data" / "sweeps"
REAL_WORLD = sorted(DATA.glob("*.yaml"))
optuna.logging.set_verbosity(optuna.logging.WARNING)


def spec_of(parameters: dict[str, Any], **top: Any) -> Any:
    return parse_spec({"method": "random", "parameters": parameters, **top})


def error_of(data: Any) -> str:
    with pytest.raises(SweepSpecError) as caught:
        parse_spec(data)
    message = str(caught.value)
    assert "\n" not in message and message.startswith("sweep spec: "), message
    return message


# ---------------------------------------------------------------------------------------------
# Real-world configs


def wandb_validator() -> Any:
    import jsonschema_rs

    schema = json.loads((DATA / "wandb-sweep-config.schema.json").read_text())
    return jsonschema_rs.Draft7Validator(schema)


def test_the_real_world_configs_are_there() -> None:
    assert len(REAL_WORLD) >= 6
    readme = (DATA / "README.md").read_text()
    for path in [*REAL_WORLD, *sorted((DATA / "rejected").glob("*.yaml"))]:
        assert path.name in readme, f"{path.name} has no source in tests/data/sweeps/README.md"


@pytest.mark.parametrize("path", REAL_WORLD, ids=lambda p: p.name)
def test_a_real_world_config_validates_against_wandbs_schema_and_parses(path: Path) -> None:
    from expbook.sweep.spec import _load_text

    data = _load_text(path.read_text(), str(path), json_only=False)
    errors = [e.message for e in wandb_validator().iter_errors(data)]
    assert errors == [], f"{path.name} breaks W&B's schema: {errors}"
    spec = load_spec(path)
    assert spec.raw == data and spec.parameters
    assert {p.name for p in spec.parameters} >= {
        ".".join(k) for k in _leaf_paths(data["parameters"])
    }


def _leaf_paths(block: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = []
    for name, config in block.items():
        if "parameters" in config:
            out += _leaf_paths(config["parameters"], (*prefix, name))
        else:
            out.append((*prefix, name))
    return out


def test_yaml_is_read_as_wandbs_server_reads_it() -> None:
    # PyYAML reads `1e-5` as text (W&B's schema then rejects it); W&B's client dumps it unquoted
    # and its server parses a number. load_spec reads the number.
    path = DATA / "exhale-prediction-cvae.yaml"
    plain = yaml.safe_load(path.read_text())
    assert plain["parameters"]["lr"]["min"] == "1e-5"
    assert not wandb_validator().is_valid(plain)
    lr = load_spec(path).param("lr")
    assert (lr.low, lr.high, lr.log, lr.kind) == (1e-5, 5e-4, True, "float")
    decay = load_spec(DATA / "ai4code.yaml").param("decay")
    assert decay.values == (1e-5, 1e-6, 1e-7)
    assert load_spec(DATA / "ai4code.yaml").param("learning_rate").values[0] == 1.5e-4


def test_real_world_configs_mean_what_wandb_makes_of_them(tmp_path: Path) -> None:
    vae = load_spec(DATA / "mnist-vae.yaml")  # min/max without distribution: inferred by type
    assert [(p.name, p.distribution, p.kind) for p in vae.parameters] == [
        ("learn_rate", "uniform", "float"),
        ("epochs", "int_uniform", "int"),
    ]
    ai4code = load_spec(DATA / "ai4code.yaml")
    assert ai4code.early_terminate.bands() == [3, 9]  # W&B's docs: [27/eta, 27/eta/eta]
    assert ai4code.early_terminate.strict is True  # W&B's schema default
    nested = load_spec(DATA / "wandb-sweeps-nested-cli.yaml")
    assert [p.name for p in nested.parameters] == [
        "batch_size",
        "optimizer.lr",
        "optimizer.nadam.beta",
    ]
    assert nested.ignored == ("project",)
    assert load_spec(DATA / "fluke.yaml").ignored == ("project", "entity")
    local = load_spec(DATA / "wandb-sweeps-local-hyperband.yaml")
    assert local.ignored == ("project", "controller") and local.budget() == 27
    docs = load_spec(DATA / "wandb-docs-example.yaml").param("batch_size")
    assert (docs.distribution, docs.kind, docs.q, docs.low, docs.high) == (
        "q_log_uniform_values",
        "int",
        8,
        32,
        256,
    )
    cvae = load_spec(DATA / "exhale-prediction-cvae.yaml")
    words = trial_command(cvae, space.to_user(cvae, _mid(cvae)), workdir=tmp_path)
    assert words[:4] == ["/usr/bin/env", "torchrun", "--nproc_per_node=4", "train_ctm.py"]
    assert words[4].startswith("--alpha=") and words[-2:] == ["--dataset_fraction", "1"]


def _mid(spec: Any) -> dict[str, Any]:
    out = {}
    for name, d in space.distributions(spec).items():
        if isinstance(d, optuna.distributions.CategoricalDistribution):
            out[name] = d.choices[0]
        elif d.log:
            out[name] = math.sqrt(d.low * d.high)
        else:
            out[name] = d.low
    return out


def test_a_real_world_typo_wandb_silently_drops_is_an_error() -> None:
    # W&B's agent replaces an unknown ${macro} with nothing: this config ran `env main.py ...`.
    with pytest.raises(SweepSpecError) as caught:
        load_spec(DATA / "rejected" / "dreamprolog.yaml")
    message = str(caught.value)
    assert "dreamprolog.yaml: command[1]: ${interpereter} is not a W&B macro" in message
    assert "\n" not in message


# ---------------------------------------------------------------------------------------------
# Errors: one line naming the field

R = {"method": "random", "parameters": {"a": {"value": 1}}}
M = {**R, "metric": {"name": "l"}}


def P(**parameters: Any) -> dict[str, Any]:
    return {"method": "random", "parameters": parameters}


def X(**block: Any) -> dict[str, Any]:
    return {**R, "expbook": block}


def HB(**early: Any) -> dict[str, Any]:
    return {**M, "early_terminate": {"type": "hyperband", **early}}


ERRORS = [
    ({"method": "sweep", "parameters": {"a": {"value": 1}}}, 'method: unknown method "sweep"'),
    ({"parameters": {"a": {"value": 1}}}, "method: missing"),
    ({**R, "method": "custom"}, "method: custom"),
    ({"method": "grid", "parametrs": {}}, "parametrs: unknown key"),
    ({"method": "grid"}, "parameters: missing"),
    (P(), "parameters: expected a mapping of parameter names"),
    (P(lr={"min": 0.1, "max": 0.01}), "parameters.lr: min 0.1 is greater than max 0.01"),
    (P(lr={"min": 3, "max": 3}), "parameters.lr: min 3 equals max 3"),
    (
        P(lr={"distribution": "loguniform", "min": 1, "max": 2}),
        'parameters.lr.distribution: unknown distribution "loguniform"',
    ),
    (P(lr={"min": "0.1", "max": 1.0}), 'parameters.lr.min: expected a number, got "0.1"'),
    (
        P(n={"distribution": "int_uniform", "min": 1.5, "max": 4}),
        "parameters.n.min: int_uniform needs an integer",
    ),
    (P(n={"min": 1}), "parameters.n.max: missing"),
    (P(n={"min": 1, "max": 5, "q": 2}), "parameters.n.q: q needs a quantized distribution"),
    (
        P(n={"distribution": "uniform", "values": [1]}),
        "parameters.n.values: not a key of distribution uniform",
    ),
    (
        P(n={"distribution": "normal", "sigma": -1}),
        "parameters.n.sigma: -1 must be greater than 0",
    ),
    (
        P(lr={"distribution": "log_uniform_values", "min": 0, "max": 1}),
        "parameters.lr.min: log_uniform_values takes values: min 0 must be greater than 0",
    ),
    (
        P(a={"values": [1, 2], "probabilities": [0.5]}),
        "parameters.a.probabilities: has 1 probabilities for 2 values",
    ),
    (
        P(a={"values": [1, 2], "probabilities": [0.5, 0.6]}),
        "parameters.a.probabilities: sum to 1.1, not 1",
    ),
    (P(a={"values": []}), "parameters.a.values: expected a non-empty list"),
    (P(a={"values": [1, 2, 1]}), "parameters.a.values: lists 1 twice"),
    (P(a=3), "parameters.a: expected a mapping"),
    (
        P(o={"parameters": {"lr": {"foo": 1}}}),
        "parameters.o.parameters.lr: give value, values, min and max",
    ),
    (
        P(o={"parameters": {"lr": {"value": 1}}, "value": 2}),
        "parameters.o.value: a block of nested parameters takes only `parameters`",
    ),
    (
        {
            "method": "random",
            "parameters": {"o.lr": {"value": 1}, "o": {"parameters": {"lr": {"value": 2}}}},
        },
        "parameters.o.parameters.lr: flattens to 'o.lr'",
    ),
    ({**R, "metric": {"goal": "minimize"}}, "metric.name: missing"),
    ({**R, "metric": {"name": "l", "goal": "max"}}, 'metric.goal: unknown goal "max"'),
    ({**R, "metric": {"name": "l", "foo": 1}}, "metric.foo: unknown key"),
    ({"method": "bayes", "parameters": {"a": {"min": 0.0, "max": 1.0}}}, "metric: missing: bayes"),
    (
        {**M, "metrics": [{"name": "a"}, {"name": "b"}]},
        "metrics: give either metric or metrics",
    ),
    (
        {**R, "early_terminate": {"type": "hyperband", "min_iter": 3}},
        "metric: missing: early_terminate needs the metric",
    ),
    (HB(), "early_terminate: give min_iter, or max_iter and s"),
    (HB(max_iter=27), "early_terminate.s: missing: max_iter needs s"),
    (HB(max_iter=27, min_iter=3), "early_terminate.s: missing: max_iter needs s"),
    (HB(min_iter=3, type="envelope"), 'early_terminate.type: unknown type "envelope"'),
    (HB(min_iter=3, eta=1), "early_terminate.eta: 1 must be greater than 1"),
    (HB(min_iter=0), "early_terminate.min_iter: 0 is less than 1"),
    (HB(min_iter=3, strict="yes"), "early_terminate.strict: expected true or false"),
    (HB(max_iter=2, s=2), "early_terminate: max_iter 2 divided by eta 3 leaves no band"),
    ({**R, "run_cap": 0}, "run_cap: 0 is less than 1"),
    ({**R, "name": 3}, "name: expected text, got 3"),
    ({**R, "command": "python train.py"}, "command: expected a list of words"),
    ({**R, "command": ["${lr}"]}, "command[0]: ${lr} is not a W&B macro"),
    ({**R, "command": ["--out=${args}"]}, "command[0]: ${args} inside '--out=${args}'"),
    ({**R, "command": ["--b={b}"]}, "command[0]: {b} names no parameter"),
    ({**R, "command": ["${program}"]}, "program: missing: the command runs ${program}"),
    (
        {"method": "grid", "parameters": {"lr": {"min": 0.0, "max": 1.0}}},
        "parameters.lr: grid search cannot enumerate distribution uniform",
    ),
    (
        {"method": "grid", "parameters": {"a": {"values": [1, 2], "probabilities": [0.5, 0.5]}}},
        "parameters.a: grid search cannot enumerate categorical values with probabilities",
    ),
    (X(trails=3), "expbook.trails: unknown key"),
    (X(sampler="hyperopt"), 'expbook.sampler: unknown sampler "hyperopt"'),
    (X(sampler="tpe"), "expbook.sampler: tpe does not fit method: random"),
    (X(pruner="median"), "metric: missing: expbook.pruner needs the metric"),
    ({**HB(min_iter=1), "expbook": {"pruner": "median"}}, "expbook.pruner: give either"),
    (
        {**R, "metrics": [{"name": "a"}, {"name": "b"}], "expbook": {"pruner": "median"}},
        "expbook.pruner: pruning needs one metric",
    ),
    (X(timeout="2 hours"), "expbook.timeout: expected seconds or a duration"),
    (X(budget={"timeout": -5}), "expbook.budget.timeout: -5 is not a positive duration"),
    (X(budget={"trials": 0}), "expbook.budget.trials: 0 is less than 1"),
    (X(budget={"runs": 3}), "expbook.budget.runs: unknown key"),
    (X(trials=5, budget={"trials": 3}), "expbook.trials: given twice"),
    (X(repeats=0), "expbook.repeats: 0 is less than 1"),
    (X(workers=1.5), "expbook.workers: expected an integer, got 1.5"),
    (X(sampler_options=[1]), "expbook.sampler_options: expected a mapping"),
    (
        {**P(seed={"values": [1, 2]}), "expbook": {"seed_param": "seed"}},
        "expbook.seed_param: 'seed' is also a searched parameter",
    ),
    (
        X(constraints=["a * b < 3"]),
        "expbook.constraints[0]: 'a * b < 3': 'b' names no parameter",
    ),
    (X(constraints=["a <"]), "expbook.constraints[0]: 'a <' is not an expression"),
    (X(constraints=["__import__('os').system('x')"]), "expbook.constraints[0]: "),
    (X(constraints=["[x for x in a]"]), "ListComp is not allowed"),
    (X(resources={"gpu": -1}), "expbook.resources.gpu: -1 is negative"),
    (P(a={"value": float("nan")}), "parameters.a.value: nan is not a finite number"),
    (
        P(a={"distribution": "log_uniform", "min": 1, "max": 1000}),
        "parameters.a: log_uniform takes natural-log exponents: exp(min) and exp(max) must be",
    ),
    (
        P(a={"distribution": "inv_log_uniform", "min": -1, "max": 800}),
        "parameters.a: inv_log_uniform takes natural-log exponents",
    ),
]


@pytest.mark.parametrize(("data", "expected"), ERRORS, ids=[e[1][:40] for e in ERRORS])
def test_a_bad_spec_is_one_line_naming_the_field(data: dict[str, Any], expected: str) -> None:
    message = error_of(data)
    assert expected in message, message


def test_a_spec_error_is_an_invalid_value_error_with_the_field() -> None:
    with pytest.raises(InvalidValueError) as caught:
        parse_spec({"method": "random", "parameters": {"lr": {"min": 0.1, "max": 0.01}}})
    assert caught.value.field == "parameters.lr" and "greater" in caught.value.reason
    assert error_of([1, 2]) == "sweep spec: expected a mapping of keys, got a list"


def test_load_spec_names_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(SweepSpecError, match=r"^sweep spec .*nope.yaml: cannot read the file"):
        load_spec(missing)
    bad = tmp_path / "bad.yaml"
    bad.write_text("method: grid\nparameters:\n  a: [1\n")
    with pytest.raises(SweepSpecError) as caught:
        load_spec(bad)
    assert str(caught.value).startswith(f"sweep spec {bad}: invalid YAML: line ")
    assert "\n" not in str(caught.value)
    broken = tmp_path / "bad.json"
    broken.write_text('{"method": "grid",')
    with pytest.raises(SweepSpecError, match=r"bad.json: invalid JSON"):
        load_spec(broken)
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"method": "grid", "parameters": {"a": {"min": 2, "max": 1}}}))
    with pytest.raises(SweepSpecError) as caught:
        load_spec(wrong)
    assert str(caught.value) == f"sweep spec {wrong}: parameters.a: min 2 is greater than max 1"


# ---------------------------------------------------------------------------------------------
# The spec's fields


def test_the_expbook_block() -> None:
    spec = parse_spec(
        {
            "method": "bayes",
            "metric": {"name": "val/loss", "goal": "minimize", "target": 0.1},
            "parameters": {"hidden": {"values": [128, 192, 256]}, "batch": {"values": [32, 64]}},
            "run_cap": 40,
            "project": "p",
            "expbook": {
                "experiment": "tuning",
                "budget": {"trials": 30, "timeout": "1h30m"},
                "workers": 4,
                "sampler": "CMA-ES",
                "sampler_options": {"seed": 3},
                "pruner": "asha",
                "pruner_options": {"min_resource": 2},
                "repeats": 3,
                "seed_param": "seed",
                "constraints": ["batch * hidden <= 12288"],
                "max_attempts": 2,
                "resources": {"cpu": 2, "gpu": 1},
            },
        }
    )
    assert spec.metric.target == 0.1 and spec.metric.direction == "minimize"
    assert (spec.experiment, spec.trials, spec.timeout, spec.workers) == ("tuning", 30, 5400, 4)
    assert (spec.sampler, spec.sampler_options, spec.pruner) == ("cmaes", {"seed": 3}, "asha")
    assert (spec.repeats, spec.seed_param, spec.max_attempts) == (3, "seed", 2)
    assert spec.resources == {"cpu": 2, "gpu": 1} and spec.ignored == ("project",)
    assert spec.budget() == 30 and spec.effective_pruner == "asha"
    check_params(spec, {"hidden": 192, "batch": 64})
    with pytest.raises(SweepSpecError) as caught:
        check_params(spec, {"hidden": 256, "batch": 64})
    assert str(caught.value) == (
        "sweep spec: expbook.constraints: 'batch * hidden <= 12288' is false for "
        "batch=64, hidden=256"
    )


def test_defaults_follow_wandb() -> None:
    spec = parse_spec(
        {
            "method": "random",
            "program": "train.py",
            "metric": {"name": "loss", "impute": "worst"},
            "early_terminate": {"type": "hyperband", "min_iter": 3, "patience": 2},
            "parameters": {
                "x": {"distribution": "normal"},
                "q": {"distribution": "q_uniform", "min": 0, "max": 1},
            },
        }
    )
    assert spec.command == ("${env}", "${interpreter}", "${program}", "${args}")
    assert spec.metric.goal == "minimize"
    assert spec.ignored == ("metric.impute", "early_terminate.patience")  # W&B drops it too
    et = spec.early_terminate
    assert (et.eta, et.strict, et.bands()[:4]) == (3, True, [3, 9, 27, 81])
    x = spec.param("x")
    assert (x.mu, x.sigma, x.kind) == (0.0, 1.0, "float")
    q = spec.param("q")
    assert (q.q, q.kind) == (1.0, "float")  # W&B's default q is 1.0: float values
    assert spec.effective_sampler == "random" and spec.effective_pruner == "hyperband"
    assert spec.budget() is None and spec.metric is spec.metrics[0]
    assert parse_spec({"method": "grid", "parameters": {"a": {"value": 1}}}).metric is None


def test_multi_objective_metrics() -> None:
    spec = parse_spec(
        {
            "method": "bayes",
            "metrics": [{"name": "acc", "goal": "maximize"}, {"name": "latency"}],
            "parameters": {"a": {"min": 0.0, "max": 1.0}},
        }
    )
    assert [(m.name, m.goal) for m in spec.metrics] == [
        ("acc", "maximize"),
        ("latency", "minimize"),
    ]
    message = error_of(
        {
            "method": "random",
            "parameters": {"a": {"min": 0.0, "max": 1.0}},
            "expbook": {"metrics": [{"name": "acc", "goal": "maximize"}, {"name": "acc"}]},
        }
    )
    assert "expbook.metrics[1].name: 'acc' is listed twice" in message


@pytest.mark.parametrize(
    ("text", "seconds"),
    [(90, 90.0), (2.5, 2.5), ("2h", 7200.0), ("30m", 1800.0), ("1h30m", 5400.0),
     ("1.5h", 5400.0), ("45s", 45.0), ("1d", 86400.0), ("10 min", 600.0), ("250ms", 0.25)],
)  # fmt: skip
def test_durations(text: Any, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "h", "2 hours", "5x", True, None, [1], 0, "-3m"])
def test_bad_durations(text: Any) -> None:
    with pytest.raises(SweepSpecError):
        parse_duration(text)


def test_exponent_distributions_warn_as_wandb_does() -> None:
    spec = spec_of(
        {
            "lr": {"distribution": "log_uniform", "min": 0.0001, "max": 0.1},
            "ok": {"distribution": "log_uniform_values", "min": 0.0001, "max": 0.1},
            "n": {"parameters": {"inv": {"distribution": "inv_log_uniform", "min": 0, "max": 1}}},
        }
    )
    assert spec.warnings == (
        "parameters.lr: log_uniform takes natural-log exponents, so its values run from 1.0001 "
        "to 1.10517; log_uniform_values takes the values themselves",
        "parameters.n.parameters.inv: inv_log_uniform takes natural-log exponents, so its values "
        "run from 0.367879 to 1; inv_log_uniform_values takes the values themselves",
    )
    assert load_spec(DATA / "ai4code.yaml").warnings == ()


def test_wandb_distribution_inference_and_bounds() -> None:
    spec = spec_of(
        {
            "const": {"value": [1, 2]},
            "cat": {"values": ["a", "b"]},
            "weighted": {"values": ["a", "b"], "probabilities": [0.25, 0.75]},
            "ints": {"min": 1, "max": 10},
            "floats": {"min": 0.0, "max": 1},  # any float makes it uniform (W&B's sweeps engine)
            "exps": {"distribution": "log_uniform", "min": -4, "max": 0},
            "vals": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1.0},
            "inv": {"distribution": "inv_log_uniform", "min": 0, "max": 4},
            "inv_vals": {"distribution": "inv_log_uniform_values", "min": 1e-4, "max": 1.0},
            "beta": {"distribution": "beta", "a": 2, "b": 5},
            "lognormal": {"distribution": "log_normal", "mu": 1, "sigma": 0.5},
        }
    )
    kinds = {p.name: (p.distribution, p.kind) for p in spec.parameters}
    assert kinds["const"] == ("constant", "constant") and kinds["cat"] == (
        "categorical",
        "categorical",
    )
    assert kinds["weighted"] == ("categorical_w_probabilities", "categorical")
    assert kinds["ints"] == ("int_uniform", "int") and kinds["floats"] == ("uniform", "float")
    exps = spec.param("exps")
    assert exps.low == pytest.approx(math.exp(-4)) and exps.high == 1.0 and exps.log
    inv = spec.param("inv")
    assert inv.low == pytest.approx(math.exp(-4)) and inv.high == 1.0 and inv.log
    assert (spec.param("beta").low, spec.param("beta").high) == (0.0, 1.0)
    assert spec.param("lognormal").log and spec.param("lognormal").low is None
    assert [p.quantile_based for p in spec.parameters] == [
        False, False, True, False, False, False, False, False, False, True, True,
    ]  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Sampling through real Optuna studies


SPACE = {
    "lr": {"distribution": "log_uniform_values", "min": 1e-5, "max": 1e-1},
    "exps": {"distribution": "log_uniform", "min": -9.21, "max": -2.3},
    "inv": {"distribution": "inv_log_uniform", "min": 2.3, "max": 9.21},
    "dropout": {"min": 0.0, "max": 0.3},
    "layers": {"min": 1, "max": 4},
    "hidden": {"distribution": "q_uniform", "min": 128, "max": 256, "q": 64},
    "wd": {"distribution": "q_uniform", "min": 0.0, "max": 0.5, "q": 0.05},
    "batch": {"distribution": "q_log_uniform_values", "min": 32, "max": 256, "q": 8},
    "noise": {"distribution": "normal", "mu": 1.0, "sigma": 2.0},
    "steps": {"distribution": "q_normal", "mu": 100, "sigma": 10, "q": 5},
    "frac": {"distribution": "beta", "a": 2, "b": 5},
    "act": {"values": ["relu", "gelu", "tanh"]},
    "shape": {"values": [[64, 64], [128, 64]]},
    "opt": {"values": ["adam", "sgd", "rmsprop"], "probabilities": [0.6, 0.3, 0.1]},
    "model": {
        "parameters": {"kind": {"value": "gru"}, "bidirectional": {"values": [True, False]}}
    },
}


def sample(sampler: optuna.samplers.BaseSampler, n: int = 300) -> tuple[Any, list[dict[str, Any]]]:
    spec = spec_of(SPACE, metric={"name": "loss"})
    study = optuna.create_study(sampler=sampler)
    configs = []
    for _ in range(n):
        trial = study.ask()
        config = space.suggest(trial, spec)
        configs.append(config)
        study.tell(trial, config["lr"] * 10 + config["dropout"] + config["layers"])
    return spec, configs


def assert_in_space(spec: Any, configs: list[dict[str, Any]]) -> None:
    for c in configs:
        assert list(c) == [p.name for p in spec.parameters]
        assert space.contains(spec, c), space.why_not(spec, c)
        assert 1e-5 <= c["lr"] <= 1e-1 and type(c["lr"]) is float
        assert math.exp(-9.21) <= c["exps"] <= math.exp(-2.3)  # exponents, not values
        assert math.exp(-9.21) <= c["inv"] <= math.exp(-2.3)
        assert 0.0 <= c["dropout"] <= 0.3
        assert type(c["layers"]) is int and 1 <= c["layers"] <= 4
        assert type(c["hidden"]) is int and c["hidden"] in (128, 192, 256)
        assert type(c["wd"]) is float and round(c["wd"] / 0.05, 9).is_integer()
        assert c["wd"] == round(c["wd"], 2) and 0.0 <= c["wd"] <= 0.5  # no 0.30000000000000004
        assert type(c["batch"]) is int and c["batch"] % 8 == 0 and 32 <= c["batch"] <= 256
        assert type(c["steps"]) is int and c["steps"] % 5 == 0
        assert 0.0 < c["frac"] < 1.0
        assert c["act"] in ("relu", "gelu", "tanh") and c["shape"] in ([64, 64], [128, 64])
        assert c["opt"] in ("adam", "sgd", "rmsprop") and c["model.kind"] == "gru"
        assert type(c["model.bidirectional"]) is bool


def test_random_sampling_draws_wandbs_distributions() -> None:
    spec, configs = sample(optuna.samplers.RandomSampler(seed=1))
    assert_in_space(spec, configs)
    names = ("lr", "exps", "inv", "dropout", "noise", "frac")
    column = {name: np.array([c[name] for c in configs]) for name in names}
    # W&B's params.py: log_uniform = exp(uniform(min, max)), inv_log_uniform = exp(-uniform(...))
    assert stats.kstest(np.log(column["exps"]), "uniform", args=(-9.21, 6.91)).pvalue > 1e-3
    assert stats.kstest(-np.log(column["inv"]), "uniform", args=(2.3, 6.91)).pvalue > 1e-3
    assert (
        stats.kstest(np.log(column["lr"]), "uniform", args=(math.log(1e-5), math.log(1e4))).pvalue
        > 1e-3
    )
    assert stats.kstest(column["dropout"], "uniform", args=(0.0, 0.3)).pvalue > 1e-3
    assert stats.kstest(column["noise"], "norm", args=(1.0, 2.0)).pvalue > 1e-3
    assert stats.kstest(column["frac"], "beta", args=(2, 5)).pvalue > 1e-3
    # a uniform draw would put ~1 % of lr below 1e-3, log-uniform half
    assert 0.4 < np.mean(column["lr"] < 1e-3) < 0.6
    counts = Counter(c["opt"] for c in configs)
    for value, p in (("adam", 0.6), ("sgd", 0.3), ("rmsprop", 0.1)):
        assert abs(counts[value] / len(configs) - p) < 0.08, counts
    assert set(Counter(c["layers"] for c in configs)) == {1, 2, 3, 4}
    assert set(Counter(c["hidden"] for c in configs)) == {128, 192, 256}
    assert len({space.config_key(c) for c in configs}) == len(configs)


def test_tpe_sampling_respects_bounds_scale_quantisation_and_types() -> None:
    spec, configs = sample(optuna.samplers.TPESampler(seed=2))
    assert_in_space(spec, configs)
    assert min(c["lr"] for c in configs) < 1e-3  # explored on the log scale


def test_suggest_works_with_a_fixed_trial() -> None:
    spec = spec_of(SPACE)
    mid = space.to_optuna(spec, space.to_user(spec, _mid(spec)))
    config = space.suggest(optuna.trial.FixedTrial(mid), spec)
    assert config == space.to_user(spec, mid)


def test_a_study_rebuilt_from_stored_configurations_continues() -> None:
    spec, configs = sample(optuna.samplers.RandomSampler(seed=3), n=40)
    distributions = space.distributions(spec)
    rebuilt = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0, n_startup_trials=5))
    for i, config in enumerate(configs):
        params = space.to_optuna(spec, config)
        back = space.to_user(spec, params)
        assert back.keys() == config.keys()
        for name, value in config.items():  # continuous quantiles come back to the last digit
            assert back[name] == (
                pytest.approx(value, rel=1e-12) if type(value) is float else value
            )
        rebuilt.add_trial(
            optuna.trial.create_trial(params=params, distributions=distributions, value=float(i))
        )
    trial = rebuilt.ask()
    assert space.contains(spec, space.suggest(trial, spec))


# ---------------------------------------------------------------------------------------------
# Membership, keys, nesting


def test_contains_says_why_a_configuration_lies_outside() -> None:
    spec = spec_of(
        {
            "lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1e-2},
            "hidden": {"distribution": "q_uniform", "min": 64, "max": 256, "q": 64},
            "act": {"values": ["relu", "gelu"]},
            "layers": {"min": 1, "max": 3},
            "arch": {"value": "gru"},
        },
        expbook={"constraints": ["hidden * layers <= 512"]},
    )
    good = {"lr": 1e-3, "hidden": 128, "act": "relu", "layers": 2, "arch": "gru", "other": 1}
    assert space.contains(spec, good) and space.why_not(spec, good) is None
    assert space.contains(spec, {**good, "layers": 2.0})  # a stored 2.0 is the integer 2
    cases = {
        "lr": (0.5, "parameters.lr: 0.5 lies outside 0.0001..0.01"),
        "hidden": (100, "parameters.hidden: 100 is not a multiple of q 64"),
        "act": ("tanh", "parameters.act: 'tanh' is not one of its values"),
        "layers": (2.5, "parameters.layers: 2.5 is not an integer"),
        "arch": ("lstm", "parameters.arch: 'lstm' is not the constant 'gru'"),
    }
    for name, (value, reason) in cases.items():
        assert space.why_not(spec, {**good, name: value}) == reason
    assert (
        space.why_not(spec, {**good, "hidden": 320})
        == "parameters.hidden: 320 lies outside 64..256"
    )
    missing = {k: v for k, v in good.items() if k != "act"}
    assert space.why_not(spec, missing) == "parameters.act: missing from the configuration"
    assert space.why_not(spec, {**good, "hidden": 256, "layers": 3}) == (
        "expbook.constraints: 'hidden * layers <= 512' is false"
    )
    with pytest.raises(SweepSpecError, match=r"^sweep spec: parameters.lr: 0.5 lies outside"):
        space.to_optuna(spec, {**good, "lr": 0.5})


def test_config_key_is_canonical() -> None:
    a = {"lr": 0.001, "layers": 2, "shape": [64, 64], "opt": {"name": "adam", "beta": 0.9}}
    b = {"opt": {"beta": 0.9, "name": "adam"}, "shape": [64, 64], "layers": 2.0, "lr": 0.001}
    assert space.config_key(a) == space.config_key(b)
    assert len(space.config_key(a)) == 40
    assert space.config_key({"n": 3e6}) == space.config_key({"n": 3000000})  # as W&B's grid
    assert space.config_key(a) != space.config_key({**a, "lr": 0.002})
    assert space.config_key({"f": True}) != space.config_key({"f": 1})
    assert space.config_key({"v": np.float64(0.5)}) == space.config_key({"v": 0.5})


def test_nest() -> None:
    flat = {"optimizer.lr": 0.1, "optimizer.nadam.beta": 0.9, "batch": 32}
    assert space.nest(flat) == {"optimizer": {"lr": 0.1, "nadam": {"beta": 0.9}}, "batch": 32}
    with pytest.raises(SweepSpecError, match=r"a\.b: a is both a value and a group"):
        space.nest({"a": 1, "a.b": 2})


# ---------------------------------------------------------------------------------------------
# The grid


def test_the_grid_is_exactly_the_grid_in_wandbs_order() -> None:
    spec = parse_spec(
        {
            "method": "grid",
            "parameters": {
                "width": {"distribution": "q_uniform", "min": 128, "max": 256, "q": 64},
                "act": {"values": ["relu", "gelu"]},
                "epochs": {"value": 5},
                "layers": {"distribution": "int_uniform", "min": 2, "max": 3},
            },
        }
    )
    grid = space.grid(spec)
    # W&B: parameters sorted by name (act, epochs, layers, width), the last varying fastest
    expected = [
        {"width": w, "act": a, "epochs": 5, "layers": n}
        for a in ("relu", "gelu")
        for n in (2, 3)
        for w in (128, 192, 256)
    ]
    assert grid == expected and list(grid[0]) == ["width", "act", "epochs", "layers"]
    assert space.grid_size(spec) == 12 and spec.budget() == 12
    assert len({space.config_key(c) for c in grid}) == 12


def test_the_grid_of_wandbs_nested_example() -> None:
    spec = load_spec(DATA / "wandb-sweeps-nested-cli.yaml")
    grid = space.grid(spec)
    assert len(grid) == 8
    assert grid[:3] == [
        {"batch_size": 32, "optimizer.lr": 0.001, "optimizer.nadam.beta": 0.9},
        {"batch_size": 32, "optimizer.lr": 0.001, "optimizer.nadam.beta": 0.95},
        {"batch_size": 32, "optimizer.lr": 0.0001, "optimizer.nadam.beta": 0.9},
    ]


def test_a_float_q_grid_has_clean_values_and_constraints_filter_it() -> None:
    spec = parse_spec(
        {
            "method": "grid",
            "parameters": {
                "dropout": {"distribution": "q_uniform", "min": 0.0, "max": 0.3, "q": 0.1},
                "hidden": {"values": [128, 256]},
            },
            "expbook": {"constraints": ["not (hidden == 256 and dropout > 0.15)"], "repeats": 2},
        }
    )
    values = [c["dropout"] for c in space.grid(spec)]
    assert values == [0.0, 0.0, 0.1, 0.1, 0.2, 0.3]  # 0.3, not 0.30000000000000004
    assert space.grid_size(spec) == 6 and spec.budget() == 12
    assert parse_spec({**spec.raw, "expbook": {"trials": 4}}).budget() == 4
    with pytest.raises(SweepSpecError, match="the grid has 10000000 configurations"):
        parse_spec({"method": "grid", "parameters": {"a": {"min": 1, "max": 10000000}}})


def test_the_grid_refuses_a_continuous_parameter_by_name() -> None:
    spec = spec_of(
        {"ok": {"values": [1]}, "nested": {"parameters": {"lr": {"distribution": "normal"}}}}
    )
    with pytest.raises(SweepSpecError) as caught:
        space.grid(spec)
    assert str(caught.value).startswith(
        "sweep spec: parameters.nested.parameters.lr: grid search cannot enumerate "
        "distribution normal"
    )


# ---------------------------------------------------------------------------------------------
# Command macros, as W&B's agent expands them

CONFIG = {
    "batch_size": 32,
    "flag": False,
    "on": True,
    "optimizer.lr": 0.001,
    "optimizer.nadam.beta": 0.9,
}
CONFIG = {"batch_size": 32, "flag": False, "on": True}
CONFIG.update({"optimizer.lr": 0.001, "optimizer.nadam.beta": 0.9})
NADAM = {"parameters": {"beta": {"values": [0.9]}}}
PARAMS = {
    "batch_size": {"values": [32, 64]},
    "flag": {"values": [True, False]},
    "on": {"values": [True, False]},
    "optimizer": {"parameters": {"lr": {"values": [0.001, 0.01]}, "nadam": NADAM}},
}
# What wandb/sdk/launch/sweeps/utils.py create_sweep_command_args makes of CONFIG, whose nested
# parameters reach the agent as one dict per top-level key (wandb/sweeps params.py to_config).
NESTED = "{'lr': 0.001, 'nadam': {'beta': 0.9}}"
JSON = (  # W&B: json.dumps of the config, default separators
    '{"batch_size": 32, "flag": false, "on": true, '
    '"optimizer": {"lr": 0.001, "nadam": {"beta": 0.9}}}'
)
WANDB = {
    "args": ["--batch_size=32", "--flag=False", "--on=True", f"--optimizer={NESTED}"],
    "args_no_equals": [
        "--batch_size",
        "32",
        "--flag",
        "False",
        "--on",
        "True",
        "--optimizer",
        NESTED,
    ],
    "args_no_hyphens": ["batch_size=32", "flag=False", "on=True", f"optimizer={NESTED}"],
    "args_no_boolean_flags": ["--batch_size=32", "--on", f"--optimizer={NESTED}"],
    "args_append_hydra": ["+batch_size=32", "+flag=False", "+on=True", f"+optimizer={NESTED}"],
    "args_override_hydra": [
        "++batch_size=32",
        "++flag=False",
        "++on=True",
        f"++optimizer={NESTED}",
    ],
    "args_json": [JSON],
}


@pytest.mark.parametrize("macro", sorted(WANDB))
def test_macros_expand_as_wandbs_agent(macro: str, tmp_path: Path) -> None:
    command = ["${env}", "${interpreter}", "${program}", f"${{{macro}}}"]
    spec = spec_of(PARAMS, program="train.py", command=command)
    words = trial_command(spec, CONFIG, workdir=tmp_path)
    assert words[:3] == ["/usr/bin/env", "python", "train.py"]
    assert words[3:] == WANDB[macro]


def test_args_json_file_and_envvar(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATA_DIR", "/data/x")
    monkeypatch.delenv("UNSET_VAR", raising=False)
    spec = spec_of(
        PARAMS,
        program="train.py",
        command=[
            "python3",
            "${program}",
            "--config",
            "${args_json_file}",
            "--data=${envvar:DATA_DIR}/in",
            "${envvar:UNSET_VAR}",
        ],
    )
    workdir = tmp_path / "trial-1"
    words = trial_command(spec, CONFIG, workdir=workdir)
    assert words[:3] == ["python3", "train.py", "--config"]
    assert words[3] == str(workdir / "args.json")
    assert (workdir / "args.json").read_text() == WANDB["args_json"][0]
    assert words[4:] == ["--data=/data/x/in", "UNSET_VAR"]  # W&B leaves an unset NAME as NAME


def test_placeholders(tmp_path: Path) -> None:
    spec = spec_of(
        PARAMS,
        command=[
            "run",
            "--bs={batch_size}",
            "out/{optimizer.lr}-{on}",
            "{optimizer.nadam}",
            "{{batch_size}}",
            '{"a": 1}',
        ],
        expbook={"seed_param": "seed"},
    )
    words = trial_command(spec, {**CONFIG, "seed": 7}, workdir=tmp_path)
    assert words == [
        "run",
        "--bs=32",
        "out/0.001-True",
        '{"beta": 0.9}',
        "{batch_size}",
        '{"a": 1}',
    ]
    spec = spec_of(PARAMS, command=["run", "--seed={seed}"], expbook={"seed_param": "seed"})
    assert trial_command(spec, {**CONFIG, "seed": 7}, workdir=tmp_path) == ["run", "--seed=7"]
    with pytest.raises(SweepSpecError, match=r"command\[1\]: \{seed\} names no parameter"):
        trial_command(spec, CONFIG, workdir=tmp_path)


def test_dotted_wandb_keys_stay_whole_in_args(tmp_path: Path) -> None:
    spec = load_spec(
        DATA / "wandb-docs-command.yaml"
    )  # `optimizer.config.learning_rate` next to `optimizer`
    config = {"optimizer.config.learning_rate": 0.01, "experiment": "expt001", "optimizer": "sgd"}
    assert trial_command(spec, config, workdir=tmp_path)[2:] == [
        "main.py",
        "experiment=expt001",
        "optimizer=sgd",
        "optimizer.config.learning_rate=0.01",
    ]


def test_trial_command_without_a_program(tmp_path: Path) -> None:
    spec = spec_of({"a": {"value": 1}})  # the default command: ${program} needs one
    with pytest.raises(SweepSpecError, match=r"^sweep spec: program: missing"):
        trial_command(spec, {"a": 1}, workdir=tmp_path)


# ---------------------------------------------------------------------------------------------
# Constraints are evaluated on a checked syntax tree


def test_constraints_are_safe_and_bounded() -> None:
    spec = spec_of(
        {"a": {"min": 1, "max": 10}, "opt": {"parameters": {"lr": {"min": 0.0, "max": 1.0}}}},
        expbook={
            "constraints": [
                "opt.lr * a < 5 and log10(a) >= 0",
                "a in [1, 2, 3] or a > 4",
                "a ** 10 ** 10 > 0",
            ]
        },
    )
    started = time.monotonic()
    with pytest.raises(SweepSpecError, match=r"constraints\[2\]: 'a \*\* 10 \*\* 10 > 0' fails"):
        check_params(spec, {"a": 2, "opt.lr": 0.5})
    assert time.monotonic() - started < 1
    with pytest.raises(SweepSpecError, match=r"'a in \[1, 2, 3\] or a > 4' is false for a=4"):
        check_params(spec, {"a": 4, "opt.lr": 0.5})
    for text in ("a.__class__ > 0", "(lambda: 1)() > 0", "open('x')", "a if a else b"):
        with pytest.raises(SweepSpecError):
            spec_of({"a": {"value": 1}}, expbook={"constraints": [text]})


def test_importing_the_spec_loads_no_heavy_library() -> None:
    result = run_python(
        "import sys, expbook.sweep.spec as s\n"
        "s.parse_spec({'method': 'random', 'parameters': {'a': {'min': 0.0, 'max': 1.0}}})\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'optuna', 'scipy', 'numpy'}))"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_examples_in_the_spec_reference_parse() -> None:
    from expbook.sweep.spec import yaml_loader

    doc = (Path(__file__).parents[1] / "docs" / "sweep-spec.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", doc, re.S)
    base = {
        "method": "bayes",
        "program": "train.py",
        "metric": {"name": "val/loss"},
        "parameters": {
            name: {"values": [1, 2]}
            for name in ("lr", "batch_size", "hidden", "layers", "dropout", "optimizer")
        }
        | {"optimizer.lr": {"values": [0.1]}, "optimizer.momentum": {"values": [0.9]}},
    }
    assert len(blocks) >= 12
    for block in blocks:
        data = yaml.load(block, Loader=yaml_loader())
        data = {**base, **data}
        if "metrics" in data:
            del data["metric"]
        data["expbook"] = {"seed_param": "seed", **data.get("expbook", {})}
        spec = parse_spec(data)
        if spec.method == "grid":
            assert space.grid(spec)
        else:
            study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
            assert space.contains(spec, space.suggest(study.ask(), spec))
