"""Executing and stopping runbook steps through the API: real Temporal, a real worker.

`POST /api/v1/runbook/<n>/execute` checks the request against the stored plan and states and
sends the `execute` signal (a running workflow gets it, an ended one starts again from the
stored state); `/stop` signals a running workflow. What the workflow then does is its own
(tests of workflows/runbook.py); here: what is refused, what is sent, what the API shows.
Refused requests are checked against runbooks stored without a workflow, so "nothing sent"
is "no workflow exists".
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from core.runbooks.format import parse_runbook
from core.runbooks.status import PullRequestRef
from core.store.models import RunbookRow
from core.store.repositories import repository_id
from core.store.runbooks import account_key, create_runbook, record_plan
from core.store.session import transaction
from core.store.users import get_by_email, upsert_user
from tests.integration.test_runbook_api import (
    RUNBOOK,
    SCHEMA,
    ZERO,
    _connect,
    _create,
    _token,
    _until_planned,
)
from tests.stack import Stack, client_of_a_stopped_temporal, make_settings, stack_for
from workflows.contracts import CommitAuthor, ExecuteStep, RunbookInput, StopSteps
from workflows.runbook import workflow_id

pytestmark = pytest.mark.slow

C, F, P, N, Q = "completed", "failed", "in_progress", "not_started", "queued"
OPS = "ops@example.com"
UNAVAILABLE = "the workflow service is unavailable"
DONE = "and every step before it have already completed"


@pytest.fixture
async def rb(tmp_path: Path, temporal: Client) -> AsyncIterator[tuple[Stack, dict[str, str]]]:
    settings = make_settings(tmp_path / "home")
    async with stack_for(settings, temporal) as stack:
        _connect(stack, tmp_path / "repo")
        yield stack, {"Authorization": f"Bearer {_token(stack, OPS)}"}


def _seed(
    stack: Stack,
    *,
    plan: str | None = RUNBOOK,
    states: dict[str, str] | None = None,
    pull_requests: list[PullRequestRef] | None = None,
    pr_mode: str = "stacked_pr",
    email: str = OPS,
) -> RunbookRow:
    """A runbook stored as its workflow would have recorded it, with no workflow running."""
    with stack.sessions() as session:
        user = get_by_email(session, email)
        repo = repository_id(session, "acme", "web")
        assert user is not None and repo is not None
        account, author = account_key(user.account_id), user.id
    runbook_id = str(uuid.uuid4())
    row = create_runbook(
        stack.sessions,
        account,
        id=runbook_id,
        workflow_id=workflow_id(runbook_id),
        repository_id=repo,
        repository_org="acme",
        repository_name="web",
        prompts=[RUNBOOK],
        planned_prompts=0,
        title="Seeded",
        author_id=author,
        oneshot=False,
        pr_mode=pr_mode,
        draft=False,
        target_branch="main",
        step_states={},
        pull_requests=[],
    )
    if plan is not None:
        with transaction(stack.sessions) as session:
            runbook = parse_runbook(plan)
            record_plan(session, row.id, runbook, states or {}, 1, None, pull_requests)
    return row


def _stored(stack: Stack, runbook_id: str) -> tuple[Any, ...]:
    """Everything a request could change about a stored runbook."""
    with stack.sessions() as session:
        row = session.get(RunbookRow, runbook_id)
        assert row is not None
        return (
            row.plan,
            row.step_states,
            row.pull_requests,
            row.prompts,
            row.planned_prompts,
            row.error,
            row.updated_at,
        )


async def _assert_never_started(stack: Stack, row: RunbookRow) -> None:
    with pytest.raises(RPCError) as raised:
        await stack.temporal.get_workflow_handle(row.workflow_id).describe()
    assert raised.value.status == RPCStatusCode.NOT_FOUND


async def _signals(stack: Stack, wf_id: str, kind: type) -> list[tuple[str, Any]]:
    """The signals the workflow's latest run received: (name, argument decoded as `kind`)."""
    handle = stack.temporal.get_workflow_handle(wf_id)
    found = []
    async for event in handle.fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            attrs = event.workflow_execution_signaled_event_attributes
            [value] = await stack.temporal.data_converter.decode(attrs.input.payloads, [kind])
            found.append((attrs.signal_name, value))
    return found


async def _start_input(stack: Stack, wf_id: str) -> RunbookInput:
    """The input the workflow's latest run started with."""
    handle = stack.temporal.get_workflow_handle(wf_id)
    async for event in handle.fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
            payloads = event.workflow_execution_started_event_attributes.input.payloads
            [value] = await stack.temporal.data_converter.decode(payloads, [RunbookInput])
            assert isinstance(value, RunbookInput)
            return value
    raise AssertionError("no start event")


def _user_id(stack: Stack, email: str) -> str:
    with stack.sessions() as session:
        user = get_by_email(session, email)
        assert user is not None
        return user.id


async def _planned_not_oneshot(stack: Stack, auth: dict[str, str]) -> RunbookRow:
    response = await _create(stack, auth, prompt=RUNBOOK, oneshot=False)
    assert response.status_code == 202, response.text
    number = response.json()["runbook_number"]
    assert (await _until_planned(stack, auth, number))["status"] == "not_started"
    with stack.sessions() as session:
        return session.scalars(select(RunbookRow).where(RunbookRow.number == number)).one()


async def test_execute_sends_the_step_to_the_running_workflow(
    rb: tuple[Stack, dict[str, str]],
) -> None:
    stack, auth = rb
    row = await _planned_not_oneshot(stack, auth)
    response = await stack.api.post("/api/v1/runbook/1/execute", json={"step": "1.2"}, headers=auth)
    assert response.status_code == 202, response.text
    body = response.json()
    assert set(body) == SCHEMA
    assert (body["runbook_number"], body["status"]) == (1, "not_started")
    assert body["steps"] == {**ZERO, "total": 3, "not_started": 3}
    # An integer names a top-level step.
    response = await stack.api.post("/api/v1/runbook/1/execute", json={"step": 2}, headers=auth)
    assert response.status_code == 202, response.text
    ops = _user_id(stack, OPS)
    expected = [("execute", ExecuteStep("1.2", by=ops)), ("execute", ExecuteStep("2", by=ops))]
    # A signal that comes while a workflow task is in flight enters the history only when
    # that task completes: read until both are there.
    deadline = time.monotonic() + 30
    while True:
        found = await _signals(stack, row.workflow_id, ExecuteStep)
        sent = [s for s in found if s[0] == "execute"]
        if len(sent) >= len(expected) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    assert sent == expected


async def test_a_workflow_not_running_starts_again_from_the_stored_state_with_the_step(
    rb: tuple[Stack, dict[str, str]],
) -> None:
    stack, _ = rb
    # The author has a name and an account; the runbook is in that account's numbering.
    lead = {"Authorization": f"Bearer {_token(stack, 'lead@example.com', account='ACME')}"}
    with transaction(stack.sessions) as session:
        upsert_user(session, "lead@example.com", name="Lee Lead")
        account = get_by_email(session, "lead@example.com")
        assert account is not None and account.account_id is not None
        account_id = account.account_id
    refs = [PullRequestRef(4, "https://forge/pr/4", "1")]
    row = _seed(stack, states={"1.1": C, "1.2": F}, pull_requests=refs, email="lead@example.com")
    response = await stack.api.post("/api/v1/runbook/1/execute", json={"step": "2"}, headers=lead)
    assert response.status_code == 202, response.text
    assert response.json()["pull_requests"] == [
        {"number": 4, "url": "https://forge/pr/4", "step_numbers": ["1.1"]}
    ]
    started = await _start_input(stack, row.workflow_id)
    assert started.runbook == parse_runbook(RUNBOOK)
    assert started.states == {"1.1": C, "1.2": F}
    assert started.pending == []
    assert started.pr_mode == "stacked_pr"
    assert started.author == CommitAuthor("Lee Lead", "lead@example.com")
    assert started.author_id == _user_id(stack, "lead@example.com")
    assert started.account_id == account_id
    assert started.definition_id == row.repository_id
    assert started.url == "http://runwright/api/v1/runbook/1"
    assert started.pull_requests == refs
    sent = await _signals(stack, row.workflow_id, ExecuteStep)
    assert sent == [("execute", ExecuteStep("2", by=_user_id(stack, "lead@example.com")))]


async def test_stop_signals_a_running_workflow_and_is_409_when_none_runs(
    rb: tuple[Stack, dict[str, str]],
) -> None:
    stack, auth = rb
    row = await _planned_not_oneshot(stack, auth)
    for body in (None, {}):
        response = await stack.api.post("/api/v1/runbook/1/stop", json=body, headers=auth)
        assert response.status_code == 202, response.text
        assert set(response.json()) == SCHEMA
    stops = [s for s in await _signals(stack, row.workflow_id, StopSteps) if s[0] == "stop"]
    assert stops == [("stop", StopSteps(by=_user_id(stack, OPS)))] * 2
    # Ended (as after 30 idle days): there is nothing to stop, and nothing is started.
    await stack.temporal.get_workflow_handle(row.workflow_id).terminate("test")
    response = await stack.api.post("/api/v1/runbook/1/stop", headers=auth)
    assert (response.status_code, response.json()) == (
        409,
        {
            "error": "conflict",
            "message": "nothing is executing: the runbook's workflow is not running",
        },
    )
    described = await stack.temporal.get_workflow_handle(row.workflow_id).describe()
    assert described.status is not None and described.status.name == "TERMINATED"
    seeded = _seed(stack)
    response = await stack.api.post("/api/v1/runbook/2/stop", headers=auth)
    assert response.status_code == 409
    await _assert_never_started(stack, seeded)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "step: is required"),
        ({"step": None}, "step: is required"),
        ({"step": True}, "step: must be a string or an integer"),
        ({"step": 1.5}, "step: must be a string or an integer"),
        ({"step": ["1"]}, "step: must be a string or an integer"),
        ({"step": ""}, "step: must be a step number such as 2 or 1.2"),
        ({"step": "1.x"}, "step: must be a step number such as 2 or 1.2"),
        ({"step": "01"}, "step: must be a step number such as 2 or 1.2"),
        ({"step": 0}, "step: must be a step number such as 2 or 1.2"),
        ({"step": "1.1.1.1.1"}, "step: must be a step number such as 2 or 1.2"),
        ({"step": "7"}, "step: no step 7 in the runbook's plan"),
        ({"step": 7}, "step: no step 7 in the runbook's plan"),
        ({"step": "1.3"}, "step: no step 1.3 in the runbook's plan"),
        ({"step": "1", "force": True}, "force: is not a field of this request"),
        ([], "body: must be a JSON object"),
        ("1.2", "body: must be a JSON object"),
    ],
)
async def test_bad_execute_bodies_are_400_naming_the_field_and_send_nothing(
    rb: tuple[Stack, dict[str, str]], body: Any, message: str
) -> None:
    stack, auth = rb
    row = _seed(stack)
    before = _stored(stack, row.id)
    response = await stack.api.post("/api/v1/runbook/1/execute", json=body, headers=auth)
    assert (response.status_code, response.json()) == (
        400,
        {"error": "bad-request", "message": message},
    )
    assert _stored(stack, row.id) == before
    await _assert_never_started(stack, row)


@pytest.mark.parametrize(
    ("plan", "states", "step", "message"),
    [
        (None, {}, "1", "the runbook has no plan yet: wait for its steps to be generated"),
        (RUNBOOK, {"1.1": C, "1.2": C}, "1.2", f"step 1.2 {DONE}"),
        (RUNBOOK, {"1.1": C, "1.2": C}, "1", f"step 1 {DONE}"),
        (RUNBOOK, {"1.1": C, "1.2": C, "2": C}, "2", f"step 2 {DONE}"),
        (RUNBOOK, {"1.1": P}, "1.1", "step 1.1 is in progress"),
        (RUNBOOK, {"1.1": C, "1.2": P}, "1", "step 1 is in progress"),
    ],
)  # fmt: skip
async def test_execute_conflicts_are_409_and_send_nothing(
    rb: tuple[Stack, dict[str, str]],
    plan: str | None,
    states: dict[str, str],
    step: str,
    message: str,
) -> None:
    stack, auth = rb
    row = _seed(stack, plan=plan, states=states)
    before = _stored(stack, row.id)
    response = await stack.api.post("/api/v1/runbook/1/execute", json={"step": step}, headers=auth)
    assert (response.status_code, response.json()) == (
        409,
        {"error": "conflict", "message": message},
    )
    assert _stored(stack, row.id) == before
    await _assert_never_started(stack, row)


async def test_who_may_execute_and_stop_and_which_runbooks_they_find(
    rb: tuple[Stack, dict[str, str]],
) -> None:
    stack, auth = rb
    row = _seed(stack)
    before = _stored(stack, row.id)
    viewer = {"Authorization": f"Bearer {_token(stack, 'v@example.com', role='viewer')}"}
    other = {"Authorization": f"Bearer {_token(stack, 'b@example.com', account='OTHER')}"}
    for action in ("execute", "stop"):
        path = f"/api/v1/runbook/1/{action}"
        body = {"step": "1"} if action == "execute" else None
        for headers, status, error in (
            ({}, 401, "unauthorized"),
            ({"Authorization": "Bearer wrong"}, 401, "unauthorized"),
            (viewer, 403, "forbidden"),
            # Another account's runbook 1 is not this one: not found.
            (other, 404, "not-found"),
        ):
            response = await stack.api.post(path, json=body, headers=headers)
            assert (response.status_code, response.json()["error"]) == (status, error), action
        for missing in ("/api/v1/runbook/2", "/api/v1/runbook/abc", "/api/v1/runbook/0"):
            response = await stack.api.post(f"{missing}/{action}", json=body, headers=auth)
            assert (response.status_code, response.json()) == (
                404,
                {"error": "not-found", "message": "Runbook not found."},
            ), missing
    assert _stored(stack, row.id) == before
    await _assert_never_started(stack, row)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b'{"step": "1"}', "step: is not a field of this request"),
        (b"[]", "body: must be a JSON object"),
        (b"{", "body: invalid JSON"),
    ],
)
async def test_stop_takes_no_fields(
    rb: tuple[Stack, dict[str, str]], raw: bytes, message: str
) -> None:
    stack, auth = rb
    row = _seed(stack)
    headers = {**auth, "Content-Type": "application/json"}
    response = await stack.api.post("/api/v1/runbook/1/stop", content=raw, headers=headers)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "bad-request"
    assert response.json()["message"].startswith(message)
    await _assert_never_started(stack, row)


async def test_the_view_shows_stored_pull_requests_with_their_completed_steps(
    rb: tuple[Stack, dict[str, str]],
) -> None:
    stack, auth = rb
    refs = [
        PullRequestRef(4, "https://forge/pr/4", "1"),
        PullRequestRef(5, "https://forge/pr/5", "2"),
        PullRequestRef(4, "https://forge/pr/4", "1"),  # recorded twice: listed once
    ]
    _seed(stack, states={"1.1": C, "1.2": C, "2": P}, pull_requests=refs)
    body = (await stack.api.get("/api/v1/runbook/1", headers=auth)).json()
    assert body["status"] == "in_progress"
    assert body["pull_requests"] == [
        {"number": 4, "url": "https://forge/pr/4", "step_numbers": ["1.1", "1.2"]},
        {"number": 5, "url": "https://forge/pr/5", "step_numbers": []},
    ]


async def test_execute_and_stop_are_503_without_temporal_and_change_nothing(
    tmp_path: Path,
) -> None:
    client = await client_of_a_stopped_temporal()
    async with stack_for(make_settings(tmp_path / "home"), client, worker=False) as stack:
        _connect(stack, tmp_path / "repo")
        auth = {"Authorization": f"Bearer {_token(stack, OPS)}"}
        row = _seed(stack)
        before = _stored(stack, row.id)
        response = await stack.api.post(
            "/api/v1/runbook/1/execute", json={"step": "1.1"}, headers=auth
        )
        assert (response.status_code, response.json()) == (
            503,
            {"error": "unavailable", "message": f"{UNAVAILABLE}; the step was not sent"},
        )
        response = await stack.api.post("/api/v1/runbook/1/stop", headers=auth)
        assert (response.status_code, response.json()) == (
            503,
            {"error": "unavailable", "message": f"{UNAVAILABLE}; nothing was stopped"},
        )
        assert _stored(stack, row.id) == before


async def test_a_recording_without_pull_requests_keeps_the_stored_ones(
    rb: tuple[Stack, dict[str, str]],
) -> None:
    stack, auth = rb
    row = _seed(stack, pull_requests=[PullRequestRef(4, "https://forge/pr/4", "1")])
    plan = parse_runbook(RUNBOOK)
    with transaction(stack.sessions) as session:
        record_plan(session, row.id, plan, {"1.1": C}, 1, None, None)
    body = (await stack.api.get("/api/v1/runbook/1", headers=auth)).json()
    assert body["pull_requests"] == [
        {"number": 4, "url": "https://forge/pr/4", "step_numbers": ["1.1"]}
    ]
    with transaction(stack.sessions) as session:
        record_plan(session, row.id, plan, {"1.1": C}, 1, None, [])
    assert (await stack.api.get("/api/v1/runbook/1", headers=auth)).json()["pull_requests"] == []
