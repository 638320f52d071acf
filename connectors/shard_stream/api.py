"""What a sharded change log must offer the generic reader."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol


@dataclass(frozen=True)
class ShardInfo:
    shard_id: str
    parent_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class SourceRecord:
    """One record as the raw layer stores it (the ingest columns are added later)."""

    payload: bytes
    partition: str
    position: str
    key: str | None
    event_ts: datetime | None


@dataclass(frozen=True)
class Page:
    """One GetRecords answer: the service's records, where to go on, how far behind."""

    records: list[Any]
    next_iterator: str | None
    millis_behind: int | None
    # The service returned as many records as asked for: more may be waiting.
    full: bool = False


class ShardApi(Protocol):
    source: str  # the raw layer's `source` value: kinesis or dynamodb
    stream: str  # the raw layer's `stream` value: stream or table name

    def list_shards(self) -> list[ShardInfo]: ...

    def iterator(self, shard_id: str, after: str | None, initial: str) -> str: ...

    def iterator_at(self, shard_id: str, sequence: str) -> str:
        """An iterator whose first record is ``sequence``, or the oldest record still there
        when ``sequence`` was trimmed (Kinesis; DynamoDB Streams raises instead)."""
        ...

    def retention_s(self) -> float:
        """How long the service keeps a record."""
        ...

    def get_records(self, iterator: str, limit: int) -> Page: ...

    def sequence_of(self, record: Any) -> str: ...

    def to_rows(self, shard_id: str, record: Any) -> list[SourceRecord]: ...

    def oldest_sequence(self, shard_id: str) -> str | None: ...

    def arrived_ms(self, record: Any) -> int | None:
        """When the service took the record in (epoch millis), None if it does not say."""
        ...
