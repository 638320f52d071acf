"""Quarantine replay: re-check quarantined records with the current schema and rules, and
move those that now pass into processed, exactly once.

A replay is safe to run again at any point, including after a crash half-way: it appends to
processed only records whose source coordinates (source, stream, partition, position) are
not there yet, and only then deletes from quarantine what processed now holds: records
whose coordinates are there, and records that passed whose event is there (duplicates).
Two replays of one table at the same time: one of them fails on Delta's transaction check
(both append as the next version of the same ``txnAppId``) and can simply be run again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from connectors.s3 import location_files
from streaming.transforms.check import check, passed, quarantine_counts
from streaming.transforms.decoders import payload_decoder
from streaming.transforms.dedup import first_of_each_event, lower_bound, with_late_flag
from streaming.transforms.drift import known_fields, needs_schema_merge, new_fields
from streaming.transforms.shape import processed_rows
from streaming.transforms.spec import TableSpec
from streamlake.config.pipeline import Pipeline
from streamlake.config.settings import Settings
from streamlake.errors import JobError, UsageError
from streamlake.lake.delta_rs import last_transaction_version
from streamlake.lake.leases import LEASES, TableLeases
from streamlake.lake.spark_delta import IdempotentDeltaAppend, read_table
from streamlake.lake.tables import (
    PROCESSED_COORDINATES,
    PROCESSED_PARTITION,
    SOURCE_COORDINATES,
    as_processed_coordinates,
)

if TYPE_CHECKING:
    from delta.tables import DeltaTable
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)


def replay_app_id(table: str) -> str:
    """The transaction app id of a table's replays in processed."""
    return f"replay-{table}"


@dataclass(frozen=True)
class ReplayResult:
    table: str
    examined: int
    moved: int
    duplicates: int
    still_quarantined: dict[str, int] = field(default_factory=dict)
    quarantine_version: int | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "table": self.table,
            "examined": self.examined,
            "moved": self.moved,
            "duplicates": self.duplicates,
            "still_quarantined": self.still_quarantined,
            "quarantine_version": self.quarantine_version,
        }


def replay_quarantine(
    spark: SparkSession, table_name: str, pipeline: Pipeline, settings: Settings
) -> ReplayResult:
    """Move the quarantined records of ``table_name`` that now pass into processed, holding
    the table's lease: it refuses to run while the table's process job holds it."""
    if table_name not in pipeline.tables:
        raise UsageError(
            f"no table named {table_name!r}", f"tables: {', '.join(sorted(pipeline.tables))}"
        )
    leases = TableLeases(location_files(settings.lake.meta_path(LEASES), settings))
    leases.take(table_name, replay_app_id(table_name))
    try:
        return replay_held(spark, table_name, pipeline, settings)
    finally:
        leases.release(table_name, replay_app_id(table_name))


def replay_held(
    spark: SparkSession, table_name: str, pipeline: Pipeline, settings: Settings
) -> ReplayResult:
    from delta.tables import DeltaTable

    lake = settings.lake
    quarantine_path = lake.table_path("quarantine", table_name)
    if read_table(spark, quarantine_path) is None:
        return ReplayResult(table_name, 0, 0, 0)
    quarantine = DeltaTable.forPath(spark, quarantine_path)
    version = int(quarantine.history(1).select("version").first()[0])  # type: ignore[index]
    spec = TableSpec.of(spark, table_name, pipeline.tables[table_name])
    processed_path = lake.table_path("processed", table_name)
    processed = read_table(spark, processed_path)
    fields = known_fields(spec, None if processed is None else processed.schema)
    raw_like = as_raw_rows(spark, quarantine.toDF(), lake.table_path("raw", table_name))
    decoder = payload_decoder(pipeline, table_name, settings)
    checked = check(raw_like, spec, fields, decoder).localCheckpoint()
    examined = checked.count()
    failing = quarantine_counts(checked)
    good = passed(checked)
    passing = processed_rows(good, spec, [*fields, *new_fields(good, spec, fields)])
    app_id = replay_app_id(table_name)
    target = IdempotentDeltaAppend(processed_path, app_id, (PROCESSED_PARTITION,))
    txn_version = (last_transaction_version(processed_path, settings, app_id) or 0) + 1
    try:
        moved, duplicates = append_new_events(spec, target, passing, txn_version)
    except Exception as exc:
        if "ConcurrentTransaction" not in str(exc):
            raise
        raise JobError(
            f"another replay of {table_name} appended to processed.{table_name} meanwhile",
            "run the replay again",
            job=app_id,
            retryable=True,
        ) from exc
    settings.faults.reached("after-replay-append")
    delete_held_by_processed(quarantine, spec, processed_path, checked, passing)
    result = ReplayResult(table_name, examined, moved, duplicates, failing, version)
    log.info(
        "replay of quarantine.%s (version %s): %s examined, %s moved to processed, "
        "%s duplicates dropped, %s still quarantined %s",
        table_name,
        version,
        examined,
        moved,
        duplicates,
        sum(failing.values()),
        failing,
        extra={"fields": result.as_dict()},
    )
    return result


def as_raw_rows(spark: SparkSession, quarantined: DataFrame, raw_path: str) -> DataFrame:
    """Quarantine rows in the raw table's shape; the ingest time comes from raw when the
    record is still there, else the quarantine time stands in for it."""
    from pyspark.sql import functions as F

    rows = quarantined.select("payload", *SOURCE_COORDINATES, "key", "quarantined_at")
    raw = read_table(spark, raw_path)
    if raw is not None:
        ingested = raw.select(*SOURCE_COORDINATES, "ingest_ts")
        rows = rows.join(ingested, on=list(SOURCE_COORDINATES), how="left")
    else:
        rows = rows.withColumn("ingest_ts", F.lit(None).cast("timestamp"))
    return rows.withColumn("ingest_ts", F.coalesce("ingest_ts", "quarantined_at")).drop(
        "quarantined_at"
    )


def as_quarantine_coordinates(rows: DataFrame) -> DataFrame:
    from pyspark.sql import functions as F

    pairs = as_processed_coordinates().items()
    return rows.select(*[F.col(processed).alias(raw) for raw, processed in pairs])


def append_new_events(
    spec: TableSpec, target: IdempotentDeltaAppend, passing: DataFrame, txn_version: int
) -> tuple[int, int]:
    """Append the passing rows that processed lacks; (rows appended, duplicates dropped).

    A row already in processed under its own coordinates was moved by an earlier, crashed
    replay: it is neither appended nor counted as a duplicate."""
    from pyspark.sql import functions as F

    processed = read_table(passing.sparkSession, target.path)
    if processed is not None:
        pending = passing.join(
            processed.select(*PROCESSED_COORDINATES),
            on=list(PROCESSED_COORDINATES),
            how="left_anti",
        )
        # Bounded as the stream job bounds it: a future-dated row is no reference.
        plausible = processed.where(spec.not_in_future(spec.time_column()))
        newest = plausible.agg(F.max(spec.time_column())).first()
        late_from = lower_bound(newest[0] if newest else None, spec.table.watermark)
    else:
        pending, late_from = passing, None
    pending = pending.localCheckpoint()
    unique = first_of_each_event(pending, spec.dedup_keys)
    if processed is not None:
        seen_keys = processed.select(*spec.dedup_keys).distinct()
        unique = unique.join(seen_keys, on=list(spec.dedup_keys), how="left_anti")
    unique = with_late_flag(unique, spec, late_from).localCheckpoint()
    moved = unique.count()
    if moved:
        target.write(unique, txn_version, merge_schema=needs_schema_merge(unique, processed, spec))
    return moved, pending.count() - moved


def delete_held_by_processed(
    quarantine: DeltaTable,
    spec: TableSpec,
    processed_path: str,
    checked: DataFrame,
    passing: DataFrame,
) -> None:
    """Delete from quarantine what processed now holds: any record whose coordinates are
    there (whatever it checks as today), and any record that passed whose event is there."""
    from pyspark.sql import functions as F

    processed = read_table(checked.sparkSession, processed_path)
    if processed is None:
        return
    moved = checked.select(*SOURCE_COORDINATES).join(
        as_quarantine_coordinates(processed), on=list(SOURCE_COORDINATES), how="left_semi"
    )
    seen_events = processed.select(*spec.dedup_keys).distinct()
    duplicates = as_quarantine_coordinates(
        passing.join(seen_events, on=list(spec.dedup_keys), how="left_semi")
    )
    # Renamed: the rows come from the quarantine table itself, and MERGE cannot resolve a
    # source whose columns are the target's own.
    held = moved.unionByName(duplicates).distinct()
    held = held.select(*[F.col(c).alias(f"held_{c}") for c in SOURCE_COORDINATES])
    condition = " AND ".join(f"q.{c} = held_{c}" for c in SOURCE_COORDINATES)
    quarantine.alias("q").merge(held, condition).whenMatchedDelete().execute()
