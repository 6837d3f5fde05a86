"""The filter and sort language: parsing, typing and error positions (no database needed)."""

from __future__ import annotations

import datetime as dt

import pytest

from expbook.errors import FilterSyntaxError
from expbook.query import (
    And,
    Compare,
    Field,
    HasTag,
    In,
    IsNull,
    Not,
    Or,
    SortKey,
    parse_field,
    parse_filter,
    parse_sort,
)


def metric(name: str, aggregate: str = "last") -> Field:
    return Field("metric", name, aggregate)


def test_the_issue_example() -> None:
    node = parse_filter("params.lr < 1e-3 and metrics.valid/acc > 0.9 and tags has 'gru'")
    assert isinstance(node, And)
    lr, acc, tag = node.items
    assert (lr.field.scope, lr.field.name, lr.op, lr.value) == ("param", "lr", "<", 1e-3)
    assert (acc.field.scope, acc.field.name, acc.op, acc.value) == (
        "metric",
        "valid/acc",
        ">",
        0.9,
    )
    assert tag == HasTag("gru", tag.pos)


def test_precedence_not_and_or() -> None:
    node = parse_filter("not name = 'a' or status = 'failed' and number > 3")
    assert isinstance(node, Or)
    assert isinstance(node.items[0], Not)
    assert isinstance(node.items[1], And)
    grouped = parse_filter("not (name = 'a' or number > 3)")
    assert isinstance(grouped, Not) and isinstance(grouped.item, Or)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("number = 12", 12),
        ("params.lr = 0.0001", 0.0001),
        ("params.lr = .5", 0.5),
        ("params.lr = -3e-4", -3e-4),
        ("params.lr = +2", 2),
        ("params.x = -inf", float("-inf")),
        ("params.flag = true", True),
        ("params.flag = FALSE", False),
        ("params.name = 'it\\'s'", "it's"),
        ('params.name = "double \\"quoted\\""', 'double "quoted"'),
        ("duration > 90s", 90.0),
        ("duration > 1.5h", 5400.0),
        ("duration > 2d", 172800.0),
        ("duration < 5m", 300.0),
    ],
)
def test_literals(text: str, value: object) -> None:
    node = parse_filter(text)
    assert isinstance(node, Compare)
    assert node.value == value and type(node.value) is type(value)


@pytest.mark.parametrize(
    ("text", "scope", "name", "aggregate"),
    [
        ("metrics.valid/acc", "metric", "valid/acc", "last"),
        ("metric.train/loss", "metric", "train/loss", "last"),
        ("max(metrics.valid/acc)", "metric", "valid/acc", "max"),
        ("MIN(metrics.valid/loss)", "metric", "valid/loss", "min"),
        ("count(metrics.x)", "metric", "x", "count"),
        ("params.model.hidden", "param", "model.hidden", "last"),
        ("params.`weird key (v2)`", "param", "weird key (v2)", "last"),
        ("metrics.'Inference Accuracy'", "metric", "Inference Accuracy", "last"),
        ("params.gematria_learning-rate", "param", "gematria_learning-rate", "last"),
        ("duration", "attr", "duration", "last"),
        ("Status", "attr", "status", "last"),
    ],
)
def test_fields(text: str, scope: str, name: str, aggregate: str) -> None:
    field = parse_field(text)
    assert (field.scope, field.name, field.aggregate) == (scope, name, aggregate)


def test_keys_end_at_operators_without_spaces() -> None:
    node = parse_filter("metrics.valid/acc>=0.9")
    assert isinstance(node, Compare) and node.field.name == "valid/acc" and node.op == ">="


def test_in_not_in_is_null_and_match() -> None:
    node = parse_filter("status in ('failed', 'crashed')")
    assert isinstance(node, In) and node.values == ("failed", "crashed") and not node.negated
    node = parse_filter("params.bs not in (4, 8)")
    assert isinstance(node, In) and node.negated and node.values == (4, 8)
    node = parse_filter("metrics.loss is not null")
    assert isinstance(node, IsNull) and node.negated
    node = parse_filter("name ~ 'gru-*'")
    assert isinstance(node, Compare) and node.op == "~"
    assert parse_filter("number == 3").op == "=" and parse_filter("number <> 3").op == "!="


def test_times_are_local_dates_or_epochs() -> None:
    node = parse_filter("started >= '2026-11-01'")
    expected = dt.datetime(2026, 11, 1).astimezone().timestamp()
    assert node.value == expected
    assert parse_filter("ended < 1700000000").value == 1700000000.0
    with_zone = parse_filter("started > '2026-11-01T10:00:00+00:00'").value
    assert with_zone == dt.datetime(2026, 11, 1, 10, tzinfo=dt.UTC).timestamp()


def test_blank_filters_are_none() -> None:
    assert parse_filter("") is None and parse_filter("   ") is None
    assert parse_sort("") == []


@pytest.mark.parametrize(
    ("text", "position", "reason"),
    [
        ("params.lr <", 11, "expected a value"),
        ("params.lr < and tags has 'x'", 12, "expected a value (a number"),
        ("params.lr 0.1", 10, "expected an operator"),
        ("(params.lr < 1", 14, "expected ')'"),
        ("params.lr < 1)", 13, "expected 'and', 'or' or the end"),
        ("params.lr < 1 and", 17, "expected a field"),
        ("bogus = 1", 0, "unknown field 'bogus'"),
        ("tags = 'x'", 5, "expected 'has'"),
        ("tags has x", 9, "expected a quoted tag"),
        ("metrics.acc > 'high'", 14, "compares to numbers"),
        ("number = 'seven'", 9, "compares to numbers"),
        ("dirty = 1", 8, "compares to true or false"),
        ("status = 'done'", 9, "unknown status 'done'"),
        ("started > 'yesterday'", 10, "cannot read 'yesterday' as a time"),
        ("name ~ 3", 7, "'~' matches text"),
        ("params.x < null", 11, "null only compares"),
        ("max(params.lr) > 1", 4, "max() takes a metric"),
        ("params.lr = 1 & 2", 14, "unexpected character '&'"),
        ("params.", 7, "expected a key"),
        ("params.x = adam", 11, "quote text like 'adam'"),
        ("params.x = -'a'", 12, "expected a number after the sign"),
        ("metrics.x is maybe", 13, "expected 'null'"),
        ("number in (1, 2", 15, "expected ',' or ')'"),
    ],
)
def test_errors_name_the_position(text: str, position: int, reason: str) -> None:
    with pytest.raises(FilterSyntaxError) as error:
        parse_filter(text)
    assert error.value.position == position
    assert reason in error.value.reason
    assert f"column {position + 1}" in str(error.value)
    assert repr(text) in str(error.value)


def test_sort_expressions() -> None:
    assert parse_sort("-metrics.valid/acc, number") == [
        SortKey(Field("metric", "valid/acc", "last", 1), True),
        SortKey(Field("attr", "number", "last", 20), False),
    ]
    keys = parse_sort("params.lr desc, max(metrics.acc) asc, +name")
    assert [(k.field.name, k.field.aggregate, k.descending) for k in keys] == [
        ("lr", "last", True), ("acc", "max", False), ("name", "last", False),
    ]  # fmt: skip
    with pytest.raises(FilterSyntaxError, match="expected ',' or the end"):
        parse_sort("number name")
    with pytest.raises(FilterSyntaxError, match="unknown field 'tags'"):
        parse_sort("tags")


def test_labels_round_trip() -> None:
    for text in ("metrics.valid/acc", "max(metrics.valid/acc)", "params.lr", "duration"):
        assert parse_field(text).label() == text
    assert metric("x", "min").label() == "min(metrics.x)"
