"""Cron matching and whether a maintenance window is open: table tests of the pure rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.cron import CronError, parse_cron
from core.maintenance import (
    OpenWindow,
    WindowTimes,
    activated,
    deactivated,
    effective_autonomy,
    is_open,
)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("expression", "moment", "fires"),
    [
        ("0 3 * * 0", "2026-03-22T03:00", True),  # a Sunday
        ("0 3 * * 0", "2026-03-23T03:00", False),  # a Monday
        ("0 3 * * 7", "2026-03-22T03:00", True),  # 7 is Sunday too
        ("0 3 * * sun", "2026-03-22T03:00", True),
        ("*/15 * * * *", "2026-03-22T10:45", True),
        ("*/15 * * * *", "2026-03-22T10:46", False),
        ("0 9-17 * * mon-fri", "2026-03-23T12:00", True),
        ("0 9-17 * * mon-fri", "2026-03-23T18:00", False),
        ("0 0 1 jan *", "2026-01-01T00:00", True),
        ("30 2 1,15 * *", "2026-03-15T02:30", True),
        ("5/20 * * * *", "2026-03-15T02:45", True),  # from 5 on, every 20
        ("5/20 * * * *", "2026-03-15T02:40", False),
        # A day field starting with `*` leaves the other to decide, as in unix cron.
        ("0 0 */2 * 1", "2026-03-16T00:00", False),  # a Monday on the 16th: both must match
        ("0 0 */2 * 1", "2026-03-23T00:00", True),  # a Monday on the 23rd
        # Both day fields restricted: either one matching is enough (unix cron).
        ("0 0 13 * 5", "2026-03-13T00:00", True),  # the 13th, a Friday
        ("0 0 13 * 5", "2026-03-20T00:00", True),  # a Friday, not the 13th
        ("0 0 13 * 5", "2026-03-14T00:00", False),
    ],
)
def test_cron_matches_as_unix_cron_does(expression: str, moment: str, fires: bool) -> None:
    assert parse_cron(expression).matches(at(moment)) is fires


@pytest.mark.parametrize(
    ("expression", "names"),
    [
        ("0 3 * *", "5 fields"),
        ("61 * * * *", "minute value 61 is outside 0-59"),
        ("* 24 * * *", "hour value 24 is outside 0-23"),
        ("* * 0 * *", "day of month value 0 is outside 1-31"),
        ("* * * 13 *", "month value 13 is outside 1-12"),
        ("* * * * 8", "day of week value 8 is outside 0-7"),
        ("*/0 * * * *", "minute step '0' must be 1 to 60"),
        ("5-1 * * * *", "minute range '5-1' ends before it starts"),
        ("x * * * *", "minute value 'x' is not 0-59"),
    ],
)
def test_bad_cron_expressions_name_the_field(expression: str, names: str) -> None:
    with pytest.raises(CronError, match=names):
        parse_cron(expression)


ONE_OFF = WindowTimes(start=at("2026-03-22T03:00"), end=at("2026-03-22T04:00"))
WEEKLY = WindowTimes(
    start=at("2026-03-22T03:00"), end=at("2026-03-22T04:00"), recurring="0 3 * * 0"
)


@pytest.mark.parametrize(
    ("window", "moment", "open_"),
    [
        (ONE_OFF, "2026-03-22T02:59", False),
        (ONE_OFF, "2026-03-22T03:00", True),
        (ONE_OFF, "2026-03-22T03:59", True),
        (ONE_OFF, "2026-03-22T04:00", False),
        (WEEKLY, "2026-03-29T03:30", True),  # the next Sunday
        (WEEKLY, "2026-03-29T04:00", False),
        (WEEKLY, "2026-03-30T03:30", False),  # a Monday
        (WEEKLY, "2026-03-15T03:30", False),  # a Sunday before the window's start
    ],
)
def test_a_window_is_open_by_its_schedule(window: WindowTimes, moment: str, open_: bool) -> None:
    assert is_open(window, at(moment)) is open_


def test_activating_opens_for_the_duration_and_deactivating_closes_the_occurrence() -> None:
    now = at("2026-03-24T10:00")  # a Tuesday: the weekly window is closed
    on, until = activated(WEEKLY, now)
    opened = WindowTimes(WEEKLY.start, WEEKLY.end, WEEKLY.recurring, on, until)
    assert until == now + timedelta(hours=1)
    assert is_open(opened, now + timedelta(minutes=59))
    assert not is_open(opened, now + timedelta(minutes=61))
    off, closed_until = deactivated(opened, now + timedelta(minutes=10))
    closed = WindowTimes(WEEKLY.start, WEEKLY.end, WEEKLY.recurring, off, closed_until)
    assert not is_open(closed, now + timedelta(minutes=11))
    # The next scheduled occurrence opens as usual.
    assert is_open(closed, at("2026-03-29T03:05"))


def test_deactivating_a_scheduled_occurrence_lasts_until_it_would_have_ended() -> None:
    sunday = at("2026-03-29T03:20")
    off, until = deactivated(WEEKLY, sunday)
    assert (off, until) == (False, at("2026-03-29T04:00"))


def window(id_: str, override: str, *scope: str) -> OpenWindow:
    return OpenWindow(id=id_, name=id_, scope=scope, autonomy_override=override)


@pytest.mark.parametrize(
    ("own", "windows", "level", "decided_by"),
    [
        ("execute", [], "execute", None),
        ("approve", [], "approve", None),
        ("execute", [window("w1", "disabled")], "disabled", "w1"),  # empty scope: everything
        ("approve", [window("w1", "execute")], "execute", "w1"),  # a window may relax
        ("execute", [window("w1", "disabled", "auto_other")], "execute", None),
        ("execute", [window("w1", "approve", "auto_me")], "approve", "w1"),
        ("execute", [window("w1", "approve", "nas")], "approve", "w1"),  # a host in scope
        ("execute", [window("w1", "notify"), window("w2", "disabled", "nas")], "disabled", "w2"),
        ("disabled", [window("w1", "execute"), window("w2", "notify")], "notify", "w2"),
    ],
)
def test_the_strictest_open_window_in_scope_decides(
    own: str, windows: list[OpenWindow], level: str, decided_by: str | None
) -> None:
    decided = effective_autonomy(own, ["auto_me", "nas"], windows)
    assert decided.level == level
    assert (decided.window.id if decided.window else None) == decided_by
