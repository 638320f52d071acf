"""Create what the pipeline declares on the services of docker/compose.yaml: its Kafka
topics, Kinesis streams, DynamoDB tables, buckets, SNS topics, Firehose streams and Glue
databases (through the code `streamlake local up` uses), and the database tables its jdbc
sources pull from. Resources that exist are left as they are.

`local up` does this for the local stack, and infra/ (Terraform) on AWS; the command line
has no command for an environment of its own services. Run it in the application image:

    docker compose -f docker/compose.yaml run --rm --entrypoint python streamlake \\
        /app/docker/create_resources.py

It reads the environment as the command line does (STREAMLAKE_ENV, STREAMLAKE_CONFIG,
STREAMLAKE__SECTION__KEY) and refuses one whose AWS endpoint is real AWS.
"""

from __future__ import annotations

import os
import sys
from functools import partial
from pathlib import Path

from connectors.aws import aws_endpoint, read_secret
from connectors.base import Resource
from connectors.jdbc import database
from connectors.jdbc.endpoint import jdbc_endpoint
from connectors.registry import check_pipeline
from streamlake.config import LoadedConfig, load_config
from streamlake.config.pipeline import JdbcSource
from streamlake.errors import StreamlakeError, UsageError
from streamlake.local.resources import declared_resources, ensure_all


def planned_resources(config: LoadedConfig) -> list[Resource]:
    """Every resource of the pipeline on the environment's services, in creation order."""
    settings, pipeline = config.settings, config.pipeline
    if settings.local.enabled or not settings.aws.endpoint_url:
        raise UsageError(
            f"environment {settings.env!r} is not the services of docker/compose.yaml",
            "run with STREAMLAKE_ENV=docker; the local stack has `streamlake local up`, "
            "AWS has infra/",
        )
    resources = declared_resources(pipeline, settings, aws_endpoint(settings))
    for table in pipeline.tables.values():
        source = pipeline.sources[table.source]
        if not isinstance(source, JdbcSource):
            continue
        endpoint = jdbc_endpoint(source.connection, settings)
        resources.append(
            Resource(
                "database table",
                f"{source.connection}:{source.table}",
                partial(database.table_exists, endpoint, source.table),
                partial(
                    database.ensure_table,
                    endpoint,
                    source.table,
                    table.schema_ddl,
                    source.key,
                    source.bookmark,
                ),
            )
        )
    return list({(r.kind, r.name): r for r in resources}.values())


def main() -> int:
    config_path = os.environ.get("STREAMLAKE_CONFIG")
    try:
        config = load_config(
            os.environ.get("STREAMLAKE_ENV", "local"),
            Path(config_path) if config_path else None,
            environ=os.environ,
            read_secret=read_secret,
        )
        check_pipeline(config.pipeline, str(config.config_dir / "pipeline.yaml"))
        for status in ensure_all(planned_resources(config)):
            print(f"{status.state:<8} {status.kind} {status.name}", flush=True)
    except StreamlakeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
