"""Where a jdbc source's database is and who logs in: the environment's connection, its
credentials read from AWS Secrets Manager when it names a secret."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlsplit

from connectors.aws import read_secret
from streamlake.config.settings import JdbcConnection, Settings
from streamlake.errors import JdbcError, UsageError

# Driver classes by URL scheme. Named to Spark, which registers the class itself: jars given
# with spark.jars are not on the class path java.sql.DriverManager searches.
DRIVERS = {"postgresql": "org.postgresql.Driver"}
# Each connection's session in UTC, whatever the JVM's zone: the bookmark bound Spark sends
# is a timestamp without a zone, read in the session's.
SESSION_INIT = {"postgresql": "SET TIME ZONE 'UTC'"}


PASSWORD_IN_URL = re.compile(r"(?i)(password=)[^&;]*")


def redacted(url: str) -> str:
    """The URL as errors and logs show it: a password given in it masked."""
    return PASSWORD_IN_URL.sub(r"\1***", url)


@dataclass(frozen=True)
class JdbcEndpoint:
    """One database, with the credentials to log in."""

    name: str
    url: str
    user: str
    password: str = field(repr=False)
    properties: dict[str, str] = field(default_factory=dict)

    def error(
        self, message: str, hint: str = "", *, table: str = "", retryable: bool = False
    ) -> JdbcError:
        return JdbcError(
            message,
            hint,
            connection=self.name,
            url=redacted(self.url),
            table=table,
            retryable=retryable,
        )

    def spark_options(self) -> dict[str, str]:
        """Options of Spark's jdbc data source (without the table)."""
        scheme = self.url.split(":")[1] if self.url.count(":") > 1 else ""
        driver = {"driver": DRIVERS[scheme]} if scheme in DRIVERS else {}
        if scheme in SESSION_INIT:
            driver["sessionInitStatement"] = SESSION_INIT[scheme]
        return {
            "url": self.url,
            "user": self.user,
            "password": self.password,
            "connectTimeout": "10",
            **driver,
            **self.properties,
        }

    def conninfo(self) -> dict[str, str]:
        """The URL as psycopg keywords (PostgreSQL only)."""
        if not self.url.startswith("jdbc:postgresql://"):
            raise self.error("only PostgreSQL URLs (jdbc:postgresql://) are written to")
        parts = urlsplit(self.url.removeprefix("jdbc:"))
        extra = {k: v for k, v in parse_qsl(parts.query) if k in ("sslmode",)}
        return {
            "host": parts.hostname or "127.0.0.1",
            "port": str(parts.port or 5432),
            "dbname": parts.path.lstrip("/") or "postgres",
            "user": self.user,
            "password": self.password,
            "connect_timeout": "10",
            **extra,
        }


def connection_of(name: str, settings: Settings) -> JdbcConnection:
    connection = settings.jdbc.get(name)
    if connection is None:
        raise UsageError(
            f"no jdbc connection named {name!r} in environment {settings.env!r}",
            "declare it under jdbc: in the environment file (known: "
            f"{', '.join(settings.jdbc) or 'none'})",
        )
    if connection.url is None:
        raise UsageError(
            f"jdbc connection {name!r} has no url in environment {settings.env!r}",
            f"set jdbc.{name}.url, or STREAMLAKE__JDBC__{name.upper()}__URL",
        )
    return connection


def jdbc_endpoint(name: str, settings: Settings) -> JdbcEndpoint:
    """The connection ``name`` with its credentials (a secret read with the environment's
    ``aws`` settings); called when a pull or a producer starts, so a rotated secret is read
    afresh."""
    connection = connection_of(name, settings)
    assert connection.url is not None  # connection_of refuses a connection without
    if connection.secret is None:
        assert connection.username is not None and connection.password is not None
        user, password = connection.username, connection.password.get_secret_value()
    else:
        user, password = read_credentials(name, connection.url, connection.secret, settings)
    return JdbcEndpoint(name, connection.url, user, password, dict(connection.properties))


def read_credentials(name: str, url: str, secret: str, settings: Settings) -> tuple[str, str]:
    """username and password from the secret's JSON (the shape RDS gives its secrets)."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        text = read_secret(secret, settings)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        raise JdbcError(
            f"the secret {secret!r} could not be read: {code or exc}",
            "create it, or grant secretsmanager:GetSecretValue on it",
            connection=name,
            url=redacted(url),
            retryable=code in ("ThrottlingException", "InternalServiceError"),
        ) from None
    except BotoCoreError as exc:
        raise JdbcError(
            f"Secrets Manager did not answer: {exc}",
            connection=name,
            url=redacted(url),
            retryable=True,
        ) from None
    except ValueError as exc:
        raise JdbcError(
            f"the secret {secret!r}: {exc}", connection=name, url=redacted(url)
        ) from None
    try:
        values = json.loads(text)
        return str(values["username"]), str(values["password"])
    except (ValueError, KeyError, TypeError):
        raise JdbcError(
            f"the secret {secret!r} is not JSON with username and password",
            'store it as {"username": "...", "password": "..."}',
            connection=name,
            url=redacted(url),
        ) from None
