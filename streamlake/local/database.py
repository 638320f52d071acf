"""What the local PostgreSQL holds for a pipeline: for each jdbc connection of the local
environment, its database, its credentials in the local Secrets Manager (the same shape RDS
gives a secret), and the tables its jdbc sources pull from."""

from __future__ import annotations

import json
from functools import partial

from connectors.aws import AwsEndpoint
from connectors.base import Resource
from connectors.jdbc import database
from connectors.jdbc.endpoint import JdbcEndpoint
from streamlake.config.pipeline import JdbcSource, Pipeline
from streamlake.config.settings import JdbcConnection, Settings
from streamlake.local.postgres import LOCAL_USER, LocalPostgres


def local_jdbc_sources(pipeline: Pipeline, settings: Settings) -> list[tuple[str, JdbcSource]]:
    """(table, source) of each jdbc source whose connection is the local PostgreSQL."""
    local = settings.local_jdbc_connections()
    return [
        (name, source)
        for name, table in pipeline.tables.items()
        if isinstance(source := pipeline.sources[table.source], JdbcSource)
        and source.connection in local
    ]


def secret_text(connection: JdbcConnection, server: LocalPostgres) -> str:
    return json.dumps(
        {
            "engine": "postgres",
            "host": server.host,
            "port": server.port,
            "dbname": connection.database,
            "username": LOCAL_USER,
            "password": server.password(),
        }
    )


def secret_holds(aws: AwsEndpoint, secret: str, text: str) -> bool:
    from botocore.exceptions import ClientError

    try:
        value = aws.client("secretsmanager").get_secret_value(SecretId=secret)
    except ClientError:
        return False
    return bool(value.get("SecretString") == text)


def ensure_secret(aws: AwsEndpoint, secret: str, text: str) -> bool:
    """Create the secret, or put the current password in it (a new cluster has a new one)."""
    from botocore.exceptions import ClientError

    if secret_holds(aws, secret, text):
        return False
    client = aws.client("secretsmanager")
    try:
        client.create_secret(Name=secret, SecretString=text)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ResourceExistsException":
            raise
        client.put_secret_value(SecretId=secret, SecretString=text)
    return True


def database_resources(
    pipeline: Pipeline, settings: Settings, aws: AwsEndpoint, server: LocalPostgres
) -> list[Resource]:
    sources = local_jdbc_sources(pipeline, settings)
    connections = settings.local_jdbc_connections()
    used = sorted({source.connection for _, source in sources})
    found: list[Resource] = []
    for name in used:
        connection = connections[name]
        superuser = JdbcEndpoint(
            name, settings.local_jdbc_url(connection.database), LOCAL_USER, server.password()
        )
        found.append(
            Resource(
                "postgres database",
                connection.database,
                partial(database.database_exists, superuser, connection.database),
                partial(database.ensure_database, superuser, connection.database),
            )
        )
        if connection.secret is not None:
            text = secret_text(connection, server)
            found.append(
                Resource(
                    "secret",
                    connection.secret,
                    partial(secret_holds, aws, connection.secret, text),
                    partial(ensure_secret, aws, connection.secret, text),
                )
            )
        for table_name, source in sources:
            if source.connection != name:
                continue
            ddl = pipeline.tables[table_name].schema_ddl
            found.append(
                Resource(
                    "database table",
                    f"{name}:{source.table}",
                    partial(database.table_exists, superuser, source.table),
                    partial(
                        database.ensure_table,
                        superuser,
                        source.table,
                        ddl,
                        source.key,
                        source.bookmark,
                    ),
                )
            )
    return found
