"""Runs, their actions, events and approvals: the projection the workflow records."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.events import EventRecord
from core.statuses import TERMINAL_RUN_STATUSES
from core.store.models import Approval, Run, RunAction, RunEvent, utcnow


def get_run(session: Session, run_id: str) -> Run | None:
    """The run with this id, if any."""
    return session.get(Run, run_id)


def actions_of(session: Session, run_id: str) -> list[RunAction]:
    """A run's recorded actions in definition order."""
    return list(
        session.scalars(select(RunAction).where(RunAction.run_id == run_id).order_by(RunAction.idx))
    )


def register_run(
    session: Session,
    run_id: str,
    *,
    definition_id: str,
    dialect: str,
    status: str,
    created_by: str | None,
    account_id: str | None,
    parameters: dict[str, Any],
) -> Run:
    """The run's row, created now unless it exists (a scheduled run records itself)."""
    run = session.get(Run, run_id)
    if run is None:
        run = Run(
            id=run_id,
            definition_id=definition_id,
            dialect=dialect,
            status=status,
            created_by=created_by,
            account_id=account_id,
            parameters=parameters,
        )
        session.add(run)
        session.flush()
    return run


def _epoch_ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def ended(run: Run, attempt: int) -> bool:
    """Whether `attempt` of the run (or a later one) has ended already."""
    return run.status in TERMINAL_RUN_STATUSES and (run.attempt or 1) >= attempt


def update_run(
    session: Session,
    run_id: str,
    *,
    status: str,
    start_time: datetime | None = None,
    end_time: datetime | None = None,
    error: str | None = None,
    attempt: int = 1,
    failed_hosts: list[str] | None = None,
    commit: dict[str, Any] | None = None,
) -> Run | None:
    """Record a run's new status; the other fields change only when given.

    `start_time` opens the timer of `attempt` (Runner's `timers`, epoch ms), `end_time` closes
    the open one.
    """
    run = session.get(Run, run_id)
    if run is None:
        return None
    stale = attempt < (run.attempt or 1) or (
        ended(run, attempt) and status not in TERMINAL_RUN_STATUSES
    )
    if not stale:
        # A write racing the end (a stop's "stopping") never reopens an ended attempt, and
        # an earlier attempt never overrides a later one.
        run.status = status
    run.attempt = max(run.attempt or 1, attempt)
    if start_time is not None:
        if run.start_time is None:
            run.start_time = start_time
            run.queue_ms = int((start_time - run.created_at).total_seconds() * 1000)
        if len(run.timers or []) < attempt:
            # A new list: JSON columns notice assignment, not mutation.
            run.timers = [*(run.timers or []), {"start": _epoch_ms(start_time), "end": None}]
    if end_time is not None:
        run.end_time = end_time
        timers = [dict(t) for t in run.timers or []]
        if timers and timers[-1].get("end") is None:
            timers[-1]["end"] = _epoch_ms(end_time)
            run.timers = timers
    if error is not None:
        run.error = error
    if failed_hosts is not None:
        run.failed_hosts = list(failed_hosts)
    if commit is not None:
        run.commit = commit
    session.flush()
    return run


def upsert_action(
    session: Session,
    run_id: str,
    idx: int,
    *,
    name: str,
    status: str,
    scheduled_time: datetime | None = None,
    start_time: datetime | None = None,
    end_time: datetime | None = None,
    result: dict[str, Any] | None = None,
    error: str | None = None,
) -> RunAction:
    """Create or update the action `idx` of a run."""
    row = session.scalar(select(RunAction).where(RunAction.run_id == run_id, RunAction.idx == idx))
    if row is None:
        row = RunAction(run_id=run_id, idx=idx, name=name, status=status)
        session.add(row)
    row.status = status
    for attr, value in (
        ("scheduled_time", scheduled_time),
        ("start_time", start_time),
        ("end_time", end_time),
        ("result", result),
        ("error", error),
    ):
        if value is not None:
            setattr(row, attr, value)
    session.flush()
    return row


def append_events(
    session: Session,
    run_id: str,
    events: Sequence[EventRecord],
    *,
    action_idx: int | None = None,
) -> int:
    """Append events after the run's last one, numbering them; returns the last seq.

    Callers hold one transaction per batch, and a run has one writer at a time (its
    workflow's current activity), so max+1 numbering does not race.
    """
    last = session.scalar(select(func.max(RunEvent.seq)).where(RunEvent.run_id == run_id)) or 0
    now = utcnow()
    for offset, ev in enumerate(events, start=1):
        session.add(
            RunEvent(
                run_id=run_id,
                seq=last + offset,
                time=now,
                level=str(ev.level),
                event_type=ev.event_type,
                action_idx=action_idx,
                host=ev.host,
                task=ev.task,
                message=ev.message,
                data=ev.data,
            )
        )
    session.flush()
    return last + len(events)


def event_usage(session: Session, run_id: str, marker: str) -> tuple[int, int, bool]:
    """How many events the run holds, their message characters, and whether `marker` is one."""
    count, chars = session.execute(
        select(func.count(), func.coalesce(func.sum(func.length(RunEvent.message)), 0)).where(
            RunEvent.run_id == run_id
        )
    ).one()
    marked = session.scalar(
        select(RunEvent.seq)
        .where(RunEvent.run_id == run_id, RunEvent.event_type == marker)
        .limit(1)
    )
    return int(count), int(chars), marked is not None


def status_before(session: Session, run_id: str, seq: int) -> str:
    """The status the run's last status event before `seq` announced ("scheduled" if none)."""
    data = session.scalar(
        select(RunEvent.data)
        .where(RunEvent.run_id == run_id, RunEvent.event_type == "run_status", RunEvent.seq < seq)
        .order_by(RunEvent.seq.desc())
        .limit(1)
    )
    status = (data or {}).get("status")
    return status if isinstance(status, str) and status else "scheduled"


def events_of(
    session: Session, run_id: str, *, offset: int = 0, limit: int | None = None
) -> list[RunEvent]:
    """A run's events in order."""
    query = select(RunEvent).where(RunEvent.run_id == run_id).order_by(RunEvent.seq).offset(offset)
    if limit is not None:
        query = query.limit(limit)
    return list(session.scalars(query))


def run_status(session: Session, run_id: str) -> str | None:
    """The run's recorded status; None when there is no such run."""
    return session.scalar(select(Run.status).where(Run.id == run_id))


def event_texts(
    session: Session, run_id: str, after: int, *, limit: int, upto: int | None = None
) -> list[tuple[int, str, str]]:
    """(seq, event_type, message) of up to `limit` of a run's events after seq `after` (and
    up to `upto`), in order: what a log follower reads, without the rest of each row."""
    query = select(RunEvent.seq, RunEvent.event_type, RunEvent.message).where(
        RunEvent.run_id == run_id, RunEvent.seq > after
    )
    if upto is not None:
        query = query.where(RunEvent.seq <= upto)
    rows = session.execute(query.order_by(RunEvent.seq).limit(limit))
    return [(seq, event_type, message) for seq, event_type, message in rows]


def record_approval(
    session: Session,
    run_id: str,
    approver_key: str,
    decided_by: str,
    *,
    comment: str = "",
    approved: bool = True,
    gate_idx: int = -1,
) -> bool:
    """Record a decision (an approval unless `approved` is False) once per approver key and
    gate (-1: the start gate, else the approval action's index); False when one was there."""
    existing = session.scalar(
        select(Approval).where(
            Approval.run_id == run_id,
            Approval.gate_idx == gate_idx,
            Approval.approver_key == approver_key,
        )
    )
    if existing is not None:
        return False
    session.add(
        Approval(
            run_id=run_id,
            gate_idx=gate_idx,
            approver_key=approver_key,
            decided_by=decided_by,
            comment=comment,
            approved=approved,
        )
    )
    session.flush()
    return True


def approvals_of(session: Session, run_id: str, *, gate_idx: int | None = None) -> list[Approval]:
    """Decisions recorded on a run (on its gate `gate_idx` only, if given), oldest first."""
    query = select(Approval).where(Approval.run_id == run_id)
    if gate_idx is not None:
        query = query.where(Approval.gate_idx == gate_idx)
    return list(session.scalars(query.order_by(Approval.created_at)))


def failed_action_error(session: Session, run_id: str) -> str | None:
    """Why the run's first failed action failed (a run that failed in an action has no error
    of its own)."""
    return session.scalar(
        select(RunAction.error)
        .where(RunAction.run_id == run_id, RunAction.error.is_not(None))
        .order_by(RunAction.idx)
        .limit(1)
    )
