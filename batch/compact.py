"""`batch run compact`: bin-pack each lake table's small files (Delta OPTIMIZE, Z-ordered
where the pipeline says) and VACUUM the files no version within its retention needs.

It runs beside the streaming jobs. OPTIMIZE commits with dataChange=false, which streaming
readers skip and a concurrent append does not conflict with; a conflict with another
rewrite (a replay's delete, a MERGE) is retried on the new snapshot. VACUUM deletes only
files unreferenced for longer than the retention, and the retention is refused up front
when a streaming reader's checkpoint still points at an older version."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from batch.jobs import BatchRun
from batch.report import BatchReport, TableOutcome
from connectors.s3 import location_files
from streamlake.config.pipeline import Compaction, Pipeline, interval_seconds
from streamlake.config.settings import Settings
from streamlake.errors import RetentionError, UsageError
from streamlake.lake import delta_rs
from streamlake.lake.checkpoint import CheckpointFiles
from streamlake.lake.delta_log import DeltaLogFiles
from streamlake.lake.delta_rs import table_size, vacuum_candidates
from streamlake.lake.spark_delta import retry_on_conflict, table_exists
from streamlake.lake.tables import CURATED, META_TABLES

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CompactTarget:
    layer: str
    name: str
    path: str
    compaction: Compaction

    @property
    def label(self) -> str:
        return f"{self.layer}.{self.name}"

    @property
    def retention_hours(self) -> float:
        return interval_seconds(self.compaction.retention) / 3600


@dataclass(frozen=True)
class StreamReader:
    """A streaming job that reads a lake table, and the oldest version it still needs."""

    job: str
    path: str
    version: int


def declared_targets(run: BatchRun) -> list[CompactTarget]:
    """Every table the pipeline's jobs write, with its compaction settings."""
    lake, pipeline = run.settings.lake, run.pipeline
    targets = [
        CompactTarget(
            layer, name, lake.table_path(layer, name), compaction_of(pipeline, layer, name)
        )
        for layer, name in pipeline.lake_table_names()
    ]
    targets += [CompactTarget("_meta", n, lake.meta_path(n), Compaction()) for n in META_TABLES]
    return targets


def compaction_of(pipeline: Pipeline, layer: str, name: str) -> Compaction:
    """A table's compaction settings: a curated table's own (its history table's owner's),
    a processed table's, and for raw and quarantine their table's but the Z-order."""
    if layer == CURATED:
        owner = name if name in pipeline.curated else name.removesuffix("_history")
        return pipeline.curated[owner].compaction
    compaction = pipeline.tables[name].compaction
    if layer == "processed":
        return compaction
    return Compaction(retention=compaction.retention, engine=compaction.engine)


def compaction_targets(run: BatchRun) -> list[CompactTarget]:
    """The declared tables ``--table`` selects that exist."""
    selected = [t for t in declared_targets(run) if run.selects(t.layer, t.name)]
    if not selected:
        raise UsageError(
            f"no lake table named {run.only!r}",
            "name a pipeline or curated table (orders) or one layer of it (processed.orders)",
        )
    return [t for t in selected if table_exists(run.spark, t.path)]


def stream_readers(run: BatchRun) -> list[StreamReader]:
    """The separate process jobs, each with the raw version its next batch starts from."""
    readers = []
    for job_name, job in run.pipeline.jobs.items():
        if job.kind != "process" or job.mode != "separate" or job.table is None:
            continue
        checkpoint = location_files(run.settings.lake.checkpoint_path(job_name), run.settings)
        files = CheckpointFiles(checkpoint.location, checkpoint.s3)
        committed = files.batch_ids("commits")
        if not committed:
            continue  # a job that never ran starts from the table's newest version
        offset = json.loads(files.source_offset(committed[-1]))
        path = run.settings.lake.table_path("raw", job.table)
        readers.append(StreamReader(job_name, path, int(offset["reservoirVersion"])))
    return readers


def check_retention(
    settings: Settings, targets: list[CompactTarget], readers: list[StreamReader]
) -> None:
    """Refuse, before touching anything, a retention that would let VACUUM delete files a
    stream reader has yet to read: files of its version are removed no earlier than that
    version's commit, so the retention must reach back to it."""
    now = datetime.now(UTC)
    for target in targets:
        for reader in (r for r in readers if r.path == target.path):
            log_files = location_files(f"{target.path}/_delta_log", settings)
            committed = DeltaLogFiles(log_files.location, log_files.s3).commit_time(reader.version)
            if committed is None:
                continue
            age_h = (now - committed).total_seconds() / 3600
            if target.retention_hours < age_h:
                raise RetentionError(
                    f"retention {target.compaction.retention} is shorter than {reader.job} "
                    f"needs: it reads from version {reader.version}, committed "
                    f"{age_h:.1f} hours ago",
                    f"raise compaction.retention of {target.name} in the pipeline, or run "
                    f"{reader.job} until it catches up first",
                    table=target.label,
                    reader=reader.job,
                    version=reader.version,
                )


def compact_table(spark: SparkSession, target: CompactTarget, settings: Settings) -> TableOutcome:
    from delta.tables import DeltaTable

    started = time.monotonic()
    before = table_size(target.path, settings)
    zorder = target.compaction.zorder_by if target.layer == "processed" else []

    def optimize() -> tuple[int, int]:
        if target.compaction.engine == "delta-rs":
            return delta_rs.optimize(target.path, settings, zorder)
        builder = DeltaTable.forPath(spark, target.path).optimize()
        result = builder.executeZOrderBy(*zorder) if zorder else builder.executeCompaction()
        row = result.select("metrics.numFilesAdded", "metrics.numFilesRemoved").first()
        return (int(row[0] or 0), int(row[1] or 0)) if row else (0, 0)

    added, removed = retry_on_conflict(f"optimize {target.label}", optimize)
    # A dry run lists the folder in milliseconds; Delta's VACUUM takes seconds even when it
    # has nothing to delete, so it runs only when there is something.
    doomed = vacuum_candidates(target.path, settings, target.retention_hours)
    if doomed:
        retry_on_conflict(
            f"vacuum {target.label}",
            lambda: DeltaTable.forPath(spark, target.path).vacuum(target.retention_hours),
        )
    after = table_size(target.path, settings)
    how = f"z-order {', '.join(zorder)}: " if zorder else ""
    if target.compaction.engine == "delta-rs":
        how = f"delta-rs {how}"
    return TableOutcome(
        target.label,
        "optimized" if removed else "unchanged",
        before.files,
        after.files,
        before.bytes,
        after.bytes,
        rows_changed=0,
        seconds=time.monotonic() - started,
        detail=(f"{how}{removed} files -> {added}; " if removed else "")
        + (f"vacuumed {doomed} files" if doomed else "nothing to vacuum")
        + f" past {target.compaction.retention}",
    )


# Our own check (check_retention) replaces Delta's fixed 7-day floor; and Delta 4 ignores
# VACUUM's retention argument (in favour of a table property, which would be a metadata
# commit that fails the streaming writers' next commit) unless told not to.
VACUUM_CONF = {
    "spark.databricks.delta.retentionDurationCheck.enabled": "false",
    "spark.databricks.delta.vacuum.retentionWindowIgnore.enabled": "false",
}


@contextmanager
def vacuum_settings(spark: SparkSession) -> Iterator[None]:
    """VACUUM_CONF for the job's duration; a borrowed session gets its own values back."""
    before: dict[str, str | None] = {key: spark.conf.get(key, None) for key in VACUUM_CONF}
    for key, value in VACUUM_CONF.items():
        spark.conf.set(key, value)
    try:
        yield
    finally:
        for key, old in before.items():
            if old is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, old)


def run(run: BatchRun) -> BatchReport:
    report = BatchReport(run.job, "compact")
    targets = compaction_targets(run)
    check_retention(run.settings, targets, stream_readers(run))
    with vacuum_settings(run.spark):
        for target in targets:
            run.progress(f"compacting {target.label}")
            report.tables.append(compact_table(run.spark, target, run.settings))
    return report
