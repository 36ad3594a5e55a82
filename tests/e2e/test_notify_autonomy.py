"""The `notify` autonomy end to end: each run of the automation is reported to its own
channels (a real HTTP receiver through Apprise) with its name, id, trigger and how it ended,
also when its script failed or ran out of time; the channel URLs never come back in clear."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from core.store.session import transaction
from core.store.users import upsert_user
from tests.servers import JsonReceiver
from tests.stack import ADMIN, Stack, basic

pytestmark = pytest.mark.slow

ADMIN_AUTH = basic(*ADMIN)
OPERATOR = basic("op@corp.test", "pw-op")
TERMINAL = {"done", "failed", "timeout", "cancelled"}
HOOK_PASSWORD = "notify-hook-pass-5521"


@pytest.fixture
async def noba(stack: Stack) -> Stack:
    with transaction(stack.sessions) as session:
        upsert_user(session, "op@corp.test", password="pw-op", role="operator")
    return stack


def channel(receiver: JsonReceiver, path: str) -> str:
    return f"json://hook:{HOOK_PASSWORD}@127.0.0.1:{receiver.port}/{path}"


async def create(stack: Stack, body: dict[str, Any]) -> str:
    response = await stack.api.post("/api/automations", json=body, headers=ADMIN_AUTH)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def run_to_end(stack: Stack, auto_id: str) -> dict[str, Any]:
    started = await stack.api.post(f"/api/automations/{auto_id}/run", headers=OPERATOR)
    assert started.status_code == 200, started.text
    run_id = started.json()["run_id"]
    deadline = time.monotonic() + 60
    while True:
        response = await stack.api.get(f"/api/automations/runs/{run_id}", headers=OPERATOR)
        doc: dict[str, Any] = response.json()
        if doc["status"] in TERMINAL:
            return doc
        assert time.monotonic() < deadline, f"run still {doc['status']}"
        await asyncio.sleep(0.2)


async def test_a_run_is_reported_with_its_name_and_how_it_ended(
    noba: Stack, json_receiver: JsonReceiver
) -> None:
    """One message per run, naming the automation, its id, the trigger and `done`; the run
    reads `done` with its own output first."""
    url = channel(json_receiver, "ok")
    auto_id = await create(
        noba,
        {"name": "Nightly {{ .x }} backup", "type": "script",
         "params": {"command": "echo backed up"}, "autonomy": "notify", "channels": [url]},
    )  # fmt: skip
    doc = await run_to_end(noba, auto_id)

    assert doc["status"] == "done", doc
    assert doc["output"].startswith("backed up\n")
    assert doc["autonomy"] == "notify"
    ((path, posted),) = json_receiver.received
    assert path == "/ok"
    # The name is shown as written: text in it is never read as a template.
    assert posted["title"] == "Nightly {{ .x }} backup: done"
    assert posted["message"] == (
        f"Automation Nightly {{{{ .x }}}} backup ({auto_id}) ran on a manual trigger: done."
    )

    # Nowhere in what the API shows is the URL or its password in clear.
    shown = [
        (await noba.api.get(f"/api/automations/{auto_id}", headers=OPERATOR)).text,
        (await noba.api.get("/api/automations", headers=OPERATOR)).text,
        (await noba.api.get("/api/automations/export", headers=OPERATOR)).text,
        (await noba.api.get(f"/api/automations/runs/{doc['run_id']}", headers=OPERATOR)).text,
    ]
    one = (await noba.api.get(f"/api/automations/{auto_id}", headers=OPERATOR)).json()
    assert one["channels"] == ["json://***"]
    for text in shown:
        assert HOOK_PASSWORD not in text and url not in text


async def test_a_failed_or_timed_out_script_is_still_reported(
    noba: Stack, json_receiver: JsonReceiver
) -> None:
    """The report runs after the automation's own actions whatever became of them: a script
    that exits 3 is reported `failed`, one past its timeout `timeout`; the runs keep those
    statuses."""
    failing = await create(
        noba,
        {"name": "Broken", "type": "script", "params": {"command": "echo trying; exit 3"},
         "autonomy": "notify", "channels": [channel(json_receiver, "failed")]},
    )  # fmt: skip
    slow = await create(
        noba,
        {"name": "Slow", "type": "script", "params": {"command": "sleep 30", "timeout": 2},
         "autonomy": "notify", "channels": [channel(json_receiver, "slow")]},
    )  # fmt: skip
    failed, timed = await asyncio.gather(run_to_end(noba, failing), run_to_end(noba, slow))

    assert failed["status"] == "failed" and "trying" in failed["output"]
    assert timed["status"] == "timeout"
    got = dict(json_receiver.received)
    assert sorted(got) == ["/failed", "/slow"]
    assert got["/failed"]["message"].endswith(
        f"Broken ({failing}) ran on a manual trigger: failed."
    )
    assert got["/slow"]["message"].endswith(f"Slow ({slow}) ran on a manual trigger: timeout.")
    for doc in (failed, timed):
        assert HOOK_PASSWORD not in doc["output"] and HOOK_PASSWORD not in str(doc["error"])


async def test_execute_autonomy_sends_nothing(noba: Stack, json_receiver: JsonReceiver) -> None:
    """Channels alone do not notify: an `execute` automation runs and nobody is told."""
    auto_id = await create(
        noba,
        {"name": "Quiet", "type": "script", "params": {"command": "true"},
         "channels": [channel(json_receiver, "quiet")]},
    )  # fmt: skip
    assert (await run_to_end(noba, auto_id))["status"] == "done"
    assert json_receiver.received == []


async def test_an_approval_step_times_out_after_a_fraction_of_a_minute(noba: Stack) -> None:
    """`timeout_minutes: 0.05` (3 s) with `on_timeout: approve`: the workflow goes on by
    itself and its next step runs."""
    step = await create(noba, {"name": "after", "type": "script", "params": {"command": "echo on"}})
    auto_id = await create(
        noba,
        {"name": "gated", "type": "workflow",
         "params": {"steps": [
             {"approval": {"timeout_minutes": 0.05, "on_timeout": "approve"}}, step]}},
    )  # fmt: skip
    began = time.monotonic()
    doc = await run_to_end(noba, auto_id)
    assert doc["status"] == "done", doc
    assert doc["output"] == "on\n"
    assert 3 <= time.monotonic() - began < 30
