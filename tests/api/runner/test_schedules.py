"""Job schedules: a row and a Temporal Schedule each, firing executions as a service account.

Temporal fires a cron schedule at most once a minute, so these tests fire them with the
schedule handle's `trigger()`; a one-shot date is set a few seconds ahead.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from temporalio.client import (
    Client,
    ScheduleActionStartWorkflow,
    ScheduleDescription,
    ScheduleRange,
)
from temporalio.service import RPCError, RPCStatusCode

from api.fields import FieldError
from api.runner.triggers import cron_expressions, parse_date, parse_schedule_body
from core.store.models import Definition, Run, Schedule, ServiceAccount
from core.store.session import transaction
from tests.api.runner.support import (
    ACME,
    HELLO_PLAYBOOK,
    OTHER,
    UNKNOWN_ID,
    Runner,
    job_body,
    message_of,
    seed,
)
from tests.conftest import TEST_SECRET_KEY
from tests.stack import client_of_a_stopped_temporal, make_repo, make_settings, stack_for
from workflows.contracts import RUN_WORKFLOW, RunInput

SERVICE_ACCOUNT = "scheduler"
DOCUMENT_FIELDS = {"id", "jobId", "accountAlias", "scheduleId", "description", "trigger"}
YEARLY = "0 0 1 1 *"  # never fires during a test: only `trigger()` does
NOW = datetime(2030, 1, 1, tzinfo=UTC)


# ---- the body, checked without a server ------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("* * * * *", ["* * * * *"]),
        ("*/15 0-6,22 * jan-mar,DEC mon-fri", ["*/15 0-6,22 * jan-mar,DEC mon-fri"]),
        ("0 12 1-31/10 * *", ["0 12 1-31/10 * *"]),
        ("5/10 * * * 7", ["5/10 * * * 7"]),
        # unix cron: both day fields restricted means either may match
        ("0 0 13 * 5", ["0 0 13 * *", "0 0 * * 5"]),
        ("0 0 */2 * 1", ["0 0 */2 * 1"]),
    ],
)
def test_cron_expressions_temporal_is_given(expression: str, expected: list[str]) -> None:
    """Valid unix cron passes as it is, but for the day-of-month-or-day-of-week case."""
    assert cron_expressions(expression, "trigger.expression") == expected


@pytest.mark.parametrize(
    ("expression", "problem"),
    [
        ("* * * *", "5 fields"),
        ("0 * * * * *", "5 fields"),
        ("@daily", "5 fields"),
        ("60 * * * *", "outside 0-59"),
        ("0 24 * * *", "outside 0-23"),
        ("0 0 0 * *", "outside 1-31"),
        ("0 0 * 13 *", "outside 1-12"),
        ("0 0 * * 8", "outside 0-7"),
        ("5-1 * * * *", "ends before it starts"),
        ("*/0 * * * *", "step"),
        ("*/61 * * * *", "step"),
        ("0 0 ? * *", "not a value"),
        ("0 0 L * *", "is not"),
        ("0 0 * * 5#2", "not a value"),
        ("0 0 * * mon-", "not a value"),
        ("0 0 * * funday", "is not"),
        ("0 0 * jan1 *", "is not"),
        ("1,,2 * * * *", "not a value"),
        ("-1 * * * *", "not a value"),
        ("001 * * * *", "is not"),
    ],
)
def test_invalid_cron_expressions_are_refused(expression: str, problem: str) -> None:
    """Anything but a plain five-field unix expression is refused, naming the field."""
    with pytest.raises(FieldError, match=r"^trigger\.expression: .*" + re.escape(problem)):
        cron_expressions(expression, "trigger.expression")


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("2030-01-31T18:00:00Z", datetime(2030, 1, 31, 18, tzinfo=UTC)),
        ("2030-01-31T18:00:00", datetime(2030, 1, 31, 18, tzinfo=UTC)),
        ("2030-01-31T20:00:00.750+02:00", datetime(2030, 1, 31, 18, tzinfo=UTC)),
        ("2030-02-01", datetime(2030, 2, 1, tzinfo=UTC)),
    ],
)
def test_dates_are_utc_seconds(expression: str, expected: datetime) -> None:
    """A date is read as UTC (an offset is converted), to the second."""
    assert parse_date(expression, "trigger.expression", NOW) == expected


@pytest.mark.parametrize(
    ("expression", "problem"),
    [
        ("tomorrow", "ISO-8601"),
        ("2030-02-30T00:00:00Z", "ISO-8601"),
        ("2029-12-31T23:59:59Z", "not in the future"),
        ("2030-01-01T00:00:00Z", "not in the future"),
    ],
)
def test_invalid_dates_are_refused(expression: str, problem: str) -> None:
    """Not a time, or not after now."""
    with pytest.raises(FieldError, match=r"^trigger\.expression: .*" + re.escape(problem)):
        parse_date(expression, "trigger.expression", NOW)


def test_the_trigger_may_be_spelled_as_the_documents_example() -> None:
    """`type` instead of `trigger`, and an array of one, are the same trigger."""
    base = {"description": "d", "serviceAccountAlias": "sa"}
    cron = {"type": "CRON", "expression": " 0  1 * * * "}
    bodies = [{**base, "trigger": cron}, {**base, "type": cron}, {**base, "trigger": [cron]}]
    for body in bodies:
        parsed = parse_schedule_body(body, NOW)
        assert parsed.trigger.document() == {"type": "cron", "expression": "0 1 * * *"}


# ---- the routes, on a real stack -------------------------------------------------------------


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A git repository with the hello playbook (file:// URL)."""
    root = tmp_path_factory.mktemp("schedule-repo") / "playbooks"
    return make_repo(root, {"site.yml": HELLO_PLAYBOOK}, branch="main")


@pytest.fixture(scope="module")
async def service_user(runner: Runner) -> AsyncIterator[str]:
    """The service account `scheduler` of ACME; its user's id. Every Temporal schedule the
    module's tests left is deleted at the end (the module's worker goes with it)."""
    body = {"alias": SERVICE_ACCOUNT, "username": "scheduler@acme.test", "password": "pw"}
    response = await runner.request("POST", f"/serviceAccounts/{ACME}", json=body)
    assert response.status_code == 201, response.text
    with runner.stack.sessions() as session:
        link = session.get(ServiceAccount, response.json()["id"])
        assert link is not None
        user_id = link.user_id
    yield user_id
    with runner.stack.sessions() as session:
        left = list(session.scalars(select(Schedule.schedule_id)))
    for schedule_id in left:
        try:
            await runner.stack.temporal.get_schedule_handle(schedule_id).delete()
        except RPCError:
            pass  # deleted by the test itself


@pytest.fixture(scope="module")
async def job(runner: Runner, repo: str, service_user: str) -> dict[str, Any]:
    """A job of ACME that runs the hello playbook on localhost."""
    return await runner.create_job(job_body(repo, properties={"who": "the scheduler"}))


def schedule_body(kind: str = "cron", expression: str = YEARLY, **fields: Any) -> dict[str, Any]:
    """A valid schedule body (fields override or add to it)."""
    body: dict[str, Any] = {
        "description": "Job Schedule demo.",
        "serviceAccountAlias": SERVICE_ACCOUNT,
        "trigger": {"type": kind, "expression": expression},
    }
    body.update(fields)
    return body


async def create(runner: Runner, job_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST .../schedules, which must answer 201; the schedule document."""
    response = await runner.request("POST", f"/jobs/{ACME}/{job_id}/schedules", json=body)
    assert response.status_code == 201, response.text
    document: dict[str, Any] = response.json()
    return document


async def describe(runner: Runner, schedule_id: str) -> ScheduleDescription:
    """The Temporal schedule."""
    return await runner.stack.temporal.get_schedule_handle(schedule_id).describe()


async def scheduled_input(runner: Runner, description: ScheduleDescription) -> RunInput:
    """The RunInput a schedule's action starts `Run` with."""
    action = description.schedule.action
    assert isinstance(action, ScheduleActionStartWorkflow)
    decoded = await runner.stack.temporal.data_converter.decode(list(action.args), [RunInput])
    run_input: RunInput = decoded[0]
    return run_input


async def in_temporal(runner: Runner, schedule_id: str) -> bool:
    """Whether Temporal has the schedule."""
    try:
        await describe(runner, schedule_id)
    except RPCError as exc:
        assert exc.status == RPCStatusCode.NOT_FOUND, exc
        return False
    return True


async def temporal_schedules(client: Client) -> set[str]:
    """The ids of every Temporal schedule."""
    return {s.id async for s in await client.list_schedules()}


async def executions_of(runner: Runner, job_id: str) -> list[dict[str, Any]]:
    """The job's execution documents."""
    response = await runner.request("GET", f"/jobs/{ACME}/{job_id}/executions")
    assert response.status_code == 200, response.text
    results: list[dict[str, Any]] = response.json()["results"]
    return results


async def finished_executions(
    runner: Runner, job_id: str, count: int, timeout: float = 30.0
) -> list[dict[str, Any]]:
    """Wait for the job to have `count` executions, all ended."""
    deadline = time.monotonic() + timeout
    found: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        found = await executions_of(runner, job_id)
        ended = {"SUCCESS", "FAILURE", "INIT_FAILURE", "STOPPED", "KILLED"}
        if len(found) >= count and all(e["status"] in ended for e in found):
            return found
        await asyncio.sleep(0.2)
    raise AssertionError(f"no {count} finished executions of {job_id}: {found}")


async def test_a_triggered_schedule_runs_the_job_as_its_service_account(
    runner: Runner, job: dict[str, Any], service_user: str
) -> None:
    """The document as the Runner shows it; each firing is an execution of the job started by
    the service account, running to SUCCESS."""
    document = await create(runner, job["id"], schedule_body())
    assert set(document) == DOCUMENT_FIELDS
    assert (document["jobId"], document["accountAlias"]) == (job["id"], ACME)
    assert document["description"] == "Job Schedule demo."
    assert document["trigger"] == {"type": "cron", "expression": YEARLY}
    assert re.fullmatch(r"s-[0-9a-f]{12}", document["scheduleId"])
    schedule_id = document["scheduleId"]

    description = await describe(runner, schedule_id)
    action = description.schedule.action
    assert isinstance(action, ScheduleActionStartWorkflow)
    assert (action.workflow, action.id) == (RUN_WORKFLOW, schedule_id)
    assert action.task_queue == runner.stack.settings.task_queue
    run_input = await scheduled_input(runner, description)
    assert run_input.run_id == "" and run_input.definition_id == job["id"]
    assert run_input.registration is not None
    assert run_input.registration.created_by == service_user
    assert run_input.registration.parameters == {}
    assert description.schedule.state.note == "Job Schedule demo."
    assert await description.memo_value("jobScheduleId") == document["id"]

    await runner.stack.temporal.get_schedule_handle(schedule_id).trigger()
    (execution,) = await finished_executions(runner, job["id"], 1)
    assert execution["status"] == "SUCCESS", execution
    assert execution["execution_id"].startswith(f"{schedule_id}-")
    assert execution["job_id"] == job["id"] and execution["account_alias"] == ACME
    with runner.stack.sessions() as session:
        run = session.get(Run, execution["execution_id"])
        assert run is not None and run.created_by == service_user
    events = await runner.request(
        "GET", f"/status/{ACME}/job/{job['id']}/execution/{execution['execution_id']}"
    )
    assert "hello the scheduler from localhost" in events.text


async def test_a_date_fires_once_at_that_second(
    runner: Runner, repo: str, service_user: str
) -> None:
    """A one-shot date (given as the document's `type`, in an array) starts one execution,
    named by that second, and never again."""
    job = await runner.create_job(job_body(repo))
    at = (datetime.now(UTC) + timedelta(seconds=3)).replace(microsecond=0)
    expression = f"{at:%Y-%m-%dT%H:%M:%SZ}"
    body = schedule_body()
    del body["trigger"]
    body["type"] = [{"type": "date", "expression": expression}]
    document = await create(runner, job["id"], body)
    assert document["trigger"] == {"type": "date", "expression": expression}
    state = (await describe(runner, document["scheduleId"])).schedule.state
    assert (state.limited_actions, state.remaining_actions) == (True, 1)

    (execution,) = await finished_executions(runner, job["id"], 1)
    assert execution["status"] == "SUCCESS", execution
    assert execution["execution_id"] == f"{document['scheduleId']}-{expression}"
    description = await describe(runner, document["scheduleId"])
    assert description.schedule.state.remaining_actions == 0
    assert description.info.next_action_times == []
    assert description.info.num_actions == 1
    await asyncio.sleep(1.5)
    assert len(await executions_of(runner, job["id"])) == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"serviceAccountAlias": SERVICE_ACCOUNT, "trigger": {"type": "cron",
          "expression": YEARLY}}, "description"),
        (schedule_body(serviceAccountAlias=None), "serviceAccountAlias"),
        (schedule_body(serviceAccountAlias="nobody"), "serviceAccountAlias"),
        (schedule_body(trigger=None), "trigger"),
        (schedule_body(trigger=[]), "trigger"),
        (schedule_body(trigger="0 * * * *"), "trigger"),
        (schedule_body("interval", "5m"), "trigger.type"),
        (schedule_body(trigger={"expression": YEARLY}), "trigger.type"),
        (schedule_body(trigger={"type": "cron"}), "trigger.expression"),
        (schedule_body("cron", "* * * * * *"), "trigger.expression"),
        (schedule_body("cron", "61 * * * *"), "trigger.expression"),
        (schedule_body("cron", "@hourly"), "trigger.expression"),
        (schedule_body("date", "next tuesday"), "trigger.expression"),
        (schedule_body("date", "2020-01-01T00:00:00Z"), "trigger.expression"),
        (schedule_body(trigger=None, type=[{"type": "date", "expression": "x"}]),
         "type[0].expression"),
        (schedule_body(trigger=None, type=[{}, {}]), "type"),
    ],
)  # fmt: skip
async def test_a_refused_schedule_leaves_nothing(
    runner: Runner, job: dict[str, Any], body: dict[str, Any], field: str, unchanged: None
) -> None:
    """400 naming the field; no row and no Temporal schedule."""
    before = await temporal_schedules(runner.stack.temporal)
    response = await runner.request("POST", f"/jobs/{ACME}/{job['id']}/schedules", json=body)
    assert message_of(response, 400).startswith(f"{field}: ")
    assert await temporal_schedules(runner.stack.temporal) == before


async def test_the_other_account_is_refused(
    runner: Runner, job: dict[str, Any], unchanged: None
) -> None:
    """Another account's token is 403 on ACME's paths; under its own alias ACME's job is 404;
    a viewer reads but does not write; no token is 401."""
    document = await create(runner, job["id"], schedule_body())
    base = f"/jobs/{ACME}/{job['id']}/schedules"
    one = f"{base}/{document['id']}"
    for method, path in (("POST", base), ("GET", base), ("PUT", one), ("DELETE", one)):
        response = await runner.request(method, path, who="other", json=schedule_body())
        assert message_of(response, 403) == f"you do not have access to account {ACME}"
        response = await runner.request(
            method, path.replace(f"/{ACME}/", f"/{OTHER}/"), who="other", json=schedule_body()
        )
        assert message_of(response, 404) == f"job {job['id']} not found"
        assert (await runner.request(method, path, who=None)).status_code == 401
    assert (await runner.request("GET", base, who="viewer")).status_code == 200
    for method, path in (("POST", base), ("PUT", one), ("DELETE", one)):
        response = await runner.request(method, path, who="viewer", json=schedule_body())
        assert response.status_code == 403
    response = await runner.request("DELETE", one)
    assert response.status_code == 204


async def test_unknown_jobs_and_schedules_are_404(
    runner: Runner, job: dict[str, Any], repo: str
) -> None:
    """An unknown job, an unknown schedule, another job's schedule."""
    other_job = await runner.create_job(job_body(repo))
    document = await create(runner, other_job["id"], schedule_body())
    response = await runner.request(
        "POST", f"/jobs/{ACME}/{UNKNOWN_ID}/schedules", json=schedule_body()
    )
    assert message_of(response, 404) == f"job {UNKNOWN_ID} not found"
    assert (await runner.request("GET", f"/jobs/{ACME}/{UNKNOWN_ID}/schedules")).status_code == 404
    for schedule in (UNKNOWN_ID, document["id"]):
        path = f"/jobs/{ACME}/{job['id']}/schedules/{schedule}"
        response = await runner.request("PUT", path, json=schedule_body())
        assert message_of(response, 404) == f"job schedule {schedule} not found"
        response = await runner.request("DELETE", path)
        assert message_of(response, 404) == f"job schedule {schedule} not found"
    assert await in_temporal(runner, document["scheduleId"])


async def test_list_is_paged_newest_first(runner: Runner, repo: str, service_user: str) -> None:
    """`{totalSize, page, size, results}` like every Runner list."""
    job = await runner.create_job(job_body(repo))
    first = await create(runner, job["id"], schedule_body(description="first"))
    second = await create(runner, job["id"], schedule_body(description="second"))
    base = f"/jobs/{ACME}/{job['id']}/schedules"
    response = await runner.request("GET", base, who="viewer")
    assert response.status_code == 200, response.text
    assert response.json() == {
        "totalSize": 2, "page": 0, "size": 100, "results": [second, first]
    }  # fmt: skip
    page = (await runner.request("GET", f"{base}?page=1&size=1")).json()
    assert (page["totalSize"], page["results"]) == (2, [first])
    response = await runner.request("GET", f"{base}?size=0")
    assert message_of(response, 400).startswith("size")


def calendar_of(description: ScheduleDescription) -> dict[str, list[tuple[int, int]]]:
    """The first calendar of a described schedule, field by field as (start, end) ranges."""
    calendar = description.schedule.spec.calendars[0]

    def ranges(values: Any) -> list[tuple[int, int]]:
        return [(r.start, r.end or r.start) for r in values if isinstance(r, ScheduleRange)]

    fields = ("second", "minute", "hour", "day_of_month", "month", "year", "day_of_week")
    return {f: ranges(getattr(calendar, f)) for f in fields}


async def test_put_replaces_the_trigger(runner: Runner, job: dict[str, Any]) -> None:
    """PUT rewrites the Temporal schedule's spec and state and the row; ids stay. A refused
    PUT changes neither."""
    document = await create(runner, job["id"], schedule_body())
    path = f"/jobs/{ACME}/{job['id']}/schedules/{document['id']}"
    body = schedule_body("cron", "30 4 * * mon-fri", description="weekdays")
    response = await runner.request("PUT", path, json=body)
    assert response.status_code == 200, response.text
    updated = response.json()
    assert updated == {
        **document, "description": "weekdays",
        "trigger": {"type": "cron", "expression": "30 4 * * mon-fri"},
    }  # fmt: skip
    description = await describe(runner, document["scheduleId"])
    calendar = calendar_of(description)
    assert (calendar["minute"], calendar["hour"]) == ([(30, 30)], [(4, 4)])
    assert calendar["day_of_week"] == [(1, 5)]
    assert description.schedule.state.note == "weekdays"
    assert description.schedule.state.limited_actions is False

    at = datetime.now(UTC).replace(microsecond=0) + timedelta(days=400)
    body = schedule_body("date", f"{at:%Y-%m-%dT%H:%M:%S}+00:00", description="once")
    response = await runner.request("PUT", path, json=body)
    assert response.status_code == 200, response.text
    assert response.json()["trigger"] == {"type": "date", "expression": f"{at:%Y-%m-%dT%H:%M:%SZ}"}
    description = await describe(runner, document["scheduleId"])
    calendar = calendar_of(description)
    assert calendar["year"] == [(at.year, at.year)] and calendar["second"] == [(at.second,) * 2]
    assert (calendar["month"], calendar["day_of_month"]) == ([(at.month,) * 2], [(at.day,) * 2])
    state = description.schedule.state
    assert (state.limited_actions, state.remaining_actions) == (True, 1)
    assert [t.replace(microsecond=0) for t in description.info.next_action_times] == [at]

    before = runner.counts()
    response = await runner.request("PUT", path, json=schedule_body("cron", "* * *"))
    assert message_of(response, 400).startswith("trigger.expression: ")
    assert calendar_of(await describe(runner, document["scheduleId"])) == calendar
    listed = (await runner.request("GET", f"/jobs/{ACME}/{job['id']}/schedules")).json()
    assert next(s for s in listed["results"] if s["id"] == document["id"])["description"] == "once"
    assert runner.counts() == before


async def test_put_remakes_a_missing_temporal_schedule(
    runner: Runner, job: dict[str, Any], service_user: str
) -> None:
    """A row whose Temporal schedule never got made (a create cut short) is repaired by PUT."""
    with transaction(runner.stack.sessions) as session:
        definition = session.get(Definition, job["id"])
        assert definition is not None
        row = Schedule(
            definition_id=job["id"],
            account_id=definition.account_id,
            schedule_id="s-0123456789ab",
            trigger={"type": "cron", "expression": YEARLY},
        )
        session.add(row)
    assert not await in_temporal(runner, "s-0123456789ab")
    path = f"/jobs/{ACME}/{job['id']}/schedules/{row.id}"
    response = await runner.request("PUT", path, json=schedule_body(description="repaired"))
    assert response.status_code == 200, response.text
    assert response.json()["scheduleId"] == "s-0123456789ab"
    run_input = await scheduled_input(runner, await describe(runner, "s-0123456789ab"))
    assert run_input.registration is not None
    assert run_input.registration.created_by == service_user
    with runner.stack.sessions() as session:
        saved = session.get(Schedule, row.id)
        assert saved is not None and saved.description == "repaired"
        assert saved.service_account_id is not None


async def test_delete_removes_the_row_and_the_temporal_schedule(
    runner: Runner, job: dict[str, Any]
) -> None:
    """204; then it is gone from both, and a second delete is 404."""
    document = await create(runner, job["id"], schedule_body())
    path = f"/jobs/{ACME}/{job['id']}/schedules/{document['id']}"
    response = await runner.request("DELETE", path)
    assert response.status_code == 204 and response.content == b""
    assert not await in_temporal(runner, document["scheduleId"])
    with runner.stack.sessions() as session:
        assert session.get(Schedule, document["id"]) is None
    assert (await runner.request("DELETE", path)).status_code == 404


async def test_a_job_update_retargets_and_a_job_delete_removes_its_schedules(
    runner: Runner, repo: str, service_user: str
) -> None:
    """After PUT job every schedule starts the new job; DELETE job deletes them all."""
    job = await runner.create_job(job_body(repo, properties={"who": "before"}))
    documents = [await create(runner, job["id"], schedule_body()) for _ in range(2)]
    response = await runner.request(
        "PUT", f"/jobs/{ACME}/{job['id']}", json=job_body(repo, properties={"who": "after"})
    )
    assert response.status_code == 200, response.text
    for document in documents:
        description = await describe(runner, document["scheduleId"])
        run_input = await scheduled_input(runner, description)
        assert run_input.actions[0].spec["extraVars"] == {"who": "after"}
        assert run_input.registration is not None
        assert run_input.registration.created_by == service_user
        assert calendar_of(description)["month"] == [(1, 1)]  # the trigger stays

    response = await runner.request("DELETE", f"/jobs/{ACME}/{job['id']}")
    assert response.status_code == 204, response.text
    for document in documents:
        assert not await in_temporal(runner, document["scheduleId"])
    with runner.stack.sessions() as session:
        rows = session.scalars(select(Schedule).where(Schedule.definition_id == job["id"]))
        assert list(rows) == []
    assert (await runner.request("GET", f"/jobs/{ACME}/{job['id']}/schedules")).status_code == 404


# ---- with Temporal gone ----------------------------------------------------------------------


@pytest.fixture(scope="module")
async def down(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Runner]:
    """A runwright whose Temporal server has gone away after it connected (no worker), with
    the service account `scheduler`."""
    client = await client_of_a_stopped_temporal()
    settings = make_settings(tmp_path_factory.mktemp("down"), secret_key=TEST_SECRET_KEY)
    async with stack_for(settings, client, worker=False) as stack:
        runner = seed(stack)
        body = {"alias": SERVICE_ACCOUNT, "username": "scheduler@acme.test", "password": "pw"}
        response = await runner.request("POST", f"/serviceAccounts/{ACME}", json=body)
        assert response.status_code == 201, response.text
        yield runner


async def test_a_schedule_temporal_refuses_leaves_no_row(down: Runner) -> None:
    """POST is 503 and no schedule row stays."""
    job = await down.create_job(job_body())
    before = down.counts()
    response = await down.request(
        "POST", f"/jobs/{ACME}/{job['id']}/schedules", json=schedule_body()
    )
    assert message_of(response, 503).startswith("the workflow service is unavailable")
    assert down.counts() == before


async def test_a_job_update_temporal_refuses_puts_the_job_back(down: Runner) -> None:
    """PUT job is 503 when its schedules cannot follow, and the job reads as before; so do
    PUT and DELETE of the schedule."""
    job = await down.create_job(job_body(description="before"))
    with transaction(down.stack.sessions) as session:
        row = Schedule(
            definition_id=job["id"],
            schedule_id="s-down00000000",
            trigger={"type": "cron", "expression": YEARLY},
        )
        session.add(row)
    response = await down.request(
        "PUT", f"/jobs/{ACME}/{job['id']}", json=job_body(description="after")
    )
    assert message_of(response, 503).startswith("the workflow service is unavailable")
    assert (await down.request("GET", f"/jobs/{ACME}/{job['id']}")).json() == job
    path = f"/jobs/{ACME}/{job['id']}/schedules/{row.id}"
    response = await down.request("PUT", path, json=schedule_body(description="after"))
    assert message_of(response, 503).startswith("the workflow service is unavailable")
    assert message_of(await down.request("DELETE", path), 503).startswith(
        "the workflow service is unavailable"
    )
    with down.stack.sessions() as session:
        kept = session.get(Schedule, row.id)
        assert kept is not None and kept.description == ""
