"""Runwright's own routes: apply documents (playbooks, catalog items, people, teams), tokens."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel
from sqlalchemy.orm import Session

from api.catalog.apply import Applied, Applier, DocumentError, parse_documents
from api.db import write
from api.deps import AdminUser, CurrentUser, ServicesDep, SessionDep
from api.errors import ApiError, bad_request
from core.store.models import ApiToken
from core.store.users import create_token, list_tokens, revoke_token_by_id, token_expiry

router = APIRouter(prefix="/api", tags=["Runwright"])
MAX_OFFSET = 2**31 - 1  # beyond it databases overflow; no list is that long


class AppliedItem(BaseModel):
    """One applied document."""

    kind: str
    name: str
    id: str
    result: str


class ApplyResult(BaseModel):
    """Every document of the request, in order."""

    items: list[AppliedItem]


class TokenRequest(BaseModel):
    """A name for the token and, optionally, its lifetime."""

    name: str = ""
    ttl_hours: float | None = None


class TokenCreated(BaseModel):
    """The token, shown once."""

    id: str
    token: str
    expires_at: str | None


class TokenInfo(BaseModel):
    """A token as admins see it: never the token itself nor its hash."""

    id: str
    name: str
    user_email: str
    created_at: str
    expires_at: str | None
    revoked_at: str | None


class TokenList(BaseModel):
    """Tokens, newest first."""

    items: list[TokenInfo]


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _token_info(row: ApiToken, user_email: str, max_age: timedelta) -> TokenInfo:
    return TokenInfo(
        id=row.id,
        name=row.name,
        user_email=user_email,
        created_at=row.created_at.isoformat(),
        expires_at=_iso(token_expiry(row, max_age)),
        revoked_at=_iso(row.revoked_at),
    )


@router.post("/apply", response_model=ApplyResult)
async def apply_documents(request: Request, services: ServicesDep, user: AdminUser) -> ApplyResult:
    """Create or update the YAML/JSON documents in the body, all or nothing."""
    raw = await request.body()  # bounded by api.body_limit
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise bad_request("body must be UTF-8 text") from exc

    def apply_all(session: Session) -> list[Applied]:
        applier = Applier(session, services.box, services.settings.allowed_schemes, user)
        return applier.apply(docs)

    try:
        docs = parse_documents(text)
        # One transaction: a DocumentError rolls back every document of the request.
        applied = await write(services.sessions, apply_all)
    except DocumentError as exc:
        raise bad_request(str(exc)) from exc
    return ApplyResult(items=[AppliedItem(**vars(a)) for a in applied])


@router.post("/tokens", status_code=201, response_model=TokenCreated)
def create_api_token(
    body: TokenRequest, session: SessionDep, services: ServicesDep, user: CurrentUser
) -> TokenCreated:
    """A bearer token for the caller; the token is shown only in this response.

    It expires after `ttl_hours`, or after the deployment's token lifetime
    (`RUNWRIGHT_TOKEN_TTL_DAYS`, 90 days by default), which is also the longest allowed."""
    longest = services.auth.token_max_age
    hours = longest.total_seconds() / 3600
    if body.ttl_hours is not None and not 0 < body.ttl_hours <= hours:
        raise bad_request(f"ttl_hours: must be more than 0 and at most {hours:g}")
    ttl = timedelta(hours=body.ttl_hours) if body.ttl_hours else longest
    row, plain = create_token(session, user, name=body.name, ttl=ttl)
    session.commit()
    return TokenCreated(id=row.id, token=plain, expires_at=_iso(row.expires_at))


@router.get("/tokens", response_model=TokenList)
def list_api_tokens(
    session: SessionDep,
    services: ServicesDep,
    _admin: AdminUser,
    user: Annotated[str | None, Query(description="Only this user's tokens (email).")] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="At most this many.")] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Skip this many.")] = 0,
) -> TokenList:
    """Every user's tokens, newest first: who holds them, when they expire, whether revoked.

    Admins only; the tokens themselves are never shown again."""
    rows = list_tokens(session, limit=limit, offset=offset, email=user)
    max_age = services.auth.token_max_age
    return TokenList(items=[_token_info(row, email, max_age) for row, email in rows])


@router.delete("/tokens/{token_id}", response_model=TokenInfo)
def revoke_api_token(
    token_id: str, session: SessionDep, services: ServicesDep, _admin: AdminUser
) -> TokenInfo:
    """Revoke a token at once (admins only); revoking a revoked token changes nothing."""
    found = revoke_token_by_id(session, token_id)
    if found is None:
        raise ApiError(404, f"token {token_id} not found")
    session.commit()
    row, email = found
    return _token_info(row, email, services.auth.token_max_age)
