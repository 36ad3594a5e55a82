"""The Automations API's names for the canonical statuses."""

from __future__ import annotations

import pytest

from core.statuses import AUTOMATION_RUN_STATUS, RunStatus, automation_run_status

AUTOMATIONS = [
    (RunStatus.SCHEDULED, "queued"),
    (RunStatus.PENDING_APPROVAL, "pending_approval"),
    (RunStatus.PENDING, "queued"),
    (RunStatus.INITIALIZING, "running"),
    (RunStatus.RUNNING, "running"),
    (RunStatus.SLEEPING, "running"),
    (RunStatus.STOPPING, "running"),
    (RunStatus.STOPPED, "cancelled"),
    (RunStatus.KILLING, "running"),
    (RunStatus.KILLED, "cancelled"),
    (RunStatus.SUCCEEDED, "done"),
    (RunStatus.FAILED, "failed"),
    (RunStatus.INIT_FAILED, "failed"),
    (RunStatus.REJECTED, "cancelled"),
    (RunStatus.TIMED_OUT, "timeout"),
    (RunStatus.EXPIRED, "cancelled"),
    (RunStatus.SKIPPED, "cancelled"),
]


@pytest.mark.parametrize(("canonical", "name"), AUTOMATIONS)
def test_automation_names(canonical: RunStatus, name: str) -> None:
    assert automation_run_status(canonical) == name
    assert automation_run_status(str(canonical)) == name


def test_every_canonical_status_has_a_name() -> None:
    assert set(AUTOMATION_RUN_STATUS) == set(RunStatus)
    assert {row[0] for row in AUTOMATIONS} == set(RunStatus)
    names = set(AUTOMATION_RUN_STATUS.values())
    assert names == {"queued", "running", "done", "failed", "timeout", "cancelled",
                     "pending_approval"}  # fmt: skip
