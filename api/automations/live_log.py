"""The live log of an automation run: its output as server-sent events (NOBA's run stream).

Each line is an event `data: <line>` with `id: <seq>` (the seq of the stored event that holds
it), so a client that reconnects with `Last-Event-ID` gets exactly the lines it missed. A
`: ping` comment keeps idle connections open through proxies; once the run is over and every
line was sent, `event: done` with `data: {"status": ...}` ends the stream.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Sequence
from typing import Annotated

from fastapi import APIRouter, Header
from sse_starlette import EventSourceResponse, ServerSentEvent

from api.automations.catalog import DIALECT
from api.automations.ids import run_engine_id
from api.db import read
from api.deps import QueryTokenUser, ServicesDep
from api.errors import bad_request, not_found
from api.run_stream import LogLine, RunEnded
from core.statuses import automation_run_status
from core.store.runs import get_run

# Seconds between keep-alive comments; NOBA's interval (tests shorten it).
PING_SECONDS = 15.0
LINE_BREAK = re.compile(r"\r\n|\r|\n")  # what ends a line in an event stream

router = APIRouter(tags=["Automations"])


def resume_after(last_event_id: str | None) -> int:
    """The seq a reconnecting client last received (0: none); 400 for anything but an id we
    sent."""
    if last_event_id is None or not last_event_id.strip():
        return 0
    value = last_event_id.strip()
    # ASCII digits only: isdigit() alone takes other scripts' digits, which int() reads too.
    if not (value.isascii() and value.isdigit()) or len(value) > 18:
        raise bad_request("Last-Event-ID: must be the id of an event of this stream")
    return int(value)


def encode_lines(lines: Sequence[LogLine]) -> bytes:
    """Lines as events (`id: <seq>`, `data: <line>`), all in one chunk: a page of lines is one
    write to the client, not hundreds. What `ServerSentEvent(data, id=...)` encodes, faster."""
    parts = []
    for line in lines:
        text = line.text
        if "\n" in text or "\r" in text:  # one data field per line of a multi-line message
            data = "".join(f"data: {part}\r\n" for part in LINE_BREAK.split(text))
        else:
            data = f"data: {text}\r\n"
        parts.append(f"id: {line.seq}\r\n{data}\r\n")
    return "".join(parts).encode()


def ping() -> ServerSentEvent:
    """The keep-alive comment, `: ping`."""
    return ServerSentEvent(comment="ping")


@router.get(
    "/api/automations/runs/{run_id}/stream",
    response_class=EventSourceResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "The run's log"}},
)
async def stream_run_log(
    run_id: str,
    services: ServicesDep,
    _: QueryTokenUser,
    last_event_id: Annotated[str | None, Header()] = None,
) -> EventSourceResponse:
    """The run's output so far, then each line as it is written, as server-sent events; a
    final `event: done` with the run's status. Authenticate with a bearer header or
    `?token=`; resume with `Last-Event-ID`."""
    engine_id = run_engine_id(run_id)
    run = await read(services.sessions, get_run, engine_id) if engine_id else None
    if engine_id is None or run is None or run.dialect != DIALECT:
        raise not_found(f"run {run_id} not found")
    after = resume_after(last_event_id)

    async def events() -> AsyncIterator[bytes | ServerSentEvent]:
        async for item in services.feeds.follow_batches(engine_id, after):
            if isinstance(item, RunEnded):
                status = automation_run_status(item.status)
                yield ServerSentEvent(event="done", data=json.dumps({"status": status}))
            else:
                yield item.rendered(encode_lines)

    return EventSourceResponse(events(), ping=PING_SECONDS, ping_message_factory=ping)
