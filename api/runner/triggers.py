"""Job schedule bodies: the description, the service account and the trigger, checked strictly.

Pure functions. A `cron` trigger is a five-field unix cron expression (minute, hour, day of
month, month, day of week; numbers, `*`, lists, ranges, steps and month/day names); a `date`
trigger is one ISO-8601 time, UTC unless it says otherwise, in the future. Temporal's own cron
parser takes more (seconds, years, `@daily`, `?`) and reads day-of-month and day-of-week as
"both must match", so the expression is checked here and turned into what Temporal needs to
fire exactly when unix cron would.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from api.fields import FieldError, obj, text
from core.cron import CronError, temporal_expressions
from core.timefmt import as_utc

TRIGGER_TYPES = ("cron", "date")
MAX_DESCRIPTION = 4000
MAX_EXPRESSION = 200


@dataclass(frozen=True)
class Trigger:
    """A checked trigger: its type and its expression, normalized."""

    type: str
    expression: str
    at: datetime | None = None  # a date trigger's time (UTC, whole seconds)

    def document(self) -> dict[str, str]:
        """The trigger as stored and echoed: `{type, expression}`."""
        return {"type": self.type, "expression": self.expression}


@dataclass(frozen=True)
class ScheduleBody:
    """A checked job schedule body."""

    description: str
    service_account_alias: str
    trigger: Trigger


def cron_expressions(expression: str, path: str) -> list[str]:
    """What Temporal is given for a checked unix cron expression (see `temporal_expressions`)."""
    try:
        return temporal_expressions(expression)
    except CronError as exc:
        raise FieldError(path, str(exc)) from exc


def parse_date(expression: str, path: str, now: datetime) -> datetime:
    """A date trigger's time: ISO-8601 (UTC when no offset is given), in the future, to the
    second (fractions are dropped)."""
    try:
        when = datetime.fromisoformat(expression)
    except ValueError as exc:
        raise FieldError(path, "must be an ISO-8601 UTC time such as 2030-01-31T18:00:00Z") from exc
    when = as_utc(when).replace(microsecond=0)
    if when <= now:
        raise FieldError(path, f"{when:%Y-%m-%dT%H:%M:%SZ} is not in the future")
    return when


def _trigger_of(body: dict[str, Any]) -> tuple[Any, str]:
    """The trigger object and the path it was given at: `trigger`, or the document example's
    `type`, each an object or an array of exactly one."""
    key = "trigger" if body.get("trigger") is not None else "type"
    value = body.get(key)
    if value is None:
        raise FieldError("trigger", "is required")
    if isinstance(value, list):
        if len(value) != 1:
            raise FieldError(key, "must be one trigger object (or an array of exactly one)")
        return value[0], f"{key}[0]"
    return value, key


def parse_trigger(body: dict[str, Any], now: datetime) -> Trigger:
    """The body's trigger `{type: cron|date, expression}`."""
    raw, path = _trigger_of(body)
    trigger = obj(raw, path, required=True)
    kind = text(trigger.get("type"), f"{path}.type", required=True).strip().lower()
    if kind not in TRIGGER_TYPES:
        raise FieldError(f"{path}.type", f"must be cron or date, not {kind!r}")
    where = f"{path}.expression"
    expression = " ".join(text(trigger.get("expression"), where, required=True).split())
    if not expression:
        raise FieldError(where, "is required")
    if len(expression) > MAX_EXPRESSION:
        raise FieldError(where, f"must be at most {MAX_EXPRESSION} characters")
    if kind == "cron":
        cron_expressions(expression, where)
        return Trigger("cron", expression)
    at = parse_date(expression, where, now)
    return Trigger("date", f"{at:%Y-%m-%dT%H:%M:%SZ}", at)


def parse_schedule_body(raw: Any, now: datetime) -> ScheduleBody:
    """`{description, serviceAccountAlias, trigger: {type, expression}}`; every field required."""
    body = obj(raw, "body", required=True)
    description = text(
        body.get("description"), "description", required=True, max_len=MAX_DESCRIPTION
    )
    alias = text(body.get("serviceAccountAlias"), "serviceAccountAlias", required=True)
    return ScheduleBody(
        description=description, service_account_alias=alias, trigger=parse_trigger(body, now)
    )
