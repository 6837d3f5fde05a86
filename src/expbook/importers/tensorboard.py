"""TensorBoard event files -> runs, read with TensorBoard's own reader.

Each directory holding event files (``events.out.tfevents.*``) is a run, named after its path
under the log directory (the log directory's own name when it holds them itself). Scalars
become metric series with their step and wall time; the HParams plugin's session start info
becomes params. A subdirectory that holds an hparams session inside a run directory (PyTorch's
and tensorboardX's ``add_hparams`` write one, named after the time) is part of that run: its
hparams are the run's params and its scalars (``hparam/accuracy``) the run's metrics.

What the reader keeps is what TensorBoard shows: its accumulator drops the points a restarted
program wrote again (steps after the restart's first step: "orphaned data").
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from expbook.importers import ImportSourceError, SourceRun, require, run_uuid
from expbook.store.chunks import Points

SCALARS = "scalars"
HPARAMS = "hparams"
SESSION_START = "_hparams_/session_start_info"


def read_logdir(logdir: str | os.PathLike[str], experiment: str | None = None) -> list[SourceRun]:
    """The runs of a TensorBoard log directory, sorted by name.

    Raises:
        ImportSourceError: the directory does not exist, holds no event files, or the
            ``tensorboard`` package is not installed.
    """
    root = Path(logdir)
    if not root.is_dir():
        what = "is not a directory" if root.exists() else "does not exist"
        raise ImportSourceError(f"{logdir} {what}")
    require("tensorboard", "tensorboard")
    from tensorboard.backend.event_processing import io_wrapper

    directories = sorted(Path(d) for d in io_wrapper.GetLogdirSubdirectories(str(root)))
    if not directories:
        raise ImportSourceError(f"no TensorBoard event files (events.out.tfevents.*) in {logdir}")
    runs: dict[Path, SourceRun] = {}
    for directory in directories:
        loaded = _load(directory)
        owner = runs.get(directory.parent)
        if owner is not None and _is_hparams_session(directory, loaded):
            _add(owner, loaded)
            continue
        run = SourceRun(
            id=run_uuid(f"tensorboard:{directory.resolve().name}/{_first_event_file(directory)}"),
            name=_run_name(root, directory),
            origin=str(directory),
            started_at=_first_time(loaded, directory),
            experiment=experiment,
        )
        _add(run, loaded)
        runs[directory] = run
    return sorted(runs.values(), key=lambda run: run.name)


def _load(directory: Path) -> Any:
    """TensorBoard's accumulator for one run directory, with every scalar and tensor kept (its
    default keeps a sample) and one of everything else (only counted). The classic
    accumulator, not the plugin one: that one turns every scalar into a tensor proto first,
    five times slower (benchmarks/bench_import.py)."""
    from tensorboard.backend.event_processing import event_accumulator as ea

    accumulator = ea.EventAccumulator(
        str(directory),
        size_guidance={
            ea.SCALARS: 0, ea.TENSORS: 0, ea.IMAGES: 1, ea.AUDIO: 1, ea.HISTOGRAMS: 1,
            ea.COMPRESSED_HISTOGRAMS: 1, ea.GRAPH: 1, ea.META_GRAPH: 1, ea.RUN_METADATA: 1,
        },
    )  # fmt: skip
    accumulator.Reload()
    return accumulator


def _first_time(loaded: Any, directory: Path) -> float:
    try:
        return float(loaded.FirstEventTimestamp())
    except ValueError:  # event files without any event
        return min(p.stat().st_mtime for p in directory.iterdir() if "tfevents" in p.name)


def _is_hparams_session(directory: Path, loaded: Any) -> bool:
    return SESSION_START in _plugin_tags(loaded, HPARAMS)


def _plugin_tags(loaded: Any, plugin: str) -> dict[str, bytes]:
    try:
        return loaded.PluginTagToContent(plugin)
    except KeyError:  # no tag of that plugin
        return {}


def _first_event_file(directory: Path) -> str:
    return min(p.name for p in directory.iterdir() if "tfevents" in p.name)


def _run_name(root: Path, directory: Path) -> str:
    relative = directory.relative_to(root).as_posix()
    return root.resolve().name if relative == "." else relative


def _add(run: SourceRun, loaded: Any) -> None:
    """Add the scalars and hparams of one accumulator to ``run``; count the rest as skipped."""
    tags = loaded.Tags()
    series = {tag: _scalar_points(loaded.Scalars(tag)) for tag in tags["scalars"]}
    by_plugin: dict[str, int] = {}
    for tag in tags["tensors"]:
        plugin = loaded.SummaryMetadata(tag).plugin_data.plugin_name
        if plugin == SCALARS:
            series[tag] = _tensor_points(loaded.Tensors(tag))
        elif plugin != HPARAMS:
            by_plugin[plugin or "tensors"] = by_plugin.get(plugin or "tensors", 0) + 1
    for tag in sorted(series):
        points = series[tag]
        if len(points):
            run.add_points(tag, points)
            end = max(points.times)
            run.ended_at = end if run.ended_at is None else max(run.ended_at, end)
            run.started_at = min(run.started_at, min(points.times))
    content = _plugin_tags(loaded, HPARAMS)
    if SESSION_START in content:
        run.add_params(_hparams(content[SESSION_START]))
    for kind in ("images", "audio", "histograms"):
        by_plugin[kind] = by_plugin.get(kind, 0) + len(tags[kind])
    for plugin, count in sorted(by_plugin.items()):
        if count:
            run.skipped[f"{plugin} tags"] += count
    if tags.get("graph") or tags.get("meta_graph"):
        run.skipped["graphs"] += 1
    if tags.get("run_metadata"):
        run.skipped["run metadata (profiles)"] += len(tags["run_metadata"])


def _scalar_points(events: list[Any]) -> Points:
    """``simple_value`` scalars (PyTorch, tensorboardX, Keras, TF 1)."""
    points = Points()
    for event in events:
        points.append(int(event.step), float(event.value), float(event.wall_time), None)
    return points


def _tensor_points(events: list[Any]) -> Points:
    """Scalars written as tensors (``tf.summary.scalar`` in TF 2)."""
    from tensorboard.util import tensor_util

    points = Points()
    for event in events:
        proto = event.tensor_proto
        if len(proto.float_val) == 1:
            value = proto.float_val[0]
        elif len(proto.double_val) == 1:
            value = proto.double_val[0]
        else:
            array = tensor_util.make_ndarray(proto)
            if array.size != 1:
                continue
            value = float(array.reshape(()))
        points.append(int(event.step), float(value), float(event.wall_time), None)
    return points


def _hparams(content: bytes) -> dict[str, Any]:
    """The hparams of an HParams plugin session start: numbers (whole ones as ints), strings
    and booleans."""
    from tensorboard.plugins.hparams import plugin_data_pb2

    data = plugin_data_pb2.HParamsPluginData.FromString(content)
    params: dict[str, Any] = {}
    for name, value in data.session_start_info.hparams.items():
        kind = value.WhichOneof("kind")
        if kind == "number_value":
            number = value.number_value
            params[name] = int(number) if number.is_integer() and abs(number) < 2**53 else number
        elif kind == "string_value":
            params[name] = value.string_value
        elif kind == "bool_value":
            params[name] = value.bool_value
    return params
