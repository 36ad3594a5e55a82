"""Whether a maintenance window is open: pure rules over its times and manual overrides.

A one-off window is open from `start` to `end`. A recurring one opens at every firing of its
cron expression (from `start` on) and stays open for `end - start`. Activating a window opens
it at once for that long; deactivating closes it until the occurrence open now would end.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from core.cron import parse_cron

# A recurring window is checked minute by minute over its duration: keep that bounded.
MAX_RECURRING_DURATION = timedelta(days=31)


@dataclass(frozen=True)
class WindowTimes:
    """What decides whether a window is open (all times aware, UTC)."""

    start: datetime
    end: datetime
    recurring: str | None = None
    override_active: bool | None = None  # set by activate (True) or deactivate (False)
    override_until: datetime | None = None

    @property
    def duration(self) -> timedelta:
        return self.end - self.start


def scheduled_opening(window: WindowTimes, now: datetime) -> datetime | None:
    """When the occurrence open at `now` opened, by the schedule alone (None: closed)."""
    if window.recurring is None:
        return window.start if window.start <= now < window.end else None
    cron = parse_cron(window.recurring)
    minute = now.replace(second=0, microsecond=0)
    while minute > now - window.duration and minute >= window.start:
        if cron.matches(minute):
            return minute
        minute -= timedelta(minutes=1)
    return None


def is_open(window: WindowTimes, now: datetime) -> bool:
    """Whether the window is open at `now`: a manual override while it lasts, else the
    schedule."""
    if window.override_until is not None and now < window.override_until:
        return bool(window.override_active)
    return scheduled_opening(window, now) is not None


def activated(window: WindowTimes, now: datetime) -> tuple[bool, datetime]:
    """The override `activate` sets: open from now for the window's duration."""
    return True, now + window.duration


def deactivated(window: WindowTimes, now: datetime) -> tuple[bool, datetime]:
    """The override `deactivate` sets: closed until the occurrence open now would have ended
    (a manual activation's end, or the schedule's), so the next occurrence opens as usual."""
    ends = [now]
    if window.override_active and window.override_until is not None:
        ends.append(window.override_until)
    opened = scheduled_opening(window, now)
    if opened is not None:
        ends.append(opened + window.duration)
    return False, max(ends)


# From the most to the least restrictive: where open windows disagree, the strictest wins.
AUTONOMY_ORDER = ("disabled", "approve", "notify", "execute")


@dataclass(frozen=True)
class OpenWindow:
    """A window open now, as far as autonomy goes."""

    id: str
    name: str
    scope: tuple[str, ...]  # automation and host ids; empty: everything
    autonomy_override: str


@dataclass(frozen=True)
class Autonomy:
    """How a trigger is handled, and the window that decided it (None: the automation did)."""

    level: str
    window: OpenWindow | None = None


def effective_autonomy(
    own: str, subjects: Iterable[str], windows: Iterable[OpenWindow]
) -> Autonomy:
    """The autonomy of a trigger of something known by `subjects` (an automation's id, the
    hosts it acts on): an open window in scope replaces the automation's own level."""
    names = set(subjects)
    applying = [w for w in windows if not w.scope or names & set(w.scope)]
    if not applying:
        return Autonomy(own)
    strictest = min(applying, key=lambda w: AUTONOMY_ORDER.index(w.autonomy_override))
    return Autonomy(strictest.autonomy_override, strictest)
