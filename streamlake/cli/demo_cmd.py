"""`streamlake demo`: the main job, end to end, on the local stack."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from streamlake.cli.context import cli_context
from streamlake.config.pipeline import Pipeline
from streamlake.errors import EXIT_JOB_FAILED
from streamlake.local.stack import LocalStack, aws_endpoint
from streamlake.produce.events import EventMix
from streamlake.produce.runner import produce

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

DEMO_JOBS = {
    "orders": "ingest-orders",
    "clickstream": "ingest-clickstream",
    "customers": "ingest-customers",
}


@dataclass
class DemoLine:
    source: str
    produced: int
    rows_before: int
    rows_after: int = 0

    @property
    def added(self) -> int:
        return self.rows_after - self.rows_before


def demo(
    ctx: typer.Context,
    count: Annotated[
        int, typer.Option(help="Events per source (customers get a quarter of it).", min=4)
    ] = 2000,
    seed: Annotated[int | None, typer.Option(help="Random seed; default: a new one.")] = None,
) -> None:
    """Start the local stack, produce to Kafka, Kinesis and DynamoDB, ingest all into raw."""
    from streaming import ingest, runtime
    from streaming.listener import BatchLogListener
    from streamlake.spark_session import build_spark_session

    context = cli_context(ctx)
    config = context.config()
    pipeline, settings = config.pipeline, config.settings
    console = context.console
    aws = aws_endpoint(settings)
    started = time.monotonic()
    with console.status("starting the local stack"):
        LocalStack(settings, pipeline).up()
    console.print(f"local stack healthy ({time.monotonic() - started:.1f}s)")
    with console.status("starting Spark"):
        spark = build_spark_session(settings, app_name="streamlake-demo")
    try:
        spark.streams.addListener(BatchLogListener())
        lines = []
        run_seed = seed if seed is not None else int(time.time())
        for source in DEMO_JOBS:
            n = count // 4 if source == "customers" else count
            mix = EventMix(n, bad_ratio=0.03, duplicate_ratio=0.02, seed=run_seed)
            before = table_rows(spark, settings.lake.table_path("raw", source))
            with console.status(f"producing {n} {source} events"):
                report = produce(source, pipeline, settings.bootstrap_servers, aws, mix)
            lines.append(DemoLine(source, report.acked, before))
        with console.status("ingesting: " + ", ".join(DEMO_JOBS.values())):
            jobs = [
                ingest.ingest_job(spark, name, pipeline, settings, aws, available_now=True)
                for name in DEMO_JOBS.values()
            ]
            runtime.run(jobs, runtime.RunMode(available_now=True), runtime.StopSignal())
        for line in lines:
            line.rows_after = table_rows(spark, settings.lake.table_path("raw", line.source))
    finally:
        spark.stop()
    print_summary(context.console, lines, pipeline)
    console.print(
        f"done in {time.monotonic() - started:.1f}s; lake at {settings.lake.root}; the local "
        "services keep running (`streamlake local down` stops them)"
    )
    if any(line.added != line.produced for line in lines):
        console.print("[red]a raw table did not gain exactly the records produced[/]")
        raise typer.Exit(EXIT_JOB_FAILED)


def table_rows(spark: SparkSession, path: str) -> int:
    from pyspark.errors import AnalysisException

    try:
        return spark.read.format("delta").load(path).count()
    except AnalysisException:
        return 0  # the table does not exist before its first batch


def print_summary(console: Console, lines: list[DemoLine], pipeline: Pipeline) -> None:
    table = Table(title="ingest: source -> raw", title_justify="left")
    for column in ("source", "kind", "produced now", "raw rows added", "raw rows in all"):
        table.add_column(column, justify="left" if column in ("source", "kind") else "right")
    sources = pipeline.sources
    for line in lines:
        table.add_row(
            line.source,
            sources[line.source].kind,
            str(line.produced),
            str(line.added),
            str(line.rows_after),
        )
    console.print(table)
