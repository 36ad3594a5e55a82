"""The Runbooks API's routes: `POST /api/v1/runbook`, `GET` and `PATCH /api/v1/runbook/<n>`,
and Runwright's own `POST /api/v1/runbook/<n>/execute` and `/stop` (not in the document).

Errors take the documented shape `{"error": <slug>, "message": ...}` with the slugs
`bad-request`, `unauthorized`, `forbidden`, `not-found` (and `conflict` for 409,
`unavailable` for 503).
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from api.deps import CurrentUser, OperatorUser, ServicesDep
from api.errors import ApiError
from api.runbooks import service
from api.runbooks.requests import (
    FieldError,
    parse_create,
    parse_execute,
    parse_follow_up,
    parse_stop,
)

PATH_PREFIXES = ("/api/v1/runbook",)
SLUGS = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    409: "conflict",
    413: "payload-too-large",
    415: "unsupported-media-type",
    422: "bad-request",
    503: "unavailable",
}

router = APIRouter(tags=["Runbooks"])


def error_body(status: int, message: str, error: str | None = None) -> dict[str, str]:
    """The documented error shape; the slug follows the status."""
    return {
        "error": SLUGS.get(status, "internal-error" if status >= 500 else "error"),
        "message": message,
    }


async def _body(request: Request, *, optional: bool = False) -> Any:
    """The JSON body; None for an empty one when `optional`."""
    raw = await request.body()
    if not raw.strip():
        if optional:
            return None
        raise ApiError(400, "body: a JSON object is required")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ApiError(400, f"body: invalid JSON: {exc}") from exc


def _number(text: str) -> int:
    """The runbook number of the path; anything but a positive integer names no runbook."""
    if not text.isascii() or not text.isdigit() or len(text) > 12 or int(text) < 1:
        raise ApiError(404, service.RUNBOOK_NOT_FOUND)
    return int(text)


@router.post("/api/v1/runbook", status_code=202)
async def create_runbook(
    request: Request, services: ServicesDep, user: OperatorUser
) -> JSONResponse:
    """Create a runbook from a prompt on a connected repository; it plans asynchronously."""
    try:
        parsed = parse_create(await _body(request))
    except FieldError as exc:
        raise ApiError(400, str(exc)) from exc
    body = await service.create(services, user, parsed, str(request.base_url))
    return JSONResponse(body, status_code=202)


@router.get("/api/v1/runbook/{number}")
async def get_runbook(
    number: str, request: Request, services: ServicesDep, user: CurrentUser
) -> dict[str, Any]:
    """The runbook's aggregate status, leaf step counts and pull requests."""
    return await service.show(services, user, _number(number), str(request.base_url))


@router.patch("/api/v1/runbook/{number}", status_code=202)
async def follow_up_runbook(
    number: str, request: Request, services: ServicesDep, user: OperatorUser
) -> JSONResponse:
    """Add a follow-up prompt: planned on its own, its steps appended to the runbook's."""
    runbook_number = _number(number)
    try:
        parsed = parse_follow_up(await _body(request))
    except FieldError as exc:
        raise ApiError(400, str(exc)) from exc
    body = await service.follow_up(services, user, runbook_number, parsed, str(request.base_url))
    return JSONResponse(body, status_code=202)


@router.post("/api/v1/runbook/{number}/execute", status_code=202)
async def execute_runbook_step(
    number: str, request: Request, services: ServicesDep, user: OperatorUser
) -> JSONResponse:
    """Execute a step (`{"step": "1.2"}`) and every unexecuted leaf before it (Runwright's
    own route); the runbook's workflow runs them in order."""
    runbook_number = _number(number)
    try:
        parsed = parse_execute(await _body(request))
    except FieldError as exc:
        raise ApiError(400, str(exc)) from exc
    body = await service.execute(services, user, runbook_number, parsed, str(request.base_url))
    return JSONResponse(body, status_code=202)


@router.post("/api/v1/runbook/{number}/stop", status_code=202)
async def stop_runbook(
    number: str, request: Request, services: ServicesDep, user: OperatorUser
) -> JSONResponse:
    """Stop executing (Runwright's own route): the running step is killed and fails, queued
    steps go back to not_started."""
    runbook_number = _number(number)
    try:
        parse_stop(await _body(request, optional=True))
    except FieldError as exc:
        raise ApiError(400, str(exc)) from exc
    body = await service.stop(services, user, runbook_number, str(request.base_url))
    return JSONResponse(body, status_code=202)
