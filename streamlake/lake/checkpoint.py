"""A streaming query's checkpoint read as files, without a JVM: Spark's ``metadata`` (the
query id), its ``offsets`` and ``commits`` logs, and the owner marker streamlake adds.

Spark's log files are ``v1`` on the first line, then one JSON document per line: the batch's
own metadata, then each source's end offset (offsets) or ``{"nextBatchWatermarkMs":..}``
(commits). Works on the local disk and on S3 (``s3a://`` or ``s3://``, with a boto3 client).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from streamlake.lake.files import LocationFiles

OWNER_FILE = "streamlake-owner.json"


class CheckpointFileError(Exception):
    """A checkpoint file that exists but cannot be read as Spark wrote it."""

    def __init__(self, name: str, why: str) -> None:
        self.name = name
        super().__init__(f"{name}: {why}")


@dataclass(frozen=True)
class CheckpointFiles(LocationFiles):
    """The files of one streaming query's checkpoint."""

    def is_empty(self) -> bool:
        """True when nothing was ever written here (no metadata, offsets or commits)."""
        return self.read("metadata") is None and not self.batch_ids("offsets") + self.batch_ids(
            "commits"
        )

    def batch_ids(self, log: str) -> list[int]:
        """The batch ids in the ``offsets`` or ``commits`` log, ascending."""
        return sorted(int(name) for name in self.names(log) if name.isdigit())

    # -- Spark's files, parsed ------------------------------------------------------------

    def query_id(self) -> str | None:
        """The query id in ``metadata``; None if the file is missing."""
        text = self.read("metadata")
        if text is None:
            return None
        try:
            return str(json.loads(text.strip().splitlines()[0])["id"])
        except (ValueError, IndexError, KeyError, TypeError) as exc:
            raise CheckpointFileError("metadata", "not the query metadata Spark writes") from exc

    def log_entry(self, log: str, batch_id: int) -> list[str]:
        """The JSON lines of one log file after its version line; raises if it is cut short."""
        name = f"{log}/{batch_id}"
        text = self.read(name)
        if text is None:
            raise CheckpointFileError(name, "missing")
        lines = [line for line in text.splitlines() if line.strip()]
        if not lines or not lines[0].startswith("v"):
            raise CheckpointFileError(name, "empty or cut short (no version line)")
        for line in lines[1:]:
            try:
                json.loads(line)
            except ValueError as exc:
                raise CheckpointFileError(name, "cut short (a line is not JSON)") from exc
        if log == "offsets" and len(lines) < 3:
            raise CheckpointFileError(name, "cut short (no source offset)")
        return lines[1:]

    def batch_timestamp_ms(self, batch_id: int) -> int | None:
        """When Spark planned batch ``batch_id`` (its offset log's ``batchTimestampMs``),
        the same on every replay of the batch; None if the log does not say."""
        try:
            value = json.loads(self.log_entry("offsets", batch_id)[0]).get("batchTimestampMs")
        except (CheckpointFileError, AttributeError):
            return None
        return int(value) if isinstance(value, int | float) else None

    def source_offset(self, batch_id: int) -> str:
        """The end offset of batch ``batch_id`` of the query's single source, as Spark logged
        it (a JSON document)."""
        return self.log_entry("offsets", batch_id)[1]

    def file_source_entries(self, log_offset: int, source: int = 0) -> list[dict[str, Any]]:
        """The files Spark's file source took at ``log_offset`` (its offset, ``logOffset``),
        from its log under ``sources/<source>``: the entries of one batch in its own file,
        or among those of a compaction (``<n>.compact``, written every tenth batch, holding
        every batch up to it)."""
        folder = f"sources/{source}"
        names = self.names(folder)
        candidates = [str(log_offset), f"{log_offset}.compact"]
        compacted = sorted(int(n.removesuffix(".compact")) for n in names if n.endswith(".compact"))
        candidates += [f"{n}.compact" for n in compacted if n > log_offset]
        for name in candidates:
            if name not in names:
                continue
            text = self.read(f"{folder}/{name}") or ""
            entries = [json.loads(line) for line in text.splitlines()[1:] if line.strip()]
            return [e for e in entries if e.get("batchId") == log_offset]
        raise CheckpointFileError(f"{folder}/{log_offset}", "missing, and in no compaction")

    def marker(self) -> dict[str, Any] | None:
        """The owner marker (which job owns the checkpoint, how it was started), or None."""
        text = self.read(OWNER_FILE)
        if text is None:
            return None
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise CheckpointFileError(OWNER_FILE, "not an owner marker") from exc
        if not isinstance(data, dict) or "job" not in data:
            raise CheckpointFileError(OWNER_FILE, "not an owner marker")
        return data

    def write_marker(self, marker: dict[str, Any]) -> None:
        self.write(OWNER_FILE, json.dumps(marker, sort_keys=True))
