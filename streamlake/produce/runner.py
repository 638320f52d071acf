"""Sends synthetic events to a declared source: Kafka topic, Kinesis stream or DynamoDB table."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

from connectors.aws import AwsEndpoint
from connectors.dynamodb_streams.table_writer import DynamoDbTableWriter
from connectors.kafka.producer import KafkaRecordProducer
from connectors.kinesis.producer import KinesisRecordProducer
from streamlake.config.pipeline import DynamoDbSource, KafkaSource, KinesisSource, Pipeline
from streamlake.errors import UsageError
from streamlake.produce.events import GENERATED_SOURCES, EventMix, SyntheticEvent, events_for


@dataclass
class ProduceReport:
    source: str
    sent: int = 0
    acked: int = 0
    seconds: float = 0.0
    kinds: Counter[str] = field(default_factory=Counter)

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds else 0.0


class Sink(Protocol):
    sent: int
    acked: int

    def flush(self) -> None: ...
    def close(self) -> None: ...


Progress = Callable[[ProduceReport], None]


def produce(
    source_name: str,
    pipeline: Pipeline,
    bootstrap_servers: str,
    aws: AwsEndpoint,
    mix: EventMix,
    rate: float | None = None,
    on_progress: Progress = lambda _: None,
) -> ProduceReport:
    """Send ``mix.count`` events, at most ``rate`` per second, and wait for every ack."""
    if source_name not in pipeline.sources:
        raise UsageError(
            f"no source named {source_name!r}",
            f"declared sources: {', '.join(sorted(pipeline.sources))}",
        )
    if source_name not in GENERATED_SOURCES:
        raise UsageError(
            f"no synthetic events for source {source_name!r}",
            f"generators exist for {', '.join(GENERATED_SOURCES)}",
        )
    source = pipeline.sources[source_name]
    avro_tables = [n for n, t in pipeline.tables.items() if t.source == source_name and t.avro]
    if avro_tables:
        raise UsageError(
            f"source {source_name!r} feeds the Avro table {avro_tables[0]}, and the synthetic "
            "producer writes JSON only",
            "write Avro with connectors.schema_registry.AvroSerializer",
        )
    report = ProduceReport(source_name)
    send, sink = sender_for(source, bootstrap_servers, aws)
    started = time.monotonic()
    try:
        for index, event in enumerate(events_for(source_name, mix)):
            if rate:
                pause = started + index / rate - time.monotonic()
                if pause > 0:
                    time.sleep(pause)  # pacing to the requested rate, not synchronisation
            send(event)
            report.kinds[event.kind] += 1
            if index % 500 == 0:
                report.sent, report.acked = sink.sent, sink.acked
                report.seconds = time.monotonic() - started
                on_progress(report)
        sink.flush()
    finally:
        sink.close()
    report.sent, report.acked = sink.sent, sink.acked
    report.seconds = time.monotonic() - started
    on_progress(report)
    return report


def sender_for(
    source: Any, bootstrap_servers: str, aws: AwsEndpoint
) -> tuple[Callable[[SyntheticEvent], None], Sink]:
    if isinstance(source, KafkaSource):
        kafka = KafkaRecordProducer(bootstrap_servers, source.topic)
        return lambda e: kafka.send(e.key.encode(), e.payload), kafka
    if isinstance(source, KinesisSource):
        kinesis = KinesisRecordProducer(aws.client("kinesis"), source.stream)
        return lambda e: kinesis.send(e.key, e.payload), kinesis
    if isinstance(source, DynamoDbSource):
        table = DynamoDbTableWriter(aws.resource("dynamodb"), source.table)

        def write(event: SyntheticEvent) -> None:
            assert event.item is not None
            if event.op == "delete":
                table.delete({source.hash_key: event.item[source.hash_key]})
            else:
                table.put(dynamodb_item(event.item))

        return write, table
    raise UsageError(f"cannot produce to a {source.kind} source")


def dynamodb_item(item: dict[str, Any]) -> dict[str, Any]:
    """DynamoDB stores numbers as Decimal; floats are not accepted by boto3."""
    return {k: Decimal(str(v)) if isinstance(v, float) else v for k, v in item.items()}
