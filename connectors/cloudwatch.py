"""Amazon CloudWatch metrics: the pipeline's metric points, sent with PutMetricData."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterator
from typing import Any

from connectors.aws import AwsEndpoint
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
        self._queue: queue.Queue[list[MetricPoint] | None] = queue.Queue()
        # Points come from Spark's listener thread and batch threads: one sending thread.
        self._thread = threading.Thread(target=self._drain, name="cloudwatch", daemon=True)
        self._thread.start()

    def submit(self, points: list[MetricPoint]) -> None:
        self._queue.put(points)

    def _drain(self) -> None:
        while (points := self._queue.get()) is not None:
            waiting = list(points)
            ended = False
            while not self._queue.empty():
                more = self._queue.get()
                if more is None:
                    ended = True
                    break
                waiting += more
            for call in calls(waiting):
                self.attempt(call)
            if ended:
                return

    def deliver(self, points: list[MetricPoint]) -> None:
        self.calls += 1
        self.cloudwatch.put_metric_data(
            Namespace=self.namespace, MetricData=[datum(p) for p in points]
        )

    def close(self, timeout_s: float = 10.0) -> None:
        self._queue.put(None)
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            unsent = sum(len(p) for p in list(self._queue.queue) if p is not None)
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
