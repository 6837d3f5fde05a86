"""Request and response models of the JSON API: they document it (``/api/openapi.json``,
``/api/docs``) and validate what clients send. Responses are produced as plain data (see
``encoding.py``): NaN and infinities are the strings ``"NaN"``, ``"Infinity"``,
``"-Infinity"`` wherever a number is expected."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Number = float | str | None
"""A metric value: a number, or "NaN"/"Infinity"/"-Infinity", or null."""


class FilterProblem(BaseModel):
    message: str = Field(description="the whole message, with the position")
    reason: str = Field(description="what is wrong")
    position: int = Field(description="0-based offset of the problem in text")
    text: str = Field(description="the filter or sort expression")


class Error(BaseModel):
    detail: str | FilterProblem = Field(
        description="what is wrong, naming the value; a filter's syntax error with its position"
    )


class Info(BaseModel):
    store: str = Field(description="the store's URL, without password")
    version: str
    schema_: str | None = Field(alias="schema", description="the store's schema revision")
    runs: int
    read_only: bool = Field(
        description="whether changes are refused: a --read-only server, or a read-only token"
    )


class WhoAmI(BaseModel):
    name: str | None = Field(description="the API token's name; null on a server without auth")
    read_only: bool = Field(
        description="whether changes are refused: a read-only token, or a --read-only server"
    )
    auth: bool = Field(description="whether the server needs an API token (expbook server)")


class MetricCell(BaseModel):
    value: Number
    unit: str | None = None


class RunRow(BaseModel):
    id: str
    number: int
    name: str
    status: str = Field(description="running, finished, failed, interrupted, crashed or pruned")
    experiment: str | None
    kind: str
    parent_number: int | None
    started_at: float = Field(description="Unix time")
    ended_at: float | None
    duration: float | None = Field(description="seconds")
    tags: list[str]
    commit: str | None = Field(description="short git commit")
    dirty: bool | None
    params: dict[str, Any] = Field(description="the page's param columns")
    metrics: dict[str, MetricCell] = Field(description="the page's metric columns")


class ListParam(BaseModel):
    """A param that is a list of words (Cargo features, a repeated flag), element-wise."""

    key: str
    common: list[str] = Field(description="the elements every run with the param has")
    varying: list[str] = Field(description="the elements some runs have and others do not")
    runs: dict[str, list[str] | None] = Field(
        description="per run number: the varying elements it has (null: the param is not set)"
    )
    removed: list[str] | None = Field(
        None, description="two runs: the elements the first has and the second has not"
    )
    added: list[str] | None = Field(
        None, description="two runs: the elements the second has and the first has not"
    )


class ListParams(BaseModel):
    lists: list[ListParam]


class RunPage(BaseModel):
    total: int = Field(description="runs matching the filter, all pages")
    offset: int
    limit: int
    params: list[str] = Field(description="param columns: those that vary among these runs")
    metrics: list[str] = Field(description="metric columns: those most of these runs have")
    runs: list[RunRow]
    lists: list[ListParam] = Field(
        default_factory=list, description="the param columns that are lists of words"
    )


class MetricEstimate(BaseModel):
    """One metric over a group's runs, as ``expbook compare`` summarises a side."""

    n: int = Field(description="the group's runs that have the metric")
    mean: Number = Field(description="the mean of their values; null when n = 0")
    std: Number = Field(description="the sample standard deviation; null when n < 2")
    ci: list[Number] | None = Field(
        description="[low, high]: the confidence interval of the mean (Student's t); null when "
        "n < 2, where run-to-run noise is unknown"
    )
    runs: list[int] = Field(description="the numbers of the runs whose values these are")
    values: list[Number] = Field(description="each of those runs' value, in the same order")


class RunGroup(BaseModel):
    params: dict[str, Any] = Field(
        description="the params the group's runs share: the group_by keys (a key its runs do "
        "not have is left out), or with group_by=* every param but the seeds"
    )
    n: int = Field(description="runs in the group")
    noise_unknown: bool = Field(description="n = 1: nothing to estimate run-to-run noise from")
    runs: list[int] = Field(description="the group's run numbers, in the order of the sort")
    ids: list[str] = Field(description="the same runs' ids")
    metrics: dict[str, MetricEstimate] = Field(description="per metric column")


class GroupPage(BaseModel):
    """``GET /api/runs`` with ``group_by``: the runs the query selects, grouped."""

    group_by: list[str] = Field(description="the params grouped by, or ['*']")
    total: int = Field(description="groups, all pages")
    run_count: int = Field(description="runs the query selected (all of them are grouped)")
    offset: int
    limit: int
    params: list[str] = Field(description="param columns: the group_by keys, or with * the "
                              "params that differ between groups")  # fmt: skip
    metrics: list[str] = Field(description="metric columns: those named, or those most runs "
                               "have")  # fmt: skip
    value: Literal["last", "min", "max", "best"] = Field(description="which value of each "
                                                         "run's metric is used")  # fmt: skip
    confidence: float = Field(description="the confidence level of each ci")
    groups: list[RunGroup] = Field(description="in the order of each group's first run")


class Summary(BaseModel):
    value: Number
    step: int | None = None
    epoch: Number = None
    time: float | None = None
    min: Number = None
    min_step: int | None = None
    min_epoch: Number = None
    max: Number = None
    max_step: int | None = None
    max_epoch: Number = None
    count: int = 0
    unit: str | None = None


class NoteOut(BaseModel):
    id: int
    created_at: float
    text: str = Field(description="markdown")
    html: str = Field(description="the markdown rendered, raw HTML disabled")


class Chart(BaseModel):
    title: str = Field(description="the metric, without its data split: 'loss'")
    keys: list[str] = Field(description="its series: 'train/loss', 'valid/loss'")


class Child(BaseModel):
    number: int
    name: str
    kind: str


class Artifact(BaseModel):
    name: str = Field(description="its path inside the run")
    sha256: str
    size: int = Field(description="bytes")
    logged_at: float
    media_type: str = Field(description="by its name's extension")
    preview: Literal["image", "text"] | None = Field(
        description="what the run page shows inline; null: a download"
    )


class RunDetail(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str
    number: int
    name: str
    status: str
    experiment: str | None
    kind: str
    parent_id: str | None
    parent_number: int | None
    started_at: float
    ended_at: float | None
    heartbeat_at: float | None
    duration: float | None
    exit_code: int | None
    error: str | None
    recording_error: str | None = Field(
        None,
        description="a failure of expbook's own recording (what the run may lack); never the "
        "program's failure, which is `error`",
    )
    command: list[str]
    cwd: str | None
    pid: int | None
    hostname: str | None
    git: dict[str, Any]
    host: dict[str, Any]
    params: dict[str, Any]
    tags: list[str]
    metrics: dict[str, Summary]
    notes: list[NoteOut]
    series_keys: list[str]
    charts: list[Chart]
    attachments: dict[str, int] = Field(description="name -> size in bytes")
    children: list[Child] = Field(description="runs whose parent this is (evals, reruns)")
    artifacts: list[Artifact] = Field(
        default_factory=list, description="files the run keeps (docs/artifacts.md), by name"
    )


class RunChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, min_length=1)
    experiment: str | None = Field(default=None, description="an experiment name; null detaches")


class NoteText(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, description="markdown")


class Tags(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tags: list[str] = Field(min_length=1)


class Output(BaseModel):
    lines: list[str]
    truncated: bool = Field(description="earlier output exists")
    cursor: int = Field(description="pass as ?after= to get only what comes next")


class SeriesData(BaseModel):
    run: int
    name: str
    key: str
    total: int = Field(description="points in the step range before downsampling")
    reduced: bool = Field(description="whether points were left out")
    steps: list[int]
    values: list[Number]
    epochs: list[Number] = Field(description="NaN where no epoch was logged")
    times: list[Number] = Field(description="Unix times")


class SeriesList(BaseModel):
    series: list[SeriesData]


class Experiment(BaseModel):
    id: int
    name: str
    description: str | None
    hypothesis: str | None
    conclusion: str | None
    created_at: float
    updated_at: float
    run_count: int
    html: dict[str, str] = Field(description="description, hypothesis, conclusion as HTML")


class ExperimentDetail(Experiment):
    params: list[str]
    metrics: list[str]
    runs: list[RunRow]
    lists: list[ListParam] = Field(
        default_factory=list, description="the param columns that are lists of words"
    )
    metric: str | None = Field(description="the metric that ranks the runs")
    mode: str = Field(description="min or max")
    best: int | None = Field(description="number of the best finished run")


class ExperimentChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, min_length=1)
    description: str | None = None
    hypothesis: str | None = None
    conclusion: str | None = None


# --- sweeps (server/sweeps.py) ------------------------------------------------------------------


class SweepMetric(BaseModel):
    name: str = Field(description="the metric's key as the trials log it")
    goal: str = Field(description="minimize or maximize")


class SweepBest(BaseModel):
    number: int = Field(description="the trial's number in the sweep (from 0)")
    run_number: int | None
    value: Number = Field(description="its value of the first metric")


class SweepRow(BaseModel):
    id: str
    name: str
    state: str = Field(description="running, stopped or finished")
    experiment: str | None
    method: str | None = Field(description="grid, random or bayes (null: the spec is unreadable)")
    metric: SweepMetric | None = Field(description="the first metric: what 'best' means")
    created_at: float = Field(description="Unix time")
    updated_at: float
    ended_at: float | None
    version: int = Field(description="grows with every change to the sweep or its set of trials")
    trial_count: int
    counts: dict[str, int] = Field(description="trials per state")
    best: SweepBest | None = Field(description="the best trial (expbook.sweep.analysis)")


class SweepParam(BaseModel):
    name: str = Field(description="flattened: optimizer.lr")
    kind: str = Field(description="constant, categorical, int or float")
    distribution: str = Field(description="the W&B distribution, given or inferred")
    log: bool = Field(description="log-distributed: drawn on a log axis")
    low: float | None = Field(description="lower bound in the user's values (null: none)")
    high: float | None
    values: list[Any] = Field(description="a categorical's values; a constant's value")


class SweepTrial(BaseModel):
    number: int
    config: int = Field(description="its configuration, shared by repeats and re-queued attempts")
    repeat: int
    attempt: int
    state: str = Field(description="queued, running, finished, failed, pruned, crashed or stopped")
    run_id: str | None
    run_number: int | None = Field(description="the run that executed it")
    params: dict[str, Any]
    values: list[Number] = Field(description="one per metric (null: not logged)")
    value: Number = Field(description="the first metric's value")
    pruned_step: int | None = Field(description="the step at which the pruner stopped it")
    worker: str | None
    created_at: float
    started_at: float | None
    ended_at: float | None
    duration: float | None = Field(description="seconds, once ended")
    error: str | None


class BestSoFar(BaseModel):
    count: int = Field(description="trials ended with a value by then")
    number: int = Field(description="the trial that ended")
    run_number: int | None
    state: str
    ended_at: float
    value: Number = Field(description="the trial's value")
    best: Number = Field(description="the best finished trial's value so far")


class Importance(BaseModel):
    param: str
    importance: float = Field(description="normalised: the importances sum to 1")


class ParallelAxis(BaseModel):
    name: str
    log: bool = Field(description="values are log10 of the param's values")
    categorical: bool = Field(description="values are indices of the ticks")
    values: list[float] = Field(description="one coordinate per drawn trial")
    low: float
    high: float
    ticks: list[tuple[float, str]] = Field(description="(coordinate, label in the user's values)")


class ParallelCoordinates(BaseModel):
    trials: list[int] = Field(description="the trials drawn: those with a value")
    values: list[Number] = Field(description="their value of the first metric (the colour)")
    axes: list[ParallelAxis] = Field(description="the varying params, then the metric")
    note: str | None = Field(description="what was left out")


class SweepDetail(SweepRow):
    spec: dict[str, Any] = Field(description="the spec as given")
    spec_error: str | None = Field(description="why the stored spec cannot be read, if not")
    metrics: list[SweepMetric]
    parameters: list[SweepParam]
    trials: list[SweepTrial]
    best: SweepTrial | None = Field(description="the best trial (expbook.sweep.analysis)")
    best_so_far: list[BestSoFar] = Field(description="trials with a value in the order they ended")
    importance: list[Importance] = Field(description="most important first")
    importance_note: str | None = Field(description="why there is no importance, or how computed")
    noise: str | None = Field(description="whether the best beats the runner-up beyond noise")
    parallel: ParallelCoordinates
