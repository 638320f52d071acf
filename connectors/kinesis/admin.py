"""Kinesis stream administration."""

from __future__ import annotations

import time
from typing import Any

from streamlake.errors import ResourceError


def stream_exists(kinesis: Any, name: str) -> bool:
    try:
        kinesis.describe_stream_summary(StreamName=name)
        return True
    except kinesis.exceptions.ResourceNotFoundException:
        return False


def ensure_stream(kinesis: Any, name: str, shards: int, timeout_s: float = 60.0) -> bool:
    """Create the stream if it does not exist and wait until it is ACTIVE; True if created."""
    created = False
    if not stream_exists(kinesis, name):
        try:
            kinesis.create_stream(StreamName=name, ShardCount=shards)
            created = True
        except kinesis.exceptions.ResourceInUseException:
            pass
    deadline = time.monotonic() + timeout_s
    while True:
        status = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
        if status["StreamStatus"] == "ACTIVE":
            return created
        if time.monotonic() > deadline:
            raise ResourceError(
                f"still {status['StreamStatus']} after {timeout_s:.0f}s",
                kind="Kinesis stream",
                name=name,
                retryable=True,
            )
        time.sleep(0.5)
