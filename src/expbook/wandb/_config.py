"""``wandb.config`` (params of the run) and ``wandb.summary`` (summary values)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from expbook.errors import ExpbookError

if TYPE_CHECKING:
    from expbook.wandb._run import WandbRun


class ConfigError(ExpbookError, ValueError):
    """A config key would change value without ``allow_val_change=True`` (W&B's rule)."""


def as_dict(config: Any) -> dict[str, Any]:
    """A mapping, an ``argparse.Namespace``, a dataclass or an object with ``__dict__``."""
    if config is None:
        return {}
    if isinstance(config, Mapping):
        return dict(config)
    if isinstance(config, Config):
        return config.as_dict()
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return dataclasses.asdict(config)
    if hasattr(config, "model_dump"):  # pydantic
        return dict(config.model_dump())
    if hasattr(config, "__dict__"):  # argparse.Namespace and plain objects
        return {k: v for k, v in vars(config).items() if not k.startswith("_")}
    raise TypeError(
        f"wandb config must be a dict, an argparse.Namespace or a dataclass, "
        f"not {type(config).__name__}"
    )


class Config:
    """The run's configuration: ``config.lr``, ``config["lr"]``, ``update``, ``setdefaults``.

    Every key set is recorded as a param of the run (nested dicts as ``a.b`` keys). Changing a
    key's value raises ``ConfigError`` unless ``update(..., allow_val_change=True)``, as in W&B.
    """

    def __init__(self, run: WandbRun | None) -> None:
        object.__setattr__(self, "_run", run)
        object.__setattr__(self, "_items", {})

    def update(self, values: Any, allow_val_change: bool | None = None) -> None:
        """Set many keys at once.

        Raises:
            ConfigError: a key already set would change value and ``allow_val_change`` is not
                true.
            InvalidKeyError, InvalidValueError: a key or value cannot be stored as a param.
        """
        new = as_dict(values)
        if not allow_val_change:
            for key, value in new.items():
                if key in self._items and self._items[key] != value:
                    raise ConfigError(
                        f"wandb.config: key {key!r} would change from {self._items[key]!r} to "
                        f"{value!r}; pass allow_val_change=True to config.update() to change it"
                    )
        changed = {k: v for k, v in new.items() if k not in self._items or self._items[k] != v}
        if changed:
            if self._run is not None:
                self._run.expbook_run.log_params(changed)  # validates before anything is kept
            self._items.update(changed)

    def setdefaults(self, values: Any) -> dict[str, Any]:
        """Set the keys not set yet; return the whole config."""
        self.update({k: v for k, v in as_dict(values).items() if k not in self._items})
        return self.as_dict()

    def as_dict(self) -> dict[str, Any]:
        return dict(self._items)

    def keys(self) -> Any:
        return self._items.keys()

    def items(self) -> Any:
        return self._items.items()

    def values(self) -> Any:
        return self._items.values()

    def get(self, key: str, default: Any = None) -> Any:
        return self._items.get(key, default)

    def __getitem__(self, key: str) -> Any:
        return self._items[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.update({key: value})

    def __getattr__(self, name: str) -> Any:
        try:
            return self._items[name]
        except KeyError:
            raise AttributeError(f"wandb.config has no key {name!r}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        self.update({name: value})

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"wandb.config({self._items!r})"


class Summary:
    """``wandb.summary``: set values become the run's summary values (numbers only); reading a
    key gives the value set here, else the key's last logged value."""

    def __init__(self, run: WandbRun) -> None:
        self._run = run
        self._set: dict[str, float] = {}

    def __setitem__(self, key: str, value: Any) -> None:
        self.update({key: value})

    def update(self, values: Mapping[str, Any] | None = None, **more: Any) -> None:
        """Raises:
        InvalidKeyError, InvalidValueError: a key is not a metric key or a value not a number
            (nested dicts are flattened to ``a/b``).
        """
        from expbook.wandb._run import flatten

        flat = flatten({**(values or {}), **more})
        summary = self._run.expbook_run.summary
        for key, value in flat.items():
            summary[key] = value
            self._set[key] = summary[key]

    def __getitem__(self, key: str) -> float:
        if key in self._set:
            return self._set[key]
        return self._run.last_values()[key]

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def keys(self) -> list[str]:
        return sorted(set(self._run.last_values()) | set(self._set))

    def items(self) -> list[tuple[str, float]]:
        return [(key, self[key]) for key in self.keys()]

    def __contains__(self, key: object) -> bool:
        return key in self._set or key in self._run.last_values()

    def __repr__(self) -> str:
        return f"wandb.summary({dict(self.items())!r})"
