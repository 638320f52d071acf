"""How far a streaming query trails its source, from a batch's progress: records behind the
latest Kafka offsets, time behind the newest Kinesis or DynamoDB Streams record, and the
versions and rows of a raw Delta table a process job has not read."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from streamlake.lake.delta_rs import Backlog

# Delta's offset index once a version is read to its end. Delta 4.2 was seen to move on to
# (next version, index -1) instead; the index is still understood should it be written.
DELTA_END_INDEX = 2**63 - 1
DELTA_SOURCE = re.compile(r"^DeltaSource\[(?P<path>.+)\]$")

# A raw table's path, its first unread version, and for a stream started from a snapshot of
# that version the index of the last snapshot file read -> its backlog (None: no table).
BacklogReader = Callable[[str, int, int | None], Backlog | None]


@dataclass(frozen=True)
class SourceLag:
    """One query's lag: ``records`` behind (Kafka offsets, unread raw rows), ``seconds``
    behind (the shard sources), ``versions`` (unread raw versions), and the detail per
    partition or shard (records or milliseconds, as the source counts)."""

    records: int | None = None
    seconds: float | None = None
    versions: int | None = None
    by_partition: dict[str, int] = field(default_factory=dict)

    def merged(self, other: SourceLag) -> SourceLag:
        return SourceLag(
            add(self.records, other.records),
            None
            if self.seconds is None and other.seconds is None
            else max(self.seconds or 0.0, other.seconds or 0.0),
            add(self.versions, other.versions),
            {**self.by_partition, **other.by_partition},
        )


def add(a: int | None, b: int | None) -> int | None:
    return None if a is None and b is None else (a or 0) + (b or 0)


def query_lag(sources: list[Any], backlog: BacklogReader | None = None) -> SourceLag:
    """The lag of every source of a query's progress, summed (records) or the worst (time)."""
    lag = SourceLag()
    for source in sources:
        lag = lag.merged(source_lag(source, backlog))
    return lag


def source_lag(source: Any, backlog: BacklogReader | None = None) -> SourceLag:
    end = parse(source.endOffset)
    if isinstance(end, dict) and "shards" in end:
        return shard_lag(end)
    if isinstance(end, dict) and "reservoirVersion" in end:
        found = DELTA_SOURCE.match(str(source.description or ""))
        if found is None or backlog is None:
            return SourceLag()
        return delta_lag(found["path"], end, backlog)
    return kafka_lag(source)


def parse(offset: str | None) -> Any:
    try:
        return json.loads(offset or "null")
    except ValueError:
        return None


def kafka_lag(source: Any) -> SourceLag:
    """Per partition: the latest offset minus the batch's end offset. A partition the batch
    did not reach yet (added since) is unread from its start."""
    end, latest = parse(source.endOffset), parse(source.latestOffset)
    if isinstance(end, dict) and isinstance(latest, dict):
        by_partition: dict[str, int] = {}
        for topic, partitions in latest.items():
            if not isinstance(partitions, dict):
                return SourceLag()
            for partition, offset in partitions.items():
                done = end.get(topic, {}).get(partition, 0)
                if not isinstance(offset, int) or not isinstance(done, int):
                    return SourceLag()
                by_partition[f"{topic}-{partition}"] = max(0, offset - done)
        return SourceLag(records=sum(by_partition.values()), by_partition=by_partition)
    metrics = dict(source.metrics or {})
    try:
        return SourceLag(records=int(float(metrics["maxOffsetsBehindLatest"])))
    except (KeyError, ValueError):
        return SourceLag()


def shard_lag(end: dict[str, Any]) -> SourceLag:
    """The shard sources put each shard's lag in milliseconds beside its position."""
    by_shard = {str(k): int(v) for k, v in (end.get("lag_ms") or {}).items()}
    if not by_shard:
        return SourceLag()
    return SourceLag(seconds=max(by_shard.values()) / 1000, by_partition=by_shard)


def delta_lag(path: str, end: dict[str, Any], backlog: BacklogReader) -> SourceLag:
    """The raw table's versions from the first one the batch did not finish. A version the
    batch read part of (maxFilesPerTrigger) counts whole, except the snapshot a stream
    started from, whose unread files are counted."""
    version, index = int(end["reservoirVersion"]), int(end.get("index", -1))
    if end.get("isStartingVersion") and index != DELTA_END_INDEX:
        found = backlog(path, version, index)  # started from the table as it was then
    else:
        found = backlog(path, version + 1 if index == DELTA_END_INDEX else version, None)
    if found is None:
        return SourceLag()
    return SourceLag(records=found.rows, versions=found.versions)
