"""A W&B-compatible API: ``import expbook.wandb as wandb`` and keep the rest of the script.

``wandb.init`` starts an expbook run (project → experiment, config → params, tags, group → a
``group:NAME`` tag, notes → a note, job_type → the run's kind); ``wandb.log`` keeps W&B's step
rules; ``wandb.Image`` and ``wandb.Table`` become artifacts. What expbook does not provide raises
``NotImplementedError`` naming the function and what to use instead. See docs/wandb.md.

Loaded only when imported: ``import expbook`` does not import it.
"""

from __future__ import annotations

import atexit
from typing import Any

from expbook.errors import ExpbookError
from expbook.wandb._config import Config, ConfigError, Summary
from expbook.wandb._media import Image, Table, unsupported
from expbook.wandb._run import WandbRun

__all__ = [
    "Config",
    "ConfigError",
    "Error",
    "Image",
    "Summary",
    "Table",
    "WandbRun",
    "config",
    "define_metric",
    "finish",
    "init",
    "log",
    "log_artifact",
    "login",
    "run",
    "summary",
]


class Error(ExpbookError, RuntimeError):
    """A W&B call made at the wrong time (``wandb.log`` before ``wandb.init``)."""


class _PreInit:
    """``wandb.config`` / ``wandb.summary`` before ``wandb.init``: every use says so."""

    def __init__(self, name: str) -> None:
        object.__setattr__(self, "_name", name)

    def _fail(self, *args: Any, **kwargs: Any) -> Any:
        raise Error(f"{self._name} used before wandb.init(): call wandb.init() first")

    __getattr__ = __getitem__ = __setitem__ = __setattr__ = __contains__ = __iter__ = _fail

    def __repr__(self) -> str:
        return f"<{self._name} before wandb.init()>"


run: WandbRun | None = None
config: Any = _PreInit("wandb.config")
summary: Any = _PreInit("wandb.summary")

_state: dict[str, Any] = {"atexit": False, "runs": []}

_INSTEAD = {
    "watch": "gradient and parameter histograms are not recorded; log norms with wandb.log",
    "unwatch": "wandb.watch is not supported either",
    "restore": "use `expbook artifact get RUN NAME`",
    "alert": "use wandb.run.expbook_run.note(text) to record it (expbook sends no alerts)",
    "log_code": "expbook records the git commit and diff of every run already",
    "use_artifact": "W&B artifact lineage is not supported; use `expbook artifact get`",
    "sweep": "use `expbook sweep` or Optuna",
    "agent": "use `expbook sweep` or Optuna",
    "mark_preempting": "a SIGTERM already marks the run interrupted",
    "log_model": "use wandb.log_artifact(path)",
    "link_model": "use wandb.log_artifact(path)",
    "use_model": "use `expbook artifact get`",
    "Api": "read runs with expbook.open_store() (docs/tracking.md)",
    "Artifact": "use wandb.log_artifact(path, name=...)",
}


def _not_supported(name: str) -> Any:
    def call(*args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"wandb.{name}() is not supported by expbook: {_INSTEAD[name]}")

    call.__name__ = name
    return call


UNSUPPORTED = {name: _not_supported(name) for name in _INSTEAD}
"""W&B functions expbook does not provide: calling one raises ``NotImplementedError``."""

Histogram = unsupported("Histogram", "log summary numbers (min, mean, max) with wandb.log")
Audio = unsupported("Audio", "log the file with wandb.log_artifact(path)")
Video = unsupported("Video", "log the file with wandb.log_artifact(path)")
Html = unsupported("Html", "log the file with wandb.log_artifact(path)")
Object3D = unsupported("Object3D", "log the file with wandb.log_artifact(path)")
Molecule = unsupported("Molecule", "log the file with wandb.log_artifact(path)")

_IGNORED_INIT = ("entity", "dir", "save_code", "anonymous", "settings")


def init(
    project: str | None = None,
    name: str | None = None,
    config: Any = None,
    tags: list[str] | tuple[str, ...] | None = None,
    group: str | None = None,
    notes: str | None = None,
    job_type: str | None = None,
    reinit: bool | str | None = None,
    mode: str | None = None,
    id: str | None = None,
    resume: bool | str | None = None,
    allow_val_change: bool | None = None,
    config_exclude_keys: list[str] | None = None,
    config_include_keys: list[str] | None = None,
    **other: Any,
) -> WandbRun:
    """Start an expbook run the W&B way; see docs/wandb.md for the mapping.

    Raises:
        NotImplementedError: ``mode="disabled"``, resuming a run, or a W&B option expbook does
            not provide (named in the message).
        InvalidKeyError, InvalidValueError: a config key or value, tag or name cannot be stored.
    """
    _check_options(other, mode)
    if run is not None:
        if reinit in (None, False, "default", "return_previous"):
            return run
        if reinit in (True, "finish_previous"):
            run.finish()
        elif reinit != "create_new":
            raise ValueError(f"wandb.init(reinit={reinit!r}): use True, False, "
                             "'finish_previous', 'return_previous' or 'create_new'")  # fmt: skip
    _check_resume(resume, id)
    values = _config_values(config, config_include_keys, config_exclude_keys)
    return _start(project, name, values, tags, group, notes, job_type, id, allow_val_change)


def _check_options(other: dict[str, Any], mode: str | None) -> None:
    for key, value in other.items():
        if key not in _IGNORED_INIT and value is not None and value is not False:
            raise NotImplementedError(
                f"wandb.init({key}=...) is not supported by expbook; see docs/wandb.md"
            )
    if mode == "disabled":
        raise NotImplementedError(
            "wandb.init(mode='disabled') is not supported by expbook: it records locally "
            "(online and offline are the same); to record nothing, do not call wandb.init"
        )
    if mode not in (None, "online", "offline", "shared"):
        raise ValueError(f"wandb.init(mode={mode!r}): use 'online' or 'offline'")


def _check_resume(resume: bool | str | None, given_id: str | None) -> None:
    if resume in (None, False, "never"):
        return
    earlier = []
    if given_id is not None:
        import expbook

        store = expbook.default_tracker().store()
        earlier = store.runs(f"tags has 'wandb-id:{given_id}'") if "'" not in given_id else []
    if earlier or resume == "must":
        raise NotImplementedError(
            f"wandb.init(resume={resume!r}, id={given_id!r}): expbook cannot continue a "
            "run; start a new one with parent= in expbook.start_run, or drop resume"
        )


def _config_values(config: Any, include: list[str] | None,
                   exclude: list[str] | None) -> dict[str, Any]:  # fmt: skip
    from expbook.wandb._config import as_dict

    values = as_dict(config)
    if include is not None:
        values = {k: v for k, v in values.items() if k in include}
    return {k: v for k, v in values.items() if k not in (exclude or ())}


def _start(project: str | None, name: str | None, values: dict[str, Any],
           tags: Any, group: str | None, notes: str | None, job_type: str | None,
           given_id: str | None, allow_val_change: bool | None) -> WandbRun:  # fmt: skip
    import expbook

    all_tags = [*(tags or ())]
    if group is not None:
        all_tags.append(f"group:{group}")
    if given_id is not None:
        all_tags.append(f"wandb-id:{given_id}")
    started = expbook.start_run(name, experiment=project, tags=all_tags, kind=job_type or "train")
    new = WandbRun(started, project=project, group=group, job_type=job_type,
                   tags=tuple(tags or ()), notes=notes, given_id=given_id)  # fmt: skip
    try:
        new.config.update(values, allow_val_change=allow_val_change)
        sweep = _sweep_params()
        if sweep:  # a sweep trial's params win over the program's defaults, as in W&B
            new.config.update(sweep, allow_val_change=True)
        if notes:
            started.note(notes)
    except BaseException as error:
        started.finish("failed", error=f"wandb.init failed: {error}")
        raise
    _become_current(new)
    return new


def _sweep_params() -> dict[str, Any]:
    """The params of the sweep trial this process runs, when a sweep agent (expbook's or W&B's
    own) gave them in ``WANDB_SWEEP_PARAM_PATH``: ``{name: {"value": v}}`` as YAML or JSON."""
    import os

    path = os.environ.get("WANDB_SWEEP_PARAM_PATH")
    if not path or not os.path.exists(path):
        return {}
    import yaml

    with open(path, encoding="utf-8") as handle:
        data = yaml.safe_load(handle) or {}
    return {
        name: entry["value"] if isinstance(entry, dict) and "value" in entry else entry
        for name, entry in data.items()
        if name not in ("wandb_version", "_wandb")
    }


def _become_current(new: WandbRun) -> None:
    global run, config, summary
    run, config, summary = new, new.config, new.summary
    _state["runs"].append(new)
    if not _state["atexit"]:  # after expbook's own exit hook, so it runs first
        atexit.register(_write_pending_at_exit)
        _state["atexit"] = True


def _forget(ended: WandbRun) -> None:
    global run, config, summary
    if ended in _state["runs"]:
        _state["runs"].remove(ended)
    if run is ended:
        latest = _state["runs"][-1] if _state["runs"] else None
        run = latest
        config = latest.config if latest else _PreInit("wandb.config")
        summary = latest.summary if latest else _PreInit("wandb.summary")


def _write_pending_at_exit() -> None:
    """A script that ends without wandb.finish(): its last row is written before expbook's exit
    hook ends the run (finished, or failed after an uncaught exception)."""
    for open_run in list(_state["runs"]):
        open_run.flush_pending()


def _current(function: str) -> WandbRun:
    if run is None:
        raise Error(f"wandb.{function}() called before wandb.init(): call wandb.init() first")
    return run


def log(data: dict[str, Any], step: int | None = None, commit: bool | None = None) -> None:
    """``wandb.run.log``: see ``WandbRun.log`` and docs/wandb.md."""
    _current("log").log(data, step=step, commit=commit)


def define_metric(name: str, step_metric: str | None = None, **options: Any) -> None:
    """``wandb.run.define_metric``: see ``WandbRun.define_metric``."""
    _current("define_metric").define_metric(name, step_metric=step_metric, **options)


def finish(exit_code: int | None = None, quiet: bool | None = None) -> None:
    """End the current run (``failed`` when ``exit_code`` is non-zero); nothing without one."""
    if run is not None:
        run.finish(exit_code=exit_code)


def log_artifact(artifact_or_path: Any, name: str | None = None, type: str | None = None,
                 aliases: list[str] | None = None) -> list[Any]:  # fmt: skip
    """Keep a file or folder with the run (``run.log_artifact``); a ``wandb.Artifact`` object
    is not supported.

    Raises:
        NotImplementedError: ``artifact_or_path`` is not a path.
    """
    import os

    if not isinstance(artifact_or_path, str | os.PathLike):
        raise NotImplementedError("wandb.log_artifact() takes a path in expbook, not "
                                  f"a {artifact_or_path.__class__.__name__}")  # fmt: skip
    return _current("log_artifact").expbook_run.log_artifact(artifact_or_path, name)


def save(glob_str: Any = None, base_path: str | None = None, policy: str = "live") -> list[str]:
    """Keep files with the current run as artifacts, now and when it ends (``WandbRun.save``)."""
    return _current("save").save(glob_str, base_path, policy)


def login(*args: Any, **kwargs: Any) -> bool:
    """Nothing to log in to: expbook records to its store (``EXPBOOK_STORE``)."""
    return True


def __getattr__(name: str) -> Any:
    if name in UNSUPPORTED:
        return UNSUPPORTED[name]
    raise AttributeError(f"module 'expbook.wandb' has no attribute {name!r}")
