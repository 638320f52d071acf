"""The local AWS API server (moto server), for S3, Kinesis, DynamoDB, SNS, Firehose, Glue."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class AwsServer:
    host: str
    port: int
    state_dir: Path

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def log_file(self) -> Path:
        return self.state_dir / "logs" / "aws.log"

    @property
    def state_file(self) -> Path:
        """Where the server keeps Kinesis and DynamoDB across a restart."""
        return self.state_dir / "aws" / "state.pickle"

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "streamlake.local.moto_server",
            "-H",
            self.host,
            "-p",
            str(self.port),
            "--state-file",
            str(self.state_file),
        ]
