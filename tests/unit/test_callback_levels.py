"""Callback rules: which events each level receives, the status document, the signature."""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from core.callbacks import (
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    StoredEvent,
    callback_level,
    delivery_headers,
    encode,
    event_id,
    sign,
    status_after,
    status_document,
    verify,
    wants,
)

T0 = datetime(2024, 5, 1, 12, 0, 0, 250000, tzinfo=UTC)


def _event(event_type: str, level: str = "DEBUG", **data: object) -> StoredEvent:
    return StoredEvent(seq=7, time=T0, event_type=event_type, level=level, data=dict(data))


@dataclass
class _Run:
    id: str = "run-1"
    definition_id: str = "job-1"
    status: str = "running"


# (event, DEBUG wants it, ERROR wants it, RESULT wants it)
LEVEL_TABLE = [
    (_event("playbook_on_start"), True, False, False),
    (_event("runner_on_ok", "DEBUG"), True, False, False),
    (_event("action_started", "INFO"), True, False, False),
    (_event("runner_on_failed", "ERROR"), True, True, False),
    (_event("runner_on_unreachable", "ERROR"), True, True, False),
    (_event("runner_on_async_failed", "ERROR"), True, True, False),
    # Failure types count whatever level they were stored with.
    (_event("runner_on_failed", "DEBUG"), True, True, False),
    # Any ERROR event (checkout failed, action failed) is a failure.
    (_event("checkout_failed", "ERROR"), True, True, False),
    (_event("action_finished", "ERROR"), True, True, False),
    (_event("action_finished", "INFO"), True, False, False),
    (_event("playbook_result", "RESULT"), True, True, True),
    (_event("run_status", "RESULT", status="failed"), True, True, True),
    # A run_status that is not final (scheduled, running...) is no result.
    (_event("run_status", "INFO", status="running"), True, False, False),
    # RESULT level on another event type is not "the final result".
    (_event("something_else", "RESULT"), True, False, False),
]


@pytest.mark.parametrize(("event", "debug", "error", "result"), LEVEL_TABLE)
def test_levels_table(event: StoredEvent, debug: bool, error: bool, result: bool) -> None:
    """DEBUG gets everything, ERROR failures and results, RESULT only final results."""
    assert wants("DEBUG", event) is debug
    assert wants("ERROR", event) is error
    assert wants("RESULT", event) is result


def test_levels_are_case_insensitive_and_checked() -> None:
    """`debug` is DEBUG; INFO or anything else is no callback level."""
    assert callback_level(" debug ") == "DEBUG"
    assert wants("result", _event("playbook_result", "RESULT"))
    for bad in ("INFO", "", "WARN", "all"):
        with pytest.raises(ValueError, match="DEBUG, ERROR or RESULT"):
            callback_level(bad)


def test_status_document_shape() -> None:
    """The Runner status document: ids, epoch-ms time, Runner status, the event as message."""
    event = StoredEvent(
        seq=3,
        time=T0,
        event_type="runner_on_failed",
        level="ERROR",
        message="fatal: [web1]: FAILED!",
        host="web1",
        task="install",
        action_idx=0,
        data={"rc": 2},
    )
    doc = status_document(event, _Run(), "ACME", "running")
    assert doc == {
        "id": event_id("run-1", 3),
        "timestamp": int(T0.timestamp() * 1000),
        "notifications": [],
        "message": {
            "text": "fatal: [web1]: FAILED!",
            "level": "ERROR",
            "seq": 3,
            "host": "web1",
            "task": "install",
            "action": 0,
            "data": {"rc": 2},
        },
        "job_id": "job-1",
        "execution_id": "run-1",
        "account_alias": "ACME",
        "event_type": "runner_on_failed",
        "status": "RUNNING",
    }
    assert doc["timestamp"] == 1714564800250


@pytest.mark.parametrize(
    ("previous", "event", "status", "runner"),
    [
        ("running", _event("run_status", "RESULT", status="failed"), "failed", "FAILURE"),
        ("running", _event("run_status", "RESULT", status="succeeded"), "succeeded", "SUCCESS"),
        ("running", _event("runner_on_ok"), "running", "RUNNING"),
        ("scheduled", _event("run_status", "INFO", status="initializing"), "initializing",
         "INITIALIZING"),
        ("weird", _event("x"), "weird", "WEIRD"),
    ],
)  # fmt: skip
def test_status_follows_the_log(
    previous: str, event: StoredEvent, status: str, runner: str
) -> None:
    """A run_status event sets the status; any other keeps the one before it."""
    assert status_after(previous, event) == status
    assert status_document(event, _Run(), "", status_after(previous, event))["status"] == runner


def test_event_ids_are_stable_per_run_and_seq() -> None:
    """Every delivery of one event carries the same document id; other events differ."""
    assert event_id("r", 1) == event_id("r", 1)
    assert len({event_id("r", 1), event_id("r", 2), event_id("s", 1)}) == 3


def test_signature_is_hmac_sha256_of_timestamp_delivery_and_body() -> None:
    """`sha256=` + hex HMAC-SHA256 of `timestamp.delivery.body`; verify accepts it and
    rejects any change."""
    body = encode({"a": 1, "b": "x"})
    assert json.loads(body) == {"a": 1, "b": "x"}
    expected = hmac.new(b"k3y", b"1700000000.d-1." + body, hashlib.sha256).hexdigest()
    assert sign(body, "k3y", timestamp=1_700_000_000, delivery_id="d-1") == f"sha256={expected}"
    headers = delivery_headers("d-1", body, "k3y", now=1_700_000_000)
    assert verify(body, "k3y", headers, now=1_700_000_000)
    assert not verify(body + b" ", "k3y", headers, now=1_700_000_000)
    assert not verify(body, "other", headers, now=1_700_000_000)
    assert not verify(body, "k3y", {**headers, SIGNATURE_HEADER: ""}, now=1_700_000_000)


def test_headers_sign_only_with_a_key() -> None:
    """The delivery id and timestamp are always sent; the signature only with a key."""
    body = b"{}"
    signed = delivery_headers("d-1", body, "key", now=42)
    assert signed[DELIVERY_HEADER] == "d-1"
    assert signed[SIGNATURE_HEADER] == sign(body, "key", timestamp=42, delivery_id="d-1")
    assert signed["Content-Type"] == "application/json"
    assert SIGNATURE_HEADER not in delivery_headers("d-1", body, "")
