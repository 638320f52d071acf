"""Reading S3 objects by range: a dropped connection is an OSError like a local read's, so a
crawler reports the file instead of ending the whole job on botocore's own error."""

from __future__ import annotations

import re
import socket

import boto3
import pytest
from botocore.config import Config

from streamlake.lake.files import S3RangeReader


def closed_port() -> int:
    """A loopback port nothing listens on (bound, read, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_connection_error_is_an_oserror_naming_the_object() -> None:
    s3 = boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{closed_port()}",
        region_name="eu-west-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"max_attempts": 1}, connect_timeout=2),
    )
    reader = S3RangeReader(s3, "landing", "exports/a.json", size=100)
    with pytest.raises(OSError, match=re.escape("s3://landing/exports/a.json")):
        reader.read(10)
