"""The Automations API's routes (NOBA Command Center's documents)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Request

from api.automations import (
    approvals,
    maintenance,
    schedules,
    schemas,
    service,
    templates,
    transfer,
)
from api.automations.sign_in import sign_in
from api.deps import (
    AdminUser,
    CurrentUser,
    OperatorUser,
    ServicesDep,
    SessionDep,
    client_address,
)
from api.errors import JsonBody, json_request_body

# Paths whose errors take NOBA's shape `{"error": ...}`.
PATH_PREFIXES = ("/api/login", "/api/maintenance", "/api/automations", "/api/approvals")

router = APIRouter(tags=["Automations"])
# A decision's body may be left out: the comment is optional.
DECISION_BODY = {
    "requestBody": {**json_request_body(schemas.Decision)["requestBody"], "required": False}
}


def error_body(status: int, message: str, error: str | None = None) -> dict[str, str]:
    """NOBA's error shape."""
    return {"error": message}


@router.post("/api/login", response_model=schemas.SignedIn)
async def login(
    request: Request, body: schemas.LoginRequest, services: ServicesDep
) -> schemas.SignedIn:
    """Exchange a platform user's username (email) and password for a bearer token valid 24
    hours. Five failures in a minute from one address for one username refuse that pair for
    five minutes with 429 and `Retry-After`."""
    return await sign_in(services, body, client_address(request))


# ---- maintenance windows -------------------------------------------------------------------


@router.get("/api/maintenance", response_model=list[schemas.MaintenanceWindow])
def list_maintenance_windows(
    session: SessionDep, _: CurrentUser
) -> list[schemas.MaintenanceWindow]:
    """Every maintenance window, oldest first, with whether it is open now (`active`)."""
    return maintenance.list_windows(session)


@router.post("/api/maintenance", status_code=201, response_model=schemas.WindowChanged)
def create_maintenance_window(
    body: schemas.MaintenanceWindowIn, session: SessionDep, user: OperatorUser
) -> schemas.WindowChanged:
    """A one-off window (`start` to `end`) or a recurring one (opening at each firing of the
    5-field cron `recurring` for `end - start`); operators and admins."""
    window = maintenance.create_window(session, user, body)
    session.commit()
    return schemas.WindowChanged(**window.model_dump(), status="created")


@router.post("/api/maintenance/{window_id}/activate", response_model=schemas.WindowChanged)
def activate_maintenance_window(
    window_id: str, session: SessionDep, _: OperatorUser
) -> schemas.WindowChanged:
    """Open the window now, for its duration."""
    window = maintenance.set_active(session, window_id, True)
    session.commit()
    return schemas.WindowChanged(**window.model_dump(), status="activated")


@router.post("/api/maintenance/{window_id}/deactivate", response_model=schemas.WindowChanged)
def deactivate_maintenance_window(
    window_id: str, session: SessionDep, _: OperatorUser
) -> schemas.WindowChanged:
    """Close an open window early (409 when it is not open); its next occurrence opens."""
    window = maintenance.set_active(session, window_id, False)
    session.commit()
    return schemas.WindowChanged(**window.model_dump(), status="deactivated")


@router.delete("/api/maintenance/{window_id}", response_model=schemas.Deleted)
def delete_maintenance_window(
    window_id: str, session: SessionDep, _: OperatorUser
) -> schemas.Deleted:
    """Delete a window."""
    deleted = maintenance.delete_window(session, window_id)
    session.commit()
    return deleted


# ---- approval queue ------------------------------------------------------------------------


@router.get("/api/approvals")
def list_approvals(
    session: SessionDep, _: CurrentUser, status: str | None = None
) -> list[dict[str, Any]]:
    """The approval requests of automation runs, oldest first: the pending ones, or with
    `?status=` (approved, rejected, timed_out, cancelled or all) the decided ones too, each
    with who decided, when and their comment."""
    return approvals.list_requests(session, approvals.status_filter(status))


@router.post(
    "/api/approvals/{request_id}/approve",
    openapi_extra=DECISION_BODY,
)
async def approve_request(
    request_id: str, body: JsonBody, services: ServicesDep, user: OperatorUser
) -> dict[str, str]:
    """Approve a pending request, with an optional `comment`: the run starts (or goes on).
    Only its approvers and admins may."""
    return await approvals.decide(services, user, request_id, body, approve=True)


@router.post(
    "/api/approvals/{request_id}/reject",
    openapi_extra=DECISION_BODY,
)
async def reject_request(
    request_id: str, body: JsonBody, services: ServicesDep, user: OperatorUser
) -> dict[str, str]:
    """Reject a pending request, with an optional `comment`: the run ends `cancelled`.
    Only its approvers and admins may."""
    return await approvals.decide(services, user, request_id, body, approve=False)


# ---- automations ---------------------------------------------------------------------------


@router.get("/api/automations")
def list_automations(session: SessionDep, user: CurrentUser) -> list[dict[str, Any]]:
    """Every automation, oldest first, with its latest run; operators also see its params,
    whether it is enabled, its autonomy, approvers and webhook token."""
    return service.list_items(session, user)


@router.post(
    "/api/automations",
    status_code=201,
    response_model=schemas.Created,
    openapi_extra=json_request_body(schemas.AutomationIn),
)
async def create_automation(
    body: JsonBody, services: ServicesDep, user: OperatorUser
) -> schemas.Created:
    """Create an automation (operators; a custom script `command` takes an admin). With a
    `schedule` it fires as a Temporal Schedule (503, nothing stored, when Temporal is down)."""
    return schemas.Created(id=await schedules.create(services, user, body))


@router.get("/api/automations/runs/{run_id}")
def get_automation_run(run_id: str, session: SessionDep, _: CurrentUser) -> dict[str, Any]:
    """A run: its status, epoch-second times, output (up to 256 KB) and what triggered it."""
    return service.run_document(session, run_id)


@router.post("/api/automations/runs/{run_id}/cancel")
async def cancel_automation_run(
    run_id: str, services: ServicesDep, user: OperatorUser
) -> dict[str, str]:
    """Stop a queued or running run at once: its whole process tree is killed."""
    return await service.cancel(services, user, run_id)


@router.get("/api/automations/templates")
def list_templates(_: CurrentUser) -> list[dict[str, Any]]:
    """The template library: the guide's six, each a script of the script library."""
    return templates.TEMPLATES


@router.post(
    "/api/automations/templates/{template_id}/apply",
    status_code=201,
    response_model=schemas.Created,
    openapi_extra=json_request_body(schemas.TemplateOverrides),
)
async def apply_template(
    template_id: str,
    body: JsonBody,
    services: ServicesDep,
    user: OperatorUser,
) -> schemas.Created:
    """A new automation from a template, with `name`, `params`, `schedule` overridden."""
    raw = templates.from_template(template_id, body)
    return schemas.Created(id=await schedules.create(services, user, raw))


@router.get("/api/automations/export")
def export_automations(session: SessionDep, _: OperatorUser) -> list[dict[str, Any]]:
    """Every automation as a JSON array, for a backup or another instance; secrets masked."""
    return transfer.export_items(session)


@router.post(
    "/api/automations/import",
    response_model=schemas.Imported,
    openapi_extra=json_request_body(schemas.AutomationIn),
)
async def import_automations(
    request: Request, services: ServicesDep, user: AdminUser
) -> schemas.Imported:
    """Admins: a JSON array from an export (or NOBA's YAML `{automations: [...]}`) becomes new
    automations with new ids and webhook tokens; invalid items are skipped, each with why."""
    items = transfer.parse_items(await request.body(), request.headers.get("content-type", ""))
    return schemas.Imported(**await schedules.import_all(services, user, items))


@router.post("/api/automations/webhook/{token}", response_model=schemas.Started)
async def webhook(
    token: str,
    request: Request,
    services: ServicesDep,
    signature: Annotated[str | None, Header(alias="X-Hub-Signature-256")] = None,
) -> schemas.Started:
    """No authentication: the token in the URL is the secret (and, when the automation has
    a `webhook_secret`, the body's HMAC in `X-Hub-Signature-256`). The JSON body reaches the
    automation as `.payload` in templates and `NOBA_PAYLOAD` in scripts."""
    return await service.run_webhook(services, token, await request.body(), signature)


@router.post("/api/automations/{automation_id}/webhook-token")
def regenerate_webhook_token(
    automation_id: str, session: SessionDep, _: OperatorUser
) -> dict[str, str]:
    """A new webhook token; the old URL stops working at once."""
    answer = service.new_token(session, automation_id)
    session.commit()
    return answer


@router.get("/api/automations/{automation_id}")
def get_automation(automation_id: str, session: SessionDep, user: CurrentUser) -> dict[str, Any]:
    """One automation, as listed."""
    return service.one_item(session, user, automation_id)


@router.put(
    "/api/automations/{automation_id}",
    response_model=schemas.Updated,
    openapi_extra=json_request_body(schemas.AutomationIn),
)
async def update_automation(
    automation_id: str,
    body: JsonBody,
    services: ServicesDep,
    user: OperatorUser,
) -> schemas.Updated:
    """Change the fields given; the others stay as they are. The schedule follows: replaced,
    made, deleted (`schedule: null`) or paused (`enabled: false`)."""
    await schedules.update(services, user, automation_id, body)
    return schemas.Updated()


@router.delete("/api/automations/{automation_id}", response_model=schemas.Deleted)
async def delete_automation(
    automation_id: str, services: ServicesDep, _: OperatorUser
) -> schemas.Deleted:
    """Delete an automation and its schedule; its runs stay readable."""
    await schedules.remove(services, automation_id)
    return schemas.Deleted()


@router.post(
    "/api/automations/{automation_id}/run",
    response_model=schemas.Started,
    openapi_extra=json_request_body(schemas.RunRequest),
)
async def run_automation(
    automation_id: str, body: JsonBody, services: ServicesDep, user: OperatorUser
) -> schemas.Started:
    """Run the automation now, whatever its schedule, with optional `variables`."""
    return await service.run_now(services, user, automation_id, body)
