"""Starting runs: shared by every dialect (row first, then the workflow, undone on failure)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import delete, update
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowUpdateFailedError
from temporalio.common import (
    SearchAttributeKey,
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from api.db import read, write
from api.errors import ApiError, bad_request
from core.secrets import refs_in
from core.store.gates import open_gate_of, record_gate
from core.store.models import Approval, GateRow, Run, Secret
from core.store.runs import record_approval
from workflows.contracts import (
    DECIDE_UPDATE,
    SA_ACCOUNT,
    SA_DEFINITION_ID,
    SA_DIALECT,
    SA_RESOURCE_ID,
    SA_STATUS,
    Decision,
    GateRecord,
    GateState,
    RunInput,
)
from workflows.gate import decision_key, record_fields
from workflows.run import RunWorkflow

log = logging.getLogger(__name__)


def search_attributes(run: RunInput, status: str) -> TypedSearchAttributes:
    """What a user can search a run by in the Temporal UI."""
    pairs = [
        (SA_DEFINITION_ID, run.definition_id),
        (SA_DIALECT, run.dialect),
        (SA_STATUS, status),
        (SA_RESOURCE_ID, run.resource_id),
        (SA_ACCOUNT, run.account),
    ]
    return TypedSearchAttributes(
        [SearchAttributePair(SearchAttributeKey.for_keyword(k), v) for k, v in pairs if v]
    )


async def start_run(
    sessions: sessionmaker[Session],
    temporal: Client,
    task_queue: str,
    run: Run,
    run_input: RunInput,
    approvals: list[Approval],
    gate: GateRecord | None = None,
) -> None:
    """Store the run, then start its workflow (the run id is the workflow id).

    The row is committed first so the workflow's records always find it; if the workflow
    cannot be started, the row is removed again and the client gets 503. A run that starts
    waiting at its start gate has the `gate` row from the start too, so the gate can be
    decided as soon as the run shows pending approval.
    """

    def insert(session: Session) -> None:
        session.add(run)
        session.flush()
        session.add_all(approvals)
        if gate is not None:
            record_gate(session, run.id, gate.id, **record_fields(gate))

    def remove(session: Session) -> None:
        session.execute(delete(GateRow).where(GateRow.run_id == run.id))
        session.execute(delete(Approval).where(Approval.run_id == run.id))
        session.execute(delete(Run).where(Run.id == run.id))
        # Secret parameters were stored for this run alone: a run that never started keeps none.
        refs = refs_in(run.parameters or {})
        if refs:
            session.execute(delete(Secret).where(Secret.id.in_(refs)))

    await write(sessions, insert)
    try:
        await temporal.start_workflow(
            RunWorkflow.run,
            run_input,
            id=run.id,
            task_queue=task_queue,
            search_attributes=search_attributes(run_input, run.status),
            memo={"title": run_input.title},
        )
    except RPCError as exc:
        log.error("could not start run %s: %s", run.id, exc)
        await write(sessions, remove)
        raise ApiError(503, "the workflow service is unavailable; the run was not created") from exc


class RunNotRestartable(Exception):
    """A run that cannot start a new attempt now; the message says why."""


# How long a restart waits for the previous attempt's workflow to close: the final status is
# recorded just before the workflow ends, so a quick client can see it a moment early.
CLOSE_WAIT_SECONDS = 10.0


async def restart_run(
    sessions: sessionmaker[Session],
    temporal: Client,
    task_queue: str,
    run_input: RunInput,
    *,
    restartable: Collection[str],
    status: str,
) -> None:
    """Start attempt `run_input.attempt` of a finished run, under the same workflow id.

    The row moves to the new attempt only if it is still in a `restartable` status at the
    previous attempt (so two concurrent restarts cannot both win); the workflow is started
    again with the reuse policy that allows a new run only after a failed one. If Temporal
    refuses, the row gets its previous status back: RunNotRestartable when the previous
    workflow did not end failed, ApiError 503 when Temporal is unreachable.
    """
    run_id = run_input.run_id
    previous = run_input.attempt - 1

    def advance(session: Session) -> tuple[str, datetime | None, str | None]:
        row = session.get(Run, run_id)
        if row is None or row.status not in restartable or row.attempt != previous:
            raise RunNotRestartable(
                f"run {run_id} is not restartable now (status {row.status if row else 'missing'})"
            )
        before = (row.status, row.end_time, row.error)
        changed = session.execute(
            update(Run)
            .where(Run.id == run_id, Run.status == row.status, Run.attempt == previous)
            .values(attempt=run_input.attempt, status=status, end_time=None, error=None)
            .execution_options(synchronize_session=False)
        )
        if getattr(changed, "rowcount", 1) != 1:
            raise RunNotRestartable(f"run {run_id} was restarted by another request")
        return before

    def revert(session: Session, before: tuple[str, datetime | None, str | None]) -> None:
        session.execute(
            update(Run)
            .where(Run.id == run_id, Run.attempt == run_input.attempt)
            .values(attempt=previous, status=before[0], end_time=before[1], error=before[2])
            .execution_options(synchronize_session=False)
        )

    before = await write(sessions, advance)
    try:
        await _start_again(temporal, task_queue, run_input, status)
    except RunNotRestartable:
        await write(sessions, revert, before)
        raise
    except RPCError as exc:
        log.error("could not restart run %s: %s", run_id, exc)
        await write(sessions, revert, before)
        message = "the workflow service is unavailable; the run was not restarted"
        raise ApiError(503, message) from exc


async def _start_again(temporal: Client, task_queue: str, run_input: RunInput, status: str) -> None:
    """Start the run's workflow again, once its previous attempt has closed failed."""
    deadline = time.monotonic() + CLOSE_WAIT_SECONDS
    while True:
        try:
            await temporal.start_workflow(
                RunWorkflow.run,
                run_input,
                id=run_input.run_id,
                task_queue=task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
                search_attributes=search_attributes(run_input, status),
                memo={"title": run_input.title},
            )
            return
        except WorkflowAlreadyStartedError as exc:
            described = await temporal.get_workflow_handle(run_input.run_id).describe()
            closing = described.status == WorkflowExecutionStatus.RUNNING
            if not closing or time.monotonic() > deadline:
                state = described.status.name if described.status else "unknown"
                raise RunNotRestartable(
                    f"run {run_input.run_id} cannot be restarted: its workflow is {state}, "
                    "and only a failed one can run again"
                ) from exc
            await asyncio.sleep(0.1)


class GateRefused(Exception):
    """The run's gate refused a decision; `kind` is the workflow's reason (e.g. NotApprover)."""

    def __init__(self, kind: str | None) -> None:
        super().__init__(kind or "refused")
        self.kind = kind


async def send_decisions(
    sessions: sessionmaker[Session], temporal: Client, run_id: str, decisions: list[Decision]
) -> None:
    """Give the run's gate each decision, recording each one the workflow accepted.

    GateRefused when the workflow refuses one (its validator: not an approver, gate closed);
    ApiError 503 when Temporal cannot be reached.
    """
    handle = temporal.get_workflow_handle(run_id)
    for decision in decisions:
        try:
            state = await handle.execute_update(DECIDE_UPDATE, decision, result_type=GateState)
        except WorkflowUpdateFailedError as exc:
            cause = exc.cause
            raise GateRefused(cause.type if isinstance(cause, ApplicationError) else None) from exc
        except RPCError as exc:
            raise ApiError(503, "the workflow service is unavailable; try again") from exc
        await write(
            sessions,
            record_approval,
            run_id,
            decision.approver_key,
            decision.by,
            approved=decision.approve,
            comment=decision.comment,
            gate_idx=state.idx,
        )


MAX_COMMENT_CHARS = 2000


class GateOutcome(StrEnum):
    """What one decision on a run's open gate came to."""

    APPROVED = "approved"  # the gate opened: the run goes on
    REJECTED = "rejected"  # the gate closed refused: the run ends rejected
    WAITING = "waiting"  # recorded; the gate (rule all) waits for the other approvers
    NOT_PENDING = "not_pending"  # no gate of the run (or not that gate) waits for a decision
    NOT_APPROVER = "not_approver"  # the user may not decide the open gate


@dataclass(frozen=True)
class GateDecision:
    """The result of `decide_gate`: the outcome, and the gate it was about (if one was open)."""

    outcome: GateOutcome
    gate_id: str | None = None
    gate_idx: int | None = None  # -1 the start gate, else the approval action's index
    approver_key: str | None = None  # the key the decision was given under


async def decide_gate(
    sessions: sessionmaker[Session],
    temporal: Client,
    run_id: str,
    *,
    user_id: str,
    approve: bool,
    comment: str = "",
    keys: Sequence[str] | None = None,
    admin: bool = False,
    gate_id: str | None = None,
) -> GateDecision:
    """Give the run's open gate one decision of `user_id`, with a comment.

    The user decides under the first of their approver `keys` (default `person:<user_id>`)
    the gate lists, or, when `admin` and the gate lets admins decide, the admin key. With
    `gate_id`, only that gate is decided (a decision for a gate that has closed is not
    carried over to the next one). The decision is recorded (an Approval row of the gate's
    index, with the comment) once the workflow accepted it. 400 for a comment over
    MAX_COMMENT_CHARS; ApiError 503 when Temporal cannot be reached.
    """
    if len(comment) > MAX_COMMENT_CHARS:
        raise bad_request(f"comment: at most {MAX_COMMENT_CHARS} characters")
    gate = await read(sessions, open_gate_of, run_id)
    if gate is None or (gate_id is not None and gate.id != gate_id):
        return GateDecision(GateOutcome.NOT_PENDING)
    key = decision_key(gate.approvers, keys or [f"person:{user_id}"], admin=admin)
    if key is None:
        return GateDecision(GateOutcome.NOT_APPROVER, gate.id, gate.idx)
    decision = Decision(
        approve=approve, approver_key=key, by=user_id, comment=comment, gate_idx=gate.idx
    )
    try:
        state = await temporal.get_workflow_handle(run_id).execute_update(
            DECIDE_UPDATE, decision, result_type=GateState
        )
    except WorkflowUpdateFailedError as exc:
        cause = exc.cause
        refused = cause.type if isinstance(cause, ApplicationError) else None
        outcome = GateOutcome.NOT_APPROVER if refused == "NotApprover" else GateOutcome.NOT_PENDING
        return GateDecision(outcome, gate.id, gate.idx)
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:  # the run's workflow has ended meanwhile
            return GateDecision(GateOutcome.NOT_PENDING, gate.id, gate.idx)
        raise ApiError(503, "the workflow service is unavailable; try again") from exc
    await write(
        sessions,
        record_approval,
        run_id,
        key,
        user_id,
        approved=approve,
        comment=comment,
        gate_idx=state.idx,
    )
    if state.rejected:
        outcome = GateOutcome.REJECTED
    else:
        outcome = GateOutcome.WAITING if state.open else GateOutcome.APPROVED
    return GateDecision(outcome, gate.id, state.idx, key)
