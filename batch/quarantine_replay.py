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

from streaming.process import (
    PROCESSED_COORDINATES,
    ProcessBatchWriter,
    avro_decoder,
    lower_bound,
    process_spec,
    quarantine_counts,
    table_exists,
)
from streamlake.config.pipeline import Pipeline
from streamlake.config.settings import Settings
from streamlake.errors import JobError, UsageError
from streamlake.lake import open_delta_table

if TYPE_CHECKING:
    from delta.tables import DeltaTable
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

COORDINATES = ("source", "stream", "partition", "position")


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
    """Move the quarantined records of ``table_name`` that now pass into processed."""
    from delta.tables import DeltaTable
    from pyspark.sql import functions as F

    if table_name not in pipeline.tables:
        raise UsageError(
            f"no table named {table_name!r}", f"tables: {', '.join(sorted(pipeline.tables))}"
        )
    spec = process_spec(spark, table_name, pipeline, settings, f"replay-{table_name}", None)
    if not table_exists(spark, spec.quarantine_path):
        return ReplayResult(table_name, 0, 0, 0)
    quarantine = DeltaTable.forPath(spark, spec.quarantine_path)
    version = int(quarantine.history(1).select("version").first()[0])  # type: ignore[index]
    writer = ProcessBatchWriter(spec, avro_decoder(spec.table, settings))
    fields = writer.known_fields(spark)
    raw_like = as_raw_rows(spark, quarantine.toDF(), settings.lake.table_path("raw", table_name))
    checked = writer.check(raw_like, fields).localCheckpoint()
    examined = checked.count()
    failing = quarantine_counts(checked)
    good = checked.where(F.col("_error_kind").isNull())
    passing = writer.processed_rows(good, [*fields, *writer.new_fields(good, fields)])
    app_id = spec.job
    try:
        moved, duplicates = append_new_events(
            writer, passing, app_id, next_txn_version(spark, spec.processed_path, app_id, settings)
        )
    except Exception as exc:
        if "ConcurrentTransaction" not in str(exc):
            raise
        raise JobError(
            f"another replay of {table_name} appended to processed.{table_name} meanwhile",
            "run the replay again",
            job=app_id,
            retryable=True,
        ) from exc
    delete_held_by_processed(quarantine, writer, checked, passing)
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

    rows = quarantined.select("payload", *COORDINATES, "key", "quarantined_at")
    if table_exists(spark, raw_path):
        raw = spark.read.format("delta").load(raw_path).select(*COORDINATES, "ingest_ts")
        rows = rows.join(raw, on=list(COORDINATES), how="left")
    else:
        rows = rows.withColumn("ingest_ts", F.lit(None).cast("timestamp"))
    return rows.withColumn("ingest_ts", F.coalesce("ingest_ts", "quarantined_at")).drop(
        "quarantined_at"
    )


def next_txn_version(spark: SparkSession, path: str, app_id: str, settings: Settings) -> int:
    """One more than the last version ``app_id`` committed to the table at ``path``."""
    if not table_exists(spark, path):
        return 1
    last = open_delta_table(path, settings).transaction_version(app_id)
    return (last or 0) + 1


def as_quarantine_coordinates(rows: DataFrame) -> DataFrame:
    from pyspark.sql import functions as F

    pairs = zip(PROCESSED_COORDINATES, COORDINATES, strict=True)
    return rows.select(*[F.col(p).alias(c) for p, c in pairs])


def append_new_events(
    writer: ProcessBatchWriter, passing: DataFrame, app_id: str, txn_version: int
) -> tuple[int, int]:
    """Append the passing rows that processed lacks; (rows appended, duplicates dropped).

    A row already in processed under its own coordinates was moved by an earlier, crashed
    replay: it is neither appended nor counted as a duplicate."""
    from pyspark.sql import functions as F

    spec = writer.spec
    spark = passing.sparkSession
    if table_exists(spark, spec.processed_path):
        processed = spark.read.format("delta").load(spec.processed_path)
        pending = passing.join(
            processed.select(*PROCESSED_COORDINATES),
            on=list(PROCESSED_COORDINATES),
            how="left_anti",
        )
        seen_keys = processed.select(*spec.dedup_keys)
        newest = processed.agg(F.max(writer.time_column())).first()
        late_from = lower_bound(newest[0] if newest else None, spec.table.watermark)
    else:
        pending, seen_keys, late_from = passing, None, None
    pending = pending.localCheckpoint()
    unique = writer.first_of_each_event(pending)
    if seen_keys is not None:
        unique = unique.join(seen_keys.distinct(), on=list(spec.dedup_keys), how="left_anti")
    unique = unique.withColumn(
        "_late", F.coalesce(writer.time_column() < F.lit(late_from), F.lit(False))
    ).localCheckpoint()
    moved = unique.count()
    if moved:
        write = (
            unique.write.format("delta")
            .mode("append")
            .partitionBy("event_date")
            .option("txnAppId", app_id)
            .option("txnVersion", txn_version)
        )
        if spec.table.drift == "evolve":
            write = write.option("mergeSchema", "true")
        write.save(spec.processed_path)
    return moved, pending.count() - moved


def delete_held_by_processed(
    quarantine: DeltaTable, writer: ProcessBatchWriter, checked: DataFrame, passing: DataFrame
) -> None:
    """Delete from quarantine what processed now holds: any record whose coordinates are
    there (whatever it checks as today), and any record that passed whose event is there."""
    from pyspark.sql import functions as F

    spec = writer.spec
    spark = checked.sparkSession
    if not table_exists(spark, spec.processed_path):
        return
    processed = spark.read.format("delta").load(spec.processed_path)
    moved = checked.select(*COORDINATES).join(
        as_quarantine_coordinates(processed), on=list(COORDINATES), how="left_semi"
    )
    seen_events = processed.select(*spec.dedup_keys).distinct()
    duplicates = as_quarantine_coordinates(
        passing.join(seen_events, on=list(spec.dedup_keys), how="left_semi")
    )
    # Renamed: the rows come from the quarantine table itself, and MERGE cannot resolve a
    # source whose columns are the target's own.
    held = moved.unionByName(duplicates).distinct()
    held = held.select(*[F.col(c).alias(f"held_{c}") for c in COORDINATES])
    condition = " AND ".join(f"q.{c} = held_{c}" for c in COORDINATES)
    quarantine.alias("q").merge(held, condition).whenMatchedDelete().execute()
