"""A Delta table's transaction log read as files, without a JVM or a snapshot: for what one
commit says about itself, where loading the table's history back to it would cost more."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from streamlake.lake.files import LocationFiles


@dataclass(frozen=True)
class DeltaLogFiles(LocationFiles):
    """The ``_delta_log`` folder of one table (local or on S3)."""

    def commit_time(self, version: int) -> datetime | None:
        """When ``version`` was committed, as Delta's history and time travel date it: the
        in-commit timestamp when the table keeps them, else the commit file's modification
        time. None once the log no longer holds the commit."""
        name = f"{version:020d}.json"
        text = self.read(name)
        if text is None:
            return None
        for line in text.splitlines():
            info = json.loads(line).get("commitInfo") if line.strip() else None
            if info is not None and "inCommitTimestamp" in info:
                return datetime.fromtimestamp(int(info["inCommitTimestamp"]) / 1000, UTC)
        modified = self.modified(name)
        return None if modified is None else datetime.fromtimestamp(modified, UTC)
