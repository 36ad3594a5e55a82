"""The `runbook` action: a rendered runbook fed on stdin to a connection's command.

This is the executing half of hoop.dev's "runbooks exec": the API renders the runbook file and
starts a run with one action of kind `runbook`, whose spec (secret references already opened)
is:

    connection    {name, type: database|application|custom, subtype, command: [argv...],
                   env: {NAME: value}, dsn: "postgresql://..." | "mysql://..." | "sqlite:///..."}
    input         the rendered runbook text, written to the command's stdin
    client_args   appended to the command (argv, never a shell)
    env_vars      {NAME: value}, set in the environment (`envvar:NAME` of the request)
    files         {NAME: value}, each written to a 0600 file whose path becomes NAME
                  (`filesystem:NAME`); the files are removed when the command ends
    template_env  {NAME: value} from the template's `asenv`; wins over env_vars and files
    output_cap    how many bytes of output the result keeps

The command's stdout and stderr share one pipe, so the output interleaves as the program wrote
it. Exit codes: the program's own; 128+N when signal N ended it (so a kill reads 137, a
timeout or stop usually 143); 254 when it could not be started (hoop's "internal" exit code),
with the reason as the output. A spec that cannot run at all (no command, a NUL byte in a
value, a malformed DSN) has no exit code, only an error.

Database connections run their subtype's client with the DSN's parameters passed only through
the environment (and, for mysql, non-secret options as arguments), never a password on the
command line. Those connection variables are set last, so neither the request's env vars nor
the template's can point the connection's credentials at another server.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from threading import Lock
from typing import IO, Any
from urllib.parse import parse_qsl, unquote, urlsplit

from activities.executors import ActionContext, Executed
from activities.processes import run_process
from activities.sandbox import wrap
from activities.scripts import base_env
from core.env_names import is_client_variable
from core.events import EventLevel, EventRecord
from core.secrets import Redactor

DEFAULT_OUTPUT_CAP = 1024 * 1024
START_FAILED_EXIT_CODE = 254  # upstream's exit code for "the agent could not get one"
SIGNAL_EXIT_BASE = 128  # a program ended by signal N exits 128+N, as a shell reports it
FILES_DIR = "envfs"

CONNECTION_TYPES = frozenset({"database", "application", "custom"})
# -X: no ~/.psqlrc (or PSQLRC), whose backslash commands would run before the runbook.
PSQL_ARGV = ("psql", "-X", "-v", "ON_ERROR_STOP=1", "-A", "-F", "\t", "-P", "pager=off")
MYSQL_ARGV = ("mysql",)
SQLITE_ARGV = ("sqlite3", "-bail")

# hoop's database connections name their parameters with these environment keys.
HOOP_DB_KEYS = ("HOST", "PORT", "USER", "PASS", "DB")
# libpq connection-URI query parameters and the variable each becomes.
PG_QUERY_ENV = {
    "host": "PGHOST",
    "port": "PGPORT",
    "user": "PGUSER",
    "password": "PGPASSWORD",
    "dbname": "PGDATABASE",
    "sslmode": "PGSSLMODE",
    "sslrootcert": "PGSSLROOTCERT",
    "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY",
    "sslcrl": "PGSSLCRL",
    "sslcompression": "PGSSLCOMPRESSION",
    "gssencmode": "PGGSSENCMODE",
    "channel_binding": "PGCHANNELBINDING",
    "connect_timeout": "PGCONNECT_TIMEOUT",
    "application_name": "PGAPPNAME",
    "options": "PGOPTIONS",
    "target_session_attrs": "PGTARGETSESSIONATTRS",
}
# mysql DSN query parameters (`ssl_mode` is read as `ssl-mode`) and the option each becomes.
MYSQL_QUERY_OPTIONS = ("ssl-mode", "ssl-ca", "ssl-cert", "ssl-key", "connect-timeout")
# Variables holding a password: registered with the redactor before the program starts.
PASSWORD_VARIABLES = ("PGPASSWORD", "MYSQL_PWD")


class RunbookSpecError(ValueError):
    """The action's spec cannot be run; the message never contains a secret value."""


@dataclass
class _DbParams:
    host: str = ""
    port: str = ""
    user: str = ""
    password: str = ""
    database: str = ""


def connection_argv_env(
    connection: Mapping[str, Any], client_args: Sequence[str] = ()
) -> tuple[list[str], dict[str, str]]:
    """The argv to run for `connection` (client args appended) and the environment variables
    the connection itself needs (PG*, MYSQL_*): a pure function, secrets only in the env.

    A non-empty `command` replaces the subtype's default argv; a database connection still
    gets its connection variables. Raises RunbookSpecError for what cannot run.
    """
    kind = connection.get("type")
    if kind not in CONNECTION_TYPES:
        raise RunbookSpecError(
            f"connection type {kind!r} is not one of {', '.join(sorted(CONNECTION_TYPES))}"
        )
    command = connection.get("command") or []
    if not isinstance(command, list) or not all(isinstance(a, str) for a in command):
        raise RunbookSpecError("connection command must be a list of strings")
    args = list(client_args)
    if not all(isinstance(a, str) for a in args):
        raise RunbookSpecError("client_args must be a list of strings")
    if kind != "database":
        if not command or not command[0]:
            raise RunbookSpecError(f"a {kind} connection needs a command (a non-empty list)")
        return _checked_argv(command + args), {}
    subtype = str(connection.get("subtype") or "")
    env_keys = _str_map(connection.get("env"), "connection env")
    dsn = connection.get("dsn")
    if dsn is not None and not isinstance(dsn, str):
        raise RunbookSpecError("connection dsn must be a string")
    if subtype == "postgres":
        default, env = list(PSQL_ARGV), _postgres_env(dsn or "", env_keys)
    elif subtype == "mysql":
        default, env = _mysql_argv_env(dsn or "", env_keys)
    elif subtype == "sqlite":
        default, env = [*SQLITE_ARGV, _sqlite_path(dsn or "", env_keys)], {}
    elif command:
        default, env = [], {}
    else:
        raise RunbookSpecError(
            f"database subtype {subtype!r} has no default command; give the connection one"
        )
    return _checked_argv((command or default) + args), env


def _checked_argv(argv: list[str]) -> list[str]:
    if not argv or not argv[0]:
        raise RunbookSpecError("the command is empty")
    if any("\0" in a for a in argv):
        raise RunbookSpecError("the command or a client argument contains a NUL byte")
    return argv


def _str_map(raw: Any, what: str) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise RunbookSpecError(f"{what} must be a map of names to values")
    out: dict[str, str] = {}
    for name, value in raw.items():
        if not isinstance(name, str) or not name or "=" in name or "\0" in name:
            raise RunbookSpecError(f"{what}: {name!r} is not a valid variable name")
        if not isinstance(value, str):
            raise RunbookSpecError(f"{what}: the value of {name} must be a string")
        if "\0" in value:
            raise RunbookSpecError(f"{what}: the value of {name} contains a NUL byte")
        out[name] = value
    return out


def _split_dsn(dsn: str, schemes: tuple[str, ...]) -> tuple[_DbParams, list[tuple[str, str]]]:
    """A DSN's parts, parsed by hand: host lists, sockets and passwords stay as written."""
    parts = urlsplit(dsn)
    if parts.scheme.split("+", 1)[0] not in schemes:
        raise RunbookSpecError(f"connection dsn: the scheme must be one of {', '.join(schemes)}")
    userinfo, _, hostports = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    hosts, ports = [], []
    for hostport in hostports.split(",") if hostports else []:
        if hostport.startswith("["):  # [::1]:5432
            host, _, rest = hostport[1:].partition("]")
            port = rest.removeprefix(":")
        else:
            host, _, port = hostport.partition(":")
        if port and not port.isdigit():
            raise RunbookSpecError("connection dsn: the port must be a number")
        hosts.append(unquote(host))
        ports.append(port)
    try:
        query = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError as exc:
        raise RunbookSpecError("connection dsn: malformed query string") from exc
    params = _DbParams(
        host=",".join(hosts),
        port=",".join(ports) if any(ports) else "",
        user=unquote(user),
        password=unquote(password),
        database=unquote(parts.path.lstrip("/")),
    )
    return params, query


def _hoop_params(env_keys: Mapping[str, str]) -> _DbParams:
    """Parameters from hoop's HOST/PORT/USER/PASS/DB connection keys."""
    host, port, user, password, database = (env_keys.get(k, "") for k in HOOP_DB_KEYS)
    return _DbParams(host=host, port=port, user=user, password=password, database=database)


def _merged(dsn_params: _DbParams | None, env_keys: Mapping[str, str]) -> _DbParams:
    """DSN parts where the DSN has them, hoop's keys otherwise."""
    keys = _hoop_params(env_keys)
    if dsn_params is None:
        return keys
    return _DbParams(
        host=dsn_params.host or keys.host,
        port=dsn_params.port or keys.port,
        user=dsn_params.user or keys.user,
        password=dsn_params.password or keys.password,
        database=dsn_params.database or keys.database,
    )


def _postgres_env(dsn: str, env_keys: Mapping[str, str]) -> dict[str, str]:
    parsed, query = _split_dsn(dsn, ("postgres", "postgresql")) if dsn else (None, [])
    params = _merged(parsed, env_keys)
    env = {
        "PGHOST": params.host,
        "PGPORT": params.port,
        "PGUSER": params.user,
        "PGPASSWORD": params.password,
        "PGDATABASE": params.database,
        "PGSSLMODE": env_keys.get("SSLMODE", ""),
    }
    for name, value in query:
        variable = PG_QUERY_ENV.get(name)
        if variable is None:
            raise RunbookSpecError(f"connection dsn: unsupported parameter {name!r}")
        env[variable] = value
    return _without_empty(env, "connection dsn")


def _mysql_argv_env(dsn: str, env_keys: Mapping[str, str]) -> tuple[list[str], dict[str, str]]:
    parsed, query = _split_dsn(dsn, ("mysql", "mariadb")) if dsn else (None, [])
    params = _merged(parsed, env_keys)
    if "," in params.host:
        raise RunbookSpecError("connection dsn: mysql takes one host")
    argv = list(MYSQL_ARGV)
    if params.user:
        argv.append(f"--user={params.user}")
    if params.database:
        argv.append(f"--database={params.database}")
    for name, value in query:
        option = name.replace("_", "-")
        if option not in MYSQL_QUERY_OPTIONS:
            raise RunbookSpecError(f"connection dsn: unsupported parameter {name!r}")
        argv.append(f"--{option}={value}")
    env = {"MYSQL_HOST": params.host, "MYSQL_TCP_PORT": params.port, "MYSQL_PWD": params.password}
    return argv, _without_empty(env, "connection dsn")


def _sqlite_path(dsn: str, env_keys: Mapping[str, str]) -> str:
    """The database file of `sqlite:///abs/path.db` (or hoop's DB key): absolute paths only,
    since an action's working directory is a throwaway one."""
    if dsn:
        parts = urlsplit(dsn)
        if parts.scheme != "sqlite" or parts.netloc or parts.query:
            raise RunbookSpecError("connection dsn: expected sqlite:///absolute/path.db")
        path = unquote(parts.path)
    else:
        path = env_keys.get("DB", "")
    if not path.startswith("/"):
        raise RunbookSpecError("a sqlite connection needs an absolute database path")
    if "\0" in path:
        raise RunbookSpecError("the sqlite database path contains a NUL byte")
    return "/" + path.lstrip("/")


def _without_empty(env: dict[str, str], what: str) -> dict[str, str]:
    if any("\0" in v for v in env.values()):
        raise RunbookSpecError(f"{what}: a value contains a NUL byte")
    return {k: v for k, v in env.items() if v}


def utf8_prefix(data: bytes, limit: int) -> bytes:
    """At most `limit` bytes of UTF-8 `data`, never ending inside a character."""
    if len(data) <= limit:
        return data
    end = limit
    while end > 0 and (data[end] & 0xC0) == 0x80:  # a continuation byte: back to its start
        end -= 1
    return data[:end]


class _Output:
    """Takes the program's output lines: redacts, stores, streams, and keeps the head."""

    def __init__(self, handle: IO[str], ctx: ActionContext, cap: int) -> None:
        self._handle = handle
        self._ctx = ctx
        self._cap = cap
        self._head = bytearray()
        self._lock = Lock()
        self.total = 0

    def __call__(self, line: str) -> None:
        clean = self._ctx.redactor.redact(line)
        data = clean.encode()
        with self._lock:
            self._handle.write(clean)
            self.total += len(data)
            room = self._cap + 4 - len(self._head)  # a few over: enough to find a boundary
            if room > 0:
                self._head += data[:room]
        self._ctx.events.emit(
            EventRecord(event_type="output", message=clean.rstrip("\n"), level=EventLevel.DEBUG)
        )

    @property
    def truncated(self) -> bool:
        return self.total > self._cap

    def text(self) -> str:
        return utf8_prefix(bytes(self._head), self._cap).decode("utf-8", errors="replace")


@contextlib.contextmanager
def _secret_files(directory: Path, files: Mapping[str, str]) -> Iterator[dict[str, str]]:
    """Each value written to its own 0600 file; yields NAME → path, removes them all after."""
    paths: dict[str, str] = {}
    try:
        if files:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        for name, value in files.items():
            target = directory / f"{uuid.uuid4().hex}.envfs"
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            paths[name] = str(target)
            with os.fdopen(fd, "wb") as handle:
                handle.write(value.encode())
        yield paths
    finally:
        for path in paths.values():
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        if paths:
            with contextlib.suppress(OSError):
                directory.rmdir()  # only when empty: another action may be using it


@dataclass(frozen=True)
class _Plan:
    argv: list[str]
    env_vars: dict[str, str]
    files: dict[str, str]
    template_env: dict[str, str]
    connection_env: dict[str, str]  # the connection's own keys
    connection_vars: dict[str, str]  # derived from them and the DSN; set last
    stdin: str
    cap: int


def _plan(spec: Mapping[str, Any]) -> _Plan:
    connection = spec.get("connection")
    if not isinstance(connection, dict):
        raise RunbookSpecError("the spec has no connection")
    client_args = spec.get("client_args") or []
    if not isinstance(client_args, list):
        raise RunbookSpecError("client_args must be a list of strings")
    argv, connection_vars = connection_argv_env(connection, client_args)
    stdin = spec.get("input")
    if stdin is None:
        stdin = ""
    if not isinstance(stdin, str):
        raise RunbookSpecError("input must be text")
    cap = spec.get("output_cap", DEFAULT_OUTPUT_CAP)
    if isinstance(cap, bool) or not isinstance(cap, int) or cap < 0:
        raise RunbookSpecError("output_cap must be a whole number of bytes")
    files = spec.get("files") or {}
    if not isinstance(files, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in files.items()
    ):
        raise RunbookSpecError("files must be a map of names to values")
    # File contents may hold any byte; only their names reach the environment.
    _str_map(dict.fromkeys(files, ""), "files")
    return _Plan(
        argv=argv,
        env_vars=_str_map(spec.get("env_vars"), "env_vars"),
        files=files,
        template_env=_str_map(spec.get("template_env"), "template_env"),
        connection_env=_str_map(connection.get("env"), "connection env"),
        connection_vars=connection_vars,
        stdin=stdin,
        cap=cap,
    )


def runbook_env(
    base: Mapping[str, str], plan: _Plan, file_paths: Mapping[str, str]
) -> dict[str, str]:
    """The program's environment: base < connection env < env_vars < files < template_env,
    then every database client variable (PG*, MYSQL*, ...) not set by the connection removed,
    and the connection's own variables (from its DSN) set last.

    The API already refuses client variables in a request or a template; this holds for any
    spec, so nothing but the connection decides where its client connects.
    """
    merged = dict(base) | plan.connection_env | plan.env_vars | dict(file_paths) | plan.template_env
    env = {k: v for k, v in merged.items() if not is_client_variable(k)}
    own = {k: v for k, v in plan.connection_env.items() if is_client_variable(k)}
    return env | own | plan.connection_vars


def _register_secrets(plan: _Plan, redactor: Redactor) -> None:
    """Every secret value the program receives, so none reaches output, events or logs.

    Values that came through secret references were registered when they were opened; this
    adds what was derived from them (a DSN's password) and what came without a reference.
    """
    for values in (plan.connection_env, plan.env_vars, plan.files, plan.template_env):
        for value in values.values():
            redactor.add(value)
    for name in PASSWORD_VARIABLES:
        if plan.connection_vars.get(name):
            redactor.add(plan.connection_vars[name])


def _exit_code(raw: int | None) -> tuple[int, str]:
    """The exit code to report and where it came from."""
    if raw is None:
        return START_FAILED_EXIT_CODE, "none"
    if raw < 0:
        return SIGNAL_EXIT_BASE - raw, "signal"
    return raw, "process"


def _signal_note(code: int, source: str) -> str:
    if source != "signal":
        return ""
    try:
        return f" ({signal.Signals(code - SIGNAL_EXIT_BASE).name})"
    except ValueError:
        return ""


def _connection_dirs(spec: Mapping[str, Any]) -> list[Path]:
    """What the connection's client must reach on this machine inside the sandbox: a sqlite
    database's directory (it writes its journal beside the file)."""
    connection = spec.get("connection") or {}
    if connection.get("type") != "database" or connection.get("subtype") != "sqlite":
        return []
    path = _sqlite_path(str(connection.get("dsn") or ""), _str_map(connection.get("env"), "env"))
    return [Path(path).parent]


def run_runbook(ctx: ActionContext) -> Executed:
    """Run the connection's command with the runbook on its stdin; see the module docstring."""
    try:
        plan = _plan(ctx.spec)
    except RunbookSpecError as exc:
        ctx.write_output("")
        return Executed(error=str(exc), data={"truncated": False, "exit_code_source": "none"})
    _register_secrets(plan, ctx.redactor)
    out_dir = ctx.run_dir / "out"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{ctx.index}.stderr").write_text("")  # one merged stream: all of it is stdout
    timeout = ctx.action.timeout_seconds
    with (
        (out_dir / f"{ctx.index}.stdout").open("w", encoding="utf-8") as handle,
        _secret_files(ctx.run_dir / FILES_DIR, plan.files) as file_paths,
    ):
        output = _Output(handle, ctx, plan.cap)
        env = runbook_env(base_env(), plan, file_paths)
        started = time.monotonic()
        try:
            argv, launch_env = wrap(
                ctx.sandbox,
                plan.argv,
                env,
                workdir=ctx.workdir,
                writable=[ctx.run_dir, ctx.workdir, *_connection_dirs(ctx.spec)],
            )
            outcome = run_process(
                argv,
                cwd=ctx.workdir,
                env=launch_env,
                on_stdout=output,
                on_stderr=output,
                timeout_seconds=timeout,
                cancelled=ctx.control.kill,
                stdin_text=plan.stdin,
                stop_requested=ctx.control.stop,
                merge_stderr=True,
            )
        except OSError as exc:
            reason = f"could not start {plan.argv[0]}: {exc.strerror or exc}"
            output(reason + "\n")
            return Executed(
                stdout=output.text(),
                exit_code=START_FAILED_EXIT_CODE,
                error=ctx.redactor.redact(reason),
                data={
                    "truncated": output.truncated,
                    "exit_code_source": "start_failed",
                    "output_bytes": output.total,
                    "elapsed_ms": 0,
                },
            )
    code, source = _exit_code(outcome.exit_code)
    error = outcome.interruption(timeout)
    if error is None and code != 0:
        error = f"exit code {code}{_signal_note(code, source)}"
    return Executed(
        stdout=output.text(),
        exit_code=code,
        error=error,
        data={
            "truncated": output.truncated,
            "exit_code_source": source,
            "output_bytes": output.total,
            # The program's own run time: hoop's `execution_time`, without the engine's share.
            "elapsed_ms": int((time.monotonic() - started) * 1000),
        },
    )
