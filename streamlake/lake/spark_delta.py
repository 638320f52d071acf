"""Delta tables through Spark: existence, reads, creation from a contract, and the
idempotent append every job writes with.

Idempotent: each append is one Delta commit tagged (txnAppId, txnVersion); Delta skips a
commit whose version its app id has already written, so a batch replayed after a crash is
not written twice. Streaming jobs take the app id ``<job>:<query id>`` and the batch id as
version. The query id is the one Spark keeps in the checkpoint's ``metadata`` file: an
operator who deletes a checkpoint to reprocess starts a new query whose batch ids start at
0 again, and those batches must not be mistaken for replays of the old ones.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from streamlake.lake.tables import Contract

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

# Bounded files let readers split a big batch into tasks, and process jobs into batches,
# that fit in memory: a reader does not split a file below a row group.
MAX_RECORDS_PER_FILE = 100_000


def table_exists(spark: SparkSession, path: str) -> bool:
    from delta.tables import DeltaTable

    return bool(DeltaTable.isDeltaTable(spark, path))


def read_table(spark: SparkSession, path: str) -> DataFrame | None:
    """The table at ``path``, or None before its first commit."""
    return spark.read.format("delta").load(path) if table_exists(spark, path) else None


def row_count(spark: SparkSession, path: str) -> int:
    """Rows in the table at ``path``; 0 before its first commit."""
    table = read_table(spark, path)
    return 0 if table is None else int(table.count())


def ensure_table(spark: SparkSession, path: str, contract: Contract) -> None:
    """Create the empty table up front: concurrent first writes by several jobs would race
    to create it (Delta's ProtocolChangedException). Jobs starting together in separate
    drivers may still race here; the loser finds the winner's table."""
    if table_exists(spark, path):
        return
    empty = spark.createDataFrame([], contract.ddl).write.format("delta").mode("ignore")
    try:
        empty.partitionBy(*contract.partition_by).save(path)
    except Exception:
        if not created_meanwhile(spark, path):
            raise
        log.info("%s was created by another writer at the same time", path)


def created_meanwhile(spark: SparkSession, path: str) -> bool:
    """Whether the table exists now, read afresh (``table_exists`` may answer from the
    session's cached snapshot of the log)."""
    from delta.tables import DeltaTable

    try:
        DeltaTable.forPath(spark, path)
    except Exception:
        return False
    return True


def query_id(spark: SparkSession, checkpoint: str) -> str:
    """The id of the query that owns ``checkpoint`` (written by Spark when it first starts)."""
    line = spark.read.text(f"{checkpoint.rstrip('/')}/metadata").first()
    if line is None:
        raise ValueError(f"no query metadata in {checkpoint}")
    return str(json.loads(line[0])["id"])


@dataclass
class IdempotentDeltaAppend:
    """Appends to the Delta table at ``path`` at most once per (app id, version).

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

    def write(
        self,
        frame: DataFrame,
        version: int,
        merge_schema: bool = False,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """Append ``frame`` as ``version``; ``metadata`` travels in the commit's
        userMetadata, for ``committed_batches`` to read back after a crash."""
        app_id = self.txn_app_id(frame.sparkSession)
        writer = (
            frame.write.format("delta")
            .mode("append")
            .option("txnAppId", app_id)
            .option("txnVersion", version)
            .option("maxRecordsPerFile", MAX_RECORDS_PER_FILE)
        )
        if metadata is not None:
            tagged = {"txn": app_id, "version": version, **metadata}
            writer = writer.option("userMetadata", json.dumps(tagged))
        if merge_schema:
            writer = writer.option("mergeSchema", "true")
        if self.partition_by:
            writer = writer.partitionBy(*self.partition_by)
        writer.save(self.path)

    def committed_batches(self, spark: SparkSession, depth: int = 100) -> dict[int, dict[str, Any]]:
        """The metadata this append committed, by version, among the table's last ``depth``
        commits (versions written without metadata are not there)."""
        from delta.tables import DeltaTable

        if not table_exists(spark, self.path):
            return {}
        app_id = self.txn_app_id(spark)
        history = DeltaTable.forPath(spark, self.path).history(depth)
        found: dict[int, dict[str, Any]] = {}
        for row in history.where("userMetadata IS NOT NULL").select("userMetadata").collect():
            try:
                tagged = json.loads(row[0])
            except ValueError:
                continue  # another writer's free text
            if isinstance(tagged, dict) and tagged.get("txn") == app_id:
                found.setdefault(int(tagged["version"]), tagged)
        return found
