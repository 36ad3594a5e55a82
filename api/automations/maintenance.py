"""Maintenance windows: stored as given, listed with whether each is open now."""

from __future__ import annotations

import secrets
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.automations import schemas
from api.errors import ApiError, bad_request, not_found
from core.cron import CronError, parse_cron
from core.maintenance import MAX_RECURRING_DURATION, activated, deactivated, is_open
from core.store.maintenance import times_of
from core.store.models import MaintenanceWindow, User, utcnow
from core.timefmt import as_utc, rfc3339


def window_view(row: MaintenanceWindow, now: datetime) -> schemas.MaintenanceWindow:
    return schemas.MaintenanceWindow(
        id=row.id,
        name=row.name,
        start=rfc3339(row.start_at, fraction=False) or "",
        end=rfc3339(row.end_at, fraction=False) or "",
        recurring=row.recurring,
        scope=list(row.scope),
        autonomy_override=row.autonomy_override,
        active=is_open(times_of(row), now),
    )


def create_window(
    session: Session, user: User, body: schemas.MaintenanceWindowIn
) -> schemas.MaintenanceWindow:
    """A new window; 400 naming the field when its times or cron make no sense."""
    try:
        start, end = as_utc(body.start), as_utc(body.end)
    except OverflowError as exc:  # year 1 or 9999 with an offset leaves datetime's range
        raise bad_request("start, end: outside the years datetimes can hold") from exc
    if end <= start:
        raise bad_request("end: must be after start")
    recurring = body.recurring.strip() if body.recurring and body.recurring.strip() else None
    if recurring is not None:
        try:
            parse_cron(recurring)
        except CronError as exc:
            raise bad_request(f"recurring: {exc}") from exc
        if end - start > MAX_RECURRING_DURATION:
            raise bad_request(
                f"end: a recurring window lasts at most {MAX_RECURRING_DURATION.days} days"
            )
    row = MaintenanceWindow(
        id=f"mw_{secrets.token_hex(8)}",
        name=body.name,
        start_at=start,
        end_at=end,
        recurring=recurring,
        scope=list(dict.fromkeys(body.scope)),
        autonomy_override=body.autonomy_override,
        created_by=user.id,
    )
    session.add(row)
    session.flush()
    return window_view(row, utcnow())


def list_windows(session: Session) -> list[schemas.MaintenanceWindow]:
    now = utcnow()
    rows = session.scalars(select(MaintenanceWindow).order_by(MaintenanceWindow.created_at))
    return [window_view(row, now) for row in rows]


def _window(session: Session, window_id: str) -> MaintenanceWindow:
    row = session.get(MaintenanceWindow, window_id[:40])
    if row is None:
        raise not_found(f"maintenance window {window_id!r} not found")
    return row


def set_active(session: Session, window_id: str, active: bool) -> schemas.MaintenanceWindow:
    """Open a window now for its duration, or close the occurrence open now early (409 when
    it is not open)."""
    row = _window(session, window_id)
    now = utcnow()
    times = times_of(row)
    if not active and not is_open(times, now):
        raise ApiError(409, f"maintenance window {row.id} is not active")
    row.override_active, row.override_until = (activated if active else deactivated)(times, now)
    session.flush()
    return window_view(row, now)


def delete_window(session: Session, window_id: str) -> schemas.Deleted:
    session.delete(_window(session, window_id))
    session.flush()
    return schemas.Deleted()
