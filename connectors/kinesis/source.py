"""Kinesis Data Streams as a Spark stream: a PySpark Python data source on boto3.

Delivery: exactly-once into the raw table with the idempotent batch writer, because every
batch's range is fixed in Spark's offset log as per-shard sequence numbers before it runs
(see ``connectors.shard_stream.reader`` for how, and what it costs). KPL-aggregated records
become one row per user record, at position ``<sequence>:<subsequence>``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from connectors.aws import AwsEndpoint
from connectors.kinesis.kpl import deaggregate
from connectors.shard_stream.api import Page, ShardInfo, SourceRecord
from connectors.shard_stream.offsets import TRIM_HORIZON
from connectors.shard_stream.reader import ShardDataSource, shard_infos

if TYPE_CHECKING:
    pass

FORMAT = "streamlake-kinesis"


class KinesisShards:
    """The ShardApi of one Kinesis stream."""

    source = "kinesis"

    def __init__(self, options: dict[str, str]) -> None:
        self.stream = options["stream"]
        self.client = AwsEndpoint.from_options(options).client("kinesis", retries=3)

    def list_shards(self) -> list[ShardInfo]:
        shards: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"StreamName": self.stream}
        while True:
            answer = self.client.list_shards(**kwargs)
            shards.extend(answer["Shards"])
            token = answer.get("NextToken")
            if not token:
                return shard_infos(shards)
            kwargs = {"NextToken": token}

    def iterator(self, shard_id: str, after: str | None, initial: str) -> str:
        kwargs: dict[str, Any] = {"StreamName": self.stream, "ShardId": shard_id}
        if after is not None:
            kwargs.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", StartingSequenceNumber=after)
        elif initial.startswith("AT_TIMESTAMP:"):
            millis = int(initial.split(":", 1)[1])
            kwargs.update(
                ShardIteratorType="AT_TIMESTAMP",
                Timestamp=datetime.fromtimestamp(millis / 1000, UTC),
            )
        else:
            kwargs.update(ShardIteratorType=TRIM_HORIZON)
        return str(self.client.get_shard_iterator(**kwargs)["ShardIterator"])

    def iterator_at(self, shard_id: str, sequence: str) -> str:
        answer = self.client.get_shard_iterator(
            StreamName=self.stream,
            ShardId=shard_id,
            ShardIteratorType="AT_SEQUENCE_NUMBER",
            StartingSequenceNumber=sequence,
        )
        return str(answer["ShardIterator"])

    def retention_s(self) -> float:
        summary = self.client.describe_stream_summary(StreamName=self.stream)
        return float(summary["StreamDescriptionSummary"]["RetentionPeriodHours"]) * 3600

    def get_records(self, iterator: str, limit: int) -> Page:
        answer = self.client.get_records(ShardIterator=iterator, Limit=limit)
        return Page(
            answer["Records"], answer.get("NextShardIterator"), answer.get("MillisBehindLatest")
        )

    def sequence_of(self, record: Any) -> str:
        return str(record["SequenceNumber"])

    def to_rows(self, shard_id: str, record: Any) -> list[SourceRecord]:
        sequence = record["SequenceNumber"]
        arrived = record.get("ApproximateArrivalTimestamp")
        user_records = deaggregate(record["Data"])
        if user_records is None:
            return [
                SourceRecord(record["Data"], shard_id, sequence, record["PartitionKey"], arrived)
            ]
        return [
            SourceRecord(u.data, shard_id, f"{sequence}:{index}", u.partition_key, arrived)
            for index, u in enumerate(user_records)
        ]

    def arrived_ms(self, record: Any) -> int | None:
        arrived = record.get("ApproximateArrivalTimestamp")
        return int(arrived.timestamp() * 1000) if isinstance(arrived, datetime) else None

    def oldest_sequence(self, shard_id: str) -> str | None:
        iterator = self.iterator(shard_id, None, TRIM_HORIZON)
        records = self.client.get_records(ShardIterator=iterator, Limit=1)["Records"]
        return str(records[0]["SequenceNumber"]) if records else None


def kinesis_shards(options: dict[str, str]) -> KinesisShards:
    return KinesisShards(options)


class KinesisDataSource(ShardDataSource):
    api_factory = kinesis_shards

    @classmethod
    def name(cls) -> str:
        return FORMAT
