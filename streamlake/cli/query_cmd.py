"""`streamlake query "<SQL>"`: SQL over lake tables named layer.table, answered by DuckDB
over delta-rs reads (no Spark), printed as a table, JSON or CSV."""

from __future__ import annotations

import csv
import json
import sys
from enum import StrEnum
from typing import Annotated

import typer
from rich.table import Table

from streamlake.cli.context import cli_context
from streamlake.cli.quarantine_cmd import shown
from streamlake.errors import UsageError
from streamlake.lake.query import QueryResult, run_query

# DuckDB type names whose values line up on the right in a table.
INTEGERS = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT")
NUMERIC_TYPES = (*INTEGERS, *[f"U{name}" for name in INTEGERS], "FLOAT", "DOUBLE")


class OutputFormat(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


def query_command(
    ctx: typer.Context,
    sql: Annotated[
        str,
        typer.Argument(
            help="One statement over tables named layer.table, e.g. "
            "'select count(*) from processed.orders'.",
        ),
    ],
    output: Annotated[
        OutputFormat,
        typer.Option(
            "--format",
            help="table (default, with a row count); json: an array of objects, decimals as "
            "strings (exact), dates and timestamps ISO 8601 (zoned ones in UTC), binary as "
            "base64; csv: a header and rows, null empty, other values as in json.",
        ),
    ] = OutputFormat.table,
    limit: Annotated[
        int | None,
        typer.Option(min=1, help="The table format only: show at most N rows."),
    ] = None,
) -> None:
    """Run SQL over lake tables named layer.table (DuckDB over delta-rs, no Spark)."""
    if limit is not None and output is not OutputFormat.table:
        raise UsageError("--limit is for the table format", "put a LIMIT in the SQL instead")
    context = cli_context(ctx)
    config = context.config()
    result = run_query(sql, config.pipeline, config.settings, max_rows=limit)
    if output is OutputFormat.json:
        print(json.dumps(result.records(), indent=2, ensure_ascii=False))
    elif output is OutputFormat.csv:
        write_csv(result)
    else:
        context.console.print(result_table(result))
        context.console.print(row_count_line(result), highlight=False)


def result_table(result: QueryResult, title: str | None = None) -> Table:
    """The rows as a rich table (nulls dim, numbers on the right); the demo prints one per
    curated table."""
    table = Table(title=title)
    for name, kind in zip(result.columns, result.types, strict=True):
        numeric = kind in NUMERIC_TYPES or kind.startswith("DECIMAL")
        table.add_column(shown(name), justify="right" if numeric else "left", overflow="fold")
    for row, cells in zip(result.rows, result.text_rows(), strict=True):
        table.add_row(
            *[
                "[dim]null[/]" if value is None else cell_text(cell)
                for value, cell in zip(row, cells, strict=True)
            ]
        )
    return table


def cell_text(text: str) -> str:
    """A cell keeps its line breaks (an EXPLAIN plan); other control characters are
    written out, as in ``shown``."""
    return "\n".join(shown(line) for line in text.split("\n"))


def row_count_line(result: QueryResult) -> str:
    count = len(result.rows)
    if result.truncated:
        return f"first {count} rows shown (--limit {count}); the query has more"
    return f"{count} row" + ("" if count == 1 else "s")


def write_csv(result: QueryResult) -> None:
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(result.columns)
    writer.writerows(result.text_rows())
