"""Reading a jdbc source's new and changed rows as raw-layer records, through Spark's jdbc
data source (the filter on the bookmark goes to the database)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from connectors.jdbc.bookmark import Bookmark, LowerBound
from connectors.jdbc.endpoint import JdbcEndpoint
from streamlake.config.pipeline import JdbcSource
from streamlake.errors import JdbcError, SetupError, first_line
from streamlake.lake.tables import SOURCE_RECORD

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

SOURCE = "jdbc"
# A payload keeps timestamps to the microsecond, as the database has them.
JSON_OPTIONS = {"timestampFormat": "yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX"}
# The driver's own message, after the Java exception's class name.
DRIVER_MESSAGE = re.compile(r"(?:java\.\w+|org\.\w+)[\w.$]*(?:Exception|Error): (.+)")
UNREACHABLE = ("Connection to", "connection attempt failed", "UnknownHost", "timed out")


def read_changes(
    spark: SparkSession,
    source: JdbcSource,
    endpoint: JdbcEndpoint,
    bookmark: Bookmark,
    lower: LowerBound | None,
) -> DataFrame:
    """Rows whose bookmark is at least ``lower`` (all rows when None; never rows whose
    bookmark is null) as raw-layer records: ``payload`` the row as JSON, ``stream`` the
    table, ``partition`` empty, ``position`` ``<bookmark>|<key>``, ``key`` the key."""
    from pyspark.sql import functions as F

    try:
        rows = (
            spark.read.format("jdbc")
            .options(**endpoint.spark_options())
            .option("dbtable", source.table)
            .option("fetchsize", str(source.fetch_size))
            .load()
        )
    except Exception as exc:
        raise translate(exc, endpoint, source.table) from None
    present = {name.lower() for name in rows.columns}
    missing = [c for c in (*bookmark.key, bookmark.column) if c.lower() not in present]
    if missing:
        raise endpoint.error(
            f"has no column {', '.join(missing)}",
            "the source's key and bookmark must be columns of the database table",
            table=source.table,
        )
    wanted = F.col(bookmark.column).isNotNull()
    if lower is not None:
        wanted = wanted & (F.col(bookmark.column) >= F.lit(lower))
    changed = rows.where(wanted)
    event_ts = (
        F.col(bookmark.column).cast("timestamp")
        if bookmark.kind != "integer"
        else F.lit(None).cast("timestamp")
    )
    return changed.select(
        F.to_json(F.struct(*[F.col(c) for c in rows.columns]), JSON_OPTIONS)
        .cast("binary")
        .alias("payload"),
        F.lit(SOURCE).alias("source"),
        F.lit(source.table).alias("stream"),
        F.lit("").alias("partition"),
        bookmark.position().alias("position"),
        bookmark.key_text().alias("key"),
        event_ts.alias("event_ts"),
    ).select(*SOURCE_RECORD.names)


def translate(exc: Exception, endpoint: JdbcEndpoint, table: str) -> Exception:
    """A failed read as one line a user can act on."""
    text = str(exc)
    if "No suitable driver" in text or "ClassNotFoundException" in text:
        return SetupError(
            f"no JDBC driver for {endpoint.url}",
            "run `make setup`: Maven puts the PostgreSQL driver in .jars/spark",
        )
    match = DRIVER_MESSAGE.search(text)
    if match is None:
        return exc
    message = first_line(Exception(match.group(1)))
    if "password authentication failed" in message:
        return endpoint.error(message, "check the user and password of the connection", table=table)
    if any(sign in message for sign in UNREACHABLE):
        return endpoint.error(
            message, "is the database up and reachable from here?", table=table, retryable=True
        )
    return endpoint.error(message, table=table)


def error_of(exc: Exception, endpoint: JdbcEndpoint, table: str) -> JdbcError | None:
    """``exc`` translated when it is the database's, else None."""
    translated = translate(exc, endpoint, table)
    return translated if isinstance(translated, JdbcError) else None
