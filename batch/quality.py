"""`batch run quality`: the dataset-level checks the pipeline declares under ``quality``
(completeness, uniqueness, referential integrity, row count, freshness), as AWS Glue Data
Quality runs DQDL rules.

Each table a run checks, and each table a referential rule reads, is opened once with
delta-rs at its current version and shown to DuckDB (``streamlake.lake.query``), so every
rule of a run reads one version of each table, the version its result records. Results go
to ``_meta/quality_results`` in one commit per run. A failing blocking rule fails the run
(exit 1); a failing non-blocking one is reported and logged as a warning.

A table not written yet (no Delta log) has its rules skipped, not failed: the pipeline is
young, not wrong. The exception is a ``row_count`` rule with ``min`` above 0, which says
the table must hold rows and so fails on a table that holds none. A referential rule whose
reference is not written yet is skipped likewise."""

from __future__ import annotations

import logging
import time
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from batch.jobs import BatchRun
from batch.quality_rules import RuleResult, Snapshot, Target, check
from batch.report import BatchReport, TableOutcome
from streamlake.config.pipeline import QualityRule, split_table_name
from streamlake.errors import ConfigError, UsageError
from streamlake.lake.delta_rs import delta_table_exists
from streamlake.lake.query import connect, expose, lake_tables, view_name
from streamlake.lake.spark_delta import ensure_table
from streamlake.lake.tables import QUALITY_RESULTS

if TYPE_CHECKING:
    import duckdb

log = logging.getLogger(__name__)

RESULTS_TABLE = "quality_results"


def run(run: BatchRun) -> BatchReport:
    report = BatchReport(run.job, "quality")
    selected = selected_rules(run)
    if not selected:
        log.info("the pipeline declares no quality rules")
        return report
    connection = connect()
    try:
        snapshots = open_snapshots(run, connection, selected)
        check_columns(run, selected, snapshots)
        results = []
        for qualified, rules in selected.items():
            run.progress(f"checking {qualified}")
            started = time.monotonic()
            checked = [check(target(run, connection, snapshots, qualified, r), r) for r in rules]
            results += checked
            report.tables.append(table_outcome(qualified, checked, time.monotonic() - started))
    finally:
        connection.close()
    log_results(results)
    record_results(run, results)
    report.failed = failure(results)
    return report


def selected_rules(run: BatchRun) -> dict[str, list[QualityRule]]:
    """The rules of the tables ``--table`` selects (all without it), by ``layer.table``."""
    declared = {q: rules for q, rules in run.pipeline.quality.items() if rules}
    selected = {q: rules for q, rules in declared.items() if run.selects(*split_table_name(q))}
    if run.only is not None and not selected:
        raise UsageError(
            f"no quality rules for {run.only!r}",
            f"tables with quality rules: {', '.join(sorted(declared)) or 'none'}",
        )
    return selected


def open_snapshots(
    run: BatchRun, connection: duckdb.DuckDBPyConnection, selected: dict[str, list[QualityRule]]
) -> dict[str, Snapshot]:
    """Every table the run reads (checked tables and references), each opened once."""
    names = list(selected)
    names += [r.reference for rules in selected.values() for r in rules if r.reference]
    known = lake_tables(run.pipeline, run.settings)
    snapshots: dict[str, Snapshot] = {}
    for qualified in dict.fromkeys(names):
        table = known[qualified.lower()]
        if not delta_table_exists(table.path, run.settings):
            snapshots[qualified] = Snapshot(table, None, {}, 0, datetime.now(UTC))
            continue
        version = int(expose(connection, table, run.pipeline, run.settings).version())
        view = view_name(table)
        columns = {
            str(name).lower(): str(kind)
            for name, kind, *_ in connection.execute(f"DESCRIBE {view}").fetchall()
        }
        ((rows,),) = connection.execute(f"SELECT count(*) FROM {view}").fetchall()
        snapshots[qualified] = Snapshot(table, version, columns, int(rows), datetime.now(UTC))
        log.debug("%s: version %s, %s rows", qualified, version, rows)
    return snapshots


def check_columns(
    run: BatchRun, selected: dict[str, list[QualityRule]], snapshots: dict[str, Snapshot]
) -> None:
    """The columns rules name, in the tables as written: the configuration checks what the
    pipeline declares, and a curated SQL table's columns are known only once it is written.
    A wrong one stops the run before anything is measured (exit 2)."""
    for qualified, rules in selected.items():
        for index, rule in enumerate(rules):
            key = f"quality.{qualified}[{index}]"
            named = [(qualified, c) for c in rule.named_columns()]
            if rule.reference is not None:
                named += [(rule.reference, c) for c in rule.reference_key]
            for table, column in named:
                check_column(run, key, snapshots[table], column)
            if rule.kind == "freshness" and rule.column is not None:
                check_time_column(run, key, snapshots[qualified], rule.column)


def check_column(run: BatchRun, key: str, snapshot: Snapshot, column: str) -> None:
    if snapshot.written and column.lower() not in snapshot.columns:
        raise ConfigError(
            f"{column!r} is not a column of {snapshot.table.qualified}",
            f"its columns: {', '.join(snapshot.columns)}",
            source=run.pipeline_file,
            key=key,
        )


def check_time_column(run: BatchRun, key: str, snapshot: Snapshot, column: str) -> None:
    kind = snapshot.columns.get(column.lower())
    if kind is not None and not (kind.startswith("TIMESTAMP") or kind == "DATE"):
        raise ConfigError(
            f"freshness reads {snapshot.table.qualified}.{column}, a {kind} column: it needs "
            "a timestamp or a date",
            "name a timestamp or date column, or no column (the time rows arrived)",
            source=run.pipeline_file,
            key=key,
        )


def target(
    run: BatchRun,
    connection: duckdb.DuckDBPyConnection,
    snapshots: dict[str, Snapshot],
    qualified: str,
    rule: QualityRule,
) -> Target:
    reference = snapshots[rule.reference] if rule.reference is not None else None
    return Target(connection, snapshots[qualified], reference, run.settings)


def table_outcome(qualified: str, results: list[RuleResult], seconds: float) -> TableOutcome:
    """One line per table: "5 rules: 4 passed; orders_unique failed: 3 of 400 rows ..."."""
    passed = [r for r in results if r.status == "passed"]
    failed = [r for r in results if r.failed]
    skipped = [r for r in results if r.status == "skipped"]
    count = f"{len(results)} rule" + ("" if len(results) == 1 else "s")
    if not passed and not failed:
        reasons = "; ".join(dict.fromkeys(r.detail for r in skipped))
        return TableOutcome(qualified, "skipped", seconds=seconds, detail=f"{count}: {reasons}")
    parts = [f"{count}: {len(passed)} passed"]
    parts += [
        f"{r.rule.name} failed{'' if r.rule.blocking else ' (non-blocking)'}: {r.detail}"
        for r in failed
    ]
    parts += [f"{r.rule.name} skipped: {r.detail}" for r in skipped]
    return TableOutcome(
        qualified, "failed" if failed else "passed", seconds=seconds, detail="; ".join(parts)
    )


def log_results(results: list[RuleResult]) -> None:
    for result in results:
        if result.blocks:
            log.error(
                "%s: quality rule %s failed: %s", result.table, result.rule.name, result.detail
            )
        elif result.failed:
            log.warning(
                "%s: quality rule %s failed (non-blocking): %s",
                result.table,
                result.rule.name,
                result.detail,
            )
        else:
            log.info(
                "%s: quality rule %s %s: %s",
                result.table,
                result.rule.name,
                result.status,
                result.detail,
            )


def failure(results: list[RuleResult]) -> str | None:
    """The line the job fails with: its first blocking failure, and how many more."""
    blocking = [r for r in results if r.blocks]
    if not blocking:
        return None
    first = blocking[0]
    more = len(blocking) - 1
    also = f" (and {more} more blocking rule{'' if more == 1 else 's'} failed)" if more else ""
    return f"{first.table}: quality rule {first.rule.name} failed: {first.detail}{also}"


def record_results(run: BatchRun, results: list[RuleResult]) -> None:
    """Append the run's results to ``_meta/quality_results``, in one commit, through Spark
    like the other ``_meta`` tables (on S3 its commits go through the lake's log store)."""
    if not results:
        return
    spark = run.spark
    path = run.settings.lake.meta_path(RESULTS_TABLE)
    ensure_table(spark, path, QUALITY_RESULTS)
    run_id = uuid.uuid4().hex
    rows = [result_row(run_id, run.job, r) for r in results]
    frame = spark.createDataFrame(rows, QUALITY_RESULTS.ddl)
    frame.write.format("delta").mode("append").save(path)


def result_row(run_id: str, job: str, result: RuleResult) -> tuple[Any, ...]:
    """``result`` in QUALITY_RESULTS's column order."""
    rule = result.rule
    values = {
        "run_id": run_id,
        "job": job,
        "table_name": result.table,
        "rule": rule.name,
        "kind": rule.kind,
        "blocking": rule.blocking,
        "status": result.status,
        "passed": None if result.status == "skipped" else result.status == "passed",
        "measure": result.measure,
        "value": result.value,
        "threshold_min": result.threshold_min,
        "threshold_max": result.threshold_max,
        "failing_rows": result.failing_rows,
        "rows_checked": result.rows_checked,
        "table_version": result.table_version,
        "reference": rule.reference,
        "reference_version": result.reference_version,
        "detail": result.detail,
        "checked_at": result.checked_at,
    }
    return tuple(values[name] for name in QUALITY_RESULTS.names)
