"""A worker SIGKILLed between two runbook steps: another worker finishes the runbook, and no
step runs twice, no commit is duplicated and no second pull request is opened."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select
from temporalio.client import Client

from core.runbooks.status import branch_name
from core.secrets import SecretBox
from core.store.models import ForgePullRequest, Run, RunbookRow
from core.store.repositories import save_repository
from core.store.session import transaction
from core.store.users import create_token, upsert_user
from tests.conftest import TEST_SECRET_KEY
from tests.stack import git, make_repo, make_settings, running_worker, stack_for, worker_process
from workflows.runbook import workflow_id

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

PLAN = """\
## Objective

Three files.

## Steps

### 1 One

```sh
echo one > one.txt
```

### 2 Two

```sh
sleep 2
echo two > two.txt
```

### 3 Three

```sh
echo three > three.txt
```
"""


async def test_a_worker_killed_between_steps_leaves_no_duplicate_commit_or_pr(
    tmp_path: Path, temporal: Client
) -> None:
    make_repo(tmp_path / "work", {"README.md": "# web\n"})
    bare = tmp_path / "remote.git"
    git(tmp_path, "clone", "-q", "--bare", str(tmp_path / "work"), str(bare))
    main = git(bare, "rev-parse", "main")
    settings = make_settings(tmp_path / "home", secret_key=TEST_SECRET_KEY)
    async with stack_for(settings, temporal, worker=False) as stack:
        with transaction(stack.sessions) as session:
            doc = {"kind": "Repository", "org": "acme", "name": "web", "url": f"file://{bare}"}
            save_repository(
                session,
                doc,
                box=SecretBox(settings.secret_key),
                allowed_schemes=settings.allowed_schemes,
                user_id=None,
            )
            user = upsert_user(session, "ops@example.com", role="operator")
            _, token = create_token(session, user)
        auth = {"Authorization": f"Bearer {token}"}
        log = tmp_path / "worker.log"
        proc = worker_process(settings, temporal, log)
        try:
            body = {"repository": {"org": "acme", "name": "web"}, "prompt": PLAN}
            created = await stack.api.post("/api/v1/runbook", json=body, headers=auth)
            assert created.status_code == 202, created.text
            deadline = time.monotonic() + 90
            while True:
                with stack.sessions() as session:
                    row = session.scalars(select(RunbookRow)).one()
                    if row.step_states.get("1") == "completed":
                        break
                assert time.monotonic() < deadline, log.read_text()
                await asyncio.sleep(0.02)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        async with running_worker(settings, temporal, stack.sessions, stack.store):
            deadline = time.monotonic() + 150
            while True:
                answer = (await stack.api.get("/api/v1/runbook/1", headers=auth)).json()
                if answer["status"] in ("completed", "failed"):
                    break
                assert time.monotonic() < deadline, answer
                await asyncio.sleep(0.2)
        with stack.sessions() as session:
            row = session.scalars(select(RunbookRow)).one()
            pulls = session.scalar(select(func.count()).select_from(ForgePullRequest))
            runs = session.scalars(select(Run.status).where(Run.dialect == "runbook")).all()
    assert answer["status"] == "completed", answer
    assert answer["steps"]["completed"] == 3
    branch = branch_name(1, "1", workflow_id(row.id))
    subjects = git(bare, "log", "--reverse", "--format=%s", f"main..{branch}").splitlines()
    assert subjects == [
        "[Runbook-1] Step 1: One",
        "[Runbook-1] Step 2: Two",
        "[Runbook-1] Step 3: Three",
    ]
    assert git(bare, "rev-parse", "main") == main
    assert pulls == 1
    assert answer["pull_requests"] == [
        {
            "number": 1,
            "url": "http://runwright/api/repositories/acme/web/pulls/1",
            "step_numbers": ["1", "2", "3"],
        }
    ]
    # One run per step: the runbook's history kept the finished ones.
    assert sorted(runs) == ["succeeded"] * 3
