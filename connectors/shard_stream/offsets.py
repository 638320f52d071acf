"""Per-shard positions, serialised into Spark's offset log as JSON.

A shard's state says what has been consumed: every record up to and including ``after``
(none yet when ``after`` is None, reading then starts at ``initial``), and whether the shard
is closed and fully consumed (``finished``), which releases its children. ``first`` is the
first record of the batch that ended at ``after``, which tells an executor that finds the
batch's start trimmed whether only consumed records went.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

TRIM_HORIZON = "TRIM_HORIZON"


@dataclass(frozen=True)
class ShardState:
    after: str | None = None
    initial: str = TRIM_HORIZON  # TRIM_HORIZON, or AT_TIMESTAMP:<epoch millis>
    finished: bool = False
    first: str | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "after": self.after,
            "initial": self.initial,
            "finished": self.finished,
        }
        if self.first is not None:
            data["first"] = self.first
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ShardState:
        return cls(
            data.get("after"),
            data.get("initial", TRIM_HORIZON),
            bool(data.get("finished")),
            data.get("first"),
        )

    def consumed_to(self, sequence: str) -> ShardState:
        return replace(self, after=sequence)


@dataclass(frozen=True)
class StreamOffset:
    """Where each shard is; ``lag_ms`` says how far behind its newest record each shard's
    read was when the offset was planned (the listener reports it as source lag). The lag
    is not part of the position: offsets at the same positions are equal."""

    shards: dict[str, ShardState]
    lag_ms: dict[str, int] = field(default_factory=dict, compare=False)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "shards": {sid: self.shards[sid].to_json() for sid in sorted(self.shards)}
        }
        if self.lag_ms:
            data["lag_ms"] = {sid: self.lag_ms[sid] for sid in sorted(self.lag_ms)}
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any] | str) -> StreamOffset:
        if isinstance(data, str):
            data = json.loads(data)
        assert isinstance(data, dict)
        shards = {sid: ShardState.from_json(s) for sid, s in data.get("shards", {}).items()}
        return cls(shards, {sid: int(ms) for sid, ms in (data.get("lag_ms") or {}).items()})


def sequence_key(sequence: str) -> int:
    """Sequence numbers of one shard are decimal strings that grow; compare them as numbers."""
    return int(sequence)
