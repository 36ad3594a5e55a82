"""The `http` action through the whole stack: destinations the egress policy refuses fail the
action with the address named; a huge answer is cut at the body cap, marked, and not read."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client

from activities.http_requests import cut_marker
from core.statuses import RunStatus
from tests.conftest import TEST_SECRET_KEY
from tests.stack import make_settings, stack_for

HUGE = 512 * 1024 * 1024


class Endpoint:
    """A loopback server: `/huge` streams HUGE bytes, anything else answers `ok`."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        self.sent = 0
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                endpoint.paths.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(HUGE if self.path == "/huge" else 2))
                self.end_headers()
                if self.path != "/huge":
                    self.wfile.write(b"ok")
                    return
                chunk = b"x" * 65536
                try:
                    while endpoint.sent < HUGE:
                        self.wfile.write(chunk)
                        endpoint.sent += len(chunk)
                except OSError:
                    pass  # the worker stopped reading

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    running = Endpoint()
    yield running
    running.close()


def playbook(url: str) -> str:
    return f"""
apiVersion: mission-control.flanksource.com/v1
kind: Playbook
metadata: {{name: fetch}}
spec:
  actions:
    - name: fetch
      http: {{url: "{url}"}}
"""


async def test_http_action_to_a_refused_address_fails_naming_it(
    tmp_path: Path, temporal: Client, endpoint: Endpoint
) -> None:
    """Loopback not allowed: the run fails, the action's error names the address and the
    setting, and the endpoint is never called."""
    settings = make_settings(tmp_path / "home", secret_key=TEST_SECRET_KEY, egress_allow="")
    async with stack_for(settings, temporal) as stack:
        items = await stack.apply(playbook(f"{endpoint.url}/secret"))
        run_id = await stack.run({"id": items[0]["id"]})
        row = await stack.wait_status(run_id)
        assert row.status == RunStatus.FAILED
        (action,) = (await stack.get_run(run_id))["actions"]
    assert action["status"] == "failed"
    assert "refused to connect to 127.0.0.1 (loopback)" in action["error"]
    assert "RUNWRIGHT_EGRESS_ALLOW" in action["error"]
    assert endpoint.paths == []


@pytest.mark.slow
async def test_a_huge_answer_is_cut_at_the_cap(
    tmp_path: Path, temporal: Client, endpoint: Endpoint
) -> None:
    """A 512 MiB answer: the action completes with the body cut at the cap and marked, and
    the worker stopped reading long before the end."""
    cap = 64 * 1024
    settings = make_settings(tmp_path / "home", secret_key=TEST_SECRET_KEY, http_body_cap_bytes=cap)
    async with stack_for(settings, temporal) as stack:
        items = await stack.apply(playbook(f"{endpoint.url}/huge"))
        run_id = await stack.run({"id": items[0]["id"]})
        row = await stack.wait_status(run_id, timeout=60)
        assert row.status == RunStatus.SUCCEEDED
        (action,) = (await stack.get_run(run_id))["actions"]
    result = action["result"]
    assert result["code"] == 200 and result["truncated"] is True
    assert result["stdout"] == "x" * cap + cut_marker(cap)
    assert endpoint.sent < 64 * 1024 * 1024


async def test_a_checkout_from_a_refused_address_fails_the_run_without_contacting_it(
    tmp_path: Path, temporal: Client, endpoint: Endpoint
) -> None:
    """git obeys the same rules: a playbook whose repository is on loopback (not allowed
    here) fails at its checkout naming the address, and the host never sees a request."""
    settings = make_settings(
        tmp_path / "home",
        secret_key=TEST_SECRET_KEY,
        egress_allow="",
        git_allowed_schemes="https,http,ssh",
    )
    spec = f"""
apiVersion: mission-control.flanksource.com/v1
kind: Playbook
metadata: {{name: clone}}
spec:
  actions:
    - name: build
      exec: {{script: "echo built", checkout: {{url: "{endpoint.url}/ops.git"}}}}
"""
    async with stack_for(settings, temporal) as stack:
        items = await stack.apply(spec)
        run_id = await stack.run({"id": items[0]["id"]})
        row = await stack.wait_status(run_id)
        run = await stack.get_run(run_id)
    assert row.status == RunStatus.INIT_FAILED
    assert "refused to connect to 127.0.0.1 (loopback)" in (row.error or "")
    assert "built" not in str(run)
    assert endpoint.paths == []
