"""The DB projection of a run, written by the workflow through local activities."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity

from activities.callbacks import CallbackActivities, dispatch_stored
from core.events import EventLevel, EventRecord
from core.statuses import TERMINAL_RUN_STATUSES, RunStatus
from core.store.gates import record_gate
from core.store.runs import append_events, register_run, update_run, upsert_action
from core.store.session import transaction
from workflows.contracts import (
    RECORD_ACTION,
    RECORD_RUN,
    GateRecord,
    RecordActionInput,
    RecordRunInput,
)
from workflows.gate import record_fields


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _record_gate(session: Session, run_id: str, gate: GateRecord) -> None:
    record_gate(session, run_id, gate.id, **record_fields(gate))


class RecordActivities:
    """Local activities: cheap DB writes with no server round trip each."""

    def __init__(
        self, sessions: sessionmaker[Session], callbacks: CallbackActivities | None = None
    ) -> None:
        self._sessions = sessions
        self._callbacks = callbacks

    @activity.defn(name=RECORD_RUN)
    def record_run(self, inp: RecordRunInput) -> None:
        """Record a run's status (and times, error, an event)."""
        with transaction(self._sessions) as session:
            if inp.registration is not None:
                register_run(
                    session,
                    inp.run_id,
                    definition_id=inp.definition_id,
                    dialect=inp.dialect,
                    status=inp.status,
                    created_by=inp.registration.created_by,
                    account_id=inp.registration.account_id,
                    parameters=inp.registration.parameters,
                )
            run = update_run(
                session,
                inp.run_id,
                status=inp.status,
                start_time=_time(inp.start_time),
                end_time=_time(inp.end_time),
                error=inp.error,
                attempt=inp.attempt,
                failed_hosts=inp.failed_hosts,
                commit=asdict(inp.commit) if inp.commit else None,
            )
            if inp.gate is not None and run is not None:
                _record_gate(session, inp.run_id, inp.gate)
            if inp.event:
                terminal = RunStatus(inp.status) in TERMINAL_RUN_STATUSES
                level = EventLevel.RESULT if terminal else EventLevel.INFO
                last = append_events(
                    session,
                    inp.run_id,
                    [EventRecord("run_status", inp.event, level, data={"status": inp.status})],
                )
                if self._callbacks is not None and inp.callbacks:
                    dispatcher = self._callbacks.dispatcher(inp.callbacks)
                    dispatch_stored(dispatcher, session, inp.run_id, last - 1)

    @activity.defn(name=RECORD_ACTION)
    def record_action(self, inp: RecordActionInput) -> None:
        """Record an action's status and, once it ran, its result."""
        result = None
        if inp.result is not None:
            result = {
                "stdout": inp.result.stdout,
                "stderr": inp.result.stderr,
                "exitCode": inp.result.exit_code,
                **inp.result.data,
            }
            if inp.result.artifacts:
                result["artifacts"] = [asdict(a) for a in inp.result.artifacts]
        with transaction(self._sessions) as session:
            upsert_action(
                session,
                inp.run_id,
                inp.index,
                name=inp.name,
                status=inp.status,
                scheduled_time=_time(inp.scheduled_time),
                start_time=_time(inp.start_time),
                end_time=_time(inp.end_time),
                result=result,
                error=inp.error,
            )
            if inp.gate is not None:
                _record_gate(session, inp.run_id, inp.gate)
