"""The batch layer's figures: compaction against delta-rs's own, and an incremental curate
against a full recompute of the same tables."""

from __future__ import annotations

import logging
import shutil
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

from batch.compact import CompactTarget, compact_table
from batch.jobs import BatchRun, run_batch_job
from batch.report import BatchReport, TableOutcome
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
WARM_UP_FILES = 200
COMPACT_ROUNDS = 3


def small_file_table(env: BenchEnv, path: Path, files: int = SMALL_FILES) -> None:
    """A table of ``files`` files of SMALL_FILE_ROWS order-like rows each, in one commit."""
    rows = env.spark.range(files * SMALL_FILE_ROWS).selectExpr(
        "id",
        "concat('c-', cast(id % 5000 as string)) as customer_id",
        "cast(id % 100000 / 100 as decimal(12,2)) as amount",
        "repeat('x', 64) as note",
    )
    rows.repartition(files).write.format("delta").save(str(path))


def active_files(path: Path) -> int:
    from deltalake import DeltaTable

    return len(DeltaTable(str(path)).file_uris())


def compact_vs_delta_rs(env: BenchEnv) -> tuple[Run, Run, Run]:
    """Our compact on a table of 2,000 small files, with either engine (Delta's OPTIMIZE in
    Spark, the default, and delta-rs), against delta-rs's ``optimize.compact()`` on an
    identical copy. Each engine first compacts a table of WARM_UP_FILES untimed: the JVM's
    first OPTIMIZE pays its JIT compilation (several times the steady figure here), which a
    compact run over many tables pays once. The two delta-rs runs, under a second each,
    alternate COMPACT_ROUNDS times on fresh copies and each keeps its median: one run of
    either swings by a third on this machine."""
    from deltalake import DeltaTable

    base = env.work / "compact"
    shutil.rmtree(base, ignore_errors=True)
    small_file_table(env, base / "warm", WARM_UP_FILES)
    small_file_table(env, base / "source")
    records = SMALL_FILES * SMALL_FILE_ROWS
    before = active_files(base / "source")

    def fresh(name: str) -> Path:
        path = base / name
        shutil.rmtree(path, ignore_errors=True)
        shutil.copytree(base / ("warm" if name.startswith("warm") else "source"), path)
        return path

    cold = {}
    for engine in ("spark", "delta-rs"):
        warm = fresh(f"warm_{engine}")
        started = time.monotonic()
        compact_copy(env, warm, engine)
        cold[engine] = time.monotonic() - started
    DeltaTable(str(fresh("warm_theirs"))).optimize.compact()

    spark_path = fresh("spark")
    started = time.monotonic()
    spark_outcome = compact_copy(env, spark_path, "spark")
    spark_seconds = time.monotonic() - started
    ours: list[float] = []
    theirs: list[float] = []
    for _ in range(COMPACT_ROUNDS):
        ours_path, theirs_path = fresh("delta_rs"), fresh("theirs")
        started = time.monotonic()
        ours_outcome = compact_copy(env, ours_path, "delta-rs")
        ours.append(time.monotonic() - started)
        started = time.monotonic()
        DeltaTable(str(theirs_path)).optimize.compact()
        theirs.append(time.monotonic() - started)

    def ours_run(name: str, engine: str, seconds: float, outcome: TableOutcome, path: str) -> Run:
        return Run(
            name,
            records,
            seconds,
            f"batch run compact on one table, compaction.engine {engine}: rewrite, then "
            "VACUUM's dry run",
            extra={
                "files_before": before,
                "files_after": active_files(base / path),
                "detail": outcome.detail,
                "warm_up_seconds": round(cold[engine], 2),
            },
        )

    return (
        ours_run("compact", "spark", spark_seconds, spark_outcome, "spark"),
        Run(
            "delta_rs_compact",
            records,
            statistics.median(theirs),
            "deltalake's optimize.compact() on an identical copy",
            extra={
                "files_before": before,
                "files_after": active_files(base / "theirs"),
                "rounds_seconds": [round(t, 3) for t in theirs],
            },
        ),
        ours_run(
            "compact_delta_rs_engine", "delta-rs", statistics.median(ours), ours_outcome, "delta_rs"
        ),
    )


def compact_copy(env: BenchEnv, path: Path, engine: str) -> TableOutcome:
    target = CompactTarget("bench", path.name, str(path), Compaction(engine=engine))
    return compact_table(env.spark, target, env.settings)


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
