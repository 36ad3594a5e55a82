"""Programs in the real bubblewrap sandbox: what they see, and how they end."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from activities.processes import MARK_VARIABLE, kill_marked, marked_pids, run_process
from activities.sandbox import SandboxUnavailable, detect
from tests.stack import machine_sandbox


def run(
    tmp_path: Path, script: str, **options: object
) -> tuple[int | None, str, dict[str, object]]:
    """`bash -c script` in the sandbox, writable: tmp_path/run only; (exit code, output)."""
    run_dir = tmp_path / "run"
    run_dir.mkdir(exist_ok=True)
    argv, env = machine_sandbox().command(
        ["bash", "-c", script], {"PATH": "/usr/bin:/bin"}, workdir=run_dir, writable=[run_dir]
    )
    lines: list[str] = []
    outcome = run_process(
        argv,
        cwd=run_dir,
        env=env,
        on_stdout=lines.append,
        on_stderr=lines.append,
        timeout_seconds=options.pop("timeout_seconds", 20),  # type: ignore[arg-type]
        cancelled=options.pop("cancelled", lambda: False),  # type: ignore[arg-type]
        stop_requested=options.pop("stop_requested", lambda: False),  # type: ignore[arg-type]
    )
    return outcome.exit_code, "".join(lines), {"stopped": outcome.stopped}


def test_sees_its_own_processes_only_and_writes_only_its_run(tmp_path: Path) -> None:
    """pid 1 is the sandbox's own; the test's other files are not there; the run dir is."""
    (tmp_path / "neighbour").write_text("not yours")
    code, out, _ = run(
        tmp_path,
        f"echo pid=$$; ls /proc | grep -c '^[0-9]'; cat {tmp_path}/neighbour; "
        "echo made > made.txt; echo home=$HOME; touch /usr/x 2>/dev/null || echo ro",
    )
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "pid=2"  # below bwrap's own init
    assert int(lines[1]) <= 5  # init, bash, ls, grep and not one process of the host
    assert "not yours" not in out
    assert (tmp_path / "run" / "made.txt").read_text() == "made\n"
    assert "ro" in lines


def test_stop_reaches_the_program_which_can_clean_up(tmp_path: Path) -> None:
    """SIGTERM to the group reaches the program, not just bwrap: its trap runs to the end and
    its own exit code comes back."""
    ready = tmp_path / "run" / "ready"
    asked: list[float] = []

    def stop() -> bool:
        if ready.exists():
            asked.append(time.monotonic())
        return bool(asked)

    code, out, info = run(
        tmp_path,
        "trap 'sleep 0.3; echo cleaned; exit 7' TERM; touch ready; sleep 30 & wait",
        stop_requested=stop,
    )
    assert info["stopped"] is True
    assert code == 7
    assert "cleaned" in out


def test_kill_ends_everything_inside(tmp_path: Path) -> None:
    """A kill (SIGKILL to the group) ends the program's daemonised grandchildren too."""
    started = tmp_path / "run" / "started"
    code, _, _ = run(
        tmp_path,
        "(setsid sleep 60 &) ; (sleep 61 &); touch started; sleep 62",
        cancelled=started.exists,
    )
    assert code == -9
    deadline = time.monotonic() + 5
    leftovers = ["60", "61", "62"]
    while leftovers and time.monotonic() < deadline:
        leftovers = [s for s in leftovers if _sleeping(s)]
        time.sleep(0.05)
    assert not leftovers


def _sleeping(seconds: str) -> bool:
    needle = f"sleep\0{seconds}\0".encode()
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "cmdline").read_bytes() == needle:
                return True
        except OSError:
            continue
    return False


def test_the_process_marker_is_found_from_the_host(tmp_path: Path) -> None:
    """The host-side scan finds every sandboxed process by its marker, and kill_marked ends
    them: what a cancelled play's leftovers get."""
    mark = f"mark-{os.getpid()}-{time.monotonic_ns()}"
    argv, env = machine_sandbox().command(
        ["bash", "-c", "sleep 30 & sleep 31"],
        {MARK_VARIABLE: mark},
        workdir=tmp_path,
        writable=[tmp_path],
    )
    proc = subprocess.Popen(argv, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while len(marked_pids(mark)) < 4:  # bwrap, its init and the sleeps (at least)
            assert time.monotonic() < deadline, marked_pids(mark)
            time.sleep(0.05)
        # At least bwrap is signalled; the rest may already be gone with its PID namespace.
        assert kill_marked(mark) >= 1
        assert proc.wait(timeout=5) == -9
        assert marked_pids(mark) == []
    finally:
        proc.kill()
        proc.wait()


def test_missing_program_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        machine_sandbox().command(["no-such-program-rw"], {}, workdir=tmp_path, writable=[])


@pytest.mark.parametrize(
    ("bwrap_script", "reason"),
    [
        (None, "bwrap was not found on PATH"),
        (
            "#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\nexit 1\n",
            "bwrap failed: bwrap: No permissions to create new namespace",
        ),
    ],
)
def test_detect_names_the_package_and_the_setting(
    tmp_path: Path, bwrap_script: str | None, reason: str
) -> None:
    """A machine without a working bwrap gets a message with the way out."""
    (tmp_path / "env").symlink_to("/usr/bin/env")
    if bwrap_script is not None:
        (tmp_path / "bwrap").write_text(bwrap_script)
        (tmp_path / "bwrap").chmod(0o755)
    with pytest.raises(SandboxUnavailable) as refused:
        detect(path=str(tmp_path))
    message = str(refused.value)
    assert reason in message
    assert "Debian package `bubblewrap`" in message
    assert "RUNWRIGHT_SANDBOX=off" in message
