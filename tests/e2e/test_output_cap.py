"""A run that floods its output stores a bounded number of events, ending in a marker."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from temporalio.client import Client

from core.statuses import RunStatus
from core.store.models import RunEvent
from tests.conftest import TEST_SECRET_KEY
from tests.stack import Stack, make_settings, stack_for

pytestmark = pytest.mark.slow

DEFAULT_EVENTS = 10_000
MARKER = (
    "output truncated: the run reached its cap of {events} events or {nbytes} bytes of output "
    "(RUNWRIGHT_RUN_MAX_EVENTS, RUNWRIGHT_RUN_MAX_OUTPUT_BYTES); later output is not stored"
)


def flood(name: str, script: str, actions: int = 1) -> str:
    steps = "".join(
        f"    - name: step{i}\n      exec: {{script: '{script}'}}\n" for i in range(actions)
    )
    return (
        "apiVersion: mission-control.flanksource.com/v1\n"
        f"kind: Playbook\nmetadata: {{name: {name}}}\nspec:\n  actions:\n{steps}"
    )


def events_of(stack: Stack, run_id: str) -> list[RunEvent]:
    with stack.sessions() as session:
        return list(
            session.scalars(
                select(RunEvent).where(RunEvent.run_id == run_id).order_by(RunEvent.seq)
            )
        )


@pytest.fixture
async def small_cap(tmp_path: Path, temporal: Client) -> AsyncIterator[Stack]:
    """A stack whose runs may store 300 events or 64 KiB of output."""
    settings = make_settings(
        tmp_path / "home",
        secret_key=TEST_SECRET_KEY,
        run_max_events=300,
        run_max_output_bytes=64 * 1024,
    )
    async with stack_for(settings, temporal) as running:
        yield running


@pytest.mark.timeout(300)
async def test_a_script_printing_200k_lines_stores_at_most_the_cap(stack: Stack) -> None:
    """200 000 lines under the default cap: 10 000 events at most, the marker, a finished run."""
    items = await stack.apply(flood("flood", "seq 1 200000"))
    run_id = await stack.run({"id": items[0]["id"]})
    row = await stack.wait_status(run_id, timeout=240)
    assert row.status == RunStatus.SUCCEEDED
    events = events_of(stack, run_id)
    with stack.sessions() as session:
        stored = session.scalar(
            select(func.count()).select_from(RunEvent).where(RunEvent.run_id == run_id)
        )
    assert stored == len(events)
    # The cap, plus the lines that say how the run ended (status changes, action finished).
    assert len(events) <= DEFAULT_EVENTS + 10
    markers = [e for e in events if e.event_type == "output_truncated"]
    assert [m.message for m in markers] == [
        MARKER.format(events=DEFAULT_EVENTS, nbytes=4 * 1024 * 1024)
    ]
    stdout = [e.message for e in events if e.event_type == "stdout"]
    assert stdout[0] == "1"
    assert "200000" not in stdout
    # What happened after the flood is still told.
    assert events[-1].event_type == "run_status"
    assert any(e.event_type == "action_finished" for e in events if e.seq > markers[0].seq)


async def test_the_cap_counts_the_whole_run_and_bytes_too(small_cap: Stack) -> None:
    """Three flooding actions share one cap: one marker, and a few long lines fill it by size."""
    script = 'for i in $(seq 1 40); do printf "%04000d\\n" $i; done'
    items = await small_cap.apply(flood("wide", script, actions=3))
    run_id = await small_cap.run({"id": items[0]["id"]})
    row = await small_cap.wait_status(run_id, timeout=120)
    assert row.status == RunStatus.SUCCEEDED
    events = events_of(small_cap, run_id)
    stdout = [e for e in events if e.event_type == "stdout"]
    # 64 KiB holds 16 lines of 4 000 digits; the other 104 lines of the run are dropped.
    assert len(stdout) == 16
    assert sum(len(e.message) for e in events) <= 64 * 1024 + 2000
    markers = [e for e in events if e.event_type == "output_truncated"]
    assert [m.message for m in markers] == [MARKER.format(events=300, nbytes=64 * 1024)]
    finished = [e for e in events if e.event_type == "action_finished"]
    assert len(finished) == 3
