"""Deduplication within the watermark, and the late flag.

The first record of an event within a batch is kept; one whose event processed already
holds within the watermark (``watermark`` before the newest event time seen) is dropped.
Events older than the watermark are still written, flagged ``_late``. Records with a null
dedup key are all kept: nothing says they are the same event.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from streaming.transforms.spec import TableSpec
from streamlake.config.pipeline import interval_seconds
from streamlake.lake.tables import EVENT_TIME_MISSING, PROCESSED_PARTITION

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

    from streaming.transforms.summary import BatchSummary


def lower_bound(newest: Any, watermark: str) -> Any:
    """``newest`` minus the watermark delay ("10 minutes", "1 hour"), or None."""
    if newest is None:
        return None
    return newest - timedelta(seconds=interval_seconds(watermark))


def any_null(columns: tuple[str, ...]) -> Column:
    from pyspark.sql import functions as F

    result = F.lit(False)
    for name in columns:
        result = result | F.col(name).isNull()
    return result


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


def without_events_in(
    batch: DataFrame, processed: DataFrame, keys: tuple[str, ...], since: Any = None
) -> DataFrame:
    """``batch`` without the events ``processed`` holds (only its partitions from ``since``
    on, when given). The recent part of processed can be far bigger than the batch: it is
    only scanned, filtered by the batch's broadcast keys, and what matches is broadcast back.
    Runs the scan at once."""
    from pyspark.sql import functions as F

    if since is not None:
        processed = processed.where(F.col(PROCESSED_PARTITION) >= F.to_date(F.lit(since)))
    recent = processed.select(*keys)
    batch_keys = F.broadcast(batch.select(*keys).distinct())
    # Computed once here: the batch's count and its write both use it, and each would
    # otherwise scan processed again.
    seen = recent.join(batch_keys, on=list(keys), how="left_semi").distinct().localCheckpoint()
    return batch.join(F.broadcast(seen), on=list(keys), how="left_anti")


def with_late_flag(rows: DataFrame, spec: TableSpec, late_from: Any) -> DataFrame:
    from pyspark.sql import functions as F

    late = spec.time_column() < F.lit(late_from)
    return rows.withColumn("_late", F.coalesce(late, F.lit(False)))


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
    """The newest event time processed holds, the watermark's reference; read from the
    table once per run, then advanced by each batch."""

    spec: TableSpec
    newest_seen: Any = None
    read: bool = False

    def deduplicate(
        self, rows: DataFrame, processed: DataFrame | None, summary: BatchSummary
    ) -> Deduplicated:
        """Drop repeated and already processed events of ``rows``; flag late ones.
        ``summary`` is the batch's (see ``summarize``)."""
        from pyspark.sql import functions as F

        keys = self.spec.dedup_keys
        # Most batches repeat no event id; they skip the sort that picks each event's first.
        unique = first_of_each_event(rows, keys) if summary.repeats_keys else rows
        self.advance(summary.newest, processed)
        bound = lower_bound(self.newest_seen, self.spec.table.watermark)
        if processed is not None and bound is not None:
            unique = without_events_in(unique, processed, keys, since=bound)
        unique = with_late_flag(unique, self.spec, bound)
        counted = unique.agg(
            F.count(F.lit(1)), F.count_if(F.col("_late")), F.count_if(F.col(EVENT_TIME_MISSING))
        ).first()
        kept, late, untimed = (int(n) for n in counted) if counted else (0, 0, 0)
        return Deduplicated(unique, kept, summary.passed - kept, late, untimed)

    def advance(self, newest: Any, processed: DataFrame | None) -> None:
        from pyspark.sql import functions as F

        if not self.read and processed is not None:
            # Bounded like new events: a future-dated row written before that bound existed
            # must not push the watermark, and with it deduplication, out of reach.
            plausible = processed.where(self.spec.not_in_future(self.spec.time_column()))
            seen_max = plausible.agg(F.max(self.spec.time_column())).first()
            self.newest_seen = seen_max[0] if seen_max else None
        self.read = True
        candidates = [t for t in (newest, self.newest_seen) if t is not None]
        self.newest_seen = max(candidates) if candidates else None
