"""Recorded RunWorkflow histories still replay: a change that would break running runs fails."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from workflows.run import RunWorkflow

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def test_histories_are_recorded() -> None:
    """The replay test has histories to replay (see record_histories.py)."""
    assert {p.stem for p in HISTORIES} >= {
        "filters_and_always",
        "approved_gate",
        "approval_actions",
        "held_on_firing",
        "blocked_on_firing",
    }


@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: p.stem)
async def test_history_replays(path: Path) -> None:
    """The current RunWorkflow makes the same decisions as the recorded run did."""
    history = WorkflowHistory.from_json(path.stem, path.read_text())
    await Replayer(workflows=[RunWorkflow]).replay_workflow(history)
