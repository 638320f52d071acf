"""The value rules a table declares, evaluated by Spark on rows that pass and fail them."""

from __future__ import annotations

from typing import Any

import pytest

from streaming.transforms.rules import first_failure, passes
from streamlake.config.pipeline import Rule

pytestmark = [pytest.mark.integration, pytest.mark.spark]


def verdicts(spark: Any, rule: Rule, values: list[str | None]) -> list[bool]:
    frame = spark.createDataFrame([(v,) for v in values], "value STRING")
    return [row[0] for row in frame.select(passes(rule)).collect()]


def test_a_type_rule_fails_values_that_do_not_cast_and_leaves_nulls_to_not_null(
    spark: Any,
) -> None:
    rule = Rule(name="amount_is_decimal", kind="type", column="value", type="DECIMAL(6,2)")
    values = ["12.50", "abc", None, "123456789.5", " 7 "]
    assert verdicts(spark, rule, values) == [True, False, True, False, True]


def test_a_length_rule_bounds_the_text_length_on_both_sides(spark: Any) -> None:
    rule = Rule(name="iso2", kind="length", column="value", min=2, max=3)
    assert verdicts(spark, rule, ["ab", "a", "abcd", None, "abc"]) == [
        True,
        False,
        False,
        True,
        True,
    ]
    at_least = Rule(name="some", kind="length", column="value", min=1)
    assert verdicts(spark, at_least, ["", "x"]) == [False, True]


def test_the_first_failed_rule_names_itself(spark: Any) -> None:
    rules = [
        Rule(name="present", kind="not_null", column="value"),
        Rule(name="short", kind="length", column="value", max=2),
    ]
    frame = spark.createDataFrame([("abc",), (None,), ("ab",)], "value STRING")
    name, message = first_failure(rules)
    rows = [tuple(r) for r in frame.select(name, message).collect()]
    assert rows == [
        ("short", "rule short (length value) failed"),
        ("present", "rule present (not_null value) failed"),
        (None, None),
    ]
