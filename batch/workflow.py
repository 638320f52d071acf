"""The workflow runner: one run of a workflow's graph of jobs, in dependency order, with
retries, timeouts, the run log and the failure notification.

Jobs run one at a time (the jobs share one Spark session and the machine's cores), ready
ones in the order the workflow declares them. How a job runs is not the runner's business:
``run_job`` is handed in (the CLI runs batch jobs and streaming jobs with available-now),
which keeps this module free of the jobs' imports.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

from streamlake.config.pipeline import Condition, Workflow
from streamlake.errors import LeaseHeldError, first_line
from streamlake.lake.leases import TableLeases
from streamlake.lake.workflow_runs import RUN, RunRecord, RunState, StepState, Trigger
from streamlake.notifications import Notifier

log = logging.getLogger(__name__)

# How long a job cancelled at its timeout is given to stop before the run gives up on it.
CANCEL_GRACE_S = 60.0
# How often the runner looks up from a running job for a stop request.
POLL_S = 0.5
# A run's lease: renewed every quarter of it while the run goes on.
RUN_LEASE_TTL_S = 120.0
# What each condition accepts of the job it names.
ACCEPTS: dict[Condition, frozenset[str]] = {
    "on_success": frozenset({"succeeded"}),
    "on_failure": frozenset({"failed", "timeout"}),
    "on_completion": frozenset({"succeeded", "failed", "timeout"}),
}
ENDED = frozenset({"succeeded", "failed", "timeout", "skipped"})

# Runs one job to its end, raising when it fails; called on a thread of its own. The event
# is set when the job ran past its timeout or the run is stopped: the job should stop.
JobLauncher = Callable[[str, threading.Event], None]


class JobStuckError(Exception):
    """A job cancelled at its timeout did not stop within the grace period."""


@dataclass
class StepOutcome:
    job: str
    state: StepState = "waiting"
    attempts: int = 0
    error: str | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None

    @property
    def seconds(self) -> float | None:
        if self.started_at is None or self.ended_at is None:
            return None
        return (self.ended_at - self.started_at).total_seconds()


@dataclass
class RunOutcome:
    run_id: str
    workflow: str
    trigger: str
    steps: dict[str, StepOutcome]
    started_at: datetime
    ended_at: datetime | None = None
    stopped: str | None = None  # why the run was cut short by a job, when it was
    interrupted: bool = False  # stopped on request (SIGINT, SIGTERM)
    stuck: bool = False  # a job would not stop when cancelled: its thread runs on

    @property
    def failed_jobs(self) -> list[str]:
        return [s.job for s in self.steps.values() if s.state in ("failed", "timeout")]

    @property
    def state(self) -> RunState:
        if self.failed_jobs or self.stopped:
            return "failed"
        return "stopped" if self.interrupted else "succeeded"


def no_progress(_job: str, _outcome: StepOutcome, _note: str) -> None:
    """The default progress hook: shows nothing."""


@dataclass
class WorkflowRunner:
    """Runs workflow ``name`` once. ``record`` appends rows to the run log (a failure to
    write is logged, never fails the run); ``progress`` is called whenever a job changes
    state, with a short note; ``stop`` cuts the run short (the running job is cancelled,
    the jobs not started are skipped); ``wait`` sleeps between retries, returning early
    when stopped (``stop.wait`` unless a test hands in a clock of its own)."""

    name: str
    workflow: Workflow
    run_job: JobLauncher
    record: Callable[[list[RunRecord]], None] = lambda _records: None
    notifier: Notifier = field(default_factory=Notifier)
    trigger: Trigger = "manual"
    progress: Callable[[str, StepOutcome, str], None] = no_progress
    stop: threading.Event = field(default_factory=threading.Event)
    wait: Callable[[float], bool] | None = None
    cancel_grace_s: float = CANCEL_GRACE_S
    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    # The run under way or done, once ``run`` was called.
    outcome: RunOutcome | None = field(default=None, init=False)

    def run(self) -> RunOutcome:
        graph = self.workflow.graph()
        outcome = self.outcome = RunOutcome(
            uuid.uuid4().hex[:12],
            self.name,
            self.trigger,
            {job: StepOutcome(job) for job in graph},
            self.now(),
        )
        self._write([self._run_row(outcome, "running")])
        try:
            while (job := self._next_ready(outcome)) is not None:
                self._run_step(outcome, job)
        except JobStuckError as exc:
            outcome.stopped, outcome.stuck = str(exc), True
        outcome.interrupted = self.stop.is_set()
        for step in outcome.steps.values():
            if step.state == "waiting":
                self._skip(outcome, step, outcome.stopped or "the run was stopped")
        outcome.ended_at = self.now()
        self._write([self._run_row(outcome, outcome.state)])
        if outcome.state == "failed":  # not when stopped on request
            self._notify_failure(outcome)
        return outcome

    def _next_ready(self, outcome: RunOutcome) -> str | None:
        """The first waiting job whose conditions are all decided (skipping those that can no
        longer hold on the way); None when nothing is left to run."""
        graph = self.workflow.graph()
        for job in self.workflow.order():
            step, current = graph[job], outcome.steps[job]
            if current.state != "waiting":
                continue
            if self.stop.is_set() or outcome.stopped:
                return None
            upstream = [(kind, outcome.steps[up]) for kind, up in step.conditions()]
            if any(s.state not in ENDED for _, s in upstream):
                continue
            unmet = [f"{s.job} {s.state}" for kind, s in upstream if s.state not in ACCEPTS[kind]]
            if unmet:
                self._skip(outcome, current, f"not run: {', '.join(unmet)}")
                return self._next_ready(outcome)
            return job
        return None

    def _run_step(self, outcome: RunOutcome, job: str) -> None:
        step = outcome.steps[job]
        retries = self.workflow.retries_of(job)
        step.started_at = self.now()
        for attempt in range(1, retries + 2):
            step.attempts, step.state, step.error = attempt, "running", None
            self.progress(job, step, f"attempt {attempt} of {retries + 1}" if attempt > 1 else "")
            attempt_start = self.now()
            self._write([self._job_row(outcome, step, attempt_start)])
            try:
                state, error = self._attempt(job)
            except JobStuckError as exc:
                # Its thread still runs: the step ends failed, and the run with it.
                step.state, step.error, step.ended_at = "failed", str(exc), self.now()
                self._write([self._job_row(outcome, step, attempt_start)])
                raise
            step.state, step.error, step.ended_at = state, error, self.now()
            self._write([self._job_row(outcome, step, attempt_start)])
            if state != "failed" or attempt > retries or self.stop.is_set():
                break
            delay = self.workflow.retry_backoff_s(job) * 2 ** (attempt - 1)
            self.progress(job, step, f"failed ({error}); retrying in {delay:.0f}s")
            if self._sleep(delay):
                step.state = "stopped"
                step.error = f"the run was stopped before retry {attempt} (after: {error})"
                self._write([self._job_row(outcome, step, attempt_start)])
                break
        self.progress(job, step, step.error or "")

    def _attempt(self, job: str) -> tuple[StepState, str | None]:
        """One run of ``job`` on a thread of its own, cancelled at its timeout or a stop."""
        cancel = threading.Event()
        failure: list[BaseException] = []

        def target() -> None:
            try:
                self.run_job(job, cancel)
            except BaseException as exc:  # a job's every failure is its outcome
                failure.append(exc)

        thread = threading.Thread(target=target, name=f"workflow-{job}", daemon=True)
        thread.start()
        timeout_s = self.workflow.timeout_s(job)
        deadline = time.monotonic() + timeout_s
        while thread.is_alive() and time.monotonic() < deadline and not self.stop.is_set():
            thread.join(min(POLL_S, max(0.0, deadline - time.monotonic())))
        if thread.is_alive():
            cancel.set()
            thread.join(self.cancel_grace_s)
            if thread.is_alive():
                raise JobStuckError(
                    f"{job} did not stop within {self.cancel_grace_s:g}s of being cancelled"
                )
            if not self.stop.is_set():
                return "timeout", f"ran past its timeout of {timeout_s:g}s and was cancelled"
            return "stopped", "the run was stopped"
        if failure:
            return "failed", first_line(failure[0])
        return "succeeded", None

    def _sleep(self, seconds: float) -> bool:
        """Sleep between retries; True when the run was stopped meanwhile."""
        if self.wait is not None:
            return self.wait(seconds) or self.stop.is_set()
        return self.stop.wait(seconds)

    def _skip(self, outcome: RunOutcome, step: StepOutcome, why: str) -> None:
        step.state, step.error = "skipped", why
        self._write([self._job_row(outcome, step, self.now())])
        self.progress(step.job, step, why)

    def _run_row(self, outcome: RunOutcome, state: str) -> RunRecord:
        failed = outcome.failed_jobs
        error = outcome.stopped or (f"failed: {', '.join(failed)}" if failed else None)
        return RunRecord(
            outcome.run_id,
            self.name,
            self.trigger,
            RUN,
            0,
            state,
            outcome.started_at,
            error if state != "running" else None,
            outcome.ended_at,
            self.now(),
        )

    def _job_row(self, outcome: RunOutcome, step: StepOutcome, started: datetime) -> RunRecord:
        ended = step.ended_at if step.state not in ("running", "skipped") else None
        return RunRecord(
            outcome.run_id,
            self.name,
            self.trigger,
            step.job,
            step.attempts,
            step.state,
            started,
            step.error,
            ended,
            self.now(),
        )

    def _write(self, records: list[RunRecord]) -> None:
        try:
            self.record(records)
        except Exception as exc:  # the run log never fails a run
            log.warning("workflow run log not written: %s", first_line(exc))

    def _notify_failure(self, outcome: RunOutcome) -> None:
        failed = outcome.failed_jobs
        detail = "; ".join(f"{job}: {outcome.steps[job].error}" for job in failed)
        subject = f"workflow {self.name} failed" + (f" at {', '.join(failed)}" if failed else "")
        self.notifier.notify("workflow_failed", self.name, subject, detail or outcome.stopped or "")


@contextmanager
def run_alone(
    leases: TableLeases,
    workflow: str,
    ttl_s: float = RUN_LEASE_TTL_S,
    on_lost: Callable[[], None] = lambda: None,
) -> Iterator[None]:
    """Hold workflow ``workflow``'s run lease while the block runs, renewing it; raises
    LeaseHeldError when another process runs the workflow. ``on_lost`` is called when a
    renewal finds another process holding it (two took over a stale lease at once: one of
    them stops)."""
    name, holder = f"workflow-{workflow}", f"workflow {workflow}"
    leases.take_alone(name, holder, ttl_s)
    done = threading.Event()

    def renew() -> None:
        while not done.wait(ttl_s / 4):
            try:
                leases.take_alone(name, holder, ttl_s)
            except LeaseHeldError as exc:
                log.error("workflow %s: %s; stopping this run", workflow, exc)
                on_lost()
                return
            except Exception as exc:
                log.warning("the lease of workflow %s not renewed: %s", workflow, exc)

    renewer = threading.Thread(target=renew, name=f"lease-{workflow}", daemon=True)
    renewer.start()
    try:
        yield
    finally:
        done.set()
        renewer.join(5)
        leases.release(name, holder)
