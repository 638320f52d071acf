"""What starts workflows while `streamlake workflow serve` runs: their schedules, and new
objects under a landing prefix. The clock and the waiting are handed in, so that a test
can walk through days of schedule in no time."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from streamlake.config.pipeline import Workflow
from streamlake.lake.workflow_runs import Trigger
from streamlake.schedule import Schedule, parse_schedule

log = logging.getLogger(__name__)

# How long one wait for arrivals (an SQS long poll) lasts at most; also the longest the
# loop sleeps between looks at the clock.
MAX_WAIT_S = 20.0


@dataclass
class ScheduledTimes:
    """When each scheduled workflow is due next. A time missed (the loop was busy with a
    run, or not running) fires once when the loop looks again, as EventBridge does not
    fire missed times either."""

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


# Waits up to the given seconds for new objects; returns the workflows they start (those
# whose ``on_arrival`` source the objects landed under).
ArrivalWait = Callable[[float], Iterable[str]]


@dataclass
class TriggerLoop:
    """Fires workflows until ``stop`` is set: ``start_run(name, trigger)`` is called for each
    (one at a time: a run fired meanwhile waits for the one running). ``arrivals`` waits
    for new objects (None: no workflow starts on arrival); ``sleep`` waits when there is
    nothing to watch, returning early when stopped."""

    workflows: dict[str, Workflow]
    start_run: Callable[[str, Trigger], None]
    stop: threading.Event
    arrivals: ArrivalWait | None = None
    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    sleep: Callable[[float], object] | None = None

    def run(self) -> None:
        times = ScheduledTimes.of(self.workflows, self.now())
        log.info(
            "watching: %s",
            ", ".join(f"{n} at {at:%Y-%m-%d %H:%M}" for n, at in times.next_at.items() if at)
            or "no schedule",
        )
        while not self.stop.is_set():
            for name in times.due(self.now()):
                if self.stop.is_set():
                    return
                self.start_run(name, "schedule")
            to_next = times.seconds_to_next(self.now())
            wait_s = MAX_WAIT_S if to_next is None else min(to_next, MAX_WAIT_S)
            if self.arrivals is not None:
                for name in dict.fromkeys(self.arrivals(wait_s)):
                    if self.stop.is_set():
                        return
                    self.start_run(name, "arrival")
            elif self.sleep is not None:
                self.sleep(wait_s)
            else:
                self.stop.wait(wait_s)
