"""`streamlake produce`: realistic synthetic events for a declared source."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from connectors.aws import aws_endpoint
from streamlake.cli.context import cli_context
from streamlake.produce.events import EventMix
from streamlake.produce.runner import ProduceReport, produce


def produce_command(
    ctx: typer.Context,
    source: Annotated[str, typer.Argument(help="A source of the pipeline: orders, clickstream...")],
    count: Annotated[int, typer.Option("--count", "-n", min=1, help="Events to send.")] = 1000,
    rate: Annotated[
        float | None, typer.Option(min=0.001, help="At most this many events per second.")
    ] = None,
    bad_ratio: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Share of malformed or invalid events.")
    ] = 0.0,
    duplicate_ratio: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Share of events re-sent as exact copies.")
    ] = 0.0,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed, the same events.")] = 0,
) -> None:
    """Write realistic synthetic events to a declared source (Kafka, Kinesis or DynamoDB)."""
    context = cli_context(ctx)
    config = context.config()
    settings = config.settings
    mix = EventMix(count, bad_ratio=bad_ratio, duplicate_ratio=duplicate_ratio, seed=seed)
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("sent {task.completed:.0f}/{task.total:.0f}"),
        TextColumn("acked {task.fields[acked]}"),
        TextColumn("{task.fields[rate]:.0f}/s"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=context.console, transient=False) as progress:
        task = progress.add_task(source, total=count, acked=0, rate=0.0)

        def show(report: ProduceReport) -> None:
            progress.update(task, completed=report.sent, acked=report.acked, rate=report.rate)

        report = produce(
            source,
            config.pipeline,
            settings,
            aws_endpoint(settings),
            mix,
            rate=rate,
            on_progress=show,
        )
    kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(report.kinds.items()))
    context.console.print(
        f"{source}: {report.acked} of {report.sent} events acknowledged in "
        f"{report.seconds:.1f}s ({kinds})"
    )
