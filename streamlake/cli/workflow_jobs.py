"""How a workflow's jobs run in one process: batch jobs as `batch run` runs them, streaming
jobs as `stream run --available-now` does, all on one Spark session started at the first
job that needs one. Each job beats in ``_meta/job_status`` while it runs."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from streamlake.config.settings import Settings
from streamlake.errors import StreamlakeError
from streamlake.lake.job_status import JobStatusRecorder
from streamlake.metrics import MetricsPublisher, PublisherGroup
from streamlake.notifications import Notifier

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from batch.report import BatchReport
    from streamlake.config.pipeline import Pipeline


# How often a cancelled batch job's Spark jobs are cancelled again until it ends.
CANCEL_EVERY_S = 1.0


@dataclass
class JobFailedError(StreamlakeError):
    """A batch job ended with a failure it reported (a blocking quality rule, a table it
    could not write)."""

    job: str = ""


@dataclass
class WorkflowJobs:
    """Runs the jobs of workflow runs (a ``JobLauncher``); ``close`` stops the Spark session
    it started."""

    workflow: str
    pipeline: Pipeline
    settings: Settings
    notifier: Notifier
    metrics: MetricsPublisher
    # Gives the session to run on (the caller's to stop); None: one of this object's own,
    # started at the first job needing it.
    spark_factory: Callable[[], SparkSession] | None = None
    progress: dict[str, str] = field(default_factory=dict)  # job -> its latest line
    reports: dict[str, BatchReport] = field(default_factory=dict)  # batch job -> its last
    _spark: SparkSession | None = None
    _borrowed: bool = False

    def __call__(self, job: str, cancel: threading.Event) -> None:
        kind = self.pipeline.jobs[job].kind
        path = self.settings.lake.meta_path("job_status")
        status = JobStatusRecorder(
            path, self.settings, {job: kind}, self.settings.metrics.heartbeat_s
        )
        metrics = PublisherGroup([self.metrics, status.begin()])
        try:
            if kind in ("ingest", "process"):
                self._stream(job, cancel, metrics)
            else:
                self._batch(job, cancel, metrics)
        except BaseException as exc:
            status.finish(exc)
            raise
        status.finish()

    def spark(self) -> SparkSession:
        from streamlake.spark_session import active_spark_session, build_spark_session

        if self._spark is None and self.spark_factory is not None:
            self._spark, self._borrowed = self.spark_factory(), True
        if self._spark is None:
            self._borrowed = active_spark_session() is not None
            app = f"streamlake-workflow-{self.workflow}"
            self._spark = build_spark_session(self.settings, app_name=app)
        return self._spark

    def close(self) -> None:
        if self._spark is not None and not self._borrowed:
            self._spark.stop()
        self._spark = None

    def _batch(self, job: str, cancel: threading.Event, metrics: MetricsPublisher) -> None:
        from batch.jobs import BatchRun, run_batch_job

        spark_group = f"{self.workflow}-{job}-{uuid.uuid4().hex[:8]}"

        def session() -> SparkSession:
            spark = self.spark()
            # Pinned threads: the group is this job thread's, which its cancel aims at.
            spark.sparkContext.setJobGroup(spark_group, f"workflow {self.workflow}: {job}", True)
            return spark

        done = threading.Event()
        watcher = threading.Thread(
            target=self._cancel_group_while, args=(cancel, done, spark_group), daemon=True
        )
        watcher.start()
        run = BatchRun(
            job,
            self.pipeline,
            self.settings,
            session,
            progress=lambda line: self.progress.__setitem__(job, line),
            notifier=self.notifier,
            metrics=metrics,
        )
        try:
            report = run_batch_job(run)
        finally:
            done.set()
        self.reports[job] = report
        if report.failed:
            raise JobFailedError(report.failed, job=job)

    def _cancel_group_while(
        self, cancel: threading.Event, done: threading.Event, group: str
    ) -> None:
        """Once ``cancel`` is set, cancel the job group's Spark jobs until the job ends:
        Spark cancels only the jobs running, and the job may start more."""
        while not done.wait(CANCEL_EVERY_S):
            if cancel.is_set() and self._spark is not None:
                self._spark.sparkContext.cancelJobGroup(group)

    def _stream(self, job: str, cancel: threading.Event, metrics: MetricsPublisher) -> None:
        from connectors.aws import aws_endpoint
        from streaming import ingest, process, runtime
        from streaming.listener import BatchLogListener

        spark = self.spark()
        listener = BatchLogListener.for_pipeline(
            self.pipeline, self.settings, self.notifier, metrics
        )
        spark.streams.addListener(listener)
        stop = runtime.StopSignal()
        stop.event = cancel  # a cancelled job stops at a batch boundary
        pipeline, settings, notifier = self.pipeline, self.settings, self.notifier
        self.notifier.notify("job_started", job, f"{job} started", "workflow " + self.workflow)
        try:
            if pipeline.jobs[job].kind == "ingest":
                aws = aws_endpoint(settings)
                stream_job = ingest.ingest_job(
                    spark, job, pipeline, settings, aws, True, notifier=notifier, metrics=metrics
                )
            else:
                stream_job = process.process_job(
                    spark, job, pipeline, settings, notifier=notifier, metrics=metrics
                )
            runtime.run([stream_job], runtime.RunMode(available_now=True), stop)
        except Exception as exc:
            from streamlake.errors import first_line

            notifier.notify("job_failed", job, f"{job} failed", first_line(exc))
            raise
        finally:
            spark.streams.removeListener(listener)
        if cancel.is_set():
            raise JobFailedError(f"{job} was cancelled", job=job)
        notifier.notify("job_succeeded", job, f"{job} finished", "workflow " + self.workflow)
