"""Notification channels checked when they are submitted (an automation's own `channels` and
a `notification`'s `params.channels`), the `notify` autonomy's need for channels, masked
channels kept on update, and approval steps' fractional `timeout_minutes`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from api.automations.ids import automation_engine_id
from core.store.models import Definition
from core.store.session import transaction
from core.store.users import upsert_user
from tests.api.automations.test_automations import counts, create
from tests.conftest import TEST_SECRET_KEY
from tests.stack import Stack, basic, make_settings, stack_for

OPERATOR = basic("op@corp.test", "pw-op")
SCRIPT = {"name": "x", "type": "script", "params": {"script": "cert-renew"}}
GOOD = "json://hook:pw-9931@127.0.0.1:9/x"


@pytest.fixture(scope="module")
async def shared(
    tmp_path_factory: pytest.TempPathFactory, temporal_env: WorkflowEnvironment
) -> AsyncIterator[Stack]:
    """One runwright for the module's tests, which only validate (no worker)."""
    home = tmp_path_factory.mktemp("notify-fields") / "home"
    settings = make_settings(home, secret_key=TEST_SECRET_KEY)
    async with stack_for(settings, temporal_env.client, worker=False) as stack:
        with transaction(stack.sessions) as session:
            upsert_user(session, "op@corp.test", password="pw-op", role="operator")
        yield stack


BAD = [
    ({**SCRIPT, "autonomy": "notify"}, "channels"),
    ({**SCRIPT, "autonomy": "notify", "channels": []}, "channels"),
    ({**SCRIPT, "channels": "json://h"}, "channels"),
    ({**SCRIPT, "channels": [GOOD, "https://example.com/x"]}, "channels[1]"),
    ({**SCRIPT, "channels": [GOOD, "syslog://"]}, "channels[1]"),
    ({**SCRIPT, "channels": ["json://***"]}, "channels[0]"),
    ({**SCRIPT, "channels": [GOOD] * 21}, "channels"),
    ({"name": "n", "type": "notification",
      "params": {"channels": [GOOD, "nope://secret-token@x"], "message": "hi"}},
     "params.channels[1]"),
    ({"name": "n", "type": "notification",
      "params": {"channels": [{"secretRef": "someone-elses"}], "message": "hi"}},
     "params.channels[0]"),
    ({"name": "w", "type": "webhook",
      "params": {"url": "https://h/x", "headers": {"A": {"secretRef": "someone-elses"}}}},
     "params.headers.A"),
    ({"name": "w", "type": "webhook", "params": {"url": "http://[::1/x"}}, "params.url"),
    *[
        ({"name": "g", "type": "workflow",
          "params": {"steps": [{"approval": {"timeout_minutes": minutes}}]}},
         "params.steps[0].approval.timeout_minutes")
        for minutes in (0, -1, 43200.5, "5", True)
    ],
]  # fmt: skip


@pytest.mark.parametrize(("body", "field"), BAD)
async def test_bad_channels_are_400_naming_them_and_write_nothing(
    shared: Stack, body: Any, field: str
) -> None:
    before = counts(shared)
    response = await create(shared, body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error.startswith(field + ":"), error
    assert "secret-token" not in error and "pw-9931" not in error
    assert counts(shared) == before


async def test_channels_are_sealed_shown_masked_and_kept_on_update(shared: Stack) -> None:
    created = await create(shared, {**SCRIPT, "autonomy": "notify", "channels": [GOOD]})
    assert created.status_code == 201, created.text
    auto_id = created.json()["id"]
    path = f"/api/automations/{auto_id}"
    shown = (await shared.api.get(path, headers=OPERATOR)).json()
    assert shown["channels"] == ["json://***"] and shown["autonomy"] == "notify"
    with shared.sessions() as session:
        row = session.get(Definition, automation_engine_id(auto_id))
        assert row is not None and "pw-9931" not in str(row.spec)
    # Sending back what was shown keeps the channel; a second one is added.
    second = "json://127.0.0.1:9/y"
    kept = await shared.api.put(path, json={"channels": ["json://***", second]}, headers=OPERATOR)
    assert kept.status_code == 200, kept.text
    shown = (await shared.api.get(path, headers=OPERATOR)).json()
    assert shown["channels"] == ["json://***", "json://***"]
    # Dropping every channel while the autonomy is `notify` is refused, nothing changed.
    refused = await shared.api.put(path, json={"channels": []}, headers=OPERATOR)
    assert refused.status_code == 400 and refused.json()["error"].startswith("channels:")
    assert (await shared.api.get(path, headers=OPERATOR)).json()["channels"] == shown["channels"]


async def test_a_masked_header_keeps_its_reference(shared: Stack) -> None:
    """The mask sent back in `params` keeps the stored value instead of storing the mask."""
    headers = {"Authorization": "Bearer t0k-88"}
    body = {"name": "hook", "type": "webhook", "params": {"url": "https://h/x", "headers": headers}}
    auto_id = (await create(shared, body)).json()["id"]
    path = f"/api/automations/{auto_id}"

    def stored_headers() -> Any:
        with shared.sessions() as session:
            row = session.get(Definition, automation_engine_id(auto_id))
            assert row is not None
            return row.spec["params"]["headers"]

    before = stored_headers()
    update = {"params": {"url": "https://h/y", "headers": {"Authorization": "********"}}}
    assert (await shared.api.put(path, json=update, headers=OPERATOR)).status_code == 200
    assert stored_headers() == before


async def test_an_approval_step_takes_a_fraction_of_a_minute(shared: Stack) -> None:
    steps = [{"approval": {"timeout_minutes": 0.05}}, {"approval": {}}]
    body = {"name": "g", "type": "workflow", "params": {"steps": steps}}
    auto_id = (await create(shared, body)).json()["id"]
    shown = (await shared.api.get(f"/api/automations/{auto_id}", headers=OPERATOR)).json()
    minutes = [s["approval"]["timeout_minutes"] for s in shown["params"]["steps"]]
    assert minutes == [0.05, 60]
