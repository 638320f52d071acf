"""`streamlake config show`: the resolved configuration."""

from __future__ import annotations

import json
import re
from typing import Annotated, Any

import typer
import yaml

from streamlake.cli.context import cli_context

# Setting names that hold secrets: Kafka's sasl.jaas.config and *.password, s3a's
# fs.s3a.secret.key, tokens and credentials of any client.
SECRET_NAME = re.compile(
    r"secret|password|passwd|jaas|token|credential|private|user\.info|(^|[._])key$",
    re.IGNORECASE,
)
MASK = "**********"

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
        "settings": masked(config.settings.model_dump(mode="json"), config.from_environment),
        "pipeline": config.pipeline.model_dump(mode="json", exclude_none=True),
    }
    if as_json:
        print(json.dumps(resolved, indent=2))
    else:
        print(yaml.safe_dump(resolved, sort_keys=False), end="")


def masked(value: Any, secret_paths: frozenset[str], path: str = "", name: str = "") -> Any:
    """``value`` with every setting that looks like a secret (by its name) or came from
    ``${env:NAME}`` replaced by a mask."""
    if isinstance(value, dict):
        return {
            key: masked(item, secret_paths, f"{path}.{key}".lstrip("."), key)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [masked(item, secret_paths, path, name) for item in value]
    secret = SECRET_NAME.search(name) is not None or path in secret_paths
    return MASK if value is not None and secret else value
