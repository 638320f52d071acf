"""`batch run export`: deliver what changed in lake tables since the last export to Firehose
delivery streams, as JSON lines, without Spark (delta-rs reads the change data feed, DuckDB
filters it).

Each export works through windows of its table's versions. A window is recorded in
``_meta/export_positions`` before anything is sent, and its records are put in a fixed order
(commit version, then the record's JSON text), so a rerun rebuilds the same window. After
each Firehose call the records it acknowledged are recorded; a rerun after a crash or a
give-up resumes the window and sends only the others. A window fully delivered closes, and
the next run starts after it.

Exactly once, but for one case: a call Firehose answered whose answer the job had not
recorded when it died. That call's records (at most 500) go again, with the same
``_export_id``, by which a consumer drops them."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from batch.jobs import BatchRun
from batch.report import BatchReport, TableOutcome
from connectors.aws import aws_endpoint
from connectors.firehose import MAX_RECORD_BYTES, FirehoseSender, Record, batches
from connectors.s3 import location_files
from streamlake.config.pipeline import Export, interval_seconds
from streamlake.config.settings import Settings
from streamlake.errors import ConfigError, ExportError, UsageError, first_line
from streamlake.lake.delta_rs import (
    arrow_rows,
    delta_rs_location,
    open_delta_table,
    read_rows,
    version_and_id,
)
from streamlake.lake.leases import LEASES, TableLeases
from streamlake.lake.progress import (
    ExportPosition,
    read_export_position,
    record_export_position,
)
from streamlake.lake.query import json_value, quoted

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

log = logging.getLogger(__name__)

# Columns the change data feed adds to a table's own.
FEED_COLUMNS = ("_change_type", "_commit_version", "_commit_timestamp")
# Exports hold a lease per export (``export.<name>``) under this holder name.
EXPORT_HOLDER = "export"
EXPORT_LEASE_TTL_S = 300.0


@dataclass(frozen=True)
class ExportTarget:
    """One declared export, and where its table and its bookkeeping live."""

    name: str
    export: Export
    path: str
    positions: str
    rejects: str

    @property
    def label(self) -> str:
        return f"{self.export.table} -> {self.export.stream}"

    @property
    def lease(self) -> str:
        return f"export.{self.name}"

    @property
    def definition(self) -> str:
        """A digest of what the export selects: a window is rebuilt only under the same."""
        chosen = self.export.model_dump(include={"table", "where", "columns", "changes"})
        return hashlib.sha256(json.dumps(chosen, sort_keys=True).encode()).hexdigest()[:16]


def check_definition(target: ExportTarget, position: ExportPosition) -> None:
    """An open window's records are known by their place in its order; under an edited
    ``where``, ``columns`` or ``changes`` that order means other records."""
    if position.definition and position.definition != target.definition:
        raise ConfigError(
            f"exports.{target.name} changed while versions {window(position)} were being "
            f"delivered ({len(position.acked)} records sent)",
            "put its table, where, columns and changes back and run it once more to finish "
            "those versions; the new definition applies from the next ones",
            key=f"exports.{target.name}",
        )


def run(run: BatchRun) -> BatchReport:
    report = BatchReport(run.job, "export")
    targets = selected_targets(run)
    # The sender retries with its own backoff and jitter; botocore does not retry on top.
    firehose = aws_endpoint(run.settings).client("firehose", retries=1)
    leases = TableLeases(location_files(run.settings.lake.meta_path(LEASES), run.settings))
    for target in targets:
        run.progress(f"exporting {target.name}")
        try:
            with export_lease(leases, target):
                report.tables.append(export_table(target, run.settings, firehose, leases))
        except ExportError as exc:
            if not exc.undelivered:
                raise  # refused outright: no rerun mends it
            log.error("%s", exc)
            report.tables.append(TableOutcome(target.label, "failed", detail=str(exc)))
            report.failed = "; ".join(filter(None, [report.failed, str(exc)]))
    return report


@contextmanager
def export_lease(leases: TableLeases, target: ExportTarget) -> Iterator[None]:
    """Held while an export sends: a second export run at the same time would send the
    same window again. Renewed after each Firehose call (see PositionTracker)."""
    leases.take(target.lease, EXPORT_HOLDER, EXPORT_LEASE_TTL_S)
    try:
        yield
    finally:
        leases.release(target.lease, EXPORT_HOLDER)


def selected_targets(run: BatchRun) -> list[ExportTarget]:
    """The exports ``--table`` selects (by export name or table), all without it."""
    lake = run.settings.lake
    targets = [
        ExportTarget(
            name,
            export,
            lake.table_path(*export.table.split(".", 1)),
            lake.meta_path("export_positions"),
            lake.meta_path("export_rejects"),
        )
        for name, export in run.pipeline.exports.items()
        if run.only in (None, name, export.table)
    ]
    if not run.pipeline.exports:
        raise UsageError("the pipeline declares no exports", "declare them under exports:")
    if not targets:
        declared = ", ".join(sorted(run.pipeline.exports))
        raise UsageError(f"no export named {run.only!r}", f"exports: {declared}")
    return targets


def export_table(
    target: ExportTarget, settings: Settings, firehose: Any, leases: TableLeases | None = None
) -> TableOutcome:
    started = time.monotonic()
    current = version_and_id(target.path, settings)
    if current is None:
        return TableOutcome(target.label, "skipped", detail="not written yet")
    version, table_id = current
    check_query(target, settings)
    position = read_export_position(target.positions, target.name, settings)
    if position is None:
        position = ExportPosition(table_id)
    elif position.table_id != table_id:
        position = position.restarted(table_id)
    if position.window_to is None:
        if version <= position.delivered:
            return TableOutcome(target.label, "unchanged", detail=f"delivered up to v{version}")
        position = position.opened(version, target.definition)
        record_export_position(target.positions, target.name, position, settings)
    check_definition(target, position)
    records = window_records(target, settings, position)
    pending = [r for r in records if r[0] not in position.acked]
    tracker = PositionTracker(target, settings, position, leases)
    tracker.acknowledge(reject_oversized(target, settings, pending))
    sender = FirehoseSender(
        firehose,
        target.export.stream,
        target.export.max_attempts,
        interval_seconds(target.export.backoff),
    )
    sendable = [r for r in pending if r[0] not in tracker.position.acked]
    for batch in batches(sendable):
        unacked, error = sender.put(batch, tracker.acknowledge)
        if unacked:
            missing = len(records) - len(tracker.position.acked)
            raise ExportError(
                f"{missing} of {len(records)} records of versions {window(position)} not "
                f"delivered after {target.export.max_attempts} attempts ({error})",
                "run the export again: it sends only those",
                export=target.name,
                table=target.export.table,
                stream=target.export.stream,
                versions=window(position),
                undelivered=missing,
            )
    record_export_position(target.positions, target.name, tracker.position.closed(), settings)
    rejected = len(records) - len(sendable) - (len(records) - len(pending))
    return TableOutcome(
        target.label,
        "exported",
        rows_changed=len(sendable),
        seconds=time.monotonic() - started,
        detail=f"versions {window(position)}: {len(sendable)} records"
        + (f" ({len(records) - len(pending)} sent before)" if len(pending) < len(records) else "")
        + (f", {rejected} over 1,000 KiB kept in _meta/export_rejects" if rejected else ""),
    )


def window(position: ExportPosition) -> str:
    return f"{position.delivered + 1}..{position.window_to}"


class PositionTracker:
    """The export's position as records are acknowledged; each acknowledgement is recorded
    at once (one small delta-rs commit per Firehose call)."""

    def __init__(
        self,
        target: ExportTarget,
        settings: Settings,
        position: ExportPosition,
        leases: TableLeases | None = None,
    ):
        self.target, self.settings, self.position = target, settings, position
        self.leases = leases

    def acknowledge(self, ordinals: list[int]) -> None:
        """Called after each Firehose call with the records it acknowledged."""
        if self.leases is not None:
            self.leases.take(self.target.lease, EXPORT_HOLDER, EXPORT_LEASE_TTL_S)
        if not ordinals:
            return
        self.position = self.position.with_acked(ordinals)
        record_export_position(
            self.target.positions, self.target.name, self.position, self.settings
        )


def select_sql(target: ExportTarget, columns: list[str], source: str) -> str:
    export = target.export
    kinds = ", ".join(f"'{kind}'" for kind in export.changes)
    sql = (
        f"SELECT {', '.join(quoted(c) for c in columns)}, _change_type, _commit_version "
        f"FROM {source} WHERE _change_type IN ({kinds})"
    )
    return sql + (f" AND ({export.where})" if export.where else "")


def exported_columns(target: ExportTarget, available: list[str]) -> list[str]:
    wanted = target.export.columns or [c for c in available if c not in FEED_COLUMNS]
    missing = [c for c in wanted if c not in available]
    if missing:
        raise ConfigError(
            f"exports.{target.name}.columns: {', '.join(missing)} not in {target.export.table} "
            f"(its columns: {', '.join(c for c in available if c not in FEED_COLUMNS)})",
            key=f"exports.{target.name}.columns",
        )
    return wanted


def utc_connection() -> duckdb.DuckDBPyConnection:
    """A DuckDB connection that reads and prints times in UTC, whatever the host's zone:
    a window rebuilt on another machine must come out the same."""
    import duckdb

    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")
    return connection


def check_query(target: ExportTarget, settings: Settings) -> None:
    """Refuse, before sending anything, columns or a ``where`` the table cannot answer."""
    import duckdb
    import pyarrow as pa

    schema = open_delta_table(target.path, settings).schema().to_arrow()
    empty = pa.schema(schema).empty_table()
    for name in FEED_COLUMNS:
        kind = pa.string() if name == "_change_type" else pa.int64()
        empty = empty.append_column(name, pa.array([], kind))
    columns = exported_columns(target, empty.column_names)
    connection = utc_connection()
    connection.register("feed", empty)
    try:
        connection.execute(select_sql(target, columns, "feed") + " LIMIT 0")
    except duckdb.Error as exc:
        raise ConfigError(
            f"exports.{target.name}: {first_line(exc)}",
            f"columns and where name columns of {target.export.table}",
            key=f"exports.{target.name}",
        ) from None


def window_records(
    target: ExportTarget, settings: Settings, position: ExportPosition
) -> list[Record]:
    """The window's records, numbered in their fixed order: JSON lines of the exported
    columns with ``_change``, ``_version`` and ``_export_id``."""
    assert position.window_to is not None
    if position.delivered < 0:
        feed = first_window(target, settings, position.window_to)
    else:
        feed = change_feed(target, settings, position.delivered + 1, position.window_to)

    connection = utc_connection()
    connection.register("feed", feed)
    columns = exported_columns(target, feed.column_names)
    result = connection.execute(select_sql(target, columns, "feed"))
    names = [d[0] for d in result.description or []]
    rows = [dict(zip(names, values, strict=True)) for values in result.fetchall()]
    # Ordered by version, then the whole record as text: rows equal in every exported field
    # are interchangeable, so the order is the same however the feed was read.
    contents = sorted(
        (
            {c: json_value(row[c]) for c in columns}
            | {"_change": row["_change_type"], "_version": row["_commit_version"]}
            for row in rows
        ),
        key=lambda record: (record["_version"], json.dumps(record)),
    )
    return [
        (
            ordinal,
            (
                json.dumps(record | {"_export_id": export_id(target, position, ordinal)}) + "\n"
            ).encode(),
        )
        for ordinal, record in enumerate(contents)
    ]


def export_id(target: ExportTarget, position: ExportPosition, ordinal: int) -> str:
    return f"{target.name}:{window(position)}:{ordinal}"


def first_window(target: ExportTarget, settings: Settings, version: int) -> pa.Table:
    """A first export's window: the table as of ``version``, every row new. It needs no
    change data feed, so a table that had it switched on late exports from its start."""
    import pyarrow as pa

    table = open_delta_table(target.path, settings)
    table.load_as_version(version)
    rows = arrow_rows(table)
    rows = rows.append_column("_change_type", pa.array(["insert"] * rows.num_rows, pa.string()))
    return rows.append_column("_commit_version", pa.array([version] * rows.num_rows, pa.int64()))


def change_feed(target: ExportTarget, settings: Settings, first: int, last: int) -> pa.Table:
    import pyarrow as pa

    try:
        reader = open_delta_table(target.path, settings).load_cdf(
            starting_version=first, ending_version=last
        )
        return pa.table(reader.read_all())
    except Exception as exc:
        raise ExportError(
            f"the changes of versions {first}..{last} cannot be read: {first_line(exc)}",
            "the table needs its change data feed (ALTER TABLE ... SET TBLPROPERTIES "
            "(delta.enableChangeDataFeed = true)) from the last version exported on, and its "
            "change files kept (a VACUUM retention longer than the time between exports)",
            export=target.name,
            table=target.export.table,
            stream=target.export.stream,
        ) from exc


def reject_oversized(target: ExportTarget, settings: Settings, records: list[Record]) -> list[int]:
    """Keep records over Firehose's record limit in ``_meta/export_rejects`` with the reason
    (one commit); their ordinals, now accounted for."""
    import pyarrow as pa
    from deltalake import write_deltalake

    oversized = [(o, data) for o, data in records if len(data) > MAX_RECORD_BYTES]
    if not oversized:
        return []
    # A run that died between keeping them and recording their ordinals keeps them once.
    kept = read_rows(target.rejects, settings, columns=["export_id"])
    kept_ids = set(kept.column("export_id").to_pylist()) if kept is not None else set()
    new = [(o, d) for o, d in oversized if json.loads(d)["_export_id"] not in kept_ids]
    if not new:
        return [o for o, _data in oversized]
    accounted = [o for o, _data in oversized]
    oversized = new
    for ordinal, data in oversized:
        log.warning(
            "export %s: record %s is %s bytes, over Firehose's %s: kept in _meta/export_rejects",
            target.name,
            ordinal,
            len(data),
            MAX_RECORD_BYTES,
        )
    now = datetime.now(UTC)
    rows = pa.table(
        {
            "export": [target.name] * len(oversized),
            "table_name": [target.export.table] * len(oversized),
            "export_id": [json.loads(data)["_export_id"] for _o, data in oversized],
            "reason": [
                f"{len(d)} bytes, over Firehose's {MAX_RECORD_BYTES}" for _o, d in oversized
            ],
            "size_bytes": pa.array([len(d) for _o, d in oversized], pa.int64()),
            "record": [d.decode() for _o, d in oversized],
            "rejected_at": pa.array([now] * len(oversized), pa.timestamp("us", tz="UTC")),
        }
    )
    uri, options = delta_rs_location(target.rejects, settings)
    write_deltalake(uri, rows, mode="append", storage_options=options or None)
    return accounted
