"""What a batch job did, table by table: what `streamlake batch run` prints (or its --json)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class TableOutcome:
    """One table's part of a batch run. ``table`` is ``layer.name``; ``action`` says what was
    done in a word or two ("optimized", "merged", "registered", "unchanged"). Sizes are the
    table's active files and bytes before and after; None where the job does not rewrite."""

    table: str
    action: str
    files_before: int | None = None
    files_after: int | None = None
    bytes_before: int | None = None
    bytes_after: int | None = None
    rows_changed: int | None = None
    seconds: float = 0.0
    detail: str = ""


@dataclass
class BatchReport:
    """A batch job's run. ``failed`` names what failed (the job exits 1) or is None."""

    job: str
    kind: str
    tables: list[TableOutcome] = field(default_factory=list)
    seconds: float = 0.0
    failed: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "job": self.job,
            "kind": self.kind,
            "seconds": round(self.seconds, 3),
            "failed": self.failed,
            "tables": [asdict(t) | {"seconds": round(t.seconds, 3)} for t in self.tables],
        }
