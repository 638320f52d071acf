"""The process jobs: raw.<table> -> processed.<table> and quarantine.<table>.

Per micro-batch: parse and type the payloads, check the declared rules, send every failure
to quarantine with its reason, drop duplicate events (same event id within the watermark),
flag late ones, and write both outputs with Delta idempotent writes, so that a batch
replayed after a crash writes each record once to processed or quarantine.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from streaming.avro import AvroDecoder, registry_for
from streaming.delta_writer import IdempotentDeltaAppend
from streaming.parsing import NEW_IMAGE, PLAIN, Document, parse, word_parse_errors
from streaming.rules import first_failure
from streaming.runtime import StreamJob
from streamlake.config.pipeline import Pipeline, Table
from streamlake.config.settings import Settings
from streamlake.errors import UsageError

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession
    from pyspark.sql.types import StructField

log = logging.getLogger(__name__)

LINEAGE = ("_source", "_stream", "_partition", "_position", "_ingest_ts")
# A raw record's coordinates in processed: unique per source record.
PROCESSED_COORDINATES = ("_source", "_stream", "_partition", "_position")
QUARANTINE_COLUMNS = (
    "payload",
    "error_kind",
    "error",
    "rule",
    "source",
    "stream",
    "partition",
    "position",
    "key",
    "quarantined_at",
)
METRICS_COLUMNS = (
    "job",
    "batch_id",
    "rows_in",
    "processed",
    "quarantined",
    "duplicates",
    "late",
    "quarantine_ratio",
    "alert",
    "quarantined_by_kind",
    "recorded_at",
)
SYSTEM_COLUMNS = (*LINEAGE, "_late", "_rescued", "_op", "_sequence_number", "event_date")
ALERT_QUARANTINE_RATIO = 0.05
METRICS_SCHEMA = (
    "job STRING, batch_id BIGINT, rows_in BIGINT, processed BIGINT, quarantined BIGINT, "
    "duplicates BIGINT, late BIGINT, quarantine_ratio DOUBLE, alert BOOLEAN, "
    "quarantined_by_kind STRING, recorded_at TIMESTAMP"
)


@dataclass(frozen=True)
class ProcessSpec:
    job: str
    table_name: str
    table: Table
    fields: tuple[StructField, ...]
    processed_path: str
    quarantine_path: str
    metrics_path: str
    checkpoint: str | None = None

    @property
    def document(self) -> Document:
        return NEW_IMAGE if self.table.cdc else PLAIN

    @property
    def dedup_keys(self) -> tuple[str, ...]:
        """What makes two records the same event."""
        if self.table.cdc:
            # A change stream repeats keys by design: each change is its own event.
            return ("_sequence_number",)
        if self.table.event_id:
            return (self.table.event_id,)
        # No event id: only the same source record read twice is a duplicate.
        return PROCESSED_COORDINATES


def process_spec(
    spark: SparkSession,
    table_name: str,
    pipeline: Pipeline,
    settings: Settings,
    job: str,
    checkpoint: str | None,
) -> ProcessSpec:
    """What processing ``table_name`` means: its declared fields and its three outputs."""
    table = pipeline.tables[table_name]
    return ProcessSpec(
        job=job,
        table_name=table_name,
        table=table,
        fields=tuple(declared_fields(spark, table.schema_ddl)),
        processed_path=settings.lake.table_path("processed", table_name),
        quarantine_path=settings.lake.table_path("quarantine", table_name),
        metrics_path=metrics_path(settings),
        checkpoint=checkpoint,
    )


def avro_decoder(table: Table, settings: Settings) -> AvroDecoder | None:
    """The decoder of an Avro table's payloads; None for JSON tables."""
    return AvroDecoder(registry_for(table.avro, settings)) if table.avro else None


def metrics_path(settings: Settings) -> str:
    return f"{settings.lake.root.rstrip('/')}/_meta/batch_metrics"


def process_job(
    spark: SparkSession, name: str, pipeline: Pipeline, settings: Settings
) -> StreamJob:
    job = pipeline.jobs[name]
    if job.kind != "process" or job.table is None:
        raise UsageError(f"{name} is not a process job")
    raw_path = settings.lake.table_path("raw", job.table)
    spec = process_spec(
        spark, job.table, pipeline, settings, name, settings.lake.checkpoint_path(name)
    )
    if not table_exists(spark, raw_path):
        raise UsageError(
            f"raw.{job.table} does not exist yet at {raw_path}",
            f"run the ingest job of {job.table} first",
        )
    ensure_metrics_table(spark, spec.metrics_path)
    reader = spark.readStream.format("delta")
    if job.max_files_per_trigger:
        reader = reader.option("maxFilesPerTrigger", job.max_files_per_trigger)
    if job.max_bytes_per_trigger or not job.max_files_per_trigger:
        reader = reader.option("maxBytesPerTrigger", job.max_bytes_per_trigger or "64m")
    frame = reader.load(raw_path)
    return StreamJob(
        name=name,
        frame=frame,
        batch_function=ProcessBatchWriter(spec, avro_decoder(spec.table, settings)),
        checkpoint=settings.lake.checkpoint_path(name),
        trigger_interval=job.trigger,
    )


def ensure_metrics_table(spark: SparkSession, path: str) -> None:
    """Create the shared batch-metrics table up front: concurrent first writes by several
    jobs would race to create it (Delta's ProtocolChangedException)."""
    if not table_exists(spark, path):
        spark.createDataFrame([], METRICS_SCHEMA).write.format("delta").mode("ignore").save(path)


def declared_fields(spark: SparkSession, ddl: str) -> list[StructField]:
    from pyspark.sql.types import StructType

    schema = spark.createDataFrame([], ddl).schema
    assert isinstance(schema, StructType)
    return list(schema.fields)


def table_exists(spark: SparkSession, path: str) -> bool:
    from delta.tables import DeltaTable

    return bool(DeltaTable.isDeltaTable(spark, path))


@dataclass(frozen=True)
class BatchCounts:
    rows_in: int
    processed: int
    quarantined: dict[str, int]
    duplicates: int
    late: int

    @property
    def quarantine_total(self) -> int:
        return sum(self.quarantined.values())

    @property
    def quarantine_ratio(self) -> float:
        return self.quarantine_total / self.rows_in if self.rows_in else 0.0


class ProcessBatchWriter:
    """foreachBatch function of a process job; Spark calls it once per micro-batch."""

    def __init__(self, spec: ProcessSpec, decoder: AvroDecoder | None = None) -> None:
        self.spec = spec
        self.decoder = decoder
        # The latest event time in processed, the watermark's reference.
        self.newest_seen: Any = None
        self.quarantine = IdempotentDeltaAppend(
            spec.quarantine_path, spec.job, checkpoint=spec.checkpoint
        )
        self.processed = IdempotentDeltaAppend(
            spec.processed_path, spec.job, ("event_date",), checkpoint=spec.checkpoint
        )
        self.metrics = IdempotentDeltaAppend(
            spec.metrics_path, spec.job, checkpoint=spec.checkpoint
        )

    def __call__(self, raw: DataFrame, batch_id: int) -> None:
        from pyspark.sql import functions as F

        spark = raw.sparkSession
        fields = self.known_fields(spark)
        checked = slim(self.check(raw, fields)).persist()
        try:
            rows_in = checked.count()
            quarantined = quarantine_counts(checked)
            good = checked.where(F.col("_error_kind").isNull())
            unique, processed, duplicates, late = self.plan_processed(
                good, [*fields, *self.new_fields(good, fields)]
            )
            # Metrics first: a batch Spark retries after a crash is recounted against tables
            # that may already hold its rows; its metrics commit is then skipped, so the first
            # attempt's counts stand. (Until the data commits, metrics run slightly ahead.)
            counts = BatchCounts(rows_in, processed, quarantined, duplicates, late)
            self.record(spark, batch_id, counts)
            if quarantined:  # a clean batch makes no empty quarantine commit
                self.write_quarantine(checked, batch_id)
            self.processed.write(unique, batch_id, merge_schema=self.spec.table.drift == "evolve")
        finally:
            checked.unpersist()

    def known_fields(self, spark: SparkSession) -> list[StructField]:
        """The declared fields plus those an earlier batch added under the evolve policy."""
        return [*self.spec.fields, *self.evolved_fields(spark)]

    def check(self, raw: DataFrame, fields: list[StructField]) -> DataFrame:
        """Raw rows with typed ``fields`` and ``_error_kind``/``_error``/``_rule`` set for
        every record that fails to parse, to type, or a rule (null when it passes)."""
        from pyspark.sql import functions as F

        spec = self.spec
        text = None
        if self.decoder is not None:
            raw, text = self.decoder.decode(raw), F.col("_avro_text")
        parsed = parse(raw, fields, spec.document, spec.table.drift, text)
        if spec.table.cdc:
            parsed = with_change_columns(parsed, spec)
        rule_name, rule_message = first_failure(spec.table.rules)
        return (
            parsed.withColumn("_rule", F.when(F.col("_error_kind").isNull(), rule_name))
            .withColumn(
                "_error_kind",
                F.coalesce("_error_kind", F.when(F.col("_rule").isNotNull(), F.lit("rule"))),
            )
            .withColumn(
                "_error", F.coalesce("_error", F.when(F.col("_rule").isNotNull(), rule_message))
            )
        )

    # -- quarantine ---------------------------------------------------------------------

    def write_quarantine(self, checked: DataFrame, batch_id: int) -> None:
        from pyspark.sql import functions as F

        bad = checked.where(F.col("_error_kind").isNotNull())
        worded = word_parse_errors(bad.where(F.col("_error_kind") == "parse")).unionByName(
            bad.where(F.col("_error_kind") != "parse")
        )
        rows = worded.select(
            "payload",
            F.col("_error_kind").alias("error_kind"),
            F.col("_error").alias("error"),
            F.col("_rule").alias("rule"),
            "source",
            "stream",
            "partition",
            "position",
            "key",
            F.current_timestamp().alias("quarantined_at"),
        )
        self.quarantine.write(rows, batch_id)

    # -- processed ----------------------------------------------------------------------

    def evolved_fields(self, spark: SparkSession) -> list[StructField]:
        """Columns an earlier batch added under the evolve policy."""
        if self.spec.table.drift != "evolve" or not table_exists(spark, self.spec.processed_path):
            return []
        schema = spark.read.format("delta").load(self.spec.processed_path).schema
        declared = {f.name for f in self.spec.fields}
        return [f for f in schema.fields if f.name not in declared and f.name not in SYSTEM_COLUMNS]

    def new_fields(self, good: DataFrame, known: list[StructField]) -> list[StructField]:
        """Unknown fields of this batch, typed from their values, to add as columns
        (evolve policy only)."""
        from pyspark.sql import functions as F
        from pyspark.sql.types import StringType, StructField

        if self.spec.table.drift != "evolve":
            return []
        names = sorted(
            {row[0] for row in good.select(F.explode("_unknown")).distinct().collect()}
            - {f.name for f in known}
        )
        added = []
        for name in names:
            value = F.try_variant_get(F.col("_v"), f"$.{name}", "variant")
            inferred = good.select(F.schema_of_variant_agg(value)).first()
            type_name = str(inferred[0]) if inferred and inferred[0] else "STRING"
            if not type_name.isalpha() and not type_name.startswith("DECIMAL"):
                type_name = "STRING"  # objects and arrays are kept as JSON text
            if type_name in ("VARIANT", "NULL"):
                type_name = "STRING"
            added.append(StructField(name, type_from_name(type_name) or StringType(), True))
        if added:
            log.warning(
                "job %s: evolving processed.%s with new columns %s",
                self.spec.job,
                self.spec.table_name,
                ", ".join(f"{f.name} {f.dataType.simpleString()}" for f in added),
            )
        return added

    def processed_rows(self, good: DataFrame, fields: list[StructField]) -> DataFrame:
        """Checked rows that passed, as processed columns (before dedup and ``_late``)."""
        from pyspark.sql import functions as F

        spec = self.spec
        declared = {f.name for f in spec.fields}
        columns = [
            F.col(f.name)
            if f.name in declared or f.name in good.columns
            else json_or_typed(f).alias(f.name)
            for f in fields
        ]
        rows = good.select(
            *columns,
            *([F.col("_rescued")] if spec.table.drift == "rescue" else []),
            *([F.col("_op"), F.col("_sequence_number")] if spec.table.cdc else []),
            F.col("source").alias("_source"),
            F.col("stream").alias("_stream"),
            F.col("partition").alias("_partition"),
            F.col("position").alias("_position"),
            F.col("ingest_ts").alias("_ingest_ts"),
        )
        return rows.withColumn("event_date", F.to_date(self.time_column()))

    def time_column(self) -> Column:
        from pyspark.sql import functions as F

        return F.coalesce(F.col(self.spec.table.event_time or "_ingest_ts"), F.col("_ingest_ts"))

    def first_of_each_event(self, rows: DataFrame) -> DataFrame:
        """One row per dedup key, the first one ingested; rows without a key are all kept
        (nothing says they are the same event)."""
        from pyspark.sql import Window
        from pyspark.sql import functions as F

        keys = self.spec.dedup_keys
        first = Window.partitionBy(*keys).orderBy("_ingest_ts", "_partition", "_position")
        return (
            rows.withColumn("_n", F.row_number().over(first))
            .where((F.col("_n") == 1) | any_null(keys))
            .drop("_n")
        )

    def plan_processed(
        self, good: DataFrame, fields: list[StructField]
    ) -> tuple[DataFrame, int, int, int]:
        """The rows to append to processed, and the (processed, duplicates, late) counts.

        Counted before anything is written: once this batch's rows are in processed, the
        anti-join would find them there."""
        from pyspark.sql import functions as F

        spark = good.sparkSession
        time_column = self.time_column()
        rows = self.processed_rows(good, fields)
        keys = self.spec.dedup_keys
        keyed = F.when(~any_null(keys), F.struct(*keys))
        summary = rows.agg(
            F.count(F.lit(1)), F.count_distinct(keyed), F.count(keyed), F.max(time_column)
        ).first()
        assert summary is not None
        passed, newest = int(summary[0]), summary[3]
        # Most batches repeat no event id; they skip the sort that picks each event's first.
        repeats = summary[1] != summary[2]
        unique, late_from = self.without_seen_events(
            spark, self.first_of_each_event(rows) if repeats else rows, newest
        )
        unique = unique.withColumn(
            "_late", F.coalesce(time_column < F.lit(late_from), F.lit(False))
        )
        counted = unique.agg(F.count(F.lit(1)), F.count_if(F.col("_late"))).first()
        processed, late = (int(counted[0]), int(counted[1])) if counted else (0, 0)
        return unique, processed, passed - processed, late

    def without_seen_events(
        self, spark: SparkSession, batch: DataFrame, newest: Any
    ) -> tuple[DataFrame, Any]:
        """Drop events already in processed within the watermark (``newest`` is the batch's
        latest event time); return the late bound."""
        from pyspark.sql import functions as F

        spec = self.spec
        keys = list(spec.dedup_keys)
        if not table_exists(spark, spec.processed_path):
            self.newest_seen = newest
            return batch, lower_bound(newest, spec.table.watermark)
        processed = spark.read.format("delta").load(spec.processed_path)
        if self.newest_seen is None:
            # Read from the table once per run; later batches add their own newest to it.
            seen_max = processed.agg(F.max(self.time_column())).first()
            self.newest_seen = seen_max[0] if seen_max else None
        candidates = [t for t in (newest, self.newest_seen) if t is not None]
        self.newest_seen = max(candidates) if candidates else None
        bound = lower_bound(self.newest_seen, spec.table.watermark)
        if bound is None:
            return batch, None
        # The recent part of processed can be far bigger than the batch: it is only scanned,
        # filtered by the batch's broadcast keys, and what matches is broadcast back.
        recent = processed.where(F.col("event_date") >= F.to_date(F.lit(bound))).select(*keys)
        seen = recent.join(F.broadcast(batch.select(*keys).distinct()), on=keys, how="left_semi")
        return batch.join(F.broadcast(seen.distinct()), on=keys, how="left_anti"), bound

    # -- metrics ------------------------------------------------------------------------

    def record(self, spark: SparkSession, batch_id: int, counts: BatchCounts) -> None:
        from pyspark.sql import functions as F

        alert = counts.quarantine_ratio > ALERT_QUARANTINE_RATIO
        fields = {
            "job": self.spec.job,
            "batch_id": batch_id,
            "rows_in": counts.rows_in,
            "processed": counts.processed,
            "quarantined": counts.quarantine_total,
            "quarantined_by_kind": counts.quarantined,
            "duplicates": counts.duplicates,
            "late": counts.late,
            "quarantine_ratio": round(counts.quarantine_ratio, 4),
            "alert": alert,
        }
        log.info(
            "job %s batch %s: %s in, %s processed, %s quarantined %s, %s duplicates, %s late",
            self.spec.job,
            batch_id,
            counts.rows_in,
            counts.processed,
            counts.quarantine_total,
            counts.quarantined,
            counts.duplicates,
            counts.late,
            extra={"fields": fields},
        )
        if alert:
            log.warning(
                "alert: job %s batch %s quarantined %.1f%% of its records (threshold %.0f%%)",
                self.spec.job,
                batch_id,
                100 * counts.quarantine_ratio,
                100 * ALERT_QUARANTINE_RATIO,
                extra={"fields": {**fields, "alert": "quarantine_ratio"}},
            )
        row = {k: v for k, v in fields.items() if k != "quarantined_by_kind"}
        row["quarantined_by_kind"] = ",".join(
            f"{k}={v}" for k, v in sorted(counts.quarantined.items())
        )
        metrics = spark.createDataFrame(
            [(*[row[name] for name in METRICS_COLUMNS[:-1]], None)], METRICS_SCHEMA
        ).withColumn("recorded_at", F.current_timestamp())
        self.metrics.write(metrics, batch_id)


def quarantine_counts(checked: DataFrame) -> dict[str, int]:
    """Records bound for quarantine, by error kind."""
    from pyspark.sql import functions as F

    bad = checked.where(F.col("_error_kind").isNotNull()).groupBy("_error_kind").count()
    return {row["_error_kind"]: int(row["count"]) for row in bad.collect()}


def any_null(columns: tuple[str, ...]) -> Column:
    from pyspark.sql import functions as F

    result = F.lit(False)
    for name in columns:
        result = result | F.col(name).isNull()
    return result


def slim(checked: DataFrame) -> DataFrame:
    """What a batch keeps in its cache, the batch's biggest memory cost: the payload only of
    records bound for quarantine, the VARIANT only of records with fields to evolve into
    new columns, and no JSON text (parse failures are worded from their payload)."""
    from pyspark.sql import functions as F

    return checked.select(
        *[c for c in checked.columns if c not in ("_text", "_avro_text", "payload", "_v")],
        F.when(F.col("_error_kind").isNotNull(), F.col("payload")).alias("payload"),
        F.when(F.size("_unknown") > 0, F.col("_v")).alias("_v"),
    )


def with_change_columns(parsed: DataFrame, spec: ProcessSpec) -> DataFrame:
    """CDC columns of a DynamoDB change: operation, sequence number, and the key of a
    remove (whose new image is empty) taken from the keys."""
    from pyspark.sql import functions as F

    operation = F.try_variant_get(F.col("_v"), "$.event_name", "string")
    frame = parsed.withColumn(
        "_op",
        F.when(operation == "INSERT", "insert")
        .when(operation == "MODIFY", "modify")
        .when(operation == "REMOVE", "remove"),
    ).withColumn("_sequence_number", F.try_variant_get(F.col("_v"), "$.sequence_number", "string"))
    key = spec.table.event_id
    if key:
        from_keys = F.coalesce(
            *[
                F.try_variant_get(F.col("_v"), f"$.keys.{key}.{kind}", "string")
                for kind in ("S", "N")
            ]
        )
        frame = frame.withColumn(key, F.coalesce(F.col(key), from_keys))
    if spec.table.event_time:
        created = F.try_variant_get(F.col("_v"), "$.approximate_creation_time", "timestamp")
        frame = frame.withColumn(
            spec.table.event_time, F.coalesce(F.col(spec.table.event_time), created)
        )
    return frame


def lower_bound(newest: Any, watermark: str) -> Any:
    """``newest`` minus the watermark delay ("10 minutes", "1 hour"), or None."""
    if newest is None:
        return None
    from datetime import timedelta

    amount, unit = watermark.split()
    seconds = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}[unit.rstrip("s")]
    return newest - timedelta(seconds=float(amount) * seconds)


def type_from_name(name: str) -> Any:
    from pyspark.sql.types import _parse_datatype_string

    try:
        return _parse_datatype_string(name.lower())
    except Exception:
        return None


def json_or_typed(field: StructField) -> Column:
    from pyspark.sql import functions as F

    type_name = field.dataType.simpleString()
    value = F.try_variant_get(F.col("_v"), f"$.{field.name}", "variant")
    if type_name == "string":
        as_string = F.try_variant_get(F.col("_v"), f"$.{field.name}", "string")
        return F.coalesce(as_string, F.to_json(value))
    return F.try_variant_get(F.col("_v"), f"$.{field.name}", type_name)
