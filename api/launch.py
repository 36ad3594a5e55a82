"""Launching a run: the one engine service every dialect translates its request into.

A dialect parses its body into a `LaunchRequest` (checking it against its own definitions and
storing the secrets it brings); from there the row, the workflow input, the creator's
approvals, the gate and the search attributes are built here, the same way for every dialect.
"""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from api.deps import Services
from api.runs import start_run
from core.statuses import RunStatus
from core.store.models import Approval, Run, utcnow
from workflows.contracts import (
    ActionSpec,
    Admission,
    CallbackSpec,
    GateSpec,
    Registration,
    RunInput,
)
from workflows.gate import START_GATE_IDX, gate_opening, gate_satisfied

# Catalog kinds a run can be about: each has its own column on the run's row.
RESOURCE_KINDS = ("config", "check", "component")


@dataclass(frozen=True)
class LaunchRequest:
    """One run to start, in the engine's words.

    Each action says whether the engine renders its fields as templates (`templated`): a
    dialect whose values are already final, or are another tool's templates, says False.
    """

    definition_id: str
    dialect: str
    title: str  # what the run is called in the Temporal UI (its memo)
    creator: str | None  # the user the run is attributed to
    actions: list[ActionSpec]
    account_id: str | None = None
    # The account's alias: a search attribute, and the key whose runs share concurrency slots.
    account: str = ""
    concurrency_limit: int | None = None
    gate: GateSpec | None = None  # its `approved` keys are the creator's own approvals
    ttl_seconds: float | None = None
    callbacks: list[CallbackSpec] = field(default_factory=list)
    resource_kind: str = ""  # one of RESOURCE_KINDS, or "" (the id is then only searchable)
    resource_id: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)  # what the run's row shows
    template_env: dict[str, Any] = field(default_factory=dict)
    secret_refs: list[str] = field(default_factory=list)  # values redacted from the output
    limit_hosts: list[str] = field(default_factory=list)
    restartable: bool = False  # a failed run ends its workflow failed, so it can run again
    # A scheduled run's autonomy, decided when it fires (a run started now is decided now).
    admission: Admission | None = None


def run_input(
    request: LaunchRequest, *, run_id: str, created_at: datetime, attempt: int = 1
) -> RunInput:
    """The workflow input of one attempt of the run."""
    return RunInput(
        run_id=run_id,
        definition_id=request.definition_id,
        dialect=request.dialect,
        title=request.title,
        actions=list(request.actions),
        template_env=request.template_env,
        created_at=created_at.isoformat(),
        resource_id=request.resource_id,
        account=request.account,
        gate=request.gate,
        secret_refs=list(request.secret_refs),
        attempt=attempt,
        limit_hosts=list(request.limit_hosts),
        ttl_seconds=request.ttl_seconds,
        callbacks=list(request.callbacks),
        concurrency_limit=request.concurrency_limit,
        fail_workflow=request.restartable,
    )


def scheduled_input(request: LaunchRequest, created_at: datetime) -> RunInput:
    """The input a schedule starts the run with: no run id (each firing's workflow id is
    used) and a registration, so the run writes its own row as the creator's."""
    registration = Registration(
        created_by=request.creator,
        account_id=request.account_id,
        parameters=request.parameters,
        admission=request.admission,
    )
    return dataclasses.replace(
        run_input(request, run_id="", created_at=created_at), registration=registration
    )


def initial_status(request: LaunchRequest) -> RunStatus:
    """Pending approval while the gate is not satisfied by the creator's own approvals."""
    gate = request.gate
    if gate is not None and not gate_satisfied(gate, gate.approved):
        return RunStatus.PENDING_APPROVAL
    return RunStatus.SCHEDULED


def run_row(request: LaunchRequest, run_id: str, now: datetime) -> Run:
    """The run's row as it is stored before its workflow starts."""
    return Run(
        id=run_id,
        definition_id=request.definition_id,
        dialect=request.dialect,
        status=str(initial_status(request)),
        created_at=now,
        scheduled_time=now,
        created_by=request.creator,
        parameters=request.parameters,
        account_id=request.account_id,
        attempt=1,
        timers=[],
        failed_hosts=[],
        **{
            f"{kind}_id": request.resource_id if kind == request.resource_kind else None
            for kind in RESOURCE_KINDS
        },
    )


async def launch(services: Services, request: LaunchRequest) -> Run:
    """Store the run and start its workflow (undone if it cannot start); the stored row."""
    now = utcnow()
    run = run_row(request, str(uuid.uuid4()), now)
    approved = request.gate.approved if request.gate is not None else []
    approvals = [
        Approval(run_id=run.id, approver_key=key, decided_by=request.creator) for key in approved
    ]
    gate = request.gate if run.status == RunStatus.PENDING_APPROVAL else None
    await start_run(
        services.sessions,
        services.temporal,
        services.settings.task_queue,
        run,
        run_input(request, run_id=run.id, created_at=now),
        approvals,
        gate_opening(run.id, 1, START_GATE_IDX, gate, now) if gate is not None else None,
    )
    return run
