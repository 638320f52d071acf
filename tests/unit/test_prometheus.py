"""The Prometheus endpoint: points published while a job runs are served on 127.0.0.1 in
the text exposition format, with the usual names, and read back by Prometheus's parser."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from connectors.prometheus import PrometheusPublisher, metric_name
from streaming.batch_metrics import BatchCounts
from streamlake.metrics import MetricPoint, PublisherGroup, count_points, progress_points


@pytest.fixture
def endpoint() -> Iterator[PrometheusPublisher]:
    publisher = PrometheusPublisher(0).start()
    yield publisher
    publisher.close()


def scrape(publisher: PrometheusPublisher) -> dict[tuple[str, tuple[str, ...]], float]:
    """Every sample served, by name and (job, table, kind)."""
    with urllib.request.urlopen(publisher.url, timeout=10) as answer:
        text = answer.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.endswith("_created"):
                continue
            key = tuple(sample.labels.get(k, "") for k in ("job", "table", "kind"))
            samples[(sample.name, key)] = sample.value
    return samples


def test_counts_add_up_as_counters_and_progress_is_the_latest_gauge(
    endpoint: PrometheusPublisher,
) -> None:
    counts = BatchCounts(100, 90, {"parse": 3, "rule": 2}, duplicates=4, late=1)
    for batch in (0, 1):
        endpoint.publish(count_points(counts.fields("process-orders", batch, 0.05), "orders"))
    for lag, rate in ((300, 120.0), (40, 250.0)):
        fields = {
            "job": "ingest-orders",
            "rows": 500,
            "rows_per_s": rate,
            "duration_ms": 1500,
            "source_lag": lag,
        }
        endpoint.publish(progress_points(fields, "orders"))

    served = scrape(endpoint)
    orders = ("process-orders", "orders", "")
    assert served[("streamlake_input_rows_total", orders)] == 200
    assert served[("streamlake_processed_rows_total", orders)] == 180
    assert served[("streamlake_quarantined_rows_total", orders)] == 10
    assert served[("streamlake_quarantined_rows_total", ("process-orders", "orders", "parse"))] == 6
    ingest = ("ingest-orders", "orders", "")
    assert served[("streamlake_batch_rows_total", ingest)] == 1000
    assert served[("streamlake_source_lag_records", ingest)] == 40  # the latest, not a sum
    assert served[("streamlake_rows_per_second", ingest)] == 250.0
    assert served[("streamlake_batch_duration_seconds", ingest)] == 1.5


def test_names_follow_prometheus_conventions() -> None:
    def name(metric: str, unit: str) -> str:
        return metric_name(MetricPoint(metric, 1.0, unit, "j"))  # type: ignore[arg-type]

    assert name("BatchDuration", "Seconds") == "streamlake_batch_duration_seconds"
    assert name("InputRows", "Count") == "streamlake_input_rows"  # `_total` added on exposition
    assert name("SourceLag", "Count") == "streamlake_source_lag_records"


def test_a_taken_port_leaves_the_job_running_without_the_endpoint(
    endpoint: PrometheusPublisher, caplog: pytest.LogCaptureFixture
) -> None:
    second = PrometheusPublisher(endpoint.port).start()
    second.publish([MetricPoint("InputRows", 1.0, "Count", "j")])  # still takes points
    second.close()
    assert "Prometheus endpoint on 127.0.0.1" in caplog.text and "not started" in caplog.text


def test_a_group_hands_points_to_each_and_sums_their_counts(
    endpoint: PrometheusPublisher,
) -> None:
    other = PrometheusPublisher(0).start()
    group = PublisherGroup([endpoint, other])
    group.publish([MetricPoint("InputRows", 2.0, "Count", "j", "t")])
    assert scrape(other)[("streamlake_input_rows_total", ("j", "t", ""))] == 2.0
    assert scrape(endpoint)[("streamlake_input_rows_total", ("j", "t", ""))] == 2.0
    group.close()
    assert (group.sent, group.failed) == (2, 0)
