"""Metric points: what each batch and job publishes, and that publishing never raises."""

from __future__ import annotations

import pytest

from streaming.batch_metrics import BatchCounts
from streaming.listener import BatchLogListener
from streamlake.metrics import MetricPoint, MetricsPublisher, count_points, job_points
from tests.support import kafka_progress


class Kept(MetricsPublisher):
    """Keeps what it is given (a destination double: the CloudWatch publisher is tested
    against the local AWS server in tests/integration/test_metrics.py)."""

    def __init__(self, fail: bool = False) -> None:
        super().__init__()
        self.points: list[MetricPoint] = []
        self.fail = fail

    def deliver(self, points: list[MetricPoint]) -> None:
        if self.fail:
            raise ConnectionError("unreachable")
        self.points += points


def values(points: list[MetricPoint]) -> dict[tuple[str, str], float]:
    return {(p.name, p.kind): p.value for p in points}


def test_a_process_batch_publishes_its_counts_with_quarantine_by_kind() -> None:
    counts = BatchCounts(100, 90, {"parse": 3, "rule": 2}, duplicates=4, late=1)
    points = count_points(counts.fields("process-orders", 7, 0.05), "orders")
    assert values(points) == {
        ("InputRows", ""): 100,
        ("ProcessedRows", ""): 90,
        ("QuarantinedRows", ""): 5,
        ("DuplicateRows", ""): 4,
        ("LateRows", ""): 1,
        ("QuarantinedRows", "parse"): 3,
        ("QuarantinedRows", "rule"): 2,
    }
    assert {p.unit for p in points} == {"Count"}
    by_kind = next(p for p in points if p.kind == "parse")
    assert by_kind.dimensions() == {"job": "process-orders", "table": "orders", "kind": "parse"}


def test_each_streaming_batch_publishes_rows_rate_duration_and_lag_under_its_table() -> None:
    kept = Kept()
    listener = BatchLogListener(metrics=kept, tables={"ingest-orders": "orders"})
    listener.onQueryProgress(kafka_progress(lag_end=1000, lag_latest=1250))
    assert values(kept.points) == {
        ("BatchRows", ""): 500,
        ("RowsPerSecond", ""): 250.0,
        ("BatchDuration", ""): 2.0,
        ("SourceLag", ""): 250,
    }
    assert {p.table for p in kept.points} == {"orders"}
    assert next(p.unit for p in kept.points if p.name == "BatchDuration") == "Seconds"


def test_a_batch_job_publishes_duration_outcome_and_rows_changed_per_table() -> None:
    points = job_points("curate", 12.5, False, [("curated.funnel", 4), ("curated.x", 0)])
    assert [(p.name, p.table, p.value) for p in points] == [
        ("JobDuration", "", 12.5),
        ("JobFailed", "", 0.0),
        ("RowsChanged", "curated.funnel", 4.0),
        ("RowsChanged", "curated.x", 0.0),
    ]


def test_a_failed_delivery_is_counted_and_logged_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    kept = Kept(fail=True)
    kept.publish(job_points("compact", 1.0, False, []))
    assert (kept.sent, kept.failed) == (0, 2)
    assert "2 metric points not sent" in caplog.text
