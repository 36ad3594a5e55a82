"""Request bodies bounded before they cost anything: by `Content-Length` up front, and by
counting while a body without one (chunked) streams in.

A plain ASGI middleware, so it holds for every route, including those that read their body
themselves, and answers before authentication or parsing spends anything on the request.
"""

from __future__ import annotations

from collections.abc import Mapping

from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import ErrorShape, shape_for

SETTING = "RUNWRIGHT_MAX_BODY_BYTES"


def too_large_message(limit: int) -> str:
    """The 413 message: the limit and the setting that raises it."""
    return f"body: larger than {limit} bytes (the limit is set by {SETTING})"


def declared_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    """The request's `Content-Length`, or None when absent (a chunked body)."""
    for name, value in headers:
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server refuses a malformed length itself
    return None


class BodyTooLarge(HTTPException):
    """Raised from `receive` once a streaming body passes the limit.

    An HTTPException, so FastAPI's body reading re-raises it untouched and the app's own
    handler answers it in the dialect's error shape.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413, detail=too_large_message(limit))


class BodyLimitMiddleware:
    """413 for any request body over `limit` bytes, declared or streamed."""

    def __init__(self, app: ASGIApp, *, limit: int, shapes: Mapping[str, ErrorShape]) -> None:
        self.app = app
        self.limit = limit
        self.shapes = dict(shapes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = declared_length(scope.get("headers", []))
        if declared is not None and declared > self.limit:
            await self._refuse(scope, receive, send)
            return

        received = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise BodyTooLarge(self.limit)
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
        except BodyTooLarge:
            # Reached only when no handler inside answered it (a route reading the body in
            # a way that swallowed the error's handling); a response already begun stands.
            if started:
                raise
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        shape = shape_for(scope.get("path", ""), self.shapes)
        response = JSONResponse(
            shape(413, too_large_message(self.limit), None),
            status_code=413,
            # The rest of the body is never read: the client must not reuse the connection.
            headers={"Connection": "close"},
        )
        await response(scope, receive, send)
