"""Sends synthetic events to a declared source: Kafka topic, Kinesis stream or DynamoDB table."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from connectors.aws import AwsEndpoint
from connectors.registry import source_kind
from streamlake.config.pipeline import Pipeline
from streamlake.config.settings import Settings
from streamlake.errors import UsageError
from streamlake.produce.events import GENERATED_SOURCES, EventMix, events_for


@dataclass
class ProduceReport:
    source: str
    sent: int = 0
    acked: int = 0
    seconds: float = 0.0
    kinds: Counter[str] = field(default_factory=Counter)
    # For a database table (jdbc), where a change overwrites its row: the rows written, so
    # the row versions a pull finds (one per row, however often it changed meanwhile).
    rows: int | None = None

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds else 0.0


Progress = Callable[[ProduceReport], None]


def produce(
    source_name: str,
    pipeline: Pipeline,
    settings: Settings,
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
    send, sink = source_kind(source).producer(source, settings, aws)
    started = time.monotonic()
    keys: set[str] | None = set() if source.kind == "jdbc" else None
    try:
        for index, event in enumerate(events_for(source_name, mix)):
            if rate:
                pause = started + index / rate - time.monotonic()
                if pause > 0:
                    time.sleep(pause)  # pacing to the requested rate, not synchronisation
            send(event)
            report.kinds[event.kind] += 1
            if keys is not None:
                keys.add(event.key)
            if index % 500 == 0:
                report.sent, report.acked = sink.sent, sink.acked
                report.seconds = time.monotonic() - started
                on_progress(report)
        sink.flush()
    finally:
        sink.close()
    report.sent, report.acked = sink.sent, sink.acked
    report.rows = None if keys is None else len(keys)
    report.seconds = time.monotonic() - started
    on_progress(report)
    return report
