"""`streamlake config show`: the resolved configuration."""

from __future__ import annotations

import json
from typing import Annotated

import typer
import yaml

from streamlake.cli.context import cli_context

app = typer.Typer(help="Inspect the resolved configuration.", no_args_is_help=True)


@app.command()
def show(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of YAML.")] = False,
) -> None:
    """Print the pipeline and the environment's settings after overrides (secrets masked)."""
    config = cli_context(ctx).config()
    resolved = {
        "env": config.settings.env,
        "config_dir": str(config.config_dir),
        "settings": config.settings.model_dump(mode="json"),
        "pipeline": config.pipeline.model_dump(mode="json", exclude_none=True),
    }
    if as_json:
        print(json.dumps(resolved, indent=2))
    else:
        print(yaml.safe_dump(resolved, sort_keys=False), end="")
