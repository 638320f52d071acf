"""What starts workflows while `streamlake workflow serve` runs: their schedules, and new
objects under a landing prefix. The clock and the waiting are handed in, so that a test
can walk through days of schedule in no time."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from connectors.aws import AwsEndpoint
from connectors.files.arrivals import ArrivalQueue, ObjectArrived, arrival_queue_name
from connectors.files.landing import s3_parts
from streamlake.config.pipeline import FilesSource, Pipeline, Workflow
from streamlake.errors import UsageError
from streamlake.lake.workflow_runs import Trigger
from streamlake.schedule import Schedule, parse_schedule

log = logging.getLogger(__name__)

# How long one wait for arrivals (an SQS long poll) lasts at most; also the longest the
# loop sleeps between looks at the clock.
MAX_WAIT_S = 20.0


@dataclass
class ScheduledTimes:
    """When each scheduled workflow is due next. Times missed while the loop was busy with
    a run fire once when it looks again; times before the loop started are not fired, as
    EventBridge does not fire missed times either."""

    schedules: dict[str, Schedule]
    next_at: dict[str, datetime | None] = field(default_factory=dict)

    @classmethod
    def of(cls, workflows: dict[str, Workflow], now: datetime) -> ScheduledTimes:
        schedules = {n: parse_schedule(w.schedule) for n, w in workflows.items() if w.schedule}
        return cls(schedules, {n: s.next_after(now) for n, s in schedules.items()})

    def due(self, now: datetime) -> list[str]:
        """The workflows due at ``now``, each then set to its next time after ``now``."""
        fired = [n for n, at in self.next_at.items() if at is not None and at <= now]
        for name in fired:
            self.next_at[name] = self.schedules[name].next_after(now)
        return fired

    def seconds_to_next(self, now: datetime) -> float | None:
        upcoming = [at for at in self.next_at.values() if at is not None]
        return max(0.0, (min(upcoming) - now).total_seconds()) if upcoming else None


# After waiting for new files failed (the queue did not answer), the next try waits this.
ARRIVAL_RETRY_S = 10.0


class FolderWatch:
    """New files in a landing folder on a local disk (which sends no events): the names not
    seen at the previous look."""

    def __init__(self, folder: str) -> None:
        self.folder = Path(folder)
        self.seen = self.names()

    def names(self) -> set[str]:
        if not self.folder.is_dir():
            return set()
        return {
            str(p.relative_to(self.folder))
            for p in self.folder.rglob("*")
            if p.is_file() and not p.name.startswith((".", "_"))
        }

    def wait(self, seconds: float) -> list[str]:
        deadline = time.monotonic() + seconds
        while True:
            now = self.names()
            new, self.seen = sorted(now - self.seen), now
            if new or time.monotonic() >= deadline:
                return new
            time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))  # a poll's period

    def waiting(self) -> bool:
        return bool(self.names())


@dataclass
class QueueWatch:
    """New objects under an S3 landing prefix, from the queue its notifications go to."""

    queue: ArrivalQueue
    s3: Any
    bucket: str
    prefix: str

    def wait(self, seconds: float) -> list[ObjectArrived]:
        return self.queue.wait(seconds)

    def waiting(self) -> bool:
        listed = self.s3.list_objects_v2(Bucket=self.bucket, Prefix=self.prefix, MaxKeys=5)
        # A key ending in / is a folder marker, not a file.
        return any(not item["Key"].endswith("/") for item in listed.get("Contents", []))


class Watch(Protocol):
    def wait(self, seconds: float) -> Sequence[object]:
        """What arrived within ``seconds``."""
        ...

    def waiting(self) -> bool:
        """Whether files wait in the landing place now."""
        ...


@dataclass
class Arrivals:
    """The watches of the workflows started on arrival (workflow -> its source's queue, or
    folder)."""

    watches: dict[str, Watch]

    @classmethod
    def of(cls, pipeline: Pipeline, aws: AwsEndpoint) -> Arrivals | None:
        """The pipeline's watches; raises UsageError naming a queue that does not exist."""
        watches: dict[str, Watch] = {}
        for name, workflow in pipeline.workflows.items():
            if workflow.on_arrival is None:
                continue
            source = pipeline.sources[workflow.on_arrival]
            assert isinstance(source, FilesSource)
            parts = s3_parts(source.path)
            if parts is None:
                watches[name] = FolderWatch(source.path)
                continue
            queue = ArrivalQueue(aws, arrival_queue_name(pipeline.name, workflow.on_arrival))
            if not queue.exists():
                raise UsageError(
                    f"workflow {name} starts on new files of {workflow.on_arrival}, but the "
                    f"SQS queue {queue.queue} does not exist",
                    "create it with `streamlake local up` (locally) or the deployment",
                )
            watches[name] = QueueWatch(queue, aws.client("s3"), *parts)
        return cls(watches) if watches else None

    def __call__(self, seconds: float) -> list[str]:
        """The workflows with new files, after waiting ``seconds`` at most in all."""
        share = seconds / len(self.watches)
        started = [name for name, watch in self.watches.items() if watch.wait(share)]
        for name in started:
            log.info("new files for workflow %s", name)
        return started

    def waiting_now(self) -> list[str]:
        """The workflows whose landing place holds files now (files that came while nothing
        served, or whose notification was lost)."""
        return [name for name, watch in self.watches.items() if watch.waiting()]


class ArrivalWatch(Protocol):
    def __call__(self, seconds: float) -> Iterable[str]: ...
    def waiting_now(self) -> Iterable[str]: ...


@dataclass
class TriggerLoop:
    """Fires workflows until ``stop`` is set: ``start_run(name, trigger)`` is called for each
    (one at a time: a run fired meanwhile waits for the one running); it returns False when
    the run could not start (another process runs the workflow). ``arrivals`` waits for new
    files (None: no workflow starts on arrival); a run they owe is started when the loop
    starts with files waiting, and tried again until it starts. ``sleep`` waits when there
    is nothing to watch, returning early when stopped."""

    workflows: dict[str, Workflow]
    start_run: Callable[[str, Trigger], bool]
    stop: threading.Event
    arrivals: ArrivalWatch | None = None
    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    sleep: Callable[[float], object] | None = None

    def run(self) -> None:
        times = ScheduledTimes.of(self.workflows, self.now())
        log.info(
            "watching: %s",
            ", ".join(f"{n} at {at:%Y-%m-%d %H:%M}" for n, at in times.next_at.items() if at)
            or "no schedule",
        )
        owed = dict.fromkeys(self.arrivals.waiting_now() if self.arrivals else [])
        while not self.stop.is_set():
            for name in times.due(self.now()):
                if self.stop.is_set():
                    return
                self.start_run(name, "schedule")
            for name in list(owed):
                if self.stop.is_set():
                    return
                if self.start_run(name, "arrival"):
                    del owed[name]
            to_next = times.seconds_to_next(self.now())
            wait_s = MAX_WAIT_S if to_next is None else min(to_next, MAX_WAIT_S)
            if self.arrivals is None:
                self._pause(wait_s)
                continue
            try:
                owed.update(dict.fromkeys(self.arrivals(wait_s)))
            except Exception as exc:  # the queue did not answer: try again, do not die
                log.warning("waiting for new files failed (%s); trying again", exc)
                self._pause(ARRIVAL_RETRY_S)

    def _pause(self, seconds: float) -> None:
        if self.sleep is not None:
            self.sleep(seconds)
        else:
            self.stop.wait(seconds)
