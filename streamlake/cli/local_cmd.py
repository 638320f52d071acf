"""`streamlake local up | status | down`: the embedded Kafka broker and AWS API server."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from typing import Annotated

import typer
from rich.table import Table

from streamlake.cli.context import CliContext, cli_context
from streamlake.errors import EXIT_JOB_FAILED
from streamlake.local.stack import LocalStack, StackStatus

app = typer.Typer(
    help="Start, inspect and stop the local Kafka broker and AWS API server.",
    no_args_is_help=True,
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]


def local_stack(context: CliContext) -> LocalStack:
    config = context.config()
    return LocalStack(config.settings, config.pipeline)


@app.command()
def up(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Start the services (if not running), wait until healthy, create declared resources."""
    context = cli_context(ctx)
    stack = local_stack(context)
    started = time.monotonic()
    with context.console.status("starting local services") as spinner:
        status = stack.up(on_step=lambda step: spinner.update(f"starting: {step}"))
    elapsed = time.monotonic() - started
    if as_json:
        print(json.dumps({**asdict(status), "seconds": round(elapsed, 2)}))
        return
    print_status(context, status)
    context.console.print(f"local stack up in {elapsed:.1f}s; logs in {stack.state_dir / 'logs'}")


@app.command()
def status(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Show services, addresses, health and resources. Exit 1 if anything is not healthy."""
    context = cli_context(ctx)
    stack_status = local_stack(context).status()
    if as_json:
        print(json.dumps(asdict(stack_status)))
    else:
        print_status(context, stack_status)
    healthy = all(s.health == "healthy" for s in stack_status.services)
    complete = all(r.state != "missing" for r in stack_status.resources)
    if not (healthy and complete):
        raise typer.Exit(EXIT_JOB_FAILED)


@app.command()
def down(ctx: typer.Context) -> None:
    """Stop the services that `up` started (by their recorded pids), and only those."""
    context = cli_context(ctx)
    stopped = local_stack(context).down()
    context.console.print(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")


def print_status(context: CliContext, status: StackStatus) -> None:
    services = Table(title="services", title_justify="left")
    for column in ("service", "address", "pid", "health", "detail"):
        services.add_column(column)
    colour = {"healthy": "green", "unhealthy": "yellow", "stopped": "red"}
    for s in status.services:
        services.add_row(
            s.name,
            s.address,
            str(s.pid or "-"),
            f"[{colour[s.health]}]{s.health}[/]",
            s.detail,
        )
    context.console.print(services)
    if not status.resources:
        return
    resources = Table(title="resources", title_justify="left")
    for column in ("kind", "name", "state"):
        resources.add_column(column)
    for r in status.resources:
        resources.add_row(r.kind, r.name, "[red]missing[/]" if r.state == "missing" else r.state)
    context.console.print(resources)
