"""Kinesis Data Streams as a source kind."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from connectors.base import ErrorTranslator, Event, Resource, Send, Sink, SourceKind
from connectors.kinesis import admin
from connectors.kinesis.producer import KinesisRecordProducer
from connectors.shard_stream import errors
from streamlake.config.pipeline import KinesisSource

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from connectors.aws import AwsEndpoint
    from streamlake.config.pipeline import Table
    from streamlake.config.settings import Settings


class KinesisKind(SourceKind[KinesisSource]):
    kind = "kinesis"

    def resource_identity(self, source: KinesisSource) -> tuple[str, str]:
        return ("kinesis stream", source.stream)

    def resources(
        self, source: KinesisSource, bootstrap_servers: str, aws: AwsEndpoint
    ) -> list[Resource]:
        kinesis = aws.client("kinesis")
        return [
            Resource(
                *self.resource_identity(source),
                partial(admin.stream_exists, kinesis, source.stream),
                partial(admin.ensure_stream, kinesis, source.stream, source.shards),
            )
        ]

    def producer(
        self, source: KinesisSource, bootstrap_servers: str, aws: AwsEndpoint
    ) -> tuple[Send, Sink]:
        kinesis = KinesisRecordProducer(aws.client("kinesis"), source.stream)

        def send(event: Event) -> None:
            kinesis.send(event.key, event.payload)

        return send, kinesis

    def open_stream(
        self,
        spark: SparkSession,
        source: KinesisSource,
        table: Table,
        settings: Settings,
        aws: AwsEndpoint,
        checkpoint: str,
        available_now: bool,
    ) -> tuple[DataFrame, ErrorTranslator]:
        # Imports pyspark: loaded only when a job reads the stream.
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
        return frame, errors.translate


KINESIS = KinesisKind()
