"""Kinesis Data Streams as a source kind."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from connectors.base import (
    ErrorTranslator,
    Event,
    Resource,
    Send,
    Sink,
    SourceKind,
    StreamRequest,
)
from connectors.kinesis import admin
from connectors.kinesis.producer import KinesisRecordProducer
from connectors.shard_stream import errors
from connectors.shard_stream.checkpoint import available_now_done
from streamlake.config.pipeline import KinesisSource

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from connectors.aws import AwsEndpoint
    from streamlake.config.settings import Settings
    from streamlake.lake.checkpoint import CheckpointFiles


class KinesisKind(SourceKind[KinesisSource]):
    kind = "kinesis"
    spark_available_now = False

    def available_now_done(self, checkpoint: CheckpointFiles) -> bool:
        return available_now_done(checkpoint)

    def resource_identity(self, source: KinesisSource) -> tuple[str, str]:
        return ("kinesis stream", source.stream)

    def resources(
        self, source: KinesisSource, settings: Settings, aws: AwsEndpoint
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
        self, source: KinesisSource, settings: Settings, aws: AwsEndpoint
    ) -> tuple[Send, Sink]:
        kinesis = KinesisRecordProducer(aws.client("kinesis"), source.stream)

        def send(event: Event) -> None:
            kinesis.send(event.key, event.payload)

        return send, kinesis

    def open_stream(
        self, source: KinesisSource, request: StreamRequest
    ) -> tuple[DataFrame, ErrorTranslator]:
        # Imports pyspark: loaded only when a job reads the stream.
        from connectors.kinesis.source import KinesisDataSource
        from connectors.shard_stream.reader import open_shard_stream

        options = {"stream": source.stream, "starting_position": source.starting_position}
        if source.max_records_per_trigger:
            options["max_records_per_shard"] = str(source.max_records_per_trigger)
        return open_shard_stream(request, KinesisDataSource, options), errors.translate


KINESIS = KinesisKind()
