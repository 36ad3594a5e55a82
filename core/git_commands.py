"""Running git with protections and credentials that never reach argv, config or disk for long.

Shared by the worker's checkout cache and the API's runbook repository reader: both ask a
remote for refs and fetch commits with the same hardened environment.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import git

from core.egress import EgressPolicy, EgressRefused, Resolver, resolve_host
from core.git_egress import pin_remote, ssh_command
from core.git_urls import KNOWN_SCHEMES, redact_url

_USER_VAR = "RUNWRIGHT_GIT_USERNAME"
_PASSWORD_VAR = "RUNWRIGHT_GIT_PASSWORD"  # noqa: S105  (the variable's name, not a secret)
_BOILERPLATE = frozenset(
    {"Please make sure you have the correct access rights", "and the repository exists."}
)

# The helper only echoes what the git process was given in its environment, so the secret is
# never in the script file, in argv, or in the repository's config.
_ASKPASS_SCRIPT = f"""#!/bin/sh
case "$1" in
  Username*) printf '%s\\n' "${_USER_VAR}" ;;
  Password*) printf '%s\\n' "${_PASSWORD_VAR}" ;;
  *) exit 1 ;;
esac
"""

# Set through GIT_CONFIG_COUNT because GitPython refuses `-c` options in clone/fetch calls.
_PROTECTIVE_CONFIG = (
    ("protocol.ext.allow", "never"),
    ("protocol.fd.allow", "never"),
    # An empty value resets the helper list, so no operator-wide helper stores the password.
    ("credential.helper", ""),
    ("core.hooksPath", os.devnull),
    # Caches remove what is no longer needed; a background gc would race their exports.
    ("gc.auto", "0"),
)


@dataclass(frozen=True)
class _RemoteGuard:
    """The remote a session was opened for, and why git may not reach it (None: it may)."""

    remote: str | None
    refusal: str | None

    def refusal_for(self, args: Sequence[str]) -> str | None:
        """The refusal, for a command that names the refused remote."""
        if self.refusal is not None and self.remote in args:
            return self.refusal
        return None


class GitRunner:
    """Runs git with one environment and redacts the given secrets from its error output."""

    def __init__(
        self,
        env: dict[str, str],
        secrets: Sequence[str],
        timeout: float,
        *,
        guard: _RemoteGuard | None = None,
    ) -> None:
        self.env = env
        self.secrets = [s for s in secrets if s]
        self.timeout = timeout
        self.guard = guard or _RemoteGuard(None, None)

    def run(self, *args: str, cwd: Path | None = None) -> tuple[int, str, str]:
        """(status, stdout, redacted stderr) of `git args...`, one trailing newline dropped
        from each stream. Past the timeout git is killed (status -9).

        subprocess.run rather than a GitPython watchdog: an exception in the calling thread
        (an activity cancelled) kills git at once instead of leaving it, and a timer thread
        that keeps the process alive, for the rest of the timeout."""
        refused = self.guard.refusal_for(args)
        if refused is not None:
            return 128, "", self.redact(refused)
        executable = git.Git.GIT_PYTHON_GIT_EXECUTABLE or "git"
        try:
            done = subprocess.run(
                [executable, *args],
                cwd=cwd,
                # On top of this process's environment, as GitPython ran it (PATH finds ssh).
                env={**os.environ, **self.env},
                capture_output=True,
                timeout=self.timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return -9, "", f"git {args[0] if args else ''} timed out after {self.timeout:g}s"
        out = done.stdout.decode("utf-8", errors="replace").removesuffix("\n")
        err = done.stderr.decode("utf-8", errors="replace").removesuffix("\n")
        return done.returncode, out, self.redact(err)

    def output(self, *args: str) -> bytes | None:
        """The exact bytes `git args...` writes (None when it fails): for file contents."""
        executable = git.Git.GIT_PYTHON_GIT_EXECUTABLE or "git"
        done = subprocess.run(
            [executable, *args],
            env=self.env,
            capture_output=True,
            timeout=self.timeout,
            check=False,
        )
        return done.stdout if done.returncode == 0 else None

    def redact(self, text: str) -> str:
        """`text` with every secret, raw or percent-encoded, replaced by ***."""
        for secret in self.secrets:
            for form in {secret, quote(secret, safe="")}:
                text = text.replace(form, "***")
        return text


def summarize(stderr: str) -> str:
    """git's complaint on one line, without the generic advice that follows every failure."""
    lines = [line.strip() for line in stderr.splitlines()]
    kept = [ln for ln in lines if ln and ln not in _BOILERPLATE and not ln.startswith("hint:")]
    text = "; ".join(kept) or "git gave no reason"
    return text[:2000]


@contextlib.contextmanager
def git_session(
    allowed_schemes: Sequence[str],
    timeout: float,
    *,
    username: str | None = None,
    password: str | None = None,
    ssh_key: str | None = None,
    remote: str | None = None,
    egress: EgressPolicy | None = None,
    resolve: Resolver = resolve_host,
) -> Iterator[GitRunner]:
    """A git runner whose environment carries the protections and the credentials.

    With `remote` (a url that passed `validate_git_url`), git reaches that remote only at
    addresses `egress` allows (by default: public ones): commands naming the remote fail
    without running when its host is refused or does not resolve.
    """
    config = list(_PROTECTIVE_CONFIG)
    env: dict[str, str] = {
        "GIT_TERMINAL_PROMPT": "0",
        # Empty, rather than unset, so neither core.askPass nor SSH_ASKPASS is consulted.
        "GIT_ASKPASS": "",
        "SSH_ASKPASS": "",
        "GIT_ALLOW_PROTOCOL": ":".join(s for s in allowed_schemes if s in KNOWN_SCHEMES),
    }
    ssh_options: list[str] = []
    refusal: str | None = None
    if remote is not None:
        try:
            pin = pin_remote(remote, egress or EgressPolicy(), resolve)
        except EgressRefused as exc:
            refusal = str(exc)
        except OSError as exc:
            refusal = f"cannot resolve the host of {redact_url(remote)}: {exc}"
        else:
            config += pin.config
            env |= pin.env
            ssh_options += pin.ssh_options
    env["GIT_CONFIG_COUNT"] = str(len(config))
    for index, (name, value) in enumerate(config):
        env[f"GIT_CONFIG_KEY_{index}"] = name
        env[f"GIT_CONFIG_VALUE_{index}"] = value
    if ssh_options:
        env["GIT_SSH_COMMAND"] = ssh_command(ssh_options)
    guard = _RemoteGuard(remote, refusal)
    secrets = [s for s in (password, ssh_key) if s]
    if password is None and ssh_key is None:
        yield GitRunner(env, secrets, timeout, guard=guard)
        return

    # mkdtemp makes the directory 0700, outside the cache root so nothing secret lands there.
    scratch = Path(tempfile.mkdtemp(prefix="runwright-git-"))
    try:
        if password is not None:
            askpass = scratch / "askpass.sh"
            fd = os.open(askpass, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o700)
            with os.fdopen(fd, "w") as handle:
                handle.write(_ASKPASS_SCRIPT)
            env["GIT_ASKPASS"] = str(askpass)
            env[_USER_VAR] = username or ""
            env[_PASSWORD_VAR] = password
        if ssh_key is not None:
            key_file = scratch / "id_key"
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                # OpenSSH rejects a private key whose last line lacks its newline.
                handle.write(ssh_key if ssh_key.endswith("\n") else ssh_key + "\n")
            known_hosts = scratch / "known_hosts"
            key_options = [
                "IdentitiesOnly=yes",
                "BatchMode=yes",
                "StrictHostKeyChecking=accept-new",
                f"UserKnownHostsFile={known_hosts}",
            ]
            env["GIT_SSH_COMMAND"] = ssh_command([*key_options, *ssh_options], str(key_file))
        yield GitRunner(env, secrets, timeout, guard=guard)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
