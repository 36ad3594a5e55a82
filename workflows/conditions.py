"""Action `if` filters: whether an action runs, given how the run has gone so far."""

from __future__ import annotations

CONDITIONS = ("success()", "failure()", "always()", "skip()")


def normalize_condition(text: str | None) -> str:
    """The canonical form of an `if` filter; raises ValueError for unsupported ones."""
    value = (text or "success()").strip()
    if value in ("success", "failure", "always", "skip"):
        value += "()"
    if value not in CONDITIONS:
        raise ValueError(f"unsupported filter {text!r}: use one of {', '.join(CONDITIONS)}")
    return value


def should_run(
    condition: str, any_failed: bool, *, halted: bool = False, final: bool = False
) -> bool:
    """Whether an action with this filter runs after earlier actions did (or did not) fail.

    A halted run (stopped, killed, ended at a gate) runs only its final actions, for which
    the halt counts as a failure.
    """
    if halted:
        if not final:
            return False
        any_failed = True
    if condition == "always()":
        return True
    if condition == "skip()":
        return False
    if condition == "failure()":
        return any_failed
    return not any_failed
