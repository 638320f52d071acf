"""Reads the last offset Spark logged for the query, from its checkpoint.

pyspark 4.1's ``latestOffset()`` is not told where the previous batch ended. After a restart
the reader takes that position from Spark's own offset log, the record Spark replays from,
so reader and checkpoint cannot disagree (no side store)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def last_logged_offset(checkpoint: str, s3: Any | None = None) -> dict[str, Any] | None:
    """The source offset of the newest batch in ``<checkpoint>/offsets``, or None."""
    text = read_newest_offset_file(checkpoint, s3)
    if text is None:
        return None
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                data = json.loads(line)
            except ValueError:
                continue
            if isinstance(data, dict) and "shards" in data:
                return data
    return None


def read_newest_offset_file(checkpoint: str, s3: Any | None) -> str | None:
    if checkpoint.startswith(("s3a://", "s3://")):
        return read_newest_s3(checkpoint, s3)
    directory = Path(checkpoint.removeprefix("file:")) / "offsets"
    if not directory.is_dir():
        return None
    batches = [p for p in directory.iterdir() if p.name.isdigit()]
    if not batches:
        return None
    newest = max(batches, key=lambda p: int(p.name))
    return newest.read_text(encoding="utf-8")


def read_newest_s3(checkpoint: str, s3: Any | None) -> str | None:
    if s3 is None:
        raise ValueError(f"an S3 client is needed to read the checkpoint {checkpoint}")
    bucket, _, prefix = checkpoint.split("://", 1)[1].partition("/")
    prefix = f"{prefix.rstrip('/')}/offsets/"
    newest: tuple[int, str] | None = None
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            name = item["Key"][len(prefix) :]
            if name.isdigit() and (newest is None or int(name) > newest[0]):
                newest = (int(name), item["Key"])
    if newest is None:
        return None
    body = s3.get_object(Bucket=bucket, Key=newest[1])["Body"].read()
    return str(body.decode("utf-8"))
