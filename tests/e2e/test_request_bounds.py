"""Request bodies are bounded on a real HTTP server: by Content-Length before anything is
read, and while a chunked body streams in; a refused body writes nothing."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import func, select
from temporalio.client import Client

from api.app import create_app
from core.store.models import ApiToken, Team
from tests.conftest import TEST_SECRET_KEY
from tests.servers import free_port
from tests.stack import ADMIN, Stack, basic, make_settings, stack_for
from workers.serving import serve_api

LIMIT = 64 * 1024
AUTH = basic(*ADMIN)


@dataclass
class Served:
    """A runwright API listening on a loopback port, and its stack's database."""

    stack: Stack
    port: int

    def count(self, model: type[ApiToken] | type[Team]) -> int:
        with self.stack.sessions() as session:
            return session.scalar(select(func.count()).select_from(model)) or 0


@pytest.fixture
async def served(tmp_path: Path, temporal: Client) -> AsyncIterator[Served]:
    """The app under uvicorn (the server `runwright api` uses), with a 64 KiB body limit."""
    settings = make_settings(tmp_path / "home", secret_key=TEST_SECRET_KEY, max_body_bytes=LIMIT)
    async with stack_for(settings, temporal, worker=False) as stack:
        port = free_port()
        stop = asyncio.Event()
        ready = asyncio.Event()
        app = create_app(settings, temporal_client=temporal)
        task = asyncio.create_task(serve_api(app, "127.0.0.1", port, stop, on_ready=ready.set))
        await asyncio.wait_for(ready.wait(), 10)
        try:
            yield Served(stack, port)
        finally:
            stop.set()
            await task


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: dict[str, str]


async def exchange(
    port: int, head: str, chunks: tuple[bytes, ...] = (), *, chunked: bool = False
) -> Answer:
    """Send a request's head and then its body (as HTTP chunks when `chunked`); the answer.

    Raw sockets, so the test controls exactly what is declared and what is sent: a server
    may answer and close before the client has sent everything, which is the point.
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    received = bytearray()

    async def read_all() -> None:
        # Read as the answer arrives: a server that closes with body bytes unread resets
        # the connection, and a reset discards whatever the client had not yet read.
        try:
            while block := await reader.read(65536):
                received.extend(block)
        except ConnectionResetError:
            pass

    reading = asyncio.create_task(read_all())
    try:
        writer.write(head.replace("\n", "\r\n").encode() + b"\r\n")
        try:
            for chunk in chunks:
                if received:
                    break  # answered mid-body, as a client should notice
                writer.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n" if chunked else chunk)
                await writer.drain()
                await asyncio.sleep(0)
            else:
                if chunked:
                    writer.write(b"0\r\n\r\n")
                    await writer.drain()
        except (ConnectionResetError, BrokenPipeError):
            pass  # refused mid-body: the answer was read as it came
        await asyncio.wait_for(reading, 10)
    finally:
        writer.close()
    raw = bytes(received)
    head_part, _, body = raw.partition(b"\r\n\r\n")
    lines = head_part.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    if headers.get("transfer-encoding") == "chunked":
        size, _, rest = body.partition(b"\r\n")
        body = rest[: int(size, 16)]
    return Answer(int(lines[0].split()[1]), headers, json.loads(body) if body else {})


def request_head(method: str, path: str, **headers: str) -> str:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    return "\n".join([*lines, ""])


MESSAGE = f"body: larger than {LIMIT} bytes (the limit is set by RUNWRIGHT_MAX_BODY_BYTES)"


async def test_declared_length_over_the_limit_is_refused_before_the_body_is_sent(
    served: Served,
) -> None:
    """A Content-Length of 10 GiB gets 413 at once, though not one byte of body was sent."""
    head = request_head(
        "POST",
        "/api/tokens",
        Authorization=AUTH["Authorization"],
        Content_Type="application/json",
        Content_Length=str(10 * 1024**3),
    )
    answer = await exchange(served.port, head)
    assert answer.status == 413
    assert answer.body == {"error": "too large", "message": MESSAGE}
    assert served.count(ApiToken) == 0


async def test_declared_length_refusal_speaks_the_dialect_of_the_path(served: Served) -> None:
    """Runner routes answer in the Runner error shape, even before authentication."""
    head = request_head(
        "POST", "/jobs/DEV", Content_Type="application/json", Content_Length=str(LIMIT + 1)
    )
    answer = await exchange(served.port, head)
    assert answer.status == 413
    assert answer.body == {"message": MESSAGE}


async def test_chunked_body_over_the_limit_is_refused_and_nothing_is_written(
    served: Served,
) -> None:
    """A chunked body without Content-Length is cut off at the limit: 413, no token made."""
    name = "x" * (4 * LIMIT)
    body = json.dumps({"name": name}).encode()
    chunks = [body[i : i + 4096] for i in range(0, len(body), 4096)]
    head = request_head(
        "POST",
        "/api/tokens",
        Authorization=AUTH["Authorization"],
        Content_Type="application/json",
        Transfer_Encoding="chunked",
    )
    answer = await exchange(served.port, head, tuple(chunks), chunked=True)
    assert answer.status == 413
    assert answer.body == {"error": "too large", "message": MESSAGE}
    assert served.count(ApiToken) == 0


async def test_chunked_apply_over_the_limit_writes_nothing(served: Served) -> None:
    """apply reads its body itself: a streamed document past the limit is refused whole."""
    members = "".join(f"  - person{i}@example.com\n" for i in range(5000))
    body = f"kind: Team\nname: flood\nmembers:\n{members}".encode()
    assert len(body) > LIMIT
    head = request_head(
        "POST",
        "/api/apply",
        Authorization=AUTH["Authorization"],
        Content_Type="application/yaml",
        Transfer_Encoding="chunked",
    )
    answer = await exchange(
        served.port,
        head,
        tuple(body[i : i + 8192] for i in range(0, len(body), 8192)),
        chunked=True,
    )
    assert answer.status == 413
    assert answer.body == {"error": "too large", "message": MESSAGE}
    assert served.count(Team) == 0


async def test_chunked_body_within_the_limit_is_served(served: Served) -> None:
    """The limit leaves ordinary streamed bodies alone."""
    head = request_head(
        "POST",
        "/api/tokens",
        Authorization=AUTH["Authorization"],
        Content_Type="application/json",
        Transfer_Encoding="chunked",
    )
    answer = await exchange(served.port, head, (b'{"name": ', b'"cli"}'), chunked=True)
    assert answer.status == 201, answer.body
    assert served.count(ApiToken) == 1
