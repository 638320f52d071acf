"""Service calls paced to the per-shard API limits and retried with backoff when throttled."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

THROTTLING_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "LimitExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
    }
)


def error_code(exc: BaseException) -> str:
    response: Any = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


class PacedCaller:
    """Keeps at least ``min_interval_s`` between calls for the same key (Kinesis allows 5
    GetRecords calls per second per shard, shared by every reader of that shard) and
    retries throttling errors with jittered exponential backoff."""

    def __init__(self, min_interval_s: float = 0.2, max_attempts: int = 12) -> None:
        self.min_interval_s = min_interval_s
        self.max_attempts = max_attempts
        self._last: dict[str, float] = {}
        self.throttled = 0

    def call(self, key: str, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        delay = 0.1
        for attempt in range(1, self.max_attempts + 1):
            wait = self._last.get(key, 0.0) + self.min_interval_s - time.monotonic()
            if wait > 0:
                time.sleep(wait)  # rate pacing against the service's per-shard limit
            self._last[key] = time.monotonic()
            try:
                return function(*args, **kwargs)
            except Exception as exc:
                if error_code(exc) not in THROTTLING_CODES or attempt == self.max_attempts:
                    raise
                self.throttled += 1
                log.debug("throttled on %s (attempt %s): %s", key, attempt, error_code(exc))
                time.sleep(delay * (0.5 + random.random()))  # backoff before retrying
                delay = min(delay * 2, 5.0)
        raise AssertionError("unreachable")
