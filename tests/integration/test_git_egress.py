"""git's own connections obey the egress rules: refused hosts are never contacted, git connects
to the address that was checked (not to a second lookup), and follows no redirect."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from core.egress import EgressPolicy
from core.git_commands import git_session
from tests.servers import LOOPBACK_EGRESS, git_http_server
from tests.stack import git, make_repo

USER, PASSWORD = "deploy", "pw-egress"


def served_remote(root: Path) -> Path:
    make_repo(root / "seed", {"README.md": "hello\n"})
    bare = root / "remote.git"
    git(root, "clone", "--quiet", "--bare", str(root / "seed"), str(bare))
    return bare


class Recorder:
    """An HTTP server on `host` that notes every request and answers as `answer` says."""

    def __init__(self, host: str, redirect_to: str | None = None) -> None:
        self.paths: list[str] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                recorder.paths.append(self.path)
                if redirect_to is None:
                    self.send_response(404)
                else:
                    self.send_response(302)
                    self.send_header("Location", redirect_to + self.path)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer((host, 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://{host}:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def remote(tmp_path: Path) -> Iterator[Any]:
    served_remote(tmp_path / "served")
    with git_http_server(tmp_path / "served", USER, PASSWORD) as server:
        yield server


def test_a_refused_remote_is_never_contacted(remote: Any) -> None:
    url = remote.url("remote.git")
    with git_session(
        ["http"], 30, username=USER, password=PASSWORD, remote=url, egress=EgressPolicy()
    ) as runner:
        status, _, err = runner.run("ls-remote", "--", url)
    assert status != 0
    assert "refused to connect to 127.0.0.1 (loopback)" in err
    assert remote.authorized == [] and remote.refused == []


def test_git_connects_to_the_checked_address_not_a_new_lookup(remote: Any) -> None:
    """The name does not resolve at all: git can only have used the pinned address."""
    port = remote.url("").split(":")[2].split("/")[0]
    url = f"http://git.runwright.invalid:{port}/remote.git"
    with git_session(
        ["http"],
        30,
        username=USER,
        password=PASSWORD,
        remote=url,
        egress=LOOPBACK_EGRESS,
        resolve=lambda host, port: ["127.0.0.1"],
    ) as runner:
        status, out, err = runner.run("ls-remote", "--", url)
    assert status == 0, err
    assert "refs/heads/main" in out
    assert remote.authorized


def test_a_redirect_to_an_unchecked_host_is_not_followed() -> None:
    """127.0.0.1 is allowed; it redirects to 127.0.0.2, which nobody checked."""
    elsewhere = Recorder("127.0.0.2")
    redirector = Recorder("127.0.0.1", redirect_to=elsewhere.url)
    try:
        url = f"{redirector.url}/remote.git"
        with git_session(
            ["http"], 30, remote=url, egress=EgressPolicy.parse("127.0.0.1/32")
        ) as runner:
            status, _, _ = runner.run("ls-remote", "--", url)
        assert status != 0
        assert redirector.paths  # git did ask the checked host
        assert elsewhere.paths == []
    finally:
        redirector.close()
        elsewhere.close()


def test_local_commands_run_even_when_the_remote_is_refused(tmp_path: Path, remote: Any) -> None:
    url = remote.url("remote.git")
    with git_session(["http"], 30, remote=url, egress=EgressPolicy()) as runner:
        status, _, err = runner.run("init", "--bare", "--quiet", "--", str(tmp_path / "new.git"))
    assert status == 0, err
    assert (tmp_path / "new.git" / "HEAD").exists()
