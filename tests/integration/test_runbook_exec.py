"""The `runbook` action with real programs: bash, python3, sqlite3 and psql on the test server."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker
from temporalio.testing import ActivityEnvironment

from activities.control import ControlWatch
from activities.event_log import EventLog
from activities.executors import EXECUTORS, ActionContext, Executed
from activities.runbook_exec import (
    PSQL_ARGV,
    RunbookSpecError,
    _plan,
    connection_argv_env,
    run_runbook,
    runbook_env,
    utf8_prefix,
)
from activities.runs import PRE_RENDERED_KINDS, RunActivities
from core.artifacts import FileArtifactStore
from core.secrets import MASK, SecretBox, log_redactor, run_redactor
from core.settings import generate_key
from core.statuses import RunStatus
from core.store.migrate import upgrade
from core.store.models import Definition, Run
from core.store.runs import events_of
from core.store.secret_values import put_secret
from core.store.session import make_engine, make_session_factory, transaction
from tests.stack import machine_sandbox
from workflows.contracts import ActionSpec, ExecuteActionInput

DB_PASSWORD = f"pg-pass-{uuid.uuid4().hex[:12]}"  # every output must mask it


# --------------------------------------------------------------------------------------------
# Harness: a migrated SQLite store, one run row per test, and the action run in a real
# activity context so the control watch (kill / stop from the run's row) works as in a worker.
# --------------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def isolated_redactor(monkeypatch: pytest.MonkeyPatch) -> None:
    """The log redactor is process-wide: what these tests register (hosts, user names of the test
    server) is forgotten afterwards, so later tests see their own text unmasked."""
    monkeypatch.setattr(log_redactor, "_values", set(log_redactor._values))
    monkeypatch.setattr(log_redactor, "_ordered", list(log_redactor._ordered))


@pytest.fixture(scope="module")
def sessions(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sessionmaker[Session]]:
    url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'runwright.db'}"
    upgrade(url)
    engine = make_engine(url)
    yield make_session_factory(engine)
    engine.dispose()


@pytest.fixture
def run_id(sessions: sessionmaker[Session]) -> str:
    with transaction(sessions) as session:
        definition = Definition(dialect="hoop", name=f"c-{uuid.uuid4().hex[:8]}", spec={})
        session.add(definition)
        session.flush()
        run = Run(definition_id=definition.id, dialect="hoop", status=RunStatus.RUNNING)
        session.add(run)
        session.flush()
        return run.id


class Runner:
    """Builds an ActionContext for a spec and runs `run_runbook` on it."""

    def __init__(self, sessions: sessionmaker[Session], run_id: str, tmp_path: Path) -> None:
        self.sessions = sessions
        self.run_id = run_id
        self.run_dir = tmp_path / "run"
        self.workdir = tmp_path / "work"
        self.workdir.mkdir()

    def context(self, spec: dict[str, Any], timeout: float | None = None) -> ActionContext:
        events = EventLog(self.sessions, self.run_id, 0, redactor=run_redactor())
        return ActionContext(
            action=ActionSpec(
                name="x.runbook.sh", kind="runbook", spec=spec, timeout_seconds=timeout
            ),
            spec=spec,
            workdir=self.workdir,
            run_dir=self.run_dir,
            index=0,
            params={},
            limit_hosts=[],
            events=events,
            control=ControlWatch(self.sessions, self.run_id, events),
            sandbox=machine_sandbox(),
        )

    def __call__(self, spec: dict[str, Any], timeout: float | None = None) -> Executed:
        ctx = self.context(spec, timeout)
        try:
            return ActivityEnvironment().run(run_runbook, ctx)
        finally:
            ctx.events.flush()

    def set_status(self, status: RunStatus) -> None:
        with transaction(self.sessions) as session:
            run = session.get(Run, self.run_id)
            assert run is not None
            run.status = status

    def output_events(self) -> list[str]:
        with self.sessions() as session:
            return [
                e.message
                for e in events_of(session, self.run_id)
                if e.event_type == "output" and e.message is not None
            ]

    def stored_output(self) -> str:
        return (self.run_dir / "out" / "0.stdout").read_text()


@pytest.fixture
def runner(sessions: sessionmaker[Session], run_id: str, tmp_path: Path) -> Runner:
    return Runner(sessions, run_id, tmp_path)


def custom(script: str, command: list[str] | None = None, **fields: Any) -> dict[str, Any]:
    """A spec for a custom connection running `command` (bash) with `script` on stdin."""
    connection = {
        "name": "ops-shell",
        "type": "custom",
        "subtype": "",
        "command": command or ["bash"],
        "env": fields.pop("connection_env", {}),
        "dsn": None,
    }
    return {"connection": connection, "input": script, "client_args": [], **fields}


def when(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


# --------------------------------------------------------------------------------------------
# The pure parts: argv and environment per connection, and the UTF-8 cut.
# --------------------------------------------------------------------------------------------


def _conn(kind: str, subtype: str = "", **rest: Any) -> dict[str, Any]:
    return {"name": "c", "type": kind, "subtype": subtype, **rest}


PG_DSN = f"postgresql://app%40ops:{quote(DB_PASSWORD)}@db.internal:6432/orders?sslmode=require"

ARGV_ENV_CASES: list[tuple[str, dict[str, Any], list[str], list[str], dict[str, str]]] = [
    (
        "custom command plus client args",
        _conn("custom", command=["bash", "-e"]),
        ["--verbose"],
        ["bash", "-e", "--verbose"],
        {},
    ),
    (
        "application command",
        _conn("application", "rails", command=["python3", "-"]),
        [],
        ["python3", "-"],
        {},
    ),
    (
        "postgres from a DSN: everything in the environment",
        _conn("database", "postgres", dsn=PG_DSN),
        ["--echo-errors"],
        [*PSQL_ARGV, "--echo-errors"],
        {
            "PGHOST": "db.internal",
            "PGPORT": "6432",
            "PGUSER": "app@ops",
            "PGPASSWORD": DB_PASSWORD,
            "PGDATABASE": "orders",
            "PGSSLMODE": "require",
        },
    ),
    (
        "postgres from hoop's HOST/PORT/USER/PASS/DB keys",
        _conn(
            "database",
            "postgres",
            command=[],
            env={"HOST": "10.0.0.5", "PORT": "5433", "USER": "ro", "PASS": DB_PASSWORD, "DB": "x"},
        ),
        [],
        list(PSQL_ARGV),
        {
            "PGHOST": "10.0.0.5",
            "PGPORT": "5433",
            "PGUSER": "ro",
            "PGPASSWORD": DB_PASSWORD,
            "PGDATABASE": "x",
        },
    ),
    (
        "postgres: a command replaces the default, the variables stay",
        _conn("database", "postgres", command=["psql", "-X"], dsn=PG_DSN),
        [],
        ["psql", "-X"],
        {
            "PGHOST": "db.internal",
            "PGPORT": "6432",
            "PGUSER": "app@ops",
            "PGPASSWORD": DB_PASSWORD,
            "PGDATABASE": "orders",
            "PGSSLMODE": "require",
        },
    ),
    (
        "postgres: a socket directory and two hosts",
        _conn("database", "postgres", dsn="postgresql://u@h1:5432,[::1]:5433/d"),
        [],
        list(PSQL_ARGV),
        {"PGHOST": "h1,::1", "PGPORT": "5432,5433", "PGUSER": "u", "PGDATABASE": "d"},
    ),
    (
        "mysql: password only in MYSQL_PWD",
        _conn("database", "mysql", dsn=f"mysql://app:{DB_PASSWORD}@db:3307/shop?ssl_mode=REQUIRED"),
        [],
        ["mysql", "--user=app", "--database=shop", "--ssl-mode=REQUIRED"],
        {"MYSQL_HOST": "db", "MYSQL_TCP_PORT": "3307", "MYSQL_PWD": DB_PASSWORD},
    ),
    (
        "sqlite path from the DSN",
        _conn("database", "sqlite", dsn="sqlite:///var/lib/app/app.db"),
        ["-json"],
        ["sqlite3", "-bail", "/var/lib/app/app.db", "-json"],
        {},
    ),
    (
        "sqlite path from hoop's DB key",
        _conn("database", "sqlite", env={"DB": "/srv/x.db"}),
        [],
        ["sqlite3", "-bail", "/srv/x.db"],
        {},
    ),
    (
        "another database subtype with its own command",
        _conn("database", "mongodb", command=["mongo", "--quiet"]),
        [],
        ["mongo", "--quiet"],
        {},
    ),
]


@pytest.mark.parametrize(
    ("connection", "client_args", "argv", "env"),
    [case[1:] for case in ARGV_ENV_CASES],
    ids=[case[0] for case in ARGV_ENV_CASES],
)
def test_connection_argv_env(
    connection: dict[str, Any], client_args: list[str], argv: list[str], env: dict[str, str]
) -> None:
    """Each connection kind's argv and variables; a password never reaches the argv."""
    built_argv, built_env = connection_argv_env(connection, client_args)
    assert built_argv == argv
    assert built_env == env
    assert not any(DB_PASSWORD in arg or quote(DB_PASSWORD) in arg for arg in built_argv)


BAD_CONNECTIONS: list[tuple[str, dict[str, Any], str]] = [
    ("unknown type", _conn("ssh"), "connection type"),
    ("custom without command", _conn("custom", command=[]), "needs a command"),
    ("command not a list", _conn("custom", command="bash -c x"), "list of strings"),
    ("NUL in the command", _conn("custom", command=["bash", "a\0b"]), "NUL"),
    ("database subtype without default", _conn("database", "oracledb"), "no default command"),
    ("relative sqlite path", _conn("database", "sqlite", dsn="sqlite://rel/x.db"), "sqlite"),
    ("sqlite without a path", _conn("database", "sqlite"), "absolute database path"),
    (
        "postgres DSN with another scheme",
        _conn("database", "postgres", dsn=f"mysql://u:{DB_PASSWORD}@h/d"),
        "scheme",
    ),
    (
        "postgres DSN with an unknown parameter",
        _conn("database", "postgres", dsn=f"postgresql://u:{DB_PASSWORD}@h/d?evil=1"),
        "unsupported parameter 'evil'",
    ),
    (
        "postgres DSN with a bad port",
        _conn("database", "postgres", dsn=f"postgresql://u:{DB_PASSWORD}@h:port/d"),
        "port",
    ),
]


@pytest.mark.parametrize(
    ("connection", "message"),
    [case[1:] for case in BAD_CONNECTIONS],
    ids=[case[0] for case in BAD_CONNECTIONS],
)
def test_connection_argv_env_rejects(connection: dict[str, Any], message: str) -> None:
    """What cannot run is an error whose text names the problem, never the password."""
    with pytest.raises(RunbookSpecError, match=message) as caught:
        connection_argv_env(connection, [])
    assert DB_PASSWORD not in str(caught.value)


@pytest.mark.parametrize(
    ("data", "limit", "expected"),
    [
        ("ééé".encode(), 5, "éé".encode()),
        ("ééé".encode(), 6, "ééé".encode()),
        ("ééé".encode(), 1, b""),
        ("a€b".encode(), 3, b"a"),
        ("a€b".encode(), 4, "a€".encode()),
        (b"abc", 0, b""),
        (b"abc", 10, b"abc"),
    ],
)
def test_utf8_prefix(data: bytes, limit: int, expected: bytes) -> None:
    assert utf8_prefix(data, limit) == expected


def test_runbook_kind_is_registered_and_not_templated() -> None:
    assert "runbook" in EXECUTORS
    assert "runbook" in PRE_RENDERED_KINDS


# --------------------------------------------------------------------------------------------
# Custom connections: bash and python3.
# --------------------------------------------------------------------------------------------


def test_bash_runs_the_input_and_succeeds(runner: Runner) -> None:
    result = runner(custom("echo hello\necho from $0\n"))
    assert result.exit_code == 0
    assert result.error is None
    assert result.stdout == "hello\nfrom bash\n"
    assert result.stderr == ""
    elapsed = result.data.pop("elapsed_ms")
    assert isinstance(elapsed, int) and 0 <= elapsed < 10_000
    assert result.data == {"truncated": False, "exit_code_source": "process", "output_bytes": 16}
    assert runner.stored_output() == "hello\nfrom bash\n"
    assert runner.output_events() == ["hello", "from bash"]


def test_bash_exit_code_three_is_an_error(runner: Runner) -> None:
    result = runner(custom("echo before\nexit 3\necho never\n"))
    assert result.exit_code == 3
    assert result.error == "exit code 3"
    assert result.stdout == "before\n"


def test_stdout_and_stderr_interleave_in_order(runner: Runner) -> None:
    result = runner(custom("echo a; echo b >&2; echo c\n"))
    assert result.stdout == "a\nb\nc\n"
    assert runner.output_events() == ["a", "b", "c"]
    assert runner.stored_output() == "a\nb\nc\n"
    assert (runner.run_dir / "out" / "0.stderr").read_text() == ""


def test_python3_with_client_args(runner: Runner) -> None:
    """client_args are appended as argv entries, spaces and quotes kept, no shell."""
    script = "import sys\nprint(sys.argv[1:])\nsys.exit(3)\n"
    result = runner(
        custom(script, ["python3", "-"], client_args=["--verbose", "two words", "$HOME;id"])
    )
    assert result.stdout == "['--verbose', 'two words', '$HOME;id']\n"
    assert result.exit_code == 3
    assert result.error == "exit code 3"


def test_environment_precedence(runner: Runner, monkeypatch: pytest.MonkeyPatch) -> None:
    """base < connection env < env_vars < files < template_env; the worker's own env stays out."""
    monkeypatch.setenv("RW_WORKER_ONLY", "leak")
    script = (
        'echo "A=$A B=$B C=$C W=${RW_WORKER_ONLY:-unset} P=${PATH:+set}"\n'
        'case "$D" in /*.envfs) echo D=file;; *) echo "D=$D";; esac\n'
        'echo "E=$E"\n'
    )
    result = runner(
        custom(
            script,
            connection_env={"A": "c", "B": "c", "C": "c", "D": "c"},
            env_vars={"B": "r", "C": "r", "D": "r"},
            files={"D": uuid.uuid4().hex, "E": uuid.uuid4().hex},
            template_env={"C": "t", "E": "t"},
        )
    )
    assert result.stdout == "A=c B=r C=t W=unset P=set\nD=file\nE=t\n"


def test_filesystem_files_are_private_and_removed(runner: Runner) -> None:
    """A `filesystem:` value is a 0600 file under the run directory while the program runs."""
    content = f"-----BEGIN KEY-----\n{uuid.uuid4().hex}\n-----END KEY-----\n"
    script = (
        'echo "path=$KEY_FILE"\n'
        'stat -c "mode=%a" "$KEY_FILE"\n'
        'if [ "$(cat "$KEY_FILE"; echo x)" = "$(printf "%s" "$EXPECTED"; echo x)" ]; then\n'
        "  echo content=same\nfi\n"
    )
    result = runner(custom(script, files={"KEY_FILE": content}, template_env={"EXPECTED": content}))
    assert result.exit_code == 0, result.stdout
    lines = result.stdout.splitlines()
    path = Path(lines[0].removeprefix("path="))
    assert path.parent == runner.run_dir / "envfs"
    assert path.name.endswith(".envfs")
    assert lines[1:] == ["mode=600", "content=same"]
    assert not path.exists()
    assert not (runner.run_dir / "envfs").exists()


def test_secret_values_are_masked_everywhere(runner: Runner) -> None:
    """Values that came as plain strings are registered too: output, events and file mask them."""
    token = f"tok-{uuid.uuid4().hex}"
    key = f"key-{uuid.uuid4().hex}"
    result = runner(
        custom(
            'echo "token=$TOKEN"; echo "key=$API_KEY" >&2; cat "$CERT"\n',
            env_vars={"TOKEN": token},
            connection_env={"API_KEY": key},
            files={"CERT": f"{token}\n"},
        )
    )
    assert result.stdout == f"token={MASK}\nkey={MASK}\n{MASK}\n"
    for text in (runner.stored_output(), *runner.output_events()):
        assert token not in text
        assert key not in text


def test_output_cap_cuts_at_a_character_boundary(runner: Runner) -> None:
    result = runner(custom("printf 'ééé'\n", output_cap=5))
    assert result.stdout == "éé"
    assert result.data is not None
    assert result.data["truncated"] is True
    assert result.data["output_bytes"] == 6
    assert runner.stored_output() == "ééé"  # the whole of it stays in the /dev/stdout file


def test_output_within_the_cap_is_not_truncated(runner: Runner) -> None:
    result = runner(custom("printf 'ééé'\n", output_cap=6))
    assert result.stdout == "ééé"
    assert result.data is not None
    assert result.data["truncated"] is False


def test_missing_executable_is_254(runner: Runner) -> None:
    result = runner(custom("echo hi\n", ["no-such-program-rw"]))
    assert result.exit_code == 254
    assert result.error == "could not start no-such-program-rw: No such file or directory"
    assert result.stdout == result.error + "\n"
    assert result.data is not None
    assert result.data["exit_code_source"] == "start_failed"


def test_not_executable_is_254(runner: Runner, tmp_path: Path) -> None:
    script = tmp_path / "tool.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o644)
    result = runner(custom("", [str(script)]))
    assert result.exit_code == 254
    assert result.error is not None
    assert "Permission denied" in result.error


def test_invalid_spec_has_an_error_and_no_exit_code(runner: Runner) -> None:
    result = runner(custom("echo hi\n", env_vars={"BAD": "a\0b"}))
    assert result.exit_code is None
    assert result.error == "env_vars: the value of BAD contains a NUL byte"
    result = runner(custom("echo hi\n", output_cap=-1))
    assert result.error == "output_cap must be a whole number of bytes"


# --------------------------------------------------------------------------------------------
# Ending a runbook early: kill and stop from the run's row, and the action's timeout.
# --------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_kill_from_the_run_row(runner: Runner) -> None:
    """A kill ends the whole group at once (137) and still removes the secret files."""
    ready = runner.workdir / "ready"

    def kill_when_ready() -> None:
        when(ready.exists)
        runner.set_status(RunStatus.KILLING)

    killer = threading.Thread(target=kill_when_ready)
    killer.start()
    started = time.monotonic()
    result = runner(
        custom(
            'echo "$SECRET_FILE"; touch ready; sleep 60\n', files={"SECRET_FILE": uuid.uuid4().hex}
        )
    )
    killer.join()
    assert time.monotonic() - started < 20
    assert result.exit_code == 137
    assert result.error == "killed"
    assert result.data is not None
    assert result.data["exit_code_source"] == "signal"
    assert not Path(result.stdout.strip()).exists()


@pytest.mark.slow
def test_stop_from_the_run_row(runner: Runner) -> None:
    """A stop sends SIGTERM to the group and waits; bash dies of it: 143."""
    ready = runner.workdir / "ready"

    def stop_when_ready() -> None:
        when(ready.exists)
        runner.set_status(RunStatus.STOPPING)

    stopper = threading.Thread(target=stop_when_ready)
    stopper.start()
    result = runner(custom("touch ready; sleep 60\n"))
    stopper.join()
    assert result.exit_code == 143
    assert result.error == "stopped"


@pytest.mark.slow
def test_timeout(runner: Runner) -> None:
    started = time.monotonic()
    result = runner(custom("echo waiting; sleep 60\n"), timeout=1)
    assert time.monotonic() - started < 15
    assert result.error == "timed out after 1s"
    assert result.exit_code == 143
    assert result.stdout == "waiting\n"


@pytest.mark.slow
def test_unread_input_does_not_block_the_timeout(runner: Runner) -> None:
    """Input larger than a pipe, to a program that never reads it: the clock still runs."""
    started = time.monotonic()
    result = runner(custom("x" * (4 * 1024 * 1024), ["sleep", "60"]), timeout=1)
    assert time.monotonic() - started < 15
    assert result.error == "timed out after 1s"


# --------------------------------------------------------------------------------------------
# Database connections: sqlite3 on a temp file, psql on the test PostgreSQL.
# --------------------------------------------------------------------------------------------


def database(subtype: str, script: str, **connection: Any) -> dict[str, Any]:
    conn = {"name": "db", "type": "database", "subtype": subtype, "command": [], "env": {}}
    return {"connection": {**conn, **connection}, "input": script, "client_args": []}


def test_sqlite_connection(runner: Runner, tmp_path: Path) -> None:
    db = tmp_path / "app.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE items (name TEXT, qty INTEGER)")
        conn.execute("INSERT INTO items VALUES ('bolt', 3), ('nut', 5)")
    conn.close()
    result = runner(
        database("sqlite", "SELECT name, qty FROM items ORDER BY name;\n", dsn=f"sqlite://{db}")
    )
    assert result.error is None, result.stdout
    assert result.stdout == "bolt|3\nnut|5\n"
    failed = runner(
        database(
            "sqlite",
            "SELECT 1;\nSELECT * FROM missing;\nSELECT 2;\n",
            dsn=f"sqlite://{db}",
        )
    )
    assert failed.exit_code == 1
    assert failed.error == "exit code 1"
    assert failed.stdout.startswith("1\n")
    assert "no such table: missing" in failed.stdout
    assert "\n2\n" not in failed.stdout  # -bail: stops at the first error


def _libpq_dsn(sqlalchemy_url: str) -> str:
    """The test database as a libpq URI, with a password (the server trusts loopback)."""
    url = make_url(sqlalchemy_url)
    return (
        f"postgresql://{url.username}:{quote(DB_PASSWORD)}@{url.host}:{url.port}/{url.database}"
        "?sslmode=disable&application_name=runbook-test"
    )


@pytest.mark.postgres
def test_postgres_connection(runner: Runner, pg_database: str) -> None:
    """psql gets the DSN's parts from the environment; the password never shows."""
    dsn = _libpq_dsn(pg_database)
    name = make_url(pg_database).database
    script = (
        "CREATE TABLE t (id int, note text);\n"
        "INSERT INTO t VALUES (1, 'one'), (2, 'two');\n"
        "SELECT id, note FROM t ORDER BY id;\n"
        "SELECT current_database(), current_setting('application_name');\n"
        "\\! printf 'pw=%s\\n' \"$PGPASSWORD\"\n"
    )
    result = runner(database("postgres", script, dsn=dsn))
    assert result.error is None, result.stdout
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines == [
        "CREATE TABLE",
        "INSERT 0 2",
        "id\tnote",
        "1\tone",
        "2\ttwo",
        "(2 rows)",
        "current_database\tcurrent_setting",
        f"{name}\trunbook-test",
        "(1 row)",
        f"pw={MASK}",
    ]
    for text in (result.stdout, runner.stored_output(), *runner.output_events()):
        assert DB_PASSWORD not in text


@pytest.mark.postgres
def test_postgres_error_stops_with_exit_code_3(runner: Runner, pg_database: str) -> None:
    """ON_ERROR_STOP: psql stops at the first failing statement and exits 3."""
    script = "SELECT 1 AS a;\nSELECT * FROM missing_table;\nSELECT 2 AS b;\n"
    result = runner(database("postgres", script, dsn=_libpq_dsn(pg_database)))
    assert result.exit_code == 3
    assert result.error == "exit code 3"
    assert 'relation "missing_table" does not exist' in result.stdout
    assert "b\n2" not in result.stdout


@pytest.mark.postgres
def test_postgres_from_hoop_keys(runner: Runner, pg_database: str) -> None:
    """HOST/PORT/USER/PASS/DB connection keys reach psql as PG* variables."""
    url = make_url(pg_database)
    env = {
        "HOST": str(url.host),
        "PORT": str(url.port),
        "USER": str(url.username),
        "PASS": DB_PASSWORD,
        "DB": str(url.database),
    }
    result = runner(database("postgres", "SELECT current_database();\n", env=env))
    assert result.error is None, result.stdout
    # Connection env values are the connection's secrets: all of them are masked.
    assert result.stdout == f"current_database\n{MASK}\n(1 row)\n"
    assert str(url.database) not in runner.stored_output()


@pytest.mark.postgres
def test_request_env_cannot_redirect_the_connection(runner: Runner, pg_database: str) -> None:
    """The connection's own PG* variables are set last: a request cannot repoint them."""
    result = runner(
        {
            **database("postgres", "SELECT current_database();\n", dsn=_libpq_dsn(pg_database)),
            "env_vars": {"PGHOST": "203.0.113.1", "PGDATABASE": "other"},
            "template_env": {"PGPORT": "1"},
        }
    )
    assert result.error is None, result.stdout
    assert result.stdout.splitlines()[1] == make_url(pg_database).database


@pytest.mark.postgres
def test_client_variables_come_only_from_the_connection(runner: Runner, pg_database: str) -> None:
    """PG* variables from a request or a template never reach psql, not even those the
    connection leaves unset (PGAPPNAME, PGOPTIONS, PGHOSTADDR would repoint it)."""
    url = make_url(pg_database)
    dsn = f"postgresql://{url.username}:{quote(DB_PASSWORD)}@{url.host}:{url.port}/{url.database}"
    script = "SELECT current_setting('application_name') AS app, current_setting('search_path');\n"
    result = runner(
        {
            **database("postgres", script, dsn=dsn),
            "env_vars": {"PGAPPNAME": "caller-app", "PGHOSTADDR": "127.0.0.2"},
            "template_env": {"PGOPTIONS": "-c search_path=caller_schema"},
        }
    )
    assert result.error is None, result.stdout
    row = result.stdout.splitlines()[1]
    assert "caller-app" not in row and "caller_schema" not in row, row
    assert row.startswith("psql\t"), row


@pytest.mark.postgres
def test_psql_ignores_psqlrc(
    runner: Runner, pg_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """psql runs with -X: a ~/.psqlrc (here one that would run a shell command) is not read."""
    home = tmp_path / "home"
    home.mkdir()
    marker = tmp_path / "psqlrc-ran"
    (home / ".psqlrc").write_text(f"\\! touch {marker}\n\\echo psqlrc-ran\n")
    monkeypatch.setenv("HOME", str(home))
    result = runner(database("postgres", "SELECT 1 AS one;\n", dsn=_libpq_dsn(pg_database)))
    assert result.error is None, result.stdout
    assert result.stdout == "one\n1\n(1 row)\n"
    assert not marker.exists()


def test_runbook_env_keeps_client_variables_for_the_connection() -> None:
    """The environment's layers; client variables only from the connection's own settings."""
    spec = {
        **custom(
            "",
            connection_env={"A": "c", "PGHOST": "conn-host", "B": "c"},
            env_vars={"B": "r", "PGHOST": "req", "MYSQL_PWD": "req"},
            template_env={"C": "t", "pgport": "1"},
        ),
        "files": {"PSQLRC": "x"},
    }
    plan = _plan(spec)
    env = runbook_env({"PATH": "/bin", "PGUSER": "worker"}, plan, {"PSQLRC": "/f"})
    assert env == {"PATH": "/bin", "A": "c", "B": "r", "C": "t", "PGHOST": "conn-host"}


# --------------------------------------------------------------------------------------------
# Through the execute activity: secret references opened, the spec not templated again.
# --------------------------------------------------------------------------------------------


def test_execute_action_opens_refs_and_does_not_template(
    sessions: sessionmaker[Session], run_id: str, tmp_path: Path
) -> None:
    box = SecretBox(generate_key())
    secret_value = f"sv-{uuid.uuid4().hex}"
    with transaction(sessions) as session:
        ref = put_secret(session, box, secret_value)
    activities = RunActivities(
        worker_queue="q",
        workspace=tmp_path / "ws",
        allowed_schemes=["https"],
        sessions=sessions,
        box=box,
        store=FileArtifactStore(tmp_path / "store"),
    )
    spec = custom(
        'echo "{{ .params.x }}"; echo "$VALUE"; echo "${#VALUE}"\n',
        env_vars={"VALUE": {"secretRef": ref}},
    )
    result = ActivityEnvironment().run(
        activities.execute_action,
        ExecuteActionInput(
            run_id=run_id,
            index=0,
            action=ActionSpec(name="x.runbook.sh", kind="runbook", spec=spec),
            template_env={"params": {"x": "rendered"}},
            workdir=None,
            secret_refs=[ref],
        ),
    )
    assert result.status == "completed", result.error
    assert result.stdout == f"{{{{ .params.x }}}}\n{MASK}\n{len(secret_value)}\n"
    assert result.exit_code == 0
    assert result.data["truncated"] is False
    with sessions() as session:
        messages = [e.message or "" for e in events_of(session, run_id)]
    assert not any(secret_value in m for m in messages)
    assert os.path.isdir(tmp_path / "ws" / "runs" / run_id / "out")
