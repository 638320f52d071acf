"""Schedules in AWS's syntax, as EventBridge and Glue triggers take them: ``cron(Minutes
Hours Day-of-month Month Day-of-week Year)`` and ``rate(N unit)``, all in UTC.

AWS cron differs from Unix cron, which croniter computes: days of the week count 1 (SUN) to
7 (SAT), one of the two day fields must be ``?``, ``6L`` is the month's last Friday and
``6#3`` its third, and a sixth field gives the years. Expressions are translated, then
handed to croniter.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from croniter import CroniterBadDateError, croniter

CRON = re.compile(r"^cron\((?P<fields>[^)]*)\)$")
RATE = re.compile(r"^rate\((?P<n>\d+) (?P<unit>minutes?|hours?|days?)\)$")
UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}
# A day-of-week token: a number or name, a range, a step, a list, `#n`, or `nL`.
NUMBER = re.compile(r"\d+")


@dataclass(frozen=True)
class Schedule:
    """A parsed schedule; ``next_after`` gives its first time strictly after a moment (None
    when it has none left: its years are past)."""

    expression: str
    cron: str | None = None  # the croniter expression, for cron()
    every: timedelta | None = None  # the interval, for rate()

    def next_after(self, moment: datetime) -> datetime | None:
        moment = moment.astimezone(UTC)
        if self.every is not None:
            # Rates count from the epoch, so that every process agrees on the times.
            epoch = datetime(1970, 1, 1, tzinfo=UTC)
            periods = (moment - epoch) // self.every + 1
            return epoch + periods * self.every
        assert self.cron is not None
        try:
            found: datetime = croniter(self.cron, moment).get_next(datetime)
        except CroniterBadDateError:
            return None
        return found.astimezone(UTC)

    def times(self, after: datetime, count: int) -> list[datetime]:
        """The next ``count`` times after ``after`` (fewer when the schedule ends)."""
        found: list[datetime] = []
        while len(found) < count and (after_that := self.next_after(after)) is not None:
            found.append(after_that)
            after = after_that
        return found


def parse_schedule(text: str) -> Schedule:
    """``cron(...)`` or ``rate(...)``; a ValueError says what is wrong with it."""
    text = text.strip()
    rate = RATE.match(text)
    if rate is not None:
        n = int(rate["n"])
        if n < 1:
            raise ValueError(f"{text}: a rate needs a value of at least 1")
        unit = rate["unit"].rstrip("s")
        if (n == 1) != (rate["unit"] == unit):
            raise ValueError(f"{text}: AWS writes rate(1 {unit}) and rate(N {unit}s)")
        return Schedule(text, every=timedelta(seconds=n * UNIT_SECONDS[unit]))
    cron = CRON.match(text)
    if cron is None:
        raise ValueError(
            f"{text!r} is not a schedule: use cron(Minutes Hours Day-of-month Month "
            "Day-of-week Year) or rate(N minutes|hours|days), as EventBridge does"
        )
    return Schedule(text, cron=croniter_expression(text, cron["fields"].split()))


def croniter_expression(text: str, fields: list[str]) -> str:
    if len(fields) != 6:
        raise ValueError(
            f"{text}: AWS cron has six fields (minutes hours day-of-month month "
            f"day-of-week year), found {len(fields)}"
        )
    minutes, hours, day, month, weekday, year = fields
    if (day == "?") == (weekday == "?"):
        raise ValueError(f"{text}: one of day-of-month and day-of-week must be ?, not both")
    if "W" in day.upper():
        raise ValueError(f"{text}: W (the nearest weekday) is not supported")
    expression = " ".join(
        (
            minutes,
            hours,
            "*" if day == "?" else day,
            month,
            "*" if weekday == "?" else unix_weekday(text, weekday),
            "0",  # croniter's seconds field comes before the year
            year,
        )
    )
    if not croniter.is_valid(expression):
        raise ValueError(f"{text}: not a valid cron expression")
    return expression


def unix_weekday(text: str, field: str) -> str:
    """AWS days of the week (1 SUN .. 7 SAT; ``6L`` the last Friday) as Unix cron's (0 SUN ..
    6 SAT; croniter writes the last Friday ``L5``)."""
    if field == "L":
        raise ValueError(f"{text}: L in day-of-week needs a day, as in 6L (the last Friday)")

    def shifted(match: re.Match[str]) -> str:
        day = int(match.group())
        if not 1 <= day <= 7:
            raise ValueError(f"{text}: day-of-week {day} is not 1 (SUN) to 7 (SAT)")
        return str(day - 1)

    parts = []
    for part in field.split(","):
        step = ""
        if "/" in part:
            part, step = part.split("/", 1)
            step = "/" + step
        if "#" in part:
            day, nth = part.split("#", 1)
            parts.append(NUMBER.sub(shifted, day) + "#" + nth + step)
        elif part.upper().endswith("L"):
            parts.append("L" + NUMBER.sub(shifted, part[:-1]) + step)
        else:
            parts.append(NUMBER.sub(shifted, part) + step)
    return ",".join(parts)
