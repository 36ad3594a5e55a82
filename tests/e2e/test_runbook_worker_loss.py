"""A worker SIGKILLed while it plans a runbook: another worker plans it, nothing is lost."""

from __future__ import annotations

import asyncio
import json
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from temporalio.client import Client

from core.secrets import SecretBox
from core.store.repositories import save_repository
from core.store.session import transaction
from core.store.users import create_token, upsert_user
from tests.conftest import TEST_SECRET_KEY
from tests.stack import make_repo, make_settings, running_worker, stack_for, worker_process

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

RUNBOOK = "## Objective\n\nUpgrade.\n\n## Steps\n\n### 1 Bump\n\n### 2 Test\n"


@contextmanager
def first_answer_never_comes() -> Iterator[tuple[str, threading.Event, list[str]]]:
    """A chat endpoint whose first request hangs (until released) and later ones answer."""
    release = threading.Event()
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            seen.append(self.path)
            if len(seen) == 1:
                release.wait(120)
                return
            data = json.dumps(
                {"choices": [{"message": {"role": "assistant", "content": RUNBOOK}}]}
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", release, seen
    finally:
        release.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


async def test_a_runbook_whose_worker_dies_mid_plan_is_planned_by_another(
    tmp_path: Path, temporal: Client
) -> None:
    with first_answer_never_comes() as (url, release, seen):
        settings = make_settings(
            tmp_path / "home", secret_key=TEST_SECRET_KEY, planner_url=url, planner_model="m"
        )
        async with stack_for(settings, temporal, worker=False) as stack:
            repo_url = make_repo(tmp_path / "repo", {"src/app.js": "export {}\n"})
            with transaction(stack.sessions) as session:
                doc = {"kind": "Repository", "org": "acme", "name": "web", "url": repo_url}
                save_repository(
                    session,
                    doc,
                    box=SecretBox(settings.secret_key),
                    allowed_schemes=settings.allowed_schemes,
                    user_id=None,
                )
                user = upsert_user(session, "ops@example.com", role="operator")
                _, token = create_token(session, user)
            auth = {"Authorization": f"Bearer {token}"}
            env = {"RUNWRIGHT_PLANNER_URL": url, "RUNWRIGHT_PLANNER_MODEL": "m"}
            proc = worker_process(settings, temporal, tmp_path / "worker.log", extra_env=env)
            try:
                body = {
                    "repository": {"org": "acme", "name": "web"},
                    "prompt": "Upgrade it",
                    "oneshot": False,  # planned only: the steps wait for an execute
                }
                created = await stack.api.post("/api/v1/runbook", json=body, headers=auth)
                assert created.status_code == 202, created.text
                deadline = time.monotonic() + 60
                while not seen:
                    assert time.monotonic() < deadline, (tmp_path / "worker.log").read_text()
                    await asyncio.sleep(0.05)
                proc.send_signal(signal.SIGKILL)
                proc.wait()
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            release.set()
            answer = (await stack.api.get("/api/v1/runbook/1", headers=auth)).json()
            assert answer["status"] == "generating_steps"
            async with running_worker(settings, temporal, stack.sessions, stack.store):
                deadline = time.monotonic() + 150
                while answer["status"] == "generating_steps":
                    assert time.monotonic() < deadline, answer
                    await asyncio.sleep(0.2)
                    response = await stack.api.get("/api/v1/runbook/1", headers=auth)
                    answer = response.json()
    assert answer["status"] == "not_started", answer
    assert answer["steps"]["total"] == answer["steps"]["not_started"] == 2
    assert answer["error"] is None
    assert len(seen) == 2
