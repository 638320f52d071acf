"""Relational tables as a source kind: pulled in batches by `pull` jobs, never streamed.

Delivery: each row version (bookmark value and key) lands in raw exactly once, provided
the bookmark of a changed row moves forward and a row is committed no later than the
overlap after its bookmark value (see ``batch.pull``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from connectors.base import ErrorTranslator, Resource, Send, Sink, SourceKind, StreamRequest
from connectors.jdbc.database import UpsertSink
from connectors.jdbc.endpoint import jdbc_endpoint
from streamlake.config.pipeline import JdbcSource
from streamlake.config.settings import Settings
from streamlake.errors import UsageError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from connectors.aws import AwsEndpoint


class JdbcKind(SourceKind[JdbcSource]):
    kind = "jdbc"

    def resource_identity(self, source: JdbcSource) -> tuple[str, str]:
        return ("database table", f"{source.connection}:{source.table}")

    def resources(self, source: JdbcSource, settings: Settings, aws: AwsEndpoint) -> list[Resource]:
        """None: the database is the application's. The local PostgreSQL's database and
        tables are made by `local up` (``streamlake.local.database.database_resources``)."""
        return []

    def producer(
        self, source: JdbcSource, settings: Settings, aws: AwsEndpoint
    ) -> tuple[Send, Sink]:
        sink = UpsertSink(jdbc_endpoint(source.connection, settings), source.table, source.key)
        return sink.send, sink

    def open_stream(
        self, source: JdbcSource, request: StreamRequest
    ) -> tuple[DataFrame, ErrorTranslator]:
        raise UsageError(
            f"the jdbc table {source.table} is pulled, not streamed",
            "run its pull job: streamlake batch run <pull job>",
        )


JDBC = JdbcKind()
