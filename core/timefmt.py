"""Times on the wire: RFC 3339 in UTC with a `Z`, as Go's time.Time marshals them."""

from __future__ import annotations

from datetime import UTC, datetime


def rfc3339(value: datetime | None, *, fraction: bool = True) -> str | None:
    """`2024-02-26T10:00:00.123456Z` (or without the fraction); None stays None."""
    if value is None:
        return None
    utc = value.astimezone(UTC)
    text = utc.isoformat(timespec="microseconds" if fraction else "seconds")
    return text.replace("+00:00", "Z")


def as_utc(value: datetime) -> datetime:
    """`value` in UTC; a time without an offset is taken to be UTC already."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
