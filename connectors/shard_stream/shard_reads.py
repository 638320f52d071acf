"""Reading one shard through its ShardApi, paced: GetRecords pages with expired iterators
renewed, trim checks, and an executor's read of a batch's range as Arrow record batches.
Used by the reader's driver probes and its executor reads alike."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pyspark.sql.datasource import InputPartition

from connectors.shard_stream.api import Page, ShardApi, SourceRecord
from connectors.shard_stream.calls import PacedCaller, error_code
from connectors.shard_stream.errors import data_loss
from connectors.shard_stream.offsets import TRIM_HORIZON, sequence_key
from streamlake.lake.tables import SOURCE_RECORD

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger(__name__)

# Empty pages in a row at a shard's tip after which a read stops waiting for more.
MAX_EMPTY_PAGES = 20


@dataclass(frozen=True)
class ShardRange(InputPartition):
    """One shard's records of a batch: after ``after`` (or from ``initial``) to ``end``;
    ``first`` is the range's first record as the driver saw it, if known."""

    shard_id: str
    after: str | None
    initial: str
    end: str
    first: str | None = None
    # The range's rows as the driver's probe fetched them, when it kept them: the executor
    # then reads nothing from the service. None: the executor reads the range.
    rows: tuple[SourceRecord, ...] | None = None


@dataclass(frozen=True)
class AcceptedGap:
    """An operator's one-shot acceptance of records lost on one shard: after ``after`` up
    to (not including) ``until``; spelled ``<stream>/<shard>/<after>..<until>``."""

    stream: str
    shard: str
    after: str
    until: str

    @classmethod
    def parse(cls, text: str) -> AcceptedGap:
        try:
            stream, shard, span = text.rsplit("/", 2)
            after, until = span.split("..")
            sequence_key(after), sequence_key(until)
        except ValueError:
            raise ValueError(
                f"{text!r} is not <stream>/<shard>/<after>..<until> with sequence numbers"
            ) from None
        return cls(stream, shard, after, until)

    @property
    def spelled(self) -> str:
        return f"{self.stream}/{self.shard}/{self.after}..{self.until}"

    def covers(self, stream: str, shard: str, after: str, first: str) -> bool:
        """Whether records lost after ``after`` and before ``first`` lie inside the gap."""
        if (self.stream, self.shard) != (stream, shard) or not after or not first:
            return False
        return sequence_key(self.after) <= sequence_key(after) and sequence_key(
            first
        ) <= sequence_key(self.until)


@dataclass
class ShardReads:
    api: ShardApi
    caller: PacedCaller
    page_limit: int
    accept_data_loss: bool
    accepted_gaps: tuple[AcceptedGap, ...] = ()
    # Driver only: shard -> (position, wall time) at which the shard had nothing after the
    # position. A later trim past that position took only consumed records if the time is
    # within the retention: records that arrived after it are younger than any trimmed.
    quiet: dict[str, tuple[str, float]] = field(default_factory=dict)
    _retention_s: float | None = None

    def cursor(
        self, shard_id: str, after: str | None, initial: str, expected_next: str | None = None
    ) -> ShardCursor:
        """Reads of the shard from just after ``after`` (or from ``initial``), checking on the
        way that ``after`` was not trimmed with unread records behind it."""
        return ShardCursor(self, shard_id, initial, after, expected_next)

    def at_tip(self, page: Page) -> bool:
        """Whether the page reached the shard's newest record when it was read.

        Kinesis says so with MillisBehindLatest 0 on a page that is not full; DynamoDB
        Streams has no such figure, so an empty page stands for it. Writers that never
        pause would otherwise keep the probe going forever."""
        if page.millis_behind is not None:
            return page.millis_behind == 0 and not page.full
        return not page.records

    def lag_ms(self, page: Page) -> int:
        """How far behind the shard's newest record a read is once it took ``page``.

        Kinesis says so (MillisBehindLatest); DynamoDB Streams does not, so it is the age of
        the page's last record, and 0 for an empty page (the read is at the tip)."""
        if page.millis_behind is not None:
            return max(0, int(page.millis_behind))
        if not page.records:
            return 0
        arrived = self.api.arrived_ms(page.records[-1])
        return 0 if arrived is None else max(0, int(time.time() * 1000) - arrived)

    def iterator_from(self, shard_id: str, after: str | None, initial: str) -> tuple[str, bool]:
        """An iterator at ``after`` (its first record must be ``after``: True) or, with no
        position, at ``initial`` (False). DynamoDB Streams refuses a trimmed position: the
        iterator then starts at the oldest record, once ``trimmed`` allowed it."""
        key = f"iterator:{shard_id}"
        if after is None:
            return self.caller.call(key, self.api.iterator, shard_id, None, initial), False
        try:
            return self.caller.call(key, self.api.iterator_at, shard_id, after), True
        except Exception as exc:
            if error_code(exc) != "TrimmedDataAccessException":
                raise
        oldest = self.caller.call(key, self.api.oldest_sequence, shard_id)
        self.trimmed(shard_id, after, oldest or "")
        return self.caller.call(key, self.api.iterator, shard_id, None, TRIM_HORIZON), False

    def trimmed(
        self, shard_id: str, after: str, first: str, expected_next: str | None = None
    ) -> None:
        """The shard no longer has ``after``; its oldest record is ``first``. Go on if only
        consumed records went (the record expected next is the oldest, or the shard was
        seen with nothing after ``after`` within the retention), or if the operator
        accepted the gap; otherwise stop: unread records may be gone."""
        stream = self.api.stream
        if expected_next is not None and first == expected_next:
            log.info("shard %s: consumed records up to %s were trimmed", shard_id, after)
            return
        seen = self.quiet.get(shard_id)
        if seen is not None and seen[0] == after and seen[1] > time.time() - self.retention_s():
            log.info("shard %s: trimmed past %s, which it had nothing after", shard_id, after)
            return
        for gap in self.accepted_gaps:
            if gap.covers(stream, shard_id, after, first):
                log.warning(
                    "shard %s: going on past records lost after %s (%s accepted)",
                    shard_id,
                    after,
                    gap.spelled,
                )
                return
        if self.accept_data_loss:
            log.warning("shard %s trimmed past %s; going on (accept_data_loss)", shard_id, after)
            return
        raise data_loss(
            stream,
            shard_id,
            after,
            first,
            f"the shard was trimmed past the checkpoint: records after {after} and before "
            f"{first or 'the end of the shard'} may be lost",
        )

    def retention_s(self) -> float:
        if self._retention_s is None:
            self._retention_s = self.caller.call("describe", self.api.retention_s)
        return self._retention_s

    # -- executors ----------------------------------------------------------------------

    def read_batches(self, part: ShardRange) -> Iterator[pa.RecordBatch]:
        """The range's records as raw-layer record batches, one per GetRecords page (or
        one batch of the rows the driver carried)."""
        if part.rows is not None:
            yield self.as_record_batch(list(part.rows))
            return
        for records in self.read_range(part):
            yield self.as_record_batch(records)

    def as_record_batch(self, records: list[SourceRecord]) -> pa.RecordBatch:
        import pyarrow as pa

        columns = [
            pa.array([r.payload for r in records], pa.binary()),
            pa.array([self.api.source] * len(records), pa.string()),
            pa.array([self.api.stream] * len(records), pa.string()),
            pa.array([r.partition for r in records], pa.string()),
            pa.array([r.position for r in records], pa.string()),
            pa.array([r.key for r in records], pa.string()),
            pa.array([r.event_ts for r in records], pa.timestamp("us", tz="UTC")),
        ]
        return pa.RecordBatch.from_arrays(columns, names=list(SOURCE_RECORD.names))

    def read_range(self, part: ShardRange) -> Iterator[list[SourceRecord]]:
        end_key = sequence_key(part.end)
        last = part.after
        empty = 0
        cursor = self.cursor(part.shard_id, part.after, part.initial, part.first)
        for page in cursor.pages():
            rows: list[SourceRecord] = []
            done = False
            for record in page.records:
                sequence = self.api.sequence_of(record)
                if sequence_key(sequence) > end_key:
                    # Past the end without meeting it: the end record is gone.
                    self.lost(
                        part, last, "the batch's end record is no longer in the shard", sequence
                    )
                    return
                rows.extend(self.api.to_rows(part.shard_id, record))
                last = sequence
                if sequence_key(sequence) == end_key:
                    done = True
                    break
            if rows:
                yield rows
            if done:
                return
            # The end record exists (the driver saw it): empty pages only delay, unless they
            # go on, which means the range was trimmed away under us.
            # Kinesis skips time gaps with empty pages that are still behind; only empty
            # pages at the tip count.
            at_tip = not page.records and page.millis_behind in (None, 0)
            empty = empty + 1 if at_tip else 0
            if empty >= MAX_EMPTY_PAGES:
                break
        self.lost(part, last, f"the shard ended before the batch's end {part.end}")

    def lost(self, part: ShardRange, last: str | None, why: str, found: str = "") -> None:
        gap = [
            g
            for g in self.accepted_gaps
            if g.covers(self.api.stream, part.shard_id, last or "", found)
        ]
        if gap:
            log.warning("shard %s: %s; going on (%s accepted)", part.shard_id, why, gap[0].spelled)
            return
        if self.accept_data_loss:
            log.warning("shard %s: %s; going on (accept_data_loss)", part.shard_id, why)
            return
        raise data_loss(
            self.api.stream,
            part.shard_id,
            last or "",
            found or part.end,
            f"{why}: records were trimmed or the shard deleted while the batch waited",
        )


@dataclass
class ShardCursor:
    """A position in one shard that pages move on: renews expired iterators after the last
    record given, and checks the first record read at a position is that position's own."""

    reads: ShardReads
    shard_id: str
    initial: str
    last: str | None
    expected_next: str | None = None
    iterator: str | None = None
    verify: str | None = None
    started: bool = False

    @property
    def ended(self) -> bool:
        """The shard is closed and was read to its end."""
        return self.started and self.iterator is None

    def pages(self, limit: Callable[[], int] | None = None) -> Iterator[Page]:
        """GetRecords pages from the position on, to the end of a closed shard or until the
        caller stops; records already consumed are left out. ``limit`` gives each call's
        record limit (the reads' page limit if None)."""
        api = self.reads.api
        if not self.started:
            self._start(self.last)
        while self.iterator is not None:
            try:
                size = self.reads.page_limit if limit is None else limit()
                page = self.reads.caller.call(self.shard_id, api.get_records, self.iterator, size)
            except Exception as exc:
                if error_code(exc) != "ExpiredIteratorException":
                    raise
                self._start(self.last)
                continue
            records = self._verified(page.records)
            if records:
                self.last = api.sequence_of(records[-1])
            self.iterator = page.next_iterator
            full = len(page.records) >= size
            yield Page(records, page.next_iterator, page.millis_behind, full)

    def _start(self, position: str | None) -> None:
        self.iterator, at_position = self.reads.iterator_from(self.shard_id, position, self.initial)
        self.verify = position if at_position else None
        self.started = True

    def _verified(self, records: list[Any]) -> list[Any]:
        if self.verify is None or not records:
            return records
        position, self.verify = self.verify, None
        first = self.reads.api.sequence_of(records[0])
        if first == position:
            return records[1:]
        self.reads.trimmed(self.shard_id, position, first, self.expected_next)
        return records
