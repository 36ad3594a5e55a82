"""Maintenance windows as stored, read for the autonomy of a trigger (by the API and the
activity that admits a scheduled run when it fires)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.maintenance import OpenWindow, WindowTimes, is_open
from core.store.models import MaintenanceWindow


def times_of(row: MaintenanceWindow) -> WindowTimes:
    """What decides whether the stored window is open."""
    return WindowTimes(
        start=row.start_at,
        end=row.end_at,
        recurring=row.recurring,
        override_active=row.override_active,
        override_until=row.override_until,
    )


def open_windows(session: Session, now: datetime) -> list[OpenWindow]:
    """The windows open at `now`, for the autonomy of a trigger."""
    rows = session.scalars(select(MaintenanceWindow).order_by(MaintenanceWindow.created_at))
    return [
        OpenWindow(row.id, row.name, tuple(row.scope), row.autonomy_override)
        for row in rows
        if is_open(times_of(row), now)
    ]
