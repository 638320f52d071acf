"""Deduplication within the watermark, and the late flag.

The first record of an event within a batch is kept; one whose event processed already
holds within the watermark (at an event time from ``watermark`` before the newest event
time seen) is dropped. Events older than the watermark are still written, flagged
``_late``. Records with a null dedup key are all kept: nothing says they are the same event.

Looking an event up in processed is a scan of its rows within the watermark. Most batches
repeat nothing, so the driver keeps the hashes of the recent keys (``RecentKeys``) and a
batch none of whose keys is among them skips the scan; a match goes to the exact scan.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from streaming.transforms.spec import TableSpec
from streamlake.config.pipeline import interval_seconds
from streamlake.lake.tables import EVENT_TIME_MISSING, PROCESSED_PARTITION

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

    from streaming.transforms.summary import BatchSummary

# About 70 bytes of driver memory per key; past this many keys in the watermark window the
# run falls back to scanning processed for every batch.
MAX_RECENT_KEYS = 2_000_000
# Recent keys are kept in buckets of event time this fraction of the watermark wide, and
# dropped a whole bucket at a time.
BUCKETS_PER_WATERMARK = 8


def lower_bound(newest: Any, watermark: str) -> Any:
    """``newest`` minus the watermark delay ("10 minutes", "1 hour"), or None."""
    if newest is None:
        return None
    return newest - timedelta(seconds=interval_seconds(watermark))


def micros_column(us: int) -> Column:
    from pyspark.sql import functions as F

    return F.timestamp_micros(F.lit(us))


def any_null(columns: tuple[str, ...]) -> Column:
    from pyspark.sql import functions as F

    result = F.lit(False)
    for name in columns:
        result = result | F.col(name).isNull()
    return result


def key_hash(keys: tuple[str, ...]) -> Column:
    """A 64-bit hash of the dedup key, null when part of the key is."""
    from pyspark.sql import functions as F

    return F.when(~any_null(keys), F.xxhash64(*[F.col(k) for k in keys]))


def first_of_each_event(rows: DataFrame, keys: tuple[str, ...]) -> DataFrame:
    """One row per dedup key, the first one ingested; rows without a key are all kept."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    first = Window.partitionBy(*keys).orderBy("_ingest_ts", "_partition", "_position")
    return (
        rows.withColumn("_n", F.row_number().over(first))
        .where((F.col("_n") == 1) | any_null(keys))
        .drop("_n")
    )


def recent_part(processed: DataFrame, spec: TableSpec, since: Column) -> DataFrame:
    """The rows of processed at event times from ``since`` on (partitions pruned first)."""
    from pyspark.sql import functions as F

    in_partitions = processed.where(F.col(PROCESSED_PARTITION) >= F.to_date(since))
    return in_partitions.where(spec.time_column() >= since)


def without_events_in(
    batch: DataFrame, processed: DataFrame, spec: TableSpec, since: Column | None = None
) -> DataFrame:
    """``batch`` without the events ``processed`` holds (only at event times from ``since``
    on, when given). The recent part of processed can be far bigger than the batch: it is
    only scanned, filtered by the batch's broadcast keys, and what matches is broadcast back.
    Runs the scan at once."""
    from pyspark.sql import functions as F

    keys = spec.dedup_keys
    if since is not None:
        processed = recent_part(processed, spec, since)
    recent = processed.select(*keys)
    batch_keys = F.broadcast(batch.select(*keys).distinct())
    # Computed once here: the batch's count and its write both use it, and each would
    # otherwise scan processed again.
    seen = recent.join(batch_keys, on=list(keys), how="left_semi").distinct().localCheckpoint()
    return batch.join(F.broadcast(seen), on=list(keys), how="left_anti")


def with_late_flag(rows: DataFrame, spec: TableSpec, late_from: Any) -> DataFrame:
    """``_late`` set on rows older than ``late_from`` (a timestamp, or a timestamp column)."""
    from pyspark.sql import functions as F

    late = spec.time_column() < F.lit(late_from)
    return rows.withColumn("_late", F.coalesce(late, F.lit(False)))


def repeats_a_key(hashes: list[int]) -> bool:
    """Whether two events may share a key (equal keys have equal hashes)."""
    return len(set(hashes)) != len(hashes)


@dataclass
class RecentKeys:
    """The hashes of the dedup keys processed holds at event times from the watermark's
    bound on, read from processed at the first batch, then added to by each batch.

    Whole buckets of event time are dropped once entirely older than the bound, so this
    holds at least every key the exact scan could find: a batch none of whose hashes is
    here has nothing in processed to be deduplicated against. Valid while this run is the
    only writer of processed, which the table lease ensures."""

    bucket_us: int
    buckets: dict[int, set[int]] = field(default_factory=dict)
    loaded: bool = False
    overflowed: bool = False

    @property
    def size(self) -> int:
        return sum(len(keys) for keys in self.buckets.values())

    def load(self, processed: DataFrame | None, spec: TableSpec, bound_us: int) -> None:
        """Read once per run: the keys processed holds from ``bound_us`` on."""
        from pyspark.sql import functions as F

        self.loaded = True
        if processed is None:
            return
        recent = recent_part(processed, spec, micros_column(bound_us))
        keyed = recent.select(key_hash(spec.dedup_keys).alias("h"), spec.time_column().alias("t"))
        keyed = keyed.where(F.col("h").isNotNull())
        if keyed.count() > MAX_RECENT_KEYS:
            self.overflowed = True
            return
        bucket = F.floor(F.unix_micros("t") / F.lit(self.bucket_us)).cast("long")
        for row in keyed.groupBy(bucket.alias("b")).agg(F.collect_set("h")).collect():
            self.buckets.setdefault(int(row[0]), set()).update(int(h) for h in row[1])

    def expire(self, bound_us: int) -> None:
        for bucket in [b for b in self.buckets if (b + 1) * self.bucket_us <= bound_us]:
            del self.buckets[bucket]

    def add(self, hashes: list[int], newest_us: int) -> None:
        """Hashes of events at most as new as ``newest_us``: kept as if that new, which keeps
        them at least as long as their own time is within the watermark."""
        self.buckets.setdefault(newest_us // self.bucket_us, set()).update(hashes)
        if self.size > MAX_RECENT_KEYS:
            self.overflowed = True
            self.buckets.clear()

    def holds_any(self, hashes: list[int]) -> bool:
        return any(not keys.isdisjoint(hashes) for keys in self.buckets.values())


@dataclass
class Deduplicated:
    """A batch's rows for processed and its counts, taken before anything is written:
    once the rows are in processed, the anti-join would find them there."""

    rows: DataFrame
    processed: int
    duplicates: int
    late: int
    no_event_time: int


@dataclass
class Watermark:
    """The newest event time processed holds (µs), the watermark's reference; read from the
    table once per run, then advanced by each batch. Holds the run's ``RecentKeys``."""

    spec: TableSpec
    newest_seen_us: int | None = None
    read: bool = False
    delay_us: int = field(init=False)
    recent: RecentKeys = field(init=False)

    def __post_init__(self) -> None:
        self.delay_us = int(interval_seconds(self.spec.table.watermark) * 1_000_000)
        self.recent = RecentKeys(max(1_000_000, self.delay_us // BUCKETS_PER_WATERMARK))

    @property
    def bound_us(self) -> int | None:
        return None if self.newest_seen_us is None else self.newest_seen_us - self.delay_us

    def deduplicate(
        self, rows: DataFrame, processed: DataFrame | None, summary: BatchSummary
    ) -> Deduplicated:
        """Drop repeated and already processed events of ``rows``; flag late ones.
        ``summary`` is the batch's (see ``summarize``)."""
        self.advance(summary.newest_us, processed)
        bound = self.bound_us
        repeats = repeats_a_key(summary.key_hashes)
        unique = first_of_each_event(rows, self.spec.dedup_keys) if repeats else rows
        scan = processed is not None and bound is not None and self.may_hold(summary, processed)
        if scan:
            assert processed is not None and bound is not None
            unique = without_events_in(unique, processed, self.spec, since=micros_column(bound))
        late_from = None if bound is None else micros_column(bound)
        unique = with_late_flag(unique, self.spec, late_from)
        if summary.newest_us is not None and not self.recent.overflowed:
            self.recent.add(summary.key_hashes, summary.newest_us)
        none_late = bound is None or summary.oldest_us is None or summary.oldest_us >= bound
        if not repeats and not scan and none_late:
            # Nothing dropped, nothing late: the counts are the summary's, with no pass over
            # the batch.
            return Deduplicated(unique, summary.passed, 0, 0, summary.untimed)
        return self.counted(unique, summary)

    def may_hold(self, summary: BatchSummary, processed: DataFrame) -> bool:
        """Whether processed may hold one of the batch's events: false only when the recent
        keys show that none of them is there."""
        bound = self.bound_us
        assert bound is not None
        if not self.recent.loaded:
            self.recent.load(processed, self.spec, bound)
        if self.recent.overflowed:
            return True
        self.recent.expire(bound)
        return self.recent.holds_any(summary.key_hashes)

    def counted(self, unique: DataFrame, summary: BatchSummary) -> Deduplicated:
        from pyspark.sql import functions as F

        counted = unique.agg(
            F.count(F.lit(1)), F.count_if(F.col("_late")), F.count_if(F.col(EVENT_TIME_MISSING))
        ).first()
        kept, late, untimed = (int(n) for n in counted) if counted else (0, 0, 0)
        return Deduplicated(unique, kept, summary.passed - kept, late, untimed)

    def advance(self, newest_us: int | None, processed: DataFrame | None) -> None:
        from pyspark.sql import functions as F

        if not self.read and processed is not None:
            # Bounded like new events: a future-dated row written before that bound existed
            # must not push the watermark, and with it deduplication, out of reach.
            time = self.spec.time_column()
            plausible = processed.where(self.spec.not_in_future(time))
            seen_max = plausible.agg(F.max(F.unix_micros(time))).first()
            self.newest_seen_us = (
                None if seen_max is None or seen_max[0] is None else int(seen_max[0])
            )
        self.read = True
        candidates = [t for t in (newest_us, self.newest_seen_us) if t is not None]
        self.newest_seen_us = max(candidates) if candidates else None
