"""`streamlake batch run <job>`: run one of the pipeline's batch jobs and show what it did."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from batch.report import BatchReport
from streamlake.cli.context import cli_context, heartbeat_of, notifying, publishing
from streamlake.errors import EXIT_JOB_FAILED

app = typer.Typer(help="Run batch jobs (compact, curate, ...).", no_args_is_help=True)


@app.command("run")
def run_command(
    ctx: typer.Context,
    job: Annotated[str, typer.Argument(help="A batch job of the pipeline, e.g. compact.")],
    table: Annotated[
        str | None,
        typer.Option(help="Only this table: a pipeline or curated table, or layer.table."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Run a batch job; prints each table's files and bytes before and after, rows changed
    and duration. Exit 1 when the job fails."""
    from batch.jobs import BatchRun, run_batch_job
    from streamlake.spark_session import active_spark_session, build_spark_session

    context = cli_context(ctx)
    config = context.config()
    settings = config.settings
    with (
        notifying(context) as notifier,
        publishing(context, heartbeat_of(config.pipeline, [job])) as metrics,
        context.console.status(f"running {job}") as status,
    ):
        run = BatchRun(
            job,
            config.pipeline,
            settings,
            lambda: build_spark_session(settings, app_name=f"streamlake-batch-{job}"),
            only=table,
            pipeline_file=str(config.config_dir / "pipeline.yaml"),
            progress=lambda line: status.update(line),
            notifier=notifier,
            metrics=metrics,
        )
        # A session the caller already runs (a test, a notebook) is theirs to stop.
        borrowed = active_spark_session() is not None
        try:
            report = run_batch_job(run)
        finally:
            if run.started_spark and not borrowed:
                run.spark.stop()
    if as_json:
        print(json.dumps(report.as_dict(), indent=2, default=str))
    else:
        print_report(context.console, report)
    if report.failed:
        raise typer.Exit(EXIT_JOB_FAILED)


def size(value: int | None) -> str:
    if value is None:
        return ""
    amount = float(value)
    for unit in ("B", "KiB", "MiB"):
        if amount < 1024:
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{amount:.1f} GiB"


def before_after(
    before: int | None, after: int | None, shown: Callable[[int | None], str] = str
) -> str:
    if before is None and after is None:
        return ""
    return f"{shown(before)} -> {shown(after)}"


def print_report(console: Console, report: BatchReport) -> None:
    title = f"{report.job} ({report.kind}): {len(report.tables)} tables in {report.seconds:.1f}s"
    table = Table(title=title, title_justify="left")
    for column in ("table", "action", "files", "bytes", "rows", "seconds", "detail"):
        table.add_column(column, overflow="fold")
    for outcome in report.tables:
        table.add_row(
            outcome.table,
            outcome.action,
            before_after(outcome.files_before, outcome.files_after),
            before_after(outcome.bytes_before, outcome.bytes_after, size),
            "" if outcome.rows_changed is None else str(outcome.rows_changed),
            f"{outcome.seconds:.1f}",
            outcome.detail,
        )
    console.print(table)
    if report.failed:
        # One line however long: scripts and logs read the reason from it.
        console.print(f"[red]{report.job} failed: {escape(report.failed)}[/]", soft_wrap=True)
