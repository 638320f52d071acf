"""Each process batch's counts: one log line (an alert event above the quarantine
threshold), one typed row in ``_meta/batch_metrics``, and metric points."""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from streamlake.lake.spark_delta import IdempotentDeltaAppend, ensure_table
from streamlake.lake.tables import BATCH_METRICS
from streamlake.metrics import MetricsPublisher, count_points
from streamlake.notifications import DEFAULT_QUARANTINE_RATIO, Notifier

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchCounts:
    rows_in: int
    processed: int
    quarantined: dict[str, int]
    duplicates: int
    late: int
    no_event_time: int = 0

    @property
    def quarantine_total(self) -> int:
        return sum(self.quarantined.values())

    @property
    def quarantine_ratio(self) -> float:
        return self.quarantine_total / self.rows_in if self.rows_in else 0.0

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> BatchCounts:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})

    def fields(self, job: str, batch_id: int, alert_ratio: float) -> dict[str, Any]:
        """The metrics row's values, in the contract's column order (without recorded_at)."""
        return {
            "job": job,
            "batch_id": batch_id,
            "rows_in": self.rows_in,
            "processed": self.processed,
            "quarantined": self.quarantine_total,
            "duplicates": self.duplicates,
            "late": self.late,
            "no_event_time": self.no_event_time,
            "quarantine_ratio": round(self.quarantine_ratio, 4),
            "alert": self.quarantine_ratio > alert_ratio,
            "quarantined_by_kind": dict(self.quarantined),
        }


class MetricsRecorder:
    """Records a job's batch counts: a log line at once, and a row in the metrics table
    written by a background thread, so that the commit never holds up the next batch
    (metrics never block or fail the job). Rows whose write failed are retried with the
    next batch's. A row lost with the process is written at the job's next start by
    ``catch_up``, from the counts the batch's data commit carries."""

    def __init__(
        self,
        job: str,
        target: IdempotentDeltaAppend,
        recorded_through: Callable[[str], int | None] | None = None,
        background: bool = True,
        alert_ratio: float = DEFAULT_QUARANTINE_RATIO,
        notifier: Notifier | None = None,
        publisher: MetricsPublisher | None = None,
        table: str = "",
    ) -> None:
        self.job = job
        self.table = table
        self.publisher = publisher or MetricsPublisher()
        # A batch quarantining more than this share of its records raises an alert.
        self.alert_ratio = alert_ratio
        self.notifier = notifier or Notifier()
        self.target = target
        # The last batch id the metrics table holds for a txn app id (None: none).
        self.recorded_through = recorded_through
        self.background = background
        self.unwritten: list[tuple[int, BatchCounts]] = []
        self._lock = threading.Lock()
        self._writer: ThreadPoolExecutor | None = None
        self._pending: list[Future[None]] = []

    def record(self, spark: SparkSession, batch_id: int, counts: BatchCounts) -> None:
        """Called after the batch's data committed."""
        fields = counts.fields(self.job, batch_id, self.alert_ratio)
        log_batch(self.job, batch_id, counts, fields)
        self.publisher.publish(count_points(fields, self.table))
        if fields["alert"]:
            self.alert(batch_id, counts, fields)
        with self._lock:
            self.unwritten.append((batch_id, counts))
        if not self.background:
            self._write(spark)
            return
        if self._writer is None:
            self._writer = ThreadPoolExecutor(1, thread_name_prefix=f"metrics-{self.job}")
        self._pending = [f for f in self._pending if not f.done()]
        self._pending.append(self._writer.submit(self._write, spark))

    def alert(self, batch_id: int, counts: BatchCounts, fields: dict[str, Any]) -> None:
        """A batch quarantined more than ``alert_ratio`` of its records: a warning line and a
        quality breach notification."""
        text = (
            f"job {self.job} batch {batch_id} quarantined {100 * counts.quarantine_ratio:.1f}% "
            f"of its records (threshold {100 * self.alert_ratio:.0f}%)"
        )
        log.warning("alert: %s", text, extra={"fields": {**fields, "alert": "quarantine_ratio"}})
        by_kind = ", ".join(f"{k} {v}" for k, v in sorted(counts.quarantined.items()))
        self.notifier.notify(
            "quality_breach", self.job, f"{self.job}: quarantine ratio", f"{text}: {by_kind}"
        )

    def catch_up(self, spark: SparkSession, committed: dict[int, dict[str, Any]]) -> None:
        """Called at a run's first batch with the counts of the batches whose data committed
        (by batch id): records those the metrics table does not hold yet."""
        through = None
        if self.recorded_through is not None:
            try:
                through = self.recorded_through(self.target.txn_app_id(spark))
            except Exception as exc:  # metrics never fail the job
                log.warning("job %s: could not read the metrics table (%s)", self.job, exc)
                return
        missing = sorted(b for b in committed if through is None or b > through)
        for batch_id in missing:
            self.unwritten.append((batch_id, BatchCounts.from_dict(committed[batch_id])))
        if missing:
            log.info("job %s: recording the metrics of batches %s", self.job, missing)
            self._write(spark)

    def flush(self, timeout_s: float = 120.0) -> None:
        """Wait for the rows being written; called when the job stops."""
        if self._pending:
            wait(self._pending, timeout=timeout_s)
        if self._writer is not None:
            self._writer.shutdown(wait=False)
            self._writer = None
        if self.unwritten:
            log.warning(
                "job %s: metrics of batches %s not written; the next start records them",
                self.job,
                [batch_id for batch_id, _ in self.unwritten],
            )

    def _write(self, spark: SparkSession) -> None:
        """Append every unwritten row in one commit, tagged with the newest batch id."""
        from pyspark.sql import functions as F

        with self._lock:
            rows = list(self.unwritten)
        if not rows:
            return
        values = [
            (*counts.fields(self.job, b, self.alert_ratio).values(), None) for b, counts in rows
        ]
        frame = spark.createDataFrame(values, BATCH_METRICS.ddl)
        try:
            self.target.write(frame.withColumn("recorded_at", F.current_timestamp()), rows[-1][0])
        except Exception as exc:  # metrics never fail the job: kept for the next write
            log.warning(
                "job %s: could not write the metrics of batches %s (%s); retrying with the next",
                self.job,
                [b for b, _ in rows],
                str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
            )
            return
        with self._lock:
            del self.unwritten[: len(rows)]


def log_batch(job: str, batch_id: int, counts: BatchCounts, fields: dict[str, Any]) -> None:
    log.info(
        "job %s batch %s: %s in, %s processed, %s quarantined %s, %s duplicates, %s late, "
        "%s without event time",
        job,
        batch_id,
        counts.rows_in,
        counts.processed,
        counts.quarantine_total,
        counts.quarantined,
        counts.duplicates,
        counts.late,
        counts.no_event_time,
        extra={"fields": fields},
    )


def ensure_metrics_table(spark: SparkSession, path: str) -> None:
    """Create the metrics table, or bring one written by an earlier version up to the
    contract: counts by kind typed (they were "k=v,..." text), and columns added since."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import StringType

    ensure_table(spark, path, BATCH_METRICS)
    table = spark.read.format("delta").load(path)
    if isinstance(table.schema["quarantined_by_kind"].dataType, StringType):
        pairs = F.str_to_map(F.coalesce("quarantined_by_kind", F.lit("")), F.lit(","), F.lit("="))
        typed = F.map_filter(pairs, lambda k, _v: k != "")
        upgraded = table.withColumn(
            "quarantined_by_kind", F.transform_values(typed, lambda _k, v: v.cast("bigint"))
        )
        log.warning("upgrading %s: counts by kind become a typed map column", path)
        upgraded.localCheckpoint().write.format("delta").mode("overwrite").option(
            "overwriteSchema", "true"
        ).save(path)
    present = set(spark.read.format("delta").load(path).columns)
    missing = [f"{name} {kind}" for name, kind in BATCH_METRICS.columns if name not in present]
    if missing:
        log.warning("upgrading %s: adding %s", path, ", ".join(missing))
        spark.sql(f"ALTER TABLE delta.`{path}` ADD COLUMNS ({', '.join(missing)})")
