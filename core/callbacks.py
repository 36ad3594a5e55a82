"""Run callbacks, the pure part: which events a callback level wants, the document, the signature.

A callback is `{url, level}` (Runner's job `callbacks`, UPSTREAM 001 resolution 11):

- DEBUG gets every event, best effort, live while the run executes;
- ERROR gets failure events (ansible's failure callbacks and any event of level ERROR)
  plus the final result;
- RESULT gets only the final result (`playbook_result`, or the run's final `run_status`).

ERROR and RESULT deliveries are at least once: each one is an outbox row delivered (and
retried) by the DeliverCallbacks workflow, so a receiver may see a delivery more than once.

Every POST carries a JSON status document (`status_document`) and these headers:

- `X-Runwright-Delivery`: the delivery's id, the same on every retry of one delivery, so a
  receiver de-duplicates by it (for live DEBUG posts it is unique per post);
- `X-Runwright-Timestamp`: when this POST was sent, in unix seconds (new on every retry);
- `X-Runwright-Signature`: `sha256=<hex HMAC-SHA256>` of `<timestamp>.<delivery id>.<body>`
  (the body's exact bytes) under the run's account key (`runwright account callback-key`) or
  else the deployment's RUNWRIGHT_CALLBACK_SIGNING_KEY; absent when neither is set. Covering
  the timestamp and the delivery id means a captured POST cannot be replayed later or passed
  off as another delivery. Receivers do what `verify` does: recompute in constant time and
  refuse timestamps older than a few minutes.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from core.events import FAILURE_EVENT_TYPES, EventLevel
from core.statuses import RUNNER_RUN_STATUS, RunStatus
from core.store.models import RunEvent

SIGNATURE_HEADER = "X-Runwright-Signature"
DELIVERY_HEADER = "X-Runwright-Delivery"
TIMESTAMP_HEADER = "X-Runwright-Timestamp"
# How old a signed POST a receiver should still accept (`verify`'s default).
SIGNATURE_TOLERANCE_SECONDS = 300
SIGNATURE_PREFIX = "sha256="
CALLBACK_LEVELS = frozenset({EventLevel.DEBUG, EventLevel.ERROR, EventLevel.RESULT})
# Levels whose deliveries go through the outbox (at least once); DEBUG is live, best effort.
OUTBOX_LEVELS = frozenset({EventLevel.ERROR, EventLevel.RESULT})
PLAYBOOK_RESULT = "playbook_result"
RUN_STATUS = "run_status"
# Status document ids are derived from (run, seq), so every delivery of one event shares it.
EVENT_ID_NAMESPACE = uuid.UUID("8f1c1f4e-4a49-4c55-9a39-5d0f5b3c2a61")


@dataclass(frozen=True)
class StoredEvent:
    """An event as the run's log stored it: numbered and stamped."""

    seq: int
    time: datetime
    event_type: str
    level: str = EventLevel.INFO
    message: str = ""
    host: str | None = None
    task: str | None = None
    action_idx: int | None = None
    data: dict[str, Any] = field(default_factory=dict)


class RunFacts(Protocol):
    """What a status document needs of a run (a `core.store.models.Run` row has it)."""

    @property
    def id(self) -> str: ...

    @property
    def definition_id(self) -> str: ...

    @property
    def status(self) -> str: ...


def callback_level(level: str) -> EventLevel:
    """A callback's level, case-insensitively; ValueError for anything but DEBUG/ERROR/RESULT."""
    try:
        parsed = EventLevel(level.strip().upper())
    except ValueError:
        parsed = None
    if parsed not in CALLBACK_LEVELS:
        raise ValueError(f"callback level must be DEBUG, ERROR or RESULT, not {level!r}")
    assert parsed is not None
    return parsed


def is_final(event: StoredEvent) -> bool:
    """True for a result: a playbook's summary or the run's final status."""
    if event.event_type == PLAYBOOK_RESULT:
        return True
    return event.event_type == RUN_STATUS and event.level == EventLevel.RESULT


def is_failure(event: StoredEvent) -> bool:
    """True for an event that reports something going wrong."""
    return event.event_type in FAILURE_EVENT_TYPES or event.level == EventLevel.ERROR


def wants(level: str, event: StoredEvent) -> bool:
    """Whether a callback of `level` receives `event`."""
    parsed = callback_level(level)
    if parsed == EventLevel.DEBUG:
        return True
    if parsed == EventLevel.ERROR:
        return is_failure(event) or is_final(event)
    return is_final(event)


def event_id(run_id: str, seq: int) -> str:
    """The stable id of a run's event in status documents."""
    return str(uuid.uuid5(EVENT_ID_NAMESPACE, f"{run_id}/{seq}"))


def epoch_ms(moment: datetime) -> int:
    """Milliseconds since the epoch (Runner's time format)."""
    return int(moment.timestamp() * 1000)


def runner_status(status: str) -> str:
    """Runner's name for a canonical run status (the raw value, upper case, if unknown)."""
    try:
        return RUNNER_RUN_STATUS[RunStatus(status)]
    except ValueError:
        return status.upper()


def stored_event(row: RunEvent) -> StoredEvent:
    """A stored event row as the callback rules see it."""
    return StoredEvent(
        seq=row.seq,
        time=row.time,
        event_type=row.event_type,
        level=row.level,
        message=row.message,
        host=row.host,
        task=row.task,
        action_idx=row.action_idx,
        data=dict(row.data or {}),
    )


def status_after(previous: str, event: StoredEvent) -> str:
    """A run's canonical status once `event` is in its log: the latest one a run_status event
    announced. Derived from the log alone, so every reader gets the same answer."""
    announced = event.data.get("status") if event.event_type == RUN_STATUS else None
    return announced if isinstance(announced, str) and announced else previous


def status_document(
    event: StoredEvent, run: RunFacts, account_alias: str, status: str
) -> dict[str, Any]:
    """The Runner status document for one event of a run; `status` is the run's canonical
    status as of the event (see status_after)."""
    return {
        "id": event_id(run.id, event.seq),
        "timestamp": epoch_ms(event.time),
        "notifications": [],
        "message": {
            "text": event.message,
            "level": str(event.level),
            "seq": event.seq,
            "host": event.host,
            "task": event.task,
            "action": event.action_idx,
            "data": event.data,
        },
        "job_id": run.definition_id,
        "execution_id": run.id,
        "account_alias": account_alias,
        "event_type": event.event_type,
        "status": runner_status(status),
    }


def encode(document: dict[str, Any]) -> bytes:
    """The exact bytes POSTed (and signed) for a document."""
    return json.dumps(document, separators=(",", ":"), default=str).encode()


def signed_message(timestamp: int, delivery_id: str, body: bytes) -> bytes:
    """What the signature covers: `<timestamp>.<delivery id>.<body>`."""
    return f"{timestamp}.{delivery_id}.".encode() + body


def sign(body: bytes, key: str, *, timestamp: int, delivery_id: str) -> str:
    """The `X-Runwright-Signature` value of one POST under `key`."""
    message = signed_message(timestamp, delivery_id, body)
    return SIGNATURE_PREFIX + hmac.new(key.encode(), message, hashlib.sha256).hexdigest()


def verify(
    body: bytes,
    key: str,
    headers: Mapping[str, str],
    *,
    now: float | None = None,
    tolerance: float = SIGNATURE_TOLERANCE_SECONDS,
) -> bool:
    """What a receiver does: check the signature of a POST (its body and headers) in
    constant time, and that it was sent within `tolerance` seconds of `now`."""
    lowered = {k.lower(): v for k, v in headers.items()}
    signature = lowered.get(SIGNATURE_HEADER.lower())
    delivery_id = lowered.get(DELIVERY_HEADER.lower())
    stamp = lowered.get(TIMESTAMP_HEADER.lower(), "")
    if not signature or not delivery_id or not stamp.isdigit():
        return False
    timestamp = int(stamp)
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    expected = sign(body, key, timestamp=timestamp, delivery_id=delivery_id)
    return hmac.compare_digest(expected, signature)


def delivery_headers(
    delivery_id: str, body: bytes, key: str, *, now: float | None = None
) -> dict[str, str]:
    """The headers of one POST: content type, delivery id, timestamp and (with a key) the
    signature."""
    timestamp = int(time.time() if now is None else now)
    headers = {
        "Content-Type": "application/json",
        DELIVERY_HEADER: delivery_id,
        TIMESTAMP_HEADER: str(timestamp),
    }
    if key:
        headers[SIGNATURE_HEADER] = sign(body, key, timestamp=timestamp, delivery_id=delivery_id)
    return headers
