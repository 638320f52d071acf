"""Errors raised inside Spark's Python workers travel as text in Spark's exception; a marker
line carries their data so the job can turn them back into a StreamlakeError."""

from __future__ import annotations

import json
import re
from typing import Any

from streamlake.errors import DataLossError, StreamlakeError

MARKER = "STREAMLAKE_ERROR"
_PATTERN = re.compile(MARKER + r" (\{.*?\})(?:\n|$)")


class ShardStreamError(Exception):
    """Raised in the reader; its message starts with the marker and a JSON object."""

    def __init__(self, **data: Any) -> None:
        self.data = data
        super().__init__(f"{MARKER} {json.dumps(data, sort_keys=True)}\n{data.get('message', '')}")


def data_loss(stream: str, shard: str, lost_from: str, lost_to: str, why: str) -> ShardStreamError:
    return ShardStreamError(
        kind="data_loss",
        stream=stream,
        partition=shard,
        lost_from=lost_from,
        lost_to=lost_to,
        message=why,
    )


def translate(message: str) -> StreamlakeError | None:
    """The StreamlakeError a failed query's message carries, if any."""
    match = _PATTERN.search(message)
    if not match:
        return None
    data = json.loads(match.group(1))
    if data.get("kind") == "data_loss":
        return DataLossError(
            data.get("message", "records were trimmed before the job read them"),
            (
                f"to go on past this gap once, rerun the job with --accept-gap "
                f"{data['stream']}/{data['partition']}/{data.get('lost_from', '')}.."
                f"{data.get('lost_to', '')}; accept_data_loss on the table turns these checks "
                "off for good"
                if data.get("lost_from") and data.get("lost_to")
                else "set accept_data_loss on the table to go on past the gap"
            ),
            stream=data["stream"],
            partition=data["partition"],
            lost_from=data.get("lost_from", ""),
            lost_to=data.get("lost_to", ""),
            start_exclusive=True,
        )
    return StreamlakeError(data.get("message", "source failed"))
