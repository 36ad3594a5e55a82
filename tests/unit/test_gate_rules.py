"""Approval gates' pure rules: the approval action's spec, the admin key, timeouts, keys."""

from __future__ import annotations

from typing import Any

import pytest

from core.statuses import RunStatus
from workflows.contracts import GateSpec
from workflows.gate import (
    ADMIN_KEY,
    MAX_APPROVERS,
    MAX_MESSAGE_CHARS,
    approval_gate,
    decision_key,
    gate_satisfied,
    timeout_ending,
)

ALICE, BOB, OPS = "person:alice", "person:bob", "team:ops"


@pytest.mark.parametrize(
    ("spec", "gate"),
    [
        (
            {"approvers": [ALICE]},
            GateSpec(rule="any", people=[ALICE], teams=[], on_timeout="reject"),
        ),
        (
            {
                "message": "restart the database?",
                "approvers": [ALICE, BOB, ALICE],
                "rule": "all",
                "timeout_seconds": 90,
                "on_timeout": "approve",
            },
            GateSpec(
                rule="all",
                people=[ALICE, BOB],
                teams=[],
                timeout_seconds=90.0,
                message="restart the database?",
                on_timeout="approve",
            ),
        ),
        (
            {"approvers": [ADMIN_KEY, OPS], "timeout_seconds": None, "on_timeout": "reject"},
            GateSpec(rule="any", people=[ADMIN_KEY, OPS], teams=[], on_timeout="reject"),
        ),
        (
            {"approvers": [ALICE], "timeout_seconds": 0.5},
            GateSpec(
                rule="any", people=[ALICE], teams=[], timeout_seconds=0.5, on_timeout="reject"
            ),
        ),
    ],
)
def test_approval_spec_becomes_a_gate(spec: dict[str, Any], gate: GateSpec) -> None:
    """An approval action's spec gives its gate: rule any and on_timeout reject by default,
    approvers in order without repeats."""
    assert approval_gate(spec) == gate


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({}, "spec.approvers"),
        ({"approvers": []}, "spec.approvers"),
        ({"approvers": "person:alice"}, "spec.approvers"),
        ({"approvers": ["alice"]}, r"spec.approvers\[0\]"),
        ({"approvers": [ALICE, 7]}, r"spec.approvers\[1\]"),
        ({"approvers": ["person:"]}, r"spec.approvers\[0\]"),
        ({"approvers": ["person:" + "x" * 60]}, r"spec.approvers\[0\]"),
        ({"approvers": [f"person:{i}" for i in range(MAX_APPROVERS + 1)]}, "spec.approvers"),
        ({"approvers": [ALICE], "rule": "most"}, "spec.rule"),
        ({"approvers": [ALICE], "on_timeout": "expire"}, "spec.on_timeout"),
        ({"approvers": [ALICE], "timeout_seconds": 0}, "spec.timeout_seconds"),
        ({"approvers": [ALICE], "timeout_seconds": -3}, "spec.timeout_seconds"),
        ({"approvers": [ALICE], "timeout_seconds": "60"}, "spec.timeout_seconds"),
        ({"approvers": [ALICE], "timeout_seconds": True}, "spec.timeout_seconds"),
        ({"approvers": [ALICE], "timeout_seconds": float("inf")}, "spec.timeout_seconds"),
        ({"approvers": [ALICE], "timeout_seconds": 10**9}, "spec.timeout_seconds"),
        ({"approvers": [ALICE], "message": 3}, "spec.message"),
        ({"approvers": [ALICE], "message": "m" * (MAX_MESSAGE_CHARS + 1)}, "spec.message"),
        ({"approvers": [ALICE], "timeout_minutes": 5}, "spec.timeout_minutes"),
    ],
)
def test_bad_approval_specs_name_the_field(spec: dict[str, Any], field: str) -> None:
    """Every bad approval spec is refused with a message that starts with the field."""
    with pytest.raises(ValueError, match=f"^{field}: "):
        approval_gate(spec)


@pytest.mark.parametrize(
    ("rule", "people", "approved", "satisfied"),
    [
        ("any", [ALICE, ADMIN_KEY], [ADMIN_KEY], True),
        ("any", [ALICE], [ADMIN_KEY], False),  # the key counts only where the gate lists it
        ("all", [ALICE, BOB, ADMIN_KEY], [ALICE, BOB], True),  # admins may, nobody must
        ("all", [ALICE, BOB, ADMIN_KEY], [ADMIN_KEY, ALICE], False),
        ("all", [ADMIN_KEY], [], False),
        ("all", [ADMIN_KEY], [ADMIN_KEY], True),  # only admins: one of them decides
    ],
)
def test_admin_key_in_gate_rules(
    rule: str, people: list[str], approved: list[str], satisfied: bool
) -> None:
    """The admin key lets admins decide; `all` never waits for it beside named approvers."""
    gate = GateSpec(rule=rule, people=people, teams=[])
    assert gate_satisfied(gate, approved) is satisfied


@pytest.mark.parametrize(
    ("on_timeout", "start", "ending"),
    [
        ("expire", True, (RunStatus.EXPIRED, "approval expired")),
        ("approve", True, None),
        ("reject", True, (RunStatus.REJECTED, "approval timed out")),
        ("approve", False, None),
        ("reject", False, (RunStatus.REJECTED, "approval timed out")),
        ("expire", False, (RunStatus.REJECTED, "approval timed out")),
    ],
)
def test_timeout_ending(on_timeout: str, start: bool, ending: tuple[str, str] | None) -> None:
    """What running out of time does: expire (start gate only), approve goes on, reject ends."""
    assert timeout_ending(on_timeout, start=start) == ending


@pytest.mark.parametrize(
    ("approvers", "keys", "admin", "key"),
    [
        ([ALICE, BOB], [BOB], False, BOB),
        ([ALICE, OPS], ["person:carol", OPS], False, OPS),
        ([ALICE, OPS], [OPS, ALICE], False, OPS),  # the caller's order decides
        ([ALICE], [BOB], False, None),
        ([ALICE], [BOB], True, None),  # an admin the gate does not let decide
        ([ALICE, ADMIN_KEY], [BOB], True, ADMIN_KEY),
        ([ALICE, ADMIN_KEY], [BOB], False, None),
        ([ALICE, ADMIN_KEY], [ALICE], True, ALICE),  # listed personally: their own key
    ],
)
def test_decision_key(approvers: list[str], keys: list[str], admin: bool, key: str | None) -> None:
    """A user decides under their own listed key first, else the admin key if allowed."""
    assert decision_key(approvers, keys, admin=admin) == key
