"""Where an action's programs run: a bubblewrap sandbox, built as an argv by pure functions.

Every process an action starts (ansible-playbook and its forks, scripts, runbook clients) runs
inside `bwrap` with its own PID namespace and a fresh /proc (so neither /proc/1/environ nor
/proc/$PPID/environ reach the worker), no capabilities, a fresh /dev and /tmp, the system
directories and this Python read-only, an empty HOME, and only the directories of its own run
writable. Nothing else of the worker's file system (its home, RUNWRIGHT_HOME, the database,
the key file, the checkout cache, other runs) is mounted. The network is shared on purpose:
plays need SSH and runbooks their databases.

The environment is built from nothing: the program gets exactly the mapping the executor
declared plus HOME (and PATH and LANG when missing). bwrap is started with that mapping as its
own environment and passes it on, which gives the same result as `--clearenv` followed by one
`--setenv` per variable without putting every value (passwords included) on bwrap's command
line, which any local user can read in /proc. The process marker of activities.processes
travels the same way, so the host-side scan still finds every sandboxed process.

Signals: a stop sends SIGTERM to the process group and waits. bwrap does not forward signals
and would die of it at once, and `--die-with-parent` would then SIGKILL the program before it
could clean up. So bwrap runs with SIGTERM ignored and the program with it restored
(coreutils `env --ignore-signal` / `--default-signal`): the program gets the SIGTERM, bwrap
stays until it exits and reports its status. A SIGKILL ends bwrap, and with it, through
`--die-with-parent` and the PID namespace, everything inside.
"""

from __future__ import annotations

import errno
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "bubblewrap"
SETTING = "RUNWRIGHT_SANDBOX"
# Read-only in every sandbox when they exist (a symlink, as in merged-/usr systems, stays one).
SYSTEM_DIRS = ("/usr", "/etc", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# HOME when the user's own home cannot be used (it is "/" or holds a system directory).
FALLBACK_HOME = "/home/sandbox"
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
DEFAULT_LANG = "C.UTF-8"
PROBE_TIMEOUT_SECONDS = 20.0


class SandboxUnavailable(RuntimeError):
    """This machine cannot build the sandbox; the message says what to install or set."""


@dataclass(frozen=True)
class Mount:
    """A system path as found on this machine: bound read-only, or recreated as a symlink."""

    path: str
    symlink_to: str | None = None


@dataclass(frozen=True)
class Sandbox:
    """This worker's sandbox: the programs that build it and what every sandbox may read."""

    bwrap: str  # absolute path of bwrap
    env_program: str  # absolute path of coreutils env (sets signal dispositions)
    system: tuple[Mount, ...]  # SYSTEM_DIRS present on this machine
    readonly: tuple[str, ...]  # also bound read-only: this Python's prefixes, resolv.conf
    home: str  # HOME inside: an empty tmpfs
    hidden: tuple[str, ...] = ()  # covered by an empty tmpfs if a read-only bind holds them

    def command(
        self,
        argv: Sequence[str],
        env: Mapping[str, str],
        *,
        workdir: Path,
        writable: Iterable[Path],
        readonly: Iterable[Path] = (),
    ) -> tuple[list[str], dict[str, str]]:
        """The argv and environment that run `argv` inside the sandbox.

        The program is looked up on the host with the environment's PATH first, so a missing
        or non-executable program raises OSError as starting it directly would (inside, the
        same PATH finds it again, and its argv[0] stays as given).
        """
        sandbox_env = confined_env(env, home=self.home)
        resolve_program(argv[0], sandbox_env["PATH"], cwd=str(workdir))
        args = bwrap_argv(
            self,
            argv,
            workdir=str(workdir),
            writable=[str(p) for p in writable],
            readonly=[str(p) for p in readonly],
        )
        return args, sandbox_env


def confined_env(env: Mapping[str, str], *, home: str) -> dict[str, str]:
    """The declared environment plus the fixed safe set: HOME inside, PATH and LANG if absent."""
    out = dict(env)
    out["HOME"] = home
    out.setdefault("PATH", DEFAULT_PATH)
    out.setdefault("LANG", DEFAULT_LANG)
    return out


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def outermost(paths: Iterable[str]) -> list[str]:
    """The paths, normalised, without duplicates or any path inside another one (sorted)."""
    normal = sorted({os.path.normpath(p) for p in paths})
    kept: list[str] = []
    for path in normal:
        if not any(_inside(path, k) for k in kept):
            kept.append(path)
    return kept


def bwrap_argv(
    sandbox: Sandbox,
    command: Sequence[str],
    *,
    workdir: str,
    writable: Sequence[str],
    readonly: Sequence[str] = (),
) -> list[str]:
    """The full command line: env (TERM ignored) → bwrap → env (TERM default) → command.

    Later mounts go over earlier ones, so the order is: system directories, the empty /tmp and
    HOME, the read-only binds, tmpfs over hidden paths that those binds would show, and last the
    writable directories of the run.
    """
    args = [sandbox.env_program, "--ignore-signal=TERM", sandbox.bwrap]
    args += ["--die-with-parent", "--unshare-pid", "--cap-drop", "ALL"]
    args += ["--proc", "/proc", "--dev", "/dev"]
    for mount in sandbox.system:
        if mount.symlink_to is not None:
            args += ["--symlink", mount.symlink_to, mount.path]
        else:
            args += ["--ro-bind", mount.path, mount.path]
    # An empty /tmp of its own: no other run's temporary files show.
    args += ["--tmpfs", "/tmp", "--tmpfs", sandbox.home]  # noqa: S108
    shown = outermost([*sandbox.readonly, *readonly])
    for path in shown:
        args += ["--ro-bind", path, path]
    bound = [m.path for m in sandbox.system if m.symlink_to is None] + shown
    for path in outermost(sandbox.hidden):
        if any(_inside(path, b) and path != b for b in bound):
            args += ["--tmpfs", path]
    for path in outermost(writable):
        args += ["--bind", path, path]
    args += ["--chdir", workdir, "--", sandbox.env_program, "--default-signal=TERM", *command]
    return args


def home_for(user_home: str, readonly: Sequence[str]) -> str:
    """HOME inside the sandbox: the user's own path (ssh and git look there, not at $HOME),
    emptied; the fallback when that path is "/" or holds or lies in a read-only directory."""
    home = os.path.normpath(user_home) if user_home.startswith("/") else "/"
    if (
        home == "/"
        or any(_inside(home, d) or _inside(d, home) for d in SYSTEM_DIRS)
        or any(_inside(home, d) for d in readonly)
    ):
        return FALLBACK_HOME
    return home


def resolve_program(program: str, path: str, *, cwd: str) -> str:
    """`program` as execvp in `cwd` would find it on `path`; OSError (ENOENT, EACCES) as
    execvp says."""
    if "/" in program:
        target = os.path.join(cwd, program)
        if not os.path.exists(target):
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), program)
        if os.path.isdir(target) or not os.access(target, os.X_OK):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), program)
        return os.path.normpath(target)
    found = shutil.which(program, path=path)
    if found is None:
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), program)
    return found


def wrap(
    sandbox: Sandbox | None,
    argv: Sequence[str],
    env: Mapping[str, str],
    *,
    workdir: Path,
    writable: Iterable[Path],
    readonly: Iterable[Path] = (),
) -> tuple[list[str], dict[str, str]]:
    """`argv` and `env` as they run: inside `sandbox`, or unchanged when sandboxing is off."""
    if sandbox is None:
        return list(argv), dict(env)
    return sandbox.command(argv, env, workdir=workdir, writable=writable, readonly=readonly)


def _system_mounts() -> tuple[Mount, ...]:
    mounts = []
    for path in SYSTEM_DIRS:
        if os.path.islink(path):
            mounts.append(Mount(path, os.readlink(path)))
        elif os.path.isdir(path):
            mounts.append(Mount(path))
    return tuple(mounts)


def _python_dirs() -> list[str]:
    """What this Python needs to run ansible-playbook inside: its venv and its installation."""
    dirs = {sys.prefix, sys.base_prefix, os.path.dirname(os.path.realpath(sys.executable))}
    return [d for d in dirs if not any(_inside(d, s) for s in SYSTEM_DIRS)]


def _resolver_files() -> list[str]:
    """resolv.conf's target when it lives outside /etc (systemd-resolved's stub file)."""
    target = os.path.realpath("/etc/resolv.conf")
    if os.path.exists(target) and not any(_inside(target, s) for s in SYSTEM_DIRS):
        return [target]
    return []


def unavailable_message(reason: str) -> str:
    """Why the worker refuses to start, and the two ways out."""
    return (
        f"actions cannot run in a sandbox on this machine: {reason}. Install bubblewrap "
        f"(Debian package `{PACKAGE}`) and allow it user namespaces (see docs/security.md), "
        f"or set {SETTING}=off to run actions unconfined (not recommended: every action can "
        "then read the worker's files, processes and their environments)"
    )


def detect(hidden: Iterable[Path] = (), *, path: str | None = None) -> Sandbox:
    """This machine's sandbox, proven by running `true` in it; SandboxUnavailable otherwise.

    `hidden` are worker paths (home, workspace, database) that must never show, even where a
    read-only directory holds them. `path` is where to look for bwrap (default: PATH).
    """
    search = path if path is not None else os.environ.get("PATH", DEFAULT_PATH)
    bwrap = shutil.which("bwrap", path=search)
    if bwrap is None:
        raise SandboxUnavailable(unavailable_message("bwrap was not found on PATH"))
    env_program = shutil.which("env", path=search) or shutil.which("env", path=DEFAULT_PATH)
    if env_program is None:
        raise SandboxUnavailable(unavailable_message("coreutils `env` was not found"))
    readonly = tuple(outermost([*_python_dirs(), *_resolver_files()]))
    sandbox = Sandbox(
        bwrap=bwrap,
        env_program=env_program,
        system=_system_mounts(),
        readonly=readonly,
        home=home_for(pwd.getpwuid(os.getuid()).pw_dir, readonly),
        hidden=tuple(str(Path(p).resolve()) for p in hidden),
    )
    _probe(sandbox)
    return sandbox


def _probe(sandbox: Sandbox) -> None:
    with tempfile.TemporaryDirectory(prefix="rw-sandbox-probe-") as scratch:
        try:
            argv, env = sandbox.command(
                ["true"], {}, workdir=Path(scratch), writable=[Path(scratch)]
            )
            result = subprocess.run(
                argv, env=env, capture_output=True, text=True, timeout=PROBE_TIMEOUT_SECONDS
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SandboxUnavailable(unavailable_message(f"bwrap could not run: {exc}")) from exc
    if result.returncode != 0:
        said = (result.stderr or result.stdout).strip().splitlines()
        detail = said[-1] if said else f"exit code {result.returncode}"
        raise SandboxUnavailable(unavailable_message(f"bwrap failed: {detail}"))
