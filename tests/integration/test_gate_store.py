"""Gate rows and per-gate approvals on both databases, and the migration that adds them."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import delete, inspect, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from core.store.gates import gate_by_id, gates_of, open_gate_of, open_gates, record_gate
from core.store.migrate import alembic_config, upgrade
from core.store.models import Approval, Definition, GateRow, Run
from core.store.runs import approvals_of, record_approval
from core.store.session import make_engine, make_session_factory, transaction

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def _url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'gates.db'}"
    url: str = request.getfixturevalue("pg_database")
    return url


@pytest.fixture(params=["sqlite", "postgres"])
def sessions(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    """A migrated database of each kind."""
    url = _url(request.param, request, tmp_path)
    upgrade(url)
    engine = make_engine(url)
    yield make_session_factory(engine)
    engine.dispose()


def _run(session: Session) -> str:
    definition = Definition(dialect="test", name=f"p-{uuid.uuid4().hex[:8]}", spec={})
    session.add(definition)
    session.flush()
    run = Run(definition_id=definition.id, dialect="test", status="pending_approval")
    session.add(run)
    session.flush()
    return run.id


def test_gates_are_recorded_listed_and_closed(sessions: sessionmaker[Session]) -> None:
    """A gate row is written whole each time; open ones list per run, oldest first, and a
    closed gate leaves the list but stays among the run's gates."""
    with transaction(sessions) as session:
        first, second = _run(session), _run(session)
        record_gate(session, first, "g-start", idx=-1, status="pending", opened_at=T0)
        record_gate(
            session,
            second,
            "g-mid",
            idx=2,
            status="pending",
            opened_at=T0 + timedelta(seconds=5),
            message="go on?",
            approvers=["person:a", "role:admin"],
            timeout_at=T0 + timedelta(minutes=5),
            on_timeout="reject",
        )
    with sessions() as session:
        assert [g.id for g in open_gates(session)] == ["g-start", "g-mid"]
        assert [g.id for g in open_gates(session, [second])] == ["g-mid"]
        assert open_gates(session, []) == []
        mid = gate_by_id(session, "g-mid")
        assert mid is not None and mid.approvers == ["person:a", "role:admin"]
        assert mid.timeout_at == T0 + timedelta(minutes=5) and mid.comment == ""
    with transaction(sessions) as session:
        record_gate(
            session,
            first,
            "g-start",
            idx=-1,
            status="approved",
            opened_at=T0,
            decided_at=T0 + timedelta(seconds=9),
            decided_by="u1",
            comment="ok",
        )
        record_gate(session, first, "g-next", idx=0, status="pending", opened_at=T0)
    with sessions() as session:
        assert [(g.id, g.status) for g in gates_of(session, first)] == [
            ("g-start", "approved"),
            ("g-next", "pending"),
        ]
        current = open_gate_of(session, first)
        assert current is not None and current.id == "g-next"
        assert gate_by_id(session, "missing") is None
    with transaction(sessions) as session:
        session.execute(delete(Run).where(Run.id == first))
    with sessions() as session:
        assert gates_of(session, first) == []  # a run's gates go with it


def test_one_decision_per_approver_and_gate(sessions: sessionmaker[Session]) -> None:
    """The same approver decides each gate of a run once; a second decision on the same gate
    is not recorded, and the database refuses one written around the store."""
    with transaction(sessions) as session:
        run_id = _run(session)
        assert record_approval(session, run_id, "person:a", "a", comment="one", gate_idx=0)
        assert record_approval(session, run_id, "person:a", "a", gate_idx=2)
        assert record_approval(session, run_id, "person:a", "a")  # the start gate (-1)
        assert not record_approval(session, run_id, "person:a", "a", gate_idx=2)
    with sessions() as session:
        rows = approvals_of(session, run_id)
        assert sorted((a.gate_idx, a.comment) for a in rows) == [(-1, ""), (0, "one"), (2, "")]
        assert [a.gate_idx for a in approvals_of(session, run_id, gate_idx=0)] == [0]
    with pytest.raises(IntegrityError), transaction(sessions) as session:
        session.add(Approval(run_id=run_id, gate_idx=0, approver_key="person:a", decided_by="a"))


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_migration_keeps_approvals_on_the_start_gate(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Approvals recorded before gates existed belong to the start gate (-1) after the
    upgrade, and a downgrade goes back to one decision per approver and run."""
    url = _url(backend, request, tmp_path)
    command.upgrade(alembic_config(url), "0004")
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO definitions (id, dialect, name, namespace, spec, source, created_at,"
                " updated_at) VALUES ('d1', 'test', 'p', 'default', '{}', 'UI',"
                " CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO runs (id, definition_id, dialect, status, created_at, scheduled_time,"
                " parameters, attempt, timers, failed_hosts) VALUES ('r1', 'd1', 'test',"
                " 'succeeded', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, '{}', 1, '[]', '[]')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO approvals (id, run_id, approver_key, decided_by, approved, comment,"
                " created_at) VALUES ('a1', 'r1', 'person:a', 'a', true, 'yes', CURRENT_TIMESTAMP)"
            )
        )
    upgrade(url)
    with make_session_factory(engine)() as session:
        (approval,) = session.scalars(select(Approval)).all()
        assert (approval.gate_idx, approval.comment) == (-1, "yes")
    assert "gates" in inspect(engine).get_table_names()
    with transaction(make_session_factory(engine)) as session:
        assert record_approval(session, "r1", "person:a", "a", gate_idx=3)
        record_gate(session, "r1", "g1", idx=3, status="approved", opened_at=T0)
    command.downgrade(alembic_config(url), "0004")
    inspector = inspect(engine)
    assert "gates" not in inspector.get_table_names()
    assert "gate_idx" not in {c["name"] for c in inspector.get_columns("approvals")}
    with engine.connect() as conn:
        assert conn.execute(text("SELECT id FROM approvals")).scalars().all() == ["a1"]
    engine.dispose()


def test_gate_row_model_matches_the_table(sessions: sessionmaker[Session]) -> None:
    """The model and the migration agree on the gates table's columns."""
    engine = sessions.kw["bind"]
    columns = {c["name"]: c["nullable"] for c in inspect(engine).get_columns("gates")}
    assert columns == {c.name: c.nullable for c in GateRow.__table__.columns}
