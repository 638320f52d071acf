"""`streamlake stream run`: run streaming jobs."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from connectors.aws import aws_endpoint
from streamlake.cli.context import cli_context
from streamlake.errors import UsageError

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
) -> None:
    """Run streaming jobs; with no flag, until SIGINT/SIGTERM, stopping at a batch boundary."""
    from streaming import ingest, process, runtime
    from streaming.listener import BatchLogListener
    from streamlake.spark_session import build_spark_session

    context = cli_context(ctx)
    config = context.config()
    pipeline, settings = config.pipeline, config.settings
    runnable = [n for n, j in pipeline.jobs.items() if j.kind in ("ingest", "process")]
    names = select_jobs(job, runnable, list(pipeline.jobs))
    if logging.getLogger().level > logging.INFO:
        logging.getLogger("streaming").setLevel(logging.INFO)
    stop = runtime.StopSignal()
    with stop.installed():
        spark = build_spark_session(settings, app_name=f"streamlake-{job}")
        spark.streams.addListener(BatchLogListener())
        try:
            aws = aws_endpoint(settings)
            jobs = [
                ingest.ingest_job(spark, name, pipeline, settings, aws, available_now)
                if pipeline.jobs[name].kind == "ingest"
                else process.process_job(spark, name, pipeline, settings)
                for name in names
            ]
            mode = runtime.RunMode(available_now=available_now, until_idle_s=until_idle)
            runtime.run(jobs, mode, stop)
        finally:
            spark.stop()
    context.console.print(f"finished: {', '.join(names)}")


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
