"""The shard reader's planning and reading against an in-memory shard log.

A test double stands in for the service here because the local AWS API server can neither
throttle nor expire iterators; the same reader runs against it in the integration tests.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from connectors.shard_stream.api import Page, ShardInfo, SourceRecord
from connectors.shard_stream.errors import ShardStreamError, translate
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
    # Records GetRecords returned, over all calls.
    served: int = 0
    # Report MillisBehindLatest 0 on every page, as a burst written in one millisecond may.
    always_caught_up: bool = False

    def list_shards(self) -> list[ShardInfo]:
        return [ShardInfo(s, self.parents.get(s, ())) for s in self.shards]

    def iterator(self, shard_id: str, after: str | None, initial: str) -> str:
        records = self.shards[shard_id]
        start = self.trimmed_to.get(shard_id, 0)
        if after is not None:
            start = max(start, next(i + 1 for i, (seq, _) in enumerate(records) if seq == after))
        return f"{shard_id}:{start}"

    def iterator_at(self, shard_id: str, sequence: str) -> str:
        records = self.shards[shard_id]
        start = self.trimmed_to.get(shard_id, 0)
        at = next((i for i, (seq, _) in enumerate(records) if seq == sequence), start)
        return f"{shard_id}:{max(start, at)}"

    def retention_s(self) -> float:
        return 24 * 3600.0

    def arrived_ms(self, record: Any) -> int | None:
        return None

    def get_records(self, iterator: str, limit: int) -> Page:
        self.calls += 1
        if self.fail_next:
            raise ServiceError(self.fail_next.pop(0))
        shard_id, index = iterator.rsplit(":", 1)
        records = self.shards[shard_id]
        page = records[int(index) : int(index) + limit]
        end = int(index) + len(page)
        done = shard_id in self.closed and end >= len(records)
        behind = 0 if end >= len(records) or self.always_caught_up else 1000
        self.served += len(page)
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


def test_each_record_is_fetched_once_unless_a_batch_is_replayed() -> None:
    fake = FakeShards(shards={"a": log("a", 1, 7), "b": log("b", 1, 4)})
    reader = make_reader(fake)
    start, end = reader.initialOffset(), reader.latestOffset()
    assert fake.served == 11, "the probe fetched every record once"
    parts = reader.partitions(start, end)
    assert all(isinstance(p, ShardRange) and p.rows is not None for p in parts)
    assert sorted(read_all(reader, start, end)) == sorted(
        d for shard in ("a", "b") for _, d in fake.shards[shard]
    )
    assert fake.served == 11, "the executors read the rows the driver carried"
    # A restarted driver replaying the batch has no probe: the executors read the range.
    replayed = make_reader(fake)
    assert sorted(read_all(replayed, start, end)) == sorted(read_all(reader, start, end))
    assert fake.served == 22


def test_a_batch_too_big_to_carry_is_read_by_the_executors(monkeypatch: Any) -> None:
    from connectors.shard_stream import reader as reader_module

    monkeypatch.setattr(reader_module, "MAX_CARRIED_BYTES", 20)
    fake = FakeShards(shards={"a": log("a", 1, 6)})
    reader = make_reader(fake)
    start, end = reader.initialOffset(), reader.latestOffset()
    assert all(p.rows is None for p in reader.partitions(start, end))  # type: ignore[attr-defined]
    assert len(read_all(reader, start, end)) == 6
    assert fake.served == 12


def test_a_shard_too_big_to_carry_is_read_by_the_executors(monkeypatch: Any) -> None:
    from connectors.shard_stream import reader as reader_module

    monkeypatch.setattr(reader_module, "MAX_CARRIED_SHARD_BYTES", 600)
    fake = FakeShards(shards={"big": log("big", 1, 9), "small": log("small", 1, 1)})
    reader = make_reader(fake)
    start, end = reader.initialOffset(), reader.latestOffset()
    carried = {p.shard_id: p.rows is not None for p in reader.partitions(start, end)}  # type: ignore[attr-defined]
    assert carried == {"big": False, "small": True}
    assert len(read_all(reader, start, end)) == 10
    assert fake.served == 10 + 9, "only the big shard is read twice"


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
    # Read as after a restart (the executors fetch the range themselves).
    assert len(read_all(make_reader(fake), start, end)) == 7
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


def test_a_quiet_shard_trimmed_past_consumed_records_goes_on() -> None:
    """The shard had nothing after record 5 when the job last looked; retention then took
    records 1..5, all consumed. New records after that are read, with no data-loss stop."""
    fake = FakeShards(shards={"a": log("a", 1, 5)})
    reader = make_reader(fake)
    first = reader.latestOffset()
    assert StreamOffset.from_json(first).shards["a"].after == "5"
    fake.trimmed_to["a"] = 5
    fake.shards["a"] += log("a", 6, 3)
    fake.fail_next = ["ExpiredIteratorException"]  # the renewal starts from record 5 again
    second = StreamOffset.from_json(reader.latestOffset())
    assert second.shards["a"].after == "8"
    assert read_all(reader, first, second.to_json()) == [b"a-6", b"a-7", b"a-8"]


def test_the_quiet_evidence_survives_a_restart_through_the_checkpoint(tmp_path: Any) -> None:
    fake = FakeShards(shards={"a": log("a", 1, 5)})
    checkpoint = str(tmp_path / "checkpoint")
    make_reader(fake, checkpoint=checkpoint).latestOffset()  # saw the tip after record 5
    fake.trimmed_to["a"] = 5
    fake.shards["a"] += log("a", 6, 2)
    restarted = make_reader(fake, checkpoint=checkpoint)
    restarted._position = StreamOffset({"a": ShardState(after="5")})
    assert StreamOffset.from_json(restarted.latestOffset()).shards["a"].after == "7"
    without_evidence = make_reader(fake)
    without_evidence._position = StreamOffset({"a": ShardState(after="5")})
    with pytest.raises(ShardStreamError):
        without_evidence.latestOffset()


def test_a_page_cut_by_the_cap_is_not_taken_for_the_tip() -> None:
    """A full page (the cap's worth) says nothing about what follows it, whatever
    MillisBehindLatest says: it is no evidence that later trims took only consumed records."""
    fake = FakeShards(shards={"a": log("a", 1, 10)}, always_caught_up=True)
    reader = make_reader(fake, max_records_per_shard="3", page_limit="100")
    assert StreamOffset.from_json(reader.latestOffset()).shards["a"].after == "3"
    assert "a" not in reader.reads.quiet
    fake.trimmed_to["a"] = 6  # records 4..6, never read, are gone
    fake.fail_next = ["ExpiredIteratorException"]
    with pytest.raises(ShardStreamError) as caught:
        reader.latestOffset()
    assert (caught.value.data["lost_from"], caught.value.data["lost_to"]) == ("3", "7")


def test_an_accepted_gap_lets_one_named_loss_through() -> None:
    fake = FakeShards(shards={"a": log("a", 1, 10)})
    fake.trimmed_to["a"] = 6
    position = StreamOffset({"a": ShardState(after="3")})
    accepting = make_reader(fake, accepted_gaps=json.dumps(["fake/a/3..7"]))
    accepting._position = position
    assert StreamOffset.from_json(accepting.latestOffset()).shards["a"].after == "10"
    fake.trimmed_to["a"] = 8  # more went since the operator looked: not what was accepted
    again = make_reader(fake, accepted_gaps=json.dumps(["fake/a/3..7"]))
    again._position = position
    with pytest.raises(ShardStreamError) as caught:
        again.latestOffset()
    assert caught.value.data["lost_to"] == "9"
    assert "--accept-gap fake/a/3..9" in str(translate(str(caught.value)))


def test_an_executor_finding_its_range_start_trimmed_tells_consumed_from_lost() -> None:
    fake = FakeShards(shards={"a": log("a", 1, 10)})
    fake.trimmed_to["a"] = 3  # records 1..3 gone; the range is (3, 6], first record 4
    reader = make_reader(fake)
    rows = list(reader.read(ShardRange("a", "3", "TRIM_HORIZON", "6", first="4")))
    assert [r for batch in rows for r in batch.column("payload").to_pylist()] == [
        b"a-4",
        b"a-5",
        b"a-6",
    ]
    fake.trimmed_to["a"] = 4  # now record 4, unread, is gone too
    with pytest.raises(ShardStreamError) as caught:
        list(reader.read(ShardRange("a", "3", "TRIM_HORIZON", "6", first="4")))
    assert (caught.value.data["lost_from"], caught.value.data["lost_to"]) == ("3", "5")


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
    # The driver's reader holds a boto3 client for the stream at the configured endpoint...
    assert reader.api.stream == "s"
    assert reader.api.client.meta.endpoint_url == "http://127.0.0.1:9"  # type: ignore[attr-defined]
    copy = pickle.loads(pickle.dumps(reader))
    # ...which executors never receive: they build their own from the options.
    assert copy._api is None and copy.options == options
    assert copy.api.client is not reader.api.client  # type: ignore[attr-defined]
    assert copy.api.client.meta.endpoint_url == "http://127.0.0.1:9"  # type: ignore[attr-defined]


def test_the_offset_carries_each_shard_s_lag_and_stays_equal_while_nothing_moves() -> None:
    fake = FakeShards(shards={"a": log("a", 1, 10), "b": log("b", 1, 2)})
    reader = make_reader(fake, max_records_per_shard="4", page_limit="100")
    start, end = reader.initialOffset(), reader.latestOffset()
    # Shard a stopped at the cap with records after it; shard b read to its end.
    assert end["lag_ms"] == {"a": 1000, "b": 0}
    while end["shards"]["a"]["after"] != "10":
        reader.partitions(start, end)
        start, end = end, reader.latestOffset()
    assert end["lag_ms"] == {"a": 0, "b": 0}
    reader.partitions(start, end)
    # No new record: the very same offset, so Spark plans no batch.
    assert json.dumps(reader.latestOffset()) == json.dumps(end)
    # The lag is not part of the position.
    assert StreamOffset.from_json(end) == StreamOffset.from_json({**end, "lag_ms": {"a": 5}})


def test_a_dynamodb_shard_s_lag_is_the_age_of_the_last_record_read_until_the_tip() -> None:
    now_ms = int(datetime.now(UTC).timestamp() * 1000)

    class Aged(FakeShards):
        """DynamoDB Streams: no MillisBehindLatest; every record a minute old."""

        def arrived_ms(self, record: Any) -> int | None:
            return now_ms - 60_000

        def get_records(self, iterator: str, limit: int) -> Page:
            page = super().get_records(iterator, limit)
            return Page(page.records, page.next_iterator, None, page.full)

    reader = make_reader(Aged(shards={"a": log("a", 1, 8)}), max_records_per_shard="4")
    start, end = reader.initialOffset(), reader.latestOffset()
    while end["shards"]["a"]["after"] != "8":
        assert end["lag_ms"]["a"] >= 60_000
        reader.partitions(start, end)
        start, end = end, reader.latestOffset()
    assert end["lag_ms"]["a"] >= 60_000  # the cap ended the batch on the newest record
    reader.partitions(start, end)
    # The next probe finds an empty page, the tip: the position stays and the lag is 0,
    # worth one offset more; after it the offset stays the same.
    caught_up = reader.latestOffset()
    assert caught_up["lag_ms"]["a"] == 0
    assert caught_up["shards"] == end["shards"]
    reader.partitions(end, caught_up)
    assert json.dumps(reader.latestOffset()) == json.dumps(caught_up)
