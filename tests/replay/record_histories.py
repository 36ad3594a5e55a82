"""Record RunWorkflow histories for the replay test: `python -m tests.replay.record_histories`.

Run it when a released change of RunWorkflow is deliberate and compatible, to add histories of
the new shape; never to make a failing replay pass. Name the scenarios to record (default:
all of them), so the histories of older shapes stay as they were recorded. Payloads are
recorded unencrypted.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from api.launch import LaunchRequest, launch
from api.runs import GateOutcome, decide_gate
from core.settings import generate_key
from core.statuses import RunStatus
from core.store.gates import GateRow, open_gates
from tests.stack import Stack, add_definition, basic, engine_run, make_settings, stack_for
from workflows.contracts import (
    RUN_WORKFLOW,
    SEARCH_ATTRIBUTES,
    ActionSpec,
    Admission,
    GateSpec,
    Registration,
)

HERE = Path(__file__).parent / "histories"
SCENARIOS = {
    "filters_and_always": """
apiVersion: mission-control.flanksource.com/v1
kind: Playbook
metadata: {name: filters}
spec:
  parameters: [{name: who, default: world}]
  actions:
    - {name: greet, exec: {script: "echo hello {{.params.who}}"}}
    - {name: broken, exec: {script: "exit 3"}}
    - {name: skipped, exec: {script: "echo never"}}
    - {name: cleanup, if: always(), exec: {script: "echo cleanup"}, delay: 1s}
""",
    "approved_gate": """
kind: Person
email: approver@example.com
password: pw
---
apiVersion: mission-control.flanksource.com/v1
kind: Playbook
metadata: {name: gated}
spec:
  approval: {type: any, approvers: {people: [approver@example.com]}}
  actions:
    - name: go
      exec: {script: "echo approved"}
      artifacts: [{path: /dev/stdout}]
""",
}


async def _decide_gate(stack: Stack, run_id: str, idx: int, approve: bool) -> None:
    """Decide the run's gate `idx` once it is open."""
    deadline = time.monotonic() + 30
    while not any(g.idx == idx for g in _open(stack, run_id)):
        assert time.monotonic() < deadline, f"gate {idx} never opened"
        await asyncio.sleep(0.05)
    decided = await decide_gate(
        stack.sessions, stack.temporal, run_id, user_id="u1", approve=approve, comment="why"
    )
    assert decided.outcome == (GateOutcome.APPROVED if approve else GateOutcome.REJECTED)


def _open(stack: Stack, run_id: str) -> list[GateRow]:
    with stack.sessions() as session:
        return list(open_gates(session, [run_id]))


async def approval_actions(stack: Stack) -> str:
    """Two approval actions around an exec: the first approved, the second rejected."""
    gate = {"message": "go on?", "approvers": ["person:u1"]}
    actions = [
        ActionSpec(name="first", kind="approval", spec=gate),
        ActionSpec(name="work", kind="exec", spec={"script": "echo work"}),
        ActionSpec(name="second", kind="approval", spec=gate),
        ActionSpec(name="never", kind="exec", spec={"script": "echo never"}),
    ]
    request = LaunchRequest(
        definition_id=add_definition(stack, {"actions": []}),
        dialect="test",
        title="approval actions",
        creator=None,
        actions=actions,
    )
    run = await launch(stack.app.state.services, request)
    await _decide_gate(stack, run.id, 0, approve=True)
    await _decide_gate(stack, run.id, 2, approve=False)
    return run.id


async def _fire(stack: Stack, autonomy: str) -> str:
    """Start `Run` as a schedule's firing does: no run id, a registration with an admission."""
    spec = {"actions": [{"name": "tick", "exec": {"script": "echo tick"}}]}
    gate = GateSpec(rule="any", people=["person:u1"], teams=[], message="Run tick?")
    admission = Admission(autonomy=autonomy, subjects=["tick"], gate=gate)
    _, template = engine_run(
        add_definition(stack, spec),
        spec,
        run_id="",
        registration=Registration(created_by="u1", admission=admission),
    )
    run_id = f"s-{uuid.uuid4().hex[:12]}-2030-01-01T00:00:00Z"
    await stack.temporal.start_workflow(
        RUN_WORKFLOW, template, id=run_id, task_queue=stack.settings.task_queue
    )
    return run_id


async def held_on_firing(stack: Stack) -> str:
    """A firing admitted as `approve`: it waits at the start gate, is approved, runs."""
    run_id = await _fire(stack, "approve")
    await _decide_gate(stack, run_id, -1, approve=True)
    return run_id


async def blocked_on_firing(stack: Stack) -> str:
    """A firing admitted as `disabled`: it ends skipped without executing anything."""
    return await _fire(stack, "disabled")


# Scenarios launched through the engine's own service (no dialect has their shape).
ENGINE_SCENARIOS: dict[str, Callable[[Stack], Awaitable[str]]] = {
    "approval_actions": approval_actions,
    "held_on_firing": held_on_firing,
    "blocked_on_firing": blocked_on_firing,
}


async def record(names: list[str]) -> None:
    binary = Path(sys.executable).parent / "temporal"
    extra = [arg for name in SEARCH_ATTRIBUTES for arg in ("--search-attribute", f"{name}=Keyword")]
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(binary), dev_server_extra_args=extra
    )
    wanted = set(names or [*SCENARIOS, *ENGINE_SCENARIOS])
    try:
        for name, scenario in ENGINE_SCENARIOS.items():
            if name not in wanted:
                continue
            with tempfile.TemporaryDirectory() as home:
                settings = make_settings(Path(home), secret_key=generate_key())
                async with stack_for(settings, env.client) as stack:
                    run_id = await scenario(stack)
                    await stack.wait_status(run_id)
                    history = await env.client.get_workflow_handle(run_id).fetch_history()
                    (HERE / f"{name}.json").write_text(history.to_json())
                    print(f"recorded {name}")
        for name, docs in SCENARIOS.items():
            if name not in wanted:
                continue
            with tempfile.TemporaryDirectory() as home:
                settings = make_settings(Path(home), secret_key=generate_key())
                async with stack_for(settings, env.client) as stack:
                    items = await stack.apply(docs)
                    playbook_id = items[-1]["id"]
                    run_id = await stack.run({"id": playbook_id})
                    if name == "approved_gate":
                        await stack.wait_status(run_id, {RunStatus.PENDING_APPROVAL})
                        response = await stack.api.post(
                            f"/playbook/run/approve/{playbook_id}/{run_id}",
                            headers=basic("approver@example.com", "pw"),
                        )
                        assert response.status_code == 200, response.text
                    await stack.wait_status(run_id)
                    history = await env.client.get_workflow_handle(run_id).fetch_history()
                    (HERE / f"{name}.json").write_text(history.to_json())
                    print(f"recorded {name}")
    finally:
        await env.shutdown()


if __name__ == "__main__":
    asyncio.run(record(sys.argv[1:]))
