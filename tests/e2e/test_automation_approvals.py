"""The approval queue end to end on the real engine: an `approve` automation's run waits as a
request in `GET /api/approvals` until a listed approver or an admin approves (the script runs)
or rejects it (it never runs); refused callers change nothing; timeouts each way; an approval
step in the middle of a workflow; cancelling a run that waits for approval."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from core.store.models import Approval
from core.store.session import transaction
from core.store.users import upsert_user
from tests.e2e.test_automation_runs import ADMIN_AUTH, OPERATOR, create, run_doc, start, wait_for
from tests.stack import ADMIN, Stack, basic

pytestmark = pytest.mark.slow
APPROVER_NAME = "approver@corp.test"
APPROVER = basic(APPROVER_NAME, "pw-approver")
VIEWER = basic("view@corp.test", "pw-view")
SCRIPT = {"name": "Deploy", "type": "script", "params": {"command": "echo deployed"}}


@pytest.fixture
async def queue(stack: Stack) -> Stack:
    with transaction(stack.sessions) as session:
        upsert_user(session, "op@corp.test", password="pw-op", role="operator")
        upsert_user(session, APPROVER_NAME, password="pw-approver", role="operator")
        upsert_user(session, "view@corp.test", password="pw-view", role="viewer")
    return stack


async def held(stack: Stack, **fields: Any) -> tuple[str, str]:
    """An `approve` automation (approver: APPROVER) started once: (automation id, run id)."""
    body = {**SCRIPT, "autonomy": "approve", "approvers": [APPROVER_NAME], **fields}
    auto_id = await create(stack, body)
    answer = await start(stack, auto_id)
    assert answer["status"] == "pending_approval", answer
    return auto_id, answer["run_id"]


async def requests(stack: Stack, status: str | None = None) -> list[dict[str, Any]]:
    query = f"?status={status}" if status else ""
    response = await stack.api.get(f"/api/approvals{query}", headers=VIEWER)
    assert response.status_code == 200, response.text
    listed: list[dict[str, Any]] = response.json()
    return listed


async def request_of(stack: Stack, run_id: str, status: str = "all") -> dict[str, Any]:
    [found] = [r for r in await requests(stack, status) if r["run_id"] == run_id]
    return found


async def decide(
    stack: Stack, request_id: str, verb: str, auth: dict[str, str], body: Any = None
) -> Any:
    return await stack.api.post(f"/api/approvals/{request_id}/{verb}", json=body, headers=auth)


def decisions(stack: Stack) -> int:
    with stack.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(Approval)) or 0)


async def test_listed_approver_approves_with_a_comment_and_the_script_runs(queue: Stack) -> None:
    """The run waits as a pending request; a viewer and an operator not listed are refused
    with nothing changed; the approver's approval runs the script, and the history shows
    who approved, when and why; a second decision is 409."""
    auto_id, run_id = await held(queue)
    [request] = await requests(queue)
    assert request["id"].startswith("apr_") and len(request["id"]) == 36
    assert (request["automation_id"], request["run_id"]) == (auto_id, run_id)
    assert request["approvers"] == [APPROVER_NAME]
    assert (request["requested_by"], request["status"]) == ("op@corp.test", "pending")
    assert request["message"].startswith("Run Deploy")
    assert request["timeout_at"] - request["requested_at"] in (3599, 3600, 3601)
    assert (request["on_timeout"], request["decided_by"], request["decided_at"]) == (
        "reject",
        None,
        None,
    )

    for who in (VIEWER, OPERATOR):
        refused = await decide(queue, request["id"], "approve", who, {"comment": "me"})
        assert refused.status_code == 403, refused.text
        assert set(refused.json()) == {"error"}
    assert await requests(queue) == [request]
    assert (await run_doc(queue, run_id))["status"] == "pending_approval"
    assert decisions(queue) == 0

    approved = await decide(queue, request["id"], "approve", APPROVER, {"comment": "go ahead"})
    assert (approved.status_code, approved.json()) == (200, {"status": "approved"})
    doc = await wait_for(queue, run_id)
    assert (doc["status"], doc["output"]) == ("done", "deployed\n")

    assert await requests(queue) == []
    shown = await request_of(queue, run_id)
    assert (shown["status"], shown["decided_by"], shown["comment"]) == (
        "approved",
        APPROVER_NAME,
        "go ahead",
    )
    assert shown["decided_at"] >= shown["requested_at"]
    assert await requests(queue, "approved") == [shown]
    assert await requests(queue, "rejected") == []
    again = await decide(queue, request["id"], "reject", APPROVER)
    assert again.status_code == 409 and set(again.json()) == {"error"}
    assert (await request_of(queue, run_id))["status"] == "approved"


async def test_an_admin_not_listed_rejects_and_the_script_never_runs(queue: Stack) -> None:
    """Admins decide any request: a rejection ends the run cancelled before the script ran;
    the request shows the rejection; deciding it again is 409."""
    _, run_id = await held(queue)
    [request] = await requests(queue)
    rejected = await decide(queue, request["id"], "reject", ADMIN_AUTH, {"comment": "not today"})
    assert (rejected.status_code, rejected.json()) == (200, {"status": "rejected"})
    doc = await wait_for(queue, run_id)
    assert (doc["status"], doc["output"], doc["started"]) == ("cancelled", "", None)
    shown = await request_of(queue, run_id, "rejected")
    assert (shown["status"], shown["decided_by"], shown["comment"]) == (
        "rejected",
        ADMIN[0],
        "not today",
    )
    for verb in ("approve", "reject"):
        late = await decide(queue, request["id"], verb, APPROVER)
        assert late.status_code == 409, late.text
    assert (await run_doc(queue, run_id))["output"] == ""


@pytest.mark.parametrize(
    ("on_timeout", "status", "output"),
    [("approve", "done", "deployed\n"), ("reject", "cancelled", "")],
)
async def test_nobody_deciding_in_time(
    queue: Stack, on_timeout: str, status: str, output: str
) -> None:
    """`approval.timeout_minutes` 0.05 (3 s): on_timeout approve runs the script, reject
    cancels the run; either way the request shows timed_out and nobody decided it."""
    policy = {"timeout_minutes": 0.05, "on_timeout": on_timeout}
    _, run_id = await held(queue, approval=policy)
    [request] = await requests(queue)
    assert request["timeout_at"] - request["requested_at"] in (2, 3, 4)
    assert request["on_timeout"] == on_timeout
    doc = await wait_for(queue, run_id, timeout=60)
    assert (doc["status"], doc["output"]) == (status, output)
    shown = await request_of(queue, run_id, "timed_out")
    assert (shown["status"], shown["decided_by"], shown["comment"]) == ("timed_out", None, "")
    assert shown["decided_at"] >= shown["timeout_at"]
    late = await decide(queue, request["id"], "approve", APPROVER)
    assert late.status_code == 409
    assert decisions(queue) == 0


async def test_an_approval_step_in_a_workflow_is_a_request(queue: Stack) -> None:
    """A `workflow` automation's approval step waits as a request of that automation, after
    the steps before it ran and before the ones after it; approving it runs the rest."""
    first = await create(queue, {**SCRIPT, "name": "one", "params": {"command": "echo one"}})
    last = await create(queue, {**SCRIPT, "name": "two", "params": {"command": "echo two"}})
    step = {"message": "ship it?", "approvers": [APPROVER_NAME], "timeout_minutes": 60,
            "on_timeout": "reject"}  # fmt: skip
    flow = await create(
        queue,
        {
            "name": "flow",
            "type": "workflow",
            "params": {"steps": [first, {"approval": step}, last]},
        },
    )
    answer = await start(queue, flow)
    doc = await wait_for(queue, answer["run_id"], {"pending_approval"})
    assert doc["output"] == "one\n"
    [request] = await requests(queue)
    assert (request["automation_id"], request["run_id"]) == (flow, answer["run_id"])
    assert (request["message"], request["approvers"]) == ("ship it?", [APPROVER_NAME])
    assert request["timeout_at"] - request["requested_at"] in (3599, 3600, 3601)

    refused = await decide(queue, request["id"], "approve", OPERATOR)
    assert refused.status_code == 403
    approved = await decide(queue, request["id"], "approve", APPROVER, {"comment": "shipped"})
    assert approved.json() == {"status": "approved"}
    doc = await wait_for(queue, answer["run_id"])
    assert (doc["status"], doc["output"]) == ("done", "one\ntwo\n")
    shown = await request_of(queue, answer["run_id"], "approved")
    assert (shown["decided_by"], shown["comment"]) == (APPROVER_NAME, "shipped")


async def test_cancelling_a_run_that_waits_for_approval(queue: Stack) -> None:
    """Cancel ends a pending run `cancelled` without running it; its request is no longer
    pending (it shows cancelled) and cannot be decided."""
    _, run_id = await held(queue)
    [request] = await requests(queue)
    cancelled = await queue.api.post(f"/api/automations/runs/{run_id}/cancel", headers=OPERATOR)
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json() == {"run_id": run_id, "status": "cancelled"}
    doc = await wait_for(queue, run_id)
    assert (doc["status"], doc["output"]) == ("cancelled", "")
    assert await requests(queue) == []
    shown = await request_of(queue, run_id, "cancelled")
    assert (shown["status"], shown["decided_by"]) == ("cancelled", None)
    late = await decide(queue, request["id"], "approve", APPROVER)
    assert late.status_code == 409
    again = await queue.api.post(f"/api/automations/runs/{run_id}/cancel", headers=OPERATOR)
    assert again.status_code == 409
