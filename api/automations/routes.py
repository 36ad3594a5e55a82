"""The Automations API's routes (NOBA Command Center's documents)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from api.automations import maintenance, schemas
from api.automations.sign_in import sign_in
from api.deps import CurrentUser, OperatorUser, ServicesDep, SessionDep, client_address

# Paths whose errors take NOBA's shape `{"error": ...}`.
PATH_PREFIXES = ("/api/login", "/api/maintenance", "/api/automations")

router = APIRouter(tags=["Automations"])


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


@router.post("/api/maintenance", status_code=201, response_model=schemas.MaintenanceWindow)
def create_maintenance_window(
    body: schemas.MaintenanceWindowIn, session: SessionDep, user: OperatorUser
) -> schemas.MaintenanceWindow:
    """A one-off window (`start` to `end`) or a recurring one (opening at each firing of the
    5-field cron `recurring` for `end - start`); operators and admins."""
    window = maintenance.create_window(session, user, body)
    session.commit()
    return window


@router.post("/api/maintenance/{window_id}/activate", response_model=schemas.MaintenanceWindow)
def activate_maintenance_window(
    window_id: str, session: SessionDep, _: OperatorUser
) -> schemas.MaintenanceWindow:
    """Open the window now, for its duration."""
    window = maintenance.set_active(session, window_id, True)
    session.commit()
    return window


@router.post("/api/maintenance/{window_id}/deactivate", response_model=schemas.MaintenanceWindow)
def deactivate_maintenance_window(
    window_id: str, session: SessionDep, _: OperatorUser
) -> schemas.MaintenanceWindow:
    """Close an open window early (409 when it is not open); its next occurrence opens."""
    window = maintenance.set_active(session, window_id, False)
    session.commit()
    return window


@router.delete("/api/maintenance/{window_id}", response_model=schemas.Deleted)
def delete_maintenance_window(
    window_id: str, session: SessionDep, _: OperatorUser
) -> schemas.Deleted:
    """Delete a window."""
    deleted = maintenance.delete_window(session, window_id)
    session.commit()
    return deleted
