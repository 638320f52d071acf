"""The batch layer's figures: compaction against delta-rs's own, and an incremental curate
against a full recompute of the same tables."""

from __future__ import annotations

import logging
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path

from batch.compact import CompactTarget, compact_table
from batch.jobs import BatchRun, run_batch_job
from batch.report import BatchReport
from bench.figures import BenchEnv
from bench.results import Run
from streamlake.config.pipeline import Compaction
from streamlake.config.settings import LakeSettings, Settings

log = logging.getLogger("bench")

SMALL_FILES = 2_000
SMALL_FILE_ROWS = 200
CURATE_ROWS = 500_000
CURATE_DAYS = 50
APPEND_SHARE = 0.01


def small_file_table(env: BenchEnv, path: Path) -> None:
    """A table of SMALL_FILES files of SMALL_FILE_ROWS order-like rows each, in one commit."""
    rows = env.spark.range(SMALL_FILES * SMALL_FILE_ROWS).selectExpr(
        "id",
        "concat('c-', cast(id % 5000 as string)) as customer_id",
        "cast(id % 100000 / 100 as decimal(12,2)) as amount",
        "repeat('x', 64) as note",
    )
    rows.repartition(SMALL_FILES).write.format("delta").save(str(path))


def active_files(path: Path) -> int:
    from deltalake import DeltaTable

    return len(DeltaTable(str(path)).file_uris())


def compact_vs_delta_rs(env: BenchEnv) -> tuple[Run, Run]:
    """Our compact (OPTIMIZE then VACUUM through delta-spark) on a table of 2,000 small
    files, and delta-rs's ``optimize.compact()`` on an identical copy."""
    from deltalake import DeltaTable

    base = env.work / "compact"
    shutil.rmtree(base, ignore_errors=True)
    ours, theirs = base / "ours", base / "delta_rs"
    small_file_table(env, ours)
    shutil.copytree(ours, theirs)
    records = SMALL_FILES * SMALL_FILE_ROWS
    before = active_files(ours)

    started = time.monotonic()
    target = CompactTarget("bench", "small_files", str(ours), Compaction())
    outcome = compact_table(env.spark, target, env.settings)
    our_seconds = time.monotonic() - started

    started = time.monotonic()
    DeltaTable(str(theirs)).optimize.compact()
    their_seconds = time.monotonic() - started
    files = {"files_before": before}
    return (
        Run(
            "compact",
            records,
            our_seconds,
            "batch run compact on one table: OPTIMIZE and VACUUM through delta-spark",
            extra={**files, "files_after": active_files(ours), "detail": outcome.detail},
        ),
        Run(
            "delta_rs_compact",
            records,
            their_seconds,
            "deltalake's optimize.compact() on an identical copy",
            extra={**files, "files_after": active_files(theirs)},
        ),
    )


def processed_orders(env: BenchEnv, path: str, rows: int, first_id: int, days: int) -> None:
    """Append ``rows`` processed-shaped orders spread over ``days`` event dates ending
    today (the last day only when ``days`` is 1)."""
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = int(today.timestamp()) - (days - 1) * 86_400
    frame = env.spark.range(first_id, first_id + rows).selectExpr(
        "uuid() as order_id",
        "concat('c-', cast(id % 5000 as string)) as customer_id",
        "element_at(array('DE','FR','US','PL','SE','NL','GB','ES'), cast(id % 8 + 1 as int)) "
        "as country",
        "array(named_struct('sku', 'sku-1', 'qty', 1, 'price', cast(9.99 as decimal(12,2)))) "
        "as items",
        "cast(id % 50000 / 100 + 1 as decimal(12,2)) as amount",
        "'EUR' as currency",
        "element_at(array('created','paid','shipped','cancelled'), cast(id % 4 + 1 as int)) "
        "as status",
        f"timestamp_seconds({start} + (id % {days}) * 86400 + id % 86000) as created_at",
        "'bench' as _source",
        "'orders' as _stream",
        "'0' as _partition",
        "cast(id as string) as _position",
        "current_timestamp() as _ingest_ts",
        "false as _late",
        "false as _event_time_missing",
    )
    frame = frame.withColumn("event_date", frame["created_at"].cast("date"))
    frame.write.format("delta").mode("append").partitionBy("event_date").save(path)


def curate_incremental_vs_full(env: BenchEnv) -> tuple[Run, Run]:
    """curated.daily_revenue after a 1% append to processed.orders (incremental: only the
    appended day is read), against a full recompute of the same tables."""
    root = env.work / "curate"
    shutil.rmtree(root, ignore_errors=True)
    settings = env.settings.model_copy(
        update={"lake": LakeSettings(root=str(root / "lake"), checkpoint_root=str(root / "cp"))}
    )
    path = settings.lake.table_path("processed", "orders")
    processed_orders(env, path, CURATE_ROWS, 0, CURATE_DAYS)
    curate(env, settings)  # the first run: every day
    appended = int(CURATE_ROWS * APPEND_SHARE)
    processed_orders(env, path, appended, CURATE_ROWS, 1)

    started = time.monotonic()
    report = curate(env, settings)
    incremental_s = time.monotonic() - started
    # The same tables, recomputed as if curate had never run: it forgets its input versions.
    shutil.rmtree(settings.lake.meta_path("input_versions"))
    started = time.monotonic()
    curate(env, settings)
    full_s = time.monotonic() - started
    detail = report.tables[0].detail if report.tables else ""
    records = CURATE_ROWS + appended
    return (
        Run(
            "curate_incremental",
            records,
            incremental_s,
            f"curate daily_revenue after a {APPEND_SHARE:.0%} append over {CURATE_DAYS} days",
            extra={"detail": detail, "appended": appended},
        ),
        Run(
            "curate_full",
            records,
            full_s,
            "curate daily_revenue recomputed from the whole of processed.orders",
        ),
    )


def curate(env: BenchEnv, settings: Settings) -> BatchReport:
    run = BatchRun("curate", env.pipeline, settings, lambda: env.spark, only="daily_revenue")
    return run_batch_job(run)
