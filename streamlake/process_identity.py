"""A process known by its pid and its start time: a pid alone may have been reused by
another process since it was recorded."""

from __future__ import annotations

import psutil

# Start times as psutil reads them agree within this (they are rounded to clock ticks).
SAME_START_S = 1.0


def started_at(pid: int | None = None) -> float:
    """When process ``pid`` (this one by default) started, in epoch seconds."""
    return float(psutil.Process(pid).create_time())


def still_running(pid: int, recorded_start: float | None = None) -> bool:
    """Whether the process recorded as ``pid`` (started at ``recorded_start``, when known)
    still runs on this host; a zombie does not."""
    try:
        process = psutil.Process(pid)
        if recorded_start and abs(process.create_time() - recorded_start) >= SAME_START_S:
            return False  # the pid now belongs to another process
        return bool(process.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False
