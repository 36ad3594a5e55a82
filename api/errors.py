"""Errors as the dialects document them: Mission Control's `{"error", "message"}` by default,
another dialect's shape under the path prefixes it registers (Runner: `{"message"}`).

Every failure a client can cause becomes an ApiError with a 4xx status and a message that
names the field; anything else is a bug, logged, and answered 500 without details.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any, TypeVar

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)
M = TypeVar("M", bound=BaseModel)

ERROR_NAMES = {
    400: "invalid",
    401: "unauthorized",
    403: "forbidden",
    404: "not found",
    405: "method not allowed",
    409: "conflict",
    413: "too large",
    415: "unsupported media type",
    422: "invalid",
    501: "not implemented",
    503: "unavailable",
}


class ApiError(Exception):
    """A failure to report to the client as it is."""

    def __init__(self, status: int, message: str, *, error: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.error = error or ERROR_NAMES.get(status, "error")


def bad_request(message: str) -> ApiError:
    """400 naming what was wrong."""
    return ApiError(400, message)


def not_found(message: str) -> ApiError:
    """404 naming what was missing."""
    return ApiError(404, message)


def error_body(status: int, message: str, error: str | None = None) -> dict[str, Any]:
    """The documented error shape."""
    return {"error": error or ERROR_NAMES.get(status, "error"), "message": message}


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


async def json_body(request: Request) -> Any:
    """The request body as JSON (None when empty); 400 naming the problem.

    The body's size is bounded before it gets here (api.body_limit)."""
    raw = await request.body()
    if not raw.strip():
        return None
    try:
        return json.loads(raw, parse_constant=_no_constants)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise bad_request(f"body: invalid JSON: {exc}") from exc


JsonBody = Annotated[Any, Depends(json_body)]


ErrorShape = Callable[[int, str, str | None], dict[str, Any]]


def shape_for(path: str, shapes: Mapping[str, ErrorShape]) -> ErrorShape:
    """The error shape of the dialect whose path prefix `path` falls under (whole segments)."""
    for prefix, shape in shapes.items():
        if path == prefix or path.startswith(prefix.rstrip("/") + "/"):
            return shape
    return error_body


def describe_errors(errors: Sequence[Mapping[str, Any]]) -> str:
    """One line per problem, each naming its field: `params.replicas: Input should be ...`."""
    parts = []
    for err in errors:
        if err.get("type") == "json_invalid":
            # The location of a JSON error is a character offset, not a field.
            offset = next((p for p in err.get("loc", ()) if isinstance(p, int)), None)
            cause = (err.get("ctx") or {}).get("error") or err.get("msg", "invalid")
            where = f" at position {offset}" if offset is not None else ""
            parts.append(f"body: invalid JSON{where}: {cause}")
            continue
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path")]
        field = ".".join(loc) or "body"
        parts.append(f"{field}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def describe_validation(exc: RequestValidationError) -> str:
    """A request validation failure in one message naming each field."""
    return describe_errors(exc.errors())


def parse_json_body(model: type[M], raw: bytes) -> M:
    """`raw` parsed as `model`, or 400 naming each bad field.

    For routes that read their body themselves, so the caller is authenticated first.
    """
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise bad_request(describe_errors(exc.errors())) from exc


def json_request_body(model: type[BaseModel]) -> dict[str, Any]:
    """OpenAPI `requestBody` of a route that reads `model` itself (for `openapi_extra`)."""
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": model.model_json_schema()}},
        }
    }


def install_error_handlers(app: FastAPI, shapes: Mapping[str, ErrorShape] | None = None) -> None:
    """Render every error in the documented shape of the dialect that owns the path.

    `shapes` maps path prefixes to another dialect's shape; everything else gets
    Mission Control's `{"error", "message"}`.
    """
    by_prefix = dict(shapes or {})

    def body(request: Request, status: int, message: str, error: str | None = None) -> Any:
        return shape_for(request.url.path, by_prefix)(status, message, error)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(
            body(request, exc.status, exc.message, exc.error),
            status_code=exc.status,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(body(request, 400, describe_validation(exc)), status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = getattr(exc, "headers", None)
        return JSONResponse(
            body(request, exc.status_code, str(exc.detail)),
            status_code=exc.status_code,
            headers=headers,
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(body(request, 500, "internal error"), status_code=500)
