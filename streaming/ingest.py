"""The ingest jobs: a source stream to raw.<table>, exactly once (each micro-batch one
idempotent Delta append, see ``streamlake.lake.spark_delta``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING

from connectors.aws import AwsEndpoint
from connectors.base import StreamRequest
from connectors.registry import source_kind
from streaming.checkpoint_guard import JobLedger, Recovery, checkpoint_files, guard
from streaming.runtime import StreamJob
from streamlake.config.pipeline import Pipeline
from streamlake.config.settings import Settings
from streamlake.errors import UsageError
from streamlake.faults import Faults
from streamlake.lake.checkpoint import CheckpointFiles
from streamlake.lake.spark_delta import IdempotentDeltaAppend, ensure_table
from streamlake.lake.tables import RAW

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
    return StreamJob(
        name=name,
        frame=frame,
        batch_function=RawBatchWriter(target, files, settings.faults),
        checkpoint=checkpoint,
        trigger_interval=job.trigger,
        translate_error=translate,
        drained=None if kind.spark_available_now else partial(kind.available_now_done, files),
    )


@dataclass(frozen=True)
class RawBatchWriter:
    """foreachBatch function of the ingest jobs: stamps ingest time, appends to raw.<t>
    with the batch's source offset in the commit (what ``--recover from-table`` resumes at)."""

    target: IdempotentDeltaAppend
    checkpoint: CheckpointFiles
    faults: Faults = field(default_factory=Faults)

    def __call__(self, frame: DataFrame, batch_id: int) -> None:
        from pyspark.sql import functions as F

        stamped = frame.withColumn("ingest_ts", F.current_timestamp()).withColumn(
            "ingest_date", F.to_date("ingest_ts")
        )
        offset = self.checkpoint.source_offset(batch_id)
        self.target.write(stamped.select(*RAW.names), batch_id, metadata={"source_offset": offset})
        self.faults.reached("after-raw-commit")
