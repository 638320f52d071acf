"""The run log of workflows in ``_meta/workflow_runs`` (see ``WORKFLOW_RUNS``): what each run
and each job attempt did, written through delta-rs as it happens, read back by
`streamlake workflow history` and the report."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from streamlake.config.settings import Settings
from streamlake.lake.delta_rs import append_contract_rows, read_rows
from streamlake.lake.job_status import process_alive
from streamlake.lake.tables import WORKFLOW_RUNS
from streamlake.process_identity import started_at as process_started_at

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)

RunState = Literal["running", "succeeded", "failed", "stopped"]
StepState = Literal["waiting", "running", "succeeded", "failed", "timeout", "stopped", "skipped"]
Trigger = Literal["manual", "schedule", "arrival"]
# The ``job`` of a run's own rows.
RUN = ""


@dataclass(frozen=True)
class RunRecord:
    """One row of the run log: a run's (``job`` empty) or a job attempt's."""

    run_id: str
    workflow: str
    trigger: str
    job: str
    attempt: int
    state: str
    started_at: datetime
    error: str | None = None
    ended_at: datetime | None = None
    recorded_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)
    pid_started_at: float = field(default_factory=process_started_at)

    def row(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> RunRecord:
        return cls(**{f.name: row[f.name] for f in fields(cls)})

    @property
    def seconds(self) -> float | None:
        if self.ended_at is None:
            return None
        return (self.ended_at - self.started_at).total_seconds()


def append_records(path: str, settings: Settings, records: list[RunRecord]) -> None:
    """Append ``records`` in one commit (creating the table at the first)."""
    append_contract_rows(path, settings, WORKFLOW_RUNS, [r.row() for r in records])


@dataclass(frozen=True)
class JobRun:
    """A job within one run: its last attempt's row and how many attempts it took (0: it
    was skipped)."""

    record: RunRecord
    attempts: int


@dataclass(frozen=True)
class WorkflowRunView:
    """One run as the log tells it: ``state`` is ``lost`` for a run still marked running
    whose process is gone."""

    record: RunRecord
    state: str
    jobs: list[JobRun]

    @property
    def failed_jobs(self) -> list[str]:
        return [j.record.job for j in self.jobs if j.record.state in ("failed", "timeout")]


def run_history(
    path: str, settings: Settings, workflow: str | None = None, limit: int | None = None
) -> list[WorkflowRunView]:
    """Past and current runs (of ``workflow``, or all), newest first, at most ``limit``."""
    table = read_rows(path, settings)
    if table is None:
        return []
    records = sorted(
        (RunRecord.from_row(row) for row in table.to_pylist()), key=lambda r: r.recorded_at
    )
    newest: dict[tuple[str, str, int], RunRecord] = {}
    for record in records:
        if workflow is None or record.workflow == workflow:
            newest[(record.run_id, record.job, record.attempt)] = record
    runs = {key[0]: record for key, record in newest.items() if key[1] == RUN}
    views = []
    for run_id, run in sorted(runs.items(), key=lambda item: item[1].started_at, reverse=True):
        attempts: dict[str, list[RunRecord]] = {}
        for (rid, job, _), record in newest.items():
            if rid == run_id and job != RUN:
                attempts.setdefault(job, []).append(record)
        jobs = [
            JobRun(
                max(tries, key=lambda r: (r.attempt, r.recorded_at)), max(r.attempt for r in tries)
            )
            for tries in sorted(attempts.values(), key=lambda t: min(r.started_at for r in t))
        ]
        views.append(WorkflowRunView(run, run_state(run), jobs))
    return views[:limit] if limit is not None else views


def run_state(run: RunRecord) -> str:
    if run.state == "running" and process_alive(run.host, run.pid, run.pid_started_at) is False:
        return "lost"
    return run.state
