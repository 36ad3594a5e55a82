"""Run one playbook with ansible-runner: a typed, synchronous adapter.

Called from a synchronous activity on a worker thread: plain blocking code, no asyncio. The
caller passes callbacks: `on_event` receives every ansible event as an EventRecord (in the
calling thread, as it happens), `cancelled` is polled about every 0.2 s while the play runs.

Each run gets a fresh private directory (0700) under `private_root`. ansible-runner keeps extra
vars, environment, inventory and the whole process environment in plain text there, so the
directory is deleted when the run ends, whatever the outcome. A canceled or timed-out run also
has its leftover processes (the play's tasks and their children, which outlive the killed
ansible-playbook process group) found by a per-run environment marker and killed.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any

import yaml
from ansible_runner.interface import init_runner
from ansible_runner.runner import Runner

from activities.processes import MARK_VARIABLE, kill_marked
from activities.sandbox import Sandbox
from core.events import EventRecord, level_for

logger = logging.getLogger(__name__)
# The callback plugin that holds a play at a task boundary for a graceful stop.
PLUGIN_DIR = Path(__file__).parent / "ansible_plugins"

# Environment variable set in every process of a run, to find leftovers after a cancel.
# How often ansible-runner polls the cancel callback (and the timeout) while the play is silent.
POLL_SECONDS = 0.2
# Strings in an event's data longer than this are cut (the full text is in the message/stdout).
MAX_DATA_STRING = 8192
# Result fields copied into an event's data.
RESULT_FIELDS = ("msg", "rc", "stdout", "stderr", "changed", "failed")
STAT_KEYS = ("ok", "changed", "failures", "dark", "skipped", "rescued", "ignored")

_ANSI = re.compile(r"\x1b(?:[@-Z\\-_]|\[[0-?]*[ -/]*[@-~])")


@dataclass(frozen=True)
class HostSpec:
    """One inventory host; `vars` become its host variables."""

    name: str
    vars: dict[str, Any] = field(default_factory=dict)
    ssh_private_key: str | None = None  # this host's own key (plaintext), else the play's


@dataclass(frozen=True)
class PlaybookRequest:
    """What to run, where, against which hosts."""

    playbook: str  # path relative to workdir; must stay inside it and exist
    workdir: Path  # the checked-out project directory (ansible-runner's project_dir)
    hosts: list[HostSpec]  # empty: localhost with ansible_connection=local
    extra_vars: dict[str, Any] = field(default_factory=dict)  # passed as data, never templated
    tags: list[str] = field(default_factory=list)
    skip_tags: list[str] = field(default_factory=list)
    limit: list[str] = field(default_factory=list)  # host names, each one of `hosts`
    ssh_private_key: str | None = None  # written 0600 inside the private dir, removed after
    env: dict[str, str] = field(default_factory=dict)  # extra environment for the play
    timeout_seconds: float | None = None  # whole-play bound; on expiry stopped, status "timeout"


@dataclass(frozen=True)
class PlaybookOutcome:
    """How the play ended."""

    status: str  # "successful" | "failed" | "canceled" | "timeout"
    rc: int
    stdout: str  # the play's full output, ANSI colour codes stripped, redacted
    failed_hosts: list[str]  # failed or unreachable, sorted
    unreachable_hosts: list[str]
    host_stats: dict[str, dict[str, int]]  # per host: ok, changed, failures, dark, ...


class PlaybookError(Exception):
    """The request cannot be run as given (missing playbook, path escaping the workdir...)."""


def run_playbook(
    request: PlaybookRequest,
    *,
    private_root: Path,
    on_event: Callable[[EventRecord], None],
    cancelled: Callable[[], bool],
    redact: Callable[[str], str] = lambda s: s,
    stop_requested: Callable[[], bool] = lambda: False,
    sandbox: Sandbox | None = None,
    writable: Iterable[Path] = (),
) -> PlaybookOutcome:
    """Run the playbook to its end (or until `cancelled()` or the timeout), reporting events.

    Blocks the calling thread. `on_event` is called in this thread for every ansible event, then
    once with a final `playbook_result` event; exceptions it raises are logged and ignored.
    `cancelled` is polled about every 0.2 s and on every event (a natural place to heartbeat);
    once it returned True the run is stopped. `redact` is applied to every message, every string
    in event data and the returned stdout. Raises PlaybookError for a request that cannot run.

    `stop_requested` asks for a graceful stop: the play is held at the next task start (after
    the task in progress has finished on every host), then ended; the outcome is "stopped".
    `cancelled` wins over it and ends the play at once.

    With a `sandbox`, ansible-playbook (and so every task it forks) runs inside it, writing
    only to the workdir, the private dir and `writable`, with only the environment this
    adapter and ansible-runner declare.
    """
    playbook_path = _checked_playbook(request)
    inventory, host_names = _inventory(request.hosts)
    limit = _checked_limit(request.limit, host_names)
    extravars_text = _extravars_yaml(request.extra_vars)
    _check_env(request.env)
    if request.timeout_seconds is not None and not request.timeout_seconds > 0:
        raise PlaybookError(f"timeout_seconds must be positive, got {request.timeout_seconds}")

    run_id = uuid.uuid4().hex
    private_root.mkdir(parents=True, exist_ok=True, mode=0o700)
    private_dir = Path(tempfile.mkdtemp(prefix="ansible-", dir=private_root))
    # ssh connections are shared through control sockets; ansible's default directory is the
    # worker's ~/.ansible/cp, where a later run (with another key, or none) would ride on this
    # run's authenticated connection. Each run gets its own, short (sockets have a 108-byte
    # path limit), and its masters end with it.
    control_dir = Path(tempfile.mkdtemp(prefix="rw-cp-"))
    state = _RunState(
        on_event=on_event,
        cancelled=cancelled,
        redact=redact,
        stop_requested=stop_requested,
        stop_file=private_dir / "stop",
        held_file=private_dir / "held",
    )
    stopped = True  # until the run returns normally, assume leftovers may exist
    try:
        envvars = _play_env(request, private_dir, run_id)
        envvars["ANSIBLE_SSH_CONTROL_PATH_DIR"] = str(control_dir)
        _set_local_remote_tmp(inventory, private_dir)
        _write_host_keys(inventory, request.hosts, private_dir)
        (private_dir / "env").mkdir(mode=0o700)
        if extravars_text is not None:
            _write_private(private_dir / "env" / "extravars", extravars_text)
        settings: dict[str, Any] = {
            "pexpect_timeout": POLL_SECONDS,
            "suppress_ansible_output": True,
        }
        if request.timeout_seconds is not None:
            settings["job_timeout"] = request.timeout_seconds
        inherited = dict(os.environ)
        runner = init_runner(
            private_data_dir=str(private_dir),
            project_dir=str(request.workdir),
            playbook=playbook_path,
            inventory=inventory,
            envvars=envvars,
            settings=settings,
            ident=run_id,
            limit=",".join(limit) if limit else None,
            tags=",".join(request.tags) if request.tags else None,
            skip_tags=",".join(request.skip_tags) if request.skip_tags else None,
            quiet=True,
            event_handler=state.handle_event,
            cancel_callback=state.poll_cancel,
        )
        if sandbox is not None:
            _confine(
                runner,
                sandbox,
                declared=envvars,
                inherited=inherited,
                writable=[request.workdir, private_dir, control_dir, *writable],
            )
        runner.run()
        status = "stopped" if state.held else str(runner.status)
        rc = runner.rc if isinstance(runner.rc, int) else -1
        stopped = status in ("canceled", "timeout", "stopped")
        stdout = _read_stdout(Path(runner.config.artifact_dir) / "stdout")
    finally:
        if stopped:
            kill_marked(run_id)
        kill_marked(run_id, cmdline_contains=str(control_dir))  # this run's ssh masters
        shutil.rmtree(control_dir, ignore_errors=True)
        shutil.rmtree(private_dir, ignore_errors=True)
        if private_dir.exists():
            logger.error("could not remove the private directory %s", private_dir)

    outcome = state.outcome(status=status, rc=rc, stdout=redact(stdout))
    summary = (
        f"playbook {outcome.status}, rc={outcome.rc}, "
        f"failed hosts: {', '.join(outcome.failed_hosts) or 'none'}"
    )
    state.emit(
        EventRecord(
            event_type="playbook_result",
            message=redact(summary),
            level=level_for("playbook_result"),
            data=outcome.host_stats,
        )
    )
    return outcome


def runner_env(
    env: Mapping[str, str], *, declared: Mapping[str, str], inherited: Mapping[str, str]
) -> dict[str, str]:
    """The play's environment without what ansible-runner copied from the worker's own.

    ansible-runner starts from a copy of os.environ; what it added or changed on top (its
    callback plugin, artifact dir) and everything this adapter declared is kept.
    """
    return {k: v for k, v in env.items() if k in declared or inherited.get(k) != v}


def _confine(
    runner: Runner,
    sandbox: Sandbox,
    *,
    declared: Mapping[str, str],
    inherited: Mapping[str, str],
    writable: list[Path],
) -> None:
    """Make ansible-runner start ansible-playbook inside the sandbox.

    ansible-runner's own process_isolation also wraps the command in bwrap, but it hands the
    worker's whole environment to the play and binds no Python outside /usr and /opt; wrapping
    its prepared command here gives the play only the environment declared for it.
    """
    config = runner.config
    env = runner_env(config.env, declared=declared, inherited=inherited)
    config.command, config.env = sandbox.command(
        config.command,
        env,
        workdir=Path(config.cwd),
        writable=writable,
        readonly=[PLUGIN_DIR],
    )


class _RunState:
    """Per-run callbacks for ansible-runner: event mapping, sticky cancel, gathered results."""

    def __init__(
        self,
        *,
        on_event: Callable[[EventRecord], None],
        cancelled: Callable[[], bool],
        redact: Callable[[str], str],
        stop_requested: Callable[[], bool],
        stop_file: Path,
        held_file: Path,
    ) -> None:
        self._on_event = on_event
        self._cancelled = cancelled
        self._redact = redact
        self._stop_requested = stop_requested
        self._stop_file = stop_file
        self._held_file = held_file
        self.held = False  # the play stopped at a task boundary
        self._stop = False
        self.stats: dict[str, dict[str, int]] | None = None
        self._failed_seen: set[str] = set()
        self._unreachable_seen: set[str] = set()

    def poll_cancel(self) -> bool:
        """True once the play must end: cancelled, or held after a stop request.

        ansible-runner must never see this raise.
        """
        if not self._stop:
            try:
                self._stop = bool(self._cancelled()) or self._held_after_stop()
            except Exception:
                logger.exception("cancel check failed; the run goes on")
        return self._stop

    def _held_after_stop(self) -> bool:
        if not self._stop_file.exists():
            if not self._stop_requested():
                return False
            self._stop_file.touch()  # the callback plugin holds the play at the next task
        self.held = self._held_file.exists()
        return self.held

    def emit(self, record: EventRecord) -> None:
        try:
            self._on_event(record)
        except Exception:
            logger.exception("event receiver failed on %s", record.event_type)

    def handle_event(self, event: dict[str, Any]) -> bool:
        """ansible-runner's event_handler: must return True or the event is not kept."""
        try:
            self._handle(event)
        except Exception:
            logger.exception("could not handle ansible event %s", event.get("event"))
        self.poll_cancel()
        return True

    def _handle(self, event: dict[str, Any]) -> None:
        event_type = str(event.get("event") or "verbose")
        event_data = event.get("event_data") or {}
        host = event_data.get("host")
        task = event_data.get("task")
        if event_type == "playbook_on_stats":
            self.stats = _host_stats(event_data)
        elif event_type == "runner_on_failed" and host and not event_data.get("ignore_errors"):
            self._failed_seen.add(str(host))
        elif event_type == "runner_on_unreachable" and host:
            self._unreachable_seen.add(str(host))
        data: dict[str, Any] = {}
        res = event_data.get("res")
        if isinstance(res, dict):
            data = {k: self._clean(res[k]) for k in RESULT_FIELDS if k in res}
        self.emit(
            EventRecord(
                event_type=event_type,
                message=self._redact(_clean_text(str(event.get("stdout") or ""))),
                level=level_for(event_type),
                host=str(host) if host else None,
                task=str(task) if task else None,
                data=data,
            )
        )

    def _clean(self, value: Any) -> Any:
        """A JSON-safe, size-bounded, redacted copy of a result value."""
        if isinstance(value, str):
            if len(value) > MAX_DATA_STRING:
                value = value[:MAX_DATA_STRING] + "...[truncated]"
            return self._redact(value)
        if value is None or isinstance(value, bool | int | float):
            return value
        if isinstance(value, dict):
            return {str(k): self._clean(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._clean(v) for v in value]
        return self._clean(json.dumps(value, default=str))

    def outcome(self, *, status: str, rc: int, stdout: str) -> PlaybookOutcome:
        if self.stats is not None:
            stats = self.stats
            unreachable = {h for h, s in stats.items() if s["dark"]}
            failed = {h for h, s in stats.items() if s["failures"]} | unreachable
        else:  # stopped before the recap: what the events said
            stats = {}
            unreachable = set(self._unreachable_seen)
            failed = self._failed_seen | unreachable
        return PlaybookOutcome(
            status=status,
            rc=rc,
            stdout=stdout,
            failed_hosts=sorted(failed),
            unreachable_hosts=sorted(unreachable),
            host_stats=stats,
        )


def _host_stats(event_data: dict[str, Any]) -> dict[str, dict[str, int]]:
    per_key = {k: event_data.get(k) or {} for k in (*STAT_KEYS, "processed")}
    hosts = sorted({str(h) for counts in per_key.values() for h in counts})
    return {h: {k: int(per_key[k].get(h, 0)) for k in STAT_KEYS} for h in hosts}


def _clean_text(text: str) -> str:
    return _ANSI.sub("", text).replace("\r\n", "\n").replace("\r", "\n").strip("\n")


def _read_stdout(path: Path) -> str:
    try:
        raw = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return _ANSI.sub("", raw).replace("\r\n", "\n")


def _checked_playbook(request: PlaybookRequest) -> str:
    """The playbook's absolute path (under the workdir as given, symlinks unresolved)."""
    if not request.playbook or PurePath(request.playbook).is_absolute():
        raise PlaybookError(
            f"playbook must be a path relative to the workdir: {request.playbook!r}"
        )
    try:
        workdir = request.workdir.resolve(strict=True)
    except OSError as exc:
        raise PlaybookError(f"workdir does not exist: {request.workdir}") from exc
    if not workdir.is_dir():
        raise PlaybookError(f"workdir is not a directory: {request.workdir}")
    target = workdir / request.playbook
    resolved = target.resolve()
    if not resolved.is_relative_to(workdir):
        raise PlaybookError(f"playbook leaves the workdir: {request.playbook!r}")
    if not resolved.is_file():
        raise PlaybookError(f"playbook not found in the workdir: {request.playbook!r}")
    return str(target)


def _inventory(hosts: list[HostSpec]) -> tuple[dict[str, Any], list[str]]:
    """ansible-runner's inventory as data (all.hosts.<name>: vars), and the host names."""
    if not hosts:
        hosts = [HostSpec("localhost", {"ansible_connection": "local"})]
    entries: dict[str, dict[str, Any]] = {}
    for host in hosts:
        if not host.name or host.name != host.name.strip():
            raise PlaybookError(f"invalid host name: {host.name!r}")
        if host.name in entries:
            raise PlaybookError(f"host listed twice: {host.name!r}")
        host_vars = dict(host.vars)
        if host_vars.get("ansible_connection") == "local":
            host_vars.setdefault("ansible_python_interpreter", "{{ ansible_playbook_python }}")
        entries[host.name] = host_vars
    try:
        json.dumps(entries)
    except (TypeError, ValueError) as exc:
        raise PlaybookError(f"host vars must be JSON data: {exc}") from exc
    return {"all": {"hosts": entries}}, list(entries)


def _write_host_keys(inventory: dict[str, Any], hosts: list[HostSpec], private_dir: Path) -> None:
    """Each host's own key goes to a 0600 file in the private dir, named in its host vars."""
    keyed = [h for h in hosts if h.ssh_private_key]
    if not keyed:
        return
    keys_dir = private_dir / "keys"
    keys_dir.mkdir(mode=0o700)
    for number, host in enumerate(keyed):
        text = host.ssh_private_key or ""
        path = keys_dir / f"host-{number}"
        _write_private(path, text if text.endswith("\n") else text + "\n")
        inventory["all"]["hosts"][host.name].setdefault("ansible_ssh_private_key_file", str(path))


def _set_local_remote_tmp(inventory: dict[str, Any], private_dir: Path) -> None:
    """Local hosts keep module files (with their arguments) in the private dir, deleted after."""
    for host_vars in inventory["all"]["hosts"].values():
        if host_vars.get("ansible_connection") == "local":
            host_vars.setdefault("ansible_remote_tmp", str(private_dir / "remote-tmp"))


def _checked_limit(limit: list[str], host_names: list[str]) -> list[str]:
    unknown = [name for name in limit if name not in host_names]
    if unknown:
        raise PlaybookError(f"limit names hosts not in the inventory: {', '.join(unknown)}")
    return list(limit)


class _Unsafe(str):
    """A string ansible must take as data, never as a template."""


class _ExtraVarsDumper(yaml.SafeDumper):
    pass


def _represent_unsafe(dumper: yaml.SafeDumper, value: _Unsafe) -> yaml.Node:
    return dumper.represent_scalar("!unsafe", str(value), style='"')


_ExtraVarsDumper.add_representer(_Unsafe, _represent_unsafe)


def _mark_unsafe(value: Any) -> Any:
    if isinstance(value, str):
        return _Unsafe(value)
    if isinstance(value, dict):
        for key in value:
            if not isinstance(key, str):
                raise PlaybookError(f"extra_vars keys must be strings, got {key!r}")
        return {k: _mark_unsafe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_mark_unsafe(v) for v in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    raise PlaybookError(f"extra_vars values must be JSON data, got {type(value).__name__}")


def _extravars_yaml(extra_vars: dict[str, Any]) -> str | None:
    """Extra vars as YAML with every string tagged !unsafe: '{{ ... }}' in a value stays text."""
    if not extra_vars:
        return None
    return yaml.dump(_mark_unsafe(extra_vars), Dumper=_ExtraVarsDumper, allow_unicode=True)


def _check_env(env: dict[str, str]) -> None:
    for key, value in env.items():
        if not isinstance(key, str) or not key or "=" in key or "\0" in key:
            raise PlaybookError(f"invalid environment variable name: {key!r}")
        if not isinstance(value, str) or "\0" in value:
            raise PlaybookError(f"environment variable {key} must be a string without NUL")


def _play_env(request: PlaybookRequest, private_dir: Path, run_id: str) -> dict[str, str]:
    """The environment added to the play's: the caller's, then what this adapter relies on."""
    env = dict(request.env)
    bin_dir = os.path.dirname(sys.executable)
    path = env.get("PATH") or os.environ.get("PATH") or os.defpath
    if path.split(os.pathsep)[0] != bin_dir:
        path = os.pathsep.join([bin_dir, path])
    config = private_dir / "ansible.cfg"
    _write_private(config, "[defaults]\n")
    env.setdefault("ANSIBLE_HOST_KEY_CHECKING", "False")
    env.update(
        {
            "PATH": path,
            "ANSIBLE_CONFIG": str(config),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0",
            "ANSIBLE_RETRY_FILES_ENABLED": "False",
            "ANSIBLE_LOCAL_TEMP": str(private_dir / "local-tmp"),
            MARK_VARIABLE: run_id,
            "ANSIBLE_CALLBACK_PLUGINS": str(PLUGIN_DIR),
            "ANSIBLE_CALLBACKS_ENABLED": "runwright_stop",
            "RUNWRIGHT_STOP_FILE": str(private_dir / "stop"),
            "RUNWRIGHT_STOP_HELD_FILE": str(private_dir / "held"),
        }
    )
    if request.ssh_private_key:
        key_text = request.ssh_private_key
        if not key_text.endswith("\n"):
            key_text += "\n"  # OpenSSH rejects a key without its final newline
        key_path = private_dir / "ssh_private_key"
        _write_private(key_path, key_text)
        env["ANSIBLE_PRIVATE_KEY_FILE"] = str(key_path)
    return env


def _write_private(path: Path, text: str) -> None:
    """Create `path` readable by its owner only, failing if it exists."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
