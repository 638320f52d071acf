"""`streamlake consume`: a handler called for every record of a Kinesis stream, through the
Kinesis Client Library, until SIGINT/SIGTERM."""

from __future__ import annotations

import re
import time
from typing import Annotated, Any

import typer

from connectors.aws import aws_endpoint
from connectors.kinesis.kcl import (
    ConsumerSpec,
    ConsumeSummary,
    InitialPosition,
    KclConsumer,
    resolve_handler,
)
from streaming.runtime import StopSignal
from streamlake.cli.context import CliContext, cli_context
from streamlake.config.pipeline import KinesisSource, Pipeline
from streamlake.errors import ResourceError, UsageError
from streamlake.paths import default_kcl_jars_dir

PROGRESS_EVERY_S = 10.0


def consume_command(
    ctx: typer.Context,
    stream: Annotated[
        str, typer.Argument(help="A Kinesis source of the pipeline (clickstream), or a stream.")
    ],
    handler: Annotated[
        str,
        typer.Option(
            "--handler", help="module:function called as function(record, context) per record."
        ),
    ],
    application: Annotated[
        str | None,
        typer.Option(
            "--app",
            help="KCL application name, also its DynamoDB lease table "
            "[default: <pipeline>-<stream>-<function>].",
        ),
    ] = None,
    start: Annotated[
        str,
        typer.Option("--from", help="Where a new application starts: trim_horizon or latest."),
    ] = "trim_horizon",
    kcl_property: Annotated[
        list[str] | None,
        typer.Option(
            "--kcl-property", help="A KCL MultiLangDaemon property key=value (repeatable)."
        ),
    ] = None,
) -> None:
    """Call a handler for every record of a Kinesis stream (at least once), checkpointing
    after each batch; stops on SIGINT/SIGTERM, or with exit 1 when the handler raises."""
    context = cli_context(ctx)
    config = context.config()
    settings = config.settings
    stream_name = kinesis_stream(config.pipeline, stream)
    resolve_handler(handler)
    if start not in ("trim_horizon", "latest"):
        raise UsageError(f"--from {start}: must be trim_horizon or latest")
    position: InitialPosition = "TRIM_HORIZON" if start == "trim_horizon" else "LATEST"
    aws = aws_endpoint(settings)
    check_stream(aws.client("kinesis", retries=2), stream_name)
    name = application or default_application(config.pipeline.name, stream_name, handler)
    spec = ConsumerSpec(
        application=name,
        stream=stream_name,
        handler=handler,
        aws=aws,
        run_dir=settings.local.state_dir / "consume" / name,
        jars_dir=default_kcl_jars_dir(),
        topic=config.pipeline.notifications.topic,
        initial_position=position,
        properties=parse_properties(kcl_property or []),
    )
    context.err_console.print(
        f"consuming {stream_name} as {name} (lease table {name}) with {handler}; "
        f"SIGINT or SIGTERM stops; daemon log {spec.daemon_log}",
        soft_wrap=True,
    )
    summary = run_consumer(context, spec)
    shards = ", ".join(
        f"{shard} {progress.records} (checkpoint {progress.checkpoint or 'none'})"
        for shard, progress in sorted(summary.shards.items())
    )
    context.console.print(
        f"{name}: {summary.records} records handled" + (f": {shards}" if shards else "")
    )


def run_consumer(context: CliContext, spec: ConsumerSpec) -> ConsumeSummary:
    """Runs the consumer until SIGINT/SIGTERM, a progress line every PROGRESS_EVERY_S."""
    last_shown = [time.monotonic()]

    def show(summary: ConsumeSummary) -> None:
        if time.monotonic() - last_shown[0] >= PROGRESS_EVERY_S:
            last_shown[0] = time.monotonic()
            context.err_console.print(
                f"{spec.application}: {summary.records} records handled "
                f"from {len(summary.shards)} shards"
            )

    with StopSignal().installed() as stop:
        return KclConsumer(spec).run(stop.event, on_progress=show)


def kinesis_stream(pipeline: Pipeline, name: str) -> str:
    """The Kinesis stream a source of the pipeline reads, or ``name`` itself."""
    source = pipeline.sources.get(name)
    if source is None:
        return name
    if not isinstance(source, KinesisSource):
        raise UsageError(
            f"source {name} is a {source.kind} source",
            "consume reads Kinesis streams: name a kinesis source or a stream",
        )
    return source.stream


def check_stream(kinesis: Any, stream: str) -> None:
    """Refuse a stream that does not exist before the daemon starts (it would retry)."""
    try:
        kinesis.describe_stream_summary(StreamName=stream)
    except kinesis.exceptions.ResourceNotFoundException:
        raise ResourceError(
            f"Kinesis stream {stream} does not exist", "run local up, or create the stream"
        ) from None


def default_application(pipeline: str, stream: str, handler: str) -> str:
    function = handler.rpartition(":")[2]
    return re.sub(r"[^A-Za-z0-9_.-]", "-", f"{pipeline}-{stream}-{function}")


def parse_properties(pairs: list[str]) -> dict[str, str]:
    properties = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--kcl-property {pair}: expected key=value")
        properties[key.strip()] = value.strip()
    return properties
