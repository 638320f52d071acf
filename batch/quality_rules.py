"""The quality job's measurements: each kind of dataset-level rule as DuckDB SQL over lake
tables shown at one Delta version each (``streamlake.lake.query``'s views), and the
judgement of what it measured against the rule's threshold."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, Literal

from streamlake.config.pipeline import QualityRule
from streamlake.config.settings import Settings
from streamlake.lake.delta_rs import last_data_change
from streamlake.lake.query import LakeTable, quoted, view_name

if TYPE_CHECKING:
    import duckdb

Status = Literal["passed", "failed", "skipped"]

# What freshness reads when a rule names no column: when rows arrived in the layer. Not the
# commit time, which compaction moves on without new rows. Curated tables share no such
# column; they are as fresh as their newest commit that changed rows.
ARRIVAL_COLUMNS = {"raw": "ingest_ts", "processed": "_ingest_ts", "quarantine": "quarantined_at"}


@dataclass(frozen=True)
class Snapshot:
    """A lake table as one quality run reads it: shown to DuckDB at ``version`` (None: the
    table has no Delta log yet), its columns (lower-case name -> DuckDB type), its rows,
    and when it was opened (the time freshness is measured at)."""

    table: LakeTable
    version: int | None
    columns: dict[str, str]
    rows: int
    opened_at: datetime

    @property
    def written(self) -> bool:
        return self.version is not None

    @property
    def view(self) -> str:
        return view_name(self.table)


@dataclass(frozen=True)
class Target:
    """What a rule is checked against: its table and, for a referential rule, the
    reference, both exposed on ``connection``."""

    connection: duckdb.DuckDBPyConnection
    snapshot: Snapshot
    reference: Snapshot | None
    settings: Settings


@dataclass(frozen=True)
class RuleResult:
    """One rule's outcome. ``value`` is in ``measure`` units: ``ratio`` (0..1), ``rows``,
    ``age_seconds``; ``failing_rows`` the rows at fault (None where rows are not the
    measure: freshness)."""

    table: str
    rule: QualityRule
    status: Status
    measure: str
    checked_at: datetime
    detail: str
    value: float | None = None
    threshold_min: float | None = None
    threshold_max: float | None = None
    failing_rows: int | None = None
    rows_checked: int | None = None
    table_version: int | None = None
    reference_version: int | None = None

    @property
    def failed(self) -> bool:
        return self.status == "failed"

    @property
    def blocks(self) -> bool:
        """Whether this result fails the job."""
        return self.failed and self.rule.blocking


MEASURES = {
    "completeness": "ratio",
    "uniqueness": "ratio",
    "referential": "ratio",
    "row_count": "rows",
    "freshness": "age_seconds",
}


def check(target: Target, rule: QualityRule) -> RuleResult:
    """Measure ``rule`` on its target and judge it."""
    snapshot = target.snapshot
    if not snapshot.written and not requires_rows(rule):
        return skipped(target, rule, f"{snapshot.table.qualified} not written yet")
    if target.reference is not None and not target.reference.written:
        return skipped(
            target, rule, f"reference {target.reference.table.qualified} not written yet"
        )
    return CHECKS[rule.kind](target, rule)


def requires_rows(rule: QualityRule) -> bool:
    """A rule that a table not written yet fails: it must hold rows (``row_count`` with a
    ``min`` above 0). A table's other rules wait for its first commit."""
    return rule.kind == "row_count" and (rule.min or 0) > 0


def skipped(target: Target, rule: QualityRule, why: str) -> RuleResult:
    return RuleResult(
        target.snapshot.table.qualified,
        rule,
        "skipped",
        MEASURES[rule.kind],
        target.snapshot.opened_at,
        why,
        table_version=target.snapshot.version,
    )


def judged(
    target: Target, rule: QualityRule, passed: bool, detail: str, **fields: Any
) -> RuleResult:
    reference = target.reference
    return RuleResult(
        target.snapshot.table.qualified,
        rule,
        "passed" if passed else "failed",
        MEASURES[rule.kind],
        target.snapshot.opened_at,
        detail,
        table_version=target.snapshot.version,
        reference_version=reference.version if reference is not None else None,
        **fields,
    )


def scalar_row(target: Target, sql: str) -> tuple[Any, ...]:
    """The one row of an aggregate (fetched to the end: DuckDB runs nothing else on a
    connection while a result is open)."""
    (row,) = target.connection.execute(sql).fetchall()
    return tuple(row)


def check_completeness(target: Target, rule: QualityRule) -> RuleResult:
    assert rule.column is not None
    rows = target.snapshot.rows
    (missing,) = scalar_row(
        target, f"SELECT count(*) - count({quoted(rule.column)}) FROM {target.snapshot.view}"
    )
    ratio = 1.0 if rows == 0 else (rows - missing) / rows
    passed = ratio >= rule.min_share
    detail = f"{missing} of {rows} rows have no {rule.column} {versus(ratio, rule.min_share)}"
    return ratio_result(target, rule, passed, detail, ratio, int(missing), rows)


def check_uniqueness(target: Target, rule: QualityRule) -> RuleResult:
    columns = ", ".join(quoted(c) for c in rule.key)
    keyed, extra, repeated = scalar_row(
        target,
        "SELECT coalesce(sum(n), 0), coalesce(sum(n - 1), 0), count(*) FILTER (WHERE n > 1) "
        f"FROM (SELECT count(*) AS n FROM {target.snapshot.view} "
        f"WHERE {not_null(rule.key)} GROUP BY {columns})",
    )
    ratio = 1.0 if keyed == 0 else (keyed - extra) / keyed
    passed = ratio >= rule.min_share
    detail = (
        f"{extra} of {keyed} rows repeat another row's {columns_text(rule.key)} "
        f"({plural(int(repeated), 'key')} repeated) {versus(ratio, rule.min_share)}"
    )
    return ratio_result(target, rule, passed, detail, ratio, int(extra), int(keyed))


def check_referential(target: Target, rule: QualityRule) -> RuleResult:
    reference = target.reference
    assert reference is not None
    wanted = [f"r.{quoted(c)} AS k{i}" for i, c in enumerate(rule.reference_key)]
    matches = " AND ".join(f"t.{quoted(c)} = m.k{i}" for i, c in enumerate(rule.key))
    keyed, orphans = scalar_row(
        target,
        "SELECT count(*), count(*) FILTER (WHERE m.hit IS NULL) "
        f"FROM {target.snapshot.view} AS t LEFT JOIN "
        f"(SELECT DISTINCT {', '.join(wanted)}, true AS hit FROM {reference.view} AS r) AS m "
        f"ON {matches} WHERE {not_null(rule.key, 't.')}",
    )
    ratio = 1.0 if keyed == 0 else (keyed - orphans) / keyed
    passed = ratio >= rule.min_share
    detail = (
        f"{orphans} of {keyed} rows have a {columns_text(rule.key)} not found in "
        f"{reference.table.qualified}.{columns_text(rule.reference_key)} "
        f"{versus(ratio, rule.min_share)}"
    )
    return ratio_result(target, rule, passed, detail, ratio, int(orphans), int(keyed))


def check_row_count(target: Target, rule: QualityRule) -> RuleResult:
    snapshot = target.snapshot
    rows = snapshot.rows
    short = max(0, (rule.min or 0) - rows)
    beyond = max(0, rows - rule.max) if rule.max is not None else 0
    if short:
        detail = f"{rows} rows, {short} fewer than min {rule.min}"
    elif beyond:
        detail = f"{rows} rows, {beyond} more than max {rule.max}"
    else:
        detail = f"{rows} rows (within {bounds_text(rule)})"
    if not snapshot.written:
        detail = f"{snapshot.table.qualified} not written yet: {detail}"
    return judged(
        target,
        rule,
        not (short or beyond),
        detail,
        value=float(rows),
        threshold_min=None if rule.min is None else float(rule.min),
        threshold_max=None if rule.max is None else float(rule.max),
        failing_rows=short or beyond,
        rows_checked=rows,
    )


def check_freshness(target: Target, rule: QualityRule) -> RuleResult:
    snapshot = target.snapshot
    max_age = rule.max_age_seconds
    assert max_age is not None
    newest, what = newest_time(target, rule)
    fields: dict[str, Any] = {"threshold_max": max_age, "rows_checked": snapshot.rows}
    if newest is None:
        return judged(target, rule, False, f"{what}: nothing to measure", **fields)
    age = max(0.0, (snapshot.opened_at - newest).total_seconds())
    passed = age <= max_age
    detail = f"{what} is {duration(age)} old ({'<=' if passed else '>'} {rule.max_age})"
    return judged(target, rule, passed, detail, value=age, **fields)


def newest_time(target: Target, rule: QualityRule) -> tuple[datetime | None, str]:
    """The newest time the rule measures the table's age by, and what it is, in words."""
    snapshot = target.snapshot
    column = rule.column or ARRIVAL_COLUMNS.get(snapshot.table.layer)
    if column is not None:
        (newest,) = scalar_row(target, f"SELECT max({quoted(column)}) FROM {snapshot.view}")
        if newest is None:
            return None, f"no {column} ({snapshot.rows} rows)"
        return as_utc(newest), f"the newest {column}"
    assert snapshot.version is not None
    change = last_data_change(snapshot.table.path, target.settings, snapshot.version)
    if change is None:
        return None, "no commit that changed rows in the table's recent history"
    version, committed = change
    return committed, f"the last change of rows (v{version})"


def ratio_result(
    target: Target,
    rule: QualityRule,
    passed: bool,
    detail: str,
    ratio: float,
    failing: int,
    rows: int,
) -> RuleResult:
    return judged(
        target,
        rule,
        passed,
        detail,
        value=ratio,
        threshold_min=rule.min_share,
        failing_rows=failing,
        rows_checked=rows,
    )


CHECKS: dict[str, Callable[[Target, QualityRule], RuleResult]] = {
    "completeness": check_completeness,
    "uniqueness": check_uniqueness,
    "referential": check_referential,
    "row_count": check_row_count,
    "freshness": check_freshness,
}


def not_null(columns: list[str], prefix: str = "") -> str:
    return " AND ".join(f"{prefix}{quoted(c)} IS NOT NULL" for c in columns)


def bounds_text(rule: QualityRule) -> str:
    """``min 1, max 100``, or either alone."""
    bounds = {"min": rule.min, "max": rule.max}
    return ", ".join(f"{name} {value}" for name, value in bounds.items() if value is not None)


def columns_text(columns: list[str]) -> str:
    """``customer_id``, or ``(a, b)`` for a key of several columns."""
    return columns[0] if len(columns) == 1 else f"({', '.join(columns)})"


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def as_utc(value: Any) -> datetime:
    """A timestamp column's value as an aware UTC time: Spark's TIMESTAMP arrives as UTC
    with its zone, TIMESTAMP_NTZ without one (taken as UTC), a DATE as its midnight."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    raise TypeError(f"not a timestamp or date: {value!r}")


def percent(ratio: float) -> str:
    """A ratio as a percentage, rounded down to two decimals so that a failing ratio never
    prints as its threshold: 0.9075 -> 90.75%, 0.99999 -> 99.99%, 1.0 -> 100%."""
    text = f"{math.floor(ratio * 10_000 + 1e-9) / 100:.2f}".rstrip("0").rstrip(".")
    return f"{text}%"


def versus(ratio: float, threshold: float) -> str:
    """``(90.75% < 99%)``: the measured ratio against the rule's."""
    return f"({percent(ratio)} {'>=' if ratio >= threshold else '<'} {percent(threshold)})"


def duration(seconds: float) -> str:
    """An age in words: 45s, 3m 20s, 2h 5m, 3d 4h."""
    whole = int(seconds)
    days, rest = divmod(whole, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{seconds:.1f}s" if seconds < 10 else f"{secs}s"
