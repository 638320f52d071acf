"""Row-level validation rules (a subset of Glue Data Quality's DQDL) as Spark columns.

Each rule becomes a boolean column that is true when the row passes; null counts as a
failure, except that value rules (range, in_set, regex, length) pass a null value, which
is not_null's to judge.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from streamlake.config.pipeline import Rule

if TYPE_CHECKING:
    from pyspark.sql import Column


def passes(rule: Rule) -> Column:
    from pyspark.sql import functions as F

    if rule.kind == "custom_sql":
        assert rule.expr is not None
        return F.coalesce(F.expr(rule.expr).cast("boolean"), F.lit(False))
    assert rule.column is not None
    column = F.col(rule.column)
    if rule.kind == "not_null":
        return column.isNotNull()
    if rule.kind == "type":
        assert rule.type is not None
        return column.isNull() | F.expr(f"try_cast({rule.column} AS {rule.type})").isNotNull()
    if rule.kind == "range":
        check = F.lit(True)
        if rule.min is not None:
            check = check & (column >= F.lit(rule.min))
        if rule.max is not None:
            check = check & (column <= F.lit(rule.max))
        return column.isNull() | check
    if rule.kind == "in_set":
        return column.isNull() | column.cast("string").isin(list(rule.values or []))
    if rule.kind == "regex":
        return column.isNull() | column.cast("string").rlike(rule.pattern or "")
    if rule.kind == "length":
        length = F.length(column.cast("string"))
        check = F.lit(True)
        if rule.min is not None:
            check = check & (length >= F.lit(int(rule.min)))
        if rule.max is not None:
            check = check & (length <= F.lit(int(rule.max)))
        return column.isNull() | check
    if rule.kind == "unique":
        # Uniqueness is enforced by deduplication on the table's event id (see process).
        return F.lit(True)
    raise ValueError(f"unknown rule kind {rule.kind}")


def describe(rule: Rule) -> str:
    target = rule.expr if rule.kind == "custom_sql" else rule.column
    return f"{rule.name} ({rule.kind} {target})"


def first_failure(rules: list[Rule]) -> tuple[Column, Column]:
    """(rule name, message) of the first failed rule, both null when every rule passes."""
    from pyspark.sql import functions as F

    name: Column = F.lit(None).cast("string")
    message: Column = F.lit(None).cast("string")
    for rule in reversed(rules):
        failed = ~passes(rule)
        name = F.when(failed, F.lit(rule.name)).otherwise(name)
        message = F.when(failed, F.lit(f"rule {describe(rule)} failed")).otherwise(message)
    return name, message
