"""The live log, `GET /api/automations/runs/{run_id}/stream`, read by a real SSE client over a
real HTTP connection while a real run prints: lines as they are written, resumption with
`Last-Event-ID`, pings, the final `done`, authentication by header or `?token=`, and one
poller per run however many clients watch it."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_sse import aconnect_sse
from sqlalchemy import event, select
from temporalio.client import Client

from api.app import create_app
from api.automations import live_log
from api.automations.ids import run_public_id
from api.run_stream import line_of
from core.secrets import MASK
from core.statuses import TERMINAL_RUN_STATUSES, RunStatus
from core.store.models import Run, RunEvent
from core.store.secret_values import put_secret
from core.store.session import transaction
from tests.conftest import TEST_SECRET_KEY
from tests.live_log import LiveStack, live_stack
from tests.servers import free_port
from tests.stack import make_settings, stack_for
from workers.serving import serve_api

pytestmark = pytest.mark.slow

# No read timeout: a quiet stream is the point; each test bounds its wait with asyncio.timeout.
CLIENT_TIMEOUT = httpx.Timeout(10.0, read=None)

# Printed by the scripts: the line's text, then the epoch time bash printed it at.
TICKS = 'for i in $(seq 1 {n}); do echo "tick $i $(date +%s.%N)"; sleep {pause}; done'


@pytest.fixture
async def live(tmp_path: Path, temporal: Client) -> AsyncIterator[LiveStack]:
    settings = make_settings(tmp_path / "home", secret_key=TEST_SECRET_KEY)
    async with live_stack(settings, temporal) as running:
        yield running


@dataclass
class Line:
    id: int
    text: str
    arrived: float  # epoch seconds


@dataclass
class Received:
    lines: list[Line] = field(default_factory=list)
    done: dict[str, Any] | None = None

    @property
    def texts(self) -> list[str]:
        return [line.text for line in self.lines]

    @property
    def ids(self) -> list[int]:
        return [line.id for line in self.lines]


async def receive(
    url: str,
    headers: dict[str, str] | None = None,
    *,
    take: int | None = None,
    timeout: float = 60.0,
) -> Received:
    """Events from the stream until `done` (or until `take` lines arrived: then it hangs up)."""
    got = Received()
    async with (
        asyncio.timeout(timeout),
        httpx.AsyncClient(timeout=CLIENT_TIMEOUT) as client,
        aconnect_sse(client, "GET", url, headers=dict(headers or {})) as source,
    ):
        assert source.response.status_code == 200, await source.response.aread()
        async for sse in source.aiter_sse():
            if sse.event == "done":
                got.done = json.loads(sse.data)
                break
            assert sse.event == "message", sse
            got.lines.append(Line(int(sse.id), sse.data, time.time()))
            if take is not None and len(got.lines) >= take:
                break
    return got


def ticks(received: Received) -> list[tuple[int, float]]:
    """(i, printed at) of each `tick i <time>` line received."""
    out = []
    for line in received.lines:
        parts = line.text.split()
        if len(parts) == 3 and parts[0] == "tick":
            out.append((int(parts[1]), float(parts[2])))
    return out


async def wait_ended(live: LiveStack, run_id: str) -> str:
    row = await live.stack.wait_status(run_id, set(TERMINAL_RUN_STATUSES), timeout=60)
    return row.status


def stored_lines(live: LiveStack, run_id: str) -> list[tuple[int, str]]:
    """(seq, line) of every stored event of the run that the live log shows."""
    with live.stack.sessions() as session:
        rows = session.execute(
            select(RunEvent.seq, RunEvent.event_type, RunEvent.message)
            .where(RunEvent.run_id == run_id)
            .order_by(RunEvent.seq)
        ).all()
    return [
        (seq, text)
        for seq, event_type, message in rows
        if (text := line_of(event_type, message)) is not None
    ]


async def test_lines_arrive_while_the_run_runs_within_a_second(live: LiveStack) -> None:
    """A client connected from the start gets each line while the run still runs, less than a
    second after the script printed it, stdout and stderr, ids increasing; then `done`."""
    script = TICKS.format(n=6, pause=0.4) + "; echo 'to stderr' >&2"
    run_id, public = await live.run_script(script)
    got = await receive(live.stream_url(public), live.auth())
    assert got.done == {"status": "done"}
    printed = ticks(got)
    assert [i for i, _ in printed] == [1, 2, 3, 4, 5, 6]
    delays = [
        line.arrived - float(line.text.split()[2]) for line in got.lines if line.text[:5] == "tick "
    ]
    assert max(delays) < 1.0, delays
    assert "to stderr" in got.texts
    assert got.ids == sorted(set(got.ids)), "ids increase, each once"
    with live.stack.sessions() as session:
        row = session.get(Run, run_id)
        assert row is not None and row.end_time is not None
        ended = row.end_time.timestamp()
    first_tick = next(line for line in got.lines if line.text.startswith("tick 1 "))
    assert first_tick.arrived < ended - 1.5, "the first line came long before the run ended"
    # The stream is the stored log, line for line.
    assert [(line.id, line.text) for line in got.lines] == stored_lines(live, run_id)


async def test_reconnecting_with_last_event_id_gets_exactly_the_rest(live: LiveStack) -> None:
    """A client that hangs up after four lines and comes back with the last id it saw gets
    every later line once: together the two visits are the whole log, no gaps, no repeats."""
    run_id, public = await live.run_script(TICKS.format(n=10, pause=0.2))
    first = await receive(live.stream_url(public), live.auth(), take=4)
    assert len(first.lines) == 4 and first.done is None
    rest = await receive(
        live.stream_url(public), {**live.auth(), "Last-Event-ID": str(first.lines[-1].id)}
    )
    assert rest.done == {"status": "done"}
    assert min(rest.ids) > first.lines[-1].id
    whole = await receive(live.stream_url(public), live.auth())
    both = [(x.id, x.text) for x in first.lines + rest.lines]
    assert both == [(x.id, x.text) for x in whole.lines] == stored_lines(live, run_id)
    assert [i for i, _ in ticks(whole)] == list(range(1, 11))


async def test_a_finished_run_streams_everything_then_done(live: LiveStack) -> None:
    """A run that already ended: its whole log at once (more than one page of events), then
    `done` with NOBA's status, and the stream closes."""
    script = "seq 1 1200; echo 'bad end' >&2; exit 3"
    run_id, public = await live.run_script(script)
    assert await wait_ended(live, run_id) == RunStatus.FAILED
    got = await receive(live.stream_url(public), live.auth())
    assert got.done == {"status": "failed"}
    numbers = [t for t in got.texts if t.isdigit()]
    assert numbers == [str(n) for n in range(1, 1201)]
    assert "bad end" in got.texts
    assert [(x.id, x.text) for x in got.lines] == stored_lines(live, run_id)
    # Resuming at the end of a finished run: nothing more, straight to done.
    after = await receive(
        live.stream_url(public), {**live.auth(), "Last-Event-ID": str(got.lines[-1].id)}
    )
    assert after.lines == [] and after.done == {"status": "failed"}


async def test_a_quiet_stream_gets_pings(live: LiveStack, monkeypatch: pytest.MonkeyPatch) -> None:
    """`: ping` comments keep a quiet stream open (every 15 s; shortened here)."""
    monkeypatch.setattr(live_log, "PING_SECONDS", 0.3)
    _, public = await live.run_script("sleep 2; echo late")
    raw: list[str] = []
    async with (
        asyncio.timeout(60),
        httpx.AsyncClient(timeout=CLIENT_TIMEOUT) as client,
        client.stream("GET", live.stream_url(public), headers=live.auth()) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        async for text in response.aiter_lines():
            raw.append(text)
            if text.startswith("event: done"):
                break
    assert raw.count(": ping") >= 3, raw
    assert "data: late" in raw
    assert raw[-1] == "event: done"


async def test_a_token_in_the_query_string_works_here_only(
    live: LiveStack, caplog: pytest.LogCaptureFixture
) -> None:
    """`?token=` authenticates the stream (a viewer may read), for browsers' EventSource; a bad
    or missing token is 401 in NOBA's shape; no other route takes a token from the URL; the
    token is written to no log."""
    caplog.set_level(logging.DEBUG)
    run_id, public = await live.run_script("echo hello")
    await wait_ended(live, run_id)
    token = live.token("viewer@corp.test", role="viewer")
    got = await receive(f"{live.stream_url(public)}?token={token}")
    assert "hello" in got.texts and got.done == {"status": "done"}
    async with httpx.AsyncClient(base_url=live.url) as client:
        path = f"/api/automations/runs/{public}/stream"
        bad = await client.get(path, params={"token": "not-a-token"})
        assert (bad.status_code, bad.json()) == (401, {"error": "invalid or expired token"})
        missing = await client.get(path)
        assert missing.status_code == 401 and set(missing.json()) == {"error"}
        elsewhere = await client.get("/api/maintenance", params={"token": token})
        assert elsewhere.status_code == 401
        header = {"Authorization": f"Bearer {token}"}
        assert (await client.get("/api/maintenance", headers=header)).status_code == 200
    # The server's records, that is: the test's own client logs the URLs it requests.
    server_side = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]
    assert server_side, "the server logged nothing at all: the check would prove nothing"
    assert all(token not in r.getMessage() for r in server_side)


async def test_unknown_malformed_and_other_dialects_runs_are_404(live: LiveStack) -> None:
    """404 in NOBA's shape for a run id nobody issued, one not of our form, and a run another
    dialect started (its own API shows it, this one does not); a bad Last-Event-ID is 400."""
    other_id, _ = await live.run_script("echo other", dialect="test")
    await wait_ended(live, other_id)
    auth = live.auth()
    async with httpx.AsyncClient(base_url=live.url) as client:
        for run_id in (
            run_public_id(str(uuid.uuid4())),
            "run_nothing",
            other_id,
            run_public_id(other_id),
        ):
            answer = await client.get(f"/api/automations/runs/{run_id}/stream", headers=auth)
            assert answer.status_code == 404, run_id
            assert answer.json() == {"error": f"run {run_id} not found"}
        run_id, public = await live.run_script("echo mine")
        await wait_ended(live, run_id)
        bad = await client.get(
            f"/api/automations/runs/{public}/stream", headers={**auth, "Last-Event-ID": "x1"}
        )
        assert bad.status_code == 400
        assert "Last-Event-ID" in bad.json()["error"]


async def test_secrets_are_masked_in_the_stream(live: LiveStack) -> None:
    """A secret the script prints reaches the client masked, as it was stored."""
    value = f"s3cret-{uuid.uuid4().hex[:12]}"
    with transaction(live.stack.sessions) as session:
        ref = put_secret(session, live.services.box, value)
    _, public = await live.run_script(
        'echo "token is $TOKEN"', env={"TOKEN": {"secretRef": ref}}, secret_refs=[ref]
    )
    got = await receive(live.stream_url(public), live.auth())
    assert got.done == {"status": "done"}
    assert f"token is {MASK}" in got.texts
    assert all(value not in text for text in got.texts)


async def test_many_clients_share_one_poller(live: LiveStack) -> None:
    """Ten clients on one run get the same lines from one poller: the store is read about once
    per poll interval (plus each client's own catch-up), not once per client; when the run is
    over the poller is gone."""
    engine = live.services.sessions.kw["bind"]
    reads: list[float] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "FROM run_events" in statement:
            reads.append(time.monotonic())

    run_id, public = await live.run_script(TICKS.format(n=15, pause=0.2))
    event.listen(engine, "before_cursor_execute", count)
    try:
        began = time.monotonic()
        clients = [
            asyncio.create_task(receive(live.stream_url(public), live.auth())) for _ in range(10)
        ]
        while live.services.feeds.followed().get(run_id, 0) < 10:
            assert not any(c.done() for c in clients), [c.result() for c in clients if c.done()]
            await asyncio.sleep(0.05)
        assert live.services.feeds.followed() == {run_id: 10}
        results = await asyncio.gather(*clients)
        elapsed = time.monotonic() - began
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert all(r.done == {"status": "done"} for r in results)
    assert all(r.lines == results[0].lines or r.texts == results[0].texts for r in results)
    assert len(ticks(results[0])) == 15
    polls = elapsed / live.services.feeds.poll_seconds
    # One poller: ~one read per interval, plus at most one catch-up read per client.
    assert len(reads) <= polls + 10 + 5, (len(reads), polls)
    assert live.services.feeds.followed() == {}


async def test_the_poller_stops_when_the_last_client_leaves(live: LiveStack) -> None:
    """Clients that hang up before the run ends take its poller with them: nothing reads the
    store for that run afterwards."""
    engine = live.services.sessions.kw["bind"]
    reads: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "FROM run_events" in statement:
            reads.append(statement)

    run_id, public = await live.run_script(TICKS.format(n=12, pause=0.25))
    first = await asyncio.gather(
        *(receive(live.stream_url(public), live.auth(), take=2) for _ in range(3))
    )
    assert all(len(r.lines) == 2 for r in first)
    await asyncio.sleep(0.1)  # the server notices the hang-ups
    assert live.services.feeds.followed() == {}
    event.listen(engine, "before_cursor_execute", count)
    try:
        await asyncio.sleep(1.0)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert reads == []
    await wait_ended(live, run_id)


def test_the_stream_is_in_the_openapi_document(tmp_path: Path) -> None:
    """The route documents `?token=` and `Last-Event-ID`."""
    app = create_app(make_settings(tmp_path, secret_key=TEST_SECRET_KEY))
    operation = app.openapi()["paths"]["/api/automations/runs/{run_id}/stream"]["get"]
    names = {p["name"] for p in operation["parameters"]}
    assert {"run_id", "token", "last-event-id"} <= names


async def test_stopping_the_api_ends_open_streams(tmp_path: Path, temporal: Client) -> None:
    """An API asked to stop while clients stream a running run stops promptly: their streams
    end (without `done`: the run goes on, and a client resumes elsewhere with its last id)."""
    settings = make_settings(tmp_path / "home", secret_key=TEST_SECRET_KEY)
    async with stack_for(settings, temporal) as stack:
        app = create_app(settings, temporal_client=temporal)
        port = free_port()
        stop, ready = asyncio.Event(), asyncio.Event()
        server = asyncio.create_task(serve_api(app, "127.0.0.1", port, stop, on_ready=ready.set))
        await asyncio.wait_for(ready.wait(), 10)
        live = LiveStack(stack, f"http://127.0.0.1:{port}", app.state.services)
        run_id, public = await live.run_script(TICKS.format(n=40, pause=0.25))
        client = asyncio.create_task(receive(live.stream_url(public), live.auth()))
        while not live.services.feeds.followed():
            await asyncio.sleep(0.05)
        began = time.monotonic()
        stop.set()
        await asyncio.wait_for(server, 10)
        assert time.monotonic() - began < 5
        got = await asyncio.wait_for(client, 5)
        assert got.done is None
        await wait_ended(live, run_id)
