"""Runbook steps executing end to end: real Temporal, a real worker and sandbox, a bare git
remote over file://, and the `local` forge.

Each leaf runs as a child `Run` of the runbook's workflow; its commands change the tree, the
change is committed as `[Runbook-<n>] Step <k>: <name>` by the runbook's author and pushed to
the runbook's branch; the pull requests follow the PR mode. The remote is read back with git to
check the branch topology, and nothing may ever reach the target branch.
"""

from __future__ import annotations

import asyncio
import itertools
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from temporalio.client import Client
from temporalio.worker import Replayer

from core.runbooks.status import branch_name
from core.secrets import SecretBox
from core.store.models import Run, RunbookRow, RunEvent
from core.store.repositories import save_repository
from core.store.session import transaction
from core.store.users import create_token, upsert_user
from tests.github_server import fake_github
from tests.stack import Stack, git, make_repo, make_settings, stack_for
from workflows.runbook import RunbookWorkflow, workflow_id

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

PLAN = """\
# Greeting

## Objective

Say hello in files.

## Steps

### 1 Prepare

#### 1.1 Write hello

```sh
echo hello > hello.txt
```

#### 1.2 Append world

```bash
echo world >> hello.txt
```

### 2 Add notes

```sh
mkdir -p notes && echo "from step 2" > notes/two.md
```
"""
FAILING = PLAN.replace("echo world >> hello.txt", 'echo "about to fail"; exit 3')
ZERO = {"total": 0, "not_started": 0, "in_progress": 0, "completed": 0, "failed": 0, "queued": 0}
DONE = {"completed", "failed", "not_started"}


class Remote:
    """A bare repository standing in for the repository's git server."""

    def __init__(self, root: Path) -> None:
        work = root / "work"
        make_repo(work, {"README.md": "# web\n", "runbooks/.keep": ""})
        self.path = root / "remote.git"
        git(root, "clone", "-q", "--bare", str(work), str(self.path))
        self.url = f"file://{self.path}"
        self.main = self.sha("main")

    def git(self, *args: str) -> str:
        return git(self.path, *args)

    def branches(self) -> list[str]:
        out = self.git("for-each-ref", "--format=%(refname:short)", "refs/heads")
        return sorted(out.split())

    def sha(self, ref: str) -> str:
        return self.git("rev-parse", ref)

    def commits(self, ref: str, since: str) -> list[dict[str, str]]:
        """Commits on `ref` after `since`, oldest first."""
        fmt = "%H%x1f%P%x1f%an%x1f%ae%x1f%cn%x1f%ce%x1f%s"
        out = self.git("log", "--reverse", f"--format={fmt}", f"{since}..{ref}")
        keys = ("sha", "parent", "author", "email", "committer", "committer_email", "subject")
        return [dict(zip(keys, line.split("\x1f"), strict=True)) for line in out.splitlines()]

    def show(self, ref: str, path: str) -> str:
        return self.git("show", f"{ref}:{path}")


@pytest.fixture
async def env(
    tmp_path: Path, temporal: Client
) -> AsyncIterator[tuple[Stack, dict[str, str], Remote]]:
    remote = Remote(tmp_path / "git")
    settings = make_settings(tmp_path / "home")
    async with stack_for(settings, temporal) as stack:
        with transaction(stack.sessions) as session:
            user = upsert_user(session, "ops@example.com", name="Olga Ops", role="operator")
            _, token = create_token(session, user)
            save_repository(
                session,
                {"kind": "Repository", "org": "acme", "name": "web", "url": remote.url},
                box=SecretBox(settings.secret_key),
                allowed_schemes=settings.allowed_schemes,
                user_id=None,
            )
        yield stack, {"Authorization": f"Bearer {token}"}, remote


async def _create(stack: Stack, auth: dict[str, str], **body: Any) -> dict[str, Any]:
    payload = {"repository": {"org": "acme", "name": "web"}, "prompt": PLAN, **body}
    response = await stack.api.post("/api/v1/runbook", json=payload, headers=auth)
    assert response.status_code == 202, response.text
    created: dict[str, Any] = response.json()
    return created


async def _until(
    stack: Stack,
    auth: dict[str, str],
    number: int,
    done: Any,
    timeout: float = 120.0,
) -> dict[str, Any]:
    """Poll GET until `done(body)`; fails with the last body after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        response = await stack.api.get(f"/api/v1/runbook/{number}", headers=auth)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        if done(body):
            return body
        assert time.monotonic() < deadline, f"runbook {number} still {body}"
        await asyncio.sleep(0.2)


def _settled(body: dict[str, Any]) -> bool:
    return body["status"] in ("completed", "failed", "not_started") or (
        body["status"] == "partially_completed"
        and body["steps"]["queued"] == body["steps"]["in_progress"] == 0
    )


def _row(stack: Stack) -> RunbookRow:
    with stack.sessions() as session:
        return session.scalars(select(RunbookRow)).one()


async def _pull(stack: Stack, auth: dict[str, str], number: int) -> dict[str, Any]:
    response = await stack.api.get(f"/api/repositories/acme/web/pulls/{number}", headers=auth)
    assert response.status_code == 200, response.text
    pull: dict[str, Any] = response.json()
    return pull


def _pr(number: int, *steps: str) -> dict[str, Any]:
    """An entry of `pull_requests` for a PR of the local forge."""
    url = f"http://runwright/api/repositories/acme/web/pulls/{number}"
    return {"number": number, "url": url, "step_numbers": list(steps)}


def _branch(row: RunbookRow, group: str) -> str:
    return branch_name(row.number, group, workflow_id(row.id))


async def test_one_shot_runs_every_step_into_one_branch_and_one_pr_marked_ready(
    env: tuple[Stack, dict[str, str], Remote],
) -> None:
    stack, auth, remote = env
    await _create(
        stack,
        auth,
        title="Greeting",
        description="Part of the greetings work",
        labels=["deps", "q3"],
    )
    body = await _until(stack, auth, 1, _settled)
    assert body["status"] == "completed", body
    assert body["steps"] == {**ZERO, "total": 3, "completed": 3}
    assert body["error"] is None
    row = _row(stack)
    branch = _branch(row, "1")
    assert remote.branches() == sorted(["main", branch])
    assert remote.sha("main") == remote.main  # the target branch is never pushed to
    commits = remote.commits(branch, "main")
    assert [c["subject"] for c in commits] == [
        "[Runbook-1] Step 1.1: Write hello",
        "[Runbook-1] Step 1.2: Append world",
        "[Runbook-1] Step 2: Add notes",
    ]
    assert commits[0]["parent"] == remote.main
    assert all(c["parent"] == p["sha"] for p, c in itertools.pairwise(commits))
    assert {(c["author"], c["email"], c["committer"], c["committer_email"]) for c in commits} == {
        ("Olga Ops", "ops@example.com", "Olga Ops", "ops@example.com")
    }
    assert remote.show(branch, "hello.txt") == "hello\nworld"
    assert remote.show(branch, "notes/two.md") == "from step 2"
    assert body["pull_requests"] == [
        {
            "number": 1,
            "url": "http://runwright/api/repositories/acme/web/pulls/1",
            "step_numbers": ["1.1", "1.2", "2"],
        }
    ]
    pull = await _pull(stack, auth, 1)
    assert (pull["head"], pull["base"], pull["state"]) == (branch, "main", "open")
    assert pull["title"] == "Greeting" and pull["draft"] is False
    assert pull["labels"] == ["deps", "q3"]
    assert pull["body"].startswith("Part of the greetings work\n")
    assert "Progress: 3/3 steps completed" in pull["body"]
    diff = await stack.api.get("/api/repositories/acme/web/pulls/1/diff", headers=auth)
    assert diff.status_code == 200, diff.text
    assert diff.headers["content-type"].startswith("text/x-diff")
    assert "+++ b/hello.txt\n@@ -0,0 +1,2 @@\n+hello\n+world\n" in diff.text
    assert "+++ b/notes/two.md" in diff.text
    missing = await stack.api.get("/api/repositories/acme/web/pulls/9/diff", headers=auth)
    assert missing.status_code == 404
    remote.git("branch", "-D", branch)  # someone deleted the branch on the server
    gone = await stack.api.get("/api/repositories/acme/web/pulls/1/diff", headers=auth)
    assert gone.status_code == 502 and branch in gone.text
    # The runbook's history (plan, child runs, pull requests) replays with the current code.
    history = await stack.temporal.get_workflow_handle(row.workflow_id).fetch_history()
    replayer = Replayer(workflows=[RunbookWorkflow], data_converter=stack.temporal.data_converter)
    await replayer.replay_workflow(history)
    # Each leaf ran as its own run of the runbook dialect, a child of the runbook's workflow.
    with stack.sessions() as session:
        runs = session.scalars(select(Run).where(Run.dialect == "runbook")).all()
    assert sorted(r.status for r in runs) == ["succeeded"] * 3
    for run in runs:
        described = await stack.temporal.get_workflow_handle(run.id).describe()
        assert described.workflow_type == "Run"
        assert described.parent_id == row.workflow_id


async def test_stacked_prs_put_each_top_level_step_on_its_own_branch_on_the_previous(
    env: tuple[Stack, dict[str, str], Remote],
) -> None:
    stack, auth, remote = env
    await _create(stack, auth, pr_mode="stacked_pr", draft=False)
    body = await _until(stack, auth, 1, _settled)
    assert body["status"] == "completed", body
    row = _row(stack)
    first, second = _branch(row, "1"), _branch(row, "2")
    assert remote.branches() == sorted(["main", first, second])
    assert [c["subject"] for c in remote.commits(first, "main")] == [
        "[Runbook-1] Step 1.1: Write hello",
        "[Runbook-1] Step 1.2: Append world",
    ]
    on_second = remote.commits(second, first)
    assert [c["subject"] for c in on_second] == ["[Runbook-1] Step 2: Add notes"]
    assert on_second[0]["parent"] == remote.sha(first)  # stacked on the first branch
    assert remote.sha("main") == remote.main
    assert body["pull_requests"] == [
        _pr(1, "1.1", "1.2"),
        _pr(2, "2"),
    ]
    one, two = await _pull(stack, auth, 1), await _pull(stack, auth, 2)
    assert (one["head"], one["base"], one["title"]) == (
        first,
        "main",
        "[Runbook-1] Step 1: Prepare",
    )
    assert (two["head"], two["base"], two["title"]) == (
        second,
        first,
        "[Runbook-1] Step 2: Add notes",
    )
    assert one["draft"] is False and two["draft"] is False


async def test_a_failed_step_stops_the_rest_and_leaves_the_pr_draft_and_wip(
    env: tuple[Stack, dict[str, str], Remote],
) -> None:
    stack, auth, remote = env
    await _create(stack, auth, prompt=FAILING, title="Greeting")
    body = await _until(stack, auth, 1, _settled)
    assert body["status"] == "failed", body
    assert body["steps"] == {**ZERO, "total": 3, "completed": 1, "failed": 1, "not_started": 1}
    assert body["error"].startswith("step 1.2 failed: ")
    assert "exit-code: 3" in body["error"]
    row = _row(stack)
    assert row.step_states == {"1.1": "completed", "1.2": "failed", "2": "not_started"}
    branch = _branch(row, "1")
    assert [c["subject"] for c in remote.commits(branch, "main")] == [
        "[Runbook-1] Step 1.1: Write hello"
    ]
    assert remote.sha("main") == remote.main
    assert body["pull_requests"] == [_pr(1, "1.1")]
    pull = await _pull(stack, auth, 1)
    assert pull["title"] == "[WIP] Greeting" and pull["draft"] is True
    assert "- [ ] 1.2 Append world (failed)" in pull["body"]
    with stack.sessions() as session:
        statuses = sorted(s for s in session.scalars(select(Run.status)))
    assert statuses == ["failed", "succeeded"]  # step 2 never ran


async def test_plan_then_execute_runs_the_steps_up_to_the_one_asked_for(
    env: tuple[Stack, dict[str, str], Remote],
) -> None:
    stack, auth, remote = env
    await _create(stack, auth, oneshot=False)
    body = await _until(stack, auth, 1, lambda b: b["status"] != "generating_steps")
    assert body["status"] == "not_started"
    await asyncio.sleep(1.0)  # nothing runs without an execute
    assert remote.branches() == ["main"]
    assert _row(stack).step_states == {
        "1.1": "not_started",
        "1.2": "not_started",
        "2": "not_started",
    }

    response = await stack.api.post("/api/v1/runbook/1/execute", json={"step": "1.2"}, headers=auth)
    assert response.status_code == 202, response.text
    body = await _until(stack, auth, 1, lambda b: b["steps"]["completed"] == 2 and _settled(b))
    assert body["status"] == "partially_completed"
    assert body["steps"] == {**ZERO, "total": 3, "completed": 2, "not_started": 1}
    row = _row(stack)
    # Not one-shot: stacked PRs by default, not drafts.
    first = _branch(row, "1")
    assert remote.branches() == sorted(["main", first])
    assert body["pull_requests"] == [_pr(1, "1.1", "1.2")]

    # The runbook outlives its workflow (a stack restarted on a fresh Temporal): the next
    # request starts it again from what the database holds.
    await stack.temporal.get_workflow_handle(row.workflow_id).terminate("stack restarted")
    response = await stack.api.post("/api/v1/runbook/1/execute", json={"step": "2"}, headers=auth)
    assert response.status_code == 202, response.text
    body = await _until(stack, auth, 1, lambda b: b["status"] == "completed")
    assert body["pull_requests"] == [_pr(1, "1.1", "1.2"), _pr(2, "2")]
    assert len(remote.commits(first, "main")) == 2
    assert remote.commits(_branch(row, "2"), first)[0]["parent"] == remote.sha(first)


async def test_manual_mode_pauses_after_each_step_and_opens_no_pull_request(
    env: tuple[Stack, dict[str, str], Remote],
) -> None:
    stack, auth, remote = env
    await _create(stack, auth, pr_mode="manual")
    body = await _until(stack, auth, 1, lambda b: b["steps"]["completed"] == 1 and _paused(b))
    assert body["steps"] == {**ZERO, "total": 3, "completed": 1, "queued": 2}
    await asyncio.sleep(1.0)
    assert _row(stack).step_states["1.2"] == "queued"  # paused, not running
    response = await stack.api.post("/api/v1/runbook/1/execute", json={"step": "1.2"}, headers=auth)
    assert response.status_code == 202, response.text
    body = await _until(stack, auth, 1, lambda b: b["steps"]["completed"] == 2 and _paused(b))
    assert body["pull_requests"] == []
    row = _row(stack)
    branch = _branch(row, "1")
    assert len(remote.commits(branch, "main")) == 2  # the branch is pushed; no PR is opened
    with stack.sessions() as session:
        assert session.scalar(select(Run.id).where(Run.dialect == "x")) is None


def _paused(body: dict[str, Any]) -> bool:
    return body["steps"]["in_progress"] == 0


async def test_a_follow_up_is_planned_on_the_runbook_branch_and_commits_to_it(
    env: tuple[Stack, dict[str, str], Remote],
) -> None:
    stack, auth, remote = env
    # Step 1 writes a runbook file that exists only on the runbook's branch; the follow-up
    # names it, so it can only be planned from that branch.
    follow = (
        "## Objective\n\nMore.\n\n## Steps\n\n### 1 Shout\n\n```sh\necho HELLO >> hello.txt\n```\n"
    )
    # A longer fence holds the file's own ``` block (CommonMark).
    plan = PLAN.replace(
        "```sh\necho hello > hello.txt\n```",
        "````sh\necho hello > hello.txt\nmkdir -p runbooks && cat > runbooks/more.md <<'EOF'\n"
        + follow
        + "EOF\n````",
    )
    assert plan != PLAN
    await _create(stack, auth, prompt=plan, title="Greeting", labels=["deps", "q3"])
    body = await _until(stack, auth, 1, lambda b: b["status"] == "completed")
    assert (await _pull(stack, auth, 1))["labels"] == ["deps", "q3"]
    # The follow-up replaces the runbook's labels; the pull request gains the new one at the
    # next publish and keeps those it had.
    response = await stack.api.patch(
        "/api/v1/runbook/1",
        json={"prompt": "Follow runbooks/more.md", "labels": ["later", "deps"]},
        headers=auth,
    )
    assert response.status_code == 202, response.text
    body = await _until(
        stack,
        auth,
        1,
        lambda b: b["steps"]["total"] == 4 and _settled(b),
    )
    assert body["status"] == "completed", body
    row = _row(stack)
    branch = _branch(row, "1")
    subjects = [c["subject"] for c in remote.commits(branch, "main")]
    assert subjects[-1] == "[Runbook-1] Step 3: Shout"
    assert len(subjects) == 4
    assert remote.show(branch, "hello.txt") == "hello\nworld\nHELLO"
    assert body["pull_requests"] == [_pr(1, "1.1", "1.2", "2", "3")]
    pull = await _pull(stack, auth, 1)
    assert (pull["title"], pull["labels"]) == ("Greeting", ["deps", "q3", "later"])


async def test_stop_kills_the_running_step_and_dequeues_the_rest(
    env: tuple[Stack, dict[str, str], Remote],
) -> None:
    stack, auth, remote = env
    slow = PLAN.replace("echo world >> hello.txt", "sleep 60")
    await _create(stack, auth, prompt=slow)
    await _until(
        stack, auth, 1, lambda b: b["steps"]["in_progress"] == 1 and b["steps"]["completed"] == 1
    )
    deadline = time.monotonic() + 30
    while True:  # the step's own run is executing its command
        with stack.sessions() as session:
            running = session.scalar(select(Run).where(Run.status == "running"))
        if running is not None:
            break
        assert time.monotonic() < deadline
        await asyncio.sleep(0.1)
    started = time.monotonic()
    response = await stack.api.post("/api/v1/runbook/1/stop", headers=auth)
    assert response.status_code == 202, response.text
    body = await _until(stack, auth, 1, _settled, timeout=30)
    assert time.monotonic() - started < 20
    assert body["status"] == "failed"
    assert body["steps"] == {**ZERO, "total": 3, "completed": 1, "failed": 1, "not_started": 1}
    with stack.sessions() as session:
        assert session.get(Run, running.id).status == "killed"  # type: ignore[union-attr]
    assert len(remote.commits(_branch(_row(stack), "1"), "main")) == 1


def test_remote_helper_reads_back_what_it_wrote(tmp_path: Path) -> None:
    remote = Remote(tmp_path)
    assert remote.branches() == ["main"]
    assert remote.commits("main", "main") == []
    with pytest.raises(subprocess.CalledProcessError):
        remote.sha("nope")


async def test_the_github_forge_opens_one_draft_pr_and_marks_it_ready_at_the_end(
    tmp_path: Path, temporal: Client
) -> None:
    token = "ghp_runbookTOKEN0123456789"
    remote = Remote(tmp_path / "git")
    with fake_github(token, prefix="/api/v3") as github:
        settings = make_settings(tmp_path / "home")
        async with stack_for(settings, temporal) as stack:
            with transaction(stack.sessions) as session:
                user = upsert_user(session, "ops@example.com", name="Olga Ops", role="operator")
                _, plain = create_token(session, user)
                doc = {
                    "kind": "Repository",
                    "org": "acme",
                    "name": "web",
                    "url": remote.url,
                    "forge": "github",
                    "forgeToken": token,
                    "githubUrl": github.api_url,
                }
                save_repository(
                    session,
                    doc,
                    box=SecretBox(settings.secret_key),
                    allowed_schemes=settings.allowed_schemes,
                    user_id=None,
                )
            auth = {"Authorization": f"Bearer {plain}"}
            await _create(stack, auth, title="Greeting", labels=["deps", "q3"])
            body = await _until(stack, auth, 1, _settled)
            row = _row(stack)
            with stack.sessions() as session:
                events = " ".join(m for m in session.scalars(select(RunEvent.message)))
    assert body["status"] == "completed", body
    pulls = github.pulls[("acme", "web")]
    assert len(pulls) == 1
    pull = pulls[0]
    assert (pull["head"]["ref"], pull["base"]["ref"]) == (_branch(row, "1"), "main")
    assert pull["title"] == "Greeting" and pull["draft"] is False
    assert [label["name"] for label in pull["labels"]] == ["deps", "q3"]
    assert "Progress: 3/3 steps completed" in pull["body"]
    assert body["pull_requests"] == [
        {"number": 1, "url": pull["html_url"], "step_numbers": ["1.1", "1.2", "2"]}
    ]
    # Opened as a draft [WIP] with the first step, marked ready once every step completed.
    posts = [r for r in github.received if r.method == "POST" and r.path.endswith("/pulls")]
    assert len(posts) == 1
    assert posts[0].body["draft"] is True and posts[0].body["title"] == "[WIP] Greeting"
    labelled = [r.body for r in github.received if r.path.endswith("/issues/1/labels")]
    assert labelled == [{"labels": ["deps", "q3"]}]  # once, when the pull request opened
    assert any("markPullRequestReadyForReview" in str(r.body) for r in github.received)
    assert token not in str(body) and token not in events
