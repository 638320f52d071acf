"""`streamlake demo`: the main job, end to end, on the local stack."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NamedTuple

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from batch.report import BatchReport
from connectors.aws import AwsEndpoint, aws_endpoint
from connectors.sns import received_notifications, subscribe_queue
from streamlake.cli.batch_cmd import print_report
from streamlake.cli.context import (
    CliContext,
    cli_context,
    heartbeat_of,
    notifying,
    publishing,
)
from streamlake.cli.demo_alerts import PurchaseAlerts, purchase_ids
from streamlake.cli.report_cmd import write_report
from streamlake.cli.workflow_cmd import outcome_dict, print_history, run_workflow
from streamlake.config.pipeline import Pipeline
from streamlake.config.settings import Settings
from streamlake.errors import EXIT_JOB_FAILED
from streamlake.lake.spark_delta import read_table, row_count
from streamlake.local.resources import ResourceStatus
from streamlake.local.stack import LocalStack
from streamlake.local.stale_state import reset_lake_state, sources_created_anew
from streamlake.metrics import MetricsPublisher
from streamlake.notifications import Notifier
from streamlake.produce.events import EventMix
from streamlake.produce.runner import produce

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from batch.workflow import RunOutcome

DEMO_JOBS = {
    "orders": "ingest-orders",
    "clickstream": "ingest-clickstream",
    "customers": "ingest-customers",
    "returns": "ingest-returns",
}
# Tables pulled from a database (before the streams are ingested).
PULL_JOBS = {"products": "pull-products"}
PROCESS_JOBS = {table: f"process-{table}" for table in (*DEMO_JOBS, *PULL_JOBS)}
# Sources the demo produces a quarter of the count to: fewer customers than orders, and
# fewer returns and product changes.
QUARTER_SOURCES = ("customers", "returns", "products")
# How long the demo waits, after the jobs, for the KCL consumer's purchase alerts.
ALERTS_TIMEOUT_S = 180.0
# The workflow the demo runs after processing.
DEMO_WORKFLOW = "nightly"
# What the demo shows of each curated table, through `streamlake query`.
CURATED_VIEWS = {
    "daily_revenue": "select * from curated.daily_revenue order by revenue desc limit 5",
    "customers": "select customer_id, name, country, tier, updated_at from curated.customers "
    "order by updated_at desc limit 5",
    "funnel": "select * from curated.funnel order by day desc, step_number limit 8",
}


@dataclass(frozen=True)
class TableCounts:
    """What a table's lake layers hold: raw rows, processed rows, quarantined by kind."""

    raw: int = 0
    processed: int = 0
    quarantined: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, spark: SparkSession, settings: Settings, table: str) -> TableCounts:
        lake = settings.lake
        quarantine = read_table(spark, lake.table_path("quarantine", table))
        by_kind = quarantine.groupBy("error_kind").count().collect() if quarantine else []
        return cls(
            row_count(spark, lake.table_path("raw", table)),
            row_count(spark, lake.table_path("processed", table)),
            {row[0]: int(row[1]) for row in by_kind},
        )


@dataclass
class DemoLine:
    """One source's run, counted in its tables (duplicates, which no table holds, in the
    process job's batch metrics)."""

    source: str
    produced: int
    before: TableCounts
    after: TableCounts = field(default_factory=TableCounts)
    duplicates: int = 0

    @property
    def added(self) -> int:
        return self.after.raw - self.before.raw

    @property
    def processed(self) -> int:
        return self.after.processed - self.before.processed

    @property
    def quarantined(self) -> dict[str, int]:
        kinds = self.after.quarantined
        added = {k: n - self.before.quarantined.get(k, 0) for k, n in kinds.items()}
        return {k: n for k, n in added.items() if n}

    def figures(self) -> dict[str, object]:
        return {
            "produced": self.produced,
            "raw_added": self.added,
            "raw_total": self.after.raw,
            "processed": self.processed,
            "quarantined": self.quarantined,
            "duplicates": self.duplicates,
        }

    @property
    def accounted(self) -> int:
        return self.processed + sum(self.quarantined.values()) + self.duplicates


def demo(
    ctx: typer.Context,
    count: Annotated[
        int,
        typer.Option(help="Events per source (customers and returns get a quarter).", min=4),
    ] = 2000,
    seed: Annotated[int | None, typer.Option(help="Random seed; default: a new one.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
) -> None:
    """Start the local stack, produce to Kafka, Kinesis and DynamoDB, ingest and process,
    then compact, curate, check and catalog, and show the curated tables and the
    notifications the jobs published."""
    from streamlake.spark_session import build_spark_session

    context = cli_context(ctx)
    config = context.config()
    pipeline, settings = config.pipeline, config.settings
    console = context.console
    aws = aws_endpoint(settings)
    started = time.monotonic()
    with console.status("starting the local stack"):
        status = LocalStack(settings, pipeline).up()
    console.print(f"local stack healthy ({time.monotonic() - started:.1f}s)")
    reset_stale_state(console, pipeline, settings, status.resources)
    inbox = notification_inbox(pipeline, aws)
    run_seed = seed if seed is not None else int(time.time())
    # The KCL consumer starts while Spark does, and alerts while the jobs run.
    alerts = PurchaseAlerts(pipeline, settings, aws)
    if inbox and alerts.available():
        alerts.start()
    try:
        with console.status("starting Spark"):
            spark = build_spark_session(settings, app_name="streamlake-demo")
        # The workflow's jobs beat on their own, each while it runs.
        beating = heartbeat_of(
            pipeline, [*DEMO_JOBS.values(), *PULL_JOBS.values(), *PROCESS_JOBS.values()]
        )
        with notifying(context) as notifier, publishing(context, beating) as metrics:
            outlets = Outlets(notifier, metrics)
            lines, workflow = run_pipeline(context, spark, aws, outlets, count, run_seed)
        reports = workflow.reports if workflow else []
        notifications: list[dict[str, Any]] = []
        if inbox:
            expected = purchase_ids(demo_mix("clickstream", count, run_seed))
            with console.status(f"waiting for the consumer's {len(expected)} purchase alerts"):
                notifications = alerts.wait_for(
                    expected if alerts.available() else set(),
                    lambda: received_notifications(aws, inbox),
                    ALERTS_TIMEOUT_S,
                )
    finally:
        alerts.stop()
    report: Path | None = None
    try:
        with console.status("writing the report"):
            report = write_report(context, Path(settings.local.state_dir) / "report.html")
    except Exception as exc:  # the pipeline ran: a report that cannot be written is news
        console.print(f"[yellow]warning: the report could not be written: {escape(str(exc))}[/]")
    done = (
        f"done in {time.monotonic() - started:.1f}s; lake at {settings.lake.root}; the local "
        "services keep running (`streamlake local down` stops them)"
    )
    if as_json:
        Console(stderr=True).print(done)
        figures = {
            "sources": {line.source: line.figures() for line in lines},
            "batch": [report.as_dict() for report in reports],
            "workflow": outcome_dict(workflow.run) if workflow else None,
            "notifications": [n["attributes"] for n in notifications],
            "purchase_alerts": sorted(alerts.alerted_ids()),
            "metrics": {
                "namespace": pipeline.metrics.namespace,
                "sent": metrics.sent,
                "failed": metrics.failed,
            },
            "report": str(report) if report else None,
        }
        print(json.dumps(figures, default=str))
    else:
        print_summary(console, lines, pipeline)
        for batch_report in reports:
            print_report(console, batch_report)
        if workflow is not None:
            show_workflow_runs(console, settings)
        show_curated(console, pipeline, settings)
        show_notifications(console, pipeline, notifications)
        show_alerts(console, alerts)
        if pipeline.metrics.namespace:
            console.print(
                f"metrics: {metrics.sent} values sent to CloudWatch namespace "
                f"{pipeline.metrics.namespace} (dimensions job and table)"
            )
        if report is not None:
            console.print(
                f"report: {report} (open it in a browser; `streamlake report` rewrites it)"
            )
        console.print(done)
    if alerts.available() and inbox:
        missing = expected - alerts.alerted_ids()
        if alerts.error is not None or missing:
            console.print(
                f"[red]the purchase-alert consumer {alerts.application} "
                + (
                    f"failed: {escape(str(alerts.error))}"
                    if alerts.error
                    else f"sent no alert for {len(missing)} of {len(expected)} purchases"
                )
                + "[/]"
            )
            raise typer.Exit(EXIT_JOB_FAILED)
    if workflow is not None and workflow.run.state != "succeeded":
        failed = workflow.run.failed_jobs
        why = workflow.run.steps[failed[0]].error if failed else workflow.run.stopped
        what = f"job {failed[0]}" if failed else "run"
        console.print(f"[red]workflow {DEMO_WORKFLOW}'s {what} failed: {escape(why or '')}[/]")
        raise typer.Exit(EXIT_JOB_FAILED)
    if any(line.added != line.produced for line in lines):
        console.print("[red]a raw table did not gain exactly the records produced[/]")
        raise typer.Exit(EXIT_JOB_FAILED)
    if any(line.accounted != line.added for line in lines):
        console.print("[red]processing did not account for every new raw record[/]")
        raise typer.Exit(EXIT_JOB_FAILED)


def run_pipeline(
    context: CliContext,
    spark: SparkSession,
    aws: AwsEndpoint,
    outlets: Outlets,
    count: int,
    run_seed: int,
) -> tuple[list[DemoLine], DemoWorkflow | None]:
    """Produce, ingest and process, then run the nightly workflow; Spark is stopped at the
    end."""
    from batch.jobs import BatchRun, run_batch_job
    from streaming import ingest, process, runtime
    from streaming.listener import BatchLogListener

    config = context.config()
    pipeline, settings, console = config.pipeline, config.settings, context.console
    notifier, metrics = outlets
    try:
        spark.streams.addListener(
            BatchLogListener.for_pipeline(pipeline, settings, notifier, metrics)
        )
        lines = []
        for source in (*DEMO_JOBS, *PULL_JOBS):
            mix = demo_mix(source, count, run_seed)
            n = mix.count
            before = TableCounts.of(spark, settings, source)
            with console.status(f"producing {n} {source} events"):
                report = produce(source, pipeline, settings, aws, mix)
            # A database row changed twice before the pull is one row version to pull.
            produced = report.acked if report.rows is None else report.rows
            lines.append(DemoLine(source, produced, before))
        for job in PULL_JOBS.values():
            with console.status(f"pulling: {job}"):
                pull = BatchRun(job, pipeline, settings, lambda: spark)
                pull.notifier, pull.metrics = notifier, metrics
                run_batch_job(pull)
        # Before ingesting: an inline process job processes while its ingest job runs.
        first_batch = {t: next_batch_id(spark, settings, j) for t, j in PROCESS_JOBS.items()}
        with console.status("ingesting: " + ", ".join(DEMO_JOBS.values())):
            jobs = [
                ingest.ingest_job(
                    spark,
                    name,
                    pipeline,
                    settings,
                    aws,
                    available_now=True,
                    notifier=notifier,
                    metrics=metrics,
                )
                for name in DEMO_JOBS.values()
            ]
            runtime.run(jobs, runtime.RunMode(available_now=True), runtime.StopSignal())
        separate = [n for n in PROCESS_JOBS.values() if pipeline.jobs[n].mode != "inline"]
        with console.status("processing: " + ", ".join(separate)):
            jobs = [
                process.process_job(
                    spark, name, pipeline, settings, notifier=notifier, metrics=metrics
                )
                for name in separate
            ]
            runtime.run(jobs, runtime.RunMode(available_now=True), runtime.StopSignal())
        for line in lines:
            line.after = TableCounts.of(spark, settings, line.source)
            job = PROCESS_JOBS[line.source]
            line.duplicates = duplicates_dropped(spark, settings, job, first_batch[line.source])
        workflow = None
        if DEMO_WORKFLOW in pipeline.workflows:
            run, launched = run_workflow(
                context,
                DEMO_WORKFLOW,
                "manual",
                threading.Event(),
                True,
                notifier,
                metrics,
                lambda: spark,
            )
            order = pipeline.workflows[DEMO_WORKFLOW].order()
            reports = [launched.reports[job] for job in order if job in launched.reports]
            workflow = DemoWorkflow(run, reports)
    finally:
        spark.stop()
    return lines, workflow


@dataclass(frozen=True)
class DemoWorkflow:
    """The demo's run of its workflow and the reports of the batch jobs that ran."""

    run: RunOutcome
    reports: list[BatchReport]


def show_workflow_runs(console: Console, settings: Settings) -> None:
    """The workflow's latest runs, as `streamlake workflow history` shows them."""
    from streamlake.lake.workflow_runs import run_history

    runs = run_history(settings.lake.meta_path("workflow_runs"), settings, DEMO_WORKFLOW, 3)
    print_history(console, runs)
    console.print(f"(`streamlake workflow history {DEMO_WORKFLOW}` shows them all)")


def demo_mix(source: str, count: int, seed: int) -> EventMix:
    """What the demo produces to ``source``."""
    n = count // 4 if source in QUARTER_SOURCES else count
    return EventMix(n, bad_ratio=0.03, duplicate_ratio=0.02, seed=seed)


def show_alerts(console: Console, alerts: PurchaseAlerts) -> None:
    if not alerts.alerts:
        return
    table = Table(
        title=f"purchase alerts from the KCL consumer {alerts.application} "
        f"({len(alerts.alerts)}, the last 5)",
        title_justify="left",
    )
    for column in ("event_id", "customer_id", "shard", "ts"):
        table.add_column(column)
    for alert in alerts.alerts[-5:]:
        message = alert["message"]
        table.add_row(
            *(str(message.get(column)) for column in ("event_id", "customer_id", "shard", "ts"))
        )
    console.print(table)


class Outlets(NamedTuple):
    """Where the demo's jobs report: notifications and metrics."""

    notifier: Notifier
    metrics: MetricsPublisher


# The queue the demo subscribes to the pipeline's notification topic, to show what the
# jobs published.
DEMO_INBOX = "streamlake-demo-notifications"


def notification_inbox(pipeline: Pipeline, aws: AwsEndpoint) -> str | None:
    """The demo's queue on the notification topic, emptied of earlier runs' messages; None
    when the pipeline sends no notifications."""
    topic = pipeline.notifications.topic
    if topic is None:
        return None
    url = subscribe_queue(aws, topic, DEMO_INBOX)
    received_notifications(aws, url)
    return url


def show_notifications(
    console: Console, pipeline: Pipeline, notifications: list[dict[str, Any]]
) -> None:
    if pipeline.notifications.topic is None:
        return
    table = Table(
        title=f"notifications on {pipeline.notifications.topic} (SNS, through an SQS queue)",
        title_justify="left",
    )
    for column in ("event", "job", "severity", "subject"):
        table.add_column(column)
    for notification in notifications:
        attributes = notification["attributes"]
        table.add_row(
            attributes["event"],
            attributes["job"],
            attributes["severity"],
            notification["message"]["subject"],
        )
    console.print(table)


def show_curated(console: Console, pipeline: Pipeline, settings: Settings) -> None:
    """The top rows of each curated table, read as `streamlake query` reads them."""
    from streamlake.cli.query_cmd import result_table
    from streamlake.lake.query import run_query

    for name, sql in CURATED_VIEWS.items():
        if name in pipeline.curated:
            console.print(f"[bold]streamlake query[/] {json.dumps(sql)}")
            console.print(result_table(run_query(sql, pipeline, settings)))


def reset_stale_state(
    console: Console, pipeline: Pipeline, settings: Settings, resources: list[ResourceStatus]
) -> None:
    """Sources the stack created just now are empty: the lake state of the old ones goes."""
    for source in sources_created_anew(pipeline, resources):
        if settings.lake.root.startswith("s3"):
            console.print(f"[yellow]{source} was created anew; its lake state on S3 is kept[/]")
            continue
        removed = reset_lake_state(pipeline, settings, source)
        if removed:
            console.print(
                f"[yellow]{source} was created anew (the local server had lost it): "
                f"reset its lake state ({len(removed)} tables, checkpoints and metrics)[/]"
            )


def next_batch_id(spark: SparkSession, settings: Settings, job: str) -> int:
    """The batch id the job's next run starts with (its metrics rows say where it was)."""
    from pyspark.sql import functions as F

    metrics = read_table(spark, settings.lake.meta_path("batch_metrics"))
    if metrics is None:
        return 0
    value = metrics.where(F.col("job") == job).agg(F.max("batch_id")).first()
    return 0 if value is None or value[0] is None else int(value[0]) + 1


def duplicates_dropped(spark: SparkSession, settings: Settings, job: str, first_batch: int) -> int:
    """Duplicates the job dropped in this run's batches, from its batch metrics."""
    from pyspark.sql import functions as F

    metrics = read_table(spark, settings.lake.meta_path("batch_metrics"))
    if metrics is None:
        return 0
    this_run = (F.col("job") == job) & (F.col("batch_id") >= first_batch)
    total = metrics.where(this_run).agg(F.sum("duplicates")).first()
    return int(total[0] or 0) if total else 0


def print_summary(console: Console, lines: list[DemoLine], pipeline: Pipeline) -> None:
    table = Table(title="this run: source -> raw -> processed | quarantine", title_justify="left")
    for column in ("source", "produced", "raw added", "processed", "quarantined", "duplicates"):
        table.add_column(column, justify="left" if column == "source" else "right")
    for line in lines:
        table.add_row(
            f"{line.source} ({pipeline.sources[line.source].kind})",
            str(line.produced),
            str(line.added),
            str(line.processed),
            str(sum(line.quarantined.values())),
            str(line.duplicates),
        )
    console.print(table)
    for line in lines:
        reasons = ", ".join(f"{n} {kind}" for kind, n in sorted(line.quarantined.items()))
        if reasons:
            console.print(f"quarantine.{line.source}: {reasons}")
