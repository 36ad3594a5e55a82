"""Stop, kill, TTL and restart of a run, driven through the engine's own interfaces."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import WorkflowFailureError, WorkflowUpdateFailedError
from temporalio.common import WorkflowIDReusePolicy
from temporalio.service import RPCError

from api.runs import start_run
from core.statuses import RunStatus
from core.store.models import RunEvent
from tests.stack import Stack, add_definition, engine_run, make_repo
from workflows.contracts import CONTROL_UPDATE, Control, RunInput, RunState
from workflows.run import RunWorkflow

pytestmark = pytest.mark.slow

STOP_PLAYBOOK = """
- hosts: all
  gather_facts: false
  tasks:
    - name: slow
      shell: "sleep 2"
    - name: next
      shell: "true"
"""


def task_events(sessions: sessionmaker[Session], run_id: str) -> set[tuple[str, str | None]]:
    """(event type, task) of every event of the run: what the play did, as stored."""
    with sessions() as session:
        rows = session.execute(
            select(RunEvent.event_type, RunEvent.task).where(RunEvent.run_id == run_id)
        ).all()
    return {(event_type, task) for event_type, task in rows}


async def wait_for_event(stack: Stack, run_id: str, event_type: str, text: str = "") -> None:
    """Until the run has an event of this type (whose message contains `text`)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with stack.sessions() as session:
            found = session.scalars(
                select(RunEvent.message).where(
                    RunEvent.run_id == run_id, RunEvent.event_type == event_type
                )
            ).all()
        if any(text in message for message in found):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"no {event_type} event {text!r} in run {run_id}")


async def control(stack: Stack, run_id: str, action: str, expiry: float = 0.0) -> RunState:
    handle = stack.temporal.get_workflow_handle(run_id)
    state: RunState = await handle.execute_update(
        CONTROL_UPDATE, Control(action=action, expiry_seconds=expiry), result_type=RunState
    )
    return state


async def test_stop_lets_the_current_task_finish(stack: Stack, tmp_path: Path) -> None:
    """A stop ends an ansible run after the task in progress; the next task never runs."""
    url = make_repo(tmp_path / "repo", {"site.yml": STOP_PLAYBOOK})
    items = await stack.apply(f"""
apiVersion: mission-control.flanksource.com/v1
kind: Playbook
metadata: {{name: stoppable}}
spec:
  actions:
    - name: play
      ansible:
        checkout: {{url: "{url}"}}
        playbook: site.yml
    - name: after
      exec: {{script: "echo after"}}
""")
    run_id = await stack.run({"id": items[0]["id"]})
    await wait_for_event(stack, run_id, "runner_on_start")  # the slow task runs on the host
    state = await control(stack, run_id, "stop")
    assert state.status == RunStatus.STOPPING
    assert (await stack.wait_status(run_id, {RunStatus.STOPPING}, timeout=2)).status == "stopping"
    row = await stack.wait_status(run_id, timeout=30)
    assert row.status == RunStatus.STOPPED
    assert (await stack.get_run(run_id))["status"] == "cancelled"
    tasks = task_events(stack.sessions, run_id)
    assert ("runner_on_ok", "slow") in tasks  # the task in progress ran to its end
    assert ("runner_on_start", "next") not in tasks  # the next one never started
    actions = (await stack.get_run(run_id))["actions"]
    assert [a["status"] for a in actions] == ["failed", "skipped"]
    assert actions[0]["error"].startswith("playbook stopped")


def processes_running(token: str) -> set[int]:
    """Host pids of live processes whose command line contains `token`."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if token.encode() in (entry / "cmdline").read_bytes():
                found.add(int(entry.name))
        except OSError:
            continue
    return found


def parent_of(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


async def test_kill_ends_the_whole_process_tree_at_once(stack: Stack) -> None:
    """A kill ends a script and its grandchildren within a second or two; none survive.

    The script runs in its own PID namespace, so the test finds its processes from the host by
    a command line of their own: two `sleep`s (one a grandchild) and the shells above them.
    """
    token = f"299.{uuid.uuid4().int % 10**9:09d}"
    items = await stack.apply(f"""
apiVersion: mission-control.flanksource.com/v1
kind: Playbook
metadata: {{name: killable}}
spec:
  actions:
    - name: forks
      exec:
        script: |
          (sleep {token} & wait) &
          echo started
          sleep {token}
""")
    run_id = await stack.run({"id": items[0]["id"]})
    await wait_for_event(stack, run_id, "stdout", "started")
    deadline = time.monotonic() + 10
    while len(sleeps := processes_running(token)) < 2:
        assert time.monotonic() < deadline, "the script's sleeps did not start"
        await asyncio.sleep(0.05)
    tree = sleeps | {parent_of(pid) for pid in sleeps}
    killed_at = time.monotonic()
    await control(stack, run_id, "kill")
    row = await stack.wait_status(run_id, timeout=20)
    assert row.status == RunStatus.KILLED
    assert time.monotonic() - killed_at < 5
    for pid in tree:
        assert not Path(f"/proc/{pid}").exists() or _is_zombie(pid), f"process {pid} survived"


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True


async def test_stop_escalates_to_kill_after_expiry(stack: Stack) -> None:
    """A stop that is not honoured within expiryDuration becomes a kill."""
    items = await stack.apply("""
apiVersion: mission-control.flanksource.com/v1
kind: Playbook
metadata: {name: stubborn}
spec:
  actions:
    - name: ignore-term
      exec: {script: "trap '' TERM; echo started; for i in $(seq 300); do sleep 0.2; done"}
""")
    run_id = await stack.run({"id": items[0]["id"]})
    await wait_for_event(stack, run_id, "stdout", "started")
    await control(stack, run_id, "stop", expiry=1)
    row = await stack.wait_status(run_id, timeout=20)
    assert row.status == RunStatus.KILLED


async def test_stop_and_kill_refused_once_finished(stack: Stack) -> None:
    """A finished run can be neither stopped nor killed."""
    items = await stack.apply("""
apiVersion: mission-control.flanksource.com/v1
kind: Playbook
metadata: {name: quick}
spec:
  actions: [{name: a, exec: {script: "true"}}]
""")
    run_id = await stack.run({"id": items[0]["id"]})
    await stack.wait_status(run_id)
    handle = stack.temporal.get_workflow_handle(run_id)
    with pytest.raises((WorkflowUpdateFailedError, RPCError)):
        await handle.execute_update(CONTROL_UPDATE, Control(action="kill"), result_type=RunState)


async def test_ttl_stops_a_long_run_gracefully(stack: Stack) -> None:
    """A run past its TTL is stopped and ends timed_out."""
    spec = {"actions": [{"name": "long", "exec": {"script": "echo started; sleep 60"}}]}
    definition_id = add_definition(stack, spec)
    run, run_input = engine_run(definition_id, spec, ttl_seconds=1.0)
    await start_run(stack.sessions, stack.temporal, stack.settings.task_queue, run, run_input, [])
    row = await stack.wait_status(run.id, timeout=20)
    assert row.status == RunStatus.TIMED_OUT
    assert row.error == "execution TTL exceeded"


async def test_failed_run_restarts_as_a_new_attempt(stack: Stack) -> None:
    """A failed run ends its workflow Failed; a restart reuses its id and adds a timer."""
    # The second attempt is told (through its input) to pass: a sandboxed script keeps no
    # file from one attempt to the next.
    script = 'if [ "$PARAM_ATTEMPT" = 2 ]; then echo second; else exit 3; fi'
    spec = {"actions": [{"name": "flaky", "exec": {"script": script}}]}
    definition_id = add_definition(stack, spec)
    run, first = engine_run(definition_id, spec, fail_workflow=True)
    await start_run(stack.sessions, stack.temporal, stack.settings.task_queue, run, first, [])
    with pytest.raises(WorkflowFailureError):
        await stack.temporal.get_workflow_handle(run.id).result()
    row = await stack.wait_status(run.id)
    assert row.status == RunStatus.FAILED and len(row.timers) == 1
    second = RunInput(
        **{**first.__dict__, "attempt": 2, "template_env": {"params": {"attempt": "2"}}}
    )
    await stack.temporal.start_workflow(
        RunWorkflow.run,
        second,
        id=run.id,
        task_queue=stack.settings.task_queue,
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
    )
    assert await stack.temporal.get_workflow_handle(run.id).result() == "succeeded"
    row = await stack.wait_status(run.id, {RunStatus.SUCCEEDED})
    assert row.attempt == 2
    assert len(row.timers) == 2 and all(t["end"] for t in row.timers)
    assert row.timers[0]["end"] <= row.timers[1]["start"]
