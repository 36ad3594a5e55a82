"""Child processes of an action: started in their own group, marked, and killed whole.

A task's own children can outlive their group leader (a daemonised `sleep`, a stuck worker),
so every process of a run carries a marker in its environment, and after the run any process
still carrying it is killed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

MARK_VARIABLE = "RUNWRIGHT_PROCESS_MARK"
# How long a process gets after SIGTERM before SIGKILL.
TERM_GRACE_SECONDS = 2.0
POLL_SECONDS = 0.2


@dataclass(frozen=True)
class ProcessOutcome:
    """How a process ended."""

    exit_code: int | None
    timed_out: bool
    cancelled: bool
    stopped: bool = False  # asked to end (SIGTERM) and did

    def interruption(self, timeout_seconds: float | None) -> str | None:
        """Why the process ended early: "timed out after Ns", "killed" or "stopped" (else None)."""
        if self.timed_out:
            return f"timed out after {timeout_seconds or 0:g}s"
        if self.cancelled:
            return "killed"
        if self.stopped:
            return "stopped"
        return None


def new_mark() -> str:
    """A unique marker value for one action's processes."""
    return uuid.uuid4().hex


def marked_pids(mark: str, cmdline_contains: str | None = None) -> list[int]:
    """Pids of live processes whose environment carries `mark` (and whose command line
    contains `cmdline_contains`, when given)."""
    needle = f"{MARK_VARIABLE}={mark}".encode()
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            if needle not in environ.split(b"\0"):
                continue
            if cmdline_contains and cmdline_contains.encode() not in (
                (entry / "cmdline").read_bytes()
            ):
                continue
        except OSError:
            continue  # gone, or not ours to read
        found.append(int(entry.name))
    return found


def kill_marked(mark: str, cmdline_contains: str | None = None) -> int:
    """SIGKILL every process carrying `mark` (optionally: whose command line contains a
    string); returns how many were signalled."""
    killed = 0
    for _ in range(3):  # a dying parent may fork once more; look again
        pids = marked_pids(mark, cmdline_contains)
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except ProcessLookupError:
                pass
        time.sleep(0.05)
    return killed


def run_process(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    on_stdout: Callable[[str], None],
    on_stderr: Callable[[str], None],
    timeout_seconds: float | None,
    cancelled: Callable[[], bool],
    stdin_text: str | None = None,
    stop_requested: Callable[[], bool] = lambda: False,
    merge_stderr: bool = False,
) -> ProcessOutcome:
    """Run `argv` (never through a shell) streaming its output lines, bounded by time and cancel.

    `cancelled` kills the whole process tree at once (SIGKILL); `stop_requested` asks it to end
    (SIGTERM to its group) and keeps waiting; the timeout asks, then kills after a grace period.
    With `merge_stderr` the child's stderr shares its stdout pipe, so every line reaches
    `on_stdout` in the order the program wrote it, and `on_stderr` is not called.
    Raises OSError when the program cannot be started (missing, not executable).
    """
    mark = new_mark()
    proc = subprocess.Popen(
        list(argv),
        cwd=cwd,
        env={**env, MARK_VARIABLE: mark},
        stdin=subprocess.PIPE if stdin_text is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE,
        start_new_session=True,
        text=True,
        errors="replace",
    )
    readers = [threading.Thread(target=_pump, args=(proc.stdout, on_stdout), daemon=True)]
    if not merge_stderr:
        readers.append(threading.Thread(target=_pump, args=(proc.stderr, on_stderr), daemon=True))
    for reader in readers:
        reader.start()
    # Input is fed from its own thread: a program that does not read it must not keep us
    # from watching the clock and the cancel flags.
    feeder = None
    if stdin_text is not None and proc.stdin is not None:
        feeder = threading.Thread(target=_feed, args=(proc.stdin, stdin_text), daemon=True)
        feeder.start()
    deadline = time.monotonic() + timeout_seconds if timeout_seconds else None
    timed_out = was_cancelled = was_stopped = False
    try:
        while proc.poll() is None:
            if cancelled():
                was_cancelled = True
                _signal_group(proc, signal.SIGKILL)
                break
            if not was_stopped and stop_requested():
                was_stopped = True
                _signal_group(proc, signal.SIGTERM)
            if deadline is not None and time.monotonic() >= deadline:
                timed_out = True
                break
            try:
                proc.wait(timeout=POLL_SECONDS)
            except subprocess.TimeoutExpired:
                continue
        if proc.poll() is None:
            _stop_group(proc)
    finally:
        kill_marked(mark)
        for reader in readers:
            reader.join(timeout=5)
        if feeder is not None:
            feeder.join(timeout=5)
    code = proc.returncode
    return ProcessOutcome(
        exit_code=code, timed_out=timed_out, cancelled=was_cancelled, stopped=was_stopped
    )


def _feed(stream: IO[str], text: str) -> None:
    try:
        stream.write(text)
    except (OSError, ValueError):
        pass  # the program did not read (all of) its input; its exit code says the rest
    finally:
        with contextlib.suppress(OSError, ValueError):
            stream.close()


def _pump(stream: IO[str] | None, sink: Callable[[str], None]) -> None:
    if stream is None:
        return
    for line in stream:
        sink(line)
    stream.close()


def _signal_group(proc: subprocess.Popen[str], sig: signal.Signals) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def _stop_group(proc: subprocess.Popen[str]) -> None:
    """SIGTERM the process group, then SIGKILL what is left after a grace period."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=TERM_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
