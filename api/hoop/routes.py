"""The hoop runbooks API's routes (plugin API v1), plus the connections and reviews they use."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.db import read, write
from api.deps import ServicesDep
from api.errors import JsonBody, bad_request, json_request_body, not_found, parse_json_body
from api.fields import FieldError, as_bad_request
from api.hoop import reviews, schemas, sessions
from api.hoop.access import HoopAdmin, HoopOperator, HoopUser
from api.hoop.connections import (
    DIALECT,
    connection_view,
    get_connection,
    save_connection,
)
from api.hoop.runbooks import runbook_list
from core.secrets import SecretBox
from core.store.models import Definition, User, utcnow

# Paths whose errors take hoop's shape `{"message": ...}`.
PATH_PREFIXES = ("/api/plugins", "/api/sessions", "/api/reviews", "/api/connections")
RUNBOOKS = "/api/plugins/runbooks"

router = APIRouter(tags=["hoop runbooks"])


def error_body(status: int, message: str, error: str | None = None) -> dict[str, str]:
    """hoop's error shape."""
    return {"message": message}


@router.post(
    RUNBOOKS + "/connections/{name}/exec",
    response_model=schemas.ExecResponse,
    responses={202: {"model": schemas.ExecResponse, "description": "still running"}},
    openapi_extra=json_request_body(schemas.ExecRequest),
)
async def exec_runbook(
    name: str, request: Request, user: HoopOperator, services: ServicesDep
) -> JSONResponse:
    """Render a runbook and run it on the connection; 202 when it outlasts the wait."""
    body = parse_json_body(schemas.ExecRequest, await request.body())
    status, outcome = await sessions.exec_runbook(services, user, name, body, str(request.base_url))
    return JSONResponse(outcome.model_dump(), status_code=status)


def _connections(session: Session) -> list[Definition]:
    return list(
        session.scalars(
            select(Definition)
            .where(Definition.dialect == DIALECT, Definition.deleted_at.is_(None))
            .order_by(Definition.name)
        )
    )


@router.get(RUNBOOKS + "/templates")
async def list_templates(user: HoopUser, services: ServicesDep) -> dict[str, Any]:
    """Every runbook in the repository, with its parameters and the connections that run it."""
    snapshot = await sessions.snapshot_of(services)
    connections = await read(services.sessions, _connections)
    return runbook_list(snapshot, connections)


@router.get(RUNBOOKS + "/connections/{name}/templates")
async def list_connection_templates(
    name: str, user: HoopUser, services: ServicesDep
) -> dict[str, Any]:
    """The runbooks one connection may run."""
    connection = await read(services.sessions, sessions.connection_or_404, name)
    snapshot = await sessions.snapshot_of(services)
    return runbook_list(snapshot, [connection], only=connection)


@router.get("/api/sessions/{session_id}")
async def get_session(session_id: str, user: HoopUser, services: ServicesDep) -> dict[str, Any]:
    """A session: its status, script, and once done its exit code and output."""
    return await read(services.sessions, sessions.session_view, user, session_id)


@router.get("/api/reviews")
async def list_reviews(user: HoopUser, services: ServicesDep) -> list[dict[str, Any]]:
    """Reviews the caller owns or reviews (admins: all), newest first."""
    return await read(services.sessions, reviews.list_reviews, user)


@router.get("/api/reviews/{review_id}")
async def get_review(review_id: str, user: HoopUser, services: ServicesDep) -> dict[str, Any]:
    """One review (its id is its session's)."""
    return await read(services.sessions, reviews.get_review, user, review_id)


@router.put("/api/reviews/{review_id}", openapi_extra=json_request_body(schemas.ReviewUpdate))
async def update_review(
    review_id: str, request: Request, user: HoopOperator, services: ServicesDep
) -> dict[str, Any]:
    """Approve or reject a review for the caller's reviewer groups."""
    body = parse_json_body(schemas.ReviewUpdate, await request.body())
    return await reviews.decide_review(services, user, review_id, body.status)


# ---- connections ---------------------------------------------------------------------------


def _save(
    session: Session,
    box: SecretBox,
    user: User,
    doc: Any,
    name: str | None,
    create_only: bool,
) -> dict[str, Any]:
    if not isinstance(doc, dict):
        raise bad_request("body: must be a JSON object")
    try:
        row, _ = save_connection(
            session, doc, box=box, user_id=user.id, name=name, create_only=create_only
        )
    except FieldError as exc:
        raise as_bad_request(exc) from exc
    return connection_view(row)


def _existing(session: Session, name: str) -> Definition:
    row = get_connection(session, name)
    if row is None:
        raise not_found("connection not found")
    return row


@router.post("/api/connections", status_code=201)
async def create_connection(
    user: HoopAdmin, body: JsonBody, services: ServicesDep
) -> dict[str, Any]:
    """Create a connection; its secrets are stored encrypted and shown masked."""
    return await write(services.sessions, _save, services.box, user, body, None, True)


@router.get("/api/connections")
async def list_connections(user: HoopUser, services: ServicesDep) -> list[dict[str, Any]]:
    """Every connection, by name."""
    rows = await read(services.sessions, _connections)
    return [connection_view(row) for row in rows]


@router.get("/api/connections/{name}")
async def get_connection_route(name: str, user: HoopUser, services: ServicesDep) -> dict[str, Any]:
    """One connection."""
    row = await read(services.sessions, _existing, name)
    return connection_view(row)


@router.put("/api/connections/{name}")
async def update_connection(
    name: str, user: HoopAdmin, body: JsonBody, services: ServicesDep
) -> dict[str, Any]:
    """Replace a connection (a masked secret keeps its stored value)."""

    def replace(session: Session) -> dict[str, Any]:
        _existing(session, name)
        if isinstance(body, dict) and body.get("name", name) != name:
            raise bad_request("name: a connection cannot be renamed")
        return _save(session, services.box, user, body, name, False)

    return await write(services.sessions, replace)


@router.delete("/api/connections/{name}", status_code=204, response_class=Response)
async def delete_connection(name: str, user: HoopAdmin, services: ServicesDep) -> Response:
    """Delete a connection; its sessions stay readable."""

    def remove(session: Session) -> None:
        _existing(session, name).deleted_at = utcnow()

    await write(services.sessions, remove)
    return Response(status_code=204)
