"""The pipeline's metrics as points (name, value, unit, job, table), and where they go.

Jobs hand points to a ``MetricsPublisher``: each streaming batch's progress (rows, rows/s,
duration, source lag) from the batch listener, each process batch's counts (processed,
quarantined by kind, duplicates, late) from its metrics recorder, and each batch job's
outcome. The publisher built at the edge decides where they go (``connectors.cloudwatch``
sends them to CloudWatch). Publishing never blocks or fails a job: points are sent off the
job's thread, and what cannot be sent is logged and counted.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

log = logging.getLogger(__name__)

Unit = Literal["Count", "Count/Second", "Seconds", "None"]


@dataclass(frozen=True)
class MetricPoint:
    """One value of one metric for one job (and table, when it concerns one); ``kind``
    tells quarantine counts apart by what failed."""

    name: str
    value: float
    unit: Unit
    job: str
    table: str = ""
    kind: str = ""
    at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def dimensions(self) -> dict[str, str]:
        found = {"job": self.job}
        if self.table:
            found["table"] = self.table
        if self.kind:
            found["kind"] = self.kind
        return found


# Lag points: name, the batch field it comes from, unit.
LAG_POINTS: tuple[tuple[str, str, Unit], ...] = (
    ("SourceLag", "source_lag", "Count"),
    ("SourceLagAge", "source_lag_s", "Seconds"),
    ("PendingVersions", "pending_versions", "Count"),
)


def progress_points(fields: Mapping[str, Any], table: str) -> list[MetricPoint]:
    """A streaming batch's progress, from the batch listener's fields: source lag in records
    (Kafka; a process job's unread raw rows), in time (the shard sources) and in unread raw
    versions, where the source has it."""
    job = str(fields["job"])
    points = [
        MetricPoint("BatchRows", float(fields["rows"]), "Count", job, table),
        MetricPoint("RowsPerSecond", float(fields["rows_per_s"]), "Count/Second", job, table),
        MetricPoint("BatchDuration", fields["duration_ms"] / 1000, "Seconds", job, table),
    ]
    for name, key, unit in LAG_POINTS:
        if fields.get(key) is not None:
            points.append(MetricPoint(name, float(fields[key]), unit, job, table))
    return points


def count_points(fields: Mapping[str, Any], table: str) -> list[MetricPoint]:
    """A process batch's counts, from its metrics row's fields."""
    job = str(fields["job"])
    points = [
        MetricPoint(name, float(fields[key]), "Count", job, table)
        for name, key in (
            ("InputRows", "rows_in"),
            ("ProcessedRows", "processed"),
            ("QuarantinedRows", "quarantined"),
            ("DuplicateRows", "duplicates"),
            ("LateRows", "late"),
        )
    ]
    by_kind: Mapping[str, int] = fields.get("quarantined_by_kind") or {}
    points += [
        MetricPoint("QuarantinedRows", float(n), "Count", job, table, kind)
        for kind, n in sorted(by_kind.items())
    ]
    return points


def job_points(
    job: str, seconds: float, failed: bool, rows: Iterable[tuple[str, int]]
) -> list[MetricPoint]:
    """A batch job's run: its duration, whether it failed, and rows changed per table."""
    points = [
        MetricPoint("JobDuration", seconds, "Seconds", job),
        MetricPoint("JobFailed", 1.0 if failed else 0.0, "Count", job),
    ]
    points += [MetricPoint("RowsChanged", float(n), "Count", job, table) for table, n in rows]
    return points


class MetricsPublisher:
    """Takes points; this one keeps them nowhere (no destination configured). Subclasses
    implement ``deliver``."""

    def __init__(self) -> None:
        self.sent = 0
        self.failed = 0

    def publish(self, points: list[MetricPoint]) -> None:
        """Called by jobs with new points; returns at once."""
        if points:
            self.submit(points)

    def submit(self, points: list[MetricPoint]) -> None:
        """Hand ``points`` to ``deliver``; a subclass may do so on another thread."""
        self.attempt(points)

    def attempt(self, points: list[MetricPoint]) -> None:
        try:
            self.deliver(points)
        except Exception as exc:
            self.failed += len(points)
            log.warning(
                "%s metric points not sent (%s sent, %s failed so far): %s",
                len(points),
                self.sent,
                self.failed,
                exc,
            )
        else:
            self.sent += len(points)

    def deliver(self, points: list[MetricPoint]) -> None:
        """Called with points to send; raising counts them all as failed."""

    def close(self, timeout_s: float = 10.0) -> None:
        """Called when the job ends: sends what is still queued, waiting at most
        ``timeout_s``."""


class PublisherGroup(MetricsPublisher):
    """Hands every point to each of ``publishers`` (CloudWatch, Prometheus); its counts are
    theirs, summed when it closes."""

    def __init__(self, publishers: Iterable[MetricsPublisher]) -> None:
        super().__init__()
        self.publishers = list(publishers)

    def publish(self, points: list[MetricPoint]) -> None:
        for publisher in self.publishers:
            publisher.publish(points)

    def close(self, timeout_s: float = 10.0) -> None:
        for publisher in self.publishers:
            publisher.close(timeout_s)
        self.sent = sum(p.sent for p in self.publishers)
        self.failed = sum(p.failed for p in self.publishers)
