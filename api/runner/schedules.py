"""Runner job schedules: each is a `Schedule` row and a Temporal Schedule that starts `Run`.

Runner only translates: a body becomes the job's `LaunchRequest` (a manual start with `{}`,
as the schedule's service account) and an engine trigger, and rows become documents; the
engine (`api.schedules`) builds, creates and changes the Temporal schedule, whose id is the
document's `scheduleId`. A `cron` trigger repeats; a `date` trigger fires once.

A refused request leaves nothing behind: the row is written first and removed again if
Temporal refuses the schedule; updates change Temporal first and the row after.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session
from temporalio.client import ScheduleAction

from api import schedules as engine
from api.db import read, write
from api.deps import Services
from api.errors import bad_request, not_found
from api.fields import FieldError, as_bad_request
from api.launch import LaunchRequest
from api.runner import schemas
from api.runner.access import AccountCaller, Page, newest_first
from api.runner.executions import execution_request
from api.runner.launch import ExecutionOptions
from api.runner.lookups import find_job
from api.runner.triggers import ScheduleBody, Trigger, cron_expressions, parse_schedule_body
from core.store.accounts import get_service_account
from core.store.models import Account, Definition, ServiceAccount, utcnow
from core.store.models import Schedule as ScheduleRow


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


def scheduled_request(
    session: Session, account: Account, job: Definition, created_by: str | None
) -> LaunchRequest:
    """The job's run as a manual start with `{}` builds it, attributed to `created_by`."""
    return execution_request(
        session, account, job, ExecutionOptions(), creator=created_by, limit=[], replace=True
    )


def engine_trigger(trigger: Trigger) -> engine.Trigger:
    """A checked Runner trigger in the engine's words."""
    if trigger.type == "cron":
        return engine.Cron(tuple(cron_expressions(trigger.expression, "trigger")))
    assert trigger.at is not None  # a checked date trigger always has its time
    return engine.Once(trigger.at)


@dataclass(frozen=True)
class Plan:
    """A checked create or update: the row's new values and the Temporal schedule."""

    row_id: str
    job_id: str
    body: ScheduleBody
    service_account_id: str
    scheduled: engine.ScheduledLaunch


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
    scheduled = engine.scheduled_launch(
        scheduled_request(session, caller.account, job, link.user_id),
        engine_trigger(body.trigger),
        schedule_id=schedule_id,
        description=body.description,
        memo={"jobScheduleId": row_id, "jobId": job.id, "accountAlias": caller.account.alias},
        task_queue=task_queue,
        now=now,
    )
    return Plan(
        row_id=row_id,
        job_id=job.id,
        body=body,
        service_account_id=link.id,
        scheduled=scheduled,
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
        schedule_id=engine.new_schedule_id(),
        task_queue=task_queue,
    )
    row = ScheduleRow(
        id=plan.row_id,
        definition_id=job.id,
        account_id=caller.account.id,
        schedule_id=plan.scheduled.schedule_id,
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


async def create_schedule(
    services: Services, caller: AccountCaller, job_id: str, raw: Any
) -> schemas.JobSchedule:
    """Schedule a job: the row, then the Temporal schedule (the row goes if that fails)."""
    plan, row = await write(
        services.sessions, insert_schedule, caller, job_id, raw, services.settings.task_queue
    )

    async def undo() -> None:
        await write(services.sessions, remove_row, plan.row_id)

    await engine.create(services.temporal, plan.scheduled, undo=undo)
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
    if not await engine.replace(services.temporal, plan.scheduled):
        # Checked first so a schedule deleted meanwhile is not made again without its row.
        if not await read(services.sessions, row_exists, plan.row_id):
            raise not_found(f"job schedule {job_schedule_id} not found")
        await engine.create(services.temporal, plan.scheduled, verb="updated")
    row = await write(services.sessions, save_update, caller.account.id, plan)
    return schedule_document(row, caller.account.alias)


# ---- delete ----------------------------------------------------------------------------------


async def delete_schedule(
    services: Services, caller: AccountCaller, job_id: str, job_schedule_id: str
) -> None:
    """Delete a schedule: in Temporal first (so it no longer fires), then its row."""
    row = await read(services.sessions, find_schedule, caller.account.id, job_id, job_schedule_id)
    await engine.delete(services.temporal, row.schedule_id)
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
        request = scheduled_request(session, account, job, created_by)
        action = engine.schedule_action(request, row.schedule_id, task_queue, now)
        actions.append((row.schedule_id, action))
    return actions


async def retarget_job(
    services: Services, account: Account, job_id: str
) -> list[engine.Retargeted]:
    """Make every schedule of a (just updated) job start runs of the job as it now is.

    On failure the actions already replaced are put back and the caller gets 503."""
    actions = await read(
        services.sessions, job_actions, account, job_id, services.settings.task_queue
    )
    return await engine.retarget(services.temporal, actions, "the job")
