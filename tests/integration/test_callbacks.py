"""Run callbacks end to end: outbox rows, signed deliveries through a real Temporal worker,
retries against real HTTP receivers on loopback, and the live DEBUG sender.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.worker import Worker

from activities.callbacks import (
    CallbackActivities,
    CallbackDispatcher,
    CallbacksPending,
    LiveSender,
    SigningKeys,
    abandon_pending,
    deliver_pending,
    events_after,
)
from core.callbacks import DELIVERY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from core.egress import DEV_ALLOW, EgressPolicy
from core.events import EventLevel, EventRecord
from core.secrets import SecretBox
from core.settings import Settings
from core.store.callback_keys import clear_callback_key, set_callback_key
from core.store.migrate import upgrade
from core.store.models import Account, CallbackDelivery, Definition, Run, Secret
from core.store.runs import append_events
from core.store.session import make_engine, make_session_factory, transaction
from tests.stack import make_settings
from workflows.callbacks import (
    CallbackReport,
    DeliverCallbacksInput,
    DeliverCallbacksWorkflow,
    callbacks_workflow_id,
)
from workflows.contracts import CallbackSpec

KEY = "callback-test-key"
# What dev mode and the test settings allow: the receivers here listen on loopback.
LOOPBACK = EgressPolicy.parse(DEV_ALLOW)


# --------------------------------------------------------------------------------------------
# A real HTTP receiver on loopback.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hit:
    """One POST a receiver got."""

    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def document(self) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads(self.body)
        return doc


class Receiver:
    """An HTTP server answering POSTs with scripted statuses (then 200), optionally slowly."""

    def __init__(self, *, port: int = 0, statuses: Sequence[int] = (), delay: float = 0.0) -> None:
        self.hits: list[Hit] = []
        self._statuses = list(statuses)
        self._delay = delay
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver._lock:
                    receiver.hits.append(Hit(self.path, dict(self.headers.items()), body))
                    status = receiver._statuses.pop(0) if receiver._statuses else 200
                if receiver._delay:
                    time.sleep(receiver._delay)
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        self._server.block_on_close = False
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hook"

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def free_port() -> int:
    """A loopback port nothing listens on (yet)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# --------------------------------------------------------------------------------------------
# A migrated SQLite DB, a run, its events; a worker for DeliverCallbacks.
# --------------------------------------------------------------------------------------------


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Dev settings with a signing key and a short POST timeout."""
    return make_settings(tmp_path / "home", callback_signing_key=KEY, callback_timeout_seconds=2.0)


@pytest.fixture
def sessions(settings: Settings) -> Iterator[sessionmaker[Session]]:
    """Sessions on the test's migrated SQLite database."""
    upgrade(settings.database_url)
    engine = make_engine(settings.database_url)
    yield make_session_factory(engine)
    engine.dispose()


def make_run(sessions: sessionmaker[Session]) -> Run:
    """A running run of a Runner job in account ACME."""
    with transaction(sessions) as session:
        account = Account(alias="ACME")
        session.add(account)
        session.flush()
        definition = Definition(dialect="runner", name="job", spec={}, account_id=account.id)
        session.add(definition)
        session.flush()
        run = Run(
            definition_id=definition.id, dialect="runner", status="running", account_id=account.id
        )
        session.add(run)
    return run


def store(
    sessions: sessionmaker[Session],
    run: Run,
    dispatcher: CallbackDispatcher,
    batch: Sequence[EventRecord],
) -> list[CallbackDelivery]:
    """What the event log does: append a batch and record its callbacks, in one transaction."""
    with transaction(sessions) as session:
        last = append_events(session, run.id, batch)
        events = events_after(session, run.id, last - len(batch))
        return dispatcher.record(session, run, events)


def pending_rows(sessions: sessionmaker[Session], run_id: str) -> list[CallbackDelivery]:
    with sessions() as session:
        return list(
            session.scalars(select(CallbackDelivery).where(CallbackDelivery.run_id == run_id))
        )


RESULT_EVENT = EventRecord("run_status", "run failed", EventLevel.RESULT, data={"status": "failed"})
BATCH = [
    EventRecord("playbook_on_start", "PLAY [all]", EventLevel.DEBUG),
    EventRecord("runner_on_ok", "ok: [web1]", EventLevel.DEBUG, host="web1", task="ping"),
    EventRecord("runner_on_failed", "fatal: [web2]", EventLevel.ERROR, host="web2", task="ping"),
    EventRecord("action_finished", "action 'deploy' failed", EventLevel.ERROR),
    EventRecord("playbook_result", "playbook failed, rc=2", EventLevel.RESULT),
    RESULT_EVENT,
]


@asynccontextmanager
async def delivery_worker(
    client: Client, sessions: sessionmaker[Session], settings: Settings, task_queue: str
) -> AsyncIterator[CallbackActivities]:
    """A worker polling `task_queue` with DeliverCallbacks and its activities."""
    acts = CallbackActivities(sessions, settings)
    with ThreadPoolExecutor(max_workers=4) as executor:
        async with Worker(
            client,
            task_queue=task_queue,
            workflows=[DeliverCallbacksWorkflow],
            activities=[acts.deliver_callbacks, acts.abandon_callbacks],
            activity_executor=executor,
        ):
            yield acts
    acts.close()


async def start_delivery(
    client: Client, run_id: str, task_queue: str
) -> WorkflowHandle[Any, CallbackReport]:
    return await client.start_workflow(
        DeliverCallbacksWorkflow.run,
        DeliverCallbacksInput(run_id=run_id),
        id=f"{callbacks_workflow_id(run_id)}-{uuid.uuid4().hex[:6]}",
        task_queue=task_queue,
    )


def queue_name() -> str:
    return f"callbacks-{uuid.uuid4().hex[:10]}"


# --------------------------------------------------------------------------------------------
# The outbox.
# --------------------------------------------------------------------------------------------


def test_outbox_rows_for_error_and_result(sessions: sessionmaker[Session]) -> None:
    """ERROR and RESULT callbacks get outbox rows written with the events; DEBUG posts live."""
    run = make_run(sessions)
    sender = LiveSender(policy=LOOPBACK, signing_key=KEY)
    with Receiver() as live:
        dispatcher = CallbackDispatcher(
            [
                CallbackSpec("http://127.0.0.1:9/errors", "ERROR"),
                CallbackSpec("http://127.0.0.1:9/results", "result"),
                CallbackSpec(live.url, "DEBUG"),
            ],
            sender=sender,
        )
        store(sessions, run, dispatcher, BATCH)
        sender.close()
        rows = pending_rows(sessions, run.id)
        by_url: dict[str, list[str]] = {}
        for row in sorted(rows, key=lambda r: r.payload["message"]["seq"]):
            assert row.status == "pending" and row.attempts == 0
            assert row.payload["execution_id"] == run.id
            assert row.payload["job_id"] == run.definition_id
            assert row.payload["account_alias"] == "ACME"
            by_url.setdefault(row.url, []).append(row.payload["event_type"])
        assert by_url == {
            "http://127.0.0.1:9/errors": [
                "runner_on_failed",
                "action_finished",
                "playbook_result",
                "run_status",
            ],
            "http://127.0.0.1:9/results": ["playbook_result", "run_status"],
        }
        assert {r.level for r in rows} == {"ERROR", "RESULT"}
        # DEBUG: every event, live, signed, none through the outbox.
        assert [h.document["event_type"] for h in live.hits] == [e.event_type for e in BATCH]
        assert all(verify(h.body, KEY, h.headers) for h in live.hits)
        assert final_status(live.hits[-1]) == "FAILURE"


def final_status(hit: Hit) -> str:
    status: str = hit.document["status"]
    return status


def test_a_rolled_back_batch_leaves_no_rows_and_sends_nothing(
    sessions: sessionmaker[Session],
) -> None:
    """An event and its delivery are written together: a failed batch leaves neither."""
    run = make_run(sessions)
    sender = LiveSender(policy=LOOPBACK)
    with Receiver() as live:
        dispatcher = CallbackDispatcher(
            [CallbackSpec("http://127.0.0.1:9/x", "ERROR"), CallbackSpec(live.url, "DEBUG")],
            sender=sender,
        )
        with pytest.raises(RuntimeError, match="disk full"), transaction(sessions) as session:
            last = append_events(session, run.id, BATCH)
            dispatcher.record(session, run, events_after(session, run.id, last - len(BATCH)))
            raise RuntimeError("disk full")
        sender.close()
        assert pending_rows(sessions, run.id) == []
        assert live.hits == []


def test_unknown_levels_are_ignored_not_fatal(sessions: sessionmaker[Session]) -> None:
    """A stored spec with a bad level never stops events from being stored."""
    run = make_run(sessions)
    dispatcher = CallbackDispatcher([CallbackSpec("http://127.0.0.1:9/x", "INFO")])
    assert not dispatcher.active
    assert store(sessions, run, dispatcher, BATCH) == []


# --------------------------------------------------------------------------------------------
# Delivery through Temporal.
# --------------------------------------------------------------------------------------------


async def test_delivery_marks_rows_delivered_with_valid_signatures(
    temporal: Client, sessions: sessionmaker[Session], settings: Settings
) -> None:
    """Each pending row is POSTed once, signed, in event order, and marked delivered."""
    run = make_run(sessions)
    with Receiver() as receiver:
        dispatcher = CallbackDispatcher([CallbackSpec(receiver.url, "ERROR")])
        rows = store(sessions, run, dispatcher, BATCH)
        assert len(rows) == 4
        queue = queue_name()
        async with delivery_worker(temporal, sessions, settings, queue):
            handle = await start_delivery(temporal, run.id, queue)
            report = await asyncio.wait_for(handle.result(), 20)
        assert report == CallbackReport(delivered=4, failed=0)
        stored = {r.id: r for r in pending_rows(sessions, run.id)}
        assert all(r.status == "delivered" and r.attempts == 1 for r in stored.values())
        assert all(r.delivered_at is not None and r.last_error is None for r in stored.values())
        assert len(receiver.hits) == 4
        for hit in receiver.hits:
            assert hit.path == "/hook"
            assert hit.headers["Content-Type"] == "application/json"
            assert verify(hit.body, KEY, hit.headers)
            assert not verify(hit.body, "wrong-key", hit.headers)
            row = stored[hit.headers[DELIVERY_HEADER]]
            assert hit.document == row.payload
        seqs = [h.document["message"]["seq"] for h in receiver.hits]
        assert seqs == sorted(seqs)


async def test_a_receiver_failing_twice_gets_the_delivery_on_retry(
    temporal: Client, sessions: sessionmaker[Session], settings: Settings
) -> None:
    """500, 500, then 200: the activity is retried with backoff and the workflow completes."""
    run = make_run(sessions)
    with Receiver(statuses=[500, 500]) as receiver:
        dispatcher = CallbackDispatcher([CallbackSpec(receiver.url, "RESULT")])
        store(sessions, run, dispatcher, [RESULT_EVENT])
        queue = queue_name()
        async with delivery_worker(temporal, sessions, settings, queue):
            handle = await start_delivery(temporal, run.id, queue)
            report = await asyncio.wait_for(handle.result(), 20)
        assert report.delivered == 1
        (row,) = pending_rows(sessions, run.id)
        assert (row.status, row.attempts) == ("delivered", 3)
        assert row.last_error is not None and row.last_error.startswith("HTTP 500")
        # At least once: the same delivery id on every try, so the receiver can de-duplicate.
        assert [h.headers[DELIVERY_HEADER] for h in receiver.hits] == [row.id] * 3


@pytest.mark.slow
async def test_a_dead_receiver_keeps_rows_pending_until_it_comes_back(
    temporal: Client, sessions: sessionmaker[Session], settings: Settings
) -> None:
    """Connection refused: rows stay pending, the workflow keeps retrying, never fails."""
    run = make_run(sessions)
    port = free_port()
    url = f"http://127.0.0.1:{port}/hook"
    store(sessions, run, CallbackDispatcher([CallbackSpec(url, "ERROR")]), BATCH)
    queue = queue_name()
    async with delivery_worker(temporal, sessions, settings, queue):
        handle = await start_delivery(temporal, run.id, queue)
        await asyncio.sleep(3.5)
        described = await handle.describe()
        assert described.status == WorkflowExecutionStatus.RUNNING
        rows = pending_rows(sessions, run.id)
        assert all(r.status == "pending" for r in rows)
        # A pass stops at the URL's first failure, so only the first row was tried (3 times).
        first = min(rows, key=lambda r: r.payload["message"]["seq"])
        assert first.attempts >= 2
        assert first.last_error is not None and "ConnectError" in first.last_error
        with Receiver(port=port) as receiver:
            report = await asyncio.wait_for(handle.result(), 20)
    assert report.delivered == 4
    assert all(r.status == "delivered" for r in pending_rows(sessions, run.id))
    assert len(receiver.hits) == 4


async def test_a_fresh_worker_delivers_what_a_lost_one_left(
    temporal: Client, settings: Settings
) -> None:
    """The worker that stored the result died before delivering: a new one delivers it."""
    # The lost worker: it committed the final event with its outbox row, then was gone.
    upgrade(settings.database_url)
    engine = make_engine(settings.database_url)
    lost_sessions = make_session_factory(engine)
    run = make_run(lost_sessions)
    with Receiver() as receiver:
        store(
            lost_sessions,
            run,
            CallbackDispatcher([CallbackSpec(receiver.url, "RESULT")]),
            [RESULT_EVENT],
        )
        engine.dispose()
        queue = queue_name()
        # The run workflow started the delivery; nobody polls its queue for now.
        handle = await start_delivery(temporal, run.id, queue)
        await asyncio.sleep(1.0)
        assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING

        # A fresh worker: its own engine, sessions and activity instance.
        engine = make_engine(settings.database_url)
        sessions = make_session_factory(engine)
        assert [r.status for r in pending_rows(sessions, run.id)] == ["pending"]
        async with delivery_worker(temporal, sessions, settings, queue):
            report = await asyncio.wait_for(handle.result(), 20)
            assert report.delivered == 1
            # Another delivery of the same run sends nothing twice: delivered rows are done.
            again = await start_delivery(temporal, run.id, queue)
            assert await asyncio.wait_for(again.result(), 20) == CallbackReport()
        (row,) = pending_rows(sessions, run.id)
        assert (row.status, row.attempts) == ("delivered", 1)
        assert [h.headers[DELIVERY_HEADER] for h in receiver.hits] == [row.id]
        assert receiver.hits[0].document["status"] == "FAILURE"
        engine.dispose()


async def test_an_unusable_url_fails_its_rows_without_blocking_others(
    temporal: Client, sessions: sessionmaker[Session], settings: Settings
) -> None:
    """A URL no retry can fix is marked failed at once; the other URL's rows are delivered."""
    run = make_run(sessions)
    with Receiver() as receiver:
        dispatcher = CallbackDispatcher(
            [CallbackSpec("ftp://example.com/hook", "RESULT"), CallbackSpec(receiver.url, "RESULT")]
        )
        store(sessions, run, dispatcher, [RESULT_EVENT])
        queue = queue_name()
        async with delivery_worker(temporal, sessions, settings, queue):
            handle = await start_delivery(temporal, run.id, queue)
            report = await asyncio.wait_for(handle.result(), 20)
    assert report == CallbackReport(delivered=1, failed=1)
    statuses = {r.url: (r.status, r.last_error or "") for r in pending_rows(sessions, run.id)}
    assert statuses[receiver.url] == ("delivered", "")
    assert statuses["ftp://example.com/hook"][0] == "failed"
    assert "http(s)" in statuses["ftp://example.com/hook"][1]


def test_giving_up_marks_pending_rows_failed(sessions: sessionmaker[Session]) -> None:
    """When the retry window is spent, what is left is failed, with the last error kept."""
    run = make_run(sessions)
    url = f"http://127.0.0.1:{free_port()}/hook"
    store(sessions, run, CallbackDispatcher([CallbackSpec(url, "RESULT")]), [RESULT_EVENT])
    with pytest.raises(CallbacksPending, match="1 callback deliveries"):
        deliver_pending(sessions, run.id, keys=SigningKeys(), policy=LOOPBACK, timeout=1.0)
    report = abandon_pending(sessions, run.id, "activity ScheduleToClose timeout")
    assert report == CallbackReport(failed=1)
    (row,) = pending_rows(sessions, run.id)
    assert row.status == "failed"
    assert row.last_error is not None
    assert "ScheduleToClose" in row.last_error and "ConnectError" in row.last_error


# --------------------------------------------------------------------------------------------
# The live DEBUG sender.
# --------------------------------------------------------------------------------------------


@contextmanager
def timed() -> Iterator[list[float]]:
    took: list[float] = []
    start = time.perf_counter()
    yield took
    took.append(time.perf_counter() - start)


def test_live_debug_never_blocks_the_caller(sessions: sessionmaker[Session]) -> None:
    """A receiver that takes 5 s per POST does not slow storing events; overflow is dropped."""
    run = make_run(sessions)
    sender = LiveSender(policy=LOOPBACK, timeout=10.0, max_queue=5)
    with Receiver(delay=5.0) as slow:
        dispatcher = CallbackDispatcher([CallbackSpec(slow.url, "DEBUG")], sender=sender)
        # Warm up: the sender thread is now stuck in a 5 s POST.
        store(sessions, run, dispatcher, BATCH[:1])
        batch = [EventRecord("runner_on_ok", f"ok {i}") for i in range(50)]
        with timed() as batch_took, transaction(sessions) as session:
            last = append_events(session, run.id, batch)
            events = events_after(session, run.id, last - len(batch))
            with timed() as record_took:
                dispatcher.record(session, run, events)
        # The posts are queued when the transaction commits: the whole batch stays quick.
        assert record_took[0] < 0.05, record_took
        assert batch_took[0] < 0.5, batch_took
        assert sender.dropped >= 40
        with timed() as close_took:
            sender.close(timeout=0.2)
        assert close_took[0] < 1.0


def test_live_debug_never_raises(sessions: sessionmaker[Session]) -> None:
    """Refused connections and bad URLs are counted, not raised; the sender keeps going."""
    run = make_run(sessions)
    sender = LiveSender(policy=LOOPBACK, timeout=1.0)
    with Receiver() as good:
        dispatcher = CallbackDispatcher(
            [
                CallbackSpec(f"http://127.0.0.1:{free_port()}/down", "DEBUG"),
                CallbackSpec("not a url at all", "DEBUG"),
                CallbackSpec(good.url, "DEBUG"),
            ],
            sender=sender,
        )
        store(sessions, run, dispatcher, BATCH[:2])
        sender.close(timeout=5.0)
        assert sender.errors == 4
        assert sender.sent == 2
        assert len(good.hits) == 2
        # Unsigned without a key; the delivery id is still there.
        assert SIGNATURE_HEADER not in good.hits[0].headers
        assert good.hits[0].headers[DELIVERY_HEADER]
    # Closed: later events are dropped quietly.
    assert sender.submit(good.url, {"x": 1}) is False


# --------------------------------------------------------------------------------------------
# Egress: receivers at refused addresses, and the account's own signing key.
# --------------------------------------------------------------------------------------------


async def test_a_refused_receiver_fails_at_once_naming_the_address(
    temporal: Client, tmp_path: Path
) -> None:
    """With loopback not allowed, a delivery to it is failed on the first pass with the
    address named, the receiver hears nothing, and other receivers are not held up."""
    strict = make_settings(
        tmp_path / "strict", callback_signing_key=KEY, egress_allow="192.0.2.0/24"
    )
    upgrade(strict.database_url)
    engine = make_engine(strict.database_url)
    sessions = make_session_factory(engine)
    run = make_run(sessions)
    with Receiver() as receiver:
        named = receiver.url.replace("127.0.0.1", "localhost")
        dispatcher = CallbackDispatcher(
            [CallbackSpec(receiver.url, "RESULT"), CallbackSpec(named, "ERROR")]
        )
        store(sessions, run, dispatcher, BATCH)
        queue = queue_name()
        async with delivery_worker(temporal, sessions, strict, queue):
            handle = await start_delivery(temporal, run.id, queue)
            report = await asyncio.wait_for(handle.result(), 20)
        rows = pending_rows(sessions, run.id)
        assert report == CallbackReport(delivered=0, failed=len(rows))
        assert receiver.hits == []
    for row in rows:
        assert (row.status, row.attempts) == ("failed", 1)
        assert row.last_error is not None
        assert "127.0.0.1 (loopback)" in row.last_error
        assert "RUNWRIGHT_EGRESS_ALLOW" in row.last_error
    assert any(r.last_error and "localhost: 127.0.0.1" in r.last_error for r in rows)
    engine.dispose()


def test_live_debug_to_a_refused_address_sends_nothing(sessions: sessionmaker[Session]) -> None:
    """The live sender goes through the same check: refused posts are counted as errors."""
    run = make_run(sessions)
    sender = LiveSender(policy=EgressPolicy(), signing_key=KEY)
    with Receiver() as live:
        dispatcher = CallbackDispatcher([CallbackSpec(live.url, "DEBUG")], sender=sender)
        store(sessions, run, dispatcher, BATCH[:2])
        sender.close(timeout=5.0)
        assert live.hits == []
    assert (sender.sent, sender.errors) == (0, 2)


ACCOUNT_KEY = "acme-own-callback-key-0123456789"


def give_account_key(sessions: sessionmaker[Session], settings: Settings, run: Run) -> str:
    with transaction(sessions) as session:
        account = session.get(Account, run.account_id)
        assert account is not None
        return set_callback_key(session, SecretBox(settings.secret_key), account, ACCOUNT_KEY)


async def test_an_account_key_signs_its_callbacks(
    temporal: Client, sessions: sessionmaker[Session], settings: Settings
) -> None:
    """With a key of its own, an account's deliveries (outbox and live) are signed with it,
    over the timestamp and delivery id, and no longer with the deployment's key."""
    run = make_run(sessions)
    assert give_account_key(sessions, settings, run) == ACCOUNT_KEY
    with Receiver() as receiver:
        queue = queue_name()
        async with delivery_worker(temporal, sessions, settings, queue) as acts:
            dispatcher = acts.dispatcher(
                [CallbackSpec(receiver.url, "RESULT"), CallbackSpec(receiver.url, "DEBUG")]
            )
            store(sessions, run, dispatcher, [RESULT_EVENT])
            before = time.time()
            handle = await start_delivery(temporal, run.id, queue)
            assert (await asyncio.wait_for(handle.result(), 20)).delivered == 1
            acts.sender.close(timeout=5.0)
        assert len(receiver.hits) == 2  # the live DEBUG post and the RESULT delivery
        (row,) = pending_rows(sessions, run.id)
        for hit in receiver.hits:
            assert verify(hit.body, ACCOUNT_KEY, hit.headers)
            assert not verify(hit.body, KEY, hit.headers)
            assert abs(int(hit.headers[TIMESTAMP_HEADER]) - before) < 30
        outbox = [h for h in receiver.hits if h.headers[DELIVERY_HEADER] == row.id]
        assert len(outbox) == 1
        # Replayed under another delivery id, the same bytes and signature do not verify.
        forged = {**outbox[0].headers, DELIVERY_HEADER: "another-delivery"}
        assert not verify(outbox[0].body, ACCOUNT_KEY, forged)


def test_clearing_the_account_key_brings_back_the_deployment_key(
    sessions: sessionmaker[Session], settings: Settings
) -> None:
    """Without its own key an account's callbacks use RUNWRIGHT_CALLBACK_SIGNING_KEY; the
    removed key's secret row is deleted."""
    run = make_run(sessions)
    give_account_key(sessions, settings, run)
    keys = SigningKeys(KEY, SecretBox(settings.secret_key))
    with transaction(sessions) as session:
        assert keys.for_run(session, run.id) == ACCOUNT_KEY
        account = session.get(Account, run.account_id)
        assert account is not None and clear_callback_key(session, account)
    with sessions() as session:
        assert keys.for_run(session, run.id) == KEY
        assert session.scalar(select(func.count()).select_from(Secret)) == 0
