"""Automations CRUD as documented: 201 `{id, status}`, partial updates, deletes, the list's
fields by role; every bad field a 400 naming it, with nothing written."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import func, select
from temporalio.testing import WorkflowEnvironment

from core.store.models import Definition, Secret
from core.store.session import transaction
from core.store.users import upsert_user
from tests.conftest import TEST_SECRET_KEY
from tests.stack import ADMIN, Stack, basic, make_settings, stack_for

ADMIN_AUTH = basic(*ADMIN)
OPERATOR = basic("op@corp.test", "pw-op")
VIEWER = basic("view@corp.test", "pw-view")
LISTED = {"id", "name", "type", "icon", "schedule", "last_run", "last_status"}


@pytest.fixture
async def crud(stack: Stack) -> Stack:
    with transaction(stack.sessions) as session:
        upsert_user(session, "op@corp.test", password="pw-op", role="operator")
        upsert_user(session, "view@corp.test", password="pw-view", role="viewer")
    return stack


async def create(stack: Stack, body: Any, auth: dict[str, str] = OPERATOR) -> Any:
    return await stack.api.post("/api/automations", json=body, headers=auth)


def counts(stack: Stack) -> tuple[int, int]:
    with stack.sessions() as session:
        automations = session.scalar(
            select(func.count()).select_from(Definition).where(Definition.dialect == "automations")
        )
        secrets = session.scalar(select(func.count()).select_from(Secret))
    return int(automations or 0), int(secrets or 0)


async def test_create_list_update_delete(crud: Stack) -> None:
    created = await create(
        crud,
        {"name": "Restart nginx", "type": "service_control",
         "params": {"service": "nginx", "action": "restart"}},
    )  # fmt: skip
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["status"] == "created" and body["id"].startswith("auto_")
    auto_id = body["id"]

    listed = (await crud.api.get("/api/automations", headers=VIEWER)).json()
    [item] = listed
    assert set(item) == LISTED  # a viewer sees the document's fields only
    assert item == {
        "id": auto_id, "name": "Restart nginx", "type": "service_control", "icon": "fa-cogs",
        "schedule": None, "last_run": None, "last_status": None,
    }  # fmt: skip
    [full] = (await crud.api.get("/api/automations", headers=OPERATOR)).json()
    assert full["params"] == {"service": "nginx", "action": "restart", "timeout": 300}
    assert full["enabled"] is True and full["autonomy"] == "execute"
    assert len(full["webhook_token"]) == 64

    updated = await crud.api.put(
        f"/api/automations/{auto_id}", json={"params": {"service": "caddy"}}, headers=OPERATOR
    )
    assert (updated.status_code, updated.json()) == (200, {"status": "updated"})
    one = (await crud.api.get(f"/api/automations/{auto_id}", headers=OPERATOR)).json()
    # A partial merge: the name and token stay, params are the new ones with defaults.
    assert one["name"] == "Restart nginx" and one["webhook_token"] == full["webhook_token"]
    assert one["params"] == {"service": "caddy", "action": "restart", "timeout": 300}

    renamed = await crud.api.put(
        f"/api/automations/{auto_id}",
        json={"name": "Restart caddy", "schedule": "0 3 * * *", "icon": "fa-bolt"},
        headers=OPERATOR,
    )
    assert renamed.status_code == 200, renamed.text
    one = (await crud.api.get(f"/api/automations/{auto_id}", headers=VIEWER)).json()
    assert (one["name"], one["schedule"], one["icon"]) == ("Restart caddy", "0 3 * * *", "fa-bolt")

    deleted = await crud.api.delete(f"/api/automations/{auto_id}", headers=OPERATOR)
    assert (deleted.status_code, deleted.json()) == (200, {"status": "deleted"})
    assert (await crud.api.get("/api/automations", headers=VIEWER)).json() == []
    again = await crud.api.delete(f"/api/automations/{auto_id}", headers=OPERATOR)
    assert again.status_code == 404 and set(again.json()) == {"error"}


async def test_the_service_alias_and_names_may_repeat(crud: Stack) -> None:
    body = {"name": "same", "type": "service", "params": {"service": "nginx"}}
    first = await create(crud, body)
    second = await create(crud, body)
    assert first.status_code == second.status_code == 201
    assert first.json()["id"] != second.json()["id"]
    items = (await crud.api.get("/api/automations", headers=OPERATOR)).json()
    assert [i["type"] for i in items] == ["service_control", "service_control"]
    assert items[0]["params"]["action"] == "restart"  # NOBA's default action


@pytest.fixture(scope="module")
async def shared(
    tmp_path_factory: pytest.TempPathFactory, temporal_env: WorkflowEnvironment
) -> AsyncIterator[Stack]:
    """One runwright for the module's tests that only validate (no worker)."""
    settings = make_settings(tmp_path_factory.mktemp("crud") / "home", secret_key=TEST_SECRET_KEY)
    async with stack_for(settings, temporal_env.client, worker=False) as stack:
        with transaction(stack.sessions) as session:
            upsert_user(session, "op@corp.test", password="pw-op", role="operator")
            upsert_user(session, "view@corp.test", password="pw-view", role="viewer")
        yield stack


BAD_BODIES = [
    ({"type": "script", "params": {"script": "nas-backup"}}, "name"),
    ({"name": "x"}, "type"),
    ({"name": "x", "type": "rocket"}, "type"),
    ({"name": "x", "type": "script", "params": {}}, "params.command"),
    ({"name": "x", "type": "script", "params": {"script": "nope"}}, "params.script"),
    ({"name": "x", "type": "script", "params": {"script": "cert-renew", "timeout": 0}},
     "params.timeout"),
    ({"name": "x", "type": "script", "params": {"script": "cert-renew", "args": "-v"}},
     "params.args"),
    ({"name": "x", "type": "service_control", "params": {"service": "-x"}}, "params.service"),
    ({"name": "x", "type": "service_control", "params": {"service": "a", "action": "reload"}},
     "params.action"),
    ({"name": "x", "type": "agent_command", "params": {"command": "ls"}}, "params.host"),
    ({"name": "x", "type": "agent_command", "params": {"host": "h"}}, "params.command"),
    ({"name": "x", "type": "webhook", "params": {"url": "ftp://h/x"}}, "params.url"),
    ({"name": "x", "type": "webhook", "params": {"url": "http://h", "method": "BREW"}},
     "params.method"),
    ({"name": "x", "type": "webhook", "params": {"url": "http://h", "headers": {"a b": "1"}}},
     "params.headers.a b"),
    ({"name": "x", "type": "notification", "params": {"message": "hi"}}, "params.channels"),
    ({"name": "x", "type": "notification", "params": {"channels": ["json://h"]}},
     "params.message"),
    ({"name": "x", "type": "workflow", "params": {"steps": []}}, "params.steps"),
    ({"name": "x", "type": "workflow", "params": {"steps": ["nope"]}}, "params.steps[0]"),
    ({"name": "x", "type": "workflow",
      "params": {"steps": [{"approval": {"on_timeout": "maybe"}}]}},
     "params.steps[0].approval.on_timeout"),
    ({"name": "x", "type": "composite", "params": {"automations": [1]}},
     "params.automations[0]"),
    ({"name": "x", "type": "script", "params": {"script": "cert-renew"}, "schedule": "61 * * * *"},
     "schedule"),
    ({"name": "x", "type": "script", "params": {"script": "cert-renew"}, "autonomy": "maybe"},
     "autonomy"),
    ({"name": "x", "type": "script", "params": {"script": "cert-renew"}, "enabled": "yes"},
     "enabled"),
    ({"name": "x", "type": "script", "params": {"script": "cert-renew"}, "colour": "red"},
     "colour"),
    ({"name": "x", "type": "script", "params": {"script": "cert-renew"},
      "approvers": ["ghost@corp.test"]}, "approvers[0]"),
    ({"name": "x", "type": "script", "params": {"script": "cert-renew", "extra": 1}},
     "params.extra"),
    ([], "body"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "field"), BAD_BODIES)
async def test_bad_fields_are_400_naming_them_and_write_nothing(
    shared: Stack, body: Any, field: str
) -> None:
    before = counts(shared)
    response = await create(shared, body)
    assert response.status_code == 400, response.text
    assert set(response.json()) == {"error"}
    assert response.json()["error"].startswith(field + ":"), response.text
    assert counts(shared) == before


async def test_secret_params_are_stored_as_references_and_masked(shared: Stack) -> None:
    headers = {"Authorization": "Bearer s3cr3t-v4lue"}
    body = {"name": "hook", "type": "webhook",
            "params": {"url": "https://hooks.example/x", "headers": headers}}  # fmt: skip
    created = await create(shared, body)
    assert created.status_code == 201, created.text
    auto_id = created.json()["id"]
    shown = (await shared.api.get(f"/api/automations/{auto_id}", headers=OPERATOR)).json()
    assert shown["params"]["headers"] == {"Authorization": "********"}
    with shared.sessions() as session:
        rows = session.scalars(select(Definition).where(Definition.dialect == "automations"))
        assert all("s3cr3t-v4lue" not in str(row.spec) for row in rows)
    # Updating another field keeps the sealed header as it was.
    renamed = await shared.api.put(
        f"/api/automations/{auto_id}", json={"name": "hook 2"}, headers=OPERATOR
    )
    assert renamed.status_code == 200
    shown = (await shared.api.get(f"/api/automations/{auto_id}", headers=OPERATOR)).json()
    assert shown["params"]["headers"] == {"Authorization": "********"}


async def test_roles(shared: Stack) -> None:
    """Viewers read; operators write; a custom command takes an admin."""
    body = {"name": "x", "type": "script", "params": {"script": "update-check"}}
    assert (await create(shared, body, VIEWER)).status_code == 403
    custom = {"name": "c", "type": "script", "params": {"command": "echo hi"}}
    before = counts(shared)
    refused = await create(shared, custom, OPERATOR)
    assert refused.status_code == 403 and "params.command" in refused.json()["error"]
    assert counts(shared) == before
    allowed = await create(shared, custom, ADMIN_AUTH)
    assert allowed.status_code == 201, allowed.text
    auto_id = allowed.json()["id"]
    # An operator may rename an admin's command automation but not change its command.
    assert (
        await shared.api.put(f"/api/automations/{auto_id}", json={"name": "d"}, headers=OPERATOR)
    ).status_code == 200
    change = await shared.api.put(
        f"/api/automations/{auto_id}",
        json={"params": {"command": "rm -rf /"}},
        headers=OPERATOR,
    )
    assert change.status_code == 403
    assert (await shared.api.get("/api/automations")).status_code == 401
    unknown = await shared.api.get("/api/automations/auto_" + "0" * 32, headers=VIEWER)
    assert unknown.status_code == 404 and set(unknown.json()) == {"error"}
    bad_id = await shared.api.put("/api/automations/whatever", json={}, headers=OPERATOR)
    assert bad_id.status_code == 404
