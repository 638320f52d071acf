"""The ingest jobs: a source stream to raw.<table>, exactly once (each micro-batch one
idempotent Delta append, see ``streamlake.lake.spark_delta``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from connectors.aws import AwsEndpoint
from connectors.base import StreamRequest
from connectors.registry import source_kind
from streaming.runtime import StreamJob
from streamlake.config.pipeline import Pipeline
from streamlake.config.settings import Settings
from streamlake.errors import UsageError
from streamlake.lake.spark_delta import IdempotentDeltaAppend
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
) -> StreamJob:
    job = pipeline.jobs[name]
    if job.kind != "ingest" or job.table is None:
        raise UsageError(f"{name} is not an ingest job")
    table = pipeline.tables[job.table]
    source = pipeline.sources[table.source]
    checkpoint = settings.lake.checkpoint_path(name)
    request = StreamRequest(spark, table, settings, aws, checkpoint, available_now)
    frame, translate = source_kind(source).open_stream(source, request)
    target = IdempotentDeltaAppend(
        settings.lake.table_path("raw", job.table),
        app_id=name,
        partition_by=RAW.partition_by,
        checkpoint=checkpoint,
    )
    return StreamJob(
        name=name,
        frame=frame,
        batch_function=RawBatchWriter(target),
        checkpoint=checkpoint,
        trigger_interval=job.trigger,
        translate_error=translate,
    )


@dataclass(frozen=True)
class RawBatchWriter:
    """foreachBatch function of the ingest jobs: stamps ingest time, appends to raw.<t>."""

    target: IdempotentDeltaAppend

    def __call__(self, frame: DataFrame, batch_id: int) -> None:
        from pyspark.sql import functions as F

        stamped = frame.withColumn("ingest_ts", F.current_timestamp()).withColumn(
            "ingest_date", F.to_date("ingest_ts")
        )
        self.target.write(stamped.select(*RAW.names), batch_id)
