"""Sweeps: a set of ordinary runs chosen by a search algorithm (docs/sweeps.md).

A sweep is a row of its own (``sweeps``: name, the spec as given, state, a version number) and
its trials are rows of ``sweep_trials``, each linked to the run that executed it (kind
``sweep-trial``). Every trial is a run like any other: params, curves, status, host, git state,
visible in the CLI, the UI and the report.

Layout:
- ``spec``: W&B's sweep YAML as it is, plus the ``expbook:`` block; ``SweepSpec``; one-line
  errors naming the field.
- ``space``: parameters -> Optuna distributions, suggestions, the grid, ``config_key``.
- ``command``: a trial's command line from the spec's ``command`` and its macros.
- ``engine``: an in-memory Optuna study rebuilt from the store's trials; asking for the next
  configuration; pruning from the metric series a trial logs.
- ``agent``: claims trials and runs each one through ``expbook run``; heartbeats its leases.
- ``api``: ``expbook.sweep(objective, ...)``, sweeps of a Python objective in this process
  (define-by-run, or a typed space read by ``pyspace``); this package is callable as it.

Coordination between agents (processes on one or many machines, one store) uses no lock held
across user code: every agent reads the sweep (with its ``version``) and its trials, asks Optuna
for a configuration in memory, then adds the trial with ``Store.add_trial(expected_version=...)``,
which succeeds only if no other agent added a trial or edited the sweep in between (one short
UPDATE ... WHERE version = v, then the INSERT, in one transaction); on a conflict it re-reads and
asks again. So the same configuration is never handed out twice, and there is one lock order (the
sweep row, then its trials): no deadlock class of bugs. Trials are leased to a worker with a
heartbeat; a trial whose heartbeat is stale is marked ``crashed`` by whichever agent notices, and
re-queued when the spec allows (``Store.expire_trials``).
"""

import sys as _sys
import types as _types


class _CallableModule(_types.ModuleType):
    """``expbook.sweep`` is this package and also the function ``expbook.sweep(objective,
    ...)`` (``expbook.sweep.api.sweep``; a package and a function cannot share one name
    otherwise: importing any ``expbook.sweep.*`` module rebinds ``expbook.sweep``)."""

    def __call__(self, objective, /, **options):  # type: ignore[no-untyped-def]
        from expbook.sweep.api import sweep

        return sweep(objective, **options)


_sys.modules[__name__].__class__ = _CallableModule
