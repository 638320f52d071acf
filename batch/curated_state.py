"""Curated tables of kind ``current_state``: each key's newest change of a CDC input
(SCD type 1), and optionally its whole history (SCD type 2).

Changes are ordered by their sequence number (DynamoDB's: a decimal string of up to 40
digits, compared as numbers by padding), never by arrival: a change that arrives after a
newer one of its key is ignored. A delete removes the key and leaves a tombstone in
``_meta/cdc_tombstones``, so that an older change arriving later does not bring it back.
Tombstones are written before the table; after a crash between the two the rerun reads the
same changes, and the delete (whose sequence number equals its tombstone's) still applies."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from batch.inputs import InputWindow, Refresh
from streamlake.config.pipeline import NEW_VALUES, CuratedTable, Table
from streamlake.config.settings import LakeSettings
from streamlake.lake.spark_delta import (
    MergeCounts,
    ensure_table,
    merge_rows,
    retry_on_conflict,
    table_exists,
)
from streamlake.lake.tables import CDC_TOMBSTONES, PROCESSED_SYSTEM

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

SEQUENCE = "_sequence_number"
OPERATION = "_op"
REMOVE = "remove"
# DynamoDB sequence numbers have up to 40 digits; padded to one width they sort as numbers.
SEQUENCE_WIDTH = 48


def sequence_order(column: str | Column) -> Column:
    from pyspark.sql import functions as F

    return F.lpad(F.col(column) if isinstance(column, str) else column, SEQUENCE_WIDTH, "0")


@dataclass(frozen=True)
class StateTables:
    """Where one current-state table and its companions live."""

    name: str
    state: str
    history: str
    tombstones: str

    @classmethod
    def of(cls, lake: LakeSettings, name: str) -> StateTables:
        return cls(
            name,
            lake.table_path("curated", name),
            lake.table_path("curated", f"{name}_history"),
            lake.meta_path("cdc_tombstones"),
        )


def data_columns(rows: DataFrame) -> list[str]:
    """The input's declared columns (what the state table holds besides the sequence)."""
    return [c for c in rows.columns if c not in PROCESSED_SYSTEM and c != "_change_type"]


def changed_rows(spark: SparkSession, window: InputWindow) -> tuple[DataFrame, bool]:
    """The changes to apply (cached), and whether they are the whole input (a first run, or
    the feed cannot say what changed)."""
    from pyspark.sql import functions as F

    if window.since is not None:
        feed = None
        try:
            # A feed that was off fails when read is planned; one whose files are gone, when
            # it is counted.
            feed = window.changes(spark).where(F.col("_change_type").isin(*NEW_VALUES))
            feed = feed.drop("_change_type", "_commit_version", "_commit_timestamp").persist()
            feed.count()
            return feed, False
        except Exception as exc:
            if feed is not None:
                feed.unpersist()
            window.warn_unreadable(exc)
    return window.rows(spark).persist(), True


def newest_per_key(changes: DataFrame, keys: list[str]) -> DataFrame:
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    order = Window.partitionBy(*keys).orderBy(sequence_order(SEQUENCE).desc())
    return changes.withColumn("_rank", F.row_number().over(order)).where("_rank = 1").drop("_rank")


def key_json(keys: list[str]) -> Column:
    from pyspark.sql import functions as F

    return F.to_json(F.struct(*[F.col(k) for k in keys]))


def without_resurrections(
    spark: SparkSession, newest: DataFrame, tables: StateTables, keys: list[str]
) -> DataFrame:
    """Drop changes older than their key's recorded delete."""
    from pyspark.sql import functions as F

    if not table_exists(spark, tables.tombstones):
        return newest
    tombstones = (
        spark.read.format("delta")
        .load(tables.tombstones)
        .where(F.col("table") == tables.name)
        .select(F.col("key").alias("_key"), F.col("sequence_number").alias("_deleted_seq"))
    )
    joined = newest.withColumn("_key", key_json(keys)).join(tombstones, "_key", "left")
    kept = F.col("_deleted_seq").isNull() | (
        sequence_order(SEQUENCE) >= sequence_order("_deleted_seq")
    )
    return joined.where(kept).drop("_key", "_deleted_seq")


def record_tombstones(
    spark: SparkSession, newest: DataFrame, tables: StateTables, keys: list[str], whole: bool
) -> None:
    """Record the deletes among ``newest``; with ``whole`` (``newest`` read from the whole
    input) they replace the table's tombstones."""
    from delta.tables import DeltaTable
    from pyspark.sql import functions as F

    deletes = newest.where(F.col(OPERATION) == REMOVE).select(
        F.lit(tables.name).alias("table"),
        key_json(keys).alias("key"),
        F.col(SEQUENCE).alias("sequence_number"),
        F.current_timestamp().alias("deleted_at"),
    )
    exists = table_exists(spark, tables.tombstones)
    if deletes.isEmpty() and not (whole and exists):
        return
    if not exists:
        ensure_table(spark, tables.tombstones, CDC_TOMBSTONES)
    newer = (
        f"lpad(s.sequence_number, {SEQUENCE_WIDTH}, '0') > "
        f"lpad(t.sequence_number, {SEQUENCE_WIDTH}, '0')"
    )
    this_table = f"t.table = '{tables.name}'"

    def execute() -> DataFrame:
        target = DeltaTable.forPath(spark, tables.tombstones).alias("t")
        merge = target.merge(deletes.alias("s"), "t.table = s.table AND t.key = s.key")
        merge = merge.whenMatchedUpdateAll(condition=None if whole else newer)
        merge = merge.whenNotMatchedInsertAll()
        if whole:
            merge = merge.whenNotMatchedBySourceDelete(condition=this_table)
        return merge.execute()

    retry_on_conflict(f"merge into {tables.tombstones}", execute)


def apply_to_state(
    spark: SparkSession,
    newest: DataFrame,
    tables: StateTables,
    keys: list[str],
    columns: list[str],
    whole: bool,
) -> MergeCounts:
    from delta.tables import DeltaTable
    from pyspark.sql import functions as F

    if whole or not table_exists(spark, tables.state):
        # Each key's newest change over the whole input: the state is exactly its rows.
        rows = newest.where(F.col(OPERATION) != REMOVE).select(*columns, SEQUENCE)
        return merge_rows(spark, tables.state, rows, keys, delete_unmatched="true")
    on = " AND ".join(f"t.`{key}` <=> s.`{key}`" for key in keys)
    newer = f"lpad(s.{SEQUENCE}, {SEQUENCE_WIDTH}, '0') > lpad(t.{SEQUENCE}, {SEQUENCE_WIDTH}, '0')"
    values: dict[str, str | Column] = {f"`{c}`": f"s.`{c}`" for c in [*columns, SEQUENCE]}

    def execute() -> DataFrame:
        target = DeltaTable.forPath(spark, tables.state).alias("t")
        return (
            target.merge(newest.alias("s"), on)
            .whenMatchedDelete(condition=f"{newer} AND s.{OPERATION} = '{REMOVE}'")
            .whenMatchedUpdate(condition=newer, set=values)
            .whenNotMatchedInsert(condition=f"s.{OPERATION} <> '{REMOVE}'", values=values)
            .execute()
        )

    return MergeCounts.of(retry_on_conflict(f"merge into {tables.state}", execute))


def history_rows(
    all_changes: DataFrame, keys: list[str], columns: list[str], time: Column
) -> DataFrame:
    """Each change as a version valid from its time until the key's next change (or its
    delete). Times are made non-decreasing in sequence order, so versions never overlap even
    when a producer's clock went back."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    in_order = Window.partitionBy(*keys).orderBy(sequence_order(SEQUENCE))
    so_far = in_order.rowsBetween(Window.unboundedPreceding, Window.currentRow)
    versions = (
        all_changes.dropDuplicates([*keys, SEQUENCE])
        .withColumn("valid_from", F.max(time).over(so_far))
        .withColumn("valid_to", F.lead("valid_from").over(in_order))
    )
    return versions.where(F.col(OPERATION) != REMOVE).select(
        *columns,
        SEQUENCE,
        "valid_from",
        "valid_to",
        F.col("valid_to").isNull().alias("is_current"),
    )


def refresh_history(
    spark: SparkSession,
    window: InputWindow,
    changes: DataFrame,
    whole: bool,
    tables: StateTables,
    keys: list[str],
    table: Table,
) -> MergeCounts:
    """Rebuild the versions of the keys that changed from all of their changes (an older
    change arriving late splits an existing version in two)."""
    from pyspark.sql import functions as F

    all_changes = window.rows(spark)
    if not whole:
        all_changes = all_changes.join(
            F.broadcast(changes.select(*keys).distinct()), keys, "left_semi"
        )
    time = F.coalesce(F.col(table.event_time or "_ingest_ts"), F.col("_ingest_ts"))
    rows = history_rows(all_changes, keys, data_columns(all_changes), time)
    return merge_rows(
        spark, tables.history, rows, [*keys, SEQUENCE], delete_unmatched="true" if whole else None
    )


def refresh_current_state(
    spark: SparkSession,
    name: str,
    curated: CuratedTable,
    window: InputWindow,
    table: Table,
    lake: LakeSettings,
) -> Refresh | None:
    """Apply the input's changes since the last run to the state (and history) table; None
    when nothing changed."""
    if window.unchanged:
        return None
    tables = StateTables.of(lake, name)
    keys = curated.keys
    changes, whole = changed_rows(spark, window)
    try:
        if changes.isEmpty():
            return None
        columns = data_columns(changes)
        newest = newest_per_key(changes, keys)
        if not whole:
            newest = without_resurrections(spark, newest, tables, keys)
        newest = newest.persist()
        record_tombstones(spark, newest, tables, keys, whole)
        counts = {name: apply_to_state(spark, newest, tables, keys, columns, whole)}
        newest.unpersist()
        if curated.history:
            counts[f"{name}_history"] = refresh_history(
                spark, window, changes, whole, tables, keys, table
            )
        return Refresh(counts, whole)
    finally:
        changes.unpersist()
