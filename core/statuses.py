"""Canonical run and action statuses, and every dialect's names for them.

One table per dialect, tested row by row; routes never spell a status themselves.
"""

from __future__ import annotations

from enum import StrEnum


class RunStatus(StrEnum):
    """Where a run is in its life (DESIGN §3)."""

    SCHEDULED = "scheduled"
    PENDING_APPROVAL = "pending_approval"
    PENDING = "pending"
    INITIALIZING = "initializing"
    RUNNING = "running"
    SLEEPING = "sleeping"
    STOPPING = "stopping"
    STOPPED = "stopped"
    KILLING = "killing"
    KILLED = "killed"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    INIT_FAILED = "init_failed"
    REJECTED = "rejected"
    TIMED_OUT = "timed_out"
    EXPIRED = "expired"
    SKIPPED = "skipped"


TERMINAL_RUN_STATUSES = frozenset(
    {
        RunStatus.STOPPED,
        RunStatus.KILLED,
        RunStatus.SUCCEEDED,
        RunStatus.FAILED,
        RunStatus.INIT_FAILED,
        RunStatus.REJECTED,
        RunStatus.TIMED_OUT,
        RunStatus.EXPIRED,
        RunStatus.SKIPPED,
    }
)


class ActionStatus(StrEnum):
    """One action's status; Mission Control's own names."""

    SCHEDULED = "scheduled"
    RUNNING = "running"
    SLEEPING = "sleeping"
    COMPLETED = "completed"
    FAILED = "failed"
    SKIPPED = "skipped"


TERMINAL_ACTION_STATUSES = frozenset(
    {ActionStatus.COMPLETED, ActionStatus.FAILED, ActionStatus.SKIPPED}
)


class GateStatus(StrEnum):
    """Where one approval gate of a run is: waiting, or how it closed."""

    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    TIMED_OUT = "timed_out"  # its on_timeout says what the run did then
    CANCELLED = "cancelled"  # the run was stopped or killed while it waited


# Mission Control, document era (duty v1.0.348): `pending` is "waiting for approval",
# `scheduled` is approved or needing none and waiting for its time.
MISSION_CONTROL_RUN_STATUS: dict[RunStatus, str] = {
    RunStatus.SCHEDULED: "scheduled",
    RunStatus.PENDING_APPROVAL: "pending",
    RunStatus.PENDING: "scheduled",
    RunStatus.INITIALIZING: "running",
    RunStatus.RUNNING: "running",
    RunStatus.SLEEPING: "sleeping",
    RunStatus.STOPPING: "running",
    RunStatus.STOPPED: "cancelled",
    RunStatus.KILLING: "running",
    RunStatus.KILLED: "cancelled",
    RunStatus.SUCCEEDED: "completed",
    RunStatus.FAILED: "failed",
    RunStatus.REJECTED: "failed",
    RunStatus.EXPIRED: "failed",
    RunStatus.INIT_FAILED: "failed",
    RunStatus.TIMED_OUT: "failed",
    RunStatus.SKIPPED: "cancelled",
}


# Runner (Job Service) execution statuses.
RUNNER_RUN_STATUS: dict[RunStatus, str] = {
    RunStatus.SCHEDULED: "PENDING",
    RunStatus.PENDING_APPROVAL: "PENDING",
    RunStatus.PENDING: "PENDING",
    RunStatus.INITIALIZING: "INITIALIZING",
    RunStatus.RUNNING: "RUNNING",
    RunStatus.SLEEPING: "RUNNING",
    RunStatus.STOPPING: "STOPPING",
    RunStatus.STOPPED: "STOPPED",
    RunStatus.KILLING: "KILLING",
    RunStatus.KILLED: "KILLED",
    RunStatus.SUCCEEDED: "SUCCESS",
    RunStatus.FAILED: "FAILURE",
    RunStatus.REJECTED: "FAILURE",
    RunStatus.EXPIRED: "FAILURE",
    RunStatus.INIT_FAILED: "INIT_FAILURE",
    RunStatus.TIMED_OUT: "STOPPED",
    RunStatus.SKIPPED: "STOPPED",
}

# Which Runner operations each canonical status allows (the document's state rules).
STOPPABLE = frozenset(
    {RunStatus.SCHEDULED, RunStatus.PENDING, RunStatus.INITIALIZING, RunStatus.RUNNING,
     RunStatus.SLEEPING, RunStatus.STOPPING}
)  # fmt: skip
KILLABLE = STOPPABLE | {RunStatus.KILLING}
RESTARTABLE = frozenset({RunStatus.FAILED, RunStatus.INIT_FAILED})


def runner_run_status(status: RunStatus | str) -> str:
    """The Runner name of a canonical run status."""
    return RUNNER_RUN_STATUS[RunStatus(status)]


def mission_control_run_status(status: RunStatus | str) -> str:
    """The Mission Control name of a canonical run status."""
    return MISSION_CONTROL_RUN_STATUS[RunStatus(status)]


def final_run_status(action_statuses: list[ActionStatus]) -> RunStatus:
    """A finished run's status from its actions: failed if any failed, else succeeded."""
    if any(s == ActionStatus.FAILED for s in action_statuses):
        return RunStatus.FAILED
    return RunStatus.SUCCEEDED


# hoop: an exec's `output_status` (the 202 answer is the only "running" a client waits on).
HOOP_OUTPUT_STATUS: dict[RunStatus, str] = {
    **{s: "running" for s in RunStatus if s not in TERMINAL_RUN_STATUSES},
    **{s: "failed" for s in TERMINAL_RUN_STATUSES},
    RunStatus.SUCCEEDED: "success",
}

# hoop: a review's status once its session has passed review; before that, the decisions tell
# (PENDING, or REJECTED on a rejection or when the review ran out).
HOOP_REVIEW_STATUS: dict[RunStatus, str] = {
    RunStatus.PENDING_APPROVAL: "PENDING",
    RunStatus.REJECTED: "REJECTED",
    RunStatus.EXPIRED: "REJECTED",
    RunStatus.SCHEDULED: "APPROVED",
    RunStatus.PENDING: "APPROVED",
    RunStatus.INITIALIZING: "PROCESSING",
    RunStatus.RUNNING: "PROCESSING",
    RunStatus.SLEEPING: "PROCESSING",
    RunStatus.STOPPING: "PROCESSING",
    RunStatus.KILLING: "PROCESSING",
    RunStatus.STOPPED: "EXECUTED",
    RunStatus.KILLED: "EXECUTED",
    RunStatus.SUCCEEDED: "EXECUTED",
    RunStatus.FAILED: "EXECUTED",
    RunStatus.INIT_FAILED: "EXECUTED",
    RunStatus.TIMED_OUT: "EXECUTED",
    RunStatus.SKIPPED: "EXECUTED",
}


def hoop_output_status(status: RunStatus | str) -> str:
    """hoop's `output_status` of a session in a canonical status."""
    return HOOP_OUTPUT_STATUS[RunStatus(status)]


def hoop_session_status(status: RunStatus | str, *, reviewed: bool) -> str:
    """hoop's session status: `open` until done, `ready` once its review has approved it."""
    if RunStatus(status) in TERMINAL_RUN_STATUSES:
        return "done"
    approved = reviewed and RunStatus(status) != RunStatus.PENDING_APPROVAL
    return "ready" if approved else "open"


def hoop_review_status(status: RunStatus | str) -> str:
    """hoop's review status of a reviewed session in a canonical status."""
    return HOOP_REVIEW_STATUS[RunStatus(status)]


# Automations (NOBA): a run waiting for a slot is `queued`; a run stopped past its timeout is
# `timeout`; rejected or expired approvals and stops end `cancelled`.
AUTOMATION_RUN_STATUS: dict[RunStatus, str] = {
    RunStatus.SCHEDULED: "queued",
    RunStatus.PENDING_APPROVAL: "pending_approval",
    RunStatus.PENDING: "queued",
    RunStatus.INITIALIZING: "running",
    RunStatus.RUNNING: "running",
    RunStatus.SLEEPING: "running",
    RunStatus.STOPPING: "running",
    RunStatus.STOPPED: "cancelled",
    RunStatus.KILLING: "running",
    RunStatus.KILLED: "cancelled",
    RunStatus.SUCCEEDED: "done",
    RunStatus.FAILED: "failed",
    RunStatus.INIT_FAILED: "failed",
    RunStatus.REJECTED: "cancelled",
    RunStatus.TIMED_OUT: "timeout",
    RunStatus.EXPIRED: "cancelled",
    RunStatus.SKIPPED: "cancelled",
}


def automation_run_status(status: RunStatus | str) -> str:
    """The Automations API's name of a canonical run status."""
    return AUTOMATION_RUN_STATUS[RunStatus(status)]
