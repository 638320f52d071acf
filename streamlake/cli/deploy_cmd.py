"""`streamlake deploy render` (infra/'s Terraform variables from the pipeline) and
`deploy package` (what AWS Glue 6.0 runs, in dist/glue/)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from streamlake.cli.context import cli_context
from streamlake.deploy.render import render

app = typer.Typer(help="Deployment to AWS (infra/ and AWS Glue 6.0).", no_args_is_help=True)


@app.command("render")
def render_cmd(
    ctx: typer.Context,
    out: Annotated[
        Path | None,
        typer.Option(
            help="Where to write the variables (default: infra/envs/<env>/"
            "pipeline.auto.tfvars.json beside the configs folder); - prints them."
        ),
    ] = None,
) -> None:
    """Write the Terraform variables of the environment's deployment: the pipeline's
    streams, topics, tables, buckets, queues, jobs, workflows and alarms."""
    context = cli_context(ctx)
    config = context.config()
    variables = render(config.pipeline, config.settings)
    text = json.dumps(variables, indent=2) + "\n"
    if out is not None and str(out) == "-":
        print(text, end="")
        return
    target = out or (
        config.config_dir.parent
        / "infra"
        / "envs"
        / config.settings.env
        / "pipeline.auto.tfvars.json"
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    counts = ", ".join(
        f"{len(variables[key])} {key.replace('_', ' ')}"
        for key in ("streaming_jobs", "batch_jobs", "workflows", "alarms")
    )
    context.console.print(f"wrote {target} ({counts})", soft_wrap=True, highlight=False)


@app.command("package")
def package_cmd(
    ctx: typer.Context,
    out: Annotated[
        Path | None,
        typer.Option(help="The folder to fill (default: dist/glue/ in the checkout)."),
    ] = None,
) -> None:
    """Build what AWS Glue 6.0 runs into dist/glue/: the wheel, one entry script per job,
    the jars Glue lacks and the configuration, with manifest.json saying where each goes."""
    from streamlake.deploy.package import package
    from streamlake.paths import checkout_root, default_spark_jars_dir

    context = cli_context(ctx)
    config = context.config()
    settings = config.settings
    target = out or checkout_root() / "dist" / "glue"
    jars_dir = settings.spark.jars_dir or default_spark_jars_dir()
    with context.console.status("building the wheel"):
        made = package(
            config.pipeline, settings, config.config_dir, checkout_root(), jars_dir, target
        )
    context.console.print(
        f"wrote {target}: {made.wheel}, {len(made.scripts)} entry scripts, "
        f"{len(made.jars)} jars, {len(made.configs)} config files (manifest.json: where each "
        f"goes in s3://{settings.deploy.scripts_bucket}/)",
        soft_wrap=True,
        highlight=False,
    )
