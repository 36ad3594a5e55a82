"""Runwright's own routes: apply documents (playbooks, catalog items, people, teams), tokens."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel
from sqlalchemy.orm import Session

from api.catalog.apply import Applied, Applier, DocumentError, parse_documents
from api.db import write
from api.deps import AdminUser, CurrentUser, ServicesDep, SessionDep
from api.errors import bad_request
from core.store.users import create_token

router = APIRouter(prefix="/api", tags=["Runwright"])


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


@router.post("/apply", response_model=ApplyResult)
async def apply_documents(request: Request, services: ServicesDep, user: AdminUser) -> ApplyResult:
    """Create or update the YAML/JSON documents in the body, all or nothing."""
    raw = await request.body()  # bounded by api.body_limit
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise bad_request("body must be UTF-8 text") from exc

    def apply_all(session: Session) -> list[Applied]:
        applier = Applier(session, services.box, services.settings.allowed_schemes, user.id)
        return applier.apply(docs)

    try:
        docs = parse_documents(text)
        # One transaction: a DocumentError rolls back every document of the request.
        applied = await write(services.sessions, apply_all)
    except DocumentError as exc:
        raise bad_request(str(exc)) from exc
    return ApplyResult(items=[AppliedItem(**vars(a)) for a in applied])


@router.post("/tokens", status_code=201, response_model=TokenCreated)
def create_api_token(body: TokenRequest, session: SessionDep, user: CurrentUser) -> TokenCreated:
    """A bearer token for the caller; the token is shown only in this response."""
    if body.ttl_hours is not None and body.ttl_hours <= 0:
        raise bad_request("ttl_hours: must be positive")
    ttl = timedelta(hours=body.ttl_hours) if body.ttl_hours else None
    row, plain = create_token(session, user, name=body.name, ttl=ttl)
    session.commit()
    expires: Any = row.expires_at.isoformat() if row.expires_at else None
    return TokenCreated(id=row.id, token=plain, expires_at=expires)
