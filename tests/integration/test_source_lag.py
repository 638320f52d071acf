"""Source lag in real runs, for every source kind: records produced and not yet read show as
lag in the batches' metric points, and the lag is back to zero once the job caught up.
Each run caps what a batch takes, so that the job trails its source for a few batches."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from connectors.aws import aws_endpoint
from connectors.cloudwatch import CloudWatchPublisher
from connectors.dynamodb_streams.admin import TableSpec, ensure_table
from streaming.listener import BatchLogListener, raw_backlog
from streamlake.config.settings import Settings
from streamlake.metrics import MetricPoint, MetricsPublisher, PublisherGroup
from streamlake.produce.events import EventMix, events_for
from tests.integration.test_ingest_kafka import new_topic, produce
from tests.integration.test_ingest_kinesis import new_stream, put
from tests.integration.test_metrics import metric_sum
from tests.support import (
    one_source_pipeline,
    orders_only_pipeline,
    poll,
    run_in_process,
    run_process,
    with_lake,
    write_raw,
)

pytestmark = [pytest.mark.integration, pytest.mark.spark]


class KeptPoints(MetricsPublisher):
    """Keeps the points the listener publishes, in order (the test reads them)."""

    def __init__(self) -> None:
        super().__init__()
        self.points: list[MetricPoint] = []
        self.lock = threading.Lock()

    def deliver(self, points: list[MetricPoint]) -> None:
        with self.lock:
            self.points.extend(points)

    def values(self, name: str, job: str) -> list[float]:
        with self.lock:
            return [p.value for p in self.points if p.name == name and p.job == job]


@contextmanager
def listening(
    spark: Any, settings: Settings, also: MetricsPublisher | None = None, table: str = ""
) -> Iterator[KeptPoints]:
    """The points of the batches run meanwhile, kept (and handed to ``also``), under the
    table dimension ``table`` for the ingest job."""
    kept = KeptPoints()
    publisher = PublisherGroup([kept, also]) if also is not None else kept
    tables = {"ingest-events": table} if table else {}
    listener = BatchLogListener(metrics=publisher, tables=tables, backlog=raw_backlog(settings))
    spark.streams.addListener(listener)
    try:
        yield kept
    finally:
        spark.streams.removeListener(listener)


def lag_until_caught_up(kept: KeptPoints, name: str, job: str) -> list[float]:
    """The job's lag values once the last batch's progress (lag 0) has reached the listener,
    which Spark calls on a thread of its own."""
    return poll(
        lambda: (values := kept.values(name, job)) and values[-1] == 0 and values,
        30,
        f"{job}'s {name} to come back to 0",
    )


def run_ingest(spark: Any, settings: Settings, source: dict[str, Any], tmp_path: Path) -> None:
    run_in_process(spark, with_lake(settings, tmp_path), one_source_pipeline(source))


def test_kafka_lag_is_the_records_behind_the_latest_offsets_and_reaches_cloudwatch(
    spark: Any, settings: Settings, tmp_path: Path
) -> None:
    bootstrap = settings.bootstrap_servers
    topic = new_topic(bootstrap, partitions=1)
    produce(bootstrap, topic, 150)
    source = {"kind": "kafka", "topic": topic, "max_offsets_per_trigger": 40}
    endpoint = aws_endpoint(settings)
    namespace = f"Streamlake/test-{topic}"
    cloudwatch = CloudWatchPublisher(endpoint.client("cloudwatch"), namespace)
    with listening(spark, settings, also=cloudwatch, table=topic) as kept:
        run_ingest(spark, settings, source, tmp_path)
        lags = lag_until_caught_up(kept, "SourceLag", "ingest-events")
    cloudwatch.close()
    assert lags == [110, 70, 30, 0]
    # The run's row counts and lag values, read back from CloudWatch.
    dimensions = {"job": "ingest-events", "table": topic}
    assert metric_sum(endpoint, namespace, "BatchRows", dimensions) == 150
    assert metric_sum(endpoint, namespace, "SourceLag", dimensions) == 110 + 70 + 30


def test_kinesis_lag_is_the_time_behind_the_newest_record(
    spark: Any, settings: Settings, tmp_path: Path
) -> None:
    kinesis = aws_endpoint(settings).client("kinesis")
    stream = new_stream(kinesis, 1)
    put(kinesis, stream, 0, 30)
    # Records that arrive later: the first batches' last records are older than the
    # newest by this much. (The data's arrival times, not a wait for the job.)
    time.sleep(1.5)
    put(kinesis, stream, 30, 30)
    source = {"kind": "kinesis", "stream": stream, "max_records_per_trigger": 20}
    with listening(spark, settings) as kept:
        run_ingest(spark, settings, source, tmp_path)
        lags = lag_until_caught_up(kept, "SourceLagAge", "ingest-events")
    assert lags[0] >= 1.4  # batch 1 ends at record 20, 1.5 s older than record 60
    assert len(lags) >= 3 and lags[-1] == 0


def test_dynamodb_streams_lag_is_the_age_of_the_last_record_read(
    spark: Any, settings: Settings, tmp_path: Path
) -> None:
    dynamodb = aws_endpoint(settings).client("dynamodb")
    table = f"t-{uuid.uuid4().hex[:10]}"
    ensure_table(dynamodb, TableSpec(table, "customer_id"))
    for n in range(25):
        dynamodb.put_item(TableName=table, Item={"customer_id": {"S": f"c{n}"}})
    started = time.time()
    source = {
        "kind": "dynamodb",
        "table": table,
        "hash_key": "customer_id",
        "max_records_per_trigger": 10,
    }
    with listening(spark, settings) as kept:
        run_ingest(spark, settings, source, tmp_path)
        lags = lag_until_caught_up(kept, "SourceLagAge", "ingest-events")
    # The changes were made before the job started: read later, they are that old at least.
    assert lags[0] > 0 and lags[0] <= time.time() - started + 2
    assert len(lags) >= 3 and lags[-1] == 0


def test_a_process_job_s_lag_is_the_raw_versions_and_rows_it_has_not_read(
    spark: Any, settings: Settings, loaded: Any, lake: Settings
) -> None:
    pipeline = orders_only_pipeline(loaded.pipeline, "lag")
    jobs = dict(pipeline.jobs)
    jobs["process-orders"] = jobs["process-orders"].model_copy(
        update={"mode": "separate", "max_files_per_trigger": 1}
    )
    pipeline = pipeline.model_copy(update={"jobs": jobs})
    payloads = [e.payload for e in events_for("orders", EventMix(50, seed=5))]
    # The first run starts from the table as it is (a snapshot of two commits); the second
    # goes on through three commits made since.
    write_raw(spark, lake, "orders", payloads[:20], commits=2)
    for unread in (20, 30):
        with listening(spark, lake) as kept:
            run_process(spark, lake, pipeline)
            lags = lag_until_caught_up(kept, "SourceLag", "process-orders")
            read = kept.values("BatchRows", "process-orders")
            versions = kept.values("PendingVersions", "process-orders")
        # After each batch, what is left is what was there less what the batches read; a
        # commit read part way (a file a batch) counts whole, ten rows at most.
        left = [unread - sum(read[: k + 1]) for k in range(len(read))]
        assert len(lags) >= 2 and lags[-1] == 0
        if unread == 20:
            assert lags == left  # the snapshot's files are counted one by one
        assert all(0 <= lag - exact <= 10 for lag, exact in zip(lags, left, strict=True))
        assert lags == sorted(lags, reverse=True)
        assert versions[0] >= 1 and versions[-1] == 0
        assert versions == sorted(versions, reverse=True)
        if unread == 20:
            write_raw(spark, lake, "orders", payloads[20:], first_position=20, commits=3)
