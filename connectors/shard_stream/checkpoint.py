"""Reads the last offset Spark logged for the query, from its checkpoint.

pyspark 4.1's ``latestOffset()`` is not told where the previous batch ended. After a restart
the reader takes that position from Spark's own offset log, the record Spark replays from,
so reader and checkpoint cannot disagree (no side store)."""

from __future__ import annotations

import json
from typing import Any

from streamlake.lake.checkpoint import CheckpointFiles


def last_logged_offset(checkpoint: str, s3: Any | None = None) -> dict[str, Any] | None:
    """The source offset of the newest batch in ``<checkpoint>/offsets``, or None."""
    files = CheckpointFiles(checkpoint, s3)
    batches = files.batch_ids("offsets")
    if not batches:
        return None
    data = json.loads(files.source_offset(batches[-1]))
    return data if isinstance(data, dict) and "shards" in data else None
