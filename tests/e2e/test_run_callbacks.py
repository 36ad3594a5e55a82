"""A run's callbacks, end to end: each level gets its documents, signed, from a real run."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from temporalio.client import Client

from api.runs import start_run
from core.callbacks import verify
from core.statuses import RunStatus
from tests.conftest import TEST_SECRET_KEY
from tests.stack import add_definition, engine_run, make_settings, stack_for
from workflows.contracts import CallbackSpec

KEY = "callback-signing-key-for-tests"


class Receiver(BaseHTTPRequestHandler):
    """Records every POST: path, body and signature."""

    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.received.append(
            {
                "path": self.path,
                "doc": json.loads(body),
                "signed": verify(body, KEY, dict(self.headers.items())),
            }
        )
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[str]:
    Receiver.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def documents(path: str) -> list[dict[str, Any]]:
    return [r["doc"] for r in Receiver.received if r["path"] == path]


async def test_levels_receive_their_documents(
    tmp_path: Path, temporal: Client, receiver: str
) -> None:
    """DEBUG gets every event, ERROR the failure and the result, RESULT only the result."""
    settings = make_settings(
        tmp_path / "home", secret_key=TEST_SECRET_KEY, callback_signing_key=KEY
    )
    async with stack_for(settings, temporal) as stack:
        spec = {
            "actions": [
                {"name": "ok", "exec": {"script": "echo fine"}},
                {"name": "bad", "exec": {"script": "echo broken >&2; exit 4"}},
            ]
        }
        run, run_input = engine_run(
            add_definition(stack, spec),
            spec,
            callbacks=[
                CallbackSpec(f"{receiver}/debug", "DEBUG"),
                CallbackSpec(f"{receiver}/error", "ERROR"),
                CallbackSpec(f"{receiver}/result", "RESULT"),
            ],
        )
        await start_run(stack.sessions, stack.temporal, settings.task_queue, run, run_input, [])
        row = await stack.wait_status(run.id)
        assert row.status == RunStatus.FAILED
        deadline = time.monotonic() + 20
        while not (documents("/result") and documents("/error")):
            assert time.monotonic() < deadline, Receiver.received
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)  # live DEBUG posts trail the stored events slightly
    assert all(r["signed"] for r in Receiver.received)
    result = documents("/result")
    assert [d["event_type"] for d in result] == ["run_status"]
    assert result[0]["execution_id"] == run.id and result[0]["status"] == "FAILURE"
    errors = documents("/error")
    assert errors[-1]["event_type"] == "run_status"
    assert any(d["event_type"] == "action_finished" for d in errors[:-1])
    debug = [d["event_type"] for d in documents("/debug")]
    assert "stdout" in debug and "stderr" in debug and "action_started" in debug
    assert len(debug) > len(errors)
