"""SNS notifications through the local AWS server: SQS queues subscribed to the topic (one
with a filter policy on the message attributes) receive exactly the notifications of a
succeeding job, a failing job and quality breaches; with SNS unreachable or refusing, the
job succeeds all the same and says so."""

from __future__ import annotations

import socket
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from deltalake import write_deltalake

from batch.jobs import BatchRun, run_batch_job
from connectors.aws import AwsEndpoint, aws_endpoint
from connectors.sns import SnsNotifier, ensure_topic, received_notifications, subscribe_queue
from streamlake.config.pipeline import Catalog, Notifications, Pipeline, QualityRule
from streamlake.config.settings import Settings
from streamlake.errors import CatalogError
from streamlake.produce.events import EventMix, events_for
from tests.conftest import CONFIGS
from tests.support import (
    cli_env,
    orders_only_pipeline,
    poll,
    with_lake,
    write_config_dir,
    write_raw,
)

pytestmark = [pytest.mark.integration]


@pytest.fixture
def endpoint(settings: Settings) -> AwsEndpoint:
    return aws_endpoint(settings)


@pytest.fixture
def topic(endpoint: AwsEndpoint) -> str:
    """A topic of this test's own."""
    name = f"alerts-{uuid.uuid4().hex[:8]}"
    ensure_topic(endpoint.client("sns"), name)
    return name


def small_pipeline(loaded: Any, topic: str, **catalog: Any) -> Pipeline:
    """The demo pipeline cut to `orders`, under a name of its own, with one blocking rule
    a single row fails."""
    rule = QualityRule(name="enough_orders", kind="row_count", min=10)
    return orders_only_pipeline(
        loaded.pipeline,
        "ntf",
        quality={"processed.orders": [rule]},
        catalog=Catalog(**catalog),
        notifications=Notifications(topic=topic),
    )


def events_of(received: list[dict[str, Any]]) -> Counter[tuple[str, str]]:
    return Counter((n["attributes"]["event"], n["attributes"]["job"]) for n in received)


def drain(endpoint: AwsEndpoint, queue: str, expected: int) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []

    def enough() -> bool | None:
        found.extend(received_notifications(endpoint, queue))
        return len(found) >= expected or None

    poll(enough, 30, f"{expected} notifications")
    return found


@pytest.mark.spark
def test_a_succeeding_a_failing_and_a_breaching_job_notify_what_subscribers_filter_for(
    spark: Any, settings: Settings, loaded: Any, tmp_path: Path, endpoint: AwsEndpoint, topic: str
) -> None:
    everything = subscribe_queue(endpoint, topic, f"all-{uuid.uuid4().hex[:8]}")
    failures = subscribe_queue(
        endpoint,
        topic,
        f"failures-{uuid.uuid4().hex[:8]}",
        {"event": ["job_failed", "quality_breach"]},
    )
    lake = with_lake(settings, tmp_path)
    notifier = SnsNotifier(endpoint.client("sns"), topic)

    def run(job: str, pipeline: Pipeline) -> Any:
        return run_batch_job(BatchRun(job, pipeline, lake, lambda: spark, notifier=notifier))

    run("catalog", small_pipeline(loaded, topic))  # nothing written yet: succeeds
    orders = lake.lake.table_path("processed", "orders")
    write_deltalake(orders, pa.table({"order_id": ["o-1"], "amount": [1.5]}))
    with pytest.raises(CatalogError):  # its databases do not exist, and it may not create them
        run("catalog", small_pipeline(loaded, topic, create_databases=False))
    assert run("quality", small_pipeline(loaded, topic)).failed
    notifier.close()

    received = drain(endpoint, everything, 7)
    assert events_of(received) == Counter(
        {
            ("job_started", "catalog"): 2,
            ("job_succeeded", "catalog"): 1,
            ("job_failed", "catalog"): 1,
            ("job_started", "quality"): 1,
            ("quality_breach", "quality"): 1,
            ("job_failed", "quality"): 1,
        }
    )
    severities = {n["attributes"]["event"]: n["attributes"]["severity"] for n in received}
    assert severities == {
        "job_started": "info",
        "job_succeeded": "info",
        "job_failed": "error",
        "quality_breach": "warning",
    }
    failed = [n["message"] for n in received if n["attributes"]["event"] == "job_failed"]
    assert any("does not exist" in m["detail"] for m in failed)  # the error's first line
    assert any("enough_orders" in m["detail"] for m in failed)

    filtered = drain(endpoint, failures, 3)
    assert events_of(filtered) == Counter(
        {
            ("job_failed", "catalog"): 1,
            ("job_failed", "quality"): 1,
            ("quality_breach", "quality"): 1,
        }
    )
    # and nothing else came (the queue long-polled for a while)
    assert received_notifications(endpoint, failures, wait_s=3) == []


@pytest.mark.spark
def test_a_batch_quarantining_too_much_is_a_quality_breach(
    spark: Any, settings: Settings, loaded: Any, tmp_path: Path, endpoint: AwsEndpoint, topic: str
) -> None:
    from streaming.process import ProcessBatchWriter, ProcessTargets
    from streaming.transforms.spec import TableSpec

    queue = subscribe_queue(endpoint, topic, f"breach-{uuid.uuid4().hex[:8]}")
    local = with_lake(settings, tmp_path)
    events = list(events_for("orders", EventMix(50, bad_ratio=0.2, seed=5)))
    write_raw(spark, local, "orders", [e.payload for e in events])
    spec = TableSpec.of(spark, "orders", loaded.pipeline.tables["orders"])
    notifier = SnsNotifier(endpoint.client("sns"), topic)
    targets = ProcessTargets.of(
        local, "process-orders", "orders", None, Notifications(topic=topic), notifier
    )
    raw = spark.read.format("delta").load(local.lake.table_path("raw", "orders"))
    ProcessBatchWriter(spec, targets)(raw, 0)
    targets.metrics.flush()
    notifier.close()

    (breach,) = drain(endpoint, queue, 1)
    assert breach["attributes"] == {
        "event": "quality_breach",
        "job": "process-orders",
        "severity": "warning",
    }
    assert "quarantined" in breach["message"]["detail"]


def no_spark() -> Any:
    raise AssertionError("this run should not have needed Spark")


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_with_sns_unreachable_the_job_succeeds_and_counts_what_it_could_not_send(
    settings: Settings, loaded: Any, tmp_path: Path, topic: str, caplog: pytest.LogCaptureFixture
) -> None:
    nowhere = AwsEndpoint(settings.aws.region, f"http://127.0.0.1:{closed_port()}", "t", "t")
    notifier = SnsNotifier(nowhere.client("sns", connect_timeout=1, retries=1), topic)
    lake = with_lake(settings, tmp_path)
    run = BatchRun("catalog", small_pipeline(loaded, topic), lake, no_spark, notifier=notifier)

    report = run_batch_job(run)
    notifier.close()

    assert report.failed is None
    assert (notifier.sent, notifier.failed) == (0, 2)
    assert any("not sent" in r.getMessage() for r in caplog.records)


def test_the_command_line_job_succeeds_when_sns_refuses_and_says_so(
    settings: Settings, loaded: Any, tmp_path: Path, stack_env: dict[str, str]
) -> None:
    missing = f"arn:aws:sns:{settings.aws.region}:123456789012:no-such-topic"
    pipeline = small_pipeline(loaded, missing)
    config = write_config_dir(tmp_path / "configs", pipeline, CONFIGS / "local.yaml")
    env = cli_env(stack_env, tmp_path / "lake")
    command = [sys.executable, "-m", "streamlake", "--config", str(config)]
    result = subprocess.run(
        [*command, "batch", "run", "catalog"], capture_output=True, text=True, env=env, timeout=120
    )

    assert result.returncode == 0, result.stderr
    assert "2 of 2 notifications to" in result.stderr
    assert "could not be sent (the job itself is unaffected)" in result.stderr
