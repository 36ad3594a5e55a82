"""Approval gates in the engine: approval actions in the middle of a run, the start gate's
message and on_timeout, gate records, and deciding the open gate with a comment."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from sqlalchemy import select

from api.launch import LaunchRequest, launch
from api.runs import GateDecision, GateOutcome, decide_gate
from core.statuses import RunStatus
from core.store.gates import GateRow, gate_by_id, gates_of, open_gates
from core.store.models import Approval
from core.store.runs import actions_of
from tests.stack import Stack, add_definition
from workflows.contracts import CONTROL_UPDATE, ActionSpec, Control, GateSpec, RunState
from workflows.gate import ADMIN_KEY

ALICE, BOB = "alice", "bob"  # user ids: their approver keys are person:<id>


def echo(name: str, condition: str = "success()") -> ActionSpec:
    return ActionSpec(name=name, kind="exec", spec={"script": f"echo {name}"}, condition=condition)


def approval(name: str = "confirm", **spec: Any) -> ActionSpec:
    body = {"message": f"go on past {name}?", "approvers": [f"person:{ALICE}"], **spec}
    return ActionSpec(name=name, kind="approval", spec=body)


async def start(stack: Stack, actions: list[ActionSpec], gate: GateSpec | None = None) -> str:
    """Launch a run of `actions` through the engine's launch service; its id."""
    request = LaunchRequest(
        definition_id=add_definition(stack, {"actions": []}),
        dialect="test",
        title="gates",
        creator=None,
        actions=actions,
        gate=gate,
    )
    run = await launch(stack.app.state.services, request)
    return run.id


async def decide(
    stack: Stack, run_id: str, user: str, *, approve: bool = True, **kwargs: Any
) -> GateDecision:
    return await decide_gate(
        stack.sessions, stack.temporal, run_id, user_id=user, approve=approve, **kwargs
    )


async def open_gate(stack: Stack, run_id: str, idx: int) -> GateRow:
    """The run's gate `idx` once it is open (waiting for a decision)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with stack.sessions() as session:
            found = [g for g in open_gates(session, [run_id]) if g.idx == idx]
        if found:
            return found[0]
        await asyncio.sleep(0.05)
    raise AssertionError(f"gate {idx} of run {run_id} never opened")


def gates(stack: Stack, run_id: str) -> list[GateRow]:
    with stack.sessions() as session:
        return gates_of(session, run_id)


def actions(stack: Stack, run_id: str) -> list[tuple[str, str, str | None]]:
    with stack.sessions() as session:
        return [(a.name, a.status, a.error) for a in actions_of(session, run_id)]


def decisions(stack: Stack, run_id: str) -> list[tuple[int, str, str, bool, str]]:
    with stack.sessions() as session:
        rows = session.scalars(
            select(Approval)
            .where(Approval.run_id == run_id)
            .order_by(Approval.gate_idx, Approval.created_at)
        )
        return [(a.gate_idx, a.approver_key, a.decided_by, a.approved, a.comment) for a in rows]


def stdout(stack: Stack, run_id: str) -> list[str]:
    with stack.sessions() as session:
        return [(a.result or {}).get("stdout", "").strip() for a in actions_of(session, run_id)]


async def test_approval_action_pauses_the_run_until_approved(stack: Stack) -> None:
    """exec, approval, exec: the run waits pending_approval after the first exec; once
    approved (with a comment) the second runs, and the gate row says who approved and why."""
    run_id = await start(stack, [echo("first"), approval(), echo("second")])
    await stack.wait_status(run_id, {RunStatus.PENDING_APPROVAL})
    assert actions(stack, run_id) == [("first", "completed", None), ("confirm", "running", None)]
    with stack.sessions() as session:
        (waiting,) = open_gates(session)
        assert open_gates(session, ["another-run"]) == []
    assert (waiting.run_id, waiting.idx, waiting.status) == (run_id, 1, "pending")
    assert (waiting.message, waiting.approvers) == ("go on past confirm?", [f"person:{ALICE}"])
    assert (waiting.rule, waiting.on_timeout, waiting.timeout_at) == ("any", "reject", None)

    refused = await decide(stack, run_id, BOB, comment="me too")
    assert refused == GateDecision(GateOutcome.NOT_APPROVER, waiting.id, 1)
    admin = await decide(stack, run_id, BOB, admin=True)  # the gate does not let admins decide
    assert admin.outcome == GateOutcome.NOT_APPROVER
    assert (await stack.wait_status(run_id, {RunStatus.PENDING_APPROVAL})).status
    decided = await decide(stack, run_id, ALICE, comment="window is open")
    assert decided == GateDecision(GateOutcome.APPROVED, waiting.id, 1, f"person:{ALICE}")

    row = await stack.wait_status(run_id)
    assert (row.status, row.error) == (RunStatus.SUCCEEDED, None)
    assert actions(stack, run_id) == [
        ("first", "completed", None),
        ("confirm", "completed", None),
        ("second", "completed", None),
    ]
    assert stdout(stack, run_id) == ["first", "", "second"]
    with stack.sessions() as session:
        gate = gate_by_id(session, waiting.id)
        assert gate is not None and open_gates(session) == []
    assert (gate.status, gate.decided_by, gate.comment) == ("approved", ALICE, "window is open")
    assert gate.decided_at is not None and gate.decided_at >= gate.opened_at
    assert decisions(stack, run_id) == [(1, f"person:{ALICE}", ALICE, True, "window is open")]
    assert (await decide(stack, run_id, ALICE)).outcome == GateOutcome.NOT_PENDING


async def test_rejected_approval_skips_the_rest_and_ends_rejected(stack: Stack) -> None:
    """A rejection fails the approval action, skips every later action (even always()), and
    ends the run rejected; the decision and its comment are recorded."""
    run_id = await start(stack, [echo("first"), approval(), echo("second", "always()")])
    await stack.wait_status(run_id, {RunStatus.PENDING_APPROVAL})
    decided = await decide(stack, run_id, ALICE, approve=False, comment="not today")
    assert decided.outcome == GateOutcome.REJECTED
    row = await stack.wait_status(run_id)
    assert (row.status, row.error) == (RunStatus.REJECTED, "approval rejected")
    assert actions(stack, run_id) == [
        ("first", "completed", None),
        ("confirm", "failed", "approval rejected"),
        ("second", "skipped", None),
    ]
    (gate,) = gates(stack, run_id)
    assert (gate.status, gate.decided_by, gate.comment) == ("rejected", ALICE, "not today")
    assert decisions(stack, run_id) == [(1, f"person:{ALICE}", ALICE, False, "not today")]


async def test_two_approvals_in_one_run_each_decided_by_the_same_person(stack: Stack) -> None:
    """Each approval action is its own gate: one person approves both, a decision meant for
    the first gate is not carried over to the second, and admins decide where allowed."""
    second_gate = approval("again", approvers=[f"person:{ALICE}", ADMIN_KEY], rule="all")
    run_id = await start(stack, [approval("once"), echo("middle"), second_gate, echo("last")])
    await stack.wait_status(run_id, {RunStatus.PENDING_APPROVAL})
    first = await open_gate(stack, run_id, 0)
    assert (await decide(stack, run_id, ALICE, comment="one")).outcome == GateOutcome.APPROVED

    second = await open_gate(stack, run_id, 2)
    assert (second.idx, second.rule, second.approvers) == (2, "all", [f"person:{ALICE}", ADMIN_KEY])
    stale = await decide(stack, run_id, ALICE, gate_id=first.id)
    assert stale.outcome == GateOutcome.NOT_PENDING
    # All of the named approvers must approve; an admin may decide too but is not waited for.
    assert (await decide(stack, run_id, BOB, admin=True)).outcome == GateOutcome.WAITING
    decided = await decide(stack, run_id, ALICE, comment="two", gate_id=second.id)
    assert decided.outcome == GateOutcome.APPROVED
    row = await stack.wait_status(run_id)
    assert row.status == RunStatus.SUCCEEDED
    assert [a[1] for a in actions(stack, run_id)] == ["completed"] * 4
    assert [(g.idx, g.status, g.comment) for g in gates(stack, run_id)] == [
        (0, "approved", "one"),
        (2, "approved", "two"),
    ]
    assert decisions(stack, run_id) == [
        (0, f"person:{ALICE}", ALICE, True, "one"),
        (2, ADMIN_KEY, BOB, True, ""),
        (2, f"person:{ALICE}", ALICE, True, "two"),
    ]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("on_timeout", "status", "error", "second"),
    [
        ("approve", RunStatus.SUCCEEDED, None, "completed"),
        ("reject", RunStatus.REJECTED, "approval timed out", "skipped"),
    ],
)
async def test_approval_action_timeout(
    stack: Stack, on_timeout: str, status: RunStatus, error: str | None, second: str
) -> None:
    """Nobody deciding in time: on_timeout approve goes on, reject ends the run rejected."""
    gate = approval(timeout_seconds=1, on_timeout=on_timeout)
    run_id = await start(stack, [echo("first"), gate, echo("second")])
    row = await stack.wait_status(run_id, timeout=30)
    assert (row.status, row.error) == (status, error)
    assert [a[1] for a in actions(stack, run_id)] == [
        "completed",
        "completed" if on_timeout == "approve" else "failed",
        second,
    ]
    (record,) = gates(stack, run_id)
    assert (record.status, record.on_timeout, record.decided_by) == ("timed_out", on_timeout, None)
    assert record.timeout_at is not None and record.decided_at is not None
    assert record.decided_at >= record.timeout_at
    assert decisions(stack, run_id) == []


@pytest.mark.slow
@pytest.mark.parametrize(
    ("on_timeout", "status", "error"),
    [
        ("approve", RunStatus.SUCCEEDED, None),
        ("reject", RunStatus.REJECTED, "approval timed out"),
        ("expire", RunStatus.EXPIRED, "approval expired"),
    ],
)
async def test_start_gate_timeout(
    stack: Stack, on_timeout: str, status: RunStatus, error: str | None
) -> None:
    """The start gate's on_timeout: approve runs the actions, reject ends rejected, expire
    (the default) ends expired as before; the gate row says it timed out."""
    gate = GateSpec(
        rule="any",
        people=[f"person:{ALICE}"],
        teams=[],
        timeout_seconds=1,
        message="run it?",
        on_timeout=on_timeout,
    )
    run_id = await start(stack, [echo("only")], gate)
    row = await stack.wait_status(run_id, timeout=30)
    assert (row.status, row.error) == (status, error)
    ran = "completed" if on_timeout == "approve" else None
    assert [a[1] for a in actions(stack, run_id)] == ([ran] if ran else [])
    (record,) = gates(stack, run_id)
    assert (record.idx, record.message, record.status) == (-1, "run it?", "timed_out")
    assert record.on_timeout == on_timeout


async def test_start_gate_is_recorded_and_decided_with_comments(stack: Stack) -> None:
    """The start gate (rule all) is a gate row too: each decision is recorded with its
    comment, and the row closes approved by whoever completed the rule."""
    gate = GateSpec(
        rule="all", people=[f"person:{ALICE}", f"person:{BOB}"], teams=[], message="deploy?"
    )
    run_id = await start(stack, [echo("only")], gate)
    await stack.wait_status(run_id, {RunStatus.PENDING_APPROVAL})
    first = await decide(stack, run_id, BOB, comment="fine by me")
    assert (first.outcome, first.gate_idx) == (GateOutcome.WAITING, -1)
    assert (await decide(stack, run_id, ALICE, comment="go")).outcome == GateOutcome.APPROVED
    assert (await stack.wait_status(run_id)).status == RunStatus.SUCCEEDED
    (record,) = gates(stack, run_id)
    assert (record.idx, record.status, record.decided_by, record.comment) == (
        -1,
        "approved",
        ALICE,
        "go",
    )
    assert record.approvers == [f"person:{ALICE}", f"person:{BOB}"]
    assert sorted(decisions(stack, run_id)) == [
        (-1, f"person:{ALICE}", ALICE, True, "go"),
        (-1, f"person:{BOB}", BOB, True, "fine by me"),
    ]


async def control(stack: Stack, run_id: str, action: str) -> None:
    handle = stack.temporal.get_workflow_handle(run_id)
    await handle.execute_update(CONTROL_UPDATE, Control(action=action), result_type=RunState)


async def test_stop_while_waiting_at_an_approval_action(stack: Stack) -> None:
    """A stop while an approval action waits ends the run stopped: the gate is cancelled,
    the action failed with the reason, the rest skipped, and deciding is no longer possible."""
    run_id = await start(stack, [echo("first"), approval(), echo("second", "always()")])
    await stack.wait_status(run_id, {RunStatus.PENDING_APPROVAL})
    await control(stack, run_id, "stop")
    row = await stack.wait_status(run_id)
    assert row.status == RunStatus.STOPPED
    assert actions(stack, run_id) == [
        ("first", "completed", None),
        ("confirm", "failed", "run stopped while waiting for approval"),
        ("second", "skipped", None),
    ]
    (record,) = gates(stack, run_id)
    assert (record.status, record.decided_by) == ("cancelled", None)
    assert (await decide(stack, run_id, ALICE)).outcome == GateOutcome.NOT_PENDING
    assert decisions(stack, run_id) == []


async def test_kill_while_waiting_at_the_start_gate(stack: Stack) -> None:
    """A kill at the start gate ends the run killed with the gate cancelled; nothing ran."""
    gate = GateSpec(rule="any", people=[f"person:{ALICE}"], teams=[])
    run_id = await start(stack, [echo("only")], gate)
    await stack.wait_status(run_id, {RunStatus.PENDING_APPROVAL})
    await control(stack, run_id, "kill")
    assert (await stack.wait_status(run_id)).status == RunStatus.KILLED
    assert actions(stack, run_id) == []
    assert [g.status for g in gates(stack, run_id)] == ["cancelled"]


async def test_bad_approval_spec_fails_the_run_naming_the_field(stack: Stack) -> None:
    """An approval action the engine cannot read fails the run (nothing after it runs)."""
    bad = ActionSpec(name="confirm", kind="approval", spec={"approvers": []})
    run_id = await start(stack, [echo("first"), bad, echo("second", "always()")])
    row = await stack.wait_status(run_id)
    assert row.status == RunStatus.FAILED
    assert row.error is not None and "spec.approvers" in row.error
    assert [a[1] for a in actions(stack, run_id)] == ["completed", "failed", "skipped"]
    assert gates(stack, run_id) == []


async def test_runs_without_a_gate_are_not_pending(stack: Stack) -> None:
    """Deciding a run that has no gate open says so and records nothing."""
    run_id = await start(stack, [echo("only")])
    await stack.wait_status(run_id)
    assert await decide(stack, run_id, ALICE) == GateDecision(GateOutcome.NOT_PENDING)
    assert decisions(stack, run_id) == []


async def test_deciding_a_run_whose_workflow_is_gone(stack: Stack) -> None:
    """A run terminated outside the engine keeps its gate row pending, yet deciding it says
    not pending (no 503, nothing recorded)."""
    gate = GateSpec(rule="any", people=[f"person:{ALICE}"], teams=[])
    run_id = await start(stack, [echo("only")], gate)
    await open_gate(stack, run_id, -1)
    await stack.temporal.get_workflow_handle(run_id).terminate("gone")
    decided = await decide(stack, run_id, ALICE)
    assert decided.outcome == GateOutcome.NOT_PENDING
    assert decisions(stack, run_id) == []
