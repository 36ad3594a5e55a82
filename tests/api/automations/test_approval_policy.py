"""An automation's `approval` policy (timeout_minutes, on_timeout): defaults, partial updates,
shown to operators, exported; every bad value a 400 naming the field with nothing written.
And the approval queue's own bad requests: an unknown `?status=`, id or body field."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import func, select
from temporalio.testing import WorkflowEnvironment

from api.automations.catalog import check_approval
from api.fields import FieldError
from core.store.models import Approval, Definition
from core.store.session import transaction
from core.store.users import upsert_user
from tests.conftest import TEST_SECRET_KEY
from tests.stack import Stack, basic, make_settings, stack_for

OPERATOR = basic("op@corp.test", "pw-op")
VIEWER = basic("view@corp.test", "pw-view")
SCRIPT = {"name": "x", "type": "script", "params": {"script": "update-check"}}
DEFAULT = {"timeout_minutes": 60, "on_timeout": "reject"}


@pytest.fixture(scope="module")
async def shared(
    tmp_path_factory: pytest.TempPathFactory, temporal_env: WorkflowEnvironment
) -> AsyncIterator[Stack]:
    """One runwright for the module's tests, which start no run (no worker)."""
    home = tmp_path_factory.mktemp("policy") / "home"
    settings = make_settings(home, secret_key=TEST_SECRET_KEY)
    async with stack_for(settings, temporal_env.client, worker=False) as stack:
        with transaction(stack.sessions) as session:
            upsert_user(session, "op@corp.test", password="pw-op", role="operator")
            upsert_user(session, "view@corp.test", password="pw-view", role="viewer")
        yield stack


@pytest.mark.parametrize(
    ("given", "policy"),
    [
        ({}, DEFAULT),
        ({"timeout_minutes": 0.05}, {"timeout_minutes": 0.05, "on_timeout": "reject"}),
        ({"on_timeout": "approve"}, {"timeout_minutes": 60, "on_timeout": "approve"}),
        ({"timeout_minutes": 43200, "on_timeout": "reject"}, {**DEFAULT, "timeout_minutes": 43200}),
    ],
)
def test_policy_defaults(given: dict[str, Any], policy: dict[str, Any]) -> None:
    assert check_approval(given) == policy


@pytest.mark.parametrize(
    ("given", "field"),
    [
        ("soon", "approval"),
        ([60], "approval"),
        ({"timeout_minutes": 0}, "approval.timeout_minutes"),
        ({"timeout_minutes": -1}, "approval.timeout_minutes"),
        ({"timeout_minutes": 43200.5}, "approval.timeout_minutes"),
        ({"timeout_minutes": "60"}, "approval.timeout_minutes"),
        ({"timeout_minutes": True}, "approval.timeout_minutes"),
        ({"timeout_minutes": math.inf}, "approval.timeout_minutes"),
        ({"timeout_minutes": math.nan}, "approval.timeout_minutes"),
        ({"on_timeout": "expire"}, "approval.on_timeout"),
        ({"on_timeout": None}, "approval.on_timeout"),
        ({"message": "hi"}, "approval.message"),
    ],
)
def test_bad_policies_name_the_field(given: Any, field: str) -> None:
    with pytest.raises(FieldError) as raised:
        check_approval(given)
    assert str(raised.value).startswith(field + ":")


def automations(stack: Stack) -> int:
    with stack.sessions() as session:
        count = session.scalar(
            select(func.count()).select_from(Definition).where(Definition.dialect == "automations")
        )
    return int(count or 0)


async def shown(stack: Stack, auto_id: str, auth: dict[str, str] = OPERATOR) -> dict[str, Any]:
    response = await stack.api.get(f"/api/automations/{auto_id}", headers=auth)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def test_policy_is_shown_to_operators_merged_on_update_and_exported(shared: Stack) -> None:
    """Defaults until set; an update changes only the keys it gives; null resets; viewers do
    not see it; an export carries it and an import takes it over."""
    created = await shared.api.post("/api/automations", json=SCRIPT, headers=OPERATOR)
    auto_id = created.json()["id"]
    assert (await shown(shared, auto_id))["approval"] == DEFAULT
    assert "approval" not in await shown(shared, auto_id, VIEWER)

    later = {"timeout_minutes": 90, "on_timeout": "approve"}
    for change, policy in [
        ({"timeout_minutes": 0.5}, {"timeout_minutes": 0.5, "on_timeout": "reject"}),
        ({"on_timeout": "approve"}, {"timeout_minutes": 0.5, "on_timeout": "approve"}),
        (None, DEFAULT),
        (later, later),
    ]:
        response = await shared.api.put(
            f"/api/automations/{auto_id}", json={"approval": change}, headers=OPERATOR
        )
        assert response.status_code == 200, response.text
        assert (await shown(shared, auto_id))["approval"] == policy

    bad = await shared.api.put(
        f"/api/automations/{auto_id}", json={"approval": {"on_timeout": "later"}}, headers=OPERATOR
    )
    assert bad.status_code == 400 and bad.json()["error"].startswith("approval.on_timeout:")
    assert (await shown(shared, auto_id))["approval"]["on_timeout"] == "approve"

    exported = (await shared.api.get("/api/automations/export", headers=OPERATOR)).json()
    [mine] = [item for item in exported if item["id"] == auto_id]
    assert mine["approval"] == {"timeout_minutes": 90, "on_timeout": "approve"}


@pytest.mark.parametrize(
    ("approval", "field"),
    [
        ({"timeout_minutes": 0}, "approval.timeout_minutes"),
        ({"timeout_minutes": 50000}, "approval.timeout_minutes"),
        ({"on_timeout": "expire"}, "approval.on_timeout"),
        ({"when": 1}, "approval.when"),
        ("1h", "approval"),
    ],
)
async def test_bad_policy_on_create_is_400_and_writes_nothing(
    shared: Stack, approval: Any, field: str
) -> None:
    before = automations(shared)
    response = await shared.api.post(
        "/api/automations", json={**SCRIPT, "approval": approval}, headers=OPERATOR
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"].startswith(field + ":"), response.text
    assert automations(shared) == before


async def test_queue_bad_requests(shared: Stack) -> None:
    """The list takes the statuses it knows (400 naming `status` otherwise); an unknown or
    malformed id is 404; a bad body field is 400 naming it; nothing is recorded."""
    assert (await shared.api.get("/api/approvals", headers=VIEWER)).json() == []
    for status in ("pending", "approved", "rejected", "timed_out", "cancelled", "all"):
        listed = await shared.api.get(f"/api/approvals?status={status}", headers=VIEWER)
        assert listed.status_code == 200 and listed.json() == []
    bad = await shared.api.get("/api/approvals?status=waiting", headers=VIEWER)
    assert bad.status_code == 400 and bad.json()["error"].startswith("status:")

    unknown = "apr_" + "0" * 32
    for verb in ("approve", "reject"):
        for request_id in (unknown, "nothing", "run_" + "0" * 32):
            answer = await shared.api.post(f"/api/approvals/{request_id}/{verb}", headers=OPERATOR)
            assert answer.status_code == 404, answer.text
            assert set(answer.json()) == {"error"}
        viewer = await shared.api.post(f"/api/approvals/{unknown}/{verb}", headers=VIEWER)
        assert viewer.status_code == 403
    for body, field in [
        ({"comment": "x" * 2001}, "comment"),
        ({"comment": 5}, "comment"),
        ({"reason": "x"}, "reason"),
        (["x"], "body"),
    ]:
        answer = await shared.api.post(
            f"/api/approvals/{unknown}/approve", json=body, headers=OPERATOR
        )
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"].startswith(field + ":"), answer.text
    with shared.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Approval)) == 0
