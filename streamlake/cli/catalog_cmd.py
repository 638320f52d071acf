"""`streamlake catalog spectrum-sql`: the Redshift statements that mount the pipeline's Glue
databases as external schemas (no AWS call; the catalog job registers the tables)."""

from __future__ import annotations

import re
from typing import Annotated

import typer

from streamlake.cli.context import cli_context
from streamlake.errors import UsageError
from streamlake.lake.tables import LAYERS

# Left as a placeholder for the user to fill in: the role Redshift assumes to read the
# Glue catalog and the lake's bucket is created outside streamlake.
IAM_ROLE_PLACEHOLDER = "arn:aws:iam::<account-id>:role/<role-name>"
IAM_ROLE = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$")

app = typer.Typer(help="The Glue Data Catalog the catalog job fills.", no_args_is_help=True)


@app.command("spectrum-sql")
def spectrum_sql(
    ctx: typer.Context,
    layer: Annotated[
        str | None,
        typer.Option(help=f"Only this layer's database: {', '.join(LAYERS)}."),
    ] = None,
    iam_role: Annotated[
        str | None,
        typer.Option(
            "--iam-role",
            metavar="ARN",
            help="The IAM role Redshift uses to read the catalog and the lake "
            "(default: a placeholder to replace).",
        ),
    ] = None,
) -> None:
    """Print the Redshift statements that mount the Glue databases as external schemas."""
    if layer is not None and layer not in LAYERS:
        raise UsageError(f"--layer {layer!r}: not a layer", f"layers: {', '.join(LAYERS)}")
    if iam_role is not None and not IAM_ROLE.match(iam_role):
        raise UsageError(
            f"--iam-role {iam_role!r}: not an IAM role ARN", f"expected {IAM_ROLE_PLACEHOLDER}"
        )
    config = cli_context(ctx).config()
    pipeline = config.pipeline
    print(
        "-- Spectrum reads the <table>_manifest tables (over Delta's symlink manifests); "
        "the tables without the suffix are for Athena's native Delta reader."
    )
    for name in [layer] if layer else LAYERS:
        database = pipeline.glue_database(name)
        print(
            external_schema_sql(
                database, database, iam_role or IAM_ROLE_PLACEHOLDER, config.settings.aws.region
            )
        )


def external_schema_sql(schema: str, database: str, iam_role: str, region: str) -> str:
    return (
        f"CREATE EXTERNAL SCHEMA IF NOT EXISTS {schema} FROM DATA CATALOG "
        f"DATABASE {quoted(database)} IAM_ROLE {quoted(iam_role)} REGION {quoted(region)};"
    )


def quoted(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"
