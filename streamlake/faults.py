"""Deterministic crash points, for the crash tests: a job whose settings name a fault point
kills its own process with SIGKILL when it reaches that point, as a crash there would.

Set with ``STREAMLAKE__FAULT_POINT`` (or ``fault_point`` in an environment file); never in
production. The points sit where a crash is hardest to recover from: between a Delta
commit and what must follow it.
"""

from __future__ import annotations

import logging
import os
import signal
from dataclasses import dataclass
from typing import Literal

log = logging.getLogger(__name__)

FaultPointName = Literal[
    # ingest: raw committed, Spark's commit log not yet written
    "after-raw-commit",
    # process: quarantine committed, processed not yet
    "after-quarantine-commit",
    # process: processed and metrics committed, Spark's commit log not yet written
    "after-processed-commit",
    # quarantine replay: appended to processed, not yet deleted from quarantine
    "after-replay-append",
]


@dataclass(frozen=True)
class Faults:
    point: FaultPointName | None = None

    def reached(self, point: FaultPointName) -> None:
        """Called by the writers at each point; kills the process at the configured one."""
        if self.point != point:
            return
        log.error("fault point %s reached: killing the job as a crash here would", point)
        for handler in logging.getLogger().handlers:
            handler.flush()
        os.kill(os.getpid(), signal.SIGKILL)
