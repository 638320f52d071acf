"""Curated tables of kind ``sql``: the declared SQL over processed inputs, merged on keys.

With a ``date_column`` a run recomputes only the event dates whose input rows changed since
the last run (processed is partitioned by ``event_date``, so only those partitions are read)
and replaces exactly those dates' rows; without one, it recomputes everything and still
writes only the rows that differ."""

from __future__ import annotations

import re
from datetime import date
from typing import TYPE_CHECKING

from batch.inputs import InputWindow, Refresh
from streamlake.config.pipeline import CuratedTable
from streamlake.config.settings import Settings
from streamlake.errors import ConfigError, first_line
from streamlake.lake.spark_delta import merge_rows
from streamlake.lake.tables import CURATED, PROCESSED_PARTITION

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


def changed_dates(settings: Settings, windows: list[InputWindow]) -> set[date] | None:
    """Event dates with changed rows across the inputs; None: recompute every date."""
    found: set[date] = set()
    for window in windows:
        rows = window.changed_values(settings, [PROCESSED_PARTITION])
        if rows is None:
            return None
        found |= {row[0] for row in rows if row[0] is not None}
    return found


def view_name(source: str) -> str:
    return f"__processed_{source}"


def bound_sql(name: str, curated: CuratedTable) -> str:
    """The SQL with its ``processed.<input>`` references pointing at this run's views."""
    assert curated.sql is not None
    sql = curated.sql
    for source in curated.inputs:
        name = re.escape(source)
        pattern = rf"(?i)(?:`processed`|\bprocessed)\.(?:`{name}`|{name}\b)"
        sql = re.sub(pattern, view_name(source), sql)
    return sql


def curated_rows(
    spark: SparkSession,
    name: str,
    curated: CuratedTable,
    windows: list[InputWindow],
    dates: set[date] | None,
    source: str,
) -> DataFrame:
    """The SQL's rows over the inputs (only ``dates`` of them, when given), checked to have
    the declared keys; a SQL Spark cannot resolve is a configuration error."""
    from pyspark.errors import AnalysisException, ParseException
    from pyspark.sql import functions as F

    for window in windows:
        rows = window.rows(spark)
        if dates is not None:
            rows = rows.where(F.col(PROCESSED_PARTITION).isin(sorted(dates)))
        rows.createOrReplaceTempView(view_name(window.name))
    try:
        result = spark.sql(bound_sql(name, curated))
        columns = result.columns
    except (AnalysisException, ParseException) as exc:
        raise ConfigError(
            first_line(exc),
            "fix the SQL; processed tables are named processed.<table>",
            source=source,
            key=f"curated.{name}.sql",
        ) from None
    missing = [key for key in curated.keys if key not in columns]
    if missing:
        raise ConfigError(
            f"keys {', '.join(missing)} are not columns of the SQL's result ({', '.join(columns)})",
            source=source,
            key=f"curated.{name}.keys",
        )
    return result


def check_one_row_per_key(result: DataFrame, name: str, curated: CuratedTable, source: str) -> None:
    """MERGE needs at most one source row per key; a SQL that gives more is a definition
    error, reported before anything is written."""
    repeated = result.groupBy(*curated.keys).count().where("count > 1").first()
    if repeated is not None:
        key = ", ".join(f"{k}={repeated[k]!r}" for k in curated.keys)
        raise ConfigError(
            f"the SQL returns {repeated['count']} rows for one key ({key})",
            "make the keys the SQL's grouping columns",
            source=source,
            key=f"curated.{name}.keys",
        )


def refresh_sql_table(
    spark: SparkSession,
    settings: Settings,
    name: str,
    curated: CuratedTable,
    windows: list[InputWindow],
    source: str,
) -> Refresh | None:
    """Bring the curated table ``name`` up to the inputs' versions; None when no input row
    changed since the last run."""
    from pyspark.sql import functions as F

    if curated.date_column:
        dates = changed_dates(settings, windows)
    else:
        dates = set() if all(w.unchanged for w in windows) else None
    if dates is not None and not dates:
        return None
    rows = curated_rows(spark, name, curated, windows, dates, source)
    # The target rows this refresh may change (None: all). The date is a key (the pipeline
    # insists), so no row outside the dates can match either: with the scope in the match
    # condition, MERGE reads only the target's files of those dates, not every partition.
    scope = None
    if dates is not None:
        assert curated.date_column is not None
        listed = ", ".join(f"DATE'{day.isoformat()}'" for day in sorted(dates))
        scope = f"t.`{curated.date_column}` IN ({listed})"
        rows = rows.where(F.col(curated.date_column).isin(sorted(dates)))
    rows = rows.persist()
    try:
        check_one_row_per_key(rows, name, curated, source)
        merged = merge_rows(
            spark,
            settings.lake.table_path(CURATED, name),
            rows,
            curated.keys,
            (curated.date_column,) if curated.date_column else (),
            delete_unmatched=scope or "true",
            match_scope=scope,
        )
        return Refresh({name: merged}, whole=dates is None)
    finally:
        rows.unpersist()
