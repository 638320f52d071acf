"""boto3 clients for one AWS endpoint: real AWS, or the local API server."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.config import Config as BotoConfig


@dataclass(frozen=True)
class AwsEndpoint:
    """Where AWS calls go. ``endpoint_url`` None means the real AWS endpoints, and
    credentials None means boto3's default chain (environment, profile, instance role)."""

    region: str
    endpoint_url: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None

    def client(self, service: str, *, connect_timeout: float = 5, retries: int = 5) -> Any:
        import boto3

        config = BotoConfig(
            region_name=self.region,
            connect_timeout=connect_timeout,
            read_timeout=60,
            retries={"max_attempts": retries, "mode": "standard"},
        )
        return boto3.client(
            service,
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
            config=config,
        )
