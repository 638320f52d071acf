"""The notifier's contract without a service: which events go out, that a failing delivery
is counted and never raised, and the source lag notification's hysteresis."""

from __future__ import annotations

import pytest

from streaming.listener import BatchLogListener
from streamlake.config.pipeline import Notifications
from streamlake.notifications import EVENTS, Event, Notification, Notifier


class Kept(Notifier):
    """Keeps what it is asked to deliver (the SNS notifier is tested against the local AWS
    server in the integration tests)."""

    def __init__(self, fail: bool = False, events: frozenset[Event] = frozenset(EVENTS)) -> None:
        super().__init__(events)
        self.fail = fail
        self.delivered: list[Notification] = []

    def deliver(self, notification: Notification) -> None:
        if self.fail:
            raise ConnectionError("SNS is down")
        self.delivered.append(notification)


def test_only_the_configured_events_go_out_with_their_attributes() -> None:
    notifier = Kept(events=frozenset({"job_failed"}))
    notifier.notify("job_started", "curate", "curate started")
    notifier.notify("job_failed", "curate", "curate failed", "boom", table="curated.funnel")
    (sent,) = notifier.delivered
    assert sent.attributes() == {
        "event": "job_failed",
        "job": "curate",
        "severity": "error",
        "table": "curated.funnel",
    }
    assert (notifier.sent, notifier.failed) == (1, 0)


def test_a_failed_delivery_is_counted_and_logged_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    notifier = Kept(fail=True)
    notifier.notify("job_succeeded", "compact", "compact succeeded")
    assert (notifier.sent, notifier.failed) == (0, 1)
    assert "notification job_succeeded of job compact not sent" in caplog.text


def test_source_lag_notifies_once_per_excursion_past_the_threshold() -> None:
    notifier = Kept()
    listener = BatchLogListener(notifier, Notifications(source_lag_records=100))
    for lag in (50, 150, 400, 100, 20, 300, None, 250):
        listener.check_lag("ingest-orders", lag)
    assert [n.subject for n in notifier.delivered] == [
        "ingest-orders: source lag 150 records",
        "ingest-orders: source lag 300 records",
    ]


def test_a_time_lag_past_its_threshold_notifies_with_both_figures() -> None:
    notifier = Kept()
    listener = BatchLogListener(notifier, Notifications(source_lag_seconds=30))
    for seconds in (2.0, 45.5, 60.0, 0.0):
        listener.check_lag("ingest-events", None, seconds)
    assert [(n.subject, n.detail) for n in notifier.delivered] == [
        (
            "ingest-events: source lag 45.5 s",
            "job ingest-events trails its source by 45.5 s (threshold 30 s)",
        )
    ]
