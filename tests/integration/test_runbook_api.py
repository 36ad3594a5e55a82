"""The Runbooks API end to end: real Temporal, a real worker, git repositories over file://.

A runbook is created through the API, its workflow checks the repository out and plans it,
and the API shows the recorded plan's counts and status; follow-ups append steps.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from temporalio.client import Client
from temporalio.worker import Replayer

from core.runbooks.format import parse_runbook
from core.store.accounts import create_account
from core.store.models import RunbookRow
from core.store.repositories import save_repository
from core.store.session import transaction
from core.store.users import create_token, get_by_email, upsert_user
from tests.chat_server import chat_server
from tests.stack import ADMIN, Stack, make_repo, make_settings, stack_for
from workflows.runbook import RunbookWorkflow

pytestmark = pytest.mark.slow

RUNBOOK = """\
# React 19

## Objective

Upgrade React.

## Steps

### 1 Prepare

#### 1.1 Bump React

```sh
npm install react@19
```

#### 1.2 Fix the types

### 2 Run tests

```bash
npm test
```
"""
FOLLOW_UP = """\
## Objective

Also the docs.

## Steps

### 1 Update the docs

### 2 Announce it
"""
SCHEMA = {"runbook_number", "url", "status", "steps", "pull_requests", "title", "error"}
ZERO = {"total": 0, "not_started": 0, "in_progress": 0, "completed": 0, "failed": 0, "queued": 0}


def _token(stack: Stack, email: str, role: str = "operator", account: str | None = None) -> str:
    with transaction(stack.sessions) as session:
        user = upsert_user(session, email, role=role)
        if account is not None:
            user.account_id = create_account(session, account).id
        _, plain = create_token(session, user)
    return plain


def _connect(stack: Stack, root: Path, org: str = "acme", name: str = "web") -> None:
    url = make_repo(root, {"runbooks/react-19.md": RUNBOOK, "src/app.js": "export {}\n"})
    with transaction(stack.sessions) as session:
        doc = {"kind": "Repository", "org": org, "name": name, "url": url}
        save_repository(
            session,
            doc,
            box=_box(stack),
            allowed_schemes=stack.settings.allowed_schemes,
            user_id=None,
        )


def _box(stack: Stack) -> Any:
    from core.secrets import SecretBox

    return SecretBox(stack.settings.secret_key)


@pytest.fixture
async def rb(tmp_path: Path, temporal: Client) -> AsyncIterator[tuple[Stack, dict[str, str]]]:
    settings = make_settings(tmp_path / "home")
    async with stack_for(settings, temporal) as stack:
        _connect(stack, tmp_path / "repo")
        yield stack, {"Authorization": f"Bearer {_token(stack, 'ops@example.com')}"}


async def _create(stack: Stack, auth: dict[str, str], **body: Any) -> Any:
    """Create a runbook; not one-shot unless asked, so its steps wait instead of running
    (these tests are about planning; tests/integration/test_runbook_execution.py runs steps)."""
    payload = {"repository": {"org": "acme", "name": "web"}, "prompt": "x", "oneshot": False}
    payload.update(body)
    return await stack.api.post("/api/v1/runbook", json=payload, headers=auth)


async def _until_planned(
    stack: Stack, auth: dict[str, str], number: int, timeout: float = 60.0
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        response = await stack.api.get(f"/api/v1/runbook/{number}", headers=auth)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        if body["status"] != "generating_steps":
            return body
        assert time.monotonic() < deadline, f"runbook {number} still {body}"
        await asyncio.sleep(0.1)


async def test_create_answers_202_with_the_documented_schema_then_the_file_is_planned(
    rb: tuple[Stack, dict[str, str]],
) -> None:
    stack, auth = rb
    response = await _create(
        stack, auth, prompt="Follow runbooks/react-19.md", labels=["a", "b", "a"], oneshot=True
    )
    assert response.status_code == 202, response.text
    body = response.json()
    assert set(body) == SCHEMA
    assert body == {
        "runbook_number": 1,
        "url": "http://runwright/api/v1/runbook/1",
        "status": "generating_steps",
        "steps": ZERO,
        "pull_requests": [],
        "title": "Follow runbooks/react-19.md",
        "error": None,
    }
    planned = await _until_planned(stack, auth, 1)
    # Leaves only: 1.1, 1.2 and 2 (one-shot then runs them).
    assert planned["steps"]["total"] == 3
    with stack.sessions() as session:
        row = session.scalars(select(RunbookRow)).one()
    assert row.labels == ["a", "b"]
    assert row.pr_mode == "single_pr" and row.draft is True and row.target_branch == "main"
    assert parse_runbook(row.plan or "") == parse_runbook(RUNBOOK)
    handle = stack.temporal.get_workflow_handle(row.workflow_id)
    assert (await handle.describe()).workflow_type == "Runbook"


async def test_a_pasted_runbook_not_oneshot_is_planned_not_started_and_a_follow_up_appends(
    rb: tuple[Stack, dict[str, str]],
) -> None:
    stack, auth = rb
    response = await _create(stack, auth, prompt=RUNBOOK, oneshot=False, title="Upgrade")
    assert response.status_code == 202, response.text
    planned = await _until_planned(stack, auth, 1)
    assert planned["status"] == "not_started"
    assert planned["steps"] == {**ZERO, "total": 3, "not_started": 3}
    patched = await stack.api.patch(
        "/api/v1/runbook/1", json={"prompt": FOLLOW_UP, "labels": ["docs"]}, headers=auth
    )
    assert patched.status_code == 202, patched.text
    assert set(patched.json()) == SCHEMA
    deadline = time.monotonic() + 60
    while True:
        with stack.sessions() as session:
            row = session.scalars(select(RunbookRow)).one()
        if row.planned_prompts == 2:
            break
        assert time.monotonic() < deadline
        await asyncio.sleep(0.1)
    plan = parse_runbook(row.plan or "")
    assert [s.number + " " + s.name for s in plan.steps] == [
        "1 Prepare",
        "2 Run tests",
        "3 Update the docs",
        "4 Announce it",
    ]
    assert row.labels == ["docs"] and row.title == "Upgrade"
    body = (await stack.api.get("/api/v1/runbook/1", headers=auth)).json()
    assert body["steps"] == {**ZERO, "total": 5, "not_started": 5}
    # The workflow's history, follow-up signal included, replays with the current code.
    history = await stack.temporal.get_workflow_handle(row.workflow_id).fetch_history()
    replayer = Replayer(workflows=[RunbookWorkflow], data_converter=stack.temporal.data_converter)
    await replayer.replay_workflow(history)


async def test_a_free_text_prompt_without_a_planner_fails_saying_how_to_give_one(
    rb: tuple[Stack, dict[str, str]],
) -> None:
    stack, auth = rb
    assert (await _create(stack, auth, prompt="Upgrade React please")).status_code == 202
    body = await _until_planned(stack, auth, 1)
    assert body["status"] == "failed"
    assert body["steps"] == ZERO
    assert "RUNWRIGHT_PLANNER_URL" in body["error"]


async def test_a_free_text_prompt_is_planned_by_the_model(tmp_path: Path, temporal: Client) -> None:
    with chat_server((200, RUNBOOK)) as server:
        settings = make_settings(
            tmp_path / "home", planner_url=server.url, planner_model="llama3.1"
        )
        async with stack_for(settings, temporal) as stack:
            _connect(stack, tmp_path / "repo")
            auth = {"Authorization": f"Bearer {_token(stack, 'ops@example.com')}"}
            assert (await _create(stack, auth, prompt="Upgrade React")).status_code == 202
            body = await _until_planned(stack, auth, 1)
    assert body["status"] == "not_started", body
    assert body["steps"]["total"] == 3
    assert len(server.received) == 1
    assert "src/app.js" in str(server.received[0].body)


async def test_a_missing_branch_fails_the_plan_naming_it(rb: tuple[Stack, dict[str, str]]) -> None:
    stack, auth = rb
    response = await _create(stack, auth, prompt=RUNBOOK, target_branch="nope")
    assert response.status_code == 202
    body = await _until_planned(stack, auth, 1)
    assert body["status"] == "failed" and "nope" in body["error"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"prompt": "x"}, "repository"),
        ({"repository": {"org": "acme"}, "prompt": "x"}, "repository.name"),
        ({"repository": {"org": 1, "name": "web"}, "prompt": "x"}, "repository.org"),
        ({"repository": {"org": "acme", "name": "web"}}, "prompt"),
        ({"repository": {"org": "acme", "name": "web"}, "prompt": "  "}, "prompt"),
        ({"repository": {"org": "acme", "name": "web"}, "prompt": "x", "pr_mode": "x"}, "pr_mode"),
        ({"repository": {"org": "acme", "name": "web"}, "prompt": "x", "oneshot": 1}, "oneshot"),
        ({"repository": {"org": "acme", "name": "web"}, "prompt": "x", "draft": "no"}, "draft"),
        ({"repository": {"org": "acme", "name": "web"}, "prompt": "x", "labels": "a"}, "labels"),
        (
            {
                "repository": {"org": "acme", "name": "web"},
                "prompt": "x",
                "labels": ["x" * 51],
            },
            "labels[0]",
        ),
        (
            {"repository": {"org": "acme", "name": "web"}, "prompt": "x", "target_branch": "-x"},
            "target_branch",
        ),
        ({"repository": {"org": "acme", "name": "web"}, "prompt": "x", "title": "a\nb"}, "title"),
        ({"repository": {"org": "acme", "name": "web"}, "prompt": "x", "colour": "red"}, "colour"),
        (
            {"repository": {"org": "acme", "name": "web"}, "prompt": "x", "author_email": "no@x"},
            "author_email",
        ),
        (
            {"repository": {"org": "acme", "name": "web"}, "prompt": "x" * (256 * 1024 + 1)},
            "prompt",
        ),
        ([], "body"),
    ],
)
async def test_bad_fields_are_400_naming_them_and_nothing_is_stored(
    rb: tuple[Stack, dict[str, str]], body: Any, field: str
) -> None:
    stack, auth = rb
    response = await stack.api.post("/api/v1/runbook", json=body, headers=auth)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "bad-request"
    assert response.json()["message"].startswith(field), response.json()
    with stack.sessions() as session:
        assert session.scalars(select(RunbookRow)).all() == []


async def test_not_found_and_unauthorized_take_the_documented_shape(
    rb: tuple[Stack, dict[str, str]],
) -> None:
    stack, auth = rb
    missing = {"repository": {"org": "acme", "name": "nope"}, "prompt": "x"}
    response = await stack.api.post("/api/v1/runbook", json=missing, headers=auth)
    assert (response.status_code, response.json()) == (
        404,
        {"error": "not-found", "message": "Repository not found."},
    )
    for path in ("/api/v1/runbook/7", "/api/v1/runbook/abc", "/api/v1/runbook/-1"):
        response = await stack.api.get(path, headers=auth)
        assert (response.status_code, response.json()) == (
            404,
            {"error": "not-found", "message": "Runbook not found."},
        ), path
    response = await stack.api.patch("/api/v1/runbook/7", json={"prompt": "x"}, headers=auth)
    assert response.status_code == 404
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        response = await stack.api.get("/api/v1/runbook/1", headers=headers)
        assert response.status_code == 401
        assert response.json()["error"] == "unauthorized"
    response = await stack.api.post("/api/v1/runbook", json=missing)
    assert response.status_code == 401 and response.json()["error"] == "unauthorized"


async def test_numbers_are_sequential_per_account_and_isolated(
    rb: tuple[Stack, dict[str, str]],
) -> None:
    stack, auth = rb
    other = {"Authorization": f"Bearer {_token(stack, 'b@example.com', account='OTHER')}"}
    numbers = await asyncio.gather(*[_create(stack, auth, prompt=RUNBOOK) for _ in range(3)])
    assert sorted(r.json()["runbook_number"] for r in numbers) == [1, 2, 3]
    response = await _create(stack, other, prompt=RUNBOOK)
    assert response.json()["runbook_number"] == 1
    # Account OTHER's runbook 2 does not exist, whatever the platform's numbers are.
    assert (await stack.api.get("/api/v1/runbook/2", headers=other)).status_code == 404
    for number in (1, 2, 3):
        assert (await _until_planned(stack, auth, number))["steps"]["total"] == 3
    assert (await _until_planned(stack, other, 1))["steps"]["total"] == 3
    with stack.sessions() as session:
        admin = get_by_email(session, ADMIN[0])
    assert admin is not None


async def test_a_failed_plan_recovers_with_a_follow_up_that_is_a_runbook(
    rb: tuple[Stack, dict[str, str]],
) -> None:
    stack, auth = rb
    assert (await _create(stack, auth, prompt="Upgrade React please")).status_code == 202
    assert (await _until_planned(stack, auth, 1))["status"] == "failed"
    patched = await stack.api.patch("/api/v1/runbook/1", json={"prompt": RUNBOOK}, headers=auth)
    assert patched.status_code == 202, patched.text
    # The follow-up is planned anew: the old error is gone while it is.
    assert (patched.json()["status"], patched.json()["error"]) == ("generating_steps", None)
    body = await _until_planned(stack, auth, 1)
    assert body["status"] == "not_started" and body["error"] is None
    assert body["steps"] == {**ZERO, "total": 3, "not_started": 3}


async def test_a_follow_up_repeating_a_step_name_fails_and_keeps_the_plan(
    rb: tuple[Stack, dict[str, str]],
) -> None:
    stack, auth = rb
    await _create(stack, auth, prompt=RUNBOOK)
    await _until_planned(stack, auth, 1)
    patched = await stack.api.patch("/api/v1/runbook/1", json={"prompt": RUNBOOK}, headers=auth)
    assert patched.status_code == 202
    deadline = time.monotonic() + 60
    while True:
        body = (await stack.api.get("/api/v1/runbook/1", headers=auth)).json()
        if body["error"]:
            break
        assert time.monotonic() < deadline, body
        await asyncio.sleep(0.1)
    assert "must be unique" in body["error"]
    assert body["steps"]["total"] == 3


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "prompt"),
        ({"prompt": ""}, "prompt"),
        ({"prompt": "x", "labels": [1]}, "labels[0]"),
        ({"prompt": "x", "description": 5}, "description"),
        ({"prompt": "x", "title": "t"}, "title"),
    ],
)
async def test_bad_follow_ups_are_400_naming_the_field_and_add_nothing(
    rb: tuple[Stack, dict[str, str]], body: dict[str, Any], field: str
) -> None:
    stack, auth = rb
    await _create(stack, auth, prompt=RUNBOOK)
    response = await stack.api.patch("/api/v1/runbook/1", json=body, headers=auth)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "bad-request"
    assert response.json()["message"].startswith(field)
    with stack.sessions() as session:
        assert session.scalars(select(RunbookRow)).one().prompts == [RUNBOOK]


async def test_author_email_names_the_author_and_the_url_base_is_settable(
    tmp_path: Path, temporal: Client
) -> None:
    settings = make_settings(tmp_path / "home", runbook_url_base="https://runbooks.example/r/")
    async with stack_for(settings, temporal) as stack:
        _connect(stack, tmp_path / "repo")
        auth = {"Authorization": f"Bearer {_token(stack, 'ops@example.com')}"}
        _token(stack, "lead@example.com", role="viewer")
        response = await _create(
            stack, auth, prompt=RUNBOOK, author_email="lead@example.com", oneshot=False
        )
        assert response.status_code == 202, response.text
        assert response.json()["url"] == "https://runbooks.example/r/1"
        with stack.sessions() as session:
            row = session.scalars(select(RunbookRow)).one()
            lead = get_by_email(session, "lead@example.com")
        assert lead is not None and row.author_id == lead.id
        # Not one-shot and no pr_mode: the project default, ready pull requests.
        assert (row.pr_mode, row.draft) == ("stacked_pr", False)
