"""Notifications of what jobs do, for people and systems downstream: a job started,
succeeded or failed, a data-quality breach, source lag past a threshold, data loss.

Jobs call ``Notifier.notify``; the notifier built at the edge from the pipeline's
``notifications`` decides which events go out and where (``connectors.sns`` publishes them
to an SNS topic). A notification never blocks or fails the job that sends it: sending
happens off the job's thread, and a failure is logged and counted."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal, get_args

log = logging.getLogger(__name__)

Event = Literal[
    "job_started",
    "job_succeeded",
    "job_failed",
    "quality_breach",
    "source_lag",
    "data_loss",
    "workflow_failed",
]
EVENTS: tuple[Event, ...] = get_args(Event)
# The share of a streaming batch's records quarantined above which a quality breach is
# raised, unless the pipeline's notifications say otherwise.
DEFAULT_QUARANTINE_RATIO = 0.05
Severity = Literal["info", "warning", "error", "critical"]
SEVERITY: dict[Event, Severity] = {
    "job_started": "info",
    "job_succeeded": "info",
    "job_failed": "error",
    "quality_breach": "warning",
    "source_lag": "warning",
    "data_loss": "critical",
    "workflow_failed": "error",
}


@dataclass(frozen=True)
class Notification:
    """One event of one job (and table, when it concerns one)."""

    event: Event
    job: str
    subject: str
    detail: str = ""
    table: str = ""

    @property
    def severity(self) -> Severity:
        return SEVERITY[self.event]

    def attributes(self) -> dict[str, str]:
        """What subscribers filter on; ``table`` only when the event names one."""
        found = {"event": self.event, "job": self.job, "severity": self.severity}
        return found | ({"table": self.table} if self.table else {})

    def as_dict(self) -> dict[str, str]:
        return {**self.attributes(), "subject": self.subject, "detail": self.detail}


class Notifier:
    """Sends the notifications of the ``events`` it was given; this one sends them nowhere
    (no topic configured). Subclasses implement ``deliver``."""

    def __init__(self, events: frozenset[Event] = frozenset(EVENTS)) -> None:
        self.events = events
        self.sent = 0
        self.failed = 0

    def notify(
        self, event: Event, job: str, subject: str, detail: str = "", table: str = ""
    ) -> None:
        """Called by jobs when ``event`` happens; returns at once."""
        if event in self.events:
            self.submit(Notification(event, job, subject[:100], detail, table))

    def submit(self, notification: Notification) -> None:
        """Hand ``notification`` to ``deliver``; a subclass may do so on another thread."""
        self.attempt(notification)

    def attempt(self, notification: Notification) -> None:
        try:
            self.deliver(notification)
        except Exception as exc:
            self.failed += 1
            log.warning(
                "notification %s of job %s not sent (%s sent, %s failed so far): %s",
                notification.event,
                notification.job,
                self.sent,
                self.failed,
                exc,
            )
        else:
            self.sent += 1

    def deliver(self, notification: Notification) -> None:
        """Called once per notification to send; raising counts it as failed."""

    def close(self, timeout_s: float = 10.0) -> None:
        """Called when the job ends: sends what is still queued, waiting at most
        ``timeout_s``."""
