"""The Spark stream reader shared by the Kinesis and DynamoDB Streams sources.

How batches are fixed (the design's "Kinesis has no latest sequence number" problem): the
driver's ``latestOffset`` probes each shard with GetRecords from where the previous batch
ended and records the last sequence number it saw; ``partitions`` hands each executor one
shard's exact range (after, end]; ``read`` re-reads that range on the executor. Every
offset in Spark's log is therefore a real sequence number, a replayed batch reads the same
records, and a kill at any point loses or repeats nothing once paired with the idempotent
Delta writer.

Each record is fetched once in the normal path: the probe keeps what it fetched (up to
MAX_CARRIED_BYTES a batch, MAX_CARRIED_SHARD_BYTES a shard) and ``partitions`` hands
those rows to the executors with the range, which then read nothing. A batch replayed
after a restart, or one too big to carry through the driver, is read again by the
executors from the service.

Shards are read parent first: a child shard (after a split or merge) is probed only once
every parent still in the stream is closed and fully read.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from pyspark.sql.datasource import DataSource, DataSourceStreamReader, InputPartition

from connectors.s3 import s3_client_for
from connectors.shard_stream.api import ShardApi, ShardInfo, SourceRecord
from connectors.shard_stream.calls import PacedCaller
from connectors.shard_stream.checkpoint import AVAILABLE_NOW_END, last_logged_offset
from connectors.shard_stream.errors import data_loss
from connectors.shard_stream.offsets import TRIM_HORIZON, ShardState, StreamOffset
from connectors.shard_stream.shard_reads import (
    MAX_EMPTY_PAGES,
    AcceptedGap,
    ShardCursor,
    ShardRange,
    ShardReads,
)
from streamlake.lake.checkpoint import CheckpointFiles
from streamlake.lake.tables import SOURCE_RECORD

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from connectors.base import StreamRequest

log = logging.getLogger(__name__)

# Rows a batch's probes may hand to the executors through the driver (pickled into the
# input partitions), over all its shards and per shard (one shard's rows are one task,
# which must stay well under Spark's 128 MiB RPC message limit). Past the first the
# executors read the whole batch again, past the second that shard's range.
MAX_CARRIED_BYTES = 128 * 2**20
MAX_CARRIED_SHARD_BYTES = 64 * 2**20
# What a carried row costs beside its payload: sequence number, shard, key, time, pickling.
CARRIED_ROW_OVERHEAD = 256


@dataclass
class Probed:
    """What the last probe of a shard fetched: the rows after ``after`` up to ``end``."""

    after: str | None
    end: str | None
    rows: list[SourceRecord]
    size: int = 0


ApiFactory = Callable[[dict[str, str]], ShardApi]


@dataclass(frozen=True)
class ReaderOptions:
    checkpoint: str | None
    starting_position: str
    starting_offset: str | None
    accept_data_loss: bool
    max_records_per_shard: int | None
    page_limit: int
    min_call_interval_s: float
    probe_budget_s: float | None
    # An available-now run reads records that arrived up to its start, then offers no more.
    arrived_until_ms: int | None
    accepted_gaps: tuple[AcceptedGap, ...]

    @classmethod
    def parse(cls, options: dict[str, str]) -> ReaderOptions:
        cap = options.get("max_records_per_shard")
        return cls(
            checkpoint=options.get("checkpoint"),
            starting_position=options.get("starting_position", TRIM_HORIZON),
            starting_offset=options.get("starting_offset"),
            accept_data_loss=options.get("accept_data_loss", "false") == "true",
            max_records_per_shard=int(cap) if cap else None,
            page_limit=int(options.get("page_limit", "10000")),
            min_call_interval_s=float(options.get("min_call_interval_s", "0.2")),
            # "none": no time limit on a probe, as an available-now run needs (a probe that
            # gave up with nothing would look like the end of the run's data).
            probe_budget_s=(
                None
                if options.get("probe_budget_s") == "none"
                else float(options.get("probe_budget_s", "10"))
            ),
            arrived_until_ms=(
                int(options["arrived_until_ms"]) if options.get("arrived_until_ms") else None
            ),
            accepted_gaps=tuple(
                AcceptedGap.parse(gap) for gap in json.loads(options.get("accepted_gaps", "[]"))
            ),
        )


class ShardStreamReader(DataSourceStreamReader):
    """Spark calls ``initialOffset`` once for a new query, then per batch ``latestOffset``
    and ``partitions`` on the driver, ``read`` on executors, ``commit`` after the batch."""

    def __init__(self, options: dict[str, str], api_factory: ApiFactory) -> None:
        self.options = dict(options)
        self.settings = ReaderOptions.parse(self.options)
        self.api_factory = api_factory
        self._api: ShardApi | None = None
        self._reads: ShardReads | None = None
        self._position: StreamOffset | None = None
        self._cursors: dict[str, tuple[ShardState, ShardCursor]] = {}
        # Shards whose last probe read all there was (to the tip, the run's start, or the
        # end of a closed shard), as opposed to stopping at the per-batch cap.
        self._read_to_end: set[str] = set()
        # Shard -> how far behind its newest record the last probe left it.
        self._lag_ms: dict[str, int] = {}
        self._quiet_saved: dict[str, tuple[str, float]] = {}
        self._initial: dict[str, Any] | None = None
        # The last probe's fetched rows per shard, for ``partitions`` to hand on, and what
        # they cost together (shards are probed side by side).
        self._probed: dict[str, Probed] = {}
        self._carried = 0
        self._carried_lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        # Executors get the options, never the driver's clients or probe state.
        return {"options": self.options, "settings": self.settings, "api_factory": self.api_factory}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["options"], state["api_factory"])  # type: ignore[misc]

    @property
    def api(self) -> ShardApi:
        if self._api is None:
            self._api = self.api_factory(self.options)
        return self._api

    @property
    def reads(self) -> ShardReads:
        if self._reads is None:
            caller = PacedCaller(self.settings.min_call_interval_s)
            self._reads = ShardReads(
                self.api,
                caller,
                self.settings.page_limit,
                self.settings.accept_data_loss,
                self.settings.accepted_gaps,
                quiet=self._load_quiet(),
            )
        return self._reads

    # -- driver -------------------------------------------------------------------------

    def initialOffset(self) -> dict[str, Any]:  # noqa: N802 (Spark's hook names)
        # Computed once: Spark asks again when it runs (and replays) batch 0.
        if self._initial is None and self.settings.starting_offset:
            self._initial = StreamOffset.from_json(self.settings.starting_offset).to_json()
        if self._initial is None:
            initial = TRIM_HORIZON
            if self.settings.starting_position == "LATEST":
                initial = f"AT_TIMESTAMP:{int(time.time() * 1000)}"
            shards = {s.shard_id: ShardState(initial=initial) for s in self.api.list_shards()}
            self._initial = StreamOffset(shards).to_json()
        return self._initial

    def latestOffset(self) -> dict[str, Any]:  # noqa: N802
        position = self._position or self._restored_position()
        listed = self.api.list_shards()
        states = self._without_expired(dict(position.shards), {s.shard_id for s in listed})
        for shard in listed:
            states.setdefault(shard.shard_id, ShardState(initial=TRIM_HORIZON))
        parents = {s.shard_id: s.parent_ids for s in listed}
        probed: set[str] = set()
        self._probed, self._carried, self._lag_ms = {}, 0, {}
        while True:
            # Shards whose parents are done, probed side by side; a parent that finishes
            # in this round releases its children for the next round.
            ready = [
                shard_id
                for shard_id in sorted(states)
                if shard_id not in probed
                and not states[shard_id].finished
                and self._parents_done(parents.get(shard_id, ()), states)
            ]
            if not ready:
                break
            with ThreadPoolExecutor(max_workers=min(8, len(ready))) as pool:
                probes = pool.map(lambda sid: (sid, self._probe(sid, states[sid])), ready)
                states.update(dict(probes))
            probed.update(ready)
        lag = dict(self._lag_ms)
        if states == position.shards and (any(lag.values()) or not any(position.lag_ms.values())):
            # Nothing moved: the same offset as before, lag included, so that Spark plans no
            # batch. Only a lag that fell to zero is news worth the empty batch it costs
            # (a DynamoDB shard whose last batch ended at the cap, on its newest record).
            lag = position.lag_ms
        self._position = StreamOffset(states, lag)
        if self._carried > MAX_CARRIED_BYTES:
            self._probed = {}  # too much for the driver: the executors read this batch
        self._save_quiet()
        if self.settings.arrived_until_ms is not None and probed <= self._read_to_end:
            self._mark_available_now_end(self._position)
        return self._position.to_json()

    def _mark_available_now_end(self, position: StreamOffset) -> None:
        """Record that ``position`` holds everything the available-now run is to read; the
        runtime stops the run once a committed batch ends there."""
        files = self._checkpoint_files()
        if files is not None:
            body = {"until_ms": self.settings.arrived_until_ms, "offset": position.to_json()}
            files.write(AVAILABLE_NOW_END, json.dumps(body))

    def partitions(self, start: dict[str, Any], end: dict[str, Any]) -> list[InputPartition]:
        begin, finish = StreamOffset.from_json(start), StreamOffset.from_json(end)
        self._position = finish
        ranges: list[InputPartition] = []
        for shard_id, end_state in sorted(finish.shards.items()):
            start_state = begin.shards.get(shard_id, ShardState(initial=end_state.initial))
            if end_state.after is None or end_state.after == start_state.after:
                continue
            # Where reading starts comes from the logged end offset, so a replay repeats it.
            probe = self._probed.get(shard_id)
            carried = (
                tuple(probe.rows)
                if probe is not None
                and (probe.after, probe.end) == (start_state.after, end_state.after)
                else None
            )
            ranges.append(
                ShardRange(
                    shard_id,
                    start_state.after,
                    end_state.initial,
                    end_state.after,
                    end_state.first,
                    rows=carried,
                )
            )
        return ranges

    def commit(self, end: dict[str, Any]) -> None:
        finished = {sid for sid, s in StreamOffset.from_json(end).shards.items() if s.finished}
        for shard_id in finished:
            self._cursors.pop(shard_id, None)

    def _restored_position(self) -> StreamOffset:
        logged = None
        if self.settings.checkpoint:
            logged = last_logged_offset(self.settings.checkpoint, self._checkpoint_s3_client())
        if logged is not None:
            return StreamOffset.from_json(logged)
        return StreamOffset.from_json(self.initialOffset())

    def _checkpoint_s3_client(self) -> Any:
        from connectors.aws import AwsEndpoint

        if not (self.settings.checkpoint or "").startswith(("s3a://", "s3://")):
            return None
        return AwsEndpoint.from_options(self.options).client("s3")

    def _without_expired(
        self, states: dict[str, ShardState], listed: set[str]
    ) -> dict[str, ShardState]:
        """Forget finished shards the service no longer lists; an unfinished one that is
        gone took unread records with it."""
        kept = {}
        for shard_id, state in states.items():
            if shard_id in listed:
                kept[shard_id] = state
            elif not state.finished:
                if not self.settings.accept_data_loss:
                    raise data_loss(
                        self.api.stream,
                        shard_id,
                        state.after or "",
                        "",
                        "the shard expired before the job read all of it",
                    )
                log.warning("shard %s expired unread; going on (accept_data_loss)", shard_id)
        return kept

    @staticmethod
    def _parents_done(parent_ids: tuple[str, ...], states: dict[str, ShardState]) -> bool:
        # A parent no longer tracked (expired, or finished and forgotten) holds nothing more.
        return all(states[p].finished for p in parent_ids if p in states)

    def _probe(self, shard_id: str, state: ShardState) -> ShardState:
        """Read ahead from ``state`` to the shard's tail (or the cap); return the new state."""
        cached = self._cursors.get(shard_id)
        if cached is not None and cached[0] == state and not cached[1].ended:
            cursor = cached[1]
        else:
            cursor = self.reads.cursor(shard_id, state.after, state.initial)
        last, first, count, empty = state.after, None, 0, 0
        cap = self.settings.max_records_per_shard
        budget = self.settings.probe_budget_s
        deadline = None if budget is None else time.monotonic() + budget

        def page_size() -> int:
            # A record verifying the position comes first and is dropped: one more.
            verifying = cursor.verify is not None or not cursor.started
            extra = 1 if verifying and cursor.last is not None else 0
            room = self.reads.page_limit if not cap else max(1, cap - count) + extra
            return min(self.reads.page_limit, room)

        at_tip = False
        kept = Probed(state.after, None, [])
        self._probed[shard_id] = kept
        for page in cursor.pages(page_size):
            self._lag_ms[shard_id] = self.reads.lag_ms(page)
            records = self._arrived_in_time(page.records)
            self._keep(shard_id, kept, records)
            if records:
                first = first or self.api.sequence_of(records[0])
                last = self.api.sequence_of(records[-1])
                count += len(records)
                empty = 0
            else:
                empty += 1
            if len(records) < len(page.records):
                # Past the run's start: this shard is done for the run. The cursor is past
                # ``last`` and is not kept.
                self._cursors.pop(shard_id, None)
                self._read_to_end.add(shard_id)
                return ShardState(last, state.initial, first=first if count else state.first)
            at_tip = self.reads.at_tip(page)
            if at_tip and last is not None:
                self.reads.quiet[shard_id] = (last, time.time())
            if (
                at_tip
                or empty >= MAX_EMPTY_PAGES
                or (cap and count >= cap)
                or (deadline is not None and time.monotonic() > deadline)
            ):
                break
        new_state = ShardState(
            last, state.initial, finished=cursor.ended, first=first if count else state.first
        )
        if cursor.ended:
            self._lag_ms[shard_id] = 0
        if cursor.ended or at_tip:
            self._read_to_end.add(shard_id)
        else:
            self._read_to_end.discard(shard_id)
        self._cursors[shard_id] = (new_state, cursor)
        if count:
            log.debug("probe %s: %s new records up to %s", shard_id, count, last)
        return new_state

    def _keep(self, shard_id: str, kept: Probed, records: list[Any]) -> None:
        """Keep a probe's records as rows for the executors, while the batch's carried
        rows stay under MAX_CARRIED_BYTES (past it, none are kept any more)."""
        with self._carried_lock:
            full = self._carried > MAX_CARRIED_BYTES or kept.size > MAX_CARRIED_SHARD_BYTES
        if not records or full:
            return
        rows = [row for record in records for row in self.api.to_rows(shard_id, record)]
        size = sum(len(r.payload) + CARRIED_ROW_OVERHEAD for r in rows)
        with self._carried_lock:
            self._carried += size
        kept.rows.extend(rows)
        kept.size += size
        kept.end = self.api.sequence_of(records[-1])

    # Evidence that a shard had nothing after a position is kept beside Spark's logs, so a
    # restart can still tell a trim of consumed records from a loss.
    QUIET_FILE = "shard_quiet.json"
    QUIET_SAVE_EVERY_S = 60.0

    def _checkpoint_files(self) -> CheckpointFiles | None:
        if not self.settings.checkpoint:
            return None
        return CheckpointFiles(self.settings.checkpoint, self._checkpoint_s3_client())

    def _load_quiet(self) -> dict[str, tuple[str, float]]:
        files = self._checkpoint_files()
        text = files.read(self.QUIET_FILE) if files else None
        if not text:
            return {}
        try:
            saved = json.loads(text)
            quiet = {shard: (str(v[0]), float(v[1])) for shard, v in saved.items()}
        except (ValueError, TypeError, IndexError, AttributeError):
            log.warning("ignoring an unreadable %s", self.QUIET_FILE)
            return {}
        self._quiet_saved = dict(quiet)
        return quiet

    def _save_quiet(self) -> None:
        quiet = self.reads.quiet
        stale = any(
            self._quiet_saved.get(shard, ("", 0.0))[0] != position
            or seen - self._quiet_saved[shard][1] > self.QUIET_SAVE_EVERY_S
            for shard, (position, seen) in quiet.items()
        )
        files = self._checkpoint_files()
        if stale and files is not None:
            files.write(self.QUIET_FILE, json.dumps({s: list(v) for s, v in quiet.items()}))
            self._quiet_saved = dict(quiet)

    def _arrived_in_time(self, records: list[Any]) -> list[Any]:
        """The leading records that arrived by the available-now run's start (all of them
        outside such a run)."""
        until = self.settings.arrived_until_ms
        if until is None:
            return records
        for index, record in enumerate(records):
            arrived = self.api.arrived_ms(record)
            if arrived is not None and arrived > until:
                return records[:index]
        return records

    # -- executors ----------------------------------------------------------------------

    def read(self, partition: InputPartition) -> Iterator[Any]:
        assert isinstance(partition, ShardRange)
        yield from self.reads.read_batches(partition)


class ShardDataSource(DataSource):
    """A PySpark data source over one sharded log; subclasses name it and its ShardApi."""

    api_factory: ClassVar[ApiFactory]

    def schema(self) -> str:
        return SOURCE_RECORD.ddl

    def streamReader(self, schema: Any) -> DataSourceStreamReader:  # noqa: N802
        return ShardStreamReader(dict(self.options), type(self).api_factory)


def open_shard_stream(
    request: StreamRequest, data_source: type[ShardDataSource], options: dict[str, str]
) -> DataFrame:
    """The source as raw-layer rows (without the ingest columns) through ``data_source``.

    Spark has no available-now contract for Python sources (it falls back to one batch,
    which after a crash is only the replayed one). An available-now run here reads the
    records that arrived before it started, in batches within the usual cap, and then
    offers nothing more; the reader marks the offset that holds it all, and the runtime stops
    the query once a committed batch ends there (``available_now_done``)."""
    merged = {
        **request.aws.options(),
        "checkpoint": request.checkpoint,
        "accept_data_loss": str(request.table.accept_data_loss).lower(),
        **options,
    }
    if request.start_offset:
        merged["starting_offset"] = request.start_offset
    if request.accepted_gaps:
        merged["accepted_gaps"] = json.dumps(list(request.accepted_gaps))
    if request.available_now:
        merged["probe_budget_s"] = "none"
        merged["arrived_until_ms"] = str(int(time.time() * 1000))
        # A previous run's end mark says nothing about this run.
        s3 = s3_client_for(request.checkpoint, request.settings)
        CheckpointFiles(request.checkpoint, s3).delete(AVAILABLE_NOW_END)
    request.spark.dataSource.register(data_source)
    return request.spark.readStream.format(data_source.name()).options(**merged).load()


def shard_infos(shards: list[dict[str, Any]]) -> list[ShardInfo]:
    """ShardInfo from Kinesis ListShards / DynamoDB DescribeStream shard entries."""
    infos = []
    for shard in shards:
        parents = tuple(
            p for p in (shard.get("ParentShardId"), shard.get("AdjacentParentShardId")) if p
        )
        infos.append(ShardInfo(shard["ShardId"], parents))
    return infos
