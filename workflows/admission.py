"""What a run's admission means for it: pure rules the run workflow applies (deterministic)."""

from __future__ import annotations

import dataclasses

from workflows.contracts import Admitted, GateSpec

DISABLED = "disabled"
APPROVE = "approve"


def window_words(admitted: Admitted) -> str:
    """The window that decided, as a user knows it: `'name' (id)`."""
    return f"{admitted.window_name!r} ({admitted.window_id})"


def refusal(admitted: Admitted) -> str | None:
    """Why the run may not start (it ends without executing anything), or None."""
    if admitted.level != DISABLED:
        return None
    if admitted.window_id is not None:
        return f"blocked by maintenance window {window_words(admitted)}"
    return "autonomy is disabled"


def held_gate(gate: GateSpec, admitted: Admitted) -> GateSpec | None:
    """The start gate the run waits at (its message naming a window that holds it), or None
    when the run needs no approval."""
    if admitted.level != APPROVE:
        return None
    if admitted.window_id is None:
        return gate
    held = f"Held by maintenance window {window_words(admitted)}."
    return dataclasses.replace(gate, message=f"{gate.message} {held}".strip())
