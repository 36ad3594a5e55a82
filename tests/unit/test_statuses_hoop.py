"""hoop's names for the canonical statuses: output_status, session status, review status."""

from __future__ import annotations

import pytest

from core.statuses import (
    HOOP_OUTPUT_STATUS,
    HOOP_REVIEW_STATUS,
    RunStatus,
    hoop_output_status,
    hoop_review_status,
    hoop_session_status,
)

# (canonical, output_status, session status unreviewed, session status reviewed, review status)
HOOP = [
    (RunStatus.SCHEDULED, "running", "open", "ready", "APPROVED"),
    (RunStatus.PENDING_APPROVAL, "running", "open", "open", "PENDING"),
    (RunStatus.PENDING, "running", "open", "ready", "APPROVED"),
    (RunStatus.INITIALIZING, "running", "open", "ready", "PROCESSING"),
    (RunStatus.RUNNING, "running", "open", "ready", "PROCESSING"),
    (RunStatus.SLEEPING, "running", "open", "ready", "PROCESSING"),
    (RunStatus.STOPPING, "running", "open", "ready", "PROCESSING"),
    (RunStatus.STOPPED, "failed", "done", "done", "EXECUTED"),
    (RunStatus.KILLING, "running", "open", "ready", "PROCESSING"),
    (RunStatus.KILLED, "failed", "done", "done", "EXECUTED"),
    (RunStatus.SUCCEEDED, "success", "done", "done", "EXECUTED"),
    (RunStatus.FAILED, "failed", "done", "done", "EXECUTED"),
    (RunStatus.INIT_FAILED, "failed", "done", "done", "EXECUTED"),
    (RunStatus.REJECTED, "failed", "done", "done", "REJECTED"),
    (RunStatus.TIMED_OUT, "failed", "done", "done", "EXECUTED"),
    (RunStatus.EXPIRED, "failed", "done", "done", "REJECTED"),
    (RunStatus.SKIPPED, "failed", "done", "done", "EXECUTED"),
]


@pytest.mark.parametrize(("canonical", "output", "open_", "reviewed", "review"), HOOP)
def test_hoop_names(
    canonical: RunStatus, output: str, open_: str, reviewed: str, review: str
) -> None:
    """Each canonical status has its hoop output, session and review status."""
    assert hoop_output_status(canonical) == output
    assert hoop_session_status(canonical, reviewed=False) == open_
    assert hoop_session_status(str(canonical), reviewed=True) == reviewed
    assert hoop_review_status(canonical) == review


def test_tables_cover_every_status_with_documented_names() -> None:
    """No canonical status is missing, and only the document's names appear."""
    assert {row[0] for row in HOOP} == set(RunStatus)
    assert set(HOOP_OUTPUT_STATUS) == set(HOOP_REVIEW_STATUS) == set(RunStatus)
    assert set(HOOP_OUTPUT_STATUS.values()) == {"success", "failed", "running"}
    assert set(HOOP_REVIEW_STATUS.values()) <= {
        "PENDING", "APPROVED", "REJECTED", "REVOKED", "PROCESSING", "EXECUTED",
    }  # fmt: skip
