"""State-changing requests carry JSON or YAML, nothing else.

A browser sends a cross-site form post (`application/x-www-form-urlencoded`,
`multipart/form-data`, `text/plain`) or a typeless body without asking the server first, with
whatever credentials it holds for us. Refusing every other body type, before any route or
authentication runs, leaves such a request nothing to act on. Bodyless requests (an approval,
a stop) pass whatever their headers say.
"""

from __future__ import annotations

from collections.abc import Mapping

from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from api.errors import ErrorShape, shape_for

STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
ACCEPTED = frozenset(
    {"application/json", "application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml"}
)


def media_type(content_type: str) -> str:
    """`application/json; charset=utf-8` → `application/json`."""
    return content_type.split(";", 1)[0].strip().lower()


def is_accepted(content_type: str) -> bool:
    """JSON or YAML, structured suffixes (`application/merge-patch+json`) included."""
    kind = media_type(content_type)
    return kind in ACCEPTED or kind.endswith(("+json", "+yaml"))


def has_body(headers: Headers) -> bool:
    """Whether the request carries a body: a non-zero length, or one being streamed."""
    if "transfer-encoding" in headers:
        return True
    length = headers.get("content-length", "0").strip()
    return length not in ("", "0")


def refusal(content_type: str | None) -> str | None:
    """The 415 message for a body of `content_type`, or None when it is accepted."""
    if content_type is None or not content_type.strip():
        return "Content-Type: missing; send the body as application/json (or YAML)"
    if is_accepted(content_type):
        return None
    return (
        f"Content-Type: {media_type(content_type)!r} is not accepted; "
        "send the body as application/json (or YAML)"
    )


class ContentTypeMiddleware:
    """415 for a state-changing request whose body is not JSON or YAML."""

    def __init__(self, app: ASGIApp, *, shapes: Mapping[str, ErrorShape]) -> None:
        self.app = app
        self.shapes = dict(shapes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in STATE_CHANGING:
            headers = Headers(scope=scope)
            message = refusal(headers.get("content-type")) if has_body(headers) else None
            if message is not None:
                shape = shape_for(scope.get("path", ""), self.shapes)
                response = JSONResponse(shape(415, message, None), status_code=415)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
