"""Maintenance windows of the Automations API: create, list with `active`, activate,
deactivate, delete; every bad field a 400 naming it, nothing written."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from core.store.models import MaintenanceWindow
from core.store.session import transaction
from core.store.users import upsert_user
from tests.stack import ADMIN, Stack, basic

ADMIN_AUTH = basic(*ADMIN)


def iso(moment: datetime) -> str:
    return moment.isoformat()


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def rows(stack: Stack) -> int:
    with stack.sessions() as session:
        return session.scalar(select(func.count()).select_from(MaintenanceWindow)) or 0


async def create(stack: Stack, body: dict[str, Any]) -> httpx.Response:
    return await stack.api.post("/api/maintenance", json=body, headers=ADMIN_AUTH)


async def listed(stack: Stack) -> dict[str, dict[str, Any]]:
    response = await stack.api.get("/api/maintenance", headers=ADMIN_AUTH)
    assert response.status_code == 200, response.text
    return {w["id"]: w for w in response.json()}


async def test_a_one_off_window_is_created_and_listed_as_active_while_it_lasts(
    stack: Stack,
) -> None:
    """201 with the window; the list shows `active` from the clock, times in UTC."""
    start = now() - timedelta(minutes=5)
    body = {
        "name": "Weekly reboot",
        "start": (start + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%S+02:00"),
        "end": iso(start + timedelta(hours=1)),
        "scope": ["auto_a", "agent_b"],
        "autonomy_override": "approve",
    }
    created = await create(stack, body)
    assert created.status_code == 201, created.text
    window = created.json()
    assert window["id"].startswith("mw_") and window["status"] == "created"
    assert window["start"] == start.strftime("%Y-%m-%dT%H:%M:%SZ")  # the +02:00 read as such
    assert window["active"] is True and window["recurring"] is None
    assert window["scope"] == ["auto_a", "agent_b"] and window["autonomy_override"] == "approve"
    later = await create(
        stack,
        {"name": "later", "start": iso(now() + timedelta(days=1)),
         "end": iso(now() + timedelta(days=1, hours=1))},
    )  # fmt: skip
    assert later.status_code == 201, later.text
    assert later.json()["autonomy_override"] == "disabled"
    windows = await listed(stack)
    assert windows[window["id"]]["active"] is True
    assert windows[later.json()["id"]]["active"] is False


async def test_activate_and_deactivate(stack: Stack) -> None:
    """activate opens a closed window now; deactivate closes it; deactivating a closed window
    is 409; an unknown id is 404 in NOBA's shape."""
    body = {"name": "nightly", "start": iso(now() + timedelta(days=2)),
            "end": iso(now() + timedelta(days=2, hours=2)), "recurring": "0 3 * * *"}  # fmt: skip
    window_id = (await create(stack, body)).json()["id"]
    on = await stack.api.post(f"/api/maintenance/{window_id}/activate", headers=ADMIN_AUTH)
    assert on.status_code == 200 and on.json()["active"] is True, on.text
    assert on.json()["status"] == "activated"
    assert (await listed(stack))[window_id]["active"] is True
    off = await stack.api.post(f"/api/maintenance/{window_id}/deactivate", headers=ADMIN_AUTH)
    assert off.status_code == 200 and off.json()["active"] is False, off.text
    assert off.json()["status"] == "deactivated"
    again = await stack.api.post(f"/api/maintenance/{window_id}/deactivate", headers=ADMIN_AUTH)
    assert again.status_code == 409, again.text
    assert set(again.json()) == {"error"}
    unknown = await stack.api.post("/api/maintenance/mw_nothing/activate", headers=ADMIN_AUTH)
    assert unknown.status_code == 404 and set(unknown.json()) == {"error"}


async def test_delete(stack: Stack) -> None:
    body = {"name": "x", "start": iso(now()), "end": iso(now() + timedelta(hours=1))}
    window_id = (await create(stack, body)).json()["id"]
    deleted = await stack.api.delete(f"/api/maintenance/{window_id}", headers=ADMIN_AUTH)
    assert (deleted.status_code, deleted.json()) == (200, {"status": "deleted"})
    assert window_id not in await listed(stack)
    gone = await stack.api.delete(f"/api/maintenance/{window_id}", headers=ADMIN_AUTH)
    assert gone.status_code == 404


@pytest.mark.parametrize(
    ("change", "names"),
    [
        ({"end": "2026-03-22T02:00:00"}, "end: must be after start"),
        ({"end": "2026-03-22T03:00:00"}, "end: must be after start"),
        ({"start": "not a time"}, "start"),
        ({"name": ""}, "name"),
        ({"recurring": "0 3 * *"}, "recurring: must be a unix cron expression of 5 fields"),
        ({"recurring": "0 25 * * *"}, "recurring: hour value 25 is outside 0-23"),
        ({"recurring": "0 3 * * *", "end": "2026-05-22T03:00:00"}, "end: a recurring window"),
        ({"autonomy_override": "sometimes"}, "autonomy_override"),
        ({"scope": "all"}, "scope"),
        ({"scope": [""]}, "scope"),
        ({"colour": "red"}, "colour"),
    ],
)
async def test_bad_fields_are_400_naming_them_and_write_nothing(
    stack: Stack, change: dict[str, Any], names: str
) -> None:
    body = {"name": "w", "start": "2026-03-22T03:00:00", "end": "2026-03-22T04:00:00"} | change
    before = rows(stack)
    response = await create(stack, body)
    assert response.status_code == 400, response.text
    assert set(response.json()) == {"error"} and names in response.json()["error"]
    assert rows(stack) == before


async def test_viewers_read_and_only_operators_write(stack: Stack) -> None:
    with transaction(stack.sessions) as session:
        upsert_user(session, "viewer@corp.test", password="pw", role="viewer")
    viewer = basic("viewer@corp.test", "pw")
    assert (await stack.api.get("/api/maintenance", headers=viewer)).status_code == 200
    body = {"name": "w", "start": iso(now()), "end": iso(now() + timedelta(hours=1))}
    refused = await stack.api.post("/api/maintenance", json=body, headers=viewer)
    assert refused.status_code == 403 and set(refused.json()) == {"error"}
    assert rows(stack) == 0


async def test_times_at_the_edge_of_the_calendar_are_400(stack: Stack) -> None:
    """Year 1 with a positive offset is before any UTC time a datetime can hold."""
    body = {"name": "0", "start": "2000-01-02T02:00:00+01:00", "end": "0001-01-01T00:00:00+00:01"}
    response = await create(stack, body)
    assert response.status_code == 400 and set(response.json()) == {"error"}, response.text
