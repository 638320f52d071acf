"""`streamlake status`: every job's state, last batch, rows/s, lag and recent quarantine, from
the heartbeats jobs write (no Spark); exit 1 when a job failed, was lost or lags."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer
from rich import box
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from streamlake.cli.context import CliContext, cli_context
from streamlake.errors import EXIT_JOB_FAILED
from streamlake.lake.job_status import (
    JobFigures,
    JobView,
    assess_jobs,
    latest_status,
    recent_counts,
)

STATE_STYLE = {
    "running": "green",
    "stopped": "dim",
    "failed": "bold red",
    "lost": "bold red",
    "never": "dim",
}


def status_command(
    ctx: typer.Context,
    watch: Annotated[
        bool, typer.Option("--watch", help="Refresh every --every seconds until Ctrl-C.")
    ] = False,
    every: Annotated[float, typer.Option(min=0.5, help="Seconds between refreshes.")] = 2.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show every job: state (running, stopped, failed; lost when a job stopped beating
    without stopping), last batch, rows/s, source lag, and the quarantined and duplicate
    rows of the last hour. Exit 1 when a job failed, was lost or lags past its threshold."""
    context = cli_context(ctx)
    if watch and not as_json:
        views = watch_views(context, every)
    else:
        views = job_views(context)
        if as_json:
            print(json.dumps([view_dict(v) for v in views], default=str), flush=True)
        else:
            context.console.print(status_table(views, datetime.now(UTC)))
    if any(view.unhealthy for view in views):
        raise typer.Exit(EXIT_JOB_FAILED)


def job_views(context: CliContext) -> list[JobView]:
    config = context.config()
    settings, lake = config.settings, config.settings.lake
    now = datetime.now(UTC)
    latest = latest_status(lake.meta_path("job_status"), settings)
    recent = recent_counts(lake.meta_path("batch_metrics"), settings, now - timedelta(hours=1))
    return assess_jobs(config.pipeline, latest, recent, now)


def watch_views(context: CliContext, every: float) -> list[JobView]:
    views = job_views(context)
    try:
        with Live(status_table(views, datetime.now(UTC)), console=context.console) as live:
            while True:
                time.sleep(every)  # the refresh period the user asked for
                views = job_views(context)
                live.update(status_table(views, datetime.now(UTC)))
    except KeyboardInterrupt:
        pass
    return views


def status_table(views: list[JobView], now: datetime) -> Table:
    table = Table(title=f"jobs at {now:%Y-%m-%d %H:%M:%S} UTC", box=box.SIMPLE_HEAD, pad_edge=False)
    # Narrow terminals wrap cells rather than drop columns.
    table.add_column("job", no_wrap=True)
    table.add_column("state", min_width=7)
    table.add_column("beat ago", min_width=4)
    table.add_column("batch ago", min_width=5)
    table.add_column("rows/s", justify="right", min_width=6)
    table.add_column("lag", min_width=7)
    table.add_column("quar. 1h", justify="right", min_width=5)
    table.add_column("dups 1h", justify="right", min_width=4)
    table.add_column("note", min_width=8)
    for view in views:
        beat = view.beat
        style = STATE_STYLE.get(view.state, "")
        state = f"[{style}]{view.state}[/]" if style else view.state
        if view.lagging is not None:
            state += " [bold yellow]lagging[/]"
        table.add_row(
            view.job,
            state,
            ago(beat.beat_at if beat else None, now),
            ago(beat.figures.last_batch_at if beat else None, now),
            ""
            if beat is None or beat.figures.rows_per_s is None
            else f"{beat.figures.rows_per_s:,.1f}",
            lag_text(view),
            str(view.recent.quarantined) if view.kind == "process" else "",
            str(view.recent.duplicates) if view.kind == "process" else "",
            escape(note(view)),
        )
    return table


def ago(when: datetime | None, now: datetime) -> str:
    if when is None:
        return ""
    seconds = max(0.0, (now - when).total_seconds())
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.0f}h"
    return f"{when:%Y-%m-%d %H:%M}"


def lag_text(view: JobView) -> str:
    if view.beat is None:
        return ""
    figures = view.beat.figures
    parts = []
    if figures.source_lag is not None:
        parts.append(f"{figures.source_lag:,} records")
    if figures.source_lag_s is not None:
        parts.append(f"{figures.source_lag_s:,.1f} s")
    if figures.pending_versions:
        parts.append(f"{figures.pending_versions} versions")
    return ", ".join(parts)


def note(view: JobView) -> str:
    beat = view.beat
    if view.lagging is not None:
        return f"lag past {view.lagging[1]}"
    if beat is None:
        return ""
    if view.state == "lost":
        return f"no heartbeat since {beat.beat_at:%H:%M:%S} UTC (pid {beat.pid} on {beat.host})"
    return beat.error or ""


def view_dict(view: JobView) -> dict[str, Any]:
    beat = view.beat
    figures = beat.figures if beat else JobFigures()
    return {
        "job": view.job,
        "kind": view.kind,
        "state": view.state,
        "lagging": view.lagging is not None,
        "heartbeat_at": beat.beat_at if beat else None,
        "last_batch_at": figures.last_batch_at,
        "rows_per_s": figures.rows_per_s,
        "source_lag": figures.source_lag,
        "source_lag_s": figures.source_lag_s,
        "pending_versions": figures.pending_versions,
        "quarantined_last_hour": view.recent.quarantined,
        "duplicates_last_hour": view.recent.duplicates,
        "note": note(view),
    }
