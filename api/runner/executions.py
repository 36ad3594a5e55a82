"""Runner executions and their status events: start, read, restart, stop and kill.

An execution is a `Run` of a job, started through the shared `api.runs`; a restart is the
next attempt of the same run. Every lookup is scoped to the caller's account.
"""

from __future__ import annotations

from datetime import timedelta
from functools import partial
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from temporalio.client import WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from api.db import read, write
from api.deps import Services
from api.errors import ApiError, bad_request
from api.fields import FieldError, as_bad_request
from api.launch import LaunchRequest, launch, run_input
from api.runner import schemas
from api.runner.access import AccountCaller, Page, newest_first
from api.runner.documents import execution_document, status_events
from api.runner.launch import (
    ExecutionOptions,
    launch_request,
    parse_execution_body,
    parse_expiry,
)
from api.runner.lookups import DIALECT, find_execution, find_job
from api.runs import RunNotRestartable, restart_run
from core.secrets import SecretBox
from core.statuses import KILLABLE, RESTARTABLE, STOPPABLE, RunStatus, runner_run_status
from core.store.models import Account, Definition, Run, RunEvent
from core.store.runs import events_of
from core.store.secret_values import put_secret
from workflows.attempt import failure_message
from workflows.contracts import CONTROL_UPDATE, Control, RunInput

CONCURRENCY_LIMIT = 4  # the FAQ: "the maximum number of concurrent jobs is four (4)"
CONTROL_TIMEOUT = timedelta(seconds=30)
SIGNALS = {
    "stop": (STOPPABLE, "PENDING, INITIALIZING, RUNNING or STOPPING", "stopped", "STOPPING"),
    "kill": (KILLABLE, "PENDING, INITIALIZING, RUNNING, STOPPING or KILLING", "killed", "KILLING"),
}


def account_hosts(session: Session, account_id: str, exclude: str) -> list[dict[str, Any]]:
    """The hosts of every other live job of the account, oldest job first."""
    jobs = session.scalars(
        select(Definition)
        .where(
            Definition.dialect == DIALECT,
            Definition.account_id == account_id,
            Definition.deleted_at.is_(None),
            Definition.id != exclude,
        )
        .order_by(Definition.created_at, Definition.id)
    )
    return [host for job in jobs for host in job.spec.get("hosts") or []]


def execution_request(
    session: Session,
    account: Account,
    job: Definition,
    options: ExecutionOptions,
    *,
    creator: str | None,
    limit: list[str],
    replace: bool,
) -> LaunchRequest:
    """An execution of `job` in the engine's words (its account's other hosts looked up)."""
    dynamic = job.spec.get("useDynamicInventory")
    others = account_hosts(session, account.id, job.id) if dynamic else []
    return launch_request(
        account,
        job,
        options,
        others,
        creator=creator,
        limit=limit,
        replace=replace,
        concurrency_limit=CONCURRENCY_LIMIT,
    )


def prepare_start(
    session: Session, box: SecretBox, caller: AccountCaller, job_id: str, raw: Any
) -> LaunchRequest:
    """Check a start body against the job; keys it brings are stored as secrets."""
    job = find_job(session, caller.account.id, job_id)
    try:
        options = parse_execution_body(raw, partial(put_secret, session, box))
    except FieldError as exc:
        raise as_bad_request(exc) from exc
    return execution_request(
        session, caller.account, job, options, creator=caller.user.id, limit=[], replace=True
    )


async def start_execution(
    services: Services, caller: AccountCaller, job_id: str, raw: Any
) -> schemas.Execution:
    """Start an execution of a job; it waits as PENDING while the account runs four."""
    request = await write(services.sessions, prepare_start, services.box, caller, job_id, raw)
    run = await launch(services, request)
    return execution_document(run, caller.account.alias)


def get_execution(
    session: Session, account: Account, job_id: str, execution_id: str
) -> schemas.Execution:
    """One execution document."""
    return execution_document(
        find_execution(session, account.id, job_id, execution_id), account.alias
    )


def list_executions(
    session: Session, account: Account, page: Page, job_id: str | None = None
) -> schemas.ExecutionPage:
    """A page of the account's executions (of one job, when given), newest first."""
    where = [Run.dialect == DIALECT, Run.account_id == account.id]
    if job_id is not None:
        find_job(session, account.id, job_id, include_deleted=True)
        where.append(Run.definition_id == job_id)
    total, rows = newest_first(session, Run, where, page)
    return schemas.ExecutionPage(
        totalSize=total,
        page=page.page,
        size=page.size,
        results=[execution_document(r, account.alias) for r in rows],
    )


def prepare_restart(
    session: Session,
    box: SecretBox,
    caller: AccountCaller,
    job_id: str,
    execution_id: str,
    raw: Any,
) -> RunInput:
    """The next attempt of a failed execution, limited to the body's hosts or its failed ones."""
    account = caller.account
    run = find_execution(session, account.id, job_id, execution_id)
    job = find_job(session, account.id, job_id)
    if run.status not in RESTARTABLE:
        raise bad_request(
            f"execution {run.id} is {runner_run_status(run.status)}; "
            "only FAILURE or INIT_FAILURE executions can be restarted"
        )
    try:
        options = parse_execution_body(raw, partial(put_secret, session, box))
    except FieldError as exc:
        raise as_bad_request(exc) from exc
    if options.hosts:
        limit = [h.id for h in options.hosts]
    else:
        limit = [str(h) for h in run.failed_hosts or []]
    request = execution_request(
        session, account, job, options, creator=caller.user.id, limit=limit, replace=False
    )
    return run_input(request, run_id=run.id, created_at=run.created_at, attempt=run.attempt + 1)


async def restart_execution(
    services: Services, caller: AccountCaller, job_id: str, execution_id: str, raw: Any
) -> schemas.Execution:
    """Run a failed execution again as its next attempt, under the same execution id."""
    run_input = await write(
        services.sessions, prepare_restart, services.box, caller, job_id, execution_id, raw
    )
    try:
        await restart_run(
            services.sessions,
            services.temporal,
            services.settings.task_queue,
            run_input,
            restartable=RESTARTABLE,
            status=str(RunStatus.SCHEDULED),
        )
    except RunNotRestartable as exc:
        raise bad_request(str(exc)) from exc
    run = await read(services.sessions, find_execution, caller.account.id, job_id, execution_id)
    return execution_document(run, caller.account.alias, status="PENDING")


def check_signal(
    session: Session, account_id: str, job_id: str, execution_id: str, action: str
) -> str:
    """The execution to stop or kill, if its status allows it (else 400)."""
    run = find_execution(session, account_id, job_id, execution_id)
    allowed, names, verb, _ = SIGNALS[action]
    if run.status not in allowed:
        raise bad_request(
            f"execution {run.id} is {runner_run_status(run.status)}; "
            f"only {names} executions can be {verb}"
        )
    return run.id


async def signal_execution(
    services: Services,
    caller: AccountCaller,
    job_id: str,
    execution_id: str,
    raw: Any,
    action: str,
) -> schemas.Execution:
    """Ask a run to stop (gracefully, escalating after `expiryDuration`) or to die at once."""
    account_id = caller.account.id
    run_id = await read(services.sessions, check_signal, account_id, job_id, execution_id, action)
    try:
        expiry = parse_expiry(raw)
    except FieldError as exc:
        raise as_bad_request(exc) from exc
    _, _, verb, answer = SIGNALS[action]
    handle = services.temporal.get_workflow_handle(run_id)
    try:
        await handle.execute_update(
            CONTROL_UPDATE,
            Control(action=action, expiry_seconds=expiry, by=caller.user.id),
            rpc_timeout=CONTROL_TIMEOUT,
        )
    except WorkflowUpdateFailedError as exc:
        raise bad_request(f"execution {run_id} cannot be {verb}: {failure_message(exc)}") from exc
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise bad_request(f"execution {run_id} has already ended") from exc
        raise ApiError(503, "the workflow service is unavailable; try again") from exc
    run = await read(services.sessions, find_execution, account_id, job_id, execution_id)
    return execution_document(run, caller.account.alias, status=answer)


# ---- status events -------------------------------------------------------------------------


def job_events(
    session: Session, account: Account, job_id: str, page: Page
) -> schemas.StatusEventPage:
    """A page of the status events of every execution of a job, oldest first."""
    find_job(session, account.id, job_id, include_deleted=True)
    where = (Run.definition_id == job_id, Run.account_id == account.id, Run.dialect == DIALECT)
    joined = select(RunEvent, Run).join(Run, Run.id == RunEvent.run_id).where(*where)
    total = (
        session.scalar(
            select(func.count())
            .select_from(RunEvent)
            .join(Run, Run.id == RunEvent.run_id)
            .where(*where)
        )
        or 0
    )
    rows = session.execute(joined.order_by(RunEvent.id).offset(page.offset).limit(page.size))
    return schemas.StatusEventPage(
        page=page.page,
        size=page.size,
        totalSize=total,
        results=status_events(session, [(event, run) for event, run in rows], account.alias),
    )


def execution_events(
    session: Session, account: Account, job_id: str, execution_id: str, page: Page
) -> schemas.StatusEventPage:
    """A page of one execution's status events, in order."""
    run = find_execution(session, account.id, job_id, execution_id)
    total = (
        session.scalar(select(func.count()).select_from(RunEvent).where(RunEvent.run_id == run.id))
        or 0
    )
    events = events_of(session, run.id, offset=page.offset, limit=page.size)
    return schemas.StatusEventPage(
        page=page.page,
        size=page.size,
        totalSize=total,
        results=status_events(session, [(e, run) for e in events], account.alias),
    )
