"""boto3 clients for one AWS endpoint: real AWS, or the local API server."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from botocore.config import Config as BotoConfig

if TYPE_CHECKING:
    from streamlake.config.settings import Settings


@dataclass(frozen=True)
class AwsEndpoint:
    """Where AWS calls go. ``endpoint_url`` None means the real AWS endpoints, and
    credentials None means boto3's default chain (environment, profile, instance role)."""

    region: str
    endpoint_url: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None

    def client(
        self,
        service: str,
        *,
        connect_timeout: float = 5,
        retries: int = 5,
        read_timeout: float = 60,
    ) -> Any:
        import boto3

        return boto3.client(service, **self._arguments(connect_timeout, retries, read_timeout))

    def resource(self, service: str, *, connect_timeout: float = 5, retries: int = 5) -> Any:
        import boto3

        return boto3.resource(service, **self._arguments(connect_timeout, retries))

    def _arguments(
        self, connect_timeout: float, retries: int, read_timeout: float = 60
    ) -> dict[str, Any]:
        config = BotoConfig(
            region_name=self.region,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retries={"max_attempts": retries, "mode": "standard"},
        )
        return {
            "endpoint_url": self.endpoint_url,
            "aws_access_key_id": self.access_key_id,
            "aws_secret_access_key": self.secret_access_key,
            "config": config,
        }

    def options(self) -> dict[str, str]:
        """The endpoint as plain strings, for code that runs in Spark executors."""
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_options(cls, options: dict[str, str]) -> AwsEndpoint:
        return cls(
            region=options["region"],
            endpoint_url=options.get("endpoint_url"),
            access_key_id=options.get("access_key_id"),
            secret_access_key=options.get("secret_access_key"),
        )


def aws_endpoint(settings: Settings) -> AwsEndpoint:
    """The endpoint an environment's ``aws`` settings name."""
    aws = settings.aws
    return AwsEndpoint(
        region=aws.region,
        endpoint_url=aws.endpoint_url,
        access_key_id=aws.access_key_id.get_secret_value() if aws.access_key_id else None,
        secret_access_key=(
            aws.secret_access_key.get_secret_value() if aws.secret_access_key else None
        ),
    )


def read_secret(secret_id: str, settings: Settings) -> str:
    """A Secrets Manager secret's string, for ``${secret:ID}`` references in settings."""
    answer = aws_endpoint(settings).client("secretsmanager").get_secret_value(SecretId=secret_id)
    if "SecretString" not in answer:
        raise ValueError("it holds binary data, not a string")
    return str(answer["SecretString"])
