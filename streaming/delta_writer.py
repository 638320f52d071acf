"""The idempotent batch writer: each micro-batch is one Delta commit tagged with
(txnAppId = job and checkpoint, txnVersion = batch id), so a batch replayed after a crash
is skipped by Delta instead of written twice.

The app id carries the query id Spark keeps in the checkpoint's ``metadata`` file: an
operator who deletes a checkpoint to reprocess starts a new query whose batch ids start at
0 again, and those batches must not be mistaken for replays of the old ones."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

MAX_RECORDS_PER_FILE = 100_000
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


def query_id(spark: SparkSession, checkpoint: str) -> str:
    """The id of the query that owns ``checkpoint`` (written by Spark when it first starts)."""
    line = spark.read.text(f"{checkpoint.rstrip('/')}/metadata").first()
    if line is None:
        raise ValueError(f"no query metadata in {checkpoint}")
    return str(json.loads(line[0])["id"])


@dataclass
class IdempotentDeltaAppend:
    """Appends a batch to the Delta table at ``path`` at most once per (app id, batch id).

    With ``checkpoint`` set, the app id is ``<app_id>:<query id>``."""

    path: str
    app_id: str
    partition_by: tuple[str, ...] = ()
    checkpoint: str | None = None
    _resolved: str | None = field(default=None, repr=False)

    def txn_app_id(self, spark: SparkSession) -> str:
        if self._resolved is None:
            suffix = f":{query_id(spark, self.checkpoint)}" if self.checkpoint else ""
            self._resolved = self.app_id + suffix
        return self._resolved

    def write(self, frame: DataFrame, batch_id: int, merge_schema: bool = False) -> None:
        writer = (
            frame.write.format("delta")
            .mode("append")
            .option("txnAppId", self.txn_app_id(frame.sparkSession))
            .option("txnVersion", batch_id)
            # Bounded files let readers split a big batch into tasks, and process jobs into
            # batches, that fit in memory: a reader does not split a file below a row group.
            .option("maxRecordsPerFile", MAX_RECORDS_PER_FILE)
        )
        if merge_schema:
            writer = writer.option("mergeSchema", "true")
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
