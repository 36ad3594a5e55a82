"""The `ssh` action through the whole stack, against the session's loopback sshd.

A host is applied as a `kind: Host` document, read back with `host_target`, and run through
the engine's one launch service as an `ssh` action, as the Automations API does. The remote
"host" is this machine, so a script the test writes is on the remote side too.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from temporalio.client import Client

from api.launch import LaunchRequest, launch
from core.statuses import RunStatus
from core.store.hosts import host_target
from core.store.models import RunAction, RunEvent
from tests.conftest import TEST_SECRET_KEY
from tests.e2e.test_run_control import control, wait_for_event
from tests.e2e.test_ssh_hosts import accepted_logins, files_containing, key_lines
from tests.servers import SshServer
from tests.stack import Stack, add_definition, make_settings, stack_for
from workflows.contracts import ActionSpec

pytestmark = pytest.mark.slow

RECORDER = """#!/bin/sh
# Records each argument it was given, NUL-terminated, then says how many.
printf '%s\\0' "$@" > "$0.args"
echo "recorded $# words"
"""


def host_document(sshd: SshServer, *, name: str = "box", host_key: str | None = None) -> str:
    doc: dict[str, Any] = {
        "kind": "Host",
        "name": name,
        "address": sshd.host,
        "port": sshd.port,
        "user": sshd.user,
        "sshKey": sshd.private_key_text,
    }
    if host_key is not None:
        doc["hostKey"] = host_key
    return json.dumps(doc)


async def launch_ssh(
    stack: Stack,
    host: str,
    timeout: float | None = None,
    then: list[ActionSpec] | None = None,
    **what: Any,
) -> str:
    """Launch one `ssh` action on the stored host (and `then` after it); the run's id."""
    with stack.sessions() as session:
        target = host_target(session, host)
    assert target is not None
    action = ActionSpec(
        name="remote",
        kind="ssh",
        spec={**target, **what},
        timeout_seconds=timeout,
        templated=False,
    )
    request = LaunchRequest(
        definition_id=add_definition(stack, {}),
        dialect="test",
        title="ssh",
        creator=None,
        actions=[action, *(then or [])],
    )
    run = await launch(stack.app.state.services, request)
    return run.id


async def outcome(
    stack: Stack, run_id: str, index: int = 0
) -> tuple[RunStatus, dict[str, Any], list[RunEvent]]:
    """Once the run ends: its status, action `index` (status, error, result) and its events."""
    row = await stack.wait_status(run_id, timeout=60)
    with stack.sessions() as session:
        action_row = session.scalars(
            select(RunAction).where(RunAction.run_id == run_id, RunAction.idx == index)
        ).one()
        found = {
            "status": action_row.status,
            "error": action_row.error,
            **(action_row.result or {}),
        }
        events = list(
            session.scalars(
                select(RunEvent).where(RunEvent.run_id == run_id).order_by(RunEvent.seq)
            )
        )
        session.expunge_all()
    return RunStatus(row.status), found, events


async def ssh_run(
    stack: Stack, host: str, timeout: float | None = None, **what: Any
) -> tuple[RunStatus, dict[str, Any], list[RunEvent]]:
    """Run one `ssh` action on the stored host to its end."""
    return await outcome(stack, await launch_ssh(stack, host, timeout, **what))


def messages(events: list[RunEvent], event_type: str) -> list[str]:
    return [e.message for e in events if e.event_type == event_type]


@pytest.fixture
def recorder(tmp_path: Path) -> Path:
    """A script on the remote host that records its arguments."""
    path = tmp_path / "remote-bin" / "record"
    path.parent.mkdir()
    path.write_text(RECORDER)
    path.chmod(0o755)
    return path


@pytest.fixture
def wrong_host_key(tmp_path: Path) -> str:
    """A valid host public key that is not the sshd's."""
    path = tmp_path / "other_host"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)],
        check=True,
        capture_output=True,
    )
    return (tmp_path / "other_host.pub").read_text()


async def test_argv_words_arrive_intact(stack: Stack, sshd: SshServer, recorder: Path) -> None:
    """Spaces, quotes, `$`, globs and empty words reach the remote program as given."""
    await stack.apply(host_document(sshd, host_key=sshd.host_public_key))
    words = ["a b", "it's", '"quoted"', "$HOME", "*", "", "semi;colon", "back\\slash", "new\nline"]
    logins = accepted_logins(sshd)
    status, action, events = await ssh_run(stack, "box", argv=[str(recorder), *words])
    assert status == RunStatus.SUCCEEDED, action
    recorded = Path(f"{recorder}.args").read_bytes().split(b"\0")[:-1]
    assert [w.decode() for w in recorded] == words
    assert action["exitCode"] == 0
    assert action["stdout"] == f"recorded {len(words)} words"
    assert messages(events, "stdout") == [f"recorded {len(words)} words"]
    assert messages(events, "ssh_host_key_not_pinned") == []  # pinned: no warning
    assert accepted_logins(sshd) == logins + 1


async def test_command_line_runs_in_the_remote_shell(stack: Stack, sshd: SshServer) -> None:
    """A command is the remote shell's: pipes and redirections work; stderr streams apart."""
    await stack.apply(host_document(sshd, host_key=sshd.host_public_key))
    command = "printf 'b\\na\\n' | sort | tr a-z A-Z; echo to-stderr >&2; id -un"
    status, action, events = await ssh_run(stack, "box", command=command)
    assert status == RunStatus.SUCCEEDED, action
    assert action["stdout"] == f"A\nB\n{sshd.user}"
    assert action["stderr"] == "to-stderr"
    assert messages(events, "stdout") == ["A", "B", sshd.user]
    assert messages(events, "stderr") == ["to-stderr"]


async def test_non_zero_exit_fails_with_its_code(stack: Stack, sshd: SshServer) -> None:
    """The remote exit code is the action's; non-zero fails the action and the run."""
    await stack.apply(host_document(sshd, host_key=sshd.host_public_key))
    status, action, _ = await ssh_run(stack, "box", command="echo partial; exit 7")
    assert status == RunStatus.FAILED
    assert action["status"] == "failed"
    assert action["exitCode"] == 7
    assert action["error"].startswith("non-zero exit-code: 7. (stdout=partial)")


async def test_wrong_host_key_refuses_to_log_in(
    stack: Stack, sshd: SshServer, recorder: Path, wrong_host_key: str
) -> None:
    """A host presenting another key than the pinned one is not logged in to."""
    await stack.apply(host_document(sshd, host_key=wrong_host_key))
    logins = accepted_logins(sshd)
    status, action, _ = await ssh_run(stack, "box", argv=[str(recorder), "x"])
    assert status == RunStatus.FAILED
    assert action["exitCode"] == 255
    assert "Host key verification failed" in action["stderr"]
    assert accepted_logins(sshd) == logins
    assert not Path(f"{recorder}.args").exists()


async def test_unpinned_host_key_is_accepted_with_a_warning(
    stack: Stack, sshd: SshServer, tmp_path: Path
) -> None:
    """Without hostKey the run logs in, says the key was not pinned, and shows the key seen."""
    await stack.apply(host_document(sshd))
    status, action, events = await ssh_run(stack, "box", command="echo hi")
    assert status == RunStatus.SUCCEEDED, action
    (warning,) = messages(events, "ssh_host_key_not_pinned")
    assert warning.startswith(f"warning: the host key of {sshd.host}:{sshd.port} is not pinned")
    (seen,) = [e for e in events if e.event_type == "ssh_host_key_seen"]
    key_type, blob = sshd.host_public_key.split()[:2]
    assert seen.data == {"host_key": f"{key_type} {blob}"}
    pub = tmp_path / "host.pub"
    pub.write_text(sshd.host_public_key + "\n")
    fingerprint = subprocess.run(
        ["ssh-keygen", "-lf", str(pub)], check=True, capture_output=True, text=True
    ).stdout.split()[1]
    assert fingerprint in seen.message
    # The warning comes before the connection's output.
    kinds = [e.event_type for e in events]
    assert kinds.index("ssh_host_key_not_pinned") < kinds.index("stdout")


async def test_key_is_masked_and_gone_afterwards(stack: Stack, sshd: SshServer) -> None:
    """A command that prints the key file shows it masked; no event, result or file keeps it,
    and the run's key directory is gone."""
    await stack.apply(host_document(sshd, host_key=sshd.host_public_key))
    runs = stack.settings.workspace / "runs"
    command = f"cat {runs}/*/ssh/*/identity; ls -d {runs}/*/ssh/*"
    status, action, events = await ssh_run(stack, "box", command=command)
    assert status == RunStatus.SUCCEEDED, action
    needles = key_lines(sshd.private_key_text)
    assert "********" in action["stdout"]
    # While it ran, the key lived in a directory of the run's own...
    assert "/ssh/0-" in action["stdout"]
    texts = json.dumps(action) + json.dumps([[e.message, e.data] for e in events])
    assert not [n for n in needles if n in texts]
    # ...and nothing of it is left anywhere under the worker's home.
    assert files_containing(stack.settings.home, needles) == []
    assert not list(runs.rglob("identity"))


async def test_key_directory_is_gone_when_the_action_ends(stack: Stack, sshd: SshServer) -> None:
    """The next action of the same run, which sees the run's directory, finds no key there."""
    await stack.apply(host_document(sshd, host_key=sshd.host_public_key))
    look = ActionSpec(
        name="look", kind="exec", spec={"script": "ls -a ..; ls -R ../ssh 2>&1 || true"}
    )
    run_id = await launch_ssh(stack, "box", then=[look], command="echo hi")
    status, listing, _ = await outcome(stack, run_id, index=1)
    assert status == RunStatus.SUCCEEDED, listing
    assert "work-0" in listing["stdout"].split()  # it does see the run's directory
    assert "ssh" not in listing["stdout"].split()
    assert "identity" not in listing["stdout"]


async def test_kill_ends_the_ssh_client_at_once(stack: Stack, sshd: SshServer) -> None:
    """A kill ends a long remote command's connection; the run ends killed in seconds."""
    await stack.apply(host_document(sshd, host_key=sshd.host_public_key))
    run_id = await launch_ssh(stack, "box", command="echo started; sleep 60; echo never")
    await wait_for_event(stack, run_id, "stdout", "started")
    killed_at = time.monotonic()
    await control(stack, run_id, "kill")
    status, action, events = await outcome(stack, run_id)
    assert status == RunStatus.KILLED
    assert action["error"] == "killed"
    assert time.monotonic() - killed_at < 15
    assert "never" not in messages(events, "stdout")


async def test_timeout_ends_the_ssh_client(stack: Stack, sshd: SshServer) -> None:
    """The action's timeout ends the connection and fails the action, well before the command."""
    await stack.apply(host_document(sshd, host_key=sshd.host_public_key))
    started = time.monotonic()
    status, action, events = await ssh_run(
        stack, "box", timeout=2, command="echo started; sleep 30; echo never"
    )
    assert status == RunStatus.FAILED
    assert action["error"] == "timed out after 2s"
    assert messages(events, "stdout") == ["started"]
    assert time.monotonic() - started < 20


async def test_address_refused_by_egress_is_never_connected_to(
    tmp_path: Path, temporal: Client, sshd: SshServer
) -> None:
    """With loopback not allowed, the action fails naming the address and the setting, and
    sshd sees no connection at all."""
    settings = make_settings(tmp_path / "home", secret_key=TEST_SECRET_KEY, egress_allow="")
    async with stack_for(settings, temporal) as stack:
        await stack.apply(host_document(sshd, host_key=sshd.host_public_key))
        connections = sshd.log().count("Connection from")
        status, action, _ = await ssh_run(stack, "box", command="echo hi")
    assert status == RunStatus.FAILED
    assert action["status"] == "failed"
    assert "refused to connect to 127.0.0.1 (loopback)" in action["error"]
    assert "RUNWRIGHT_EGRESS_ALLOW" in action["error"]
    assert sshd.log().count("Connection from") == connections
