"""`batch run <pull job>`: a jdbc source's new and changed rows into raw.<table>, as Glue
job bookmarks do.

Where a pull starts is read from raw itself: the highest ``position`` of the source's rows
(``<bookmark>|<key>``), less the source's overlap. A pull reads the rows whose bookmark is at
least that, leaves out those raw already holds (same position: the same row version), and
appends the rest in one Delta commit, as version ``n`` of the transaction ``pull:<job>``
(``n`` one more than the last): a second pull started meanwhile conflicts instead of writing
the rows twice. A crash before the commit leaves raw as it was, so the next pull reads the
same rows again; nothing is kept anywhere else. A pull that finds nothing new commits
nothing.

What a bookmark cannot see: deletes, a change that leaves the bookmark as it was, and a row
committed later than the overlap after its bookmark value (or after the pull that took a
row whose time bookmark was in the future)."""

from __future__ import annotations

import logging
import time
import uuid
from typing import TYPE_CHECKING

from batch.jobs import BatchRun
from batch.report import BatchReport, TableOutcome
from connectors.jdbc.bookmark import SEPARATOR, TIMESTAMP_TEXT, Bookmark, LowerBound
from connectors.jdbc.endpoint import JdbcEndpoint, jdbc_endpoint
from connectors.jdbc.reader import SOURCE, error_of, read_changes
from streamlake.config.pipeline import JdbcSource
from streamlake.errors import UsageError
from streamlake.lake.delta_rs import last_transaction_version
from streamlake.lake.spark_delta import IdempotentDeltaAppend, ensure_table
from streamlake.lake.tables import RAW

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)


def run(batch: BatchRun) -> BatchReport:
    job = batch.pipeline.jobs[batch.job]
    assert job.table is not None  # a pull job names its table (the config checks it)
    table = batch.pipeline.tables[job.table]
    source = batch.pipeline.sources[table.source]
    if not isinstance(source, JdbcSource):
        raise UsageError(f"{batch.job} pulls {job.table}, whose source is not jdbc")
    started = time.monotonic()
    report = BatchReport(batch.job, "pull")
    if not batch.selects("raw", job.table):
        return report
    endpoint = jdbc_endpoint(source.connection, batch.settings)
    bookmark = Bookmark.of(source, table)
    raw_path = batch.settings.lake.table_path("raw", job.table)
    spark = batch.spark
    ensure_table(spark, raw_path, RAW)
    # Taken before raw is read: a pull that commits after this makes ours conflict, or be
    # skipped, rather than append what it appended.
    pull = (last_transaction_version(raw_path, batch.settings, txn_app_id(batch.job)) or 0) + 1
    newest = newest_position(spark, raw_path, source.table, bookmark)
    lower = bookmark.lower_bound(newest)
    batch.progress(
        f"reading {source.table} where {source.bookmark} >= {lower}"
        if lower is not None
        else f"reading all of {source.table} (first pull)"
    )
    fresh = new_rows(spark, source, endpoint, bookmark, lower, raw_path)
    try:
        pulled = fresh.localCheckpoint(eager=True)
        rows = pulled.count()
    except Exception as exc:
        raise (error_of(exc, endpoint, source.table) or exc) from None
    outcome = f"raw.{job.table}"
    if rows == 0:
        batch.progress(f"nothing new in {source.table}")
        report.tables.append(
            TableOutcome(outcome, "unchanged", rows_changed=0, seconds=time.monotonic() - started)
        )
        return report
    newest_pulled = pulled.agg({"position": "max"}).collect()[0][0]
    batch.progress(f"appending {rows} rows to raw.{job.table} (pull {pull})")
    append = IdempotentDeltaAppend(raw_path, txn_app_id(batch.job), RAW.partition_by)
    run_id = uuid.uuid4().hex
    metadata = {"source": SOURCE, "from": newest, "to": newest_pulled, "rows": rows, "run": run_id}
    append.write(stamped(pulled), pull, metadata=metadata)
    if append.committed_batches(spark).get(pull, {}).get("run") != run_id:
        # Delta skipped our append: another run of this job committed pull `pull` first.
        batch.progress(f"pull {pull} was committed by another run meanwhile; nothing written")
        report.tables.append(
            TableOutcome(outcome, "skipped", rows_changed=0, seconds=time.monotonic() - started)
        )
        return report
    log.info("pull %s of %s: %s rows up to %s", pull, source.table, rows, newest_pulled)
    detail = f"pull {pull}, bookmark {bookmark.value_of(newest_pulled)}"
    report.tables.append(
        TableOutcome(
            outcome, "pulled", rows_changed=rows, seconds=time.monotonic() - started, detail=detail
        )
    )
    return report


def txn_app_id(job: str) -> str:
    return f"pull:{job}"


def raw_rows_of(spark: SparkSession, raw_path: str, stream: str) -> DataFrame:
    from pyspark.sql import functions as F

    raw = spark.read.format("delta").load(raw_path)
    return raw.where((F.col("source") == SOURCE) & (F.col("stream") == stream))


def newest_position(
    spark: SparkSession, raw_path: str, stream: str, bookmark: Bookmark
) -> str | None:
    """The highest position raw holds of the source table ``stream``; None before any.

    A time bookmark counts no later than the pull that took it: one stamped in the future
    (a skewed clock, a wrong value) would otherwise put every later pull's start past the
    real changes."""
    from pyspark.sql import functions as F

    position = F.col("position")
    pulled_at = {"timestamp": TIMESTAMP_TEXT, "date": "yyyy-MM-dd"}.get(bookmark.kind)
    if pulled_at is not None:
        value = F.substring_index(position, SEPARATOR, 1)
        position = F.least(value, F.date_format("ingest_ts", pulled_at))
    row = raw_rows_of(spark, raw_path, stream).agg(F.max(position)).collect()[0]
    return None if row[0] is None else str(row[0])


def new_rows(
    spark: SparkSession,
    source: JdbcSource,
    endpoint: JdbcEndpoint,
    bookmark: Bookmark,
    lower: LowerBound | None,
    raw_path: str,
) -> DataFrame:
    """The source rows from ``lower`` on that raw does not hold yet."""
    from pyspark.sql import functions as F

    changed = read_changes(spark, source, endpoint, bookmark, lower)
    if lower is None:
        return changed
    held = raw_rows_of(spark, raw_path, source.table).where(
        F.col("position") >= F.lit(bookmark.lower_text(lower))
    )
    return changed.join(held.select("position"), "position", "left_anti")


def stamped(frame: DataFrame) -> DataFrame:
    from pyspark.sql import functions as F

    return (
        frame.withColumn("ingest_ts", F.current_timestamp())
        .withColumn("ingest_date", F.to_date("ingest_ts"))
        .select(*RAW.names)
    )
