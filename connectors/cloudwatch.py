"""Amazon CloudWatch metrics: the pipeline's metric points, sent with PutMetricData."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from connectors.aws import AwsEndpoint
from streamlake.background import BackgroundSender
from streamlake.config.pipeline import Metrics
from streamlake.metrics import MetricPoint, MetricsPublisher

log = logging.getLogger(__name__)

# PutMetricData takes at most 1,000 values per call (and 1 MB; 1,000 of ours are ~200 KB).
MAX_DATUMS_PER_CALL = 1000


def calls(points: list[MetricPoint]) -> Iterator[list[MetricPoint]]:
    for start in range(0, len(points), MAX_DATUMS_PER_CALL):
        yield points[start : start + MAX_DATUMS_PER_CALL]


def datum(point: MetricPoint) -> dict[str, Any]:
    return {
        "MetricName": point.name,
        "Dimensions": [{"Name": k, "Value": v} for k, v in point.dimensions().items()],
        "Timestamp": point.at,
        "Value": point.value,
        "Unit": point.unit,
    }


class CloudWatchPublisher(MetricsPublisher):
    """Sends points to one CloudWatch namespace from a background thread, what has queued
    up in as few PutMetricData calls as the API's limits allow. At most once: a call that
    failed is logged and its points counted, not retried past botocore's own retries."""

    def __init__(self, cloudwatch: Any, namespace: str) -> None:
        super().__init__()
        self.cloudwatch = cloudwatch
        self.namespace = namespace
        self.calls = 0
        self._sender = BackgroundSender[list[MetricPoint]]("cloudwatch", self._put_all)

    def submit(self, points: list[MetricPoint]) -> None:
        self._sender.put(points)

    def _put_all(self, batches: list[list[MetricPoint]]) -> None:
        waiting = [point for points in batches for point in points]
        for call in calls(waiting):
            self.attempt(call)

    def deliver(self, points: list[MetricPoint]) -> None:
        self.calls += 1
        self.cloudwatch.put_metric_data(
            Namespace=self.namespace, MetricData=[datum(p) for p in points]
        )

    def close(self, timeout_s: float = 10.0) -> None:
        unsent = sum(len(points) for points in self._sender.close(timeout_s))
        if unsent:
            self.failed += unsent
            log.warning("%s metric points still queued after %.0fs: not sent", unsent, timeout_s)


def publisher_for(metrics: Metrics, endpoint: AwsEndpoint) -> MetricsPublisher:
    """The pipeline's publisher: CloudWatch when a namespace is configured, else none."""
    if metrics.namespace is None:
        return MetricsPublisher()
    # A short timeout and two attempts: an unreachable CloudWatch costs the sending thread
    # seconds, not minutes.
    client = endpoint.client("cloudwatch", connect_timeout=2, retries=2, read_timeout=10)
    return CloudWatchPublisher(client, metrics.namespace)
