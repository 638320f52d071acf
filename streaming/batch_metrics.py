"""Each process batch's counts: one log line (an alert event above the quarantine
threshold) and one typed row in ``_meta/batch_metrics``."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from streamlake.lake.spark_delta import IdempotentDeltaAppend, ensure_table
from streamlake.lake.tables import BATCH_METRICS

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

ALERT_QUARANTINE_RATIO = 0.05


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

    @property
    def alert(self) -> bool:
        return self.quarantine_ratio > ALERT_QUARANTINE_RATIO

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> BatchCounts:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})

    def fields(self, job: str, batch_id: int) -> dict[str, Any]:
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
            "alert": self.alert,
            "quarantined_by_kind": dict(self.quarantined),
        }


@dataclass(frozen=True)
class MetricsRecorder:
    """Records a job's batch counts; ``target`` appends them once per batch id."""

    job: str
    target: IdempotentDeltaAppend

    def record(self, spark: SparkSession, batch_id: int, counts: BatchCounts) -> None:
        from pyspark.sql import functions as F

        fields = counts.fields(self.job, batch_id)
        log_batch(self.job, batch_id, counts, fields)
        row = spark.createDataFrame([(*fields.values(), None)], BATCH_METRICS.ddl)
        self.target.write(row.withColumn("recorded_at", F.current_timestamp()), batch_id)


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
    if counts.alert:
        log.warning(
            "alert: job %s batch %s quarantined %.1f%% of its records (threshold %.0f%%)",
            job,
            batch_id,
            100 * counts.quarantine_ratio,
            100 * ALERT_QUARANTINE_RATIO,
            extra={"fields": {**fields, "alert": "quarantine_ratio"}},
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
