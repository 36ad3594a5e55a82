"""Approval gates' rules: pure, so the workflow, the API and their tests share one definition.

A run has a start gate (RunInput.gate) and one more gate per `approval` action; each is a
GateSpec, decided through the run's `decide` update while it is the open one.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from core.statuses import GateStatus, RunStatus
from workflows.contracts import GateRecord, GateSpec

# An approver key that any admin decides with: a dialect whose admins may decide every gate
# puts it among the gate's people, and the API uses it for an admin not listed personally.
ADMIN_KEY = "role:admin"
APPROVAL_KIND = "approval"  # the action kind that is a gate in the middle of a run
START_GATE_IDX = -1  # the start gate's index, where an approval action's is its own
RULES = ("any", "all")
START_TIMEOUT_OUTCOMES = ("expire", "approve", "reject")
ACTION_TIMEOUT_OUTCOMES = ("approve", "reject")
APPROVAL_FIELDS = ("message", "approvers", "rule", "timeout_seconds", "on_timeout")
MAX_MESSAGE_CHARS = 4000
MAX_APPROVERS = 100
MAX_KEY_CHARS = 60  # what the approvals table keeps of a key
MAX_TIMEOUT_SECONDS = 366 * 24 * 3600.0
GATE_ID_NAMESPACE = uuid.UUID("5f0c8a52-3d51-4d7e-9a7e-2f4b1c6d0e11")
# What the run ends as when a gate runs out of time, per on_timeout (None: it goes on).
EXPIRED_ENDING = (RunStatus.EXPIRED, "approval expired")
REJECTED_ON_TIMEOUT = (RunStatus.REJECTED, "approval timed out")


def gate_id(run_id: str, attempt: int, idx: int) -> str:
    """The id of the gate `idx` an attempt of a run opens: derived, not drawn, so the API can
    record a start gate before the workflow does and a repeated record finds its row."""
    return str(uuid.uuid5(GATE_ID_NAMESPACE, f"{run_id}/{attempt}/{idx}"))


def gate_opening(run_id: str, attempt: int, idx: int, gate: GateSpec, now: datetime) -> GateRecord:
    """The record of `gate` as it opens at `now`."""
    timeout = gate.timeout_seconds
    return GateRecord(
        id=gate_id(run_id, attempt, idx),
        idx=idx,
        status=GateStatus.PENDING,
        opened_at=now.isoformat(),
        message=gate.message,
        approvers=[*gate.people, *gate.teams],
        rule=gate.rule,
        timeout_at=(now + timedelta(seconds=timeout)).isoformat() if timeout else None,
        on_timeout=gate.on_timeout,
    )


def record_fields(record: GateRecord) -> dict[str, Any]:
    """A gate record as the store's `record_gate` takes it (times as datetimes), less its id."""

    def time(value: str | None) -> datetime | None:
        return datetime.fromisoformat(value) if value else None

    return {
        "idx": record.idx,
        "status": str(record.status),
        "opened_at": datetime.fromisoformat(record.opened_at),
        "message": record.message,
        "approvers": list(record.approvers),
        "rule": record.rule,
        "timeout_at": time(record.timeout_at),
        "on_timeout": record.on_timeout,
        "decided_at": time(record.decided_at),
        "decided_by": record.decided_by,
        "comment": record.comment,
    }


def approver_keys(gate: GateSpec) -> set[str]:
    """Every key that may approve through this gate."""
    return {*gate.people, *gate.teams}


def gate_satisfied(gate: GateSpec, approved: Iterable[str]) -> bool:
    """Whether the approvals given satisfy the gate.

    `any`: one eligible approval is enough. `all`: every listed person, and for every listed
    team at least one of its members (recorded under the team's key). The admin key lets
    admins decide but is nobody in particular, so `all` does not wait for it (unless it is
    the only key).
    """
    keys = approver_keys(gate)
    given = set(approved) & keys
    if gate.rule == "any":
        return bool(given)
    required = (keys - {ADMIN_KEY}) or keys
    return required <= given


def timeout_ending(on_timeout: str, *, start: bool) -> tuple[RunStatus, str] | None:
    """The run's final status and error when a gate runs out of time; None: the run goes on.

    The start gate's default `expire` ends the run expired; an approval action knows only
    approve and reject, and anything but approve rejects.
    """
    if on_timeout == "approve":
        return None
    if start and on_timeout not in ("approve", "reject"):
        return EXPIRED_ENDING
    return REJECTED_ON_TIMEOUT


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name}: a number of seconds, got {type(value).__name__}")
    seconds = float(value)
    if not math.isfinite(seconds) or seconds <= 0 or seconds > MAX_TIMEOUT_SECONDS:
        raise ValueError(f"{name}: more than 0 and at most {MAX_TIMEOUT_SECONDS:.0f} seconds")
    return seconds


def _approvers(value: Any, name: str) -> list[str]:
    if not isinstance(value, list) or not value:
        raise ValueError(f"{name}: a non-empty list of approver keys such as person:<user id>")
    if len(value) > MAX_APPROVERS:
        raise ValueError(f"{name}: at most {MAX_APPROVERS} approvers")
    keys: list[str] = []
    for i, key in enumerate(value):
        kind, _, ident = key.partition(":") if isinstance(key, str) else ("", "", "")
        if not kind or not ident or len(key) > MAX_KEY_CHARS:
            raise ValueError(
                f"{name}[{i}]: an approver key <kind>:<id> of at most {MAX_KEY_CHARS} characters"
            )
        if key not in keys:
            keys.append(key)
    return keys


def approval_gate(spec: Mapping[str, Any], *, prefix: str = "spec") -> GateSpec:
    """The gate an `approval` action's spec asks for; ValueError naming the bad field.

    Spec: `message` (str), `approvers` (keys), `rule` (any | all, default any),
    `timeout_seconds` (number or None: wait as long as it takes), `on_timeout`
    (approve | reject, default reject).
    """
    unknown = sorted(set(spec) - set(APPROVAL_FIELDS))
    if unknown:
        raise ValueError(f"{prefix}.{unknown[0]}: unknown field; use {', '.join(APPROVAL_FIELDS)}")
    message = spec.get("message", "")
    if not isinstance(message, str) or len(message) > MAX_MESSAGE_CHARS:
        raise ValueError(f"{prefix}.message: a string of at most {MAX_MESSAGE_CHARS} characters")
    rule = spec.get("rule", "any")
    if rule not in RULES:
        raise ValueError(f"{prefix}.rule: one of {', '.join(RULES)}")
    on_timeout = spec.get("on_timeout", "reject")
    if on_timeout not in ACTION_TIMEOUT_OUTCOMES:
        raise ValueError(f"{prefix}.on_timeout: one of {', '.join(ACTION_TIMEOUT_OUTCOMES)}")
    timeout = spec.get("timeout_seconds")
    return GateSpec(
        rule=rule,
        people=_approvers(spec.get("approvers"), f"{prefix}.approvers"),
        teams=[],
        timeout_seconds=None if timeout is None else _number(timeout, f"{prefix}.timeout_seconds"),
        message=message,
        on_timeout=on_timeout,
    )


def decision_key(approvers: Iterable[str], keys: Iterable[str], *, admin: bool) -> str | None:
    """The approver key a user decides a gate with: the first of their own `keys` the gate
    lists, else the admin key for an admin when the gate lets admins decide; None: not an
    approver of this gate."""
    listed = set(approvers)
    for key in keys:
        if key in listed:
            return key
    if admin and ADMIN_KEY in listed:
        return ADMIN_KEY
    return None
