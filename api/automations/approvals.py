"""The approval queue: every gate an automation run opened is a request (`apr_…`), listed
with how it closed, and decided through the engine's gate of the run.

A request is the run's gate row, so what the workflow records (the decision, who gave it
and the comment, or that it timed out or was cancelled) is what the queue shows; nothing is
stored twice.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.automations.catalog import DIALECT, epoch
from api.automations.ids import (
    approval_engine_id,
    approval_public_id,
    automation_public_id,
    run_public_id,
)
from api.db import read
from api.deps import Services
from api.errors import ApiError, bad_request, not_found
from api.runs import MAX_COMMENT_CHARS, GateOutcome, decide_gate
from core.statuses import GateStatus
from core.store.models import GateRow, Run, User

ALL = "all"
STATUS_FILTERS = (*(str(s) for s in GateStatus), ALL)
PERSON_PREFIX = "person:"


def status_filter(value: str | None) -> str:
    """`?status=` of the list: pending (NOBA's list) by default, `all` for the history."""
    if value is None:
        return str(GateStatus.PENDING)
    if value not in STATUS_FILTERS:
        raise bad_request("status: one of " + ", ".join(STATUS_FILTERS))
    return value


def _usernames(session: Session, user_ids: Iterable[str]) -> dict[str, str]:
    ids = sorted(set(user_ids))
    if not ids:
        return {}
    rows = session.execute(select(User.id, User.email).where(User.id.in_(ids)))
    return {user_id: email for user_id, email in rows}


def _people(approvers: Iterable[str]) -> list[str]:
    # The admin key lets any admin decide; it is nobody to list.
    return [k.removeprefix(PERSON_PREFIX) for k in approvers if k.startswith(PERSON_PREFIX)]


def request_view(gate: GateRow, run: Run, names: dict[str, str]) -> dict[str, Any]:
    """One request as listed; people by username (users deleted since keep their id)."""
    params = run.parameters or {}
    decided_by = gate.decided_by
    return {
        "id": approval_public_id(gate.id),
        "automation_id": automation_public_id(run.definition_id),
        "run_id": run_public_id(run.id),
        "message": gate.message,
        "approvers": [names.get(uid, uid) for uid in _people(gate.approvers)],
        "requested_by": params.get("triggered_by"),
        "requested_at": epoch(gate.opened_at),
        "status": gate.status,
        "timeout_at": epoch(gate.timeout_at),
        "on_timeout": gate.on_timeout,
        "decided_by": names.get(decided_by, decided_by) if decided_by else None,
        "decided_at": epoch(gate.decided_at),
        "comment": gate.comment,
    }


def list_requests(session: Session, status: str) -> list[dict[str, Any]]:
    """`GET /api/approvals`: the requests in `status` (or all), oldest first."""
    query = select(GateRow, Run).join(Run, Run.id == GateRow.run_id).where(Run.dialect == DIALECT)
    if status != ALL:
        query = query.where(GateRow.status == status)
    rows = session.execute(query.order_by(GateRow.opened_at, GateRow.idx, GateRow.id)).all()
    people = [uid for gate, _ in rows for uid in _people(gate.approvers)]
    names = _usernames(session, [*people, *(g.decided_by for g, _ in rows if g.decided_by)])
    return [request_view(gate, run, names) for gate, run in rows]


@dataclass(frozen=True)
class Request:
    """What deciding a request needs of it."""

    gate_id: str
    run_id: str
    status: str


def request_or_404(session: Session, public_id: str) -> Request:
    """The request `apr_…` of an automation run, or 404."""
    gate_id = approval_engine_id(public_id)
    gate = session.get(GateRow, gate_id) if gate_id else None
    run = session.get(Run, gate.run_id) if gate is not None else None
    if gate is None or run is None or run.dialect != DIALECT:
        raise not_found(f"approval request {public_id} not found")
    return Request(gate.id, gate.run_id, gate.status)


def comment_of(body: Any) -> str:
    """The optional `{comment}` of a decision; 400 naming the field."""
    if body is None:
        return ""
    if not isinstance(body, dict):
        raise bad_request("body: must be a JSON object")
    for key in body:
        if key != "comment":
            raise bad_request(f"{key}: unknown field; allowed: comment")
    comment = body.get("comment")
    if comment is None:
        return ""
    if not isinstance(comment, str) or len(comment) > MAX_COMMENT_CHARS:
        raise bad_request(f"comment: a string of at most {MAX_COMMENT_CHARS} characters")
    return comment


async def decide(
    services: Services, user: User, public_id: str, body: Any, *, approve: bool
) -> dict[str, str]:
    """Approve (the run starts or goes on) or reject (the run ends cancelled) a request, as
    one of its approvers or an admin: 403 otherwise, 404 unknown, 409 not pending."""
    comment = comment_of(body)
    request = await read(services.sessions, request_or_404, public_id)
    if request.status != GateStatus.PENDING:
        raise ApiError(409, f"approval request {public_id} is not pending ({request.status})")
    decided = await decide_gate(
        services.sessions,
        services.temporal,
        request.run_id,
        user_id=user.id,
        approve=approve,
        comment=comment,
        admin=user.role == "admin",
        gate_id=request.gate_id,
    )
    if decided.outcome == GateOutcome.NOT_APPROVER:
        raise ApiError(403, f"you are not an approver of request {public_id}")
    if decided.outcome == GateOutcome.NOT_PENDING:
        raise ApiError(409, f"approval request {public_id} is not pending")
    # Requests here are rule `any`: one approval opens the gate (WAITING cannot happen).
    return {"status": "rejected" if decided.outcome == GateOutcome.REJECTED else "approved"}
