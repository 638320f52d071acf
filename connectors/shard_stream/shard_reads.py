"""Reading one shard through its ShardApi, paced: GetRecords pages with expired iterators
renewed, trim checks, and an executor's read of a batch's range as Arrow record batches.
Used by the reader's driver probes and its executor reads alike."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pyspark.sql.datasource import InputPartition

from connectors.shard_stream.api import Page, ShardApi, SourceRecord
from connectors.shard_stream.calls import PacedCaller, error_code
from connectors.shard_stream.errors import data_loss
from connectors.shard_stream.offsets import TRIM_HORIZON, ShardState, sequence_key
from streamlake.lake.tables import SOURCE_RECORD

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger(__name__)

# Empty pages in a row at a shard's tip after which a read stops waiting for more.
MAX_EMPTY_PAGES = 20


@dataclass(frozen=True)
class ShardRange(InputPartition):
    """One shard's records of a batch: after ``after`` (or from ``initial``) to ``end``."""

    shard_id: str
    after: str | None
    initial: str
    end: str


@dataclass
class ShardReads:
    api: ShardApi
    caller: PacedCaller
    page_limit: int
    accept_data_loss: bool

    def pages(
        self, shard_id: str, iterator: str | None, after: str | None, initial: str
    ) -> Iterator[Page]:
        """GetRecords pages from ``iterator`` to the end of a closed shard (or until the caller
        stops); an expired iterator is renewed after the last record already given."""
        last = after
        while iterator is not None:
            try:
                page = self.caller.call(shard_id, self.api.get_records, iterator, self.page_limit)
            except Exception as exc:
                if error_code(exc) != "ExpiredIteratorException":
                    raise
                iterator = self.iterator(shard_id, last, initial)
                continue
            if page.records:
                last = self.api.sequence_of(page.records[-1])
            yield page
            iterator = page.next_iterator

    def at_tip(self, page: Page) -> bool:
        """Whether the page reached the shard's newest record when it was read.

        Kinesis says so with MillisBehindLatest 0 on a page that is not full; DynamoDB
        Streams has no such figure, so an empty page stands for it. Writers that never
        pause would otherwise keep the probe going forever."""
        if page.millis_behind is not None:
            return page.millis_behind == 0 and len(page.records) < self.page_limit
        return not page.records

    def iterator(self, shard_id: str, after: str | None, initial: str) -> str:
        try:
            return self.caller.call(
                f"iterator:{shard_id}", self.api.iterator, shard_id, after, initial
            )
        except Exception as exc:
            if error_code(exc) != "TrimmedDataAccessException" or after is None:
                raise
            if not self.accept_data_loss:
                raise data_loss(
                    self.api.stream, shard_id, after, "", "the checkpoint's position was trimmed"
                ) from exc
            log.warning("shard %s trimmed past %s; going on (accept_data_loss)", shard_id, after)
            return self.caller.call(
                f"iterator:{shard_id}", self.api.iterator, shard_id, None, TRIM_HORIZON
            )

    def check_not_trimmed(self, shard_id: str, state: ShardState) -> None:
        """Stop if the shard's oldest record is past what the checkpoint consumed."""
        if state.after is None or self.accept_data_loss:
            return
        oldest = self.caller.call(f"iterator:{shard_id}", self.api.oldest_sequence, shard_id)
        if oldest is not None and sequence_key(oldest) > sequence_key(state.after):
            raise data_loss(
                self.api.stream,
                shard_id,
                state.after,
                oldest,
                "the shard was trimmed past the checkpoint: records after "
                f"{state.after} and before {oldest} may be lost",
            )

    # -- executors ----------------------------------------------------------------------

    def read_batches(self, part: ShardRange) -> Iterator[pa.RecordBatch]:
        """The range's records as raw-layer record batches, one per GetRecords page."""
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
        first = self.iterator(part.shard_id, part.after, part.initial)
        for page in self.pages(part.shard_id, first, part.after, part.initial):
            rows: list[SourceRecord] = []
            done = False
            for record in page.records:
                sequence = self.api.sequence_of(record)
                if sequence_key(sequence) > end_key:
                    # Past the end without meeting it: the end record is gone.
                    self.lost(part, last, "the batch's end record is no longer in the shard")
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

    def lost(self, part: ShardRange, last: str | None, why: str) -> None:
        if self.accept_data_loss:
            log.warning("shard %s: %s; going on (accept_data_loss)", part.shard_id, why)
            return
        raise data_loss(
            self.api.stream,
            part.shard_id,
            last or "",
            part.end,
            f"{why}: records were trimmed or the shard deleted while the batch waited",
        )
