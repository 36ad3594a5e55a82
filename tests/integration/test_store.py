"""The DB projection on both databases: migrations, event numbering, approvals, UTC times."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from core.events import EventLevel, EventRecord
from core.store.migrate import alembic_config, upgrade
from core.store.models import Definition, Run
from core.store.runs import append_events, events_of, record_approval, update_run, upsert_action
from core.store.session import make_engine, make_session_factory, transaction
from core.store.users import authenticate, create_token, upsert_user, user_for_token


@pytest.fixture(params=["sqlite", "postgres"])
def sessions(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[sessionmaker[Session]]:
    """A migrated database of each kind."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'runwright.db'}"
    else:
        url = request.getfixturevalue("pg_database")
    upgrade(url)
    engine = make_engine(url)
    yield make_session_factory(engine)
    engine.dispose()


def _run(session: Session) -> Run:
    definition = Definition(dialect="mission_control", name="p", spec={"actions": []})
    session.add(definition)
    session.flush()
    run = Run(definition_id=definition.id, dialect="mission_control", status="scheduled")
    session.add(run)
    session.flush()
    return run


def test_migrations_create_every_table(sessions: sessionmaker[Session]) -> None:
    """`upgrade` creates the whole schema, and running it again changes nothing."""
    engine = sessions.kw["bind"]
    tables = set(inspect(engine).get_table_names())
    assert {"runs", "run_actions", "run_events", "definitions", "artifacts", "secrets"} <= tables
    upgrade(engine.url.render_as_string(hide_password=False))


def test_events_are_numbered_in_order(sessions: sessionmaker[Session]) -> None:
    """Batches append after the last event; seq runs 1..n without gaps."""
    with transaction(sessions) as session:
        run_id = _run(session).id
    for batch in (["a", "b"], ["c"], ["d", "e", "f"]):
        with transaction(sessions) as session:
            append_events(
                session, run_id, [EventRecord("stdout", m, EventLevel.DEBUG) for m in batch]
            )
    with sessions() as session:
        events = events_of(session, run_id)
    assert [(e.seq, e.message) for e in events] == list(enumerate("abcdef", start=1))


def test_times_come_back_in_utc(sessions: sessionmaker[Session]) -> None:
    """A time written with any zone reads back as the same instant, in UTC."""
    start = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2)))
    with transaction(sessions) as session:
        run = _run(session)
        run_id = run.id
        created = run.created_at
        update_run(session, run_id, status="running", start_time=start)
    with sessions() as session:
        row = session.get(Run, run_id)
        assert row is not None
        assert row.start_time == start and row.start_time.tzinfo == UTC
        assert row.queue_ms == int((start - created).total_seconds() * 1000)


@pytest.mark.parametrize(
    ("writes", "final"),
    [
        # A stop's "stopping" landing after the end does not reopen the run.
        ([("running", 1), ("killed", 1), ("killing", 1)], "killed"),
        ([("running", 1), ("succeeded", 1), ("stopping", 1)], "succeeded"),
        # A restart is a new attempt: it may leave the ended one behind.
        ([("failed", 1), ("scheduled", 2), ("running", 2)], "running"),
        ([("failed", 1), ("running", 2), ("scheduled", 1)], "running"),  # a late first attempt
        # One end after another is still recorded (the workflow writes only one).
        ([("running", 1), ("stopped", 1), ("killed", 1)], "killed"),
    ],
)
def test_an_ended_attempt_stays_ended(
    sessions: sessionmaker[Session], writes: list[tuple[str, int]], final: str
) -> None:
    with transaction(sessions) as session:
        run_id = _run(session).id
    for status, attempt in writes:
        with transaction(sessions) as session:
            update_run(session, run_id, status=status, attempt=attempt)
    with sessions() as session:
        row = session.get(Run, run_id)
        assert row is not None and row.status == final


def test_approval_recorded_once_per_approver(sessions: sessionmaker[Session]) -> None:
    """The same approver key twice records one approval."""
    with transaction(sessions) as session:
        run_id = _run(session).id
        assert record_approval(session, run_id, "person:a@example.com", "u1") is True
        assert record_approval(session, run_id, "person:a@example.com", "u1") is False


def test_action_upsert_keeps_earlier_fields(sessions: sessionmaker[Session]) -> None:
    """Recording an action again updates its status and keeps the start time."""
    now = datetime.now(UTC)
    with transaction(sessions) as session:
        run_id = _run(session).id
        upsert_action(session, run_id, 0, name="a", status="running", start_time=now)
        row = upsert_action(
            session, run_id, 0, name="a", status="completed", end_time=now, result={"exitCode": 0}
        )
        assert (row.status, row.start_time, row.result) == ("completed", now, {"exitCode": 0})


def test_definition_names_are_unique_per_namespace(sessions: sessionmaker[Session]) -> None:
    """Two playbooks with one namespace/name cannot both exist."""
    with pytest.raises(IntegrityError), transaction(sessions) as session:
        for _ in range(2):
            session.add(Definition(dialect="mission_control", name="same", spec={}))
            session.flush()


# Long and with spaces: a random hash cannot contain it by chance (a two-letter one may).
PASSWORD = "correct horse battery staple"


def test_tokens_expire_and_passwords_verify(sessions: sessionmaker[Session]) -> None:
    """Passwords are checked against their hash; an expired token no longer authenticates."""
    with transaction(sessions) as session:
        user = upsert_user(session, "Ops@Example.com", password=PASSWORD, role="operator")
        assert authenticate(session, "ops@example.com", PASSWORD) is user
        assert authenticate(session, "ops@example.com", "wrong") is None
        _, live = create_token(session, user)
        _, short = create_token(session, user, ttl=timedelta(seconds=1))
        later = datetime.now(UTC) + timedelta(minutes=1)
        assert user_for_token(session, live, now=later) is user
        assert user_for_token(session, short, now=later) is None
        assert user.password_hash and PASSWORD not in user.password_hash


def test_changed_password_is_not_served_from_the_check_cache(
    sessions: sessionmaker[Session],
) -> None:
    """After a password change the old password fails at once, though it was just verified."""
    with transaction(sessions) as session:
        upsert_user(session, "cache@example.com", password="old-pw")
        assert authenticate(session, "cache@example.com", "old-pw") is not None
        upsert_user(session, "cache@example.com", password="new-pw")
        assert authenticate(session, "cache@example.com", "old-pw") is None
        assert authenticate(session, "cache@example.com", "new-pw") is not None


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_upgrade_keeps_rows_of_an_earlier_schema(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """A database made by the first release upgrades in place; its runs get defaults."""
    url = (
        f"sqlite:///{tmp_path / 'old.db'}"
        if backend == "sqlite"
        else request.getfixturevalue("pg_database")
    )
    command.upgrade(alembic_config(url), "0001")
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO definitions (id, dialect, name, namespace, spec, source, created_at,"
                " updated_at) VALUES ('d1', 'mission_control', 'p', 'default', '{}', 'UI',"
                " CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO runs (id, definition_id, dialect, status, created_at, scheduled_time,"
                " parameters) VALUES ('r1', 'd1', 'mission_control', 'succeeded',"
                " CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, '{}')"
            )
        )
    upgrade(url)
    with make_session_factory(engine)() as session:
        run = session.get(Run, "r1")
        assert run is not None and (run.attempt, run.timers, run.failed_hosts) == (1, [], [])
    engine.dispose()
