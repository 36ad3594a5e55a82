"""Actions whose repository is private: HTTP Basic auth (git http-backend) and an ssh key (sshd).

Credentials are given in the playbook's `checkout` and stored as secrets by the API; the worker
opens them only to run git, and no file it leaves behind may hold them.
"""

from __future__ import annotations

import base64
import json
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from sqlalchemy import select

from core.statuses import RunStatus
from core.store.models import RunEvent
from tests.servers import GitHttpServer, SshServer, git_http_server
from tests.stack import Stack, git, make_repo

pytestmark = pytest.mark.slow

USERNAME = "deploy"
PASSWORD = "s3cr%t:pa55 word!"  # characters that URL- and shell-quoting would change
MARKER = "from the private repository"


@pytest.fixture
def bare_repo(tmp_path: Path) -> Path:
    """A bare repository (branch main) holding marker.txt, under tmp_path/served."""
    make_repo(tmp_path / "work", {"marker.txt": f"{MARKER}\n"})
    bare = tmp_path / "served" / "repo.git"
    bare.parent.mkdir()
    git(tmp_path, "clone", "--quiet", "--bare", str(tmp_path / "work"), str(bare))
    return bare


@pytest.fixture
def git_http(bare_repo: Path) -> Iterator[GitHttpServer]:
    """git http-backend serving `bare_repo` as /repo.git to deploy:<PASSWORD> only."""
    with git_http_server(bare_repo.parent, USERNAME, PASSWORD) as server:
        yield server


def checkout_playbook(name: str, checkout: dict[str, Any]) -> str:
    """A Playbook document (JSON, which is YAML): one exec action in the checked-out tree."""
    return json.dumps(
        {
            "apiVersion": "mission-control.flanksource.com/v1",
            "kind": "Playbook",
            "metadata": {"name": name},
            "spec": {
                "actions": [
                    {"name": "read", "exec": {"script": "cat marker.txt", "checkout": checkout}}
                ]
            },
        }
    )


def password_forms() -> list[str]:
    """The password as text, percent-encoded, and inside a Basic Authorization header."""
    basic = base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode()
    return [PASSWORD, quote(PASSWORD, safe=""), basic]


def files_containing(root: Path, needles: list[str]) -> list[str]:
    found = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            found += [f"{path}: {n[:6]}…" for n in needles if n.encode() in data]
    return found


async def run_to_end(stack: Stack, yaml_text: str) -> tuple[RunStatus, dict[str, Any]]:
    items = await stack.apply(yaml_text)
    run_id = await stack.run({"id": items[0]["id"]})
    row = await stack.wait_status(run_id, timeout=60)
    return RunStatus(row.status), await stack.get_run(run_id)


async def test_http_checkout_with_basic_auth(stack: Stack, git_http: GitHttpServer) -> None:
    """A checkout with username and password clones the private repository over http."""
    checkout = {
        "url": git_http.url("repo.git"),
        "branch": "main",
        "username": USERNAME,
        "password": PASSWORD,
    }
    status, body = await run_to_end(stack, checkout_playbook("private-http", checkout))
    action = body["actions"][0]
    assert status == RunStatus.SUCCEEDED, action
    assert action["result"]["stdout"] == MARKER
    assert git_http.authorized, "the server never served an authenticated request"


async def test_a_clone_slower_than_the_heartbeat_timeout_is_not_a_lost_worker(
    stack: Stack, bare_repo: Path
) -> None:
    """The remote takes 16 s to list its refs, longer than the attempt's heartbeat timeout
    (15 s): the checkout heartbeats while git waits, so it is checked out once and the run
    succeeds instead of being retried as a lost worker."""
    with git_http_server(bare_repo.parent, USERNAME, PASSWORD, ref_delay=16) as slow:
        checkout = {
            "url": slow.url("repo.git"),
            "branch": "main",
            "username": USERNAME,
            "password": PASSWORD,
        }
        items = await stack.apply(checkout_playbook("slow-remote", checkout))
        run_id = await stack.run({"id": items[0]["id"]})
        row = await stack.wait_status(run_id, timeout=120)
        body = await stack.get_run(run_id)
    assert row.status == RunStatus.SUCCEEDED, body
    assert body["actions"][0]["result"]["stdout"] == MARKER
    refs = [p for p in slow.authorized if p.partition("?")[0].endswith("/info/refs")]
    assert len(refs) == 2, slow.authorized  # ls-remote, then the fetch: no second attempt


async def test_http_wrong_password_fails_naming_authentication(
    stack: Stack, git_http: GitHttpServer
) -> None:
    """A wrong password fails the run before any action, saying authentication failed."""
    wrong = "not-the-password-42"
    checkout = {
        "url": git_http.url("repo.git"),
        "branch": "main",
        "username": USERNAME,
        "password": wrong,
    }
    status, body = await run_to_end(stack, checkout_playbook("wrong-password", checkout))
    assert status == RunStatus.INIT_FAILED, body
    assert body["status"] == "failed"
    assert "Authentication failed" in body["error"]
    assert "Authentication failed" in body["actions"][0]["error"]
    assert git_http.refused and not git_http.authorized
    with stack.sessions() as session:
        events = [
            e.message
            for e in session.scalars(select(RunEvent).where(RunEvent.run_id == body["id"]))
        ]
    assert any("Authentication failed" in m for m in events)
    shown = json.dumps(body) + "\n".join(events)
    assert wrong not in shown and quote(wrong, safe="") not in shown
    assert files_containing(stack.settings.home, [wrong]) == []


async def test_http_password_is_left_in_no_file(
    stack: Stack, git_http: GitHttpServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a run no file of the worker (workspace, checkout cache, temp) has the password."""
    # The worker runs in this process: its git askpass helper lands here, and must be removed.
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    checkout = {
        "url": git_http.url("repo.git"),
        "branch": "main",
        "username": USERNAME,
        "password": PASSWORD,
    }
    status, body = await run_to_end(stack, checkout_playbook("no-trace", checkout))
    assert status == RunStatus.SUCCEEDED, body["actions"]
    cache = stack.settings.workspace / "cache"
    assert any(cache.rglob("repo.git")), "the checkout cache was not where expected"
    assert files_containing(stack.settings.home, password_forms()) == []
    assert list(scratch.iterdir()) == []


def ssh_url(sshd: SshServer, bare_repo: Path) -> str:
    return f"ssh://{sshd.user}@{sshd.host}:{sshd.port}{bare_repo}"


async def test_ssh_checkout_with_key(stack: Stack, sshd: SshServer, bare_repo: Path) -> None:
    """A checkout with an ssh key clones the repository over ssh as the key's user."""
    logins = sshd.log().count(f"Accepted publickey for {sshd.user}")
    checkout = {"url": ssh_url(sshd, bare_repo), "branch": "main", "sshKey": sshd.private_key_text}
    status, body = await run_to_end(stack, checkout_playbook("private-ssh", checkout))
    action = body["actions"][0]
    assert status == RunStatus.SUCCEEDED, action
    assert action["result"]["stdout"] == MARKER
    assert sshd.log().count(f"Accepted publickey for {sshd.user}") > logins


async def test_ssh_checkout_with_wrong_key_fails(
    stack: Stack, sshd: SshServer, bare_repo: Path, tmp_path: Path
) -> None:
    """A key sshd does not accept fails the checkout with ssh's reason, the key not shown."""
    key_path = tmp_path / "stranger"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key_path)],
        check=True,
        capture_output=True,
    )
    key = key_path.read_text()
    checkout = {"url": ssh_url(sshd, bare_repo), "branch": "main", "sshKey": key}
    status, body = await run_to_end(stack, checkout_playbook("wrong-ssh-key", checkout))
    assert status == RunStatus.INIT_FAILED, body
    assert "Permission denied (publickey)" in body["error"]
    body_lines = [ln for ln in key.splitlines() if ln and not ln.startswith("-----")]
    assert not [ln for ln in body_lines if ln in json.dumps(body)]


def checkout_event(stack: Stack, run_id: str) -> RunEvent | None:
    """The run's `checkout` event (None when the checkout failed)."""
    with stack.sessions() as session:
        return session.scalar(
            select(RunEvent).where(RunEvent.run_id == run_id, RunEvent.event_type == "checkout")
        )


async def test_cached_private_commit_is_not_handed_to_a_run_without_credentials(
    stack: Stack, git_http: GitHttpServer, bare_repo: Path
) -> None:
    """A full sha that a run fetched with credentials is refused to a run without them; a run
    with the same credentials still gets it from the cache."""
    sha = git(bare_repo, "rev-parse", "main")
    url = git_http.url("repo.git")
    with_credentials = {"url": url, "commit": sha, "username": USERNAME, "password": PASSWORD}
    status, body = await run_to_end(stack, checkout_playbook("fetch-private", with_credentials))
    assert status == RunStatus.SUCCEEDED, body["actions"]
    assert body["actions"][0]["result"]["stdout"] == MARKER

    status, body = await run_to_end(
        stack, checkout_playbook("no-credentials", {"url": url, "commit": sha})
    )
    assert status == RunStatus.INIT_FAILED, body
    assert "not reachable" in body["error"], body["error"]
    assert MARKER not in json.dumps(body)
    assert checkout_event(stack, body["id"]) is None

    status, body = await run_to_end(stack, checkout_playbook("fetch-again", with_credentials))
    assert status == RunStatus.SUCCEEDED, body["actions"]
    event = checkout_event(stack, body["id"])
    assert event is not None and event.data == {"commit": sha, "cached": True}


async def test_cached_private_commit_is_not_handed_to_other_credentials(
    stack: Stack, git_http: GitHttpServer, bare_repo: Path
) -> None:
    """A wrong password for the same URL and full sha asks the remote, and is refused."""
    sha = git(bare_repo, "rev-parse", "main")
    url = git_http.url("repo.git")
    good = {"url": url, "commit": sha, "username": USERNAME, "password": PASSWORD}
    status, body = await run_to_end(stack, checkout_playbook("fetch-private", good))
    assert status == RunStatus.SUCCEEDED, body["actions"]
    wrong = {**good, "password": "guessed-password-1"}
    status, body = await run_to_end(stack, checkout_playbook("wrong-password-cached", wrong))
    assert status == RunStatus.INIT_FAILED, body
    assert "Authentication failed" in body["error"]
    assert MARKER not in json.dumps(body)
