"""Many clients at once: run requests never starve each other of DB connections, and a burst
of runs larger than what the worker works on at once still runs every one of them."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import func, select
from temporalio.client import Client

from core.statuses import RunStatus
from core.store.models import Run
from tests.conftest import TEST_SECRET_KEY
from tests.stack import ADMIN, basic, make_settings, stack_for
from workers.main import WORKFLOW_TASK_SLOTS

CONCURRENT = 100
PLAYBOOK = """
apiVersion: mission-control.flanksource.com/v1
kind: Playbook
metadata: {name: busy}
spec:
  actions: [{name: a, exec: {script: "true"}}]
"""


async def test_concurrent_run_requests_all_succeed(tmp_path: Path, temporal: Client) -> None:
    """100 POST /playbook/run at once (more than the DB pool holds) all answer 201."""
    settings = make_settings(tmp_path / "home", secret_key=TEST_SECRET_KEY)
    async with stack_for(settings, temporal, worker=False) as stack:
        items = await stack.apply(PLAYBOOK)
        token = await stack.api.post("/api/tokens", json={}, headers=basic(*ADMIN))
        auth = {"Authorization": f"Bearer {token.json()['token']}"}

        async def post() -> int:
            response = await stack.api.post(
                "/playbook/run", json={"id": items[0]["id"]}, headers=auth
            )
            return response.status_code

        codes = await asyncio.wait_for(
            asyncio.gather(*(post() for _ in range(CONCURRENT))), timeout=60
        )
        assert codes == [201] * CONCURRENT
        with stack.sessions() as session:
            assert session.scalar(select(func.count()).select_from(Run)) == CONCURRENT


async def test_a_burst_beyond_the_workflow_task_slots_runs_every_run(
    tmp_path: Path, temporal: Client
) -> None:
    """Three times as many runs as the worker has workflow-task slots, started at once, all
    succeed: the tasks past the bound wait in Temporal's queue, none is lost or stuck."""
    settings = make_settings(tmp_path / "home", secret_key=TEST_SECRET_KEY)
    async with stack_for(settings, temporal) as stack:
        items = await stack.apply(PLAYBOOK)
        token = await stack.api.post("/api/tokens", json={}, headers=basic(*ADMIN))
        auth = {"Authorization": f"Bearer {token.json()['token']}"}
        burst = 3 * WORKFLOW_TASK_SLOTS
        run_ids = await asyncio.gather(
            *(stack.run({"id": items[0]["id"]}, auth=auth) for _ in range(burst))
        )
        ended = [await stack.wait_status(run_id, timeout=120) for run_id in run_ids]
        assert [row.status for row in ended] == [str(RunStatus.SUCCEEDED)] * burst
        for run_id in run_ids:
            body = await stack.get_run(run_id)
            assert [a["status"] for a in body["actions"]] == ["completed"]
