"""The Runner Job Service's routes, as its document lists them (plus logout)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from api.deps import ServicesDep, SessionDep, client_address
from api.errors import JsonBody, json_request_body
from api.runner import executions, identity, schedules, schemas, service
from api.runner.access import (
    AdminCaller,
    OperatorCaller,
    PageDep,
    RunnerCaller,
    ViewerCaller,
)

# Paths whose errors take the Runner shape `{"message": ...}`.
PATH_PREFIXES = ("/v2/authentication", "/jobs", "/status", "/serviceAccounts")

router = APIRouter(tags=["Runner"])
Immediate = Annotated[bool, Query(description="Also start an execution.")]
EXECUTION = "/jobs/{alias}/{job_id}/executions/{execution_id}"
SCHEDULES = "/jobs/{alias}/{job_id}/schedules"


def error_body(status: int, message: str, error: str | None = None) -> dict[str, str]:
    """The Runner error shape."""
    return {"message": message}


@router.post(
    "/v2/authentication/login",
    response_model=schemas.Login,
    openapi_extra=json_request_body(schemas.LoginRequest),
)
async def login(request: Request, body: JsonBody, services: ServicesDep) -> schemas.Login:
    """Exchange a username and password for a bearer token (valid 14 days).

    Five failures in a minute from one address for one username refuse that pair for five
    minutes with 429 and `Retry-After`."""
    return await identity.login(services, body, client_address(request))


@router.post("/v2/authentication/logout", status_code=204, response_class=Response)
async def logout(caller: RunnerCaller, services: ServicesDep) -> Response:
    """Revoke the presented bearer token."""
    await identity.logout(services, caller.token)
    return Response(status_code=204)


# ---- jobs ----------------------------------------------------------------------------------


@router.post(
    "/jobs/{alias}",
    status_code=201,
    response_model=schemas.Job,
    openapi_extra=json_request_body(schemas.JobRequest),
)
async def create_job(
    alias: str,
    caller: OperatorCaller,
    body: JsonBody,
    services: ServicesDep,
    immediate: Immediate = False,
) -> schemas.Job:
    """Create a job; with `immediate=true` also start an execution of it."""
    return await service.create_job(services, caller, body, immediate=immediate)


@router.get("/jobs/{alias}", response_model=schemas.JobPage)
def list_jobs(
    alias: str, caller: ViewerCaller, page: PageDep, session: SessionDep
) -> schemas.JobPage:
    """The account's jobs, most recently created first."""
    return service.list_jobs(session, caller.account, page)


@router.get("/jobs/{alias}/executions", response_model=schemas.ExecutionPage)
def list_account_executions(
    alias: str, caller: ViewerCaller, page: PageDep, session: SessionDep
) -> schemas.ExecutionPage:
    """Every execution of the account, newest first."""
    return executions.list_executions(session, caller.account, page)


@router.get("/jobs/{alias}/{job_id}", response_model=schemas.Job)
def get_job(alias: str, job_id: str, caller: ViewerCaller, session: SessionDep) -> schemas.Job:
    """One job."""
    return service.get_job(session, caller.account, job_id)


@router.put(
    "/jobs/{alias}/{job_id}",
    response_model=schemas.Job,
    openapi_extra=json_request_body(schemas.JobRequest),
)
async def update_job(
    alias: str,
    job_id: str,
    caller: OperatorCaller,
    body: JsonBody,
    services: ServicesDep,
    immediate: Immediate = False,
) -> schemas.Job:
    """Rewrite a job whole; with `immediate=true` also start an execution of it."""
    return await service.update_job(services, caller, job_id, body, immediate=immediate)


@router.delete("/jobs/{alias}/{job_id}", status_code=204, response_class=Response)
async def delete_job(
    alias: str, job_id: str, caller: OperatorCaller, services: ServicesDep
) -> Response:
    """Delete a job and its schedules; its executions stay readable."""
    await service.delete_job(services, caller, job_id)
    return Response(status_code=204)


# ---- executions ----------------------------------------------------------------------------


@router.post(
    "/jobs/{alias}/{job_id}/start",
    status_code=201,
    response_model=schemas.Execution,
    openapi_extra=json_request_body(schemas.StartRequest),
)
async def start_job(
    alias: str, job_id: str, caller: OperatorCaller, body: JsonBody, services: ServicesDep
) -> schemas.Execution:
    """Start an execution, optionally on other hosts or with other keys."""
    return await executions.start_execution(services, caller, job_id, body)


@router.get("/jobs/{alias}/{job_id}/executions", response_model=schemas.ExecutionPage)
def list_job_executions(
    alias: str, job_id: str, caller: ViewerCaller, page: PageDep, session: SessionDep
) -> schemas.ExecutionPage:
    """A job's executions, newest first."""
    return executions.list_executions(session, caller.account, page, job_id)


@router.get(EXECUTION, response_model=schemas.Execution)
def get_execution(
    alias: str, job_id: str, execution_id: str, caller: ViewerCaller, session: SessionDep
) -> schemas.Execution:
    """One execution."""
    return executions.get_execution(session, caller.account, job_id, execution_id)


@router.post(
    f"{EXECUTION}/restart",
    response_model=schemas.Execution,
    openapi_extra=json_request_body(schemas.StartRequest),
)
async def restart_execution(
    alias: str,
    job_id: str,
    execution_id: str,
    caller: OperatorCaller,
    body: JsonBody,
    services: ServicesDep,
) -> schemas.Execution:
    """Run a FAILURE or INIT_FAILURE execution again on its failed hosts (or the body's)."""
    return await executions.restart_execution(services, caller, job_id, execution_id, body)


@router.post(
    f"{EXECUTION}/stop",
    response_model=schemas.Execution,
    openapi_extra=json_request_body(schemas.SignalRequest),
)
async def stop_execution(
    alias: str,
    job_id: str,
    execution_id: str,
    caller: OperatorCaller,
    body: JsonBody,
    services: ServicesDep,
) -> schemas.Execution:
    """Stop an execution after its current task (a kill after `expiryDuration` seconds)."""
    return await executions.signal_execution(services, caller, job_id, execution_id, body, "stop")


@router.post(
    f"{EXECUTION}/kill",
    response_model=schemas.Execution,
    openapi_extra=json_request_body(schemas.SignalRequest),
)
async def kill_execution(
    alias: str,
    job_id: str,
    execution_id: str,
    caller: OperatorCaller,
    body: JsonBody,
    services: ServicesDep,
) -> schemas.Execution:
    """Kill an execution's processes at once."""
    return await executions.signal_execution(services, caller, job_id, execution_id, body, "kill")


# ---- job schedules -------------------------------------------------------------------------


@router.post(
    SCHEDULES,
    status_code=201,
    response_model=schemas.JobSchedule,
    openapi_extra=json_request_body(schemas.JobScheduleRequest),
)
async def create_schedule(
    alias: str, job_id: str, caller: OperatorCaller, body: JsonBody, services: ServicesDep
) -> schemas.JobSchedule:
    """Schedule a job (cron or a one-off date) to run as a service account."""
    return await schedules.create_schedule(services, caller, job_id, body)


@router.get(SCHEDULES, response_model=schemas.JobSchedulePage)
def list_schedules(
    alias: str, job_id: str, caller: ViewerCaller, page: PageDep, session: SessionDep
) -> schemas.JobSchedulePage:
    """A job's schedules, newest first."""
    return schedules.list_schedules(session, caller.account, job_id, page)


@router.put(
    SCHEDULES + "/{schedule_id}",
    response_model=schemas.JobSchedule,
    openapi_extra=json_request_body(schemas.JobScheduleRequest),
)
async def update_schedule(
    alias: str,
    job_id: str,
    schedule_id: str,
    caller: OperatorCaller,
    body: JsonBody,
    services: ServicesDep,
) -> schemas.JobSchedule:
    """Replace a schedule's description, service account and trigger."""
    return await schedules.update_schedule(services, caller, job_id, schedule_id, body)


@router.delete(SCHEDULES + "/{schedule_id}", status_code=204, response_class=Response)
async def delete_schedule(
    alias: str, job_id: str, schedule_id: str, caller: OperatorCaller, services: ServicesDep
) -> Response:
    """Delete a schedule (it no longer fires)."""
    await schedules.delete_schedule(services, caller, job_id, schedule_id)
    return Response(status_code=204)


# ---- status events -------------------------------------------------------------------------


@router.get("/status/{alias}/job/{job_id}", response_model=schemas.StatusEventPage)
def job_status(
    alias: str, job_id: str, caller: ViewerCaller, page: PageDep, session: SessionDep
) -> schemas.StatusEventPage:
    """The status events of every execution of a job, oldest first."""
    return executions.job_events(session, caller.account, job_id, page)


@router.get(
    "/status/{alias}/job/{job_id}/execution/{execution_id}",
    response_model=schemas.StatusEventPage,
)
def execution_status(
    alias: str,
    job_id: str,
    execution_id: str,
    caller: ViewerCaller,
    page: PageDep,
    session: SessionDep,
) -> schemas.StatusEventPage:
    """One execution's status events, in order."""
    return executions.execution_events(session, caller.account, job_id, execution_id, page)


# ---- service accounts ----------------------------------------------------------------------


@router.post(
    "/serviceAccounts/{alias}",
    status_code=201,
    response_model=schemas.ServiceAccount,
    openapi_extra=json_request_body(schemas.ServiceAccountRequest),
)
async def create_service_account(
    alias: str, caller: AdminCaller, body: JsonBody, services: ServicesDep
) -> schemas.ServiceAccount:
    """Create a service account (an operator user of the account) for schedules."""
    return await identity.create(services, caller, body)


@router.get("/serviceAccounts/{alias}", response_model=schemas.ServiceAccountList)
def list_service_accounts(
    alias: str, caller: ViewerCaller, session: SessionDep
) -> schemas.ServiceAccountList:
    """The aliases of the account's service accounts."""
    return identity.list_service_accounts(session, caller.account)


@router.put(
    "/serviceAccounts/{alias}/{service_account_alias}",
    response_model=schemas.ServiceAccount,
    openapi_extra=json_request_body(schemas.ServiceAccountUpdate),
)
async def update_service_account(
    alias: str,
    service_account_alias: str,
    caller: AdminCaller,
    body: JsonBody,
    services: ServicesDep,
) -> schemas.ServiceAccount:
    """Change a service account's username and/or password."""
    return await identity.update(services, caller, service_account_alias, body)
