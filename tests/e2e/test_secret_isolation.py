"""Redaction is per run: one run's output is never masked with the secrets another run opened.

Were it process-wide, a tenant could print a guess and learn from the mask whether some other
run on the same worker had opened that value.
"""

from __future__ import annotations

import json
import uuid

import pytest
from sqlalchemy import select

from core.secrets import MASK
from core.statuses import RunStatus
from core.store.models import RunEvent
from tests.stack import Stack

pytestmark = pytest.mark.slow


def exec_playbook(name: str, script: str, env: list[dict[str, str]] | None = None) -> str:
    """A Playbook document with one exec action."""
    action: dict[str, object] = {"script": script}
    if env:
        action["env"] = env
    return json.dumps(
        {
            "apiVersion": "mission-control.flanksource.com/v1",
            "kind": "Playbook",
            "metadata": {"name": name},
            "spec": {"actions": [{"name": "say", "exec": action}]},
        }
    )


async def run_stdout(stack: Stack, document: str) -> tuple[str, list[str]]:
    """Apply and run a playbook to its end: its stdout and the messages of its events."""
    (item,) = await stack.apply(document)
    run_id = await stack.run({"id": item["id"]})
    row = await stack.wait_status(run_id, timeout=60)
    body = await stack.get_run(run_id)
    assert row.status == RunStatus.SUCCEEDED, body
    with stack.sessions() as session:
        messages = [
            e.message or ""
            for e in session.scalars(select(RunEvent).where(RunEvent.run_id == run_id))
        ]
    return body["actions"][0]["result"]["stdout"], messages


async def test_a_value_opened_by_one_run_is_not_masked_in_another(stack: Stack) -> None:
    """Run A opens a secret and sees it masked; run B, holding no secret, prints the same text
    and sees it as it is, in its result and its events."""
    value = f"guess-{uuid.uuid4().hex[:12]}"
    a_stdout, _ = await run_stdout(
        stack,
        exec_playbook("opens-secret", 'echo "a=$TOKEN"', [{"name": "TOKEN", "value": value}]),
    )
    assert a_stdout == f"a={MASK}"

    b_stdout, b_events = await run_stdout(stack, exec_playbook("prints-text", f"echo b={value}"))
    assert b_stdout == f"b={value}"
    assert f"b={value}" in b_events
    assert not [m for m in b_events if MASK in m]
