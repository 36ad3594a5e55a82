"""hoop reviews: a reviewed connection's session waits on the run's approval gate.

A review is identified by its session's id. Every reviewer group must approve (a member
approves for each of their groups at once); one rejection rejects. Nobody approves their own
session unless they are an admin. Decisions go to the workflow first (whose validator refuses
a closed gate), and are recorded for reading once it has accepted them.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.db import read
from api.deps import Services
from api.errors import ApiError, bad_request, not_found
from api.hoop.connections import DIALECT
from api.hoop.sessions import group_key, is_uuid, may_see
from api.runs import GateRefused, send_decisions
from core.statuses import RunStatus, hoop_review_status
from core.store.models import Definition, Run, User
from core.store.runs import approvals_of
from core.store.users import team_names_of
from workflows.contracts import Decision


def _reviewed_run(session: Session, review_id: str) -> tuple[Run, Definition]:
    run = session.get(Run, review_id) if is_uuid(review_id) else None
    connection = session.get(Definition, run.definition_id) if run is not None else None
    if run is None or connection is None or run.dialect != DIALECT:
        raise not_found("review not found")
    if not run.parameters.get("reviewed"):
        raise not_found("review not found")
    return run, connection


def _person(user: User | None) -> dict[str, Any] | None:
    if user is None:
        return None
    return {"id": user.id, "email": user.email, "name": user.name or user.email}


def review_view(session: Session, run: Run, connection: Definition) -> dict[str, Any]:
    """A review as hoop shows it."""
    decisions = {a.approver_key: a for a in approvals_of(session, run.id)}
    groups = []
    for group in run.parameters.get("review_groups") or []:
        decision = decisions.get(group_key(group))
        status = "PENDING"
        if decision is not None:
            status = "APPROVED" if decision.approved else "REJECTED"
        groups.append(
            {
                "id": f"{run.id}/{group}",
                "group": group,
                "status": status,
                "reviewed_by": _person(session.get(User, decision.decided_by))
                if decision
                else None,
                "review_date": decision.created_at.isoformat() if decision else None,
            }
        )
    params = run.parameters
    return {
        "id": run.id,
        "session": run.id,
        "type": "onetime",
        "status": hoop_review_status(run.status),
        "access_duration": 0,
        "connection": connection.name,
        "review_connection": {"id": connection.id, "name": connection.name},
        "review_owner": _person(session.get(User, run.created_by) if run.created_by else None),
        "input": params.get("input", ""),
        "input_env_vars": params.get("env_var_names", []),
        "input_client_args": params.get("client_args", []),
        "review_groups_data": groups,
        "created_at": run.created_at.isoformat(),
    }


def get_review(session: Session, user: User, review_id: str) -> dict[str, Any]:
    """One review the caller may see."""
    run, connection = _reviewed_run(session, review_id)
    if not may_see(session, user, run):
        raise not_found("review not found")
    return review_view(session, run, connection)


def list_reviews(session: Session, user: User) -> list[dict[str, Any]]:
    """Reviews the caller may see (admins: all), newest first."""
    runs = session.scalars(
        select(Run).where(Run.dialect == DIALECT).order_by(Run.created_at.desc())
    ).all()
    out = []
    for run in runs:
        if not run.parameters.get("reviewed") or not may_see(session, user, run):
            continue
        connection = session.get(Definition, run.definition_id)
        if connection is not None:
            out.append(review_view(session, run, connection))
    return out


def _keys_to_decide(session: Session, user: User, review_id: str, approve: bool) -> list[str]:
    """The approver keys this decision gives (checked against the rules above)."""
    run, _ = _reviewed_run(session, review_id)
    groups = team_names_of(session, user.id)
    mine = [g for g in run.parameters.get("review_groups") or [] if g in groups]
    if not mine:
        raise ApiError(403, "you are not a member of any reviewer group of this review")
    if run.status != RunStatus.PENDING_APPROVAL:
        raise bad_request(f"review is not pending (status {hoop_review_status(run.status)})")
    if approve and run.created_by == user.id and user.role != "admin":
        raise bad_request("unable to self approve a review: only an admin may")
    decided = {a.approver_key for a in approvals_of(session, run.id)}
    keys = [group_key(g) for g in mine if group_key(g) not in decided]
    if not keys:
        raise bad_request("your groups have already reviewed this session")
    return keys if approve else keys[:1]


async def decide_review(
    services: Services, user: User, review_id: str, status: str
) -> dict[str, Any]:
    """Approve or reject a pending review for every reviewer group of the caller."""
    if status == "REVOKED":
        raise bad_request("status: only a jit review can be revoked; this review is onetime")
    approve = status == "APPROVED"
    keys = await read(services.sessions, _keys_to_decide, user, review_id, approve)
    decisions = [Decision(approve=approve, approver_key=key, by=user.id) for key in keys]
    try:
        await send_decisions(services.sessions, services.temporal, review_id, decisions)
    except GateRefused as exc:
        if exc.kind == "NotApprover":
            raise ApiError(403, "not a reviewer of this review") from exc
        raise bad_request("review is not pending") from exc
    return await read(services.sessions, get_review, user, review_id)
