"""The batch jobs a pipeline declares, by kind: what `streamlake batch run <job>` runs."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from batch.report import BatchReport
from streamlake.config.pipeline import Pipeline
from streamlake.config.settings import Settings
from streamlake.errors import DataLossError, UsageError, first_line
from streamlake.metrics import MetricsPublisher, job_points
from streamlake.notifications import Notifier

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


@dataclass
class BatchRun:
    """One run of a batch job: what it may touch and how it reaches Spark.

    ``only`` is the ``--table`` filter (a pipeline table or curated table name, or
    ``layer.name``), None for all. ``spark`` builds the session on first use, so jobs that
    need no Spark start none. ``progress`` is called with a short line as work advances."""

    job: str
    pipeline: Pipeline
    settings: Settings
    spark_factory: Callable[[], SparkSession]
    only: str | None = None
    # Where the pipeline was read from, for errors that point into it.
    pipeline_file: str = "pipeline.yaml"
    progress: Callable[[str], None] = lambda _line: None
    notifier: Notifier = field(default_factory=Notifier)
    metrics: MetricsPublisher = field(default_factory=MetricsPublisher)
    _spark: SparkSession | None = field(default=None, repr=False)

    @property
    def spark(self) -> SparkSession:
        if self._spark is None:
            self._spark = self.spark_factory()
        return self._spark

    @property
    def started_spark(self) -> bool:
        return self._spark is not None

    def selects(self, layer: str, name: str) -> bool:
        """Whether ``--table`` lets this run touch ``layer.name``."""
        return self.only is None or self.only in (name, f"{layer}.{name}")


Runner = Callable[[BatchRun], BatchReport]


def runners() -> dict[str, Runner]:
    """Job kind -> the function that runs it (imported here, so a kind's dependencies load
    only when it runs)."""
    from batch import catalog, compact, crawl, curate, export, pull, quality

    return {
        "pull": pull.run,
        "compact": compact.run,
        "curate": curate.run,
        "quality": quality.run,
        "catalog": catalog.run,
        "crawl": crawl.run,
        "export": export.run,
    }


def run_batch_job(run: BatchRun) -> BatchReport:
    """Run the pipeline's batch job ``run.job``."""
    pipeline = run.pipeline
    batch_jobs = sorted(n for n, j in pipeline.jobs.items() if j.kind in runners())
    job = pipeline.jobs.get(run.job)
    if job is None or job.kind not in runners():
        raise UsageError(
            f"no batch job named {run.job!r}",
            f"batch jobs of the pipeline: {', '.join(batch_jobs) or 'none'}",
        )
    started = time.monotonic()
    notify = run.notifier.notify
    notify("job_started", run.job, f"{run.job} started", table=run.only or "")
    try:
        report = runners()[job.kind](run)
    except Exception as exc:
        if isinstance(exc, DataLossError):
            notify("data_loss", run.job, f"{run.job}: data lost", first_line(exc))
        notify("job_failed", run.job, f"{run.job} failed", first_line(exc), run.only or "")
        run.metrics.publish(job_points(run.job, time.monotonic() - started, True, []))
        raise
    report.seconds = time.monotonic() - started
    notify_outcome(run, job.kind, report)
    changed = [(t.table, t.rows_changed) for t in report.tables if t.rows_changed is not None]
    run.metrics.publish(job_points(run.job, report.seconds, report.failed is not None, changed))
    return report


def notify_outcome(run: BatchRun, kind: str, report: BatchReport) -> None:
    """A failed quality job is a data-quality breach besides a failed job."""
    if report.failed is None:
        detail = f"{len(report.tables)} tables in {report.seconds:.1f}s"
        run.notifier.notify(
            "job_succeeded", run.job, f"{run.job} succeeded", detail, run.only or ""
        )
        return
    if kind == "quality":
        run.notifier.notify(
            "quality_breach", run.job, f"{run.job}: a blocking rule failed", report.failed
        )
    run.notifier.notify("job_failed", run.job, f"{run.job} failed", report.failed, run.only or "")
