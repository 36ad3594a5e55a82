"""What a firing's admission means for its run: refused, held at a gate, or let through."""

from __future__ import annotations

import pytest

from workflows.admission import held_gate, refusal
from workflows.contracts import Admitted, GateSpec

GATE = GateSpec(rule="any", people=["role:admin"], teams=[], message="Run x?")
WINDOW = {"window_id": "mw_1", "window_name": "freeze"}


@pytest.mark.parametrize(
    ("admitted", "refused", "message"),
    [
        (Admitted("execute"), None, None),
        (Admitted("notify"), None, None),
        (Admitted("execute", **WINDOW), None, None),
        (Admitted("disabled"), "autonomy is disabled", None),
        (Admitted("disabled", **WINDOW), "blocked by maintenance window 'freeze' (mw_1)", None),
        (Admitted("approve"), None, "Run x?"),
        (Admitted("approve", **WINDOW), None,
         "Run x? Held by maintenance window 'freeze' (mw_1)."),
    ],
)  # fmt: skip
def test_admission_outcomes(admitted: Admitted, refused: str | None, message: str | None) -> None:
    assert refusal(admitted) == refused
    gate = held_gate(GATE, admitted)
    assert (gate.message if gate is not None else None) == message
    if gate is not None:
        assert (gate.people, gate.rule) == (GATE.people, GATE.rule)
