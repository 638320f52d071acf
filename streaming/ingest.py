"""The ingest jobs: a source stream to raw.<table>, exactly once."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from connectors.aws import AwsEndpoint
from connectors.kafka.source import KafkaStreamOptions, data_loss_from, read_kafka_stream
from connectors.shard_stream import errors as shard_errors
from streaming.delta_writer import IdempotentDeltaAppend, RawBatchWriter
from streaming.runtime import ErrorTranslator, StreamJob
from streamlake.config.pipeline import (
    DynamoDbSource,
    KafkaSource,
    KinesisSource,
    Pipeline,
    Source,
    Table,
)
from streamlake.config.settings import Settings
from streamlake.errors import StreamlakeError, UsageError

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
    frame, translate = source_stream(spark, source, table, settings, aws, checkpoint, available_now)
    target = IdempotentDeltaAppend(
        settings.lake.table_path("raw", job.table),
        app_id=name,
        partition_by=("ingest_date",),
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


def source_stream(
    spark: SparkSession,
    source: Source,
    table: Table,
    settings: Settings,
    aws: AwsEndpoint,
    checkpoint: str,
    available_now: bool,
) -> tuple[DataFrame, ErrorTranslator]:
    """The source as raw-layer rows, and how to read its failures."""
    if isinstance(source, KafkaSource):
        options = KafkaStreamOptions(
            bootstrap_servers=settings.bootstrap_servers,
            topic=source.topic,
            starting_offsets=source.starting_offsets,
            max_offsets_per_trigger=source.max_offsets_per_trigger,
            fail_on_data_loss=not table.accept_data_loss,
            security_protocol=settings.kafka.security_protocol,
            sasl_mechanism=settings.kafka.sasl_mechanism,
            client_options=dict(settings.kafka.options),
        )
        return read_kafka_stream(spark, options), partial(kafka_loss, source.topic)
    if isinstance(source, KinesisSource):
        from connectors.kinesis.source import read_kinesis_stream

        frame = read_kinesis_stream(
            spark,
            aws,
            source.stream,
            checkpoint=checkpoint,
            starting_position=source.starting_position,
            accept_data_loss=table.accept_data_loss,
            max_records_per_shard=source.max_records_per_trigger,
            # Available-now runs are one batch: it must take everything there is.
            drain=available_now,
        )
        return frame, shard_errors.translate
    if isinstance(source, DynamoDbSource):
        from connectors.dynamodb_streams.source import read_dynamodb_stream

        frame = read_dynamodb_stream(
            spark,
            aws,
            source.table,
            checkpoint=checkpoint,
            accept_data_loss=table.accept_data_loss,
            drain=available_now,
        )
        return frame, shard_errors.translate
    raise UsageError(f"ingest from a {source.kind} source is not available yet")


def kafka_loss(topic: str, message: str) -> StreamlakeError | None:
    return data_loss_from(message, topic)
