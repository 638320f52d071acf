"""Reads the last offset Spark logged for the query, from its checkpoint.

pyspark 4.1's ``latestOffset()`` is not told where the previous batch ended. After a restart
the reader takes that position from Spark's own offset log, the record Spark replays from,
so reader and checkpoint cannot disagree (no side store)."""

from __future__ import annotations

import json
from typing import Any

from connectors.shard_stream.offsets import StreamOffset
from streamlake.lake.checkpoint import CheckpointFiles


def last_logged_offset(checkpoint: str, s3: Any | None = None) -> dict[str, Any] | None:
    """The source offset of the newest batch in ``<checkpoint>/offsets``, or None."""
    files = CheckpointFiles(checkpoint, s3)
    batches = files.batch_ids("offsets")
    if not batches:
        return None
    data = json.loads(files.source_offset(batches[-1]))
    return data if isinstance(data, dict) and "shards" in data else None


# Written by an available-now run's reader once an offset holds all it is to read.
AVAILABLE_NOW_END = "available_now_end.json"


def available_now_done(files: CheckpointFiles) -> bool:
    """Whether the available-now run committed a batch ending at the offset its reader
    marked as holding everything (or there was nothing to read)."""
    text = files.read(AVAILABLE_NOW_END)
    if not text:
        return False
    end = StreamOffset.from_json(json.loads(text)["offset"])
    commits, offsets = files.batch_ids("commits"), files.batch_ids("offsets")
    if offsets and (not commits or offsets[-1] > commits[-1]):
        return False  # a batch is still running or to be replayed
    if not commits:
        return all(state.after is None for state in end.shards.values())
    return StreamOffset.from_json(files.source_offset(commits[-1])) == end
