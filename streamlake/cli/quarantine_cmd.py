"""`streamlake quarantine list` (what was quarantined and why, with samples; no Spark) and
`streamlake quarantine replay` (move records that now pass into processed)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from streamlake.cli.context import cli_context
from streamlake.errors import UsageError
from streamlake.lake.delta_rs import read_rows
from streamlake.lake.tables import QUARANTINE

app = typer.Typer(help="Inspect quarantined records.", no_args_is_help=True)


@app.command("list")
def list_command(
    ctx: typer.Context,
    table: Annotated[str, typer.Argument(help="A table of the pipeline, e.g. orders.")],
    samples: Annotated[int, typer.Option(min=0, help="Sample rows per reason.")] = 2,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show quarantined records of a table: counts by kind and rule, and sample rows."""
    context = cli_context(ctx)
    config = context.config()
    if table not in config.pipeline.tables:
        raise UsageError(
            f"no table named {table!r}", f"tables: {', '.join(sorted(config.pipeline.tables))}"
        )
    path = config.settings.lake.table_path("quarantine", table)
    rows = read_rows(path, config.settings, columns=list(QUARANTINE.names))
    if rows is None:
        context.console.print(f"quarantine.{table} is empty (no table at {path})")
        return
    counts = fetch_all(
        "select error_kind, coalesce(rule, '') as rule, count(*) as n from rows "
        "group by all order by n desc",
        rows,
    )
    sample_rows = fetch_all(
        "select error_kind, coalesce(rule, '') as rule, error, stream, partition, position, "
        "payload from (select *, row_number() over (partition by error_kind, rule "
        f"order by quarantined_at) as k from rows) where k <= {samples} order by error_kind, rule",
        rows,
    )
    if as_json:
        print(
            json.dumps(
                {
                    "table": table,
                    "counts": [
                        {"error_kind": k, "rule": r or None, "count": n} for k, r, n in counts
                    ],
                    "samples": [
                        {
                            "error_kind": s[0],
                            "rule": s[1] or None,
                            "error": s[2],
                            "coordinates": f"{s[3]}/{s[4]}/{s[5]}",
                            "payload": preview(s[6]),
                        }
                        for s in sample_rows
                    ],
                },
                indent=2,
            )
        )
        return
    summary = Table(title=f"quarantine.{table}: {sum(n for *_, n in counts)} records")
    for column in ("error_kind", "rule", "records"):
        summary.add_column(column)
    for kind, rule, n in counts:
        summary.add_row(shown(kind), shown(rule), str(n))
    context.console.print(summary)
    detail = Table(title="samples")
    for column in ("error_kind", "rule", "error", "from", "payload"):
        detail.add_column(column, overflow="fold")
    for kind, rule, error, stream, partition, position, payload in sample_rows:
        cells = (kind, rule, error, f"{stream}/{partition}/{position}", preview(payload))
        detail.add_row(*[shown(cell) for cell in cells])
    context.console.print(detail)


def fetch_all(sql: str, rows: Any) -> list[tuple[Any, ...]]:
    """Run ``sql`` over the Arrow table ``rows`` (named `rows` in the query)."""
    import duckdb

    connection = duckdb.connect()
    connection.register("rows", rows)
    return connection.sql(sql).fetchall()


def shown(text: str | None) -> str:
    """Data as a table cell: brackets are not Rich markup, and control characters (an
    escape sequence in a payload) are written out rather than sent to the terminal."""
    printable = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text or "")
    return escape(printable)


def preview(payload: bytes | None, limit: int = 80) -> str:
    if payload is None:
        return ""
    text = payload.decode("utf-8", errors="replace")
    return text if len(text) <= limit else text[: limit - 3] + "..."


@app.command("replay")
def replay_command(
    ctx: typer.Context,
    table: Annotated[str, typer.Argument(help="A table of the pipeline, e.g. orders.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Re-check quarantined records with the current schema and rules; move those that now
    pass into processed, exactly once (safe to run again, also after a crash)."""
    from batch.quarantine_replay import replay_quarantine
    from streamlake.spark_session import build_spark_session

    context = cli_context(ctx)
    config = context.config()
    if table not in config.pipeline.tables:
        raise UsageError(
            f"no table named {table!r}", f"tables: {', '.join(sorted(config.pipeline.tables))}"
        )
    with context.console.status(f"replaying quarantine.{table}..."):
        spark = build_spark_session(config.settings, app_name=f"streamlake-replay-{table}")
        try:
            result = replay_quarantine(spark, table, config.pipeline, config.settings)
        finally:
            spark.stop()
    if as_json:
        print(json.dumps(result.as_dict(), indent=2))
        return
    still = sum(result.still_quarantined.values())
    by_kind = ", ".join(f"{k} {v}" for k, v in sorted(result.still_quarantined.items()))
    context.console.print(
        f"quarantine.{table}: {result.examined} examined, {result.moved} moved to "
        f"processed.{table}, {result.duplicates} duplicates dropped, {still} still "
        f"quarantined" + (f" ({by_kind})" if by_kind else "")
    )
