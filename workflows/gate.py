"""The approval gate's rule: pure, so the workflow and its tests share one definition."""

from __future__ import annotations

from collections.abc import Iterable

from workflows.contracts import GateSpec

ADMIN_KEY = "role:admin"


def approver_keys(gate: GateSpec) -> set[str]:
    """Every key that may approve through this gate."""
    return {*gate.people, *gate.teams}


def gate_satisfied(gate: GateSpec, approved: Iterable[str]) -> bool:
    """Whether the approvals given satisfy the gate.

    `any`: one eligible approval is enough. `all`: every listed person, and for every listed
    team at least one of its members (recorded under the team's key).
    """
    given = set(approved) & approver_keys(gate)
    if gate.rule == "any":
        return bool(given)
    return approver_keys(gate) <= given
