"""Five-field unix cron expressions: checked strictly, and read as sets of values.

The one reading of cron in the project: schedules check their expressions here before they
are turned into what Temporal needs, and maintenance windows ask whether a minute matches
(a question Temporal does not answer).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


@dataclass(frozen=True)
class CronField:
    """One field of a cron expression: its name, bounds and the names its values may take."""

    name: str
    low: int
    high: int
    names: dict[str, int]


CRON_FIELDS = (
    CronField("minute", 0, 59, {}),
    CronField("hour", 0, 23, {}),
    CronField("day of month", 1, 31, {}),
    CronField("month", 1, 12, {n: i + 1 for i, n in enumerate(MONTHS)}),
    CronField("day of week", 0, 7, {n: i for i, n in enumerate(DAYS)}),  # 0 and 7: Sunday
)
_ITEM = re.compile(r"^(?P<base>\*|[0-9A-Za-z]+(?:-[0-9A-Za-z]+)?)(?:/(?P<step>[0-9]+))?$")


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
    any_day: bool  # the day-of-month field starts with `*`
    any_weekday: bool  # the day-of-week field starts with `*`

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


def _value(token: str, field: CronField) -> int:
    """One value of a field: a number in its bounds, or one of its names."""
    if token.isdigit() and len(token) <= 2:
        value = int(token)
    elif token.lower() in field.names:
        value = field.names[token.lower()]
    else:
        names = " or a name (jan, mon, ...)" if field.names else ""
        raise CronError(f"{field.name} value {token!r} is not {field.low}-{field.high}{names}")
    if not field.low <= value <= field.high:
        raise CronError(f"{field.name} value {value} is outside {field.low}-{field.high}")
    return value


def field_values(part: str, field: CronField) -> set[int]:
    """A field's values: a comma list of `*`, `a`, `a-b`, each optionally with `/step`."""
    values: set[int] = set()
    for item in part.split(","):
        match = _ITEM.match(item)
        if match is None:
            raise CronError(f"{field.name} {item!r} is not a value, range or step")
        base, step = match["base"], match["step"]
        start, end = field.low, field.high
        if base != "*":
            first, _, last = base.partition("-")
            start = _value(first, field)
            end = _value(last, field) if last else start
            if end < start:
                raise CronError(f"{field.name} range {base!r} ends before it starts")
            if step is not None and not last:
                end = field.high  # `a/step`: from a to the end of the field
        span = field.high - field.low + 1
        if step is not None and (len(step) > 2 or not 1 <= int(step) <= span):
            raise CronError(f"{field.name} step {step!r} must be 1 to {span}")
        values.update(range(start, end + 1, int(step or 1)))
    return values


def parse_cron(expression: str) -> Cron:
    """The expression's value sets; CronError naming the part that is wrong."""
    parts = expression.split()
    if len(parts) != len(CRON_FIELDS):
        raise CronError(
            "must be a unix cron expression of 5 fields (minute hour day-of-month month "
            f"day-of-week), got {len(parts)}"
        )
    minutes, hours, days, months, weekdays = (
        frozenset(field_values(part, field)) for part, field in zip(parts, CRON_FIELDS, strict=True)
    )
    return Cron(
        minutes=minutes,
        hours=hours,
        days=days,
        months=months,
        weekdays=frozenset(0 if d == 7 else d for d in weekdays),
        any_day=parts[2].startswith("*"),
        any_weekday=parts[4].startswith("*"),
    )


def temporal_expressions(expression: str) -> list[str]:
    """What Temporal is given for a unix cron expression (CronError when it is not one).

    Unix cron fires when day of month *or* day of week matches if both are restricted (neither
    starts with `*`); Temporal requires both. Such an expression becomes two, one per day field.
    """
    cron = parse_cron(expression)
    parts = expression.split()
    minute, hour, dom, month, dow = parts
    if cron.any_day or cron.any_weekday:
        return [" ".join(parts)]
    return [f"{minute} {hour} {dom} {month} *", f"{minute} {hour} * {month} {dow}"]
