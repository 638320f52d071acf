"""How an AWS Glue 6.0 job (or `spark-submit` on a cluster) runs a streamlake job: the entry
script `deploy package` writes for each job calls ``run(<job>)``, which reads the job
arguments, fetches the pipeline's configuration and runs the job as `streamlake stream run`
or `batch run` would.

Glue passes its arguments as ``--NAME value`` pairs, its own among them; ``awsglue``'s
``getResolvedOptions`` reads them when it is there (on Glue), a compatible parser otherwise
(`spark-submit`, tests)."""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

REQUIRED = ("JOB_NAME", "env", "pipeline-config")


def on_glue() -> bool:
    try:
        import awsglue  # noqa: F401
    except ImportError:
        return False
    return True


def glue_arguments(argv: list[str], required: tuple[str, ...] = REQUIRED) -> dict[str, str]:
    """``--NAME value`` (or ``--NAME=value``) pairs; every ``required`` name must be there.
    On Glue, ``getResolvedOptions`` resolves the required ones (it names them as argparse
    does, ``pipeline_config`` for ``--pipeline-config``, and returns only those asked for);
    the optional ones are read from the same arguments."""
    found = parse_arguments(argv, () if on_glue() else required)
    if on_glue():
        from awsglue.utils import getResolvedOptions

        resolved = getResolvedOptions(["glue", *argv], list(required))
        found |= {name: str(resolved[name.replace("-", "_")]) for name in required}
    return found


def parse_arguments(argv: list[str], required: tuple[str, ...]) -> dict[str, str]:
    found: dict[str, str] = {}
    index = 0
    while index < len(argv):
        token = argv[index]
        index += 1
        if not token.startswith("--"):
            continue
        name, equals, value = token[2:].partition("=")
        if not equals and index < len(argv) and not argv[index].startswith("--"):
            value = argv[index]
            index += 1
        found[name] = value
    missing = [f"--{name}" for name in required if name not in found]
    if missing:
        raise SystemExit(f"error: missing job argument(s) {', '.join(missing)}")
    return found


def fetch_configs(location: str) -> Path:
    """The configs folder: a local one as it is, an S3 prefix copied to a temporary one."""
    if not location.startswith(("s3://", "s3a://")):
        return Path(location)
    from botocore.exceptions import BotoCoreError, ClientError

    from streamlake.errors import ConfigError

    bucket, _, prefix = location.split("://", 1)[1].partition("/")
    target = Path(tempfile.mkdtemp(prefix="streamlake-configs-"))
    # Only this run reads the copy: it goes when the process ends.
    atexit.register(shutil.rmtree, target, True)
    try:
        copy_configs(bucket, prefix, target)
    except (BotoCoreError, ClientError) as exc:
        raise ConfigError(
            f"the configuration could not be read from {location}: {exc}",
            "check --pipeline-config and the job role's s3:GetObject on it",
            source=location,
        ) from None
    return target


def copy_configs(bucket: str, prefix: str, target: Path) -> None:
    import boto3

    s3 = boto3.client("s3")
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            name = item["Key"][len(prefix) :].lstrip("/")
            if name.endswith((".yaml", ".yml")) and "/" not in name:
                s3.download_file(bucket, item["Key"], str(target / name))


def job_command(job: str, arguments: dict[str, str], config_dir: Path) -> list[str]:
    """The `streamlake` command line that runs ``job``."""
    from streamlake.config import load_config
    from streamlake.config.pipeline import STREAMING_JOB_KINDS

    env = arguments["env"]
    pipeline = load_config(env, config_dir, environ=os.environ).pipeline
    kind = pipeline.jobs[job].kind if job in pipeline.jobs else ""
    verb = ["stream", "run", job] if kind in STREAMING_JOB_KINDS else ["batch", "run", job]
    if kind in STREAMING_JOB_KINDS and arguments.get("available-now", "false").lower() == "true":
        verb.append("--available-now")
    return ["--env", env, "--config", str(config_dir), "--log-format", "json", *verb]


def run(job: str, argv: list[str] | None = None) -> None:
    """Run ``job``; a StreamlakeError before the job starts is one line and its exit code,
    as the command line gives it."""
    from streamlake.errors import StreamlakeError

    try:
        prepared = prepare(job, sys.argv[1:] if argv is None else argv)
    except StreamlakeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(exc.exit_code) from None
    if prepared is None:
        return
    from streamlake.cli.app import run as run_command

    sys.argv = ["streamlake", *prepared]
    run_command()


def prepare(job: str, argv: list[str]) -> list[str] | None:
    """The command that runs ``job`` with these job arguments, None for ``--dry-run true``
    (which prints it instead); ``--available-now true`` runs a streaming job on what its
    source holds, then stops."""
    arguments = glue_arguments(argv)
    config_dir = fetch_configs(arguments["pipeline-config"])
    if on_glue():
        # The one difference on Glue: Spark is Glue's (its master, its jars), taken as it is.
        os.environ["STREAMLAKE__SPARK__RUNTIME"] = "glue"
    if arguments.get("kafka-bootstrap-servers"):
        os.environ["STREAMLAKE__KAFKA__BOOTSTRAP_SERVERS"] = arguments["kafka-bootstrap-servers"]
    command = job_command(job, arguments, config_dir)
    if arguments.get("dry-run", "false").lower() == "true":
        print(" ".join(command))
        return None
    return command
