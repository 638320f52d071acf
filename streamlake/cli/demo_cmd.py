"""`streamlake demo`: the main job, end to end, on the local stack."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.table import Table

from streamlake.cli.context import cli_context
from streamlake.errors import EXIT_JOB_FAILED
from streamlake.local.stack import LocalStack


def demo(
    ctx: typer.Context,
    count: Annotated[int, typer.Option(help="Synthetic orders to produce.", min=1)] = 1000,
) -> None:
    """Start the local stack, produce orders to Kafka, land them in Delta, read them back."""
    from streamlake.platform_check import run_platform_check
    from streamlake.spark_session import build_spark_session

    context = cli_context(ctx)
    config = context.config()
    console = context.console
    started = time.monotonic()
    with console.status("starting the local stack"):
        LocalStack(config.settings, config.pipeline).up()
    console.print(f"local stack healthy ({time.monotonic() - started:.1f}s)")
    with console.status("starting Spark"):
        spark = build_spark_session(config.settings, app_name="streamlake-demo")
    try:
        with console.status(f"producing {count} orders and landing them in Delta"):
            result = run_platform_check(spark, config.settings, count)
    finally:
        spark.stop()
    table = Table(title="platform check", title_justify="left")
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_row("orders produced now (Kafka, acks=all)", str(result.produced))
    table.add_row("records in topic platform-check", str(result.topic_records))
    table.add_row("rows in raw.platform_check (Spark)", str(result.spark_rows))
    for partition, rows in result.spark_rows_by_partition.items():
        table.add_row(f"  from partition {partition}", str(rows))
    table.add_row("rows read by delta-rs", str(result.delta_rs_rows))
    table.add_row("Delta table version", str(result.delta_version))
    console.print(table)
    console.print(f"table: {result.table_path}")
    console.print(
        f"done in {time.monotonic() - started:.1f}s; the local services keep running "
        "(`streamlake local down` stops them)"
    )
    if not result.topic_records == result.spark_rows == result.delta_rs_rows:
        console.print("[red]the table does not hold every record of the topic[/]")
        raise typer.Exit(EXIT_JOB_FAILED)
