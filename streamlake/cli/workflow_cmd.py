"""`streamlake workflow`: the pipeline's workflows (jobs run one after another, on a
schedule)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.table import Table

from streamlake.cli.context import cli_context
from streamlake.schedule import parse_schedule

app = typer.Typer(help="Workflows: jobs chained, on a schedule.", no_args_is_help=True)


@app.command("list")
def list_command(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Each workflow: its steps in order, its schedule and its next scheduled time (UTC)."""
    context = cli_context(ctx)
    workflows = context.config().pipeline.workflows
    now = datetime.now(UTC)
    upcoming = {
        name: parse_schedule(w.schedule).next_after(now) if w.schedule else None
        for name, w in workflows.items()
    }
    if as_json:
        rows = [
            {
                "workflow": name,
                "steps": workflow.steps,
                "schedule": workflow.schedule,
                "next": (at := upcoming[name]) and at.isoformat(),
            }
            for name, workflow in workflows.items()
        ]
        print(json.dumps(rows))
        return
    if not workflows:
        context.console.print("the pipeline declares no workflow")
        return
    table = Table(title="workflows")
    for column in ("workflow", "steps", "schedule", "next run (UTC)"):
        table.add_column(column)
    for name, workflow in workflows.items():
        at = upcoming[name]
        table.add_row(
            name,
            " → ".join(workflow.steps),
            workflow.schedule or "manual",
            f"{at:%Y-%m-%d %H:%M}" if at else "",
        )
    context.console.print(table)
