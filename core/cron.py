"""Five-field unix cron expressions as sets of values, to ask whether a minute matches.

Temporal fires schedules itself; this is for questions Temporal does not answer, such as
whether a recurring maintenance window is open right now.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
# (name, lowest, highest, names of values)
FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    ("month", 1, 12, {n: i + 1 for i, n in enumerate(MONTHS)}),
    ("day of week", 0, 7, {n: i for i, n in enumerate(DAYS)}),  # 0 and 7: Sunday
)


class CronError(ValueError):
    """An expression that is not a five-field unix cron; the message says which part."""


@dataclass(frozen=True)
class Cron:
    """The values each field allows, and whether the day fields were restricted."""

    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    any_day: bool
    any_weekday: bool

    def matches(self, at: datetime) -> bool:
        """Whether the minute `at` is one the expression fires at (as unix cron: day of month
        or day of week when both are restricted)."""
        if at.minute not in self.minutes or at.hour not in self.hours:
            return False
        if at.month not in self.months:
            return False
        day_ok = at.day in self.days
        weekday_ok = (at.isoweekday() % 7) in self.weekdays
        if self.any_day or self.any_weekday:
            return day_ok and weekday_ok
        return day_ok or weekday_ok


def _value(token: str, names: dict[str, int], name: str, low: int, high: int) -> int:
    number = names.get(token.lower())
    if number is None:
        if not token.isdigit():
            raise CronError(f"{name}: {token!r} is not a number")
        number = int(token)
    if not low <= number <= high:
        raise CronError(f"{name}: {number} is outside {low}-{high}")
    return number


def _field(part: str, name: str, low: int, high: int, names: dict[str, int]) -> set[int]:
    values: set[int] = set()
    for item in part.split(","):
        span, _, step_text = item.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise CronError(f"{name}: step {step_text!r} must be a positive number")
            step = int(step_text)
        if span == "*":
            first, last = low, high
        elif "-" in span:
            a, _, b = span.partition("-")
            first, last = _value(a, names, name, low, high), _value(b, names, name, low, high)
            if first > last:
                raise CronError(f"{name}: range {span!r} runs backwards")
        else:
            first = _value(span, names, name, low, high)
            last = high if step_text else first
        values.update(range(first, last + 1, step))
    return values


def parse_cron(expression: str) -> Cron:
    """The expression's value sets; CronError naming the field that is wrong."""
    parts = expression.split()
    if len(parts) != len(FIELDS):
        raise CronError(
            "must be a unix cron expression of 5 fields "
            "(minute hour day-of-month month day-of-week)"
        )
    sets = [
        _field(part, name, low, high, names)
        for part, (name, low, high, names) in zip(parts, FIELDS, strict=True)
    ]
    weekdays = {0 if d == 7 else d for d in sets[4]}
    return Cron(
        minutes=frozenset(sets[0]),
        hours=frozenset(sets[1]),
        days=frozenset(sets[2]),
        months=frozenset(sets[3]),
        weekdays=frozenset(weekdays),
        any_day=parts[2] == "*",
        any_weekday=parts[4] == "*",
    )
