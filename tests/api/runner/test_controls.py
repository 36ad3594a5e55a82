"""Start, restart, stop and kill requests: their bodies, and the states each one accepts."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from sqlalchemy import select

from core.statuses import KILLABLE, RESTARTABLE, STOPPABLE, RunStatus, runner_run_status
from core.store.models import RunEvent
from tests.api.runner.support import ACME, Runner, job_body, message_of
from tests.e2e.test_run_control import STOP_PLAYBOOK, task_events
from tests.stack import make_repo

EXECUTION = "/jobs/{alias}/{job}/executions/{execution}"


@pytest.fixture(scope="module")
async def job(runner: Runner) -> dict[str, Any]:
    """A job of ACME whose executions are made as rows (no workflow behind them)."""
    return await runner.create_job(job_body())


def path(job: dict[str, Any], execution: str, action: str) -> str:
    """The URL of an action on an execution of `job`."""
    return f"/jobs/{ACME}/{job['id']}/executions/{execution}/{action}"


@pytest.mark.parametrize("status", list(RunStatus))
async def test_each_status_refuses_what_it_does_not_allow(
    runner: Runner, job: dict[str, Any], status: RunStatus
) -> None:
    """Stop only from PENDING, INITIALIZING, RUNNING or STOPPING; kill also from KILLING;
    restart only from FAILURE or INIT_FAILURE. Anything else is 400 naming the status."""
    execution = runner.add_run(job["id"], str(status))
    shown = runner_run_status(status)
    before = runner.counts()
    refusals = {
        "stop": (STOPPABLE, "PENDING, INITIALIZING, RUNNING or STOPPING", "stopped"),
        "kill": (KILLABLE, "PENDING, INITIALIZING, RUNNING, STOPPING or KILLING", "killed"),
        "restart": (RESTARTABLE, "FAILURE or INIT_FAILURE", "restarted"),
    }
    for action, (allowed, names, verb) in refusals.items():
        if status in allowed:
            continue
        response = await runner.request("POST", path(job, execution, action), json={})
        assert message_of(response, 400) == (
            f"execution {execution} is {shown}; only {names} executions can be {verb}"
        )
    assert runner.counts() == before
    assert (await runner.execution(job["id"], execution))["status"] == shown


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"expiryDuration": -1}, "expiryDuration: must be between 0 and 86400 seconds"),
        ({"expiryDuration": 86401}, "expiryDuration: must be between 0 and 86400 seconds"),
        ({"expiryDuration": "5"}, "expiryDuration: must be a number of seconds"),
        ({"expiryDuration": True}, "expiryDuration: must be a number of seconds"),
        ([5], "body: must be an object"),
    ],
)
async def test_bad_expiry_is_400(
    runner: Runner, job: dict[str, Any], body: Any, message: str
) -> None:
    """expiryDuration must be a number of seconds from 0 to a day."""
    execution = runner.add_run(job["id"], str(RunStatus.RUNNING))
    before = runner.counts()
    for action in ("stop", "kill"):
        response = await runner.request("POST", path(job, execution, action), json=body)
        assert message_of(response, 400) == message
    assert runner.counts() == before


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"hosts": [{"sshPrivateKey": "a2V5"}]}, "hosts[0].id: is required"),
        ({"hosts": [{"id": "a"}, {"id": "a"}]}, "hosts[1].id: host 'a' is listed twice"),
        ({"hosts": "web1"}, "hosts: must be an array"),
        (
            {"hosts": [{"id": "a", "sshPrivateKey": "***"}]},
            "hosts[0].sshPrivateKey: is not valid base64",
        ),
        ({"sshPrivateKey": "%"}, "sshPrivateKey: is not valid base64"),
        (
            {"hosts": [{"id": "a", "hostVars": {"k": {"secretRef": "x"}}}]},
            'hosts[0].hostVars.k: objects of the form {"secretRef": ...} are not accepted',
        ),
    ],
)
async def test_bad_start_or_restart_body_is_400(
    runner: Runner, job: dict[str, Any], body: Any, message: str
) -> None:
    """Start and restart bodies are checked field by field; nothing is stored when refused."""
    failed = runner.add_run(job["id"], str(RunStatus.FAILED), failed_hosts=["localhost"])
    before = runner.counts()
    start = await runner.request("POST", f"/jobs/{ACME}/{job['id']}/start", json=body)
    assert message_of(start, 400) == message
    restart = await runner.request("POST", path(job, failed, "restart"), json=body)
    assert message_of(restart, 400) == message
    assert runner.counts() == before


# ---- against running executions --------------------------------------------------------------


@pytest.fixture(scope="module")
def slow_repo(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A repository whose playbook has a two-second task, then another."""
    root = tmp_path_factory.mktemp("slow-repo")
    return make_repo(root / "repo", {"site.yml": STOP_PLAYBOOK})


async def wait_for_task(runner: Runner, execution_id: str, task: str) -> None:
    """Until the execution has started the named task."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with runner.stack.sessions() as session:
            names = session.scalars(
                select(RunEvent.task).where(
                    RunEvent.run_id == execution_id,
                    RunEvent.event_type == "playbook_on_task_start",
                )
            ).all()
        if task in names:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"task {task!r} never started in {execution_id}")


@pytest.mark.slow
async def test_stop_of_a_running_execution(runner: Runner, slow_repo: str) -> None:
    """Stop answers STOPPING; the task in progress finishes, the next never starts, and the
    execution ends STOPPED."""
    job = await runner.create_job(job_body(slow_repo))
    execution = await runner.start(job["id"])
    await wait_for_task(runner, execution["id"], "slow")
    response = await runner.request(
        "POST", path(job, execution["id"], "stop"), json={"expiryDuration": 30}
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "STOPPING"
    assert response.json()["execution_id"] == execution["id"]
    done = await runner.wait(
        job["id"], execution["id"], {"STOPPED", "KILLED", "SUCCESS", "FAILURE"}
    )
    assert done["status"] == "STOPPED", done
    tasks = task_events(runner.stack.sessions, execution["id"])
    assert ("runner_on_ok", "slow") in tasks and ("runner_on_start", "next") not in tasks
    again = await runner.request("POST", path(job, execution["id"], "kill"), json={})
    assert message_of(again, 400).startswith(f"execution {execution['id']} is STOPPED")


@pytest.mark.slow
async def test_stop_of_a_pending_execution(runner: Runner, slow_repo: str) -> None:
    """An execution stopped right after its start answers STOPPING and never runs its play."""
    job = await runner.create_job(job_body(slow_repo))
    execution = await runner.start(job["id"])
    response = await runner.request("POST", path(job, execution["id"], "stop"), json={})
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "STOPPING"
    done = await runner.wait(
        job["id"], execution["id"], {"STOPPED", "KILLED", "SUCCESS", "FAILURE"}
    )
    assert done["status"] == "STOPPED", done
    assert ("runner_on_start", "next") not in task_events(runner.stack.sessions, execution["id"])


@pytest.mark.slow
async def test_kill_of_a_running_execution(runner: Runner, slow_repo: str) -> None:
    """Kill answers KILLING and the execution ends KILLED without finishing its task."""
    job = await runner.create_job(job_body(slow_repo))
    execution = await runner.start(job["id"])
    await wait_for_task(runner, execution["id"], "slow")
    response = await runner.request("POST", path(job, execution["id"], "kill"))
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "KILLING"
    done = await runner.wait(
        job["id"], execution["id"], {"STOPPED", "KILLED", "SUCCESS", "FAILURE"}
    )
    assert done["status"] == "KILLED", done
    assert ("runner_on_ok", "slow") not in task_events(runner.stack.sessions, execution["id"])
