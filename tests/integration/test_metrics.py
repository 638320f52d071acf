"""Metrics to CloudWatch: the points jobs publish arrive in the local AWS server's
CloudWatch, readable with GetMetricData; with CloudWatch unreachable the job succeeds."""

from __future__ import annotations

import socket
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from batch.jobs import BatchRun, run_batch_job
from connectors.aws import AwsEndpoint, aws_endpoint
from connectors.cloudwatch import MAX_DATUMS_PER_CALL, CloudWatchPublisher
from streamlake.config.pipeline import Catalog, Metrics, Pipeline
from streamlake.config.settings import Settings
from streamlake.metrics import MetricPoint
from streamlake.produce.events import EventMix, events_for
from tests.conftest import CONFIGS
from tests.support import cli_env, kafka_progress, orders_only_pipeline, write_config_dir, write_raw


def metric_sum(
    endpoint: AwsEndpoint, namespace: str, name: str, dimensions: dict[str, str]
) -> float | None:
    """The metric's sum over the last hour, None when CloudWatch has no value."""
    now = datetime.now(UTC)
    answer = endpoint.client("cloudwatch").get_metric_data(
        MetricDataQueries=[
            {
                "Id": "m",
                "MetricStat": {
                    "Metric": {
                        "Namespace": namespace,
                        "MetricName": name,
                        "Dimensions": [{"Name": k, "Value": v} for k, v in dimensions.items()],
                    },
                    "Period": 3600,
                    "Stat": "Sum",
                },
            }
        ],
        StartTime=now - timedelta(hours=1),
        EndTime=now + timedelta(minutes=5),
    )
    found = answer["MetricDataResults"][0]["Values"]
    return sum(found) if found else None


@pytest.fixture
def namespace() -> str:
    """A namespace of the test's own. The local server answers GetMetricData across
    namespaces, so the tests also name jobs of their own where they sum values."""
    return f"Streamlake/test-{uuid.uuid4().hex[:8]}"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_points_arrive_batched_within_the_api_limit(settings: Settings, namespace: str) -> None:
    endpoint = aws_endpoint(settings)
    publisher = CloudWatchPublisher(endpoint.client("cloudwatch"), namespace)
    job = f"process-{namespace[-8:]}"
    points = [MetricPoint("InputRows", 1.0, "Count", job, "orders")] * 2500
    publisher.publish(points[:1200])
    publisher.publish(points[1200:])
    publisher.close()
    assert (publisher.sent, publisher.failed) == (2500, 0)
    assert publisher.calls >= 3  # none over MAX_DATUMS_PER_CALL
    assert MAX_DATUMS_PER_CALL == 1000
    dimensions = {"job": job, "table": "orders"}
    assert metric_sum(endpoint, namespace, "InputRows", dimensions) == 2500


@pytest.mark.spark
def test_a_process_batch_counts_reach_cloudwatch(
    spark: Any, settings: Settings, loaded: Any, lake: Settings, namespace: str
) -> None:
    from streaming.process import ProcessBatchWriter, ProcessTargets
    from streaming.transforms.spec import TableSpec

    endpoint = aws_endpoint(settings)
    events = list(events_for("orders", EventMix(60, bad_ratio=0.2, seed=11)))
    write_raw(spark, lake, "orders", [e.payload for e in events])
    spec = TableSpec.of(spark, "orders", loaded.pipeline.tables["orders"])
    publisher = CloudWatchPublisher(endpoint.client("cloudwatch"), namespace)
    job = f"process-orders-{namespace[-8:]}"
    targets = ProcessTargets.of(lake, job, "orders", None, metrics=publisher)
    raw = spark.read.format("delta").load(lake.lake.table_path("raw", "orders"))
    ProcessBatchWriter(spec, targets)(raw, 0)
    targets.metrics.flush()
    publisher.close()

    # The same counts as the batch's row in _meta/batch_metrics.
    row = spark.read.format("delta").load(lake.lake.meta_path("batch_metrics")).first()
    dimensions = {"job": job, "table": "orders"}
    for name, column in (
        ("InputRows", "rows_in"),
        ("ProcessedRows", "processed"),
        ("QuarantinedRows", "quarantined"),
        ("DuplicateRows", "duplicates"),
    ):
        assert metric_sum(endpoint, namespace, name, dimensions) == row[column], name
    assert row["quarantined"] > 0
    for kind, n in row["quarantined_by_kind"].items():
        by_kind = dimensions | {"kind": kind}
        assert metric_sum(endpoint, namespace, "QuarantinedRows", by_kind) == n


def test_the_source_lag_a_batch_reports_reaches_cloudwatch(
    settings: Settings, namespace: str
) -> None:
    from streaming.listener import BatchLogListener

    endpoint = aws_endpoint(settings)
    publisher = CloudWatchPublisher(endpoint.client("cloudwatch"), namespace)
    job = f"ingest-{namespace[-8:]}"
    listener = BatchLogListener(metrics=publisher, tables={job: "orders"})
    listener.onQueryProgress(kafka_progress(lag_end=4000, lag_latest=4321, job=job))
    publisher.close()
    dimensions = {"job": job, "table": "orders"}
    assert metric_sum(endpoint, namespace, "SourceLag", dimensions) == 321
    assert metric_sum(endpoint, namespace, "BatchRows", dimensions) == 500


def test_with_cloudwatch_unreachable_a_batch_job_succeeds_and_counts_what_was_not_sent(
    settings: Settings, loaded: Any, lake: Settings, namespace: str
) -> None:
    nowhere = AwsEndpoint(settings.aws.region, f"http://127.0.0.1:{closed_port()}", "t", "t")
    publisher = CloudWatchPublisher(
        nowhere.client("cloudwatch", connect_timeout=1, retries=1), namespace
    )
    pipeline: Pipeline = orders_only_pipeline(loaded.pipeline, "met", catalog=Catalog())

    report = run_batch_job(BatchRun("catalog", pipeline, lake, no_spark, metrics=publisher))
    publisher.close()

    assert report.failed is None
    assert publisher.sent == 0 and publisher.failed >= 2  # the job's duration and outcome


def no_spark() -> Any:
    raise AssertionError("this run should not have needed Spark")


def test_the_cli_sends_a_batch_job_s_metrics_to_the_pipeline_s_namespace(
    settings: Settings, loaded: Any, namespace: str, tmp_path: Path, stack_env: dict[str, str]
) -> None:
    cut = orders_only_pipeline(
        loaded.pipeline, "met", catalog=Catalog(), metrics=Metrics(namespace=namespace)
    )
    job = f"catalog-{namespace[-8:]}"  # a job of its own: see `namespace`
    pipeline = cut.model_copy(update={"jobs": {**cut.jobs, job: cut.jobs["catalog"]}})
    config = write_config_dir(tmp_path / "configs", pipeline, CONFIGS / "local.yaml")
    command = [sys.executable, "-m", "streamlake", "--config", str(config)]
    result = subprocess.run(
        [*command, "batch", "run", job],
        env=cli_env(stack_env, tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    endpoint = aws_endpoint(settings)
    assert metric_sum(endpoint, namespace, "JobFailed", {"job": job}) == 0
    assert (metric_sum(endpoint, namespace, "JobDuration", {"job": job}) or 0) > 0
