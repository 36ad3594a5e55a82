"""With Temporal unreachable, requests that need it answer 503 and leave nothing half-done."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from core.statuses import RunStatus
from core.store.models import Definition, Run, Schedule
from core.store.session import transaction
from tests.api.runner.support import ACME, KEY_B64, Runner, job_body, message_of, seed
from tests.conftest import TEST_SECRET_KEY
from tests.stack import client_of_a_stopped_temporal, make_settings, stack_for

UNAVAILABLE = "the workflow service is unavailable"


@pytest.fixture(scope="module")
async def down(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Runner]:
    """A runwright whose Temporal server has gone away after it connected (no worker)."""
    client = await client_of_a_stopped_temporal()
    settings = make_settings(tmp_path_factory.mktemp("down"), secret_key=TEST_SECRET_KEY)
    async with stack_for(settings, client, worker=False) as stack:
        yield seed(stack)


async def test_immediate_create_stores_no_job(down: Runner) -> None:
    """POST /jobs?immediate=true is 503 and neither the job nor its secrets stay."""
    before = down.counts()
    response = await down.request(
        "POST", f"/jobs/{ACME}?immediate=true", json=job_body(sshPrivateKey=KEY_B64)
    )
    assert message_of(response, 503).startswith(UNAVAILABLE)
    assert down.counts() == before


async def test_immediate_update_puts_the_job_back(down: Runner) -> None:
    """PUT ?immediate=true is 503 and the job reads as before."""
    job = await down.create_job(job_body(description="before"))
    response = await down.request(
        "PUT", f"/jobs/{ACME}/{job['id']}?immediate=true", json=job_body(description="after")
    )
    assert message_of(response, 503).startswith(UNAVAILABLE)
    assert (await down.request("GET", f"/jobs/{ACME}/{job['id']}")).json() == job


async def test_start_leaves_no_execution(down: Runner) -> None:
    """A start is 503 and no execution row is left."""
    job = await down.create_job(job_body())
    before = down.counts()
    response = await down.request("POST", f"/jobs/{ACME}/{job['id']}/start", json={})
    assert message_of(response, 503).startswith(UNAVAILABLE)
    assert down.counts()["runs"] == before["runs"]


async def test_restart_keeps_the_failed_attempt(down: Runner) -> None:
    """A restart is 503 and the execution stays FAILURE at its attempt."""
    job = await down.create_job(job_body())
    execution = down.add_run(job["id"], str(RunStatus.FAILED), failed_hosts=["localhost"])
    path = f"/jobs/{ACME}/{job['id']}/executions/{execution}/restart"
    response = await down.request("POST", path, json={})
    assert message_of(response, 503).startswith(UNAVAILABLE)
    with down.stack.sessions() as session:
        row = session.get(Run, execution)
        assert row is not None and (row.status, row.attempt) == ("failed", 1)


async def test_stop_is_503(down: Runner) -> None:
    """A stop that cannot reach the run is 503."""
    job = await down.create_job(job_body())
    execution = down.add_run(job["id"], str(RunStatus.RUNNING))
    path = f"/jobs/{ACME}/{job['id']}/executions/{execution}/stop"
    response = await down.request("POST", path, json={})
    assert message_of(response, 503).startswith(UNAVAILABLE)


async def test_delete_with_schedules_keeps_the_job(down: Runner) -> None:
    """A job whose schedules cannot be removed from Temporal is not deleted."""
    job = await down.create_job(job_body())
    with transaction(down.stack.sessions) as session:
        trigger = {"type": "cron", "expression": "0 * * * *"}
        session.add(Schedule(definition_id=job["id"], schedule_id="s-down", trigger=trigger))
    response = await down.request("DELETE", f"/jobs/{ACME}/{job['id']}")
    assert message_of(response, 503).startswith(UNAVAILABLE)
    with down.stack.sessions() as session:
        row = session.get(Definition, job["id"])
        assert row is not None and row.deleted_at is None
