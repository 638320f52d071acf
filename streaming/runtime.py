"""Runs streaming queries until done, idle, or asked to stop, stopping at a batch boundary.

On SIGINT or SIGTERM the runtime waits for the running batch to finish, then stops the
query (see ``stop_at_boundary`` for the one case where a just-started batch is cut short);
the next start resumes from the checkpoint.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import FrameType
from typing import TYPE_CHECKING, Any

from connectors.base import ErrorTranslator
from streamlake.errors import JobError, StreamlakeError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame
    from pyspark.sql.streaming.query import StreamingQuery

log = logging.getLogger(__name__)

# Restarts of one query within one run, for failures its source calls retryable.
MAX_RESTARTS = 1
# How often a running job's heartbeat is called.
HEARTBEAT_S = 15.0


@dataclass(frozen=True)
class StreamJob:
    """A streaming job ready to start: its output stream and what it writes with."""

    name: str
    frame: DataFrame
    batch_function: Callable[[DataFrame, int], None]
    checkpoint: str
    trigger_interval: str
    translate_error: ErrorTranslator = field(default=lambda _message: None)
    # Available-now without Spark's trigger (None: Spark's trigger does it): the source
    # offers nothing past the run's start, and ``drained`` says when a committed batch
    # holds all of it.
    drained: Callable[[], bool] | None = None
    # Called every HEARTBEAT_S while the job runs (e.g. to renew a lease), and once when it
    # stops, however it stops.
    heartbeat: Callable[[], None] = field(default=lambda: None)
    on_stop: Callable[[], None] = field(default=lambda: None)


@dataclass(frozen=True)
class RunMode:
    available_now: bool = False
    until_idle_s: float | None = None
    poll_s: float = 0.5
    # One shared wait for running batches: orchestrators send SIGKILL not long after SIGTERM.
    stop_grace_s: float = 60.0


class StopSignal:
    """Set by SIGINT or SIGTERM; the runtime checks it between polls."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.received: str | None = None

    def request(self, reason: str) -> None:
        self.received = reason
        self.event.set()

    @contextmanager
    def installed(self) -> Iterator[StopSignal]:
        def handler(signum: int, _frame: FrameType | None) -> None:
            log.warning(
                "received %s: stopping at the next batch boundary", signal.Signals(signum).name
            )
            self.request(signal.Signals(signum).name)

        previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)


def start(job: StreamJob, mode: RunMode) -> StreamingQuery:
    writer = (
        job.frame.writeStream.queryName(job.name)
        .foreachBatch(job.batch_function)
        .option("checkpointLocation", job.checkpoint)
    )
    if mode.available_now and job.drained is None:
        writer = writer.trigger(availableNow=True)
    else:
        writer = writer.trigger(processingTime=job.trigger_interval)
    return writer.start()


@dataclass
class Running:
    """A started job and when it last took in data."""

    job: StreamJob
    query: StreamingQuery
    last_batch: int | None = None
    last_data_at: float = field(default_factory=time.monotonic)
    restarts: int = 0

    def restart_after(self, failure: StreamlakeError, mode: RunMode) -> bool:
        """Start the query again from its checkpoint if ``failure`` is retryable and this
        run has not restarted it yet; one restart, so a failure that repeats still stops."""
        if not failure.retryable or self.restarts >= MAX_RESTARTS:
            return False
        self.restarts += 1
        log.warning("job %s: %s; restarting it from its checkpoint", self.job.name, failure)
        self.query = start(self.job, mode)
        self.last_batch = None
        return True

    def note_progress(self) -> None:
        """Idle time counts from the last batch that had rows, and not while one runs."""
        status = self.query.status
        if status.get("isTriggerActive") and status.get("isDataAvailable"):
            self.last_data_at = time.monotonic()
        progress: dict[str, Any] | None = self.query.lastProgress
        if not progress or progress.get("batchId") == self.last_batch:
            return
        self.last_batch = progress.get("batchId")
        if progress.get("numInputRows"):
            self.last_data_at = time.monotonic()


def run(jobs: list[StreamJob], mode: RunMode, stop: StopSignal) -> None:
    """Start every job and supervise them until all are done or stopped; raise on failure."""
    running = [Running(job, start(job, mode)) for job in jobs]
    beat_at = time.monotonic()
    try:
        while True:
            if time.monotonic() - beat_at > HEARTBEAT_S:
                beat_at = time.monotonic()
                for item in running:
                    item.job.heartbeat()
            for item in running:
                failure = failure_of(item.job, item.query)
                if failure is not None and not item.restart_after(failure, mode):
                    raise failure
                item.note_progress()
            for item in running:
                if (
                    mode.available_now
                    and item.job.drained is not None
                    and item.query.isActive
                    and item.job.drained()
                ):
                    log.info("job %s read everything there was at its start", item.job.name)
                    stop_at_boundary([item], mode.stop_grace_s)
            active = [item for item in running if item.query.isActive]
            if not active:
                return
            if stop.event.is_set():
                stop_at_boundary(active, mode.stop_grace_s)
                return
            idle_s = mode.until_idle_s
            if idle_s is not None and all(
                time.monotonic() - item.last_data_at > idle_s for item in active
            ):
                log.info("no new data for %ss: stopping", idle_s)
                stop_at_boundary(active, mode.stop_grace_s)
                return
            stop.event.wait(mode.poll_s)
    finally:
        for item in running:
            if item.query.isActive:
                item.query.stop()
        for job in jobs:
            job.on_stop()


def stop_at_boundary(active: list[Running], grace_s: float) -> None:
    """Let the batch that is running finish, then stop.

    Spark has no graceful stop for micro-batches: when batches run back to back, the next
    one may have begun when ``stop`` lands and is interrupted. Its Delta write is atomic
    and it is replayed from the checkpoint on the next start, so nothing is lost or doubled.
    """
    deadline = time.monotonic() + grace_s
    for item in active:
        query = item.query
        finished = last_batch_id(query)
        while (
            query.isActive
            and query.status.get("isTriggerActive")
            and last_batch_id(query) <= finished
            and time.monotonic() < deadline
        ):
            time.sleep(0.05)  # polling the query's own progress until its batch ends
        query.stop()
        raise_if_failed(item.job, query)
        log.info("job %s stopped at a batch boundary", item.job.name)


def last_batch_id(query: StreamingQuery) -> int:
    progress: dict[str, Any] | None = query.lastProgress
    return int(progress["batchId"]) if progress else -1


def raise_if_failed(job: StreamJob, query: StreamingQuery) -> None:
    failure = failure_of(job, query)
    if failure is not None:
        raise failure


def failure_of(job: StreamJob, query: StreamingQuery) -> StreamlakeError | None:
    """Why ``query`` stopped, as the source's own error where it recognises the failure."""
    failure = query.exception()
    if failure is None:
        return None
    translated = job.translate_error(failure_text(failure))
    if translated is not None:
        return translated
    message = str(getattr(failure, "_desc", None) or failure)
    first_line = message.strip().splitlines()[0] if message.strip() else repr(failure)
    return JobError(first_line[:500], "rerun with --debug for Spark's full error", job=job.name)


def failure_text(failure: BaseException) -> str:
    """The failure's messages and JVM stack traces, its causes' included: some failures are
    known only by the class that threw them. (pyspark keeps the JVM side of a captured
    exception in ``_desc``, ``_stackTrace`` and ``_cause`` only.)"""
    parts: list[str] = []
    current: BaseException | None = failure
    for _depth in range(10):
        if current is None:
            break
        parts.append(str(getattr(current, "_desc", None) or current))
        parts.append(str(getattr(current, "_stackTrace", None) or ""))
        current = getattr(current, "_cause", None) or current.__cause__
    return "\n".join(part for part in parts if part)
