"""Approval gates of runs: what each gate a run opened asked, and how it closed.

The workflow writes these rows (through its record activities) as a gate opens and closes;
the API reads them to list what waits for a decision and to pick the approver key a user
decides with. The per-approver decisions are Approval rows (core.store.runs).
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.statuses import GateStatus
from core.store.models import GateRow

__all__ = ["GateRow", "gate_by_id", "gates_of", "open_gate_of", "open_gates", "record_gate"]


def record_gate(
    session: Session,
    run_id: str,
    gate_id: str,
    *,
    idx: int,
    status: str,
    opened_at: datetime,
    message: str = "",
    approvers: list[str] | None = None,
    rule: str = "any",
    timeout_at: datetime | None = None,
    on_timeout: str = "expire",
    decided_at: datetime | None = None,
    decided_by: str | None = None,
    comment: str = "",
) -> GateRow:
    """Create or overwrite the gate `gate_id` of a run (a retried record writes it again)."""
    row = session.get(GateRow, gate_id)
    if row is None:
        row = GateRow(id=gate_id, run_id=run_id)
        session.add(row)
    values: dict[str, Any] = {
        "idx": idx,
        "status": status,
        "opened_at": opened_at,
        "message": message,
        "approvers": list(approvers or []),
        "rule": rule,
        "timeout_at": timeout_at,
        "on_timeout": on_timeout,
        "decided_at": decided_at,
        "decided_by": decided_by,
        "comment": comment,
    }
    for attr, value in values.items():
        setattr(row, attr, value)
    session.flush()
    return row


def open_gates(session: Session, run_ids: Collection[str] | None = None) -> list[GateRow]:
    """Gates waiting for a decision (of these runs only, if given), oldest first."""
    query = select(GateRow).where(GateRow.status == GateStatus.PENDING)
    if run_ids is not None:
        query = query.where(GateRow.run_id.in_(list(run_ids)))
    return list(session.scalars(query.order_by(GateRow.opened_at, GateRow.idx)))


def gate_by_id(session: Session, gate_id: str) -> GateRow | None:
    """The gate with this id, if any."""
    return session.get(GateRow, gate_id)


def gates_of(session: Session, run_id: str) -> list[GateRow]:
    """Every gate a run opened, in the order it opened them."""
    query = select(GateRow).where(GateRow.run_id == run_id)
    return list(session.scalars(query.order_by(GateRow.opened_at, GateRow.idx)))


def open_gate_of(session: Session, run_id: str) -> GateRow | None:
    """The gate of the run waiting for a decision now, if any (a run has one at a time)."""
    gates = open_gates(session, [run_id])
    return gates[-1] if gates else None
