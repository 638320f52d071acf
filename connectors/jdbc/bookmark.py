r"""A row version's place in a pull: its bookmark value as text whose order is the value's
order, then its key (``<bookmark>|<key>``, the raw ``position``; ``\`` and ``|`` inside a
key's values escaped, so two keys never read alike), and the lower bound of the next pull
(the highest bookmark pulled, less the overlap)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Literal

from streamlake.config.ddl import columns
from streamlake.config.pipeline import (
    INTEGER_BOOKMARKS,
    TIME_BOOKMARKS,
    JdbcSource,
    Table,
    interval_seconds,
)

if TYPE_CHECKING:
    from pyspark.sql import Column

BookmarkKind = Literal["timestamp", "date", "integer"]
# Fixed width, so that text order is time order (the session time zone is UTC).
TIMESTAMP_TEXT = "yyyy-MM-dd'T'HH:mm:ss.SSSSSS"
TIMESTAMP_PARSE = "%Y-%m-%dT%H:%M:%S.%f"
INTEGER_WIDTH = 20
# Integers are written offset by 2**63, so that negative ones sort below positive ones.
INTEGER_OFFSET = 2**63
SEPARATOR = "|"
LowerBound = datetime | date | int


@dataclass(frozen=True)
class Bookmark:
    """The bookmark column of one jdbc source and how its values are written."""

    column: str
    kind: BookmarkKind
    key: tuple[str, ...]
    overlap: str | int | None

    @classmethod
    def of(cls, source: JdbcSource, table: Table) -> Bookmark:
        declared = {name.lower(): kind.upper() for name, kind in columns(table.schema_ddl)}
        kind = declared[source.bookmark.lower()]
        named: BookmarkKind = (
            "date" if kind == "DATE" else "timestamp" if kind in TIME_BOOKMARKS else "integer"
        )
        assert kind in TIME_BOOKMARKS + INTEGER_BOOKMARKS  # the pipeline checks it
        return cls(source.bookmark, named, tuple(source.key), source.overlap)

    def text(self) -> Column:
        """The bookmark column as sortable text."""
        from pyspark.sql import functions as F

        value = F.col(self.column)
        if self.kind == "timestamp":
            return F.date_format(value.cast("timestamp"), TIMESTAMP_TEXT)
        if self.kind == "date":
            return F.date_format(value.cast("date"), "yyyy-MM-dd")
        offset = F.lit(str(INTEGER_OFFSET)).cast("decimal(20,0)")  # past a long: as text
        shifted = value.cast("decimal(20,0)") + offset
        return F.lpad(shifted.cast("string"), INTEGER_WIDTH, "0")

    def key_text(self) -> Column:
        r"""The key's values joined by ``|``, each with ``\`` and ``|`` escaped."""
        from pyspark.sql import functions as F

        def escaped(name: str) -> Column:
            text = F.regexp_replace(F.col(name).cast("string"), r"\\", r"\\\\")
            return F.regexp_replace(text, r"\|", r"\\|")

        return F.concat_ws(SEPARATOR, *[escaped(k) for k in self.key])

    def position(self) -> Column:
        from pyspark.sql import functions as F

        return F.concat(self.text(), F.lit(SEPARATOR), self.key_text())

    def value_of(self, position: str) -> LowerBound:
        """The bookmark value a raw ``position`` starts with."""
        text = position.split(SEPARATOR, 1)[0]
        if self.kind == "timestamp":
            return datetime.strptime(text, TIMESTAMP_PARSE).replace(tzinfo=UTC)
        if self.kind == "date":
            return date.fromisoformat(text)
        return int(text) - INTEGER_OFFSET

    def lower_bound(self, newest_position: str | None) -> LowerBound | None:
        """Where the next pull starts reading (inclusive): the newest bookmark pulled less
        the overlap; None (everything) before the first pull."""
        if newest_position is None:
            return None
        value = self.value_of(newest_position)
        if self.overlap is None:
            return value
        if isinstance(value, int):
            return value - int(self.overlap)
        delta = timedelta(seconds=interval_seconds(str(self.overlap)))
        if isinstance(value, datetime):
            return value - delta
        return value - timedelta(days=delta.days + (1 if delta.seconds else 0))

    def lower_text(self, bound: LowerBound) -> str:
        """``bound`` written as positions start, for comparing with them."""
        if isinstance(bound, datetime):
            return bound.astimezone(UTC).strftime(TIMESTAMP_PARSE)
        if isinstance(bound, date):
            return bound.isoformat()
        return str(bound + INTEGER_OFFSET).rjust(INTEGER_WIDTH, "0")
