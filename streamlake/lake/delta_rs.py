"""Lake tables outside Spark: the same Delta tables opened with delta-rs (deltalake)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streamlake.config.settings import Settings
from streamlake.lake.tables import Contract

if TYPE_CHECKING:
    import pyarrow as pa
    from deltalake import DeltaTable


def delta_rs_location(path: str, settings: Settings) -> tuple[str, dict[str, str]]:
    """The URI and storage options delta-rs needs for a path Spark writes (s3a:// or disk)."""
    if not path.startswith(("s3a://", "s3://")):
        return str(Path(path).resolve()), {}
    uri = "s3://" + path.split("://", 1)[1]
    aws = settings.aws
    options = {"AWS_REGION": aws.region}
    if aws.endpoint_url:
        options["AWS_ENDPOINT_URL"] = aws.endpoint_url
        options["AWS_ALLOW_HTTP"] = str(aws.endpoint_url.startswith("http://")).lower()
    if aws.access_key_id and aws.secret_access_key:
        options["AWS_ACCESS_KEY_ID"] = aws.access_key_id.get_secret_value()
        options["AWS_SECRET_ACCESS_KEY"] = aws.secret_access_key.get_secret_value()
    return uri, options


def append_contract_rows(
    path: str, settings: Settings, contract: Contract, rows: list[dict[str, Any]]
) -> None:
    """Append ``rows`` (dicts with the contract's columns) in one commit, creating the table
    at the first; for the small ``_meta`` tables written without Spark."""
    import pyarrow as pa
    from deltalake import write_deltalake

    arrow = {"STRING": pa.string(), "BIGINT": pa.int64(), "DOUBLE": pa.float64()}
    timestamp = pa.timestamp("us", tz="UTC")
    schema = pa.schema([(name, arrow.get(kind, timestamp)) for name, kind in contract.columns])
    uri, options = delta_rs_location(path, settings)
    table = pa.Table.from_pylist(rows, schema=schema)
    write_deltalake(uri, table, mode="append", storage_options=options or None)


def open_delta_table(path: str, settings: Settings) -> DeltaTable:
    from deltalake import DeltaTable

    uri, options = delta_rs_location(path, settings)
    return DeltaTable(uri, storage_options=options or None)


def delta_table_exists(path: str, settings: Settings) -> bool:
    from deltalake import DeltaTable

    uri, options = delta_rs_location(path, settings)
    return bool(DeltaTable.is_deltatable(uri, storage_options=options or None))


def read_rows(path: str, settings: Settings, columns: list[str] | None = None) -> pa.Table | None:
    """The table's rows as Arrow, or None before its first commit."""
    if not delta_table_exists(path, settings):
        return None
    return arrow_rows(open_delta_table(path, settings), columns)


def arrow_rows(table: DeltaTable, columns: list[str] | None = None) -> pa.Table:
    """A delta-rs table's rows as Arrow, read on the calling thread: a threaded scan through
    delta-rs's file system can abort the interpreter at exit ("terminate called without an
    active exception", delta-io/delta-rs#2184)."""
    return table.to_pyarrow_dataset().to_table(columns=columns, use_threads=False)


def optimize(path: str, settings: Settings, zorder_by: list[str]) -> tuple[int, int]:
    """Bin-pack (or Z-order) the table's files with delta-rs; (files added, files removed).
    Its commit is a dataChange=false rewrite like Spark's OPTIMIZE, and it leaves the log to
    Spark: no checkpoint written, no expired log entries removed, which the streaming
    readers' positions may still need."""
    from deltalake import PostCommitHookProperties

    table = open_delta_table(path, settings)
    hooks = PostCommitHookProperties(create_checkpoint=False, cleanup_expired_logs=False)
    if zorder_by:
        metrics = table.optimize.z_order(zorder_by, post_commithook_properties=hooks)
    else:
        metrics = table.optimize.compact(post_commithook_properties=hooks)
    return int(metrics["numFilesAdded"]), int(metrics["numFilesRemoved"])


def changed_values(
    path: str, settings: Settings, after: int, upto: int, columns: list[str]
) -> set[tuple[Any, ...]]:
    """The distinct values of ``columns`` among the rows the commits after version ``after``
    up to ``upto`` changed (the change data feed, read without Spark: milliseconds where a
    Spark read takes a second). Raises when the feed cannot say (off, or files vacuumed)."""
    import pyarrow as pa

    feed = pa.table(
        open_delta_table(path, settings)
        .load_cdf(starting_version=after + 1, ending_version=upto, columns=columns)
        .read_all()
    )
    return set(zip(*(feed.column(c).to_pylist() for c in columns), strict=True))


def version_and_id(path: str, settings: Settings) -> tuple[int, str] | None:
    """The table's current version and its Delta table id; None before its first commit."""
    if not delta_table_exists(path, settings):
        return None
    table = open_delta_table(path, settings)
    return int(table.version()), str(table.metadata().id)


@dataclass(frozen=True)
class TableSize:
    files: int
    bytes: int
    # As the files' statistics say (files written without them count 0).
    rows: int = 0


def table_size(path: str, settings: Settings) -> TableSize:
    """The active files and bytes of the table's current version (0 when there is none)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not delta_table_exists(path, settings):
        return TableSize(0, 0)
    actions = pa.table(open_delta_table(path, settings).get_add_actions(flatten=True))
    if not actions.num_rows:
        return TableSize(0, 0)
    total = pc.sum(actions.column("size_bytes")).as_py()
    rows = (
        pc.sum(actions.column("num_records")).as_py()
        if "num_records" in actions.schema.names
        else 0
    )
    return TableSize(actions.num_rows, int(total or 0), int(rows or 0))


def vacuum_candidates(path: str, settings: Settings, retention_hours: float) -> int:
    """How many files a full VACUUM with this retention would delete (a dry run: listing
    the table's folder, no Spark job), rounding the retention down so as never to miss one."""
    if not delta_table_exists(path, settings):
        return 0
    table = open_delta_table(path, settings)
    found = table.vacuum(
        retention_hours=int(retention_hours),
        dry_run=True,
        enforce_retention_duration=False,
        full=True,
    )
    return len(found)


def last_transaction_version(path: str, settings: Settings, app_id: str) -> int | None:
    """The last txnVersion ``app_id`` committed to the table, None if none (or no table)."""
    if not delta_table_exists(path, settings):
        return None
    version = open_delta_table(path, settings).transaction_version(app_id)
    return None if version is None else int(version)


# Commits looked at for a job's newest tagged one: other writers (replay, compaction) add
# commits between a job's batches, never this many while the job is stopped.
HISTORY_DEPTH = 1000


def newest_tagged_commit(path: str, settings: Settings, txn_prefix: str) -> dict[str, Any] | None:
    """The userMetadata of the newest commit whose ``txn`` tag (see IdempotentDeltaAppend)
    starts with ``txn_prefix``; None if there is none (or no table)."""
    if not delta_table_exists(path, settings):
        return None
    for commit in open_delta_table(path, settings).history(HISTORY_DEPTH):
        try:
            tagged = json.loads(commit.get("userMetadata") or "")
        except ValueError:
            continue  # untagged, or another writer's free text
        if isinstance(tagged, dict) and str(tagged.get("txn", "")).startswith(txn_prefix):
            return tagged
    return None


# Commits that rewrite files or change the table's definition but not its rows: compaction
# (OPTIMIZE, Z-order), VACUUM, properties, constraints, protocol and column changes.
MAINTENANCE_OPERATIONS = frozenset(
    {
        "OPTIMIZE",
        "VACUUM START",
        "VACUUM END",
        "SET TBLPROPERTIES",
        "UNSET TBLPROPERTIES",
        "ADD CONSTRAINT",
        "DROP CONSTRAINT",
        "ADD COLUMNS",
        "CHANGE COLUMN",
        "REPLACE COLUMNS",
        "UPGRADE PROTOCOL",
        "FSCK",
        "REORG",
    }
)


# Row counts a MERGE or a write reports in its commit; all zero means it changed nothing (a
# curated MERGE whose recomputed rows equal the table's still commits).
ROW_CHANGE_METRICS = {
    "MERGE": ("numTargetRowsInserted", "numTargetRowsUpdated", "numTargetRowsDeleted"),
    "WRITE": ("numOutputRows",),
}


def changed_no_rows(commit: dict[str, Any]) -> bool:
    """Whether the commit says it changed no row (False when it does not say)."""
    names = ROW_CHANGE_METRICS.get(str(commit.get("operation")))
    metrics = commit.get("operationMetrics") or {}
    if names is None or not all(name in metrics for name in names):
        return False
    return all(int(metrics[name]) == 0 for name in names)


def last_data_change(path: str, settings: Settings, upto: int) -> tuple[int, datetime] | None:
    """The version and commit time of the newest commit at or before version ``upto`` that
    changed the table's rows (not a compaction, VACUUM or definition change); None if the
    table's last HISTORY_DEPTH commits hold none (or there is no table)."""
    if not delta_table_exists(path, settings):
        return None
    # A table opened now: delta-rs (1.6) lists an older snapshot's history from the log's
    # newest commit but numbers it from the snapshot's version, so the numbers would be off.
    for commit in open_delta_table(path, settings).history(HISTORY_DEPTH):
        version = int(commit["version"])
        if version > upto or commit.get("operation") in MAINTENANCE_OPERATIONS:
            continue
        if changed_no_rows(commit):
            continue
        return version, datetime.fromtimestamp(int(commit["timestamp"]) / 1000, UTC)
    return None


@dataclass(frozen=True)
class Backlog:
    """What a streaming reader of a table has not read yet: versions, and the rows they
    added (as their commits say; None when a commit does not say)."""

    versions: int
    rows: int | None


def backlog_from(
    path: str, settings: Settings, first_unread: int, snapshot_index: int | None = None
) -> Backlog | None:
    """The commits from version ``first_unread`` on that a Delta stream reads (maintenance
    commits change no data and are skipped by it); None when there is no table. With
    ``snapshot_index``, the stream started from the table as of ``first_unread`` and has
    read its files up to that index (in Delta's order: modification time, then path)."""
    if not delta_table_exists(path, settings):
        return None
    table = open_delta_table(path, settings)
    latest = int(table.version())
    if latest < first_unread:
        return Backlog(0, 0)
    versions, rows, counted = 0, 0, True
    first_commit = first_unread
    if snapshot_index is not None:
        rows = snapshot_rows_after(path, settings, first_unread, snapshot_index)
        versions, first_commit = 1, first_unread + 1
    for commit in table.history(min(latest - first_unread + 1, HISTORY_DEPTH)):
        if int(commit["version"]) < first_commit:
            continue
        if commit.get("operation") in MAINTENANCE_OPERATIONS:
            continue
        versions += 1
        added = (commit.get("operationMetrics") or {}).get("numOutputRows")
        if commit.get("operation") in ("CREATE TABLE", "CREATE OR REPLACE TABLE"):
            added = 0  # an empty table's definition
        if added is None:
            counted = False
        else:
            rows += int(added)
    return Backlog(versions, rows if counted else None)


def snapshot_rows_after(path: str, settings: Settings, version: int, index: int) -> int:
    """The rows of the table's files as of ``version`` after the first ``index + 1``."""
    from deltalake import DeltaTable

    uri, options = delta_rs_location(path, settings)
    files = DeltaTable(uri, version=version, storage_options=options or None).get_add_actions(
        flatten=True
    )
    if "num_records" not in files.schema.names:
        return 0  # files written without statistics say nothing of their rows
    ordered = sorted(
        zip(
            files.column("modification_time").to_pylist(),
            files.column("path").to_pylist(),
            files.column("num_records").to_pylist(),
            strict=True,
        )
    )
    return sum(int(n or 0) for _, _, n in ordered[index + 1 :])
