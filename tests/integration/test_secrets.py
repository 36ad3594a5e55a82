"""Secrets through a whole runwright: at rest, in the API, in run output, in Temporal, in logs.

One playbook run (an exec action using a secret env var, an http action sending a secret
header to a local server) is made once for the module; each test checks one place the value
could have leaked to. The value is unique to this module, so no other test can have taught
the process-wide log redactor about it.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import MetaData, Table, inspect, select
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory
from temporalio.testing import WorkflowEnvironment

from core.secrets import ENCRYPTED_ENCODING, MASK, install_log_redaction, log_redactor
from core.statuses import RunStatus
from core.store.models import Definition, RunEvent, Secret
from tests.conftest import TEST_SECRET_KEY
from tests.history import payloads_in
from tests.stack import ADMIN, Stack, basic, make_settings, stack_for
from workflows.contracts import EXECUTE_ACTION, SEARCH_ATTRIBUTES

# Distinctive, and unique to this module's run.
VALUE = f"s3cr3t-Value-9f2c-{uuid.uuid4().hex[:8]}"
HEADER_VALUE = f"Bearer {VALUE}"
PLAYBOOK_ID = "7c1f3c86-5d0e-4a57-9f0b-1a2b3c4d5e6f"
CONFIG_ID = "0189f7b0-e0c7-944f-1f86-3e554392fd2c"
# Payloads the codec never sees, by Temporal's design: search attributes (visible so that
# runs can be found), and the bookkeeping the SDK core records for each local activity.
SEARCH_ATTRIBUTES_FIELD = ".search_attributes."
LOCAL_ACTIVITY_MARKER_DATA = ".marker_recorded_event_attributes.details[data]."
MARKER_DATA_KEYS = {
    "seq", "attempt", "activity_id", "activity_type", "complete_time", "backoff",
    "original_schedule_time", "activation_index",
}  # fmt: skip


def playbook(url: str) -> str:
    return f"""
apiVersion: mission-control.flanksource.com/v1
kind: ConfigItem
id: {CONFIG_ID}
name: vault-client
type: Secrets::Client
---
apiVersion: mission-control.flanksource.com/v1
kind: Playbook
id: {PLAYBOOK_ID}
metadata: {{name: secret-use}}
spec:
  description: uses a token and an authorization header
  configs: [{{type: "Secrets::Client"}}]
  actions:
    - name: use-token
      exec:
        script: |
          echo "token=$TOKEN"
          sleep 2
        env:
          - {{name: TOKEN, value: "{VALUE}"}}
        artifacts: [{{path: /dev/stdout}}]
    - name: call-api
      http:
        url: "{url}/hook"
        headers:
          - {{name: Authorization, value: "{HEADER_VALUE}"}}
"""


# --------------------------------------------------------------------------------------------
# Helpers: a header-recording server, a log capture, a /proc scanner.
# --------------------------------------------------------------------------------------------


@contextmanager
def recording_server() -> Iterator[tuple[str, list[dict[str, str]]]]:
    """A local HTTP server recording each request's headers; it echoes Authorization back
    in its body and in a response header, as debugging endpoints do."""
    seen: list[dict[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            headers = dict(self.headers.items())
            seen.append(headers)
            auth = headers.get("Authorization", "")
            body = f"auth={auth}".encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("X-Echo-Authorization", auth)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


class Capture(logging.Handler):
    """Every record any logger emits, fully rendered (message, exception, extras)."""

    STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        extras = {k: v for k, v in vars(record).items() if k not in self.STANDARD}
        self.lines.append(f"{self.format(record)} {extras!r}")


@contextmanager
def root_logging_captured() -> Iterator[Capture]:
    """The root logger at DEBUG with a capturing handler, redaction installed on the root
    handlers as every runwright process installs it, for the duration of the block."""
    root = logging.getLogger()
    handler = Capture()
    level = root.level
    root.setLevel(logging.DEBUG)
    root.addHandler(handler)
    before = {h: list(h.filters) for h in root.handlers}
    install_log_redaction()
    try:
        yield handler
    finally:
        for h, filters in before.items():
            h.filters[:] = filters
        root.removeHandler(handler)
        root.setLevel(level)


@dataclass
class ProcScan:
    """What a /proc scan saw while the run went on."""

    scans: int = 0
    leaks: list[tuple[int, bytes]] = field(default_factory=list)
    # The script's own bash process, seen alive, with the value in its environment.
    script_seen_with_value_in_env: bool = False


def scan_proc(needle: bytes, script_marker: bytes, result: ProcScan, stop: threading.Event) -> None:
    """Read every process's command line until stopped, recording any that holds `needle`."""
    while not stop.is_set():
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if needle in cmdline:
                result.leaks.append((int(entry.name), cmdline))
            if script_marker in cmdline and b"bash" in cmdline:
                try:
                    environ = (entry / "environ").read_bytes().split(b"\0")
                except OSError:
                    continue
                if b"TOKEN=" + needle in environ:
                    result.script_seen_with_value_in_env = True
        result.scans += 1
        time.sleep(0.01)


# --------------------------------------------------------------------------------------------
# The run, made once.
# --------------------------------------------------------------------------------------------


@dataclass
class SecretRun:
    """The finished run and everything observed while it went on."""

    stack: Stack
    run_id: str
    status: str
    requests: list[dict[str, str]]
    logs: list[str]
    proc: ProcScan
    history: WorkflowHistory


@pytest.fixture(scope="module")
async def secret_run(
    tmp_path_factory: pytest.TempPathFactory, temporal_env: WorkflowEnvironment
) -> AsyncIterator[SecretRun]:
    """Apply the playbook and run it to the end, capturing logs and scanning /proc meanwhile."""
    assert log_redactor.redact(VALUE) == VALUE, "the redactor must not know the value beforehand"
    home = tmp_path_factory.mktemp("secrets") / "home"
    settings = make_settings(home, secret_key=TEST_SECRET_KEY)
    marker = f"{settings.workspace.resolve()}/runs/".encode()
    proc, stop = ProcScan(), threading.Event()
    scanner = threading.Thread(target=scan_proc, args=(VALUE.encode(), marker, proc, stop))
    with recording_server() as (url, requests), root_logging_captured() as capture:
        async with stack_for(settings, temporal_env.client) as stack:
            scanner.start()
            try:
                await stack.apply(playbook(url))
                run_id = await stack.run({"id": PLAYBOOK_ID, "config_id": CONFIG_ID})
                row = await stack.wait_status(run_id, timeout=30)
            finally:
                stop.set()
                scanner.join()
            history = await stack.temporal.get_workflow_handle(run_id).fetch_history()
            yield SecretRun(
                stack=stack,
                run_id=run_id,
                status=row.status,
                requests=requests,
                logs=capture.lines,
                proc=proc,
                history=history,
            )


def all_rows(run: SecretRun) -> dict[str, list[str]]:
    """Every row of every table in the run's database, as text."""
    out: dict[str, list[str]] = {}
    with run.stack.sessions() as session:
        conn = session.connection()
        for name in inspect(conn).get_table_names():
            table = Table(name, MetaData(), autoload_with=conn)
            out[name] = [repr(tuple(r)) for r in conn.execute(select(table))]
    return out


# --------------------------------------------------------------------------------------------
# The run itself did what it should: otherwise the absence of the value proves nothing.
# --------------------------------------------------------------------------------------------


async def test_run_succeeds_and_the_server_got_the_real_header(secret_run: SecretRun) -> None:
    """The run succeeds, and the http action sent the real Authorization value."""
    assert secret_run.status == RunStatus.SUCCEEDED
    assert len(secret_run.requests) == 1
    assert secret_run.requests[0]["Authorization"] == HEADER_VALUE


# --------------------------------------------------------------------------------------------
# At rest
# --------------------------------------------------------------------------------------------


async def test_stored_spec_holds_references_not_values(secret_run: SecretRun) -> None:
    """The stored definition spec holds secret references in place of the values."""
    with secret_run.stack.sessions() as session:
        spec = session.get(Definition, PLAYBOOK_ID).spec  # type: ignore[union-attr]
    text = json.dumps(spec)
    assert VALUE not in text
    env_value = spec["actions"][0]["exec"]["env"][0]["value"]
    header_value = spec["actions"][1]["http"]["headers"][0]["value"]
    assert set(env_value) == {"secretRef"} and set(header_value) == {"secretRef"}


async def test_no_table_holds_the_value(secret_run: SecretRun) -> None:
    """No row of any table, as text, contains the value."""
    rows = all_rows(secret_run)
    assert {"definitions", "secrets", "run_events", "run_actions"} <= set(rows)
    leaks = {t: [r for r in rs if VALUE in r] for t, rs in rows.items()}
    assert {t: rs for t, rs in leaks.items() if rs} == {}


async def test_no_file_under_home_holds_the_value(secret_run: SecretRun) -> None:
    """No file runwright wrote (database, its journal, artifacts, workspace) holds the value."""
    home = secret_run.stack.settings.home
    files = [p for p in home.rglob("*") if p.is_file()]
    assert any(p.suffix == ".db" for p in files)
    assert [str(p) for p in files if VALUE.encode() in p.read_bytes()] == []


async def test_secrets_table_holds_ciphertext_of_the_values(secret_run: SecretRun) -> None:
    """Each secret row is ciphertext that the deployment key opens to one of the values."""
    with secret_run.stack.sessions() as session:
        spec = session.get(Definition, PLAYBOOK_ID).spec  # type: ignore[union-attr]
        refs = {
            spec["actions"][0]["exec"]["env"][0]["value"]["secretRef"]: VALUE,
            spec["actions"][1]["http"]["headers"][0]["value"]["secretRef"]: HEADER_VALUE,
        }
        rows = {ref: session.get(Secret, ref) for ref in refs}
    fernet = Fernet(TEST_SECRET_KEY.encode())
    for ref, plain in refs.items():
        row = rows[ref]
        assert row is not None
        assert VALUE not in row.ciphertext
        assert fernet.decrypt(row.ciphertext.encode()).decode() == plain


# --------------------------------------------------------------------------------------------
# API
# --------------------------------------------------------------------------------------------


async def test_playbook_list_masks_the_values(secret_run: SecretRun) -> None:
    """`/playbook/list` shows the mask where each secret was, and no value or reference."""
    response = await secret_run.stack.api.get(
        "/playbook/list", params={"config_id": CONFIG_ID}, headers=basic(*ADMIN)
    )
    assert response.status_code == 200, response.text
    assert VALUE not in response.text
    assert "secretRef" not in response.text
    (item,) = [p for p in response.json() if p["id"] == PLAYBOOK_ID]
    actions = item["spec"]["actions"]
    assert actions[0]["exec"]["env"] == [{"name": "TOKEN", "value": MASK}]
    assert actions[1]["http"]["headers"] == [{"name": "Authorization", "value": MASK}]


# --------------------------------------------------------------------------------------------
# Run output
# --------------------------------------------------------------------------------------------


async def test_run_result_shows_the_mask(secret_run: SecretRun) -> None:
    """`GET /playbook/run/{id}` shows `token=********`, and the echoed header masked."""
    response = await secret_run.stack.api.get(
        f"/playbook/run/{secret_run.run_id}", headers=basic(*ADMIN)
    )
    assert response.status_code == 200, response.text
    assert VALUE not in response.text
    exec_action, http_action = response.json()["actions"]
    assert exec_action["result"]["stdout"] == f"token={MASK}"
    assert http_action["status"] == "completed"
    assert http_action["result"]["stdout"] == f"auth={MASK}"
    assert http_action["result"]["headers"]["x-echo-authorization"] == MASK


async def test_run_events_hold_no_value(secret_run: SecretRun) -> None:
    """The run's stored events hold the masked output line, never the value."""
    with secret_run.stack.sessions() as session:
        events = session.scalars(
            select(RunEvent).where(RunEvent.run_id == secret_run.run_id).order_by(RunEvent.seq)
        ).all()
        rendered = [f"{e.message} {json.dumps(e.data)}" for e in events]
    assert [e for e in rendered if VALUE in e] == []
    assert any(f"token={MASK}" in e for e in rendered)


async def test_stdout_artifact_holds_no_value(secret_run: SecretRun) -> None:
    """The /dev/stdout artifact, downloaded through the API, holds the masked line."""
    auth = basic(*ADMIN)
    listed = await secret_run.stack.api.get(
        f"/artifacts/list/playbook_run/{secret_run.run_id}", headers=auth
    )
    assert listed.status_code == 200, listed.text
    (artifact,) = [a for a in listed.json() if a["path"] == "/dev/stdout"]
    download = await secret_run.stack.api.get(f"/artifacts/download/{artifact['id']}", headers=auth)
    assert download.status_code == 200
    assert VALUE.encode() not in download.content
    assert download.content.decode().strip() == f"token={MASK}"


# --------------------------------------------------------------------------------------------
# Temporal
# --------------------------------------------------------------------------------------------


async def test_history_bytes_never_hold_the_value(secret_run: SecretRun) -> None:
    """Neither the history's protobuf bytes nor its JSON form contain the value."""
    history = secret_run.history
    assert len(history.events) > 10
    for event in history.events:
        assert VALUE.encode() not in event.SerializeToString()
    assert VALUE not in history.to_json()


async def test_history_payloads_are_encrypted(secret_run: SecretRun) -> None:
    """Every payload of the history is encrypted by the codec, but for the search attributes
    and local-activity marker bookkeeping, which never pass a codec and hold no user data."""
    found = [
        (f"{EventType.Name(e.event_type)}{path}", p)
        for e in secret_run.history.events
        for path, p in payloads_in(e)
    ]
    codec_bound, exempt = [], []
    for where, p in found:
        if SEARCH_ATTRIBUTES_FIELD in where or LOCAL_ACTIVITY_MARKER_DATA in where:
            exempt.append((where, p))
        else:
            codec_bound.append((where, p))
    assert len(codec_bound) > 10
    plain = [where for where, p in codec_bound if p.metadata.get("encoding") != ENCRYPTED_ENCODING]
    assert plain == []
    for where, p in exempt:
        if LOCAL_ACTIVITY_MARKER_DATA in where:
            assert set(json.loads(p.data)) <= MARKER_DATA_KEYS, where
        else:
            assert where.rsplit("[", 1)[1].rstrip("]") in SEARCH_ATTRIBUTES, where


async def test_decrypted_history_carries_references_only(secret_run: SecretRun) -> None:
    """Decrypted with the codec, the activity input carries a secretRef, and no payload
    anywhere in the history holds the value even inside the encryption."""
    codec = secret_run.stack.temporal.data_converter.payload_codec
    assert codec is not None
    decoded_texts: list[str] = []
    execute_inputs: list[dict[str, Any]] = []
    for event in secret_run.history.events:
        for _, payload in payloads_in(event):
            (plain,) = await codec.decode([payload])
            decoded_texts.append(plain.data.decode(errors="replace"))
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            attrs = event.activity_task_scheduled_event_attributes
            if attrs.activity_type.name == EXECUTE_ACTION:
                (plain,) = await codec.decode(list(attrs.input.payloads))
                execute_inputs.append(json.loads(plain.data))
    assert [t for t in decoded_texts if VALUE in t] == []
    assert len(execute_inputs) == 2
    env_value = execute_inputs[0]["action"]["spec"]["env"][0]["value"]
    header_value = execute_inputs[1]["action"]["spec"]["headers"][0]["value"]
    assert set(env_value) == {"secretRef"}
    assert set(header_value) == {"secretRef"}
    assert env_value["secretRef"] in execute_inputs[0]["secret_refs"]
    assert any(f"token={MASK}" in t for t in decoded_texts)


# --------------------------------------------------------------------------------------------
# Logs and command lines
# --------------------------------------------------------------------------------------------


async def test_logs_never_hold_the_value(secret_run: SecretRun) -> None:
    """No log record of any logger, at DEBUG, during apply and run, holds the value."""
    assert len(secret_run.logs) > 10, "the capture saw (almost) no log records"
    assert [line for line in secret_run.logs if VALUE in line] == []


async def test_no_command_line_holds_the_value(secret_run: SecretRun) -> None:
    """While the script ran (its env holding the value), no process's command line held it."""
    assert secret_run.proc.script_seen_with_value_in_env, "the scan never saw the script run"
    assert secret_run.proc.leaks == []
    assert secret_run.proc.scans > 5
