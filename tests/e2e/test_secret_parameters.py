"""Mission Control parameters of `type: secret`: stored as references, masked, opened on the worker.

One run is made for the module: a playbook with a required secret parameter, a secret with a
default, a text parameter whose default copies the secret, and a plain one. Its script prints
them through `PARAM_*` and through templates, and the sha256 of the plain values, which proves
the worker saw the real value while everything written down shows the mask.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import MetaData, Table, inspect, select
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory
from temporalio.testing import WorkflowEnvironment

from core.secrets import ENCRYPTED_ENCODING, MASK, SECRET_REF
from core.statuses import RunStatus
from core.store.models import Definition, Run, RunEvent, Secret
from tests.conftest import TEST_SECRET_KEY
from tests.history import payloads_in
from tests.stack import ADMIN, Stack, basic, make_settings, stack_for
from workflows.contracts import EXECUTE_ACTION

pytestmark = pytest.mark.slow

# Distinctive, and unique to this module's run.
TOKEN = f"tok-{uuid.uuid4().hex[:16]}"
DEFAULT = f"dflt-{uuid.uuid4().hex[:16]}"
VALUES = (TOKEN, DEFAULT)
PLAYBOOK_ID = "3f0f3e1c-8a53-4b53-9a57-6d1f0c2e9b71"
CONFIG_ID = "0189f7b0-e0c7-944f-1f86-3e554392fd3d"

PLAYBOOK = f"""
kind: ConfigItem
id: {CONFIG_ID}
name: vault-client
type: Secrets::Client
---
apiVersion: mission-control.flanksource.com/v1
kind: Playbook
id: {PLAYBOOK_ID}
metadata: {{name: secret-parameters}}
spec:
  configs: [{{type: "Secrets::Client"}}]
  parameters:
    - {{name: token, type: secret, required: true}}
    - {{name: fallback, type: secret, default: "{DEFAULT}"}}
    - {{name: header, default: "Bearer {{{{.params.token}}}}"}}
    - {{name: reason}}
  actions:
    - name: use
      exec:
        script: |
          echo "env=$PARAM_TOKEN tpl={{{{.params.token}}}} default=$PARAM_FALLBACK"
          echo "derived=$PARAM_HEADER reason=$PARAM_REASON"
          printf %s "$PARAM_TOKEN" | sha256sum | cut -c1-64
          printf %s '{{{{.params.fallback}}}}' | sha256sum | cut -c1-64
"""


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class SecretParamRun:
    """The finished run and its history."""

    stack: Stack
    run_id: str
    status: str
    history: WorkflowHistory


@pytest.fixture(scope="module")
async def param_run(
    tmp_path_factory: pytest.TempPathFactory, temporal_env: WorkflowEnvironment
) -> AsyncIterator[SecretParamRun]:
    """Apply the playbook and run it with a secret token and a plain reason."""
    settings = make_settings(
        tmp_path_factory.mktemp("secret-params") / "home", secret_key=TEST_SECRET_KEY
    )
    async with stack_for(settings, temporal_env.client) as stack:
        await stack.apply(PLAYBOOK)
        run_id = await stack.run(
            {
                "id": PLAYBOOK_ID,
                "config_id": CONFIG_ID,
                "params": {"token": TOKEN, "reason": "rotation"},
            }
        )
        row = await stack.wait_status(run_id, timeout=60)
        history = await stack.temporal.get_workflow_handle(run_id).fetch_history()
        yield SecretParamRun(stack=stack, run_id=run_id, status=row.status, history=history)


def leaks(text: str) -> list[str]:
    return [v for v in VALUES if v in text]


async def test_the_worker_saw_the_values_and_the_output_shows_the_mask(
    param_run: SecretParamRun,
) -> None:
    """The action got the real values (their hashes match) and its output holds only masks."""
    assert param_run.status == RunStatus.SUCCEEDED
    body = await param_run.stack.get_run(param_run.run_id)
    (action,) = body["actions"]
    assert action["result"]["stdout"].splitlines() == [
        f"env={MASK} tpl={MASK} default={MASK}",
        f"derived={MASK} reason=rotation",  # the derived value is a secret as a whole
        sha256(TOKEN),
        sha256(DEFAULT),
    ]


async def test_run_row_holds_references_that_open_to_the_values(
    param_run: SecretParamRun,
) -> None:
    """runs.parameters holds a reference per secret (and derived) value; each opens to it."""
    with param_run.stack.sessions() as session:
        run = session.get(Run, param_run.run_id)
        assert run is not None
        params = dict(run.parameters)
        rows = {
            name: session.get(Secret, params[name][SECRET_REF])
            for name in ("token", "fallback", "header")
        }
    assert params["reason"] == "rotation"
    assert leaks(json.dumps(params)) == []
    fernet = Fernet(TEST_SECRET_KEY.encode())
    opened = {n: fernet.decrypt(r.ciphertext.encode()).decode() for n, r in rows.items() if r}
    assert opened == {"token": TOKEN, "fallback": DEFAULT, "header": f"Bearer {TOKEN}"}


async def test_no_table_holds_a_value(param_run: SecretParamRun) -> None:
    """No row of any table (definitions, runs, events, actions...) holds a value as text."""
    with param_run.stack.sessions() as session:
        conn = session.connection()
        found = {}
        for name in inspect(conn).get_table_names():
            table = Table(name, MetaData(), autoload_with=conn)
            rows = [repr(tuple(r)) for r in conn.execute(select(table))]
            found[name] = [r for r in rows if leaks(r)]
    assert {"runs", "definitions", "run_events"} <= set(found)
    assert {t: rs for t, rs in found.items() if rs} == {}


async def test_api_shows_the_mask_for_each_secret_parameter(param_run: SecretParamRun) -> None:
    """`GET /playbook/run/{id}` shows the mask for secret and derived parameters."""
    response = await param_run.stack.api.get(
        f"/playbook/run/{param_run.run_id}", headers=basic(*ADMIN)
    )
    assert response.status_code == 200, response.text
    assert leaks(response.text) == []
    assert SECRET_REF not in response.text
    assert response.json()["parameters"] == {
        "token": MASK,
        "fallback": MASK,
        "header": MASK,
        "reason": "rotation",
    }


async def test_secret_default_is_stored_as_a_reference_and_listed_masked(
    param_run: SecretParamRun,
) -> None:
    """A secret parameter's default is a reference in the stored spec, masked by the list."""
    with param_run.stack.sessions() as session:
        spec = session.get(Definition, PLAYBOOK_ID).spec  # type: ignore[union-attr]
    assert set(spec["parameters"][1]["default"]) == {SECRET_REF}
    response = await param_run.stack.api.get(
        "/playbook/list", params={"config_id": CONFIG_ID}, headers=basic(*ADMIN)
    )
    assert response.status_code == 200, response.text
    assert leaks(response.text) == [] and SECRET_REF not in response.text
    (item,) = [p for p in response.json() if p["id"] == PLAYBOOK_ID]
    assert item["parameters"][1] == {"name": "fallback", "type": "secret", "default": MASK}


async def test_run_events_hold_no_value(param_run: SecretParamRun) -> None:
    """The run's stored events hold the masked output lines, never a value."""
    with param_run.stack.sessions() as session:
        events = session.scalars(
            select(RunEvent).where(RunEvent.run_id == param_run.run_id).order_by(RunEvent.seq)
        ).all()
        rendered = [f"{e.message} {json.dumps(e.data)}" for e in events]
    assert [e for e in rendered if leaks(e)] == []
    assert any(f"env={MASK} tpl={MASK}" in e for e in rendered)


async def test_history_holds_references_only(param_run: SecretParamRun) -> None:
    """The history's payloads are encrypted; decrypted, they carry references, never a value."""
    history = param_run.history
    for event in history.events:
        assert leaks(event.SerializeToString().decode(errors="replace")) == []
    codec = param_run.stack.temporal.data_converter.payload_codec
    assert codec is not None
    decoded: list[str] = []
    execute_inputs: list[dict[str, Any]] = []
    for event in history.events:
        for _, payload in payloads_in(event):
            (plain,) = await codec.decode([payload])
            decoded.append(plain.data.decode(errors="replace"))
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            attrs = event.activity_task_scheduled_event_attributes
            assert all(p.metadata["encoding"] == ENCRYPTED_ENCODING for p in attrs.input.payloads)
            if attrs.activity_type.name == EXECUTE_ACTION:
                (plain,) = await codec.decode(list(attrs.input.payloads))
                execute_inputs.append(json.loads(plain.data))
    assert [t for t in decoded if leaks(t)] == []
    (inp,) = execute_inputs
    params = inp["template_env"]["params"]
    assert set(params["token"]) == {SECRET_REF}
    assert params["token"][SECRET_REF] in inp["secret_refs"]
    assert params["reason"] == "rotation"
