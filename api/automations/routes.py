"""The Automations API's routes (NOBA Command Center's documents)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from api.automations import schemas
from api.automations.sign_in import sign_in
from api.deps import ServicesDep, client_address

# Paths whose errors take NOBA's shape `{"error": ...}`.
PATH_PREFIXES = ("/api/login",)

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
