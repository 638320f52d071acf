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
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from streamlake.lake.tables import Contract

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

T = TypeVar("T")

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


# Delta's optimistic-concurrency conflicts: the other writer won; doing it again on the new
# snapshot is right (compaction beside a streaming append, a MERGE beside an OPTIMIZE).
CONFLICTS = (
    "ConcurrentAppendException",
    "ConcurrentDeleteReadException",
    "ConcurrentDeleteDeleteException",
    "ConcurrentTransactionException",
    "MetadataChangedException",
    "ProtocolChangedException",
    "DELTA_CONCURRENT_",
    "CommitFailedError",  # delta-rs's, once its own retries found a real conflict
)
CONFLICT_ATTEMPTS = 5


def is_conflict(error: BaseException) -> bool:
    text = f"{type(error).__name__}: {error}"
    return any(name in text for name in CONFLICTS)


def retry_on_conflict(what: str, action: Callable[[], T], attempts: int = CONFLICT_ATTEMPTS) -> T:
    """Run ``action``, again (after a short, growing pause) when Delta reports that a
    concurrent commit conflicted with it."""
    for attempt in range(1, attempts + 1):
        try:
            return action()
        except Exception as exc:
            if not is_conflict(exc) or attempt == attempts:
                raise
            log.info("%s: conflict with a concurrent commit (attempt %s), retrying", what, attempt)
            time.sleep(0.5 * attempt)
    raise AssertionError("unreachable")


def table_version(spark: SparkSession, path: str) -> int | None:
    """The table's current version; None before its first commit."""
    from delta.tables import DeltaTable

    if not table_exists(spark, path):
        return None
    row = DeltaTable.forPath(spark, path).history(1).select("version").first()
    return None if row is None else int(row[0])


def changes_between(spark: SparkSession, path: str, after: int, upto: int) -> DataFrame:
    """Rows the commits after version ``after`` up to ``upto`` inserted, updated or deleted
    (Delta's change data feed; ``_change_type`` says which). Raises when the feed was off
    for one of them or its files are gone (vacuumed)."""
    return (
        spark.read.format("delta")
        .option("readChangeFeed", "true")
        .option("startingVersion", after + 1)
        .option("endingVersion", upto)
        .load(path)
    )


def read_version(spark: SparkSession, path: str, version: int) -> DataFrame:
    """The table as of ``version``."""
    return spark.read.format("delta").option("versionAsOf", version).load(path)


@dataclass(frozen=True)
class MergeCounts:
    inserted: int = 0
    updated: int = 0
    deleted: int = 0

    @property
    def changed(self) -> int:
        return self.inserted + self.updated + self.deleted

    @classmethod
    def of(cls, result: DataFrame | None) -> MergeCounts:
        """From the one-row DataFrame MERGE returns."""
        row = result.first() if result is not None else None
        if row is None:
            return cls()
        found = row.asDict()
        return cls(
            int(found.get("num_inserted_rows") or 0),
            int(found.get("num_updated_rows") or 0),
            int(found.get("num_deleted_rows") or 0),
        )


def merge_rows(
    spark: SparkSession,
    path: str,
    rows: DataFrame,
    keys: list[str],
    partition_by: tuple[str, ...] = (),
    delete_unmatched: str | None = None,
    match_scope: str | None = None,
) -> MergeCounts:
    """Make the table at ``path`` hold ``rows`` (at most one per key): insert new keys,
    update a key's row only where a value differs (so a rerun changes nothing), and delete
    the table's rows no source row matches where ``delete_unmatched`` (a condition on the
    table's row, ``t.``; ``"true"`` for all) holds. ``match_scope``, a condition on the
    table's row no matching row can fail, lets Delta skip the files outside it. Creates the
    table on first use."""
    from delta.tables import DeltaTable

    if not table_exists(spark, path):
        rows.write.format("delta").partitionBy(*partition_by).save(path)
        return MergeCounts(inserted=int(spark.read.format("delta").load(path).count()))
    on = " AND ".join(f"t.`{key}` <=> s.`{key}`" for key in keys)
    if match_scope is not None:
        on = f"({match_scope}) AND {on}"
    values = [c for c in rows.columns if c not in keys]

    def execute() -> DataFrame:
        table = DeltaTable.forPath(spark, path)
        differs = differing_values(values, table.toDF().columns)
        merge = table.alias("t").merge(rows.alias("s"), on)
        merge = merge.withSchemaEvolution()
        if differs:
            merge = merge.whenMatchedUpdateAll(condition=differs)
        merge = merge.whenNotMatchedInsertAll()
        if delete_unmatched is not None:
            merge = merge.whenNotMatchedBySourceDelete(condition=delete_unmatched)
        return merge.execute()

    return MergeCounts.of(retry_on_conflict(f"merge into {path}", execute))


def differing_values(values: list[str], target_columns: list[str]) -> str:
    """The condition under which a matched row needs an update: a value differs, or a
    column the table does not have yet (schema evolution adds it) holds something."""
    present = {c.lower() for c in target_columns}
    return " OR ".join(
        f"NOT (t.`{c}` <=> s.`{c}`)" if c.lower() in present else f"s.`{c}` IS NOT NULL"
        for c in values
    )
