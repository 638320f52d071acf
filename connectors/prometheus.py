"""A Prometheus endpoint: the pipeline's metric points in the text exposition format, served
on 127.0.0.1 while a job runs (prometheus-client)."""

from __future__ import annotations

import logging
import re
import threading

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from streamlake.metrics import MetricPoint, MetricsPublisher

log = logging.getLogger(__name__)

PREFIX = "streamlake"
LABELS = ("job", "table", "kind")
# Points that count things add up across batches: counters (`_total`). The others are the
# latest value of something: gauges.
COUNTED = frozenset(
    {
        "BatchRows",
        "InputRows",
        "ProcessedRows",
        "QuarantinedRows",
        "DuplicateRows",
        "LateRows",
        "RowsChanged",
        "JobFailed",
    }
)
SUFFIX = {"Seconds": "_seconds", "Count/Second": "", "Count": "", "None": ""}


def metric_name(point: MetricPoint) -> str:
    """``BatchDuration`` (Seconds) -> ``streamlake_batch_duration_seconds``; a counter's
    ``_total`` is added by the client."""
    snake = re.sub(r"(?<!^)(?=[A-Z])", "_", point.name).lower()
    if point.name == "SourceLag":
        snake += "_records"
    return f"{PREFIX}_{snake}{SUFFIX[point.unit]}"


class PrometheusPublisher(MetricsPublisher):
    """Keeps the latest values in a registry of its own, served at
    ``http://127.0.0.1:<port>/metrics`` from ``start`` until ``close``."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        super().__init__()
        self.registry = CollectorRegistry()
        self.host = host
        self.port = port
        self._families: dict[str, Counter | Gauge] = {}
        self._lock = threading.Lock()
        self._server: object | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/metrics"

    def start(self) -> PrometheusPublisher:
        """Serve the endpoint (port 0: a free one). A port already taken is logged, and the
        job goes on without the endpoint."""
        try:
            server, _thread = start_http_server(self.port, addr=self.host, registry=self.registry)
        except OSError as exc:
            log.warning("Prometheus endpoint on %s:%s not started: %s", self.host, self.port, exc)
            return self
        self._server = server
        self.port = server.server_port
        log.info("Prometheus metrics at %s", self.url)
        return self

    def deliver(self, points: list[MetricPoint]) -> None:
        for point in points:
            child = self._family(point).labels(point.job, point.table, point.kind)
            if isinstance(child, Counter):
                child.inc(point.value)
            else:
                child.set(point.value)

    def _family(self, point: MetricPoint) -> Counter | Gauge:
        name = metric_name(point)
        with self._lock:  # points come from Spark's listener and batch threads
            if name not in self._families:
                kind = Counter if point.name in COUNTED else Gauge
                self._families[name] = kind(
                    name, f"{point.name} ({point.unit})", LABELS, registry=self.registry
                )
            return self._families[name]

    def close(self, timeout_s: float = 10.0) -> None:
        """Called when the job ends: the endpoint stops."""
        server = self._server
        if server is not None:
            server.shutdown()  # type: ignore[attr-defined]
            server.server_close()  # type: ignore[attr-defined]
            self._server = None
