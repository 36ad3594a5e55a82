"""Automation schedules on the real engine: a Temporal Schedule that follows its automation,
real firings (`trigger()`), and maintenance windows judged when a firing starts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from temporalio.client import ScheduleHandle, ScheduleRange
from temporalio.service import RPCError, RPCStatusCode

from api.automations.ids import automation_engine_id, run_public_id
from core.store.gates import gates_of
from core.store.models import Definition, Run, RunAction, Secret
from core.store.session import transaction
from core.store.users import upsert_user
from tests import servers
from tests.conftest import TEST_SECRET_KEY
from tests.stack import ADMIN, Stack, basic, client_of_a_stopped_temporal, make_settings, stack_for

ADMIN_AUTH = basic(*ADMIN)
OPERATOR = basic("op@corp.test", "pw-op")
VIEWER = basic("view@corp.test", "pw-view")
TERMINAL = {"done", "failed", "timeout", "cancelled"}

pytestmark = pytest.mark.slow


@pytest.fixture
async def noba(stack: Stack) -> Stack:
    with transaction(stack.sessions) as session:
        upsert_user(session, "op@corp.test", password="pw-op", role="operator")
        upsert_user(session, "view@corp.test", password="pw-view", role="viewer")
    return stack


@pytest.fixture
def receiver() -> Iterator[servers.JsonReceiver]:
    with servers.json_receiver() as running:
        yield running


async def create(stack: Stack, body: dict[str, Any]) -> str:
    response = await stack.api.post("/api/automations", json=body, headers=OPERATOR)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def update(stack: Stack, auto_id: str, body: dict[str, Any]) -> None:
    response = await stack.api.put(f"/api/automations/{auto_id}", json=body, headers=OPERATOR)
    assert response.status_code == 200, response.text


def spec_of(stack: Stack, auto_id: str) -> dict[str, Any]:
    with stack.sessions() as session:
        row = session.get(Definition, automation_engine_id(auto_id))
        assert row is not None
        return dict(row.spec)


def handle_of(stack: Stack, auto_id: str) -> ScheduleHandle:
    schedule_id = spec_of(stack, auto_id)["schedule_id"]
    return stack.temporal.get_schedule_handle(schedule_id)


def _ranges(values: Any) -> list[tuple[int, int]]:
    return [(r.start, r.end or r.start) for r in values if isinstance(r, ScheduleRange)]


async def fires_at(handle: ScheduleHandle) -> list[dict[str, list[tuple[int, int]]]]:
    """The Temporal schedule's calendars (what its cron became), field by field as ranges."""
    spec = (await handle.describe()).schedule.spec
    fields = ("minute", "hour", "day_of_month", "month", "day_of_week")
    return [{f: _ranges(getattr(c, f)) for f in fields} for c in spec.calendars]


def at(
    minute: int,
    hour: int,
    day: tuple[int, int] = (1, 31),
    month: tuple[int, int] = (1, 12),
    weekday: tuple[int, int] = (0, 6),
) -> dict[str, list[tuple[int, int]]]:
    """A calendar as `fires_at` shows it."""
    fields = [(minute, minute), (hour, hour), day, month, weekday]
    names = ("minute", "hour", "day_of_month", "month", "day_of_week")
    return {name: [value] for name, value in zip(names, fields, strict=True)}


async def gone(handle: ScheduleHandle) -> bool:
    try:
        await handle.describe()
    except RPCError as exc:
        return exc.status == RPCStatusCode.NOT_FOUND
    return False


def hook(receiver: servers.JsonReceiver, name: str) -> dict[str, Any]:
    """A webhook automation whose firing POSTs `{"who": name}` to the receiver (the side
    effect a test looks for)."""
    return {
        "name": name,
        "type": "webhook",
        "params": {
            "url": f"http://127.0.0.1:{receiver.port}/{name}",
            "method": "POST",
            "headers": {"Content-Type": "application/json"},
            "body": f'{{"who": "{name}"}}',
        },
        "schedule": "0 0 1 1 *",  # yearly: only the test's triggers fire it
    }


async def fired_run(stack: Stack, auto_id: str, statuses: set[str] = TERMINAL) -> dict[str, Any]:
    """The one run a firing started, once it reaches one of `statuses`, as the API shows it."""
    engine_id = automation_engine_id(auto_id)
    deadline = time.monotonic() + 60
    while True:
        with stack.sessions() as session:
            ids = list(session.scalars(select(Run.id).where(Run.definition_id == engine_id)))
        if ids:
            assert len(ids) == 1, ids
            response = await stack.api.get(
                f"/api/automations/runs/{run_public_id(ids[0])}", headers=OPERATOR
            )
            assert response.status_code == 200, response.text
            doc: dict[str, Any] = response.json()
            if doc["status"] in statuses:
                return doc
        assert time.monotonic() < deadline, f"no run reached {statuses}"
        await asyncio.sleep(0.2)


async def test_a_schedule_follows_its_automation_and_its_firing_runs(
    noba: Stack, receiver: servers.JsonReceiver
) -> None:
    """Create → a Temporal schedule with the cron; a firing runs as trigger "schedule" by the
    creator and shows in the list; update replaces it, `enabled: false` pauses it, `schedule:
    null` deletes it, deleting the automation deletes it."""
    auto_id = await create(noba, hook(receiver, "nightly"))
    handle = handle_of(noba, auto_id)
    described = await handle.describe()
    assert await fires_at(handle) == [at(0, 0, day=(1, 1), month=(1, 1))]
    assert not described.schedule.state.paused
    listed = (await noba.api.get(f"/api/automations/{auto_id}", headers=OPERATOR)).json()
    assert "schedule_id" not in listed and listed["schedule"] == "0 0 1 1 *"

    await handle.trigger()
    doc = await fired_run(noba, auto_id)
    assert doc["status"] == "done", doc
    assert (doc["trigger"], doc["triggered_by"]) == ("schedule", "op@corp.test")
    assert doc["autonomy"] == "execute" and doc["window"] is None
    assert receiver.received == [("/nightly", {"who": "nightly"})]
    [item] = (await noba.api.get("/api/automations", headers=VIEWER)).json()
    assert item["last_status"] == "done" and item["last_run"] == doc["created"]

    await update(noba, auto_id, {"schedule": "15 3 * * 1-5"})
    assert await fires_at(handle) == [at(15, 3, weekday=(1, 5))]
    # Both day fields restricted: unix cron's "either", as two Temporal expressions.
    await update(noba, auto_id, {"schedule": "0 4 1 * mon"})
    assert await fires_at(handle) == [at(0, 4, day=(1, 1)), at(0, 4, weekday=(1, 1))]

    await update(noba, auto_id, {"enabled": False})
    assert (await handle.describe()).schedule.state.paused
    await update(noba, auto_id, {"enabled": True})
    assert not (await handle.describe()).schedule.state.paused

    await update(noba, auto_id, {"schedule": None})
    assert await gone(handle)
    assert "schedule_id" not in spec_of(noba, auto_id)

    await update(noba, auto_id, {"schedule": "0 6 * * *"})
    again = handle_of(noba, auto_id)
    assert await fires_at(again) == [at(0, 6)]
    deleted = await noba.api.delete(f"/api/automations/{auto_id}", headers=OPERATOR)
    assert deleted.status_code == 200, deleted.text
    assert await gone(again)


async def test_an_invalid_cron_or_a_client_schedule_id_writes_nothing(noba: Stack) -> None:
    """400 naming the field; no automation, no Temporal schedule."""
    body = {"name": "bad", "type": "script", "params": {"command": "true"}}
    for extra, field in (
        ({"schedule": "61 * * * *"}, "schedule"),
        ({"schedule": "* * *"}, "schedule"),
        ({"schedule": "0 3 * * *", "schedule_id": "s-0123456789ab"}, "schedule_id"),
    ):
        response = await noba.api.post("/api/automations", json=body | extra, headers=OPERATOR)
        assert response.status_code == 400, response.text
        assert response.json()["error"].startswith(field + ":")
    with noba.sessions() as session:
        count = session.scalar(select(func.count()).select_from(Definition))
    assert count == 0
    listed = [s async for s in await noba.temporal.list_schedules()]
    assert not [s for s in listed if s.id == "s-0123456789ab"]


async def test_templates_and_imports_are_scheduled_too(noba: Stack) -> None:
    """An applied template and each imported item with a schedule get their Temporal schedule."""
    applied = await noba.api.post(
        "/api/automations/templates/cert-renew/apply", json={"schedule": "5 4 * * *"},
        headers=OPERATOR,
    )  # fmt: skip
    assert applied.status_code == 201, applied.text
    handle = handle_of(noba, applied.json()["id"])
    assert await fires_at(handle) == [at(5, 4)]

    items = [
        {"name": "a", "type": "script", "params": {"command": "true"}, "schedule": "0 1 * * *",
         "enabled": False},
        {"name": "b", "type": "script", "params": {"command": "true"}},
        {"name": "c", "type": "workflow", "params": {"steps": ["auto_" + "0" * 32]},
         "schedule": "0 2 * * *"},
    ]  # fmt: skip
    imported = await noba.api.post("/api/automations/import", json=items, headers=ADMIN_AUTH)
    assert imported.status_code == 200, imported.text
    answer = imported.json()
    assert (answer["imported"], answer["skipped"]) == (2, 1)
    assert answer["errors"][0]["index"] == 2 and "not found" in answer["errors"][0]["error"]
    listed = (await noba.api.get("/api/automations", headers=OPERATOR)).json()
    by_name = {i["name"]: i["id"] for i in listed}
    assert set(by_name) == {"Certificate Renew", "a", "b"}
    imported_a = handle_of(noba, by_name["a"])
    assert await fires_at(imported_a) == [at(0, 1)]
    assert (await imported_a.describe()).schedule.state.paused
    assert "schedule_id" not in spec_of(noba, by_name["b"])


async def open_window(stack: Stack, scope: list[str], override: str) -> str:
    now = datetime.now(UTC).replace(microsecond=0)
    response = await stack.api.post(
        "/api/maintenance",
        json={"name": f"freeze {override}", "start": (now - timedelta(minutes=1)).isoformat(),
              "end": (now + timedelta(hours=1)).isoformat(), "scope": scope,
              "autonomy_override": override},
        headers=OPERATOR,
    )  # fmt: skip
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def test_a_window_opened_after_scheduling_blocks_the_firing(
    noba: Stack, receiver: servers.JsonReceiver
) -> None:
    """The window is judged when the schedule fires: `disabled` ends the run cancelled, naming
    the window, with nothing executed."""
    auto_id = await create(noba, hook(receiver, "blocked"))
    window_id = await open_window(noba, [auto_id], "disabled")
    await handle_of(noba, auto_id).trigger()
    doc = await fired_run(noba, auto_id)
    assert doc["status"] == "cancelled", doc
    assert doc["error"] == f"blocked by maintenance window 'freeze disabled' ({window_id})"
    assert (doc["autonomy"], doc["window"]) == ("disabled", window_id)
    assert receiver.received == [] and doc["output"] == ""
    with noba.sessions() as session:
        actions = session.scalar(select(func.count()).select_from(RunAction))
    assert actions == 0


async def test_approve_holds_a_firing_and_a_window_can_release_it(
    noba: Stack, receiver: servers.JsonReceiver
) -> None:
    """Own autonomy `approve`: the firing waits as pending_approval; a window `execute` over
    it: the firing runs without a gate."""
    held = await create(noba, hook(receiver, "held") | {"autonomy": "approve"})
    await handle_of(noba, held).trigger()
    doc = await fired_run(noba, held, {"pending_approval"})
    assert doc["autonomy"] == "approve" and doc["window"] is None
    await asyncio.sleep(0.5)
    assert receiver.received == []

    released = await create(noba, hook(receiver, "released") | {"autonomy": "approve"})
    window_id = await open_window(noba, [released], "execute")
    await handle_of(noba, released).trigger()
    doc = await fired_run(noba, released)
    assert doc["status"] == "done", doc
    assert (doc["autonomy"], doc["window"]) == ("execute", window_id)
    assert ("/released", {"who": "released"}) in receiver.received


async def test_a_window_approve_holds_a_firing_naming_the_window(
    noba: Stack, receiver: servers.JsonReceiver
) -> None:
    """A window `approve` over an `execute` automation: its firing's gate names the window."""
    auto_id = await create(noba, hook(receiver, "frozen"))
    window_id = await open_window(noba, [], "approve")  # empty scope: everything
    await handle_of(noba, auto_id).trigger()
    doc = await fired_run(noba, auto_id, {"pending_approval"})
    assert (doc["autonomy"], doc["window"]) == ("approve", window_id)
    with noba.sessions() as session:
        [gate] = gates_of(session, doc["run_id"].removeprefix("run_"))
    assert gate.message.endswith(f"Held by maintenance window 'freeze approve' ({window_id}).")
    assert receiver.received == []


@pytest.fixture(scope="module")
async def down(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    """A runwright whose Temporal server has gone away after it connected (no worker)."""
    client = await client_of_a_stopped_temporal()
    settings = make_settings(tmp_path_factory.mktemp("down"), secret_key=TEST_SECRET_KEY)
    async with stack_for(settings, client, worker=False) as stack:
        with transaction(stack.sessions) as session:
            upsert_user(session, "op@corp.test", password="pw-op", role="operator")
        yield stack


def stored(stack: Stack) -> tuple[int, int]:
    with stack.sessions() as session:
        automations = session.scalar(select(func.count()).select_from(Definition))
        secrets = session.scalar(select(func.count()).select_from(Secret))
    return int(automations or 0), int(secrets or 0)


async def test_temporal_down_is_503_with_nothing_written(down: Stack) -> None:
    """Create, template apply, import and an update that schedules: 503, and the automation
    (with the secrets its body brought) is not stored, or stays as it was."""
    receiver = servers.JsonReceiver(port=9)
    before = stored(down)
    response = await down.api.post("/api/automations", json=hook(receiver, "x"), headers=OPERATOR)
    assert response.status_code == 503, response.text
    assert "unavailable" in response.json()["error"]
    applied = await down.api.post(
        "/api/automations/templates/cert-renew/apply", json={}, headers=OPERATOR
    )
    assert applied.status_code == 503, applied.text
    imported = await down.api.post(
        "/api/automations/import", json=[hook(receiver, "y"), {**hook(receiver, "z"),
                                                               "schedule": None}],
        headers=ADMIN_AUTH,
    )  # fmt: skip
    assert imported.status_code == 503, imported.text
    assert stored(down) == before

    unscheduled = await create(down, {**hook(receiver, "w"), "schedule": None})
    spec = spec_of(down, unscheduled)
    changed = await down.api.put(
        f"/api/automations/{unscheduled}",
        json={"schedule": "0 3 * * *", "params": hook(receiver, "v")["params"]},
        headers=OPERATOR,
    )
    assert changed.status_code == 503, changed.text
    assert spec_of(down, unscheduled) == spec
    assert stored(down) == (before[0] + 1, before[1] + 1)  # its one header, from its create
