"""The codec endpoints: the Temporal UI and CLI see decrypted payloads through the API."""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path
from typing import Any

from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads
from temporalio.client import Client

from core.secrets import ENCRYPTED_ENCODING
from core.settings import Settings
from tests.conftest import TEST_SECRET_KEY
from tests.stack import ADMIN, Stack, basic, stack_for

PLAYBOOK = """
apiVersion: mission-control.flanksource.com/v1
kind: Playbook
metadata: {name: codec}
spec:
  actions: [{name: hi, exec: {script: "echo hi"}}]
"""


async def _start_payloads(stack: Stack) -> tuple[str, dict[str, object]]:
    items = await stack.apply(PLAYBOOK)
    run_id = await stack.run({"id": items[0]["id"]})
    await stack.wait_status(run_id)
    history = await stack.temporal.get_workflow_handle(run_id).fetch_history()
    started = history.events[0].workflow_execution_started_event_attributes
    return run_id, json_format.MessageToDict(started.input)


async def test_decode_shows_workflow_input(stack: Stack) -> None:
    """A run's stored input is ciphertext; /codec/decode returns its JSON."""
    run_id, encrypted = await _start_payloads(stack)
    stored = base64.b64decode(encrypted["payloads"][0]["data"])  # type: ignore[index]
    assert run_id.encode() not in stored
    response = await stack.api.post(
        "/codec/decode", json=encrypted, headers={"X-Namespace": "default"}
    )
    assert response.status_code == 200
    payload = response.json()["payloads"][0]
    assert base64.b64decode(payload["metadata"]["encoding"]) == b"json/plain"
    assert json.loads(base64.b64decode(payload["data"]))["run_id"] == run_id


async def test_encode_then_decode_round_trips(stack: Stack) -> None:
    """What /codec/encode encrypts, /codec/decode gives back."""
    plain = {
        "payloads": [
            {
                "metadata": {"encoding": base64.b64encode(b"json/plain").decode()},
                "data": base64.b64encode(b'{"a": 1}').decode(),
            }
        ]
    }
    encoded = (await stack.api.post("/codec/encode", json=plain)).json()
    assert encoded != plain
    decoded = (await stack.api.post("/codec/decode", json=encoded)).json()
    assert json_format.ParseDict(decoded, Payloads()) == json_format.ParseDict(plain, Payloads())


async def test_ui_origin_may_call_codec(stack: Stack) -> None:
    """The dev Temporal UI's origin passes the CORS preflight."""
    origin = f"http://localhost:{stack.settings.ui_port}"
    response = await stack.api.options(
        "/codec/decode",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,x-namespace",
        },
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == origin


async def test_codec_needs_authentication_outside_dev(tmp_path: Path, temporal: Client) -> None:
    """Outside dev mode, decoding needs an admin; bad bodies get 400, not 500."""
    settings = Settings(
        home=tmp_path, secret_key=TEST_SECRET_KEY, task_queue=f"t-{uuid.uuid4().hex[:8]}"
    )
    async with stack_for(settings, temporal, worker=False) as stack:
        body = {"payloads": []}
        assert (await stack.api.post("/codec/decode", json=body)).status_code == 401
        await stack.apply("kind: Person\nemail: op@example.com\npassword: op-pw\nrole: operator\n")
        operator = basic("op@example.com", "op-pw")
        assert (
            await stack.api.post("/codec/decode", json=body, headers=operator)
        ).status_code == 403
        ok = await stack.api.post("/codec/decode", json=body, headers=basic(*ADMIN))
        assert ok.status_code == 200 and ok.json() == {}
        bad = await stack.api.post("/codec/decode", json={"payloads": "x"}, headers=basic(*ADMIN))
        assert bad.status_code == 400 and "payloads" in bad.json()["message"]


def plain_payload(data: bytes, encoding: bytes = b"json/plain") -> dict[str, object]:
    return {
        "metadata": {"encoding": base64.b64encode(encoding).decode()},
        "data": base64.b64encode(data).decode(),
    }


async def test_decode_refuses_payloads_it_did_not_encrypt(stack: Stack) -> None:
    """Only runwright's own ciphertext is decoded: anything else is a 400 naming the payload,
    so the route cannot be used to feed arbitrary input to the decoder."""
    encrypted = (
        await stack.api.post("/codec/encode", json={"payloads": [plain_payload(b'{"a": 1}')]})
    ).json()["payloads"][0]
    cases = [
        ({"payloads": [plain_payload(b'{"a": 1}')]}, "payloads[0]", "json/plain"),
        ({"payloads": [encrypted, plain_payload(b"x", b"binary/plain")]}, "payloads[1]", ""),
        ({"payloads": [{"data": base64.b64encode(b"raw").decode()}]}, "payloads[0]", "''"),
    ]
    for body, named, shown in cases:
        response = await stack.api.post("/codec/decode", json=body)
        assert response.status_code == 400, response.text
        message = response.json()["message"]
        assert message.startswith(f"{named}: not encrypted by runwright"), message
        assert shown in message
    # Encrypted payloads still decode, as the Temporal UI needs.
    decoded = await stack.api.post("/codec/decode", json={"payloads": [encrypted]})
    assert decoded.status_code == 200
    assert base64.b64decode(decoded.json()["payloads"][0]["data"]) == b'{"a": 1}'


def payload_lists(node: object, path: str = "") -> list[tuple[str, list[dict[str, Any]]]]:
    """Every `payloads` list inside a history event and where it is, as the UI collects them."""
    found: list[tuple[str, list[dict[str, Any]]]] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "payloads" and isinstance(value, list):
                found.append((path, value))
            else:
                found += payload_lists(value, f"{path}.{key}")
    elif isinstance(node, list):
        for item in node:
            found += payload_lists(item, path)
    return found


def encrypted(payload: dict[str, Any]) -> bool:
    return base64.b64decode(payload["metadata"]["encoding"]) == ENCRYPTED_ENCODING


async def test_every_encrypted_payload_of_a_real_history_decodes(stack: Stack) -> None:
    """What the Temporal UI sends for a run decodes: inputs, results, failures. The one plain
    kind is the SDK's own local-activity marker data (readable JSON, never a secret): refused,
    and the UI shows it as stored."""
    items = await stack.apply(PLAYBOOK.replace('echo hi"', 'echo hi; exit 3"'))
    run_id = await stack.run({"id": items[0]["id"]})
    await stack.wait_status(run_id)
    history = await stack.temporal.get_workflow_handle(run_id).fetch_history()
    lists = [
        found
        for event in history.events
        for found in payload_lists(json_format.MessageToDict(event))
    ]
    ours = [payloads for _, payloads in lists if all(encrypted(p) for p in payloads)]
    plain = {where for where, payloads in lists if not all(encrypted(p) for p in payloads)}
    assert len(ours) >= 4
    assert plain <= {".markerRecordedEventAttributes.details.data"}, plain
    for payloads in ours:
        response = await stack.api.post("/codec/decode", json={"payloads": payloads})
        assert response.status_code == 200, (response.text, payloads)
