"""`streamlake report`: one self-contained HTML file of the pipeline's graph, throughput,
lag, quarantine, table sizes and job runs, read from the lake (no Spark)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from streamlake.cli.context import CliContext, cli_context

DEFAULT_REPORT = Path("streamlake-report.html")


def report_command(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", help="Where to write the HTML file.")] = (
        DEFAULT_REPORT
    ),
) -> None:
    """Write the report (it opens in a browser with no network) and print its path."""
    context = cli_context(ctx)
    with context.console.status("reading the lake"):
        path = write_report(context, out)
    context.console.print(f"report written to {path}")


def write_report(context: CliContext, out: Path) -> Path:
    """Gather, render and write the report; its absolute path."""
    from streamlake.report.data import gather
    from streamlake.report.page import render

    config = context.config()
    page = render(gather(config.pipeline, config.settings))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    return out.resolve()
