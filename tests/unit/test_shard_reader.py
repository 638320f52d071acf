"""The shard reader's planning and reading against an in-memory shard log.

A test double stands in for the service here because the local AWS API server can neither
throttle nor expire iterators; the same reader runs against it in the integration tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from connectors.shard_stream.api import Page, ShardInfo, SourceRecord
from connectors.shard_stream.errors import ShardStreamError
from connectors.shard_stream.offsets import ShardState, StreamOffset
from connectors.shard_stream.reader import ShardRange, ShardStreamReader


class ServiceError(Exception):
    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.response = {"Error": {"Code": code}}


@dataclass
class FakeShards:
    """Shards as lists of (sequence, data); iterators are 'shard:index' strings."""

    source: str = "kinesis"
    stream: str = "fake"
    shards: dict[str, list[tuple[str, bytes]]] = field(default_factory=dict)
    parents: dict[str, tuple[str, ...]] = field(default_factory=dict)
    closed: set[str] = field(default_factory=set)
    trimmed_to: dict[str, int] = field(default_factory=dict)
    fail_next: list[str] = field(default_factory=list)
    calls: int = 0

    def list_shards(self) -> list[ShardInfo]:
        return [ShardInfo(s, self.parents.get(s, ())) for s in self.shards]

    def iterator(self, shard_id: str, after: str | None, initial: str) -> str:
        records = self.shards[shard_id]
        start = self.trimmed_to.get(shard_id, 0)
        if after is not None:
            start = max(start, next(i + 1 for i, (seq, _) in enumerate(records) if seq == after))
        return f"{shard_id}:{start}"

    def get_records(self, iterator: str, limit: int) -> Page:
        self.calls += 1
        if self.fail_next:
            raise ServiceError(self.fail_next.pop(0))
        shard_id, index = iterator.rsplit(":", 1)
        records = self.shards[shard_id]
        page = records[int(index) : int(index) + limit]
        end = int(index) + len(page)
        done = shard_id in self.closed and end >= len(records)
        behind = 0 if end >= len(records) else 1000
        return Page(page, None if done else f"{shard_id}:{end}", behind)

    def sequence_of(self, record: Any) -> str:
        return str(record[0])

    def to_rows(self, shard_id: str, record: Any) -> list[SourceRecord]:
        return [SourceRecord(record[1], shard_id, record[0], None, datetime.now(UTC))]

    def oldest_sequence(self, shard_id: str) -> str | None:
        records = self.shards[shard_id][self.trimmed_to.get(shard_id, 0) :]
        return records[0][0] if records else None


def make_reader(fake: FakeShards, **options: str) -> ShardStreamReader:
    base = {"min_call_interval_s": "0", "page_limit": "3", **options}
    return ShardStreamReader(base, lambda _options: fake)


def log(shard: str, first: int, count: int) -> list[tuple[str, bytes]]:
    return [(str(n), f"{shard}-{n}".encode()) for n in range(first, first + count)]


def read_all(reader: ShardStreamReader, start: dict[str, Any], end: dict[str, Any]) -> list[bytes]:
    data = []
    for part in reader.partitions(start, end):
        for batch in reader.read(part):
            data.extend(batch.column("payload").to_pylist())
    return data


def test_batches_cover_every_record_once_as_the_log_grows() -> None:
    fake = FakeShards(shards={"a": log("a", 1, 5), "b": log("b", 1, 2)})
    reader = make_reader(fake)
    start = reader.initialOffset()
    first_end = reader.latestOffset()
    first = read_all(reader, start, first_end)
    fake.shards["a"] += log("a", 6, 4)
    second_end = reader.latestOffset()
    second = read_all(reader, first_end, second_end)
    assert sorted(first + second) == sorted(
        [d for _, d in fake.shards["a"]] + [d for _, d in fake.shards["b"]]
    )
    assert not set(first) & set(second)


def test_a_replayed_batch_reads_the_same_records() -> None:
    fake = FakeShards(shards={"a": log("a", 1, 6)})
    reader = make_reader(fake)
    start, end = reader.initialOffset(), reader.latestOffset()
    fake.shards["a"] += log("a", 7, 3)  # arrives after the batch was fixed
    assert read_all(reader, start, end) == read_all(make_reader(fake), start, end)
    assert len(read_all(reader, start, end)) == 6


def test_children_wait_until_their_closed_parent_is_read_to_the_end() -> None:
    fake = FakeShards(
        shards={"parent": log("p", 1, 4), "left": log("l", 1, 2), "right": log("r", 1, 2)},
        parents={"left": ("parent",), "right": ("parent",)},
    )
    reader = make_reader(fake)
    start = reader.initialOffset()
    open_parent = StreamOffset.from_json(reader.latestOffset())
    assert open_parent.shards["left"].after is None  # parent still open: children wait
    fake.closed.add("parent")
    end = StreamOffset.from_json(reader.latestOffset())
    assert end.shards["parent"].finished
    assert end.shards["left"].after == "2" and end.shards["right"].after == "2"
    assert len(read_all(reader, start, end.to_json())) == 8


def test_throttling_and_expired_iterators_are_retried() -> None:
    fake = FakeShards(shards={"a": log("a", 1, 7)})
    reader = make_reader(fake)
    start = reader.initialOffset()
    end = reader.latestOffset()
    fake.fail_next = ["ProvisionedThroughputExceededException", "ExpiredIteratorException"]
    assert len(read_all(reader, start, end)) == 7
    assert fake.fail_next == []


def test_a_shard_trimmed_past_the_checkpoint_is_data_loss_unless_accepted() -> None:
    fake = FakeShards(shards={"a": log("a", 1, 10)})
    offset = StreamOffset({"a": ShardState(after="3")}).to_json()
    fake.trimmed_to["a"] = 6  # records 4..6 are gone
    reader = make_reader(fake)
    reader._position = StreamOffset.from_json(offset)
    with pytest.raises(ShardStreamError) as caught:
        reader.latestOffset()
    assert caught.value.data["partition"] == "a"
    assert (caught.value.data["lost_from"], caught.value.data["lost_to"]) == ("3", "7")
    accepting = make_reader(fake, accept_data_loss="true")
    accepting._position = StreamOffset.from_json(offset)
    assert StreamOffset.from_json(accepting.latestOffset()).shards["a"].after == "10"


def test_an_executor_that_cannot_find_the_batch_end_fails_loudly() -> None:
    fake = FakeShards(shards={"a": log("a", 1, 3)})
    fake.closed.add("a")
    reader = make_reader(fake)
    with pytest.raises(ShardStreamError) as caught:
        list(reader.read(ShardRange("a", None, "TRIM_HORIZON", "9")))
    assert caught.value.data["kind"] == "data_loss"


def test_the_reader_pickles_without_its_clients() -> None:
    import pickle

    from connectors.kinesis.source import kinesis_shards

    options = {"stream": "s", "region": "us-east-1", "endpoint_url": "http://127.0.0.1:9"}
    reader = ShardStreamReader(options, kinesis_shards)
    assert reader.api is not None  # a boto3 client now hangs off the reader
    copy = pickle.loads(pickle.dumps(reader))
    assert copy._api is None and copy.options == options
