"""Source lag in the batch log line, from Spark's progress of a Kafka source: its
``maxOffsetsBehindLatest`` metric when Spark reports it, else latest minus end offsets."""

from __future__ import annotations

import json
from types import SimpleNamespace

from streaming.listener import batch_fields, kafka_lag


def source(end: object, latest: object, metrics: dict[str, str] | None = None) -> SimpleNamespace:
    return SimpleNamespace(
        endOffset=json.dumps(end), latestOffset=json.dumps(latest), metrics=metrics or {}
    )


def test_lag_is_the_metric_spark_reports() -> None:
    assert kafka_lag(source({}, {}, {"maxOffsetsBehindLatest": "42"})) == 42


def test_lag_is_latest_minus_end_over_every_partition() -> None:
    end = {"orders": {"0": 100, "1": 250}}
    latest = {"orders": {"0": 130, "1": 250, "2": 7}}
    assert kafka_lag(source(end, latest)) == 30 + 0 + 7  # a partition added since: all unread


def test_shard_sources_have_no_kafka_lag() -> None:
    shards = {"shards": {"shardId-0": {"after": "495", "initial": "TRIM_HORIZON"}}}
    assert kafka_lag(source(shards, shards)) is None


def test_the_batch_line_sums_lag_over_sources() -> None:
    progress = SimpleNamespace(
        name="ingest-orders",
        batchId=7,
        numInputRows=500,
        processedRowsPerSecond=250.04,
        durationMs={"triggerExecution": 2000},
        sources=[
            source({"t": {"0": 10}}, {"t": {"0": 15}}),
            source({"u": {"0": 1}}, {"u": {"0": 4}}),
        ],
    )
    assert batch_fields(progress) == {
        "job": "ingest-orders",
        "batch_id": 7,
        "rows": 500,
        "rows_per_s": 250.0,
        "duration_ms": 2000,
        "source_lag": 8,
    }
