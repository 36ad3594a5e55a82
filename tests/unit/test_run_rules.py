"""The workflow's pure rules: `if` filters, the approval gate, durations."""

from __future__ import annotations

import pytest

from core.durations import parse_duration
from workflows.conditions import normalize_condition, should_run
from workflows.contracts import ActionSpec, GateSpec
from workflows.gate import gate_satisfied


@pytest.mark.parametrize(
    ("condition", "any_failed", "runs"),
    [
        ("success()", False, True),
        ("success()", True, False),
        ("failure()", False, False),
        ("failure()", True, True),
        ("always()", False, True),
        ("always()", True, True),
        ("skip()", False, False),
        ("skip()", True, False),
    ],
)
def test_should_run(condition: str, any_failed: bool, runs: bool) -> None:
    """Each filter runs its action exactly when the document says."""
    assert should_run(condition, any_failed) is runs


@pytest.mark.parametrize(
    ("condition", "any_failed", "halted", "final", "runs"),
    [
        # A final action is one more action while the run goes on.
        ("success()", False, False, True, True),
        ("success()", True, False, True, False),
        ("always()", True, False, True, True),
        ("failure()", False, False, True, False),
        # A halted run (stopped, killed, ended at a gate) runs only final actions, the halt
        # counting as a failure for their filter.
        ("always()", False, True, False, False),
        ("failure()", True, True, False, False),
        ("always()", False, True, True, True),
        ("failure()", False, True, True, True),
        ("success()", False, True, True, False),
        ("skip()", False, True, True, False),
    ],
)
def test_final_actions_after_a_halt(
    condition: str, any_failed: bool, halted: bool, final: bool, runs: bool
) -> None:
    """Only final actions outlive a stop, kill or refused gate; their filter still applies."""
    assert should_run(condition, any_failed, halted=halted, final=final) is runs


def test_final_defaults_keep_the_wire_format() -> None:
    """An action recorded before the flag existed decodes as not final."""
    from temporalio.converter import DataConverter

    converter = DataConverter.default
    old = {"name": "a", "kind": "exec", "spec": {}}
    (payload,) = converter.payload_converter.to_payloads([old])
    (decoded,) = converter.payload_converter.from_payloads([payload], [ActionSpec])
    assert decoded == ActionSpec(name="a", kind="exec", spec={})
    assert decoded.final is False


@pytest.mark.parametrize(
    ("text", "canonical"),
    [(None, "success()"), ("", "success()"), ("always", "always()"), (" failure() ", "failure()")],
)
def test_normalize_condition(text: str | None, canonical: str) -> None:
    """Filters default to success() and accept the bare names."""
    assert normalize_condition(text) == canonical


@pytest.mark.parametrize("text", ["timeout()", "status == 'x'", "true", "success( )"])
def test_unsupported_conditions_are_refused(text: str) -> None:
    """Anything else is refused with the list of filters we support."""
    with pytest.raises(ValueError, match="success\\(\\), failure\\(\\)"):
        normalize_condition(text)


ALICE, BOB, OPS, DEV = "person:alice@x", "person:bob@x", "team:ops", "team:dev"


@pytest.mark.parametrize(
    ("rule", "approved", "open_gate"),
    [
        ("any", [], False),
        ("any", [BOB], True),
        ("any", [OPS], True),
        ("any", ["person:mallory@x"], False),
        ("all", [ALICE], False),
        ("all", [ALICE, BOB, OPS], False),
        ("all", [ALICE, BOB, OPS, DEV], True),
        ("all", [ALICE, BOB, OPS, DEV, "person:extra@x"], True),
    ],
)
def test_gate_rule(rule: str, approved: list[str], open_gate: bool) -> None:
    """`any` needs one eligible approval; `all` every person and every team."""
    gate = GateSpec(rule=rule, people=[ALICE, BOB], teams=[OPS, DEV])
    assert gate_satisfied(gate, approved) is open_gate


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30.0), ("5m", 300.0), ("1h30m", 5400.0), ("2d", 172800.0), ("1w", 604800.0),
        ("500ms", 0.5), ("1.5h", 5400.0), ("45", 45.0), (12, 12.0), (2.5, 2.5), ("1y", 31536000.0),
    ],
)  # fmt: skip
def test_parse_duration(text: str | int | float, seconds: float) -> None:
    """Go durations plus days, weeks and years; bare numbers are seconds."""
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "abc", "5 minutes", "1h-5m", "-3", -1, True, "m5"])
def test_bad_durations_are_refused(text: str | int | bool) -> None:
    """Malformed durations raise ValueError naming the value."""
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)
