"""Logs one line per micro-batch (rows, rows/s, duration, source lag) and publishes the
same as metric points."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from pyspark.sql.streaming.listener import StreamingQueryListener

from streamlake.config.pipeline import Pipeline
from streamlake.metrics import MetricsPublisher, progress_points
from streamlake.notifications import Notifier

log = logging.getLogger(__name__)


def kafka_lag(source: Any) -> int | None:
    """Records behind the latest offsets, from Spark's Kafka source metrics or offsets."""
    metrics = dict(source.metrics or {})
    if "maxOffsetsBehindLatest" in metrics:
        try:
            return int(float(metrics["maxOffsetsBehindLatest"]))
        except ValueError:
            return None
    try:
        end = json.loads(source.endOffset or "null")
        latest = json.loads(source.latestOffset or "null")
    except ValueError:
        return None
    if not isinstance(end, dict) or not isinstance(latest, dict):
        return None
    lag = 0
    for topic, partitions in latest.items():
        if not isinstance(partitions, dict):
            return None
        for partition, offset in partitions.items():
            # A partition the batch did not reach yet (added since) is unread from its start.
            done = end.get(topic, {}).get(partition, 0)
            if not isinstance(offset, int) or not isinstance(done, int):
                return None  # not Kafka's offsets (the shard sources log sequence numbers)
            lag += max(0, offset - done)
    return lag


def batch_fields(progress: Any) -> dict[str, Any]:
    durations = dict(progress.durationMs or {})
    lags = [kafka_lag(source) for source in progress.sources]
    known = [lag for lag in lags if lag is not None]
    return {
        "job": progress.name,
        "batch_id": progress.batchId,
        "rows": progress.numInputRows,
        "rows_per_s": round(progress.processedRowsPerSecond or 0.0, 1),
        "duration_ms": durations.get("triggerExecution", 0),
        "source_lag": sum(known) if known else None,
    }


class BatchLogListener(StreamingQueryListener):
    """Called by Spark on the driver: at query start, after every batch, at termination.
    With a ``notifier`` and ``lag_threshold``, a job whose source lag goes past the
    threshold raises one source lag notification, and another only once it has caught up
    in between. Each batch's progress also goes to ``metrics``, under the table
    ``tables`` maps the job to."""

    def __init__(
        self,
        notifier: Notifier | None = None,
        lag_threshold: int | None = None,
        metrics: MetricsPublisher | None = None,
        tables: Mapping[str, str] | None = None,
    ):
        super().__init__()
        self.notifier = notifier or Notifier()
        self.lag_threshold = lag_threshold
        self.lagging: set[str] = set()
        self.metrics = metrics or MetricsPublisher()
        self.tables = dict(tables or {})

    @classmethod
    def for_pipeline(
        cls, pipeline: Pipeline, notifier: Notifier, metrics: MetricsPublisher
    ) -> BatchLogListener:
        """The listener of a run of ``pipeline``'s streaming jobs."""
        tables = {name: job.table for name, job in pipeline.jobs.items() if job.table}
        return cls(notifier, pipeline.notifications.source_lag_records, metrics, tables)

    def onQueryStarted(self, event: Any) -> None:  # noqa: N802 (Spark's hook names)
        log.info("job %s started (run %s)", event.name, event.runId)

    def onQueryProgress(self, event: Any) -> None:  # noqa: N802
        fields = batch_fields(event.progress)
        log.info(
            "job %s batch %s: %s rows, %s rows/s, %s ms, lag %s",
            fields["job"],
            fields["batch_id"],
            fields["rows"],
            fields["rows_per_s"],
            fields["duration_ms"],
            "n/a" if fields["source_lag"] is None else fields["source_lag"],
            extra={"fields": fields},
        )
        self.check_lag(fields["job"], fields["source_lag"])
        self.metrics.publish(progress_points(fields, self.tables.get(fields["job"], "")))

    def check_lag(self, job: str, lag: int | None) -> None:
        if self.lag_threshold is None or lag is None:
            return
        if lag <= self.lag_threshold:
            self.lagging.discard(job)
        elif job not in self.lagging:
            self.lagging.add(job)
            self.notifier.notify(
                "source_lag",
                job,
                f"{job}: source lag {lag} records",
                f"job {job} trails its source by {lag} records (threshold {self.lag_threshold})",
            )

    def onQueryIdle(self, event: Any) -> None:  # noqa: N802
        """No new data at this trigger; nothing to log."""

    def onQueryTerminated(self, event: Any) -> None:  # noqa: N802
        if event.exception:
            log.error("job run %s failed: %s", event.runId, event.exception.splitlines()[0])
        else:
            log.info("job run %s stopped", event.runId)
