"""Source lag in the batch log line, from Spark's progress: Kafka offsets (Spark's
``maxOffsetsBehindLatest`` metric when the offsets do not say), the shard sources' lag beside
their positions, and a process job's unread raw versions."""

from __future__ import annotations

import json
from types import SimpleNamespace

from streaming.listener import batch_fields
from streaming.source_lag import DELTA_END_INDEX, SourceLag, kafka_lag, source_lag
from streamlake.lake.delta_rs import Backlog


def source(
    end: object, latest: object, metrics: dict[str, str] | None = None, description: str = ""
) -> SimpleNamespace:
    return SimpleNamespace(
        endOffset=json.dumps(end),
        latestOffset=json.dumps(latest),
        metrics=metrics or {},
        description=description,
    )


def test_without_offsets_lag_is_the_metric_spark_reports() -> None:
    assert kafka_lag(source(None, None, {"maxOffsetsBehindLatest": "42"})).records == 42


def test_kafka_lag_is_latest_minus_end_per_partition() -> None:
    end = {"orders": {"0": 100, "1": 250}}
    latest = {"orders": {"0": 130, "1": 250, "2": 7}}
    lag = kafka_lag(source(end, latest))
    # A partition added since the batch was planned is unread from its start.
    assert lag == SourceLag(records=37, by_partition={"orders-0": 30, "orders-1": 0, "orders-2": 7})


def test_shard_sources_report_the_time_behind_their_slowest_shard() -> None:
    end = {
        "shards": {"shardId-0": {"after": "495", "initial": "TRIM_HORIZON"}},
        "lag_ms": {"shardId-0": 1500, "shardId-1": 0},
    }
    lag = source_lag(source(end, None))
    assert (lag.records, lag.seconds) == (None, 1.5)
    assert lag.by_partition == {"shardId-0": 1500, "shardId-1": 0}


def test_an_offset_without_lag_has_none() -> None:
    end = {"shards": {"shardId-0": {"after": "495", "initial": "TRIM_HORIZON"}}}
    assert source_lag(source(end, end)) == SourceLag()


def test_a_process_job_s_lag_is_the_raw_table_s_unread_versions_and_rows() -> None:
    asked: list[tuple[str, int, int | None]] = []

    def backlog(path: str, first_unread: int, snapshot_index: int | None) -> Backlog:
        asked.append((path, first_unread, snapshot_index))
        return Backlog(versions=3, rows=120)

    mid = {"reservoirVersion": 7, "index": 4, "reservoirId": "x", "sourceVersion": 3}
    done = {**mid, "index": DELTA_END_INDEX}
    described = "DeltaSource[file:/lake/raw/orders]"
    assert source_lag(source(mid, None, description=described), backlog) == SourceLag(
        records=120, versions=3
    )
    source_lag(source(done, None, description=described), backlog)
    start = {**mid, "isStartingVersion": True}
    source_lag(source(start, None, description=described), backlog)
    # A version read part way is still unread, one read to its end is not; a stream that
    # started from a snapshot has read its files up to the index.
    assert asked == [
        ("file:/lake/raw/orders", 7, None),
        ("file:/lake/raw/orders", 8, None),
        ("file:/lake/raw/orders", 7, 4),
    ]


def test_the_batch_line_sums_record_lag_over_sources() -> None:
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
        "lag_by_partition": {"t-0": 5, "u-0": 3},
    }
