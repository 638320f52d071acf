"""The ingest jobs: a source stream to raw.<table>, exactly once (each micro-batch one
idempotent Delta append, see ``streamlake.lake.spark_delta``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from typing import TYPE_CHECKING

from connectors.aws import AwsEndpoint
from connectors.base import BatchCommitted, StreamRequest
from connectors.registry import source_kind
from streaming.checkpoint_guard import JobLedger, Recovery, checkpoint_files, guard
from streaming.process import ProcessBatchWriter, process_writer, stop_processing, table_leases
from streaming.runtime import StreamJob
from streamlake.config.pipeline import Pipeline
from streamlake.config.settings import Settings
from streamlake.errors import UsageError
from streamlake.faults import Faults
from streamlake.lake.checkpoint import CheckpointFiles
from streamlake.lake.spark_delta import IdempotentDeltaAppend, ensure_table
from streamlake.lake.tables import RAW
from streamlake.metrics import MetricsPublisher
from streamlake.notifications import Notifier

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


def ingest_job(
    spark: SparkSession,
    name: str,
    pipeline: Pipeline,
    settings: Settings,
    aws: AwsEndpoint,
    available_now: bool = False,
    recover: Recovery | None = None,
    accepted_gaps: tuple[str, ...] = (),
    notifier: Notifier | None = None,
    metrics: MetricsPublisher | None = None,
) -> StreamJob:
    """The job, once its checkpoint agrees with raw.<table> (see ``checkpoint_guard``)."""
    job = pipeline.jobs[name]
    if job.kind != "ingest" or job.table is None:
        raise UsageError(f"{name} is not an ingest job")
    table = pipeline.tables[job.table]
    source = pipeline.sources[table.source]
    checkpoint = settings.lake.checkpoint_path(name)
    raw_path = settings.lake.table_path("raw", job.table)
    files = checkpoint_files(checkpoint, settings)
    start = guard(JobLedger(name, f"raw.{job.table}", raw_path), files, settings, recover)
    # Up front, so that the table's process job can start in the same run before the
    # first batch arrives.
    ensure_table(spark, raw_path, RAW)
    request = StreamRequest(
        spark,
        table,
        settings,
        aws,
        checkpoint,
        available_now,
        start_offset=None if start is None else start.source_offset,
        accepted_gaps=accepted_gaps,
    )
    kind = source_kind(source)
    frame, translate = kind.open_stream(source, request)
    target = IdempotentDeltaAppend(
        raw_path, app_id=name, partition_by=RAW.partition_by, checkpoint=checkpoint
    )
    writer = RawBatchWriter(
        target, files, settings.faults, after=kind.after_commit(source, request)
    )
    heartbeat: Callable[[], None] = lambda: None  # noqa: E731
    on_stop: Callable[[], None] = lambda: None  # noqa: E731
    inline = pipeline.inline_process_job_of(job.table)
    if inline is not None:
        leases = table_leases(settings)
        leases.take(job.table, inline)  # a replay of the table refuses to run meanwhile
        process = process_writer(
            spark, inline, pipeline, settings, checkpoint, files, notifier, metrics
        )
        writer = replace(writer, process=process)
        heartbeat = partial(leases.take, job.table, inline)
        on_stop = partial(stop_processing, process, leases, job.table, inline)
    return StreamJob(
        name=name,
        frame=frame,
        batch_function=writer,
        checkpoint=checkpoint,
        trigger_interval=job.trigger,
        translate_error=translate,
        drained=None if kind.spark_available_now else partial(kind.available_now_done, files),
        heartbeat=heartbeat,
        on_stop=on_stop,
    )


@dataclass(frozen=True)
class RawBatchWriter:
    """foreachBatch function of the ingest jobs: stamps the batch's ingest time (the same
    on a replay), appends to raw.<t>
    with the batch's source offset in the commit (what ``--recover from-table`` resumes at).

    With ``process`` (the table's process job in inline mode) the same batch then goes to
    processed and quarantine: one hop from the source to processed. Each of the writes is
    idempotent per batch id, so a batch replayed after a crash anywhere between them writes
    what was missing and nothing twice. The batch is read from the source once, cached for
    both writes."""

    target: IdempotentDeltaAppend
    checkpoint: CheckpointFiles
    faults: Faults = field(default_factory=Faults)
    # The source's own step once the batch is committed (a files source archives its files).
    after: BatchCommitted | None = None
    process: ProcessBatchWriter | None = None

    def __call__(self, frame: DataFrame, batch_id: int) -> None:
        from pyspark import StorageLevel
        from pyspark.sql import functions as F

        # Spark's timestamp of the batch, not the clock: a replayed batch gets the ingest
        # time it had, so what the rules decide from it (event time not in the future) and
        # the lineage in processed agree with raw.
        planned_ms = self.checkpoint.batch_timestamp_ms(batch_id)
        ingest_ts = (
            F.current_timestamp() if planned_ms is None else F.timestamp_millis(F.lit(planned_ms))
        )
        stamped = (
            frame.withColumn("ingest_ts", ingest_ts)
            .withColumn("ingest_date", F.to_date("ingest_ts"))
            .select(*RAW.names)
        )
        if self.process is not None:
            stamped = stamped.persist(StorageLevel.MEMORY_AND_DISK)
        try:
            offset = self.checkpoint.source_offset(batch_id)
            self.target.write(stamped, batch_id, metadata={"source_offset": offset})
            self.faults.reached("after-raw-commit")
            if self.process is not None:
                self.process(stamped, batch_id)
            if self.after is not None:
                self.after(batch_id)
        finally:
            if self.process is not None:
                stamped.unpersist()
