"""SQL over lake tables named ``layer.table``, answered by DuckDB over delta-rs reads: the
local stand-in for Athena. No Spark, no DuckDB extension, no file outside the lake.

Each table a query names is opened with delta-rs as a lazy Arrow dataset (DuckDB pushes
filters and projections into it, so partitions a filter excludes are not read) and shown
to DuckDB as a view ``<layer>.<table>``; only the tables the query names are opened.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streamlake.config.pipeline import Pipeline
from streamlake.config.settings import Settings
from streamlake.errors import StreamlakeError, UsageError, first_line
from streamlake.lake.delta_rs import delta_table_exists, open_delta_table
from streamlake.lake.tables import CURATED, LAYERS, META_TABLES

if TYPE_CHECKING:
    import duckdb
    from deltalake import DeltaTable

log = logging.getLogger(__name__)

META = "_meta"
# Who writes a `_meta` table first, for the error a query of one not written yet gives.
META_WRITERS = {
    "input_versions": "the curate job",
    "cdc_tombstones": "the curate job",
    "quality_results": "the quality job",
}


@dataclass(frozen=True)
class LakeTable:
    """A table of the lake: its layer (or `_meta`), name and location."""

    layer: str
    name: str
    path: str

    @property
    def qualified(self) -> str:
        return f"{self.layer}.{self.name}"


@dataclass(frozen=True)
class QueryResult:
    """A query's answer: column names, DuckDB type names, and rows as Python values
    (Decimal, date, datetime, bytes, lists and dicts for nested columns)."""

    columns: tuple[str, ...]
    types: tuple[str, ...]
    rows: list[tuple[Any, ...]]
    # True when the query had more rows than ``max_rows`` asked for.
    truncated: bool = False

    def records(self) -> list[dict[str, Any]]:
        """The rows as JSON-ready objects (see ``json_value``); a repeated column name
        gets a suffix (`a`, `a_1`) so that no value is lost."""
        keys = unique_names(self.columns)
        return [{k: json_value(v) for k, v in zip(keys, row, strict=True)} for row in self.rows]

    def text_rows(self) -> list[list[str]]:
        """The rows as text cells (see ``text_value``), for CSV and printed tables."""
        return [[text_value(v) for v in row] for row in self.rows]


def run_query(
    sql: str, pipeline: Pipeline, settings: Settings, max_rows: int | None = None
) -> QueryResult:
    """Run one SQL statement over the lake's tables; at most ``max_rows`` rows if given.

    Raises UsageError (exit 2) for an unknown table, a table with no data yet, and a
    statement DuckDB cannot parse or bind; StreamlakeError (exit 1) when a table cannot
    be read."""
    connection = connect()
    try:
        check_one_statement(connection, sql)
        known = lake_tables(pipeline, settings)
        tables = referenced_tables(sql, known, settings)
        for table in tables:
            expose(connection, table, pipeline, settings)
        log.debug("query over %s", ", ".join(t.qualified for t in tables) or "no lake table")
        return execute(connection, sql, max_rows, QueryTables(tables, known, settings))
    finally:
        connection.close()


def connect() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB that reads only what it is handed: no extension is installed or
    loaded, no file is read or written, and a statement cannot undo that."""
    import duckdb

    connection = duckdb.connect(
        config={
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
            "enable_external_access": False,
        }
    )
    # Timestamps print in UTC, as Spark writes them, whatever the machine's zone.
    connection.execute("SET TimeZone = 'UTC'")
    connection.execute("SET lock_configuration = true")
    return connection


def check_one_statement(connection: duckdb.DuckDBPyConnection, sql: str) -> None:
    """DuckDB's own parser is the judge of syntax; one statement, whose rows are printed."""
    import duckdb

    try:
        statements = connection.extract_statements(sql)
    except duckdb.Error as exc:
        raise UsageError(first_line(exc)) from None
    if len(statements) != 1:
        raise UsageError(f"one SQL statement at a time, got {len(statements)}")


def lake_tables(pipeline: Pipeline, settings: Settings) -> dict[str, LakeTable]:
    """The tables a query may name, by lower-case qualified name (DuckDB's names are
    case-insensitive): those the pipeline declares and those found under a local root."""
    tables = {t.qualified.lower(): t for t in declared_tables(pipeline, settings)}
    for table in found_tables(settings):
        tables.setdefault(table.qualified.lower(), table)
    return tables


def declared_tables(pipeline: Pipeline, settings: Settings) -> list[LakeTable]:
    """The lake tables the pipeline declares, ``_meta`` included."""
    lake = settings.lake
    declared = [
        LakeTable(layer, name, lake.table_path(layer, name))
        for layer, name in pipeline.lake_table_names()
    ]
    return declared + [LakeTable(META, name, lake.meta_path(name)) for name in META_TABLES]


def found_tables(settings: Settings) -> list[LakeTable]:
    """Delta tables under a local lake root. An S3 root is not listed: there, a query
    reaches the tables the pipeline declares."""
    root = settings.lake.root
    if root.startswith(("s3a://", "s3://")):
        return []
    found = []
    for layer in (*LAYERS, META):
        folder = Path(root.removeprefix("file:")) / layer
        if not folder.is_dir():
            continue
        for child in sorted(folder.iterdir()):
            # Folders without a Delta log (`_meta/leases`) are not tables.
            if (child / "_delta_log").is_dir():
                found.append(LakeTable(layer, child.name, str(child)))
    return found


def referenced_tables(sql: str, known: dict[str, LakeTable], settings: Settings) -> list[LakeTable]:
    """The lake tables ``sql`` names; UsageError naming the first it names that the lake
    does not hold. Names outside the layers (a CTE, DuckDB's own views) are DuckDB's."""
    names = named_tables(sql)
    if names is None:
        # A statement sqlglot cannot read: open the lake tables its text mentions, and
        # leave any other name to DuckDB's binder.
        text = sql.lower()
        return [t for _, t in sorted(known.items()) if mentioned(t, text)]
    tables = []
    for layer, name in names:
        if layer.lower() not in (*LAYERS, META):
            continue
        table = known.get(f"{layer}.{name}".lower())
        if table is None:
            raise UsageError(f"no table {layer}.{name} in the lake", listing(known, settings))
        if table not in tables:
            tables.append(table)
    return tables


def named_tables(sql: str) -> list[tuple[str, str]] | None:
    """(layer or schema, table) of each table reference, CTEs left out; None when sqlglot
    cannot read the statement (DuckDB's grammar is wider than sqlglot's)."""
    from sqlglot import exp

    trees = sqlglot_trees(sql)
    # sqlglot keeps what it cannot read (EXPLAIN, SHOW) as an opaque Command.
    if trees is None or any(isinstance(tree, exp.Command) for tree in trees):
        return None
    ctes = {cte.alias_or_name.lower() for tree in trees for cte in tree.find_all(exp.CTE)}
    names = []
    for tree in trees:
        for table in tree.find_all(exp.Table):
            if not isinstance(table.this, exp.Identifier):
                continue  # a table function: range(3), read_parquet(...)
            if not table.db and table.name.lower() in ctes:
                continue
            names.append((table.db, table.name))
    return names


def sqlglot_trees(sql: str) -> list[Any] | None:
    import sqlglot
    from sqlglot.errors import SqlglotError

    sqlglot_log = logging.getLogger("sqlglot")
    level = sqlglot_log.level
    # Its warning about falling back to a Command is ours to handle, not the user's to read.
    sqlglot_log.setLevel(logging.ERROR)
    try:
        return [tree for tree in sqlglot.parse(sql, read="duckdb") if tree is not None]
    except SqlglotError as exc:
        log.debug("sqlglot cannot parse the query (%s): looking for table names in its text", exc)
        return None
    finally:
        sqlglot_log.setLevel(level)


def mentioned(table: LakeTable, text: str) -> bool:
    """Whether ``text`` (lower case) names ``table`` as layer.table, quoted or not."""
    layer, name = re.escape(table.layer.lower()), re.escape(table.name.lower())
    pattern = rf'(?<![\w.]){layer}"?\s*\.\s*"?{name}(?![\w.-])'
    return re.search(pattern, text) is not None


def expose(
    connection: duckdb.DuckDBPyConnection, table: LakeTable, pipeline: Pipeline, settings: Settings
) -> DeltaTable:
    """Show ``table`` to DuckDB as the view ``<layer>.<table>`` over a lazy Arrow dataset
    of its current version; returns the table as opened, whose ``version()`` is the
    version the view reads however the table changes meanwhile."""
    if not delta_table_exists(table.path, settings):
        raise UsageError(no_data_yet(table, pipeline))
    snapshot, dataset = open_dataset(table, settings)
    registered = registered_name(table)
    connection.register(registered, dataset)
    connection.execute(f"CREATE SCHEMA IF NOT EXISTS {quoted(table.layer)}")
    connection.execute(f"CREATE VIEW {view_name(table)} AS SELECT * FROM {quoted(registered)}")
    return snapshot


def view_name(table: LakeTable) -> str:
    """The quoted name ``expose`` shows ``table`` under."""
    return f"{quoted(table.layer)}.{quoted(table.name)}"


def registered_name(table: LakeTable) -> str:
    return f"__lake_{table.layer}_{table.name}"


def open_dataset(table: LakeTable, settings: Settings) -> tuple[DeltaTable, Any]:
    """The table's current version and a lazy Arrow dataset of exactly that version."""
    from deltalake.exceptions import DeltaError

    try:
        snapshot = open_delta_table(table.path, settings)
        return snapshot, snapshot.to_pyarrow_dataset()
    except DeltaError as exc:
        # A table feature delta-rs cannot read yet (deletion vectors, say), or a broken log.
        raise StreamlakeError(
            f"{table.qualified} at {table.path} cannot be read: {first_line(exc)}"
        ) from None


def no_data_yet(table: LakeTable, pipeline: Pipeline) -> str:
    """What to run so that a declared table gets its first commit."""
    start = f"{table.qualified} has no data yet"
    if table.layer == META:
        return f"{start}: run {META_WRITERS.get(table.name, 'a process job')}"
    if table.layer == CURATED:
        return f"{start}: run the curate job"
    if table.layer == "raw":
        return f"{start}: run the ingest job {pipeline.ingest_job_of(table.name) or ''}".strip()
    inline = pipeline.inline_process_job_of(table.name)
    job = (
        f"ingest job {pipeline.ingest_job_of(table.name)} (it processes inline)"
        if inline
        else f"process job {process_job_of(pipeline, table.name)}".strip()
    )
    if table.layer == "quarantine":
        return f"{start}: nothing has been quarantined (the {job} writes it)"
    return f"{start}: run the {job}"


def process_job_of(pipeline: Pipeline, table: str) -> str:
    return next(
        (n for n, j in pipeline.jobs.items() if j.kind == "process" and j.table == table), ""
    )


@dataclass(frozen=True)
class QueryTables:
    """What an error of the query is told in terms of: the tables it reads, the lake's."""

    read: list[LakeTable]
    known: dict[str, LakeTable]
    settings: Settings


def execute(
    connection: duckdb.DuckDBPyConnection, sql: str, max_rows: int | None, tables: QueryTables
) -> QueryResult:
    import duckdb

    try:
        cursor = connection.execute(sql)
        description = cursor.description or []
        if max_rows is None:
            rows, truncated = cursor.fetchall(), False
        else:
            rows = cursor.fetchmany(max_rows + 1)
            rows, truncated = rows[:max_rows], len(rows) > max_rows
    except duckdb.Error as exc:
        raise query_error(exc, tables) from None
    return QueryResult(
        columns=tuple(str(column[0]) for column in description),
        types=tuple(str(column[1]) for column in description),
        rows=rows,
        truncated=truncated,
    )


def query_error(exc: Exception, tables: QueryTables) -> StreamlakeError:
    """One line: bad usage when the statement is at fault, a failure when reading is."""
    import duckdb

    message = first_line(exc)
    for table in tables.read:
        if registered_name(table) in message:
            # The Arrow scan failed (a file gone, S3 unreachable): not the statement's fault.
            detail = message.split(" failed: ", 1)[-1]
            return StreamlakeError(f"reading {table.qualified} at {table.path} failed: {detail}")
    if isinstance(exc, duckdb.CatalogException):
        return UsageError(message, listing(tables.known, tables.settings))
    if isinstance(exc, duckdb.ProgrammingError | duckdb.DataError | duckdb.PermissionException):
        # The statement's own fault: a name it binds, a value it casts, a file it reads.
        return UsageError(message)
    return StreamlakeError(f"the query failed: {message}")


def listing(known: dict[str, LakeTable], settings: Settings) -> str:
    """The tables a query can read now, for an error's hint."""
    existing = sorted(t.qualified for t in known.values() if delta_table_exists(t.path, settings))
    return f"tables: {', '.join(existing) or 'none yet'}"


def quoted(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def unique_names(names: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    unique = []
    for name in names:
        candidate, n = name, 0
        while candidate in seen:
            n += 1
            candidate = f"{name}_{n}"
        seen.add(candidate)
        unique.append(candidate)
    return unique


def json_value(value: Any) -> Any:
    """A value as JSON: decimals as strings (exact), dates and times ISO 8601, binary as
    base64, NaN and infinities as the strings "NaN", "Infinity", "-Infinity"."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        return value if math.isfinite(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, list | tuple):
        return [json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    return scalar_text(value)


def text_value(value: Any) -> str:
    """A value as one text cell: empty for null, booleans lower-case, nested values as
    JSON, otherwise as in ``json_value``."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list | tuple | dict):
        return json.dumps(json_value(value), ensure_ascii=False)
    if isinstance(value, str | int | float):
        return str(value)
    return scalar_text(value)


def scalar_text(value: Any) -> str:
    if isinstance(value, Decimal):
        return format(value, "f")  # never an exponent (0E-10)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    return str(value)
