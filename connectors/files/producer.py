"""Synthetic files dropped in a landing place, as an upstream system would push them: a file
every ``rows_per_file`` events, each appearing whole (written aside, then renamed, on a
local disk; one PUT on S3)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

from connectors.base import Event
from connectors.files.landing import Landing, s3_parts
from streamlake.errors import UsageError

ROWS_PER_FILE = 250
EXTENSIONS = {"csv": "csv", "json": "jsonl", "auto": "jsonl"}


class FileDropSink:
    """Buffers events into files; ``acked`` counts the events in files written."""

    def __init__(
        self, landing: Landing, fmt: str, delimiter: str = ",", rows_per_file: int = ROWS_PER_FILE
    ) -> None:
        if fmt not in EXTENSIONS or (fmt == "csv" and delimiter != ","):
            raise UsageError(
                f"produce writes comma-separated CSV and JSON-lines files, not {fmt} "
                f"(delimiter {delimiter!r})",
                "write the files with your own tool",
            )
        self.landing, self.format, self.delimiter = landing, fmt, delimiter
        self.rows_per_file = rows_per_file
        self.pending: list[Event] = []
        self.sent = 0
        self.acked = 0
        self.files = 0

    def send(self, event: Event) -> None:
        self.pending.append(event)
        self.sent += 1
        if len(self.pending) >= self.rows_per_file:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        name = f"drop-{stamp}-{uuid.uuid4().hex[:8]}.{EXTENSIONS[self.format]}"
        self.write(name, self.content(self.pending))
        self.acked += len(self.pending)
        self.files += 1
        self.pending = []

    def close(self) -> None:
        self.flush()

    def content(self, events: list[Event]) -> bytes:
        """A CSV file: a header, then each event's CSV record. A JSON-lines file: each
        event's item as JSON (a bad event's payload as it is: a line that is not JSON)."""
        if self.format == "csv":
            header = next((list(e.item) for e in events if e.item), [])
            lines = [",".join(header).encode(), *(e.payload for e in events)]
        else:
            lines = [
                json.dumps(e.item).encode() if e.item and e.kind != "bad" else e.payload
                for e in events
            ]
        return b"\n".join(lines) + b"\n"

    def write(self, name: str, content: bytes) -> None:
        parts = s3_parts(self.landing.landing)
        if parts is not None:
            bucket, prefix = parts
            self.landing.aws.client("s3").put_object(Bucket=bucket, Key=prefix + name, Body=content)
            return
        folder = Path(self.landing.landing)
        folder.mkdir(parents=True, exist_ok=True)
        # Spark's file source skips names starting with "."; the rename makes it appear whole.
        aside = folder / f".{name}.writing"
        aside.write_bytes(content)
        aside.replace(folder / name)
