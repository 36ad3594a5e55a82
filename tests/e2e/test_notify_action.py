"""The `notify` action through the engine: Apprise sends to a real HTTP receiver and a real
SMTP server; refused and dead channels fail the action by index and masked URL; the channel
URLs (and the passwords in them) appear in no event, result or log line."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from temporalio.client import Client

from api.launch import LaunchRequest, launch
from core.statuses import RunStatus
from core.store.models import Run, RunAction, RunEvent
from core.store.secret_values import put_secret
from core.store.session import transaction
from tests.conftest import TEST_SECRET_KEY
from tests.servers import JsonReceiver, SmtpServer, free_port
from tests.stack import Stack, add_definition, make_settings, stack_for
from workflows.contracts import ActionSpec

JSON_PASSWORD = "json-hook-pass-7781"


def store_secrets(stack: Stack, *values: str) -> list[str]:
    """Store each value as a secret; their reference ids."""
    box = stack.app.state.services.box
    with transaction(stack.sessions) as session:
        return [put_secret(session, box, value) for value in values]


async def notify_run(stack: Stack, spec: dict[str, Any], params: dict[str, Any]) -> Run:
    """Launch one `notify` action the way a dialect does, and wait for its end."""
    request = LaunchRequest(
        definition_id=add_definition(stack, {}),
        dialect="test",
        title="notify",
        creator=None,
        actions=[ActionSpec(name="tell", kind="notify", spec=spec)],
        template_env={"params": params},
        secret_refs=list(spec["urls_ref"]),
    )
    run = await launch(stack.app.state.services, request)
    return await stack.wait_status(run.id, timeout=60)


def stored(stack: Stack, run_id: str) -> tuple[RunAction, list[RunEvent]]:
    with stack.sessions() as session:
        action = session.scalars(select(RunAction).where(RunAction.run_id == run_id)).one()
        events = list(
            session.scalars(
                select(RunEvent).where(RunEvent.run_id == run_id).order_by(RunEvent.seq)
            )
        )
        session.expunge_all()
    return action, events


def everything_shown(action: RunAction, events: list[RunEvent]) -> str:
    """What a user can read of the action: its result, error and every event."""
    shown = [json.dumps(action.result), action.error or ""]
    shown += [f"{e.message} {json.dumps(e.data)}" for e in events]
    return "\n".join(shown)


def text_body(message: Any) -> str:
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            payload: bytes = part.get_payload(decode=True)
            return payload.decode()
    raise AssertionError("no text/plain part")


async def test_notify_sends_to_json_and_smtp_channels(
    stack: Stack,
    json_receiver: JsonReceiver,
    smtp_server: SmtpServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Both channels get the templated title and body (the SMTP server after a login with the
    URL's password); events and the result show each channel only as `scheme://***`."""
    json_url = f"json://hook:{JSON_PASSWORD}@127.0.0.1:{json_receiver.port}/deploys"
    mail_url = (
        f"mailto://{smtp_server.user}:{smtp_server.password}@127.0.0.1:{smtp_server.port}"
        "?to=dev@example.com&from=ops@example.com"
    )
    refs = store_secrets(stack, json_url, mail_url)
    spec = {
        "urls_ref": refs,
        "title": "Deployed {{.params.version}}",
        "body": "prod runs {{.params.version}} now",
    }
    caplog.set_level(logging.DEBUG)
    row = await notify_run(stack, spec, {"version": "v42"})

    assert row.status == RunStatus.SUCCEEDED
    ((path, posted),) = json_receiver.received
    assert path == "/deploys"
    assert posted["title"] == "Deployed v42" and posted["message"] == "prod runs v42 now"
    assert smtp_server.logins == [smtp_server.user]
    (mail,) = smtp_server.messages
    assert mail["Subject"] == "Deployed v42" and mail["To"] == "dev@example.com"
    assert "prod runs v42 now" in text_body(mail)

    action, events = stored(stack, row.id)
    assert action.status == "completed"
    assert action.result is not None
    assert [(c["index"], c["url"], c["sent"]) for c in action.result["channels"]] == [
        (0, "json://***", True),
        (1, "mailto://***", True),
    ]
    sent = [e.message for e in events if e.event_type == "notification_sent"]
    assert sent == ["channel 0 (json://***): sent", "channel 1 (mailto://***): sent"]
    shown = everything_shown(action, events) + caplog.text
    for secret in (JSON_PASSWORD, smtp_server.password, json_url, mail_url):
        assert secret not in shown


async def test_a_dead_channel_fails_the_action_naming_it(
    stack: Stack, json_receiver: JsonReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    """Nothing listens on the second channel's port: the first is still sent, and the action
    fails naming channel 1 by index and masked URL, its password nowhere."""
    good = f"json://hook:{JSON_PASSWORD}@127.0.0.1:{json_receiver.port}/ok"
    dead = f"json://hook:{JSON_PASSWORD}@127.0.0.1:{free_port()}/gone"
    spec = {"urls_ref": store_secrets(stack, good, dead), "body": "hello"}
    caplog.set_level(logging.DEBUG)
    row = await notify_run(stack, spec, {})

    assert row.status == RunStatus.FAILED
    assert [path for path, _ in json_receiver.received] == ["/ok"]
    action, events = stored(stack, row.id)
    assert action.status == "failed"
    assert action.error is not None
    assert action.error.startswith("1 of 2 channels failed: channel 1 (json://***): ")
    assert "channel 0" not in action.error
    failed = [e for e in events if e.event_type == "notification_failed"]
    assert [e.data for e in failed] == [{"channel": 1, "url": "json://***"}]
    shown = everything_shown(action, events) + caplog.text
    assert JSON_PASSWORD not in shown and dead not in shown


async def test_a_refused_host_is_never_contacted(
    tmp_path: Path,
    temporal: Client,
    json_receiver: JsonReceiver,
    smtp_server: SmtpServer,
) -> None:
    """Loopback not allowed: neither the HTTP receiver nor the SMTP server hears from the
    worker, and the action's error names both channels and the egress setting."""
    settings = make_settings(tmp_path / "home", secret_key=TEST_SECRET_KEY, egress_allow="")
    async with stack_for(settings, temporal) as stack:
        refs = store_secrets(
            stack,
            f"json://hook:{JSON_PASSWORD}@127.0.0.1:{json_receiver.port}/x",
            f"mailto://{smtp_server.user}:{smtp_server.password}@localhost:{smtp_server.port}"
            "?to=dev@example.com&from=ops@example.com",
        )
        row = await notify_run(stack, {"urls_ref": refs, "body": "hello"}, {})
        action, _ = stored(stack, row.id)

    assert row.status == RunStatus.FAILED
    assert json_receiver.received == [] and smtp_server.messages == []
    assert smtp_server.greetings == 0
    assert action.error is not None
    assert "channel 0 (json://***): refused to connect to 127.0.0.1 (loopback)" in action.error
    assert "channel 1 (mailto://***): refused to connect to localhost" in action.error
    assert "RUNWRIGHT_EGRESS_ALLOW" in action.error


async def test_a_bad_spec_fails_naming_the_field(stack: Stack) -> None:
    """An empty body fails the action naming `body`, before any channel is opened."""
    refs = store_secrets(stack, "json://127.0.0.1:9/x")
    row = await notify_run(stack, {"urls_ref": refs, "body": "  "}, {})
    assert row.status == RunStatus.FAILED
    action, _ = stored(stack, row.id)
    assert action.error == "body must not be empty"
