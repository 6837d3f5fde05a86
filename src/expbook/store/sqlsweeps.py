"""Sweeps on SQL stores (``SqlSweeps``, mixed into ``SqlStore``): see docs/design.md
"Sweeps: coordinated through the store"."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from expbook.model import SweepRecord, TrialRecord, TrialState


class SqlSweeps:
    """The sweep methods of the Store contract (being implemented)."""

    def create_sweep(
        self, name: str, spec: Mapping[str, Any], *, experiment: str | None = None
    ) -> SweepRecord:
        raise NotImplementedError

    def get_sweep(self, ref: str) -> SweepRecord:
        raise NotImplementedError

    def list_sweeps(self) -> list[SweepRecord]:
        raise NotImplementedError

    def update_sweep(
        self,
        sweep_id: str,
        *,
        spec: Mapping[str, Any] | None = None,
        state: str | None = None,
        expected_version: int | None = None,
    ) -> SweepRecord | None:
        raise NotImplementedError

    def delete_sweep(self, sweep_id: str) -> None:
        raise NotImplementedError

    def list_trials(self, sweep_id: str) -> list[TrialRecord]:
        raise NotImplementedError

    def add_trial(
        self,
        sweep_id: str,
        *,
        expected_version: int,
        params: Mapping[str, Any],
        config_key: str,
        config: int | None = None,
        repeat: int = 0,
        worker: str | None,
        state: TrialState = TrialState.RUNNING,
        run_id: str | None = None,
        values: Sequence[float | None] | None = None,
    ) -> TrialRecord | None:
        raise NotImplementedError

    def claim_trial(self, sweep_id: str, worker: str) -> TrialRecord | None:
        raise NotImplementedError

    def heartbeat_trials(self, sweep_id: str, numbers: Sequence[int], worker: str) -> set[int]:
        raise NotImplementedError

    def update_trial(
        self, sweep_id: str, number: int, *, worker: str | None, **fields: Any
    ) -> bool:
        raise NotImplementedError

    def expire_trials(
        self, sweep_id: str, *, stale_after: float, max_attempts: int = 1
    ) -> list[TrialRecord]:
        raise NotImplementedError
