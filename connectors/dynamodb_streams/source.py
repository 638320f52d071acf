"""DynamoDB Streams as a Spark stream: a PySpark Python data source on boto3.

Delivery: exactly-once into the raw table with the idempotent batch writer, the same way
as the Kinesis source (``connectors.shard_stream.reader``). Each raw row's payload is the
stream record as JSON: event name, keys, new and old images (DynamoDB's typed attribute
JSON), sequence number and creation time.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

from connectors.aws import AwsEndpoint
from connectors.shard_stream.api import Page, ShardInfo, SourceRecord
from connectors.shard_stream.offsets import TRIM_HORIZON
from connectors.shard_stream.reader import ShardDataSource, shard_infos
from streamlake.errors import StreamlakeError

if TYPE_CHECKING:
    pass

FORMAT = "streamlake-dynamodb-streams"


class DynamoDbStreamShards:
    """The ShardApi of one DynamoDB table's current stream."""

    source = "dynamodb"

    def __init__(self, options: dict[str, str]) -> None:
        endpoint = AwsEndpoint.from_options(options)
        self.stream = options["table"]
        self.client = endpoint.client("dynamodbstreams", retries=3)
        self._dynamodb = endpoint.client("dynamodb", retries=3)
        self._arn: str | None = options.get("stream_arn")

    @property
    def arn(self) -> str:
        if self._arn is None:
            table = self._dynamodb.describe_table(TableName=self.stream)["Table"]
            arn = table.get("LatestStreamArn")
            if not arn:
                raise StreamlakeError(
                    f"DynamoDB table {self.stream} has no stream",
                    "enable its stream (NEW_AND_OLD_IMAGES), e.g. with `streamlake local up`",
                )
            self._arn = str(arn)
        return self._arn

    def list_shards(self) -> list[ShardInfo]:
        shards: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"StreamArn": self.arn}
        while True:
            description = self.client.describe_stream(**kwargs)["StreamDescription"]
            shards.extend(description["Shards"])
            last = description.get("LastEvaluatedShardId")
            if not last:
                return shard_infos(shards)
            kwargs["ExclusiveStartShardId"] = last

    def iterator(self, shard_id: str, after: str | None, initial: str) -> str:
        kwargs: dict[str, Any] = {"StreamArn": self.arn, "ShardId": shard_id}
        if after is not None:
            kwargs.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", SequenceNumber=after)
        elif initial.startswith("AT_TIMESTAMP:"):
            # DynamoDB Streams has no AT_TIMESTAMP: LATEST is the nearest equivalent.
            kwargs.update(ShardIteratorType="LATEST")
        else:
            kwargs.update(ShardIteratorType=TRIM_HORIZON)
        return str(self.client.get_shard_iterator(**kwargs)["ShardIterator"])

    def iterator_at(self, shard_id: str, sequence: str) -> str:
        answer = self.client.get_shard_iterator(
            StreamArn=self.arn,
            ShardId=shard_id,
            ShardIteratorType="AT_SEQUENCE_NUMBER",
            SequenceNumber=sequence,
        )
        return str(answer["ShardIterator"])

    def retention_s(self) -> float:
        return STREAM_RETENTION_S

    def get_records(self, iterator: str, limit: int) -> Page:
        answer = self.client.get_records(ShardIterator=iterator, Limit=min(limit, 1000))
        return Page(answer["Records"], answer.get("NextShardIterator"), None)

    def sequence_of(self, record: Any) -> str:
        return str(record["dynamodb"]["SequenceNumber"])

    def to_rows(self, shard_id: str, record: Any) -> list[SourceRecord]:
        change = record["dynamodb"]
        created = change.get("ApproximateCreationDateTime")
        payload = {
            "event_id": record.get("eventID"),
            "event_name": record.get("eventName"),
            "keys": change.get("Keys"),
            "new_image": change.get("NewImage"),
            "old_image": change.get("OldImage"),
            "sequence_number": change["SequenceNumber"],
            "approximate_creation_time": created.isoformat() if created else None,
            "stream_view_type": change.get("StreamViewType"),
        }
        return [
            SourceRecord(
                json.dumps(payload, default=json_default, sort_keys=True).encode(),
                shard_id,
                str(change["SequenceNumber"]),
                item_key(change.get("Keys") or {}),
                created if isinstance(created, datetime) else None,
            )
        ]

    def arrived_ms(self, record: Any) -> int | None:
        # Whole seconds: a change made in the run's first second may count as there at start.
        created = record["dynamodb"].get("ApproximateCreationDateTime")
        return int(created.timestamp() * 1000) if isinstance(created, datetime) else None

    def oldest_sequence(self, shard_id: str) -> str | None:
        iterator = self.iterator(shard_id, None, TRIM_HORIZON)
        records = self.client.get_records(ShardIterator=iterator, Limit=1)["Records"]
        return self.sequence_of(records[0]) if records else None


# DynamoDB Streams keeps change records for 24 hours; it is not configurable.
STREAM_RETENTION_S = 24 * 3600.0


def json_default(value: Any) -> Any:
    """Binary attributes as base64 (as DynamoDB's JSON has them), numbers as text."""
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode()
    return str(value)


def item_key(keys: dict[str, dict[str, Any]]) -> str:
    """A single-attribute key as its plain value; a composite key as sorted JSON."""
    plain = {name: next(iter(typed.values())) for name, typed in keys.items()}
    if len(plain) == 1:
        return str(next(iter(plain.values())))
    return json.dumps(plain, sort_keys=True, default=str)


def dynamodb_stream_shards(options: dict[str, str]) -> DynamoDbStreamShards:
    return DynamoDbStreamShards(options)


class DynamoDbStreamsDataSource(ShardDataSource):
    api_factory = dynamodb_stream_shards

    @classmethod
    def name(cls) -> str:
        return FORMAT
