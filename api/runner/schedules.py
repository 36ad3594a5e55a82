"""Runner job schedules: each is a `Schedule` row and a Temporal Schedule that starts `Run`.

The Temporal schedule (id `s-<12 hex>`, the document's `scheduleId`) starts the job as a
manual start with `{}` would, under the workflow id `<scheduleId>-<RFC 3339 time>`, with an
empty run id and a `Registration`: the run takes its workflow id and writes its own row,
attributed to the schedule's service account. A `cron` trigger repeats; a `date` trigger is a
calendar for that one UTC second, limited to one action.

A refused request leaves nothing behind: the row is written first and removed again if
Temporal refuses the schedule; updates change Temporal first and the row after.
"""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session
from temporalio.client import (
    Schedule,
    ScheduleAction,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleCalendarSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleRange,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes
from temporalio.service import RPCError, RPCStatusCode

from api import launch
from api.db import read, write
from api.deps import Services
from api.errors import ApiError, bad_request, not_found
from api.runner import schemas
from api.runner.access import AccountCaller, Page, newest_first
from api.runner.executions import execution_request
from api.runner.fields import FieldError, as_bad_request
from api.runner.launch import ExecutionOptions
from api.runner.lookups import DIALECT, find_job
from api.runner.triggers import ScheduleBody, Trigger, cron_expressions, parse_schedule_body
from api.runs import search_attributes
from core.statuses import RunStatus
from core.store.accounts import get_service_account
from core.store.models import Account, Definition, ServiceAccount, utcnow
from core.store.models import Schedule as ScheduleRow
from workflows.contracts import (
    RUN_WORKFLOW,
    SA_ACCOUNT,
    SA_DEFINITION_ID,
    SA_DIALECT,
    RunInput,
)

# A firing missed while Temporal was down is still taken this late; later ones are skipped.
# A one-shot date gets longer: it has no next firing to wait for.
CRON_CATCHUP = timedelta(minutes=1)
DATE_CATCHUP = timedelta(hours=1)
UNAVAILABLE = "the workflow service is unavailable"


def new_schedule_id() -> str:
    """A Temporal schedule id short enough for `<id>-<RFC 3339 time>` to fit a run id (36)."""
    return f"s-{uuid.uuid4().hex[:12]}"


def schedule_document(row: ScheduleRow, alias: str) -> schemas.JobSchedule:
    """A job schedule as every schedule route returns it."""
    return schemas.JobSchedule(
        id=row.id,
        jobId=row.definition_id,
        accountAlias=alias,
        scheduleId=row.schedule_id,
        description=row.description,
        trigger=schemas.Trigger(**row.trigger),
    )


# ---- what Temporal is given ------------------------------------------------------------------


def scheduled_input(
    session: Session, account: Account, job: Definition, created_by: str | None, now: datetime
) -> RunInput:
    """The job's run as a manual start with `{}` builds it, for a schedule: no run id (the
    workflow id is used) and a registration, so the run records itself as `created_by`'s."""
    request = execution_request(
        session, account, job, ExecutionOptions(), creator=created_by, limit=[], replace=True
    )
    return launch.scheduled_input(request, now)


def run_action(run_input: RunInput, schedule_id: str, task_queue: str) -> ScheduleAction:
    """The schedule's action: start `Run` as `start_run` does (same memo, search attributes)."""
    return ScheduleActionStartWorkflow(
        RUN_WORKFLOW,
        run_input,
        id=schedule_id,
        task_queue=task_queue,
        memo={"title": run_input.title},
        typed_search_attributes=search_attributes(run_input, str(RunStatus.SCHEDULED)),
    )


def _one(value: int) -> list[ScheduleRange]:
    return [ScheduleRange(value)]


def temporal_schedule(action: ScheduleAction, trigger: Trigger, description: str) -> Schedule:
    """The whole Temporal schedule of a trigger. Firings may overlap: each is an execution,
    queued by the account's concurrency limit like any other."""
    note = description[:500]
    if trigger.type == "cron":
        return Schedule(
            action=action,
            spec=ScheduleSpec(cron_expressions=cron_expressions(trigger.expression, "trigger")),
            policy=SchedulePolicy(
                overlap=ScheduleOverlapPolicy.ALLOW_ALL, catchup_window=CRON_CATCHUP
            ),
            state=ScheduleState(note=note),
        )
    at = trigger.at
    assert at is not None
    calendar = ScheduleCalendarSpec(
        second=_one(at.second),
        minute=_one(at.minute),
        hour=_one(at.hour),
        day_of_month=_one(at.day),
        month=_one(at.month),
        year=_one(at.year),
        comment=f"once at {trigger.expression}",
    )
    return Schedule(
        action=action,
        spec=ScheduleSpec(calendars=[calendar], time_zone_name="UTC"),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.ALLOW_ALL, catchup_window=DATE_CATCHUP),
        state=ScheduleState(note=note, limited_actions=True, remaining_actions=1),
    )


def schedule_attributes(job_id: str, alias: str) -> TypedSearchAttributes:
    """What a schedule can be found by in Temporal: the job, the dialect, the account."""
    pairs = [(SA_DEFINITION_ID, job_id), (SA_DIALECT, DIALECT), (SA_ACCOUNT, alias)]
    return TypedSearchAttributes(
        [SearchAttributePair(SearchAttributeKey.for_keyword(k), v) for k, v in pairs]
    )


@dataclass(frozen=True)
class Plan:
    """A checked create or update: the row's new values and the Temporal schedule."""

    row_id: str
    schedule_id: str
    job_id: str
    body: ScheduleBody
    service_account_id: str
    schedule: Schedule


# ---- lookups ---------------------------------------------------------------------------------


def find_schedule(
    session: Session, account_id: str, job_id: str, job_schedule_id: str
) -> ScheduleRow:
    """A schedule of a live job of the account, or 404 (job first)."""
    find_job(session, account_id, job_id)
    row = session.get(ScheduleRow, job_schedule_id)
    if row is None or row.definition_id != job_id:
        raise not_found(f"job schedule {job_schedule_id} not found")
    return row


def service_account_user(session: Session, service_account_id: str | None) -> str | None:
    """The user id a schedule's runs are attributed to (None if its service account is gone)."""
    if service_account_id is None:
        return None
    link = session.get(ServiceAccount, service_account_id)
    return link.user_id if link is not None else None


def _plan(
    session: Session,
    caller: AccountCaller,
    job: Definition,
    raw: Any,
    *,
    row_id: str,
    schedule_id: str,
    task_queue: str,
) -> Plan:
    now = utcnow()
    try:
        body = parse_schedule_body(raw, now)
    except FieldError as exc:
        raise as_bad_request(exc) from exc
    link = get_service_account(session, caller.account.id, body.service_account_alias)
    if link is None:
        raise bad_request(
            f"serviceAccountAlias: no service account {body.service_account_alias!r} in "
            f"account {caller.account.alias}"
        )
    run_input = scheduled_input(session, caller.account, job, link.user_id, now)
    action = run_action(run_input, schedule_id, task_queue)
    return Plan(
        row_id=row_id,
        schedule_id=schedule_id,
        job_id=job.id,
        body=body,
        service_account_id=link.id,
        schedule=temporal_schedule(action, body.trigger, body.description),
    )


# ---- create ----------------------------------------------------------------------------------


def insert_schedule(
    session: Session, caller: AccountCaller, job_id: str, raw: Any, task_queue: str
) -> tuple[Plan, ScheduleRow]:
    """Check a new schedule of a live job and store its row."""
    job = find_job(session, caller.account.id, job_id)
    plan = _plan(
        session,
        caller,
        job,
        raw,
        row_id=str(uuid.uuid4()),
        schedule_id=new_schedule_id(),
        task_queue=task_queue,
    )
    row = ScheduleRow(
        id=plan.row_id,
        definition_id=job.id,
        account_id=caller.account.id,
        schedule_id=plan.schedule_id,
        description=plan.body.description,
        trigger=plan.body.trigger.document(),
        service_account_id=plan.service_account_id,
    )
    session.add(row)
    session.flush()
    return plan, row


def remove_row(session: Session, row_id: str) -> None:
    """Delete a schedule row (nothing else refers to it)."""
    session.execute(delete(ScheduleRow).where(ScheduleRow.id == row_id))


def _refused(exc: Exception, verb: str) -> ApiError:
    """Temporal's refusal as the client's error: a spec it will not take is 400, else 503."""
    if isinstance(exc, RPCError) and exc.status == RPCStatusCode.INVALID_ARGUMENT:
        return bad_request(f"trigger: the workflow service refused it: {exc.message}")
    return ApiError(503, f"{UNAVAILABLE}; the schedule was not {verb}")


async def _create_in_temporal(services: Services, plan: Plan, alias: str) -> None:
    await services.temporal.create_schedule(
        plan.schedule_id,
        plan.schedule,
        memo={"jobScheduleId": plan.row_id, "jobId": plan.job_id, "accountAlias": alias},
        search_attributes=schedule_attributes(plan.job_id, alias),
    )


async def _forget(services: Services, schedule_id: str) -> None:
    """Delete a Temporal schedule that may or may not exist (a create whose answer was lost)."""
    try:
        await services.temporal.get_schedule_handle(schedule_id).delete()
    except RPCError:
        pass  # not there, or Temporal is unreachable: there is nothing more to do


async def create_schedule(
    services: Services, caller: AccountCaller, job_id: str, raw: Any
) -> schemas.JobSchedule:
    """Schedule a job: the row, then the Temporal schedule (the row goes if that fails)."""
    plan, row = await write(
        services.sessions, insert_schedule, caller, job_id, raw, services.settings.task_queue
    )
    try:
        await _create_in_temporal(services, plan, caller.account.alias)
    except (RPCError, ScheduleAlreadyRunningError) as exc:
        await write(services.sessions, remove_row, plan.row_id)
        if not isinstance(exc, ScheduleAlreadyRunningError):
            await _forget(services, plan.schedule_id)
        raise _refused(exc, "created") from exc
    return schedule_document(row, caller.account.alias)


# ---- read ------------------------------------------------------------------------------------


def list_schedules(
    session: Session, account: Account, job_id: str, page: Page
) -> schemas.JobSchedulePage:
    """A page of a live job's schedules, most recently created first."""
    find_job(session, account.id, job_id)
    total, rows = newest_first(session, ScheduleRow, [ScheduleRow.definition_id == job_id], page)
    return schemas.JobSchedulePage(
        totalSize=total,
        page=page.page,
        size=page.size,
        results=[schedule_document(r, account.alias) for r in rows],
    )


# ---- update ----------------------------------------------------------------------------------


def plan_update(
    session: Session,
    caller: AccountCaller,
    job_id: str,
    job_schedule_id: str,
    raw: Any,
    task_queue: str,
) -> Plan:
    """Check a schedule's new body (its ids stay)."""
    row = find_schedule(session, caller.account.id, job_id, job_schedule_id)
    job = find_job(session, caller.account.id, job_id)
    return _plan(
        session,
        caller,
        job,
        raw,
        row_id=row.id,
        schedule_id=row.schedule_id,
        task_queue=task_queue,
    )


def save_update(session: Session, account_id: str, plan: Plan) -> ScheduleRow:
    """Write an updated schedule's row."""
    row = find_schedule(session, account_id, plan.job_id, plan.row_id)
    row.description = plan.body.description
    row.trigger = plan.body.trigger.document()
    row.service_account_id = plan.service_account_id
    row.updated_at = utcnow()
    session.flush()
    return row


def row_exists(session: Session, row_id: str) -> bool:
    """Whether a schedule row is still there."""
    return session.get(ScheduleRow, row_id) is not None


async def update_schedule(
    services: Services, caller: AccountCaller, job_id: str, job_schedule_id: str, raw: Any
) -> schemas.JobSchedule:
    """Replace a schedule's description, service account and trigger: Temporal, then the row.

    A row whose Temporal schedule is missing (a create cut short) gets it made again."""
    plan = await read(
        services.sessions,
        plan_update,
        caller,
        job_id,
        job_schedule_id,
        raw,
        services.settings.task_queue,
    )
    handle = services.temporal.get_schedule_handle(plan.schedule_id)
    try:
        await handle.update(lambda _: ScheduleUpdate(schedule=plan.schedule))
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise _refused(exc, "updated") from exc
        if not await read(services.sessions, row_exists, plan.row_id):
            raise not_found(f"job schedule {job_schedule_id} not found") from exc
        try:
            await _create_in_temporal(services, plan, caller.account.alias)
        except (RPCError, ScheduleAlreadyRunningError) as again:
            raise _refused(again, "updated") from again
    row = await write(services.sessions, save_update, caller.account.id, plan)
    return schedule_document(row, caller.account.alias)


# ---- delete ----------------------------------------------------------------------------------


async def delete_schedule(
    services: Services, caller: AccountCaller, job_id: str, job_schedule_id: str
) -> None:
    """Delete a schedule: in Temporal first (so it no longer fires), then its row."""
    row = await read(services.sessions, find_schedule, caller.account.id, job_id, job_schedule_id)
    try:
        await services.temporal.get_schedule_handle(row.schedule_id).delete()
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise ApiError(503, f"{UNAVAILABLE}; the schedule was not deleted") from exc
    await write(services.sessions, remove_row, row.id)


# ---- a job's schedules follow the job --------------------------------------------------------


def job_actions(
    session: Session, account: Account, job_id: str, task_queue: str
) -> list[tuple[str, ScheduleAction]]:
    """Each schedule of a job with the action that starts the job as it now is."""
    job = find_job(session, account.id, job_id)
    rows = session.scalars(
        select(ScheduleRow)
        .where(ScheduleRow.definition_id == job_id)
        .order_by(ScheduleRow.created_at, ScheduleRow.id)
    )
    now = utcnow()
    actions = []
    for row in rows:
        created_by = service_account_user(session, row.service_account_id)
        run_input = scheduled_input(session, account, job, created_by, now)
        actions.append((row.schedule_id, run_action(run_input, row.schedule_id, task_queue)))
    return actions


@dataclass(frozen=True)
class Retargeted:
    """A schedule whose action was replaced, and the action it had (to put back)."""

    schedule_id: str
    previous: ScheduleAction


async def _set_action(
    services: Services, schedule_id: str, action: ScheduleAction
) -> ScheduleAction:
    """Replace a Temporal schedule's action (its trigger and state stay); the previous one."""
    previous: list[ScheduleAction] = []

    def updater(update: ScheduleUpdateInput) -> ScheduleUpdate:
        schedule = update.description.schedule
        previous.append(schedule.action)
        return ScheduleUpdate(schedule=dataclasses.replace(schedule, action=action))

    await services.temporal.get_schedule_handle(schedule_id).update(updater)
    return previous[0]


async def revert_actions(services: Services, done: list[Retargeted]) -> None:
    """Put back the actions `retarget_job` replaced (best effort: Temporal may be gone)."""
    for item in reversed(done):
        try:
            await _set_action(services, item.schedule_id, item.previous)
        except RPCError:
            pass  # nothing more can be done; the job's next update sets the action again


async def retarget_job(services: Services, account: Account, job_id: str) -> list[Retargeted]:
    """Make every schedule of a (just updated) job start runs of the job as it now is.

    On failure the actions already replaced are put back and the caller gets 503."""
    actions = await read(
        services.sessions, job_actions, account, job_id, services.settings.task_queue
    )
    done: list[Retargeted] = []
    for schedule_id, action in actions:
        try:
            previous = await _set_action(services, schedule_id, action)
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                continue  # never made it to Temporal: an update of the schedule makes it
            await revert_actions(services, done)
            raise ApiError(503, f"{UNAVAILABLE}; the job was not updated") from exc
        done.append(Retargeted(schedule_id, previous))
    return done


async def forget_schedules(services: Services, schedule_ids: list[str]) -> None:
    """Delete Temporal schedules whose rows are gone already (best effort)."""
    for schedule_id in schedule_ids:
        await _forget(services, schedule_id)
