"""DynamoDB tables, read through their change streams, as a source kind."""

from __future__ import annotations

from decimal import Decimal
from functools import partial
from typing import TYPE_CHECKING, Any

from connectors.base import (
    ErrorTranslator,
    Event,
    Resource,
    Send,
    Sink,
    SourceKind,
    StreamRequest,
)
from connectors.dynamodb_streams import admin
from connectors.dynamodb_streams.table_writer import DynamoDbTableWriter
from connectors.shard_stream import errors
from connectors.shard_stream.checkpoint import available_now_done
from streamlake.config.pipeline import DynamoDbSource

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from connectors.aws import AwsEndpoint
    from streamlake.config.settings import Settings
    from streamlake.lake.checkpoint import CheckpointFiles


class DynamoDbKind(SourceKind[DynamoDbSource]):
    kind = "dynamodb"
    spark_available_now = False

    def available_now_done(self, checkpoint: CheckpointFiles) -> bool:
        return available_now_done(checkpoint)

    def resource_identity(self, source: DynamoDbSource) -> tuple[str, str]:
        return ("dynamodb table", source.table)

    def resources(
        self, source: DynamoDbSource, settings: Settings, aws: AwsEndpoint
    ) -> list[Resource]:
        dynamodb = aws.client("dynamodb")
        spec = admin.TableSpec(
            source.table,
            source.hash_key,
            source.hash_key_type,
            source.range_key,
            source.range_key_type,
            source.stream_view,
        )
        return [
            Resource(
                *self.resource_identity(source),
                partial(admin.has_stream, dynamodb, source.table),
                partial(admin.ensure_table, dynamodb, spec),
            )
        ]

    def producer(
        self, source: DynamoDbSource, settings: Settings, aws: AwsEndpoint
    ) -> tuple[Send, Sink]:
        table = DynamoDbTableWriter(aws.resource("dynamodb"), source.table)

        def send(event: Event) -> None:
            assert event.item is not None, "table sources produce whole items"
            if event.op == "delete":
                table.delete({source.hash_key: event.item[source.hash_key]})
            else:
                table.put(dynamodb_item(event.item))

        return send, table

    def open_stream(
        self, source: DynamoDbSource, request: StreamRequest
    ) -> tuple[DataFrame, ErrorTranslator]:
        # Imports pyspark: loaded only when a job reads the stream.
        from connectors.dynamodb_streams.source import DynamoDbStreamsDataSource
        from connectors.shard_stream.reader import open_shard_stream

        # 1000 is GetRecords' maximum on DynamoDB Streams.
        options = {"table": source.table, "page_limit": "1000"}
        if source.max_records_per_trigger:
            options["max_records_per_shard"] = str(source.max_records_per_trigger)
        return open_shard_stream(request, DynamoDbStreamsDataSource, options), errors.translate


def dynamodb_item(item: dict[str, Any]) -> dict[str, Any]:
    """DynamoDB stores numbers as Decimal; floats are not accepted by boto3."""
    return {k: Decimal(str(v)) if isinstance(v, float) else v for k, v in item.items()}


DYNAMODB = DynamoDbKind()
