"""Automation runs end to end on the real engine: scripts in the sandbox, local service
control, webhooks; statuses as NOBA names them, timeouts, cancel, and the run-slot queue."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import shutil
import stat
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from sqlalchemy import select

from core.store.models import Run
from core.store.session import transaction
from core.store.users import upsert_user
from tests.stack import ADMIN, Stack, basic
from workflows.contracts import SA_DEFINITION_ID

ADMIN_AUTH = basic(*ADMIN)
OPERATOR = basic("op@corp.test", "pw-op")
TERMINAL = {"done", "failed", "timeout", "cancelled"}

pytestmark = pytest.mark.slow
# Prints the `ref` of the webhook's JSON body, which the script gets as NOBA_PAYLOAD.
PRINT_REF = (
    "python3 -c 'import json, os; "
    """print("ref=" + json.loads(os.environ["NOBA_PAYLOAD"])["ref"])'"""
)


@pytest.fixture
async def noba(stack: Stack) -> Stack:
    with transaction(stack.sessions) as session:
        upsert_user(session, "op@corp.test", password="pw-op", role="operator")
    return stack


async def create(stack: Stack, body: dict[str, Any], auth: dict[str, str] = ADMIN_AUTH) -> str:
    response = await stack.api.post("/api/automations", json=body, headers=auth)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def start(stack: Stack, auto_id: str, body: Any = None) -> dict[str, Any]:
    response = await stack.api.post(f"/api/automations/{auto_id}/run", json=body, headers=OPERATOR)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def run_doc(stack: Stack, run_id: str) -> dict[str, Any]:
    response = await stack.api.get(f"/api/automations/runs/{run_id}", headers=OPERATOR)
    assert response.status_code == 200, response.text
    doc: dict[str, Any] = response.json()
    return doc


async def wait_for(
    stack: Stack, run_id: str, statuses: set[str] = TERMINAL, timeout: float = 60
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        doc = await run_doc(stack, run_id)
        if doc["status"] in statuses:
            return doc
        assert time.monotonic() < deadline, f"run still {doc['status']}: {doc}"
        await asyncio.sleep(0.2)


async def test_a_library_script_runs_with_its_arguments_as_data(noba: Stack) -> None:
    """`disk-cleanup` deletes old files under the directory it is given; an argument with
    shell syntax stays one argument; the run reads as NOBA documents it."""
    auto_id = await create(
        noba,
        {"name": "Clean", "type": "script",
         "params": {"script": "disk-cleanup", "args": ["/nonexistent; echo INJECTED", "7"]}},
        OPERATOR,
    )  # fmt: skip
    answer = await start(noba, auto_id)
    assert answer["run_id"].startswith("run_") and answer["status"] == "running"
    doc = await wait_for(noba, answer["run_id"])
    assert doc["status"] == "failed"  # find: no such directory
    assert "INJECTED" not in doc["output"].replace("echo INJECTED", "")
    assert "/nonexistent; echo INJECTED" in doc["output"]
    assert doc["automation_id"] == auto_id and doc["trigger"] == "manual"
    assert doc["triggered_by"] == "op@corp.test"
    assert isinstance(doc["started"], int) and doc["finished"] >= doc["started"]
    listed = (await noba.api.get(f"/api/automations/{auto_id}", headers=OPERATOR)).json()
    assert listed["last_status"] == "failed" and isinstance(listed["last_run"], int)


async def test_a_command_gets_its_variables_in_the_environment(noba: Stack) -> None:
    """Variables are environment variables, not text spliced into the command."""
    auto_id = await create(
        noba,
        {"name": "Echo", "type": "script",
         "params": {"command": 'echo "hello $PARAM_WHO"; echo "{{ .params.who }}"'}},
    )  # fmt: skip
    answer = await start(noba, auto_id, {"variables": {"who": "$(id -u) world"}})
    doc = await wait_for(noba, answer["run_id"])
    assert doc["status"] == "done", doc
    assert doc["output"] == "hello $(id -u) world\n{{ .params.who }}\n"
    assert doc["variables"] == {"who": "$(id -u) world"}


async def test_exit_codes_timeouts_and_cancel(noba: Stack) -> None:
    failing = await create(noba, {"name": "f", "type": "script", "params": {"command": "exit 3"}})
    slow = await create(
        noba, {"name": "s", "type": "script", "params": {"command": "sleep 30", "timeout": 2}}
    )
    long = await create(
        noba,
        {"name": "l", "type": "script",
         "params": {"command": "trap 'echo got TERM' TERM; echo started; sleep 60 & wait"}},
    )  # fmt: skip
    failed = await start(noba, failing)
    timed = await start(noba, slow)
    cancelled = await start(noba, long)
    assert (await wait_for(noba, failed["run_id"]))["status"] == "failed"
    await wait_for(noba, cancelled["run_id"], {"running"})
    response = await noba.api.post(
        f"/api/automations/runs/{cancelled['run_id']}/cancel", headers=OPERATOR
    )
    assert response.status_code == 200, response.text
    assert (await wait_for(noba, cancelled["run_id"]))["status"] == "cancelled"
    doc = await wait_for(noba, timed["run_id"])
    assert doc["status"] == "timeout", doc
    assert doc["finished"] - doc["started"] < 15
    again = await noba.api.post(
        f"/api/automations/runs/{cancelled['run_id']}/cancel", headers=OPERATOR
    )
    assert again.status_code == 409 and set(again.json()) == {"error"}
    unknown = await noba.api.get("/api/automations/runs/run_" + "0" * 32, headers=OPERATOR)
    assert unknown.status_code == 404 and set(unknown.json()) == {"error"}


async def test_runs_beyond_the_limit_wait_as_queued(noba: Stack) -> None:
    """With RUNWRIGHT_AUTOMATION_MAX_RUNS=3 a fourth run waits, then runs when one ends."""
    auto_id = await create(
        noba, {"name": "hold", "type": "script", "params": {"command": "sleep 3; echo ok"}}
    )
    answers = [await start(noba, auto_id) for _ in range(4)]
    assert [a["status"] for a in answers[:3]] == ["running"] * 3
    assert answers[3]["status"] == "queued"
    assert (await run_doc(noba, answers[3]["run_id"]))["status"] == "queued"
    docs = [await wait_for(noba, a["run_id"]) for a in answers]
    assert [d["status"] for d in docs] == ["done"] * 4
    # The fourth started only once one of the first three had finished.
    assert docs[3]["started"] >= min(d["finished"] for d in docs[:3])


@pytest.fixture
def systemctl_on_path(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A recording `systemctl` first on the worker's PATH (the test machines run no init).

    It lives under this Python's prefix: the sandbox shows that directory (read-only) and
    hides the temporary directories tests usually use."""
    bin_dir = Path(sys.prefix) / f".systemctl-{uuid.uuid4().hex[:8]}"
    bin_dir.mkdir()
    fake = bin_dir / "systemctl"
    fake.write_text('#!/bin/sh\necho "systemctl called with: $*"\n')
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    yield bin_dir
    shutil.rmtree(bin_dir)


async def test_service_control_calls_systemctl_with_an_argv(
    noba: Stack, systemctl_on_path: Path
) -> None:
    auto_id = await create(
        noba,
        {"name": "Restart nginx", "type": "service_control",
         "params": {"service": "nginx.service", "action": "restart"}},
        OPERATOR,
    )  # fmt: skip
    doc = await wait_for(noba, (await start(noba, auto_id))["run_id"])
    assert doc["status"] == "done", doc
    assert doc["output"] == "systemctl called with: restart -- nginx.service\n"
    with noba.sessions() as session:
        run = session.scalars(select(Run).where(Run.definition_id.is_not(None))).one()
        definition_id = run.definition_id
    # Found in Temporal by the automation's id.
    found = [
        w async for w in noba.temporal.list_workflows(f"{SA_DEFINITION_ID} = '{definition_id}'")
    ]
    assert [w.id for w in found] == [run.id]


class Receiver(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        Receiver.received.append(
            {"path": self.path, "headers": dict(self.headers), "body": self.rfile.read(length)}
        )
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[str]:
    Receiver.received.clear()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


async def test_a_webhook_posts_with_its_sealed_headers_and_templates(
    noba: Stack, receiver: str
) -> None:
    auto_id = await create(
        noba,
        {"name": "Notify CI", "type": "webhook",
         "params": {"url": receiver + "/hook", "method": "POST",
                    "headers": {"Authorization": "Bearer tok-123456",
                                "Content-Type": "application/json"},
                    "body": '{"who": "{{ .params.who }}"}'}},
        OPERATOR,
    )  # fmt: skip
    doc = await wait_for(
        noba, (await start(noba, auto_id, {"variables": {"who": "ops"}}))["run_id"]
    )
    assert doc["status"] == "done", doc
    [hit] = Receiver.received
    assert hit["path"] == "/hook" and hit["headers"]["Authorization"] == "Bearer tok-123456"
    assert json.loads(hit["body"]) == {"who": "ops"}
    assert "tok-123456" not in json.dumps(doc)


async def test_webhooks_run_with_their_payload_and_check_signatures(noba: Stack) -> None:
    auto_id = await create(
        noba,
        {"name": "Deploy hook", "type": "script",
         "params": {"command": PRINT_REF}},
    )  # fmt: skip
    item = (await noba.api.get(f"/api/automations/{auto_id}", headers=OPERATOR)).json()
    url = f"/api/automations/webhook/{item['webhook_token']}"
    body = json.dumps({"ref": "refs/heads/main"}).encode()
    answer = await noba.api.post(url, content=body, headers={"Content-Type": "application/json"})
    assert answer.status_code == 200, answer.text
    doc = await wait_for(noba, answer.json()["run_id"])
    assert doc["status"] == "done", doc
    assert doc["output"] == "ref=refs/heads/main\n"
    assert doc["trigger"] == "webhook" and doc["triggered_by"] == ADMIN[0]

    unknown = await noba.api.post("/api/automations/webhook/" + "0" * 64, json={})
    assert unknown.status_code == 404 and set(unknown.json()) == {"error"}

    # With a secret, only a body signed with it runs.
    secret = "hook-signing-secret"
    await noba.api.put(
        f"/api/automations/{auto_id}", json={"webhook_secret": secret}, headers=OPERATOR
    )
    runs_before = await count_runs(noba)
    for signature in (None, "sha256=" + "0" * 64):
        headers = {"Content-Type": "application/json"}
        if signature:
            headers["X-Hub-Signature-256"] = signature
        refused = await noba.api.post(url, content=body, headers=headers)
        assert refused.status_code == 401 and "X-Hub-Signature-256" in refused.json()["error"]
    assert await count_runs(noba) == runs_before
    good = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    signed = await noba.api.post(
        url, content=body, headers={"Content-Type": "application/json", "X-Hub-Signature-256": good}
    )
    assert signed.status_code == 200, signed.text

    # A new token retires the old URL at once.
    fresh = await noba.api.post(f"/api/automations/{auto_id}/webhook-token", headers=OPERATOR)
    assert fresh.status_code == 200 and fresh.json()["webhook_token"] != item["webhook_token"]
    old = await noba.api.post(url, content=body, headers={"Content-Type": "application/json"})
    assert old.status_code == 404
    await wait_for(noba, signed.json()["run_id"])


async def count_runs(stack: Stack) -> int:
    with stack.sessions() as session:
        return len(session.scalars(select(Run.id)).all())


async def test_disabled_automations_and_windows_refuse_with_the_reason(noba: Stack) -> None:
    auto_id = await create(
        noba, {"name": "x", "type": "script", "params": {"command": "true"}, "enabled": False}
    )
    refused = await noba.api.post(f"/api/automations/{auto_id}/run", headers=OPERATOR)
    assert refused.status_code == 409 and "disabled" in refused.json()["error"]
    await noba.api.put(f"/api/automations/{auto_id}", json={"enabled": True}, headers=OPERATOR)
    now = datetime.now(UTC)
    window = await noba.api.post(
        "/api/maintenance",
        json={"name": "Patch night", "start": (now - timedelta(minutes=5)).isoformat(),
              "end": (now + timedelta(hours=1)).isoformat(), "scope": [auto_id],
              "autonomy_override": "disabled"},
        headers=OPERATOR,
    )  # fmt: skip
    assert window.status_code == 201, window.text
    blocked = await noba.api.post(f"/api/automations/{auto_id}/run", headers=OPERATOR)
    assert blocked.status_code == 409
    reason = blocked.json()["error"]
    assert "Patch night" in reason and window.json()["id"] in reason
    item = (await noba.api.get(f"/api/automations/{auto_id}", headers=OPERATOR)).json()
    token = item["webhook_token"]
    by_hook = await noba.api.post(f"/api/automations/webhook/{token}", json={})
    assert by_hook.status_code == 409 and "Patch night" in by_hook.json()["error"]
    assert await count_runs(noba) == 0
    await noba.api.post(f"/api/maintenance/{window.json()['id']}/deactivate", headers=OPERATOR)
    ran = await noba.api.post(f"/api/automations/{auto_id}/run", headers=OPERATOR)
    assert ran.status_code == 200, ran.text
    await wait_for(noba, ran.json()["run_id"])
