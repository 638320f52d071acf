"""AWS schedule expressions (EventBridge's and Glue triggers'), computed with the clock
given: no real waiting."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from streamlake.schedule import parse_schedule

# A Saturday.
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        # The demo's nightly workflow: every day at 02:00 UTC.
        ("cron(0 2 * * ? *)", ["2026-11-29 02:00", "2026-11-30 02:00", "2026-12-01 02:00"]),
        # Days of the week count 1 (SUN) to 7 (SAT): 2-6 is Monday to Friday.
        ("cron(0 12 ? * 2-6 *)", ["2026-11-30 12:00", "2026-12-01 12:00", "2026-12-02 12:00"]),
        ("cron(0 18 ? * MON-FRI *)", ["2026-11-30 18:00", "2026-12-01 18:00", "2026-12-02 18:00"]),
        # L: the month's last day; 6L: its last Friday; 2#1: its first Monday.
        ("cron(15 12 L * ? *)", ["2026-11-30 12:15", "2026-12-31 12:15", "2027-01-31 12:15"]),
        ("cron(0 10 ? * 6L *)", ["2026-12-25 10:00", "2027-01-29 10:00", "2027-02-26 10:00"]),
        ("cron(0 8 ? * 2#1 *)", ["2026-12-07 08:00", "2027-01-04 08:00", "2027-02-01 08:00"]),
        # The year field: only in 2028.
        ("cron(0 0 1 1/6 ? 2028)", ["2028-01-01 00:00", "2028-07-01 00:00"]),
        # Rates count from the epoch: every process agrees on the times.
        ("rate(5 minutes)", ["2026-11-28 12:05", "2026-11-28 12:10", "2026-11-28 12:15"]),
        ("rate(1 day)", ["2026-11-29 00:00", "2026-11-30 00:00", "2026-12-01 00:00"]),
    ],
)
def test_the_next_times_are_those_aws_computes(expression: str, expected: list[str]) -> None:
    assert parse_schedule(expression).times(NOW, 3) == [at(t) for t in expected]


def test_a_schedule_whose_years_are_past_has_no_next_time() -> None:
    schedule = parse_schedule("cron(0/15 * * * ? 2025)")
    assert schedule.next_after(NOW) is None and schedule.times(NOW, 3) == []


@pytest.mark.parametrize(
    ("expression", "says"),
    [
        ("cron(0 2 * * *)", "six fields"),
        ("cron(0 2 * * * *)", "one of day-of-month and day-of-week must be ?"),
        ("cron(0 2 ? * ? *)", "one of day-of-month and day-of-week must be ?"),
        ("cron(0 2 ? * 8 *)", "day-of-week 8 is not 1 (SUN) to 7 (SAT)"),
        ("cron(0 2 15W * ? *)", "W (the nearest weekday) is not supported"),
        ("cron(0 25 * * ? *)", "not a valid cron expression"),
        ("rate(1 hours)", "rate(1 hour)"),
        ("rate(0 minutes)", "at least 1"),
        ("0 2 * * *", "is not a schedule"),
    ],
)
def test_a_wrong_expression_says_what_is_wrong(expression: str, says: str) -> None:
    with pytest.raises(ValueError, match=re.escape(says)):
        parse_schedule(expression)
