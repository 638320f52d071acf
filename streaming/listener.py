"""Logs one line per micro-batch (rows, rows/s, duration, source lag) and publishes the
same as metric points."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from pyspark.sql.streaming.listener import StreamingQueryListener

from streaming.source_lag import BacklogReader, SourceLag, query_lag
from streamlake.config.pipeline import Notifications, Pipeline
from streamlake.config.settings import Settings
from streamlake.lake.delta_rs import Backlog, backlog_from
from streamlake.metrics import MetricsPublisher, progress_points
from streamlake.notifications import Notifier

log = logging.getLogger(__name__)


def batch_fields(
    progress: Any, backlog: BacklogReader | None = None, lag: bool = True
) -> dict[str, Any]:
    """The batch log line's fields; without ``lag``, its lag unknown."""
    durations = dict(progress.durationMs or {})
    lag_found = query_lag(list(progress.sources), backlog) if lag else SourceLag()
    fields: dict[str, Any] = {
        "job": progress.name,
        "batch_id": progress.batchId,
        "rows": progress.numInputRows,
        "rows_per_s": round(progress.processedRowsPerSecond or 0.0, 1),
        "duration_ms": durations.get("triggerExecution", 0),
        "source_lag": lag_found.records,
    }
    if lag_found.seconds is not None:
        fields["source_lag_s"] = round(lag_found.seconds, 3)
    if lag_found.versions is not None:
        fields["pending_versions"] = lag_found.versions
    if lag_found.by_partition:
        fields["lag_by_partition"] = lag_found.by_partition
    return fields


def lag_text(fields: dict[str, Any]) -> str:
    parts = []
    if fields["source_lag"] is not None:
        parts.append(f"{fields['source_lag']} records")
    if fields.get("source_lag_s") is not None:
        parts.append(f"{fields['source_lag_s']} s")
    if fields.get("pending_versions") is not None:
        parts.append(f"{fields['pending_versions']} versions")
    return ", ".join(parts) or "n/a"


def raw_backlog(settings: Settings) -> BacklogReader:
    """The backlog of a raw table a process job reads, as delta-rs finds it."""

    def read(path: str, first_unread: int, snapshot_index: int | None) -> Backlog | None:
        return backlog_from(path.removeprefix("file:"), settings, first_unread, snapshot_index)

    return read


class BatchLogListener(StreamingQueryListener):
    """Called by Spark on the driver: at query start, after every batch, at termination.
    A job whose source lag goes past the ``thresholds`` raises one source lag notification,
    and another only once it has caught up in between. Each batch's progress also goes to
    ``metrics``, under the table ``tables`` maps the job to; ``backlog`` reads what a
    process job has not read of its raw table (None: its lag is not known)."""

    def __init__(
        self,
        notifier: Notifier | None = None,
        thresholds: Notifications | None = None,
        metrics: MetricsPublisher | None = None,
        tables: Mapping[str, str] | None = None,
        backlog: BacklogReader | None = None,
    ):
        super().__init__()
        self.notifier = notifier or Notifier()
        self.thresholds = thresholds or Notifications()
        self.lagging: set[str] = set()
        self.metrics = metrics or MetricsPublisher()
        self.tables = dict(tables or {})
        self.backlog = backlog

    @classmethod
    def for_pipeline(
        cls, pipeline: Pipeline, settings: Settings, notifier: Notifier, metrics: MetricsPublisher
    ) -> BatchLogListener:
        """The listener of a run of ``pipeline``'s streaming jobs."""
        tables = {name: job.table for name, job in pipeline.jobs.items() if job.table}
        return cls(notifier, pipeline.notifications, metrics, tables, raw_backlog(settings))

    def onQueryStarted(self, event: Any) -> None:  # noqa: N802 (Spark's hook names)
        log.info("job %s started (run %s)", event.name, event.runId)

    def onQueryProgress(self, event: Any) -> None:  # noqa: N802
        try:
            self.report(event.progress)
        except Exception as exc:  # a batch's report never stops the job
            log.warning("job %s: batch not reported (%s)", event.progress.name, exc)

    def report(self, progress: Any) -> None:
        try:
            fields = batch_fields(progress, self.backlog)
        except Exception as exc:  # a lag that cannot be read leaves the rest reported
            log.warning("job %s: source lag not known (%s)", progress.name, exc)
            fields = batch_fields(progress, lag=False)
        log.info(
            "job %s batch %s: %s rows, %s rows/s, %s ms, lag %s",
            fields["job"],
            fields["batch_id"],
            fields["rows"],
            fields["rows_per_s"],
            fields["duration_ms"],
            lag_text(fields),
            extra={"fields": fields},
        )
        self.check_lag(fields["job"], fields["source_lag"], fields.get("source_lag_s"))
        self.metrics.publish(progress_points(fields, self.tables.get(fields["job"], "")))

    def check_lag(self, job: str, records: int | None, seconds: float | None = None) -> None:
        if records is None and seconds is None:
            return
        past = self.thresholds.lag_past_threshold(records, seconds)
        if past is None:
            self.lagging.discard(job)
        elif job not in self.lagging:
            self.lagging.add(job)
            lag, threshold = past
            self.notifier.notify(
                "source_lag",
                job,
                f"{job}: source lag {lag}",
                f"job {job} trails its source by {lag} (threshold {threshold})",
            )

    def onQueryIdle(self, event: Any) -> None:  # noqa: N802
        """No new data at this trigger; nothing to log."""

    def onQueryTerminated(self, event: Any) -> None:  # noqa: N802
        if event.exception:
            log.error("job run %s failed: %s", event.runId, event.exception.splitlines()[0])
        else:
            log.info("job run %s stopped", event.runId)
