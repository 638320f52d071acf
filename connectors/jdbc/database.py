"""Writing to a jdbc source's PostgreSQL database with psycopg: the table a pipeline table
declares (for the local database), and the rows `produce` inserts and updates."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from connectors.jdbc.endpoint import JdbcEndpoint
from streamlake.config.ddl import columns

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger(__name__)

# Spark SQL type -> PostgreSQL type, for the columns a table declares.
PG_TYPES = {
    "STRING": "text",
    "BOOLEAN": "boolean",
    "TINYINT": "smallint",
    "SMALLINT": "smallint",
    "INT": "integer",
    "INTEGER": "integer",
    "BIGINT": "bigint",
    "LONG": "bigint",
    "FLOAT": "real",
    "DOUBLE": "double precision",
    "DATE": "date",
    "TIMESTAMP": "timestamp with time zone",
    "TIMESTAMP_NTZ": "timestamp",
    "BINARY": "bytea",
}
DECIMAL = re.compile(r"^DECIMAL\((\d+),\s*(\d+)\)$")


def pg_type(spark_type: str) -> str:
    upper = spark_type.upper()
    decimal = DECIMAL.match(upper)
    if decimal:
        return f"numeric({decimal.group(1)},{decimal.group(2)})"
    if upper in PG_TYPES:
        return PG_TYPES[upper]
    return "jsonb"  # arrays, maps, structs: kept as JSON, read back as text


def quoted(name: str) -> str:
    """``schema.table`` or ``column`` as a quoted identifier."""
    return ".".join('"' + part.replace('"', '""') + '"' for part in name.split("."))


def table_ddl(table: str, schema_ddl: str, key: list[str], bookmark: str) -> str:
    """CREATE TABLE for the columns ``schema_ddl`` declares, keyed on ``key``, with the
    bookmark not null (a row without one would never be pulled)."""
    declared = [
        f"{quoted(name)} {pg_type(kind)}"
        + (" not null" if name.lower() in {bookmark.lower(), *(k.lower() for k in key)} else "")
        for name, kind in columns(schema_ddl)
    ]
    index = f"create index if not exists {quoted(table.split('.')[-1] + '_' + bookmark)} on "
    return (
        f"create table if not exists {quoted(table)} ("
        + ", ".join([*declared, f"primary key ({', '.join(quoted(k) for k in key)})"])
        + f"); {index}{quoted(table)} ({quoted(bookmark)})"
    )


@contextmanager
def connected(endpoint: JdbcEndpoint, database: str | None = None) -> Iterator[psycopg.Connection]:
    import psycopg

    info = endpoint.conninfo()
    if database is not None:
        info["dbname"] = database
    try:
        connection = psycopg.connect(**info, autocommit=True)  # type: ignore[arg-type]
    except psycopg.OperationalError as exc:
        message = (str(exc).strip().splitlines() or [type(exc).__name__])[-1]
        raise endpoint.error(message, retryable="password" not in message) from None
    with connection:
        yield connection


def table_exists(endpoint: JdbcEndpoint, table: str) -> bool:
    with connected(endpoint) as db:
        row = db.execute("select to_regclass(%s)", (table,)).fetchone()
    return row is not None and row[0] is not None


def ensure_table(
    endpoint: JdbcEndpoint, table: str, schema_ddl: str, key: list[str], bookmark: str
) -> bool:
    if table_exists(endpoint, table):
        return False
    with connected(endpoint) as db:
        db.execute(table_ddl(table, schema_ddl, key, bookmark).encode())
    return True


def database_exists(endpoint: JdbcEndpoint, name: str) -> bool:
    with connected(endpoint, "postgres") as db:
        row = db.execute("select 1 from pg_database where datname = %s", (name,)).fetchone()
    return row is not None


def ensure_database(endpoint: JdbcEndpoint, name: str) -> bool:
    if database_exists(endpoint, name):
        return False
    with connected(endpoint, "postgres") as db:
        db.execute(f"create database {quoted(name)}".encode())
    return True


# A row waits at most this long for its commit: its bookmark (stamped when it was made) must
# not fall further behind its commit than a pull's overlap.
MAX_WAIT_S = 1.0


class UpsertSink:
    """`produce` into a database table: each event's ``item`` inserted, or the row with its
    key updated (a new row version); committed every ``batch`` rows, or sooner once the
    oldest waiting row has waited ``MAX_WAIT_S``."""

    def __init__(self, endpoint: JdbcEndpoint, table: str, key: list[str], batch: int = 200):
        self.endpoint = endpoint
        self.table = table
        self.key = key
        self.batch = batch
        self.sent = 0
        self.acked = 0
        self.pending: list[dict[str, Any]] = []
        self._waiting_since = 0.0
        self._context: Any = None
        self._connection: Any = None

    def send(self, event: Any) -> None:
        if event.item is None:
            return
        if not self.pending:
            self._waiting_since = time.monotonic()
        self.pending.append(event.item)
        self.sent += 1
        waited = time.monotonic() - self._waiting_since
        if len(self.pending) >= self.batch or waited >= MAX_WAIT_S:
            self.flush()

    def statement(self, names: list[str]) -> bytes:
        updates = [n for n in names if n not in self.key]
        change = (
            "do update set " + ", ".join(f"{quoted(n)} = excluded.{quoted(n)}" for n in updates)
            if updates
            else "do nothing"
        )
        return (
            f"insert into {quoted(self.table)} ({', '.join(quoted(n) for n in names)}) "
            f"values ({', '.join(['%s'] * len(names))}) "
            f"on conflict ({', '.join(quoted(k) for k in self.key)}) {change}"
        ).encode()

    def flush(self) -> None:
        if not self.pending:
            return
        if self._connection is None:
            self._context = connected(self.endpoint)
            self._connection = self._context.__enter__()
        names = list(self.pending[0])
        with self._connection.transaction(), self._connection.cursor() as cursor:
            cursor.executemany(
                self.statement(names), [[row.get(n) for n in names] for row in self.pending]
            )
        self.acked += len(self.pending)
        self.pending = []

    def close(self) -> None:
        if self._connection is not None:
            self._context.__exit__(None, None, None)
            self._connection = None
