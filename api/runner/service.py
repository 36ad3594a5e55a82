"""Runner jobs: what each job route does, between parsing and the response.

Jobs are `Definition` rows of dialect `runner` owned by an account. Every lookup is scoped
to the caller's account, so another account's job is simply not found.
"""

from __future__ import annotations

import copy
import uuid
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from api import schedules
from api.db import read, write
from api.deps import Services
from api.errors import ApiError
from api.fields import FieldError, as_bad_request
from api.runner import schemas
from api.runner.access import AccountCaller, Page, newest_first
from api.runner.documents import execution_link, job_document
from api.runner.executions import start_execution
from api.runner.jobs import normalize_job
from api.runner.lookups import DIALECT, find_job
from api.runner.schedules import retarget_job
from core.secrets import SecretBox, refs_in
from core.settings import Settings
from core.store.models import Account, Definition, Schedule, Secret, utcnow
from core.store.secret_values import put_secret


def insert_job(
    session: Session, box: SecretBox, settings: Settings, caller: AccountCaller, raw: Any
) -> Definition:
    """Check a job body and store it (with its secrets) under a new id."""
    try:
        spec = normalize_job(
            raw,
            allowed_schemes=settings.allowed_schemes,
            put_secret=partial(put_secret, session, box),
            egress=settings.egress_policy,
        )
    except FieldError as exc:
        raise as_bad_request(exc) from exc
    job_id = str(uuid.uuid4())
    now = utcnow()
    job = Definition(
        id=job_id,
        dialect=DIALECT,
        name=job_id,
        namespace=caller.account.id,
        spec=spec,
        account_id=caller.account.id,
        source="API",
        created_by=caller.user.id,
        created_at=now,
        updated_at=now,
    )
    session.add(job)
    session.flush()
    return job


def remove_job(session: Session, job_id: str) -> None:
    """Undo `insert_job`: the row and its secrets (nothing refers to them yet)."""
    job = session.get(Definition, job_id)
    if job is None:
        return
    refs = refs_in(job.spec)
    session.delete(job)
    if refs:
        session.execute(delete(Secret).where(Secret.id.in_(refs)))


@dataclass(frozen=True)
class Replaced:
    """A replaced job and what it was, to put back if its immediate start fails."""

    job: Definition
    spec: dict[str, Any]
    updated_at: datetime


def replace_job(
    session: Session,
    box: SecretBox,
    settings: Settings,
    caller: AccountCaller,
    job_id: str,
    raw: Any,
) -> Replaced:
    """Rewrite a job whole; `********` keeps a stored secret. Earlier secrets stay stored:
    executions already started may still open them."""
    job = find_job(session, caller.account.id, job_id)
    before = Replaced(job, copy.deepcopy(job.spec), job.updated_at)
    try:
        job.spec = normalize_job(
            raw,
            allowed_schemes=settings.allowed_schemes,
            put_secret=partial(put_secret, session, box),
            egress=settings.egress_policy,
            previous=job.spec,
        )
    except FieldError as exc:
        raise as_bad_request(exc) from exc
    job.updated_at = utcnow()
    session.flush()
    return Replaced(job, before.spec, before.updated_at)


def restore_job(session: Session, replaced: Replaced) -> None:
    """Put a replaced job back as it was."""
    job = session.get(Definition, replaced.job.id)
    if job is not None:
        job.spec = replaced.spec
        job.updated_at = replaced.updated_at


async def create_job(
    services: Services, caller: AccountCaller, raw: Any, *, immediate: bool
) -> schemas.Job:
    """Store a new job and, with `immediate`, start an execution of it (or store nothing)."""
    job = await write(services.sessions, insert_job, services.box, services.settings, caller, raw)
    links = []
    if immediate:
        try:
            execution = await start_execution(services, caller, job.id, None)
        except ApiError:
            await write(services.sessions, remove_job, job.id)
            raise
        links.append(execution_link(caller.account.alias, job.id, execution.execution_id))
    return job_document(job, caller.account.alias, links)


async def update_job(
    services: Services, caller: AccountCaller, job_id: str, raw: Any, *, immediate: bool
) -> schemas.Job:
    """Rewrite a job, make its schedules start the new job and, with `immediate`, start an
    execution; if any of it fails the job and its schedules are left as they were."""
    replaced = await write(
        services.sessions,
        replace_job,
        services.box,
        services.settings,
        caller,
        job_id,
        raw,
    )
    try:
        retargeted = await retarget_job(services, caller.account, job_id)
    except ApiError:
        await write(services.sessions, restore_job, replaced)
        raise
    links = []
    if immediate:
        try:
            execution = await start_execution(services, caller, job_id, None)
        except ApiError:
            await write(services.sessions, restore_job, replaced)
            await schedules.revert(services.temporal, retargeted)
            raise
        links.append(execution_link(caller.account.alias, job_id, execution.execution_id))
    return job_document(replaced.job, caller.account.alias, links)


def get_job(session: Session, account: Account, job_id: str) -> schemas.Job:
    """A live job of the account."""
    return job_document(find_job(session, account.id, job_id), account.alias)


def list_jobs(session: Session, account: Account, page: Page) -> schemas.JobPage:
    """A page of the account's live jobs, most recently created first."""
    where = (
        Definition.dialect == DIALECT,
        Definition.account_id == account.id,
        Definition.deleted_at.is_(None),
    )
    total, rows = newest_first(session, Definition, where, page)
    return schemas.JobPage(
        totalSize=total,
        page=page.page,
        size=page.size,
        results=[job_document(j, account.alias) for j in rows],
    )


def schedules_of_job(session: Session, account_id: str, job_id: str) -> list[str]:
    """The Temporal schedule ids of a live job's schedules (404 for an unknown job)."""
    find_job(session, account_id, job_id)
    return list(
        session.scalars(select(Schedule.schedule_id).where(Schedule.definition_id == job_id))
    )


def mark_deleted(session: Session, account_id: str, job_id: str) -> list[str]:
    """Delete a job: its schedules go, the row stays (deleted) so its executions stay. The
    Temporal ids of the schedules deleted."""
    job = find_job(session, account_id, job_id)
    job.deleted_at = utcnow()
    ids = list(
        session.scalars(select(Schedule.schedule_id).where(Schedule.definition_id == job.id))
    )
    session.execute(delete(Schedule).where(Schedule.definition_id == job.id))
    return ids


async def delete_job(services: Services, caller: AccountCaller, job_id: str) -> None:
    """Delete a job and its schedules (in Temporal first, so none fires for a deleted job)."""
    account_id = caller.account.id
    deleted = await read(services.sessions, schedules_of_job, account_id, job_id)
    for schedule_id in deleted:
        await schedules.delete(services.temporal, schedule_id, "the job")
    removed = await write(services.sessions, mark_deleted, account_id, job_id)
    # A schedule created while this ran: its row is gone with the job, so is its schedule.
    await schedules.forget_all(services.temporal, [s for s in removed if s not in deleted])
