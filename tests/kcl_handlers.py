"""Handlers for the consumer tests, imported by the KCL record processors the tests start.

They report through a file named in the environment (the processors run in other
processes); real handlers get what they need from the record and its context."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any


def record_ids(record: Any, context: Any) -> None:
    """Appends ``<shard> <id> <sequence>`` per record; a record marked ``hold`` blocks while the
    environment says so, leaving its batch handled in part and not checkpointed."""
    body = record.json()
    with Path(os.environ["KCL_TEST_OUT"]).open("a") as out:
        out.write(f"{record.shard_id} {body['id']} {record.sequence_number}\n")
    while body.get("hold") and os.environ.get("KCL_TEST_HOLD") == "1":
        time.sleep(0.2)


def fail_on_poison(record: Any, context: Any) -> None:
    body = record.json()
    if body.get("poison"):
        raise ValueError(f"cannot handle order {body['id']}")
    record_ids(record, context)
