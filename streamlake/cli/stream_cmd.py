"""`streamlake stream run`: run streaming jobs."""

from __future__ import annotations

import logging
from enum import Enum
from typing import Annotated, TypeVar

import typer

from connectors.aws import aws_endpoint
from streamlake.cli.context import cli_context, heartbeat_of, notifying, publishing
from streamlake.errors import DataLossError, UsageError, first_line
from streamlake.notifications import Notifier

T = TypeVar("T", bound=Enum)

app = typer.Typer(help="Run streaming jobs.", no_args_is_help=True)


@app.command("run")
def run_command(
    ctx: typer.Context,
    job: Annotated[str, typer.Argument(help="A streaming job of the pipeline, or 'all'.")],
    available_now: Annotated[
        bool, typer.Option("--available-now", help="Process what is there now, then exit.")
    ] = False,
    until_idle: Annotated[
        float | None,
        typer.Option(
            "--until-idle", min=0.0, help="Exit once no new data arrived for this many seconds."
        ),
    ] = None,
    recover: Annotated[
        str | None,
        typer.Option(
            "--recover",
            help=(
                "For one job whose checkpoint disagrees with its table: move the checkpoint "
                "aside and start after the table's last batch (from-table) or at the "
                "source's configured position (fresh)."
            ),
        ),
    ] = None,
    accept_gap: Annotated[
        list[str] | None,
        typer.Option(
            "--accept-gap",
            help=(
                "Go on, this run only, past records lost on a Kinesis or DynamoDB Streams "
                "shard, as the data-loss error names them: <stream>/<shard>/<after>..<until>."
            ),
        ),
    ] = None,
) -> None:
    """Run streaming jobs; with no flag, until SIGINT/SIGTERM, stopping at a batch boundary."""
    from streaming import ingest, process, runtime
    from streaming.checkpoint_guard import Recovery
    from streaming.listener import BatchLogListener
    from streamlake.spark_session import build_spark_session

    context = cli_context(ctx)
    config = context.config()
    pipeline, settings = config.pipeline, config.settings
    runnable = [n for n, j in pipeline.jobs.items() if j.kind in ("ingest", "process")]
    names = select_jobs(job, runnable, list(pipeline.jobs))
    if job == "all":  # an inline process job runs inside its table's ingest job
        names = [n for n in names if pipeline.jobs[n].mode != "inline"]
    elif pipeline.jobs[job].mode == "inline":
        host = pipeline.ingest_job_of(pipeline.jobs[job].table)
        raise UsageError(
            f"{job} runs inside {host} (mode: inline)",
            f"run {host}, or set jobs.{job}.mode: separate to run it on its own",
        )
    # Ingest jobs first: each creates its raw table, which its process job reads.
    names.sort(key=lambda name: pipeline.jobs[name].kind != "ingest")
    recovery = parse_recovery(recover, names, Recovery)
    gaps = tuple(accept_gap or ())
    for gap in gaps:
        check_gap(gap)
    if logging.getLogger().level > logging.INFO:
        logging.getLogger("streaming").setLevel(logging.INFO)
    stop = runtime.StopSignal()
    beating = heartbeat_of(pipeline, names, with_inline=True)
    with notifying(context) as notifier, publishing(context, beating) as metrics, stop.installed():
        notifier.notify("job_started", job, f"{job} started", ", ".join(names))
        spark = None
        try:
            spark = build_spark_session(settings, app_name=f"streamlake-{job}")
            spark.streams.addListener(
                BatchLogListener.for_pipeline(pipeline, settings, notifier, metrics)
            )
            aws = aws_endpoint(settings)
            jobs = [
                ingest.ingest_job(
                    spark,
                    name,
                    pipeline,
                    settings,
                    aws,
                    available_now,
                    recovery,
                    gaps,
                    notifier,
                    metrics,
                )
                if pipeline.jobs[name].kind == "ingest"
                else process.process_job(
                    spark, name, pipeline, settings, recovery, notifier, metrics
                )
                for name in names
            ]
            mode = runtime.RunMode(available_now=available_now, until_idle_s=until_idle)
            runtime.run(jobs, mode, stop)
        except Exception as exc:
            notify_failure(notifier, job, exc)
            raise
        finally:
            if spark is not None:
                spark.stop()
        notifier.notify("job_succeeded", job, f"{job} finished", stop.received or "done")
    context.console.print(f"finished: {', '.join(names)}")


def notify_failure(notifier: Notifier, job: str, exc: BaseException) -> None:
    if isinstance(exc, DataLossError):
        notifier.notify("data_loss", job, f"{job}: data lost", first_line(exc))
    notifier.notify("job_failed", job, f"{job} failed", first_line(exc))


def select_jobs(requested: str, runnable: list[str], declared: list[str]) -> list[str]:
    if requested == "all":
        return runnable
    if requested in runnable:
        return [requested]
    if requested in declared:
        raise UsageError(
            f"job {requested!r} is not a streaming job this version can run",
            f"runnable streaming jobs: {', '.join(runnable)}",
        )
    raise UsageError(f"no job named {requested!r}", f"declared jobs: {', '.join(declared)}")


def parse_recovery(value: str | None, names: list[str], choices: type[T]) -> T | None:
    if value is None:
        return None
    allowed = [str(choice.value) for choice in choices]
    if value not in allowed:
        raise UsageError(f"--recover {value!r} is not a recovery", f"use {' or '.join(allowed)}")
    if len(names) != 1:
        raise UsageError("--recover applies to one job", "name the job instead of 'all'")
    return choices(value)


def check_gap(gap: str) -> None:
    from connectors.shard_stream.shard_reads import AcceptedGap

    try:
        AcceptedGap.parse(gap)
    except ValueError as exc:
        raise UsageError(
            f"--accept-gap {exc}",
            "copy it from the data-loss error, which names stream, shard and sequence numbers",
        ) from None
