"""The `ssh` action: a command on a remote host, run by the system ssh client in the sandbox.

Spec (what `core.store.hosts.host_target` returns, plus what to run):

    address       hostname or IP literal            port       1-65535 (22 when absent)
    user          the login name                    ssh_key_ref  id of the secret holding
    host_key      optional: public keys or known_hosts lines to pin   the private key
    argv          ["word", ...]: exactly these words, each quoted for the remote shell
    command       "a | command line": given to the remote user's shell as it is
    (exactly one of argv and command)

The key is opened here, on the worker, and written as a 0600 file in a directory of the run's
own, removed when the action ends; ssh gets the file's path, never the key. Host keys live in a
known_hosts file of the same directory: with `host_key` the host must present one of those keys
(StrictHostKeyChecking=yes); without, whatever it presents is accepted, and the run's log says
so and shows the key to pin. Nothing of the worker's ssh setup is read (`-F /dev/null`, no
agent, no global known_hosts, no connection sharing).

The address is resolved here and checked against the egress policy (`core.egress`); ssh is
then told to connect to that checked IP address, so a name cannot answer differently for ssh
than it did for the check. Output lines stream as events, masked by the run's redactor, as the
`exec` kind's do; stop and kill end the ssh client's process tree as they end a script's. A
remote program that ignores its closed connection may outlive a stop or kill.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from activities.executors import ActionContext, Executed
from activities.processes import run_process
from activities.sandbox import wrap
from activities.scripts import ERROR_SNIPPET, RESULT_OUTPUT_CAP, base_env
from core import hosts
from core.egress import EgressPolicy, EgressRefused, Resolver, resolve_host
from core.events import EventLevel, EventRecord
from core.hosts import HostKey, HostSpecError

# The name ssh files the host's keys under: fixed, so a pinned key matches whatever address
# the host was reached at, and a learned one is easy to read back.
HOST_ALIAS = "runwright-target"
CONNECT_TIMEOUT_SECONDS = 30
MAX_COMMAND_BYTES = 64 * 1024
MAX_ARGV_WORDS = 4096
NOT_PINNED = "ssh_host_key_not_pinned"
KEY_SEEN = "ssh_host_key_seen"


@dataclass(frozen=True)
class SshRequest:
    """An `ssh` action's spec, checked."""

    address: str
    port: int
    user: str
    key_ref: str
    host_keys: tuple[HostKey, ...]  # empty: not pinned
    remote_command: str  # the one string ssh hands to the remote shell


def remote_command(spec: Mapping[str, Any]) -> str:
    """The command line the remote shell runs: `argv` quoted word by word, or `command`."""
    argv, command = spec.get("argv"), spec.get("command")
    if (argv is None) == (command is None):
        raise HostSpecError("argv", "give exactly one of argv (a list of words) and command")
    if argv is not None:
        if not isinstance(argv, list) or not argv or not all(isinstance(w, str) for w in argv):
            raise HostSpecError("argv", "must be a non-empty list of strings")
        if len(argv) > MAX_ARGV_WORDS:
            raise HostSpecError("argv", f"at most {MAX_ARGV_WORDS} words")
        line = " ".join(shlex.quote(word) for word in argv)
        field = "argv"
    else:
        if not isinstance(command, str) or not command.strip():
            raise HostSpecError("command", "must be a non-empty string")
        line, field = command, "command"
    if "\0" in line:
        raise HostSpecError(field, "contains a NUL byte")
    if len(line.encode()) > MAX_COMMAND_BYTES:
        raise HostSpecError(field, f"must be at most {MAX_COMMAND_BYTES} bytes")
    return line


def ssh_request(spec: Mapping[str, Any]) -> SshRequest:
    """The spec checked field by field; HostSpecError names the first bad one."""
    key_ref = spec.get("ssh_key_ref")
    if not isinstance(key_ref, str) or not key_ref:
        raise HostSpecError("ssh_key_ref", "must be the id of the secret holding the key")
    pinned = spec.get("host_key")
    return SshRequest(
        address=hosts.address(spec.get("address")),
        port=hosts.port(spec.get("port")),
        user=hosts.user(spec.get("user")),
        key_ref=key_ref,
        host_keys=tuple(hosts.host_keys(pinned, "host_key")) if pinned else (),
        remote_command=remote_command(spec),
    )


def _option_path(path: Path) -> str:
    """A path as an ssh -o value (quoted: ssh splits option values at spaces)."""
    if '"' in str(path):
        raise ValueError(f"ssh cannot be given a path containing '\"': {path}")
    return f'"{path}"'


def ssh_argv(
    request: SshRequest,
    connect_to: str,
    *,
    key_file: Path,
    known_hosts: Path,
    connect_timeout: float,
) -> list[str]:
    """The ssh command line: checked address, key file, run-local known_hosts, no other
    configuration; the remote command last, as one word."""
    checking = "yes" if request.host_keys else "accept-new"
    options = {
        "BatchMode": "yes",
        "HostName": connect_to,
        "Port": str(request.port),
        "User": request.user,
        "IdentitiesOnly": "yes",
        "IdentityAgent": "none",
        "HostKeyAlias": HOST_ALIAS,
        "UserKnownHostsFile": _option_path(known_hosts),
        "GlobalKnownHostsFile": "/dev/null",
        "StrictHostKeyChecking": checking,
        "CheckHostIP": "no",
        "UpdateHostKeys": "no",
        "ControlMaster": "no",
        "ControlPath": "none",
        "ForwardAgent": "no",
        "ForwardX11": "no",
        "ClearAllForwardings": "yes",
        "PermitLocalCommand": "no",
        "ConnectTimeout": str(max(1, int(connect_timeout))),
        "ServerAliveInterval": "15",
        "ServerAliveCountMax": "4",
        "LogLevel": "ERROR",
    }
    argv = ["ssh", "-F", "/dev/null", "-T", "-i", str(key_file)]
    for name, value in options.items():
        argv += ["-o", f"{name}={value}"]
    return [*argv, "--", HOST_ALIAS, request.remote_command]


def connect_address(
    address: str, port: int, policy: EgressPolicy, resolve: Resolver = resolve_host
) -> str:
    """The first address `address` resolves to that the policy allows.

    Raises EgressRefused when every answer is refused, OSError when it does not resolve.
    """
    answers = resolve(address, port)
    refused: list[tuple[str, str]] = []
    for answer in answers:
        reason = policy.refusal(answer)
        if reason is None:
            return answer
        refused.append((answer, reason))
    if not refused:
        raise OSError(f"{address} resolves to no address")
    raise EgressRefused(address, refused)


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


def _learned_key(known_hosts: Path) -> HostKey | None:
    """The key ssh accepted and wrote down (accept-new), if it got that far."""
    try:
        text = known_hosts.read_text()
    except OSError:
        return None
    try:
        return hosts.host_keys(text)[0]
    except HostSpecError:
        return None


def _tail(path: Path) -> str:
    """The last RESULT_OUTPUT_CAP bytes of a file, decoded and stripped."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        if size > RESULT_OUTPUT_CAP:
            handle.seek(size - RESULT_OUTPUT_CAP)
        return handle.read().decode("utf-8", errors="replace").strip()


def _sink(ctx: ActionContext, stream: str, handle: IO[str]) -> Callable[[str], None]:
    def write(line: str) -> None:
        clean = ctx.redactor.redact(line)
        handle.write(clean)
        ctx.events.emit(EventRecord(stream, clean.rstrip("\n"), EventLevel.DEBUG))

    return write


def run_ssh(ctx: ActionContext) -> Executed:
    """Run the spec's command on its host over SSH; its output, exit code and errors."""
    try:
        request = ssh_request(ctx.spec)
    except HostSpecError as exc:
        return Executed(error=f"ssh spec: {exc}")
    if ctx.open_ref is None:
        return Executed(error="ssh_key_ref: secrets cannot be opened here")
    try:
        key = hosts.private_key(ctx.open_ref(request.key_ref), "ssh_key_ref")
    except KeyError:
        return Executed(error=f"ssh_key_ref: secret {request.key_ref} not found")
    except HostSpecError as exc:
        return Executed(error=f"ssh spec: {exc}")
    where = f"{request.address}:{request.port}"
    try:
        connect_to = connect_address(request.address, request.port, ctx.http.policy)
    except EgressRefused as exc:
        return Executed(error=str(exc))
    except OSError as exc:
        return Executed(error=f"cannot resolve {request.address}: {exc}")
    if not request.host_keys:
        ctx.events.emit(
            EventRecord(
                NOT_PINNED,
                f"warning: the host key of {where} is not pinned (no host_key): the key it "
                "presents is accepted without checking",
                EventLevel.INFO,
            )
        )
    keys_dir = ctx.run_dir / "ssh" / f"{ctx.index}-{uuid.uuid4().hex[:8]}"
    keys_dir.mkdir(mode=0o700, parents=True)
    try:
        key_file, known_hosts = keys_dir / "identity", keys_dir / "known_hosts"
        _write_private(key_file, key)
        _write_private(known_hosts, hosts.known_hosts_text(list(request.host_keys), HOST_ALIAS))
        timeout = ctx.action.timeout_seconds
        argv = ssh_argv(
            request,
            connect_to,
            key_file=key_file,
            known_hosts=known_hosts,
            connect_timeout=min(timeout or CONNECT_TIMEOUT_SECONDS, CONNECT_TIMEOUT_SECONDS),
        )
        executed = _execute(ctx, argv)
        if not request.host_keys:
            _report_learned_key(ctx, where, known_hosts)
        return executed
    except (OSError, ValueError) as exc:
        return Executed(error=ctx.redactor.redact(f"ssh could not be started: {exc}"))
    finally:
        shutil.rmtree(keys_dir, ignore_errors=True)
        with contextlib.suppress(OSError):
            keys_dir.parent.rmdir()  # only when empty


def _report_learned_key(ctx: ActionContext, where: str, known_hosts: Path) -> None:
    learned = _learned_key(known_hosts)
    if learned is None:
        return
    ctx.events.emit(
        EventRecord(
            KEY_SEEN,
            f"{where} presented {learned.key_type} {learned.fingerprint()}; "
            "give its host this hostKey to pin it",
            EventLevel.INFO,
            data={"host_key": f"{learned.key_type} {learned.blob}"},
        )
    )


def _execute(ctx: ActionContext, argv: list[str]) -> Executed:
    out_dir = ctx.run_dir / "out"
    out_dir.mkdir(parents=True, exist_ok=True)
    stdout_path = out_dir / f"{ctx.index}.stdout"
    stderr_path = out_dir / f"{ctx.index}.stderr"
    env = {k: v for k, v in base_env().items() if k in ("PATH", "LANG", "LC_ALL", "TZ")}
    wrapped, launch_env = wrap(
        ctx.sandbox, argv, env, workdir=ctx.workdir, writable=[ctx.workdir, ctx.run_dir]
    )
    timeout = ctx.action.timeout_seconds
    with stdout_path.open("w") as out, stderr_path.open("w") as err:
        outcome = run_process(
            wrapped,
            cwd=ctx.workdir,
            env=launch_env,
            on_stdout=_sink(ctx, "stdout", out),
            on_stderr=_sink(ctx, "stderr", err),
            timeout_seconds=timeout,
            cancelled=ctx.control.kill,
            stop_requested=ctx.control.stop,
        )
    stdout, stderr = _tail(stdout_path), _tail(stderr_path)
    error = outcome.interruption(timeout)
    if error is None and outcome.exit_code != 0:
        error = (
            f"non-zero exit-code: {outcome.exit_code}. "
            f"(stdout={stdout[-ERROR_SNIPPET:]}) (stderr={stderr[-ERROR_SNIPPET:]})"
        )
    return Executed(stdout, stderr, outcome.exit_code, error)
