"""The process jobs: raw.<table> -> processed.<table> and quarantine.<table>.

Per micro-batch: parse and type the payloads, check the declared rules, send every failure
to quarantine with its reason, drop duplicate events (same event id within the watermark),
flag late ones, and write both outputs with Delta idempotent writes, so that a batch
replayed after a crash writes each record once to processed or quarantine. The transforms
themselves are in ``streaming.transforms``; this module wires them to the lake.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

from connectors.s3 import location_files
from streaming.batch_metrics import BatchCounts, MetricsRecorder, ensure_metrics_table
from streaming.checkpoint_guard import (
    JobLedger,
    Recovery,
    checkpoint_files,
    delta_starting_version,
    guard,
)
from streaming.runtime import StreamJob
from streaming.transforms.check import CheckPlan, passed
from streaming.transforms.decoders import PayloadDecoder, payload_decoder
from streaming.transforms.dedup import Watermark
from streaming.transforms.drift import known_fields, needs_schema_merge, new_fields
from streaming.transforms.shape import processed_rows, quarantine_rows
from streaming.transforms.spec import TableSpec
from streaming.transforms.summary import summarize
from streamlake.config.pipeline import Notifications, Pipeline
from streamlake.config.settings import Settings
from streamlake.errors import UsageError
from streamlake.faults import Faults
from streamlake.lake.checkpoint import CheckpointFiles
from streamlake.lake.delta_rs import last_transaction_version
from streamlake.lake.leases import LEASES, TableLeases
from streamlake.lake.spark_delta import IdempotentDeltaAppend, read_table, table_exists
from streamlake.lake.tables import PROCESSED_PARTITION
from streamlake.metrics import MetricsPublisher
from streamlake.notifications import Notifier

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import StructField

DEFAULT_MAX_BYTES_PER_TRIGGER = "64m"


@dataclass(frozen=True)
class ProcessTargets:
    """Where a table's processing writes, each append idempotent per batch id."""

    processed: IdempotentDeltaAppend
    quarantine: IdempotentDeltaAppend
    metrics: MetricsRecorder

    @classmethod
    def of(
        cls,
        settings: Settings,
        job: str,
        table: str,
        checkpoint: str | None,
        notifications: Notifications | None = None,
        notifier: Notifier | None = None,
        metrics: MetricsPublisher | None = None,
    ) -> ProcessTargets:
        lake = settings.lake
        notifications = notifications or Notifications()

        def append(path: str, *partition_by: str) -> IdempotentDeltaAppend:
            return IdempotentDeltaAppend(path, job, partition_by, checkpoint=checkpoint)

        metrics_path = lake.meta_path("batch_metrics")
        recorded_through = partial(last_transaction_version, metrics_path, settings)
        return cls(
            processed=append(lake.table_path("processed", table), PROCESSED_PARTITION),
            quarantine=append(lake.table_path("quarantine", table)),
            metrics=MetricsRecorder(
                job,
                append(metrics_path),
                recorded_through,
                alert_ratio=notifications.quarantine_ratio,
                notifier=notifier,
                publisher=metrics,
                table=table,
            ),
        )


def process_job(
    spark: SparkSession,
    name: str,
    pipeline: Pipeline,
    settings: Settings,
    recover: Recovery | None = None,
    notifier: Notifier | None = None,
    metrics: MetricsPublisher | None = None,
) -> StreamJob:
    """The job, once its checkpoint agrees with processed.<table> (see ``checkpoint_guard``).
    ``notifier`` hears of batches quarantining too much; ``metrics`` gets each batch's
    counts."""
    job = pipeline.jobs[name]
    if job.kind != "process" or job.table is None:
        raise UsageError(f"{name} is not a process job")
    if job.mode == "inline":
        raise UsageError(
            f"{name} runs inside {pipeline.ingest_job_of(job.table)} (mode: inline)",
            f"run {pipeline.ingest_job_of(job.table)}, or set mode: separate to run {name}",
        )
    raw_path = settings.lake.table_path("raw", job.table)
    if not table_exists(spark, raw_path):
        raise UsageError(
            f"raw.{job.table} does not exist yet at {raw_path}",
            f"run the ingest job of {job.table} first",
        )
    leases = table_leases(settings)
    leases.take(job.table, name)  # a replay of the table refuses to run meanwhile
    checkpoint = settings.lake.checkpoint_path(name)
    files = checkpoint_files(checkpoint, settings)
    ledger = JobLedger(
        name, f"processed.{job.table}", settings.lake.table_path("processed", job.table)
    )
    start = guard(ledger, files, settings, recover)
    reader = spark.readStream.format("delta")
    if start is not None:
        reader = reader.option("startingVersion", delta_starting_version(start.source_offset))
    if job.max_files_per_trigger:
        reader = reader.option("maxFilesPerTrigger", job.max_files_per_trigger)
    if job.max_bytes_per_trigger or not job.max_files_per_trigger:
        limit = job.max_bytes_per_trigger or DEFAULT_MAX_BYTES_PER_TRIGGER
        reader = reader.option("maxBytesPerTrigger", limit)
    writer = process_writer(spark, name, pipeline, settings, checkpoint, files, notifier, metrics)
    return StreamJob(
        name=name,
        frame=reader.load(raw_path),
        batch_function=writer,
        checkpoint=checkpoint,
        trigger_interval=job.trigger,
        heartbeat=partial(leases.take, job.table, name),
        on_stop=partial(stop_processing, writer, leases, job.table, name),
    )


def process_writer(
    spark: SparkSession,
    name: str,
    pipeline: Pipeline,
    settings: Settings,
    checkpoint: str,
    files: CheckpointFiles,
    notifier: Notifier | None = None,
    metrics: MetricsPublisher | None = None,
) -> ProcessBatchWriter:
    """The batch function of process job ``name``, for the stream whose checkpoint is
    ``checkpoint`` (its own, or its ingest job's when it runs inline)."""
    job = pipeline.jobs[name]
    assert job.table is not None
    ensure_metrics_table(spark, settings.lake.meta_path("batch_metrics"))
    spec = TableSpec.of(spark, job.table, pipeline.tables[job.table])
    return ProcessBatchWriter(
        spec,
        ProcessTargets.of(
            settings, name, job.table, checkpoint, pipeline.notifications, notifier, metrics
        ),
        payload_decoder(pipeline, job.table, settings),
        files,
        settings.faults,
    )


def table_leases(settings: Settings) -> TableLeases:
    return TableLeases(location_files(settings.lake.meta_path(LEASES), settings))


def stop_processing(writer: ProcessBatchWriter, leases: TableLeases, table: str, job: str) -> None:
    """A processing job's ``on_stop``: its last metrics written, its table lease given back."""
    writer.targets.metrics.flush()
    leases.release(table, job)


class ProcessBatchWriter:
    """foreachBatch function of a process job; Spark calls it once per micro-batch."""

    def __init__(
        self,
        spec: TableSpec,
        targets: ProcessTargets,
        decoder: PayloadDecoder | None = None,
        checkpoint: CheckpointFiles | None = None,
        faults: Faults = Faults(),
    ) -> None:
        self.spec = spec
        self.targets = targets
        self.decoder = decoder
        self.checkpoint = checkpoint
        self.faults = faults
        self.watermark = Watermark(spec)
        self.started = False
        self.plan: tuple[tuple[StructField, ...], CheckPlan] | None = None

    def check_plan(self, fields: list[StructField]) -> CheckPlan:
        """The batch's check, built again only when the table's fields change."""
        if self.plan is None or self.plan[0] != tuple(fields):
            plan = CheckPlan.of(self.spec, fields, self.decoder, slim=True)
            self.plan = (tuple(fields), plan)
        return self.plan[1]

    def __call__(self, raw: DataFrame, batch_id: int) -> None:
        spark = raw.sparkSession
        if not self.started:
            self.started = True
            # Only a run's first batch can be a replay of one whose data committed before
            # a crash; the metrics of that batch (and of earlier ones whose metrics write
            # died with the process) come from the commits, as a recount would find their
            # rows already processed.
            committed = self.targets.processed.committed_batches(spark)
            self.targets.metrics.catch_up(spark, committed)
            if batch_id in committed:
                return
        processed = read_table(spark, self.targets.processed.path)
        fields = known_fields(self.spec, None if processed is None else processed.schema)
        checked = self.check_plan(fields).apply(raw).persist()
        try:
            summary = summarize(checked, self.spec, fields)
            good = passed(checked)
            added = new_fields(good, self.spec, fields, summary.with_unknown_fields > 0)
            rows = processed_rows(good, self.spec, [*fields, *added])
            kept = self.watermark.deduplicate(rows, processed, summary)
            counts = BatchCounts(
                summary.rows_in,
                kept.processed,
                summary.quarantined,
                kept.duplicates,
                kept.late,
                kept.no_event_time,
            )
            if summary.quarantined:  # a clean batch makes no empty quarantine commit
                self.targets.quarantine.write(quarantine_rows(checked), batch_id)
                self.faults.reached("after-quarantine-commit")
            # Processed commits last, carrying the counts; metrics follow the data they count.
            merge = needs_schema_merge(kept.rows, processed, self.spec)
            metadata = counts.as_dict()
            if self.checkpoint is not None:  # what `--recover from-table` resumes after
                metadata["source_offset"] = self.checkpoint.source_offset(batch_id)
            self.targets.processed.write(kept.rows, batch_id, merge_schema=merge, metadata=metadata)
            self.targets.metrics.record(spark, batch_id, counts)
            self.faults.reached("after-processed-commit")
        finally:
            checked.unpersist()
