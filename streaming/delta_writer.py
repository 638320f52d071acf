"""The idempotent batch writer: each micro-batch is one Delta commit tagged with
(txnAppId = job, txnVersion = batch id), so a batch replayed after a crash is skipped by
Delta instead of written twice."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

log = logging.getLogger(__name__)

RAW_COLUMNS = (
    "payload",
    "source",
    "stream",
    "partition",
    "position",
    "key",
    "event_ts",
    "ingest_ts",
    "ingest_date",
)


@dataclass(frozen=True)
class IdempotentDeltaAppend:
    """Appends a batch to the Delta table at ``path`` at most once per (app_id, batch_id)."""

    path: str
    app_id: str
    partition_by: tuple[str, ...] = ()

    def write(self, frame: DataFrame, batch_id: int) -> None:
        writer = (
            frame.write.format("delta")
            .mode("append")
            .option("txnAppId", self.app_id)
            .option("txnVersion", batch_id)
        )
        if self.partition_by:
            writer = writer.partitionBy(*self.partition_by)
        writer.save(self.path)


@dataclass(frozen=True)
class RawBatchWriter:
    """foreachBatch function of the ingest jobs: stamps ingest time, appends to raw.<t>."""

    target: IdempotentDeltaAppend

    def __call__(self, frame: DataFrame, batch_id: int) -> None:
        from pyspark.sql import functions as F

        stamped = frame.withColumn("ingest_ts", F.current_timestamp()).withColumn(
            "ingest_date", F.to_date("ingest_ts")
        )
        self.target.write(stamped.select(*RAW_COLUMNS), batch_id)
