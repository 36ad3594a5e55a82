"""Run callbacks, the I/O part: the outbox, its delivery, and the live DEBUG sender.

`CallbackDispatcher.record` runs where a run's events are stored, in the same transaction:
ERROR and RESULT deliveries become outbox rows (`callback_deliveries`) written together with
their events; DEBUG deliveries are POSTed live by a `LiveSender` thread once that transaction
commits, best effort. `deliver_pending` (the `deliver_callbacks` activity, retried by the
DeliverCallbacks workflow) POSTs the pending rows. Headers and signature: `core.callbacks`;
the key is the run's account's own (`core.store.callback_keys`) or the deployment's. Every
POST goes through `core.egress`: a receiver at a refused address fails its delivery at once.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence

import httpx
from sqlalchemy import event, select
from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity

from core.callbacks import (
    OUTBOX_LEVELS,
    StoredEvent,
    callback_level,
    delivery_headers,
    encode,
    status_after,
    status_document,
    stored_event,
    wants,
)
from core.egress import EgressPolicy, EgressRefused, egress_client
from core.events import EventLevel
from core.secrets import SecretBox, SecretError
from core.settings import Settings
from core.store.callback_keys import callback_key
from core.store.models import Account, CallbackDelivery, Run, RunEvent, new_id, utcnow
from core.store.runs import status_before
from core.store.session import transaction
from workflows.callbacks import (
    ABANDON_CALLBACKS,
    DELIVER_CALLBACKS,
    AbandonCallbacksInput,
    CallbackReport,
    DeliverCallbacksInput,
)
from workflows.contracts import CallbackSpec

log = logging.getLogger(__name__)

PENDING = "pending"
DELIVERED = "delivered"
FAILED = "failed"
# Live DEBUG posts waiting for the sender thread; past this, new ones are dropped.
LIVE_QUEUE_SIZE = 1000
LIVE_TIMEOUT_SECONDS = 2.0
MAX_ERROR_CHARS = 500


class CallbacksPending(Exception):
    """Some outbox rows are still pending after a delivery pass (retryable: try again later)."""


class SigningKeys:
    """Which key signs a run's callbacks: its account's own when set, else the deployment's."""

    def __init__(self, default: str = "", box: SecretBox | None = None) -> None:
        self._default = default
        self._box = box

    def for_account(self, session: Session, account_id: str | None) -> str:
        """The key for callbacks of runs of this account ("" : unsigned)."""
        if self._box is not None:
            own = callback_key(session, self._box, account_id)
            if own:
                return own
        return self._default

    def for_run(self, session: Session, run_id: str) -> str:
        """The key for callbacks of this run."""
        run = session.get(Run, run_id)
        return self.for_account(session, run.account_id if run is not None else None)


def events_after(session: Session, run_id: str, after_seq: int) -> list[StoredEvent]:
    """A run's stored events numbered above `after_seq`, in order (a batch just appended)."""
    rows = session.scalars(
        select(RunEvent)
        .where(RunEvent.run_id == run_id, RunEvent.seq > after_seq)
        .order_by(RunEvent.seq)
    )
    return [stored_event(row) for row in rows]


class LiveSender:
    """Posts DEBUG documents from one background thread; never blocks or raises in the caller."""

    def __init__(
        self,
        *,
        policy: EgressPolicy,
        signing_key: str = "",
        timeout: float = LIVE_TIMEOUT_SECONDS,
        max_queue: int = LIVE_QUEUE_SIZE,
    ) -> None:
        self._policy = policy
        self._key = signing_key
        self._timeout = timeout
        self._queue: queue.Queue[tuple[str, bytes, str] | None] = queue.Queue(maxsize=max_queue)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False
        self.dropped = 0  # posts refused because the queue was full
        self.sent = 0  # posts answered 2xx
        self.errors = 0  # posts that failed (error or non-2xx)

    def submit(self, url: str, document: dict[str, object], key: str | None = None) -> bool:
        """Queue one POST, signed with `key` (default: the sender's); False (and dropped)
        when the queue is full or the sender closed."""
        try:
            if self._closed:
                return False
            self._start()
            self._queue.put_nowait((url, encode(document), self._key if key is None else key))
            return True
        except queue.Full:
            self.dropped += 1
            return False
        except Exception:  # best effort: a DEBUG callback never fails the caller
            log.debug("live callback to %s not queued", url, exc_info=True)
            self.dropped += 1
            return False

    def close(self, timeout: float = 5.0) -> None:
        """Stop the thread after the posts already queued (waits at most `timeout`)."""
        with self._lock:
            self._closed = True
            thread = self._thread
        if thread is None:
            return
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            log.warning("live callback sender closed with %d posts queued", self._queue.qsize())
            return
        thread.join(timeout)

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="runwright-live-callbacks", daemon=True
                )
                self._thread.start()

    def _loop(self) -> None:
        with egress_client(self._policy, timeout=self._timeout) as client:
            while True:
                item = self._queue.get()
                if item is None:
                    return
                url, body, key = item
                try:
                    response = client.post(
                        url, content=body, headers=delivery_headers(new_id(), body, key)
                    )
                except Exception:  # best effort: the thread outlives any error
                    self.errors += 1
                    log.debug("live callback to %s failed", url, exc_info=True)
                    continue
                if response.is_success:
                    self.sent += 1
                else:
                    self.errors += 1
                    log.debug("live callback to %s answered %s", url, response.status_code)


class CallbackDispatcher:
    """A run's callbacks, applied to each batch of events as it is stored."""

    def __init__(
        self,
        callbacks: Sequence[CallbackSpec],
        *,
        sender: LiveSender | None = None,
        account_alias: str | None = None,
        keys: SigningKeys | None = None,
    ) -> None:
        self._callbacks: list[tuple[str, EventLevel]] = []
        for spec in callbacks:
            try:
                self._callbacks.append((spec.url, callback_level(spec.level)))
            except ValueError as exc:
                # The API refuses bad levels; an old spec must still not break event storage.
                log.warning("callback %s ignored: %s", spec.url, exc)
        self._sender = sender
        self._alias = account_alias
        self._keys = keys

    @property
    def active(self) -> bool:
        """True when the run has any callback (callers may skip loading events otherwise)."""
        return bool(self._callbacks)

    def record(
        self, session: Session, run: Run, events: Sequence[StoredEvent]
    ) -> list[CallbackDelivery]:
        """Outbox rows for ERROR/RESULT callbacks, in `session`; DEBUG posts after its commit."""
        if not self._callbacks or not events:
            return []
        alias = self._account_alias(session, run)
        rows: list[CallbackDelivery] = []
        live: list[tuple[str, dict[str, object]]] = []
        statuses: list[str] = []
        current = status_before(session, run.id, events[0].seq)
        for ev in events:
            current = status_after(current, ev)
            statuses.append(current)
        for url, level in self._callbacks:
            for ev, status in zip(events, statuses, strict=True):
                if not wants(level, ev):
                    continue
                document = status_document(ev, run, alias, status)
                if level in OUTBOX_LEVELS:
                    rows.append(
                        CallbackDelivery(run_id=run.id, url=url, level=str(level), payload=document)
                    )
                else:
                    live.append((url, document))
        if rows:
            session.add_all(rows)
            session.flush()
        if live and self._sender is not None:
            try:
                key = self._keys.for_account(session, run.account_id) if self._keys else None
            except (SecretError, KeyError) as exc:
                # Storing the events matters more than best-effort posts: skip, don't raise.
                log.warning(
                    "live callbacks of run %s not sent: account key unreadable: %s", run.id, exc
                )
                return rows
            self._send_after_commit(session, self._sender, live, key)
        return rows

    def _account_alias(self, session: Session, run: Run) -> str:
        if self._alias is None:
            account = session.get(Account, run.account_id) if run.account_id else None
            self._alias = account.alias if account is not None else ""
        return self._alias

    @staticmethod
    def _send_after_commit(
        session: Session,
        sender: LiveSender,
        live: list[tuple[str, dict[str, object]]],
        key: str | None,
    ) -> None:
        """Post once the events are committed (never for a batch that rolled back)."""

        def send() -> None:
            for url, document in live:
                sender.submit(url, document, key)

        if not session.in_transaction():
            send()
            return
        settled = False

        def committed(_session: Session) -> None:
            nonlocal settled
            if not settled:
                settled = True
                send()

        def rolled_back(_session: Session) -> None:
            nonlocal settled
            settled = True

        event.listen(session, "after_commit", committed)
        event.listen(session, "after_rollback", rolled_back)


def dispatch_stored(
    dispatcher: CallbackDispatcher | None, session: Session, run_id: str, after_seq: int
) -> None:
    """Apply a run's callbacks to the events it stored after `after_seq`, in `session`."""
    if dispatcher is None or not dispatcher.active:
        return
    run = session.get(Run, run_id)
    if run is not None:
        dispatcher.record(session, run, events_after(session, run_id, after_seq))


def deliver_pending(
    sessions: sessionmaker[Session],
    run_id: str,
    *,
    keys: SigningKeys,
    policy: EgressPolicy,
    timeout: float,
    heartbeat: Callable[[str], None] | None = None,
) -> CallbackReport:
    """POST each pending row of a run in order; raise CallbacksPending if any is left.

    A row is delivered on a 2xx answer; otherwise its attempts and last error are recorded
    and it stays pending. After one failure, a URL's later rows wait for the next pass, so
    a receiver sees its events in order and a dead one costs one timeout per pass. A URL
    that can never be posted to (not http or https, or an address the egress policy refuses)
    is marked failed at once.
    """
    with sessions() as session:
        signing_key = keys.for_run(session, run_id)
        rows = list(
            session.scalars(
                select(CallbackDelivery).where(
                    CallbackDelivery.run_id == run_id, CallbackDelivery.status == PENDING
                )
            )
        )
    rows.sort(key=lambda r: (r.created_at, _seq(r)))
    delivered = failed = 0
    blocked: set[str] = set()
    with egress_client(policy, timeout=timeout) as client:
        for row in rows:
            if row.url in blocked:
                continue
            if heartbeat is not None:
                heartbeat(row.id)
            bad_url = _unusable_url(row.url)
            if bad_url:
                _settle(sessions, row.id, status=FAILED, error=bad_url)
                failed += 1
                continue
            try:
                error = _post(client, row, signing_key)
            except EgressRefused as exc:
                # Permanent: retrying for a day would not make the address acceptable.
                _settle(sessions, row.id, status=FAILED, error=f"callback {row.url}: {exc}")
                failed += 1
                continue
            if error is None:
                _settle(sessions, row.id, status=DELIVERED)
                delivered += 1
            else:
                _settle(sessions, row.id, status=PENDING, error=error)
                blocked.add(row.url)
    left = len(rows) - delivered - failed
    if left:
        raise CallbacksPending(
            f"{left} callback deliveries of run {run_id} still pending; "
            f"{delivered} delivered this pass; last failing: {', '.join(sorted(blocked))}"
        )
    return CallbackReport(delivered=delivered, failed=failed)


def abandon_pending(sessions: sessionmaker[Session], run_id: str, reason: str) -> CallbackReport:
    """Mark every pending row of a run failed (its delivery window is over)."""
    with transaction(sessions) as session:
        rows = list(
            session.scalars(
                select(CallbackDelivery).where(
                    CallbackDelivery.run_id == run_id, CallbackDelivery.status == PENDING
                )
            )
        )
        for row in rows:
            row.status = FAILED
            row.last_error = _clip(f"given up: {reason}; last error: {row.last_error or 'none'}")
    return CallbackReport(failed=len(rows))


def _seq(row: CallbackDelivery) -> int:
    message = row.payload.get("message") if isinstance(row.payload, dict) else None
    seq = message.get("seq") if isinstance(message, dict) else None
    return seq if isinstance(seq, int) else 0


def _unusable_url(url: str) -> str | None:
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        return f"invalid callback URL: {exc}"
    if parsed.scheme not in ("http", "https") or not parsed.host:
        return f"callback URL must be http(s) with a host: {url!r}"
    return None


def _post(client: httpx.Client, row: CallbackDelivery, signing_key: str) -> str | None:
    """POST one row; None when delivered, else what went wrong (EgressRefused when the
    receiver's address is refused)."""
    body = encode(row.payload)
    try:
        response = client.post(
            row.url, content=body, headers=delivery_headers(row.id, body, signing_key)
        )
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}"
    if response.is_success:
        return None
    return f"HTTP {response.status_code}: {response.text[:200]}"


def _settle(
    sessions: sessionmaker[Session], row_id: str, *, status: str, error: str | None = None
) -> None:
    """Record one attempt at a row, in its own transaction (progress survives a crash)."""
    with transaction(sessions) as session:
        row = session.get(CallbackDelivery, row_id)
        if row is None:
            return
        row.attempts += 1
        row.status = status
        if error is not None:
            row.last_error = _clip(error)
        if status == DELIVERED:
            row.delivered_at = utcnow()


def _clip(text: str) -> str:
    return text if len(text) <= MAX_ERROR_CHARS else text[:MAX_ERROR_CHARS] + "..."


class CallbackActivities:
    """The delivery activities, and the worker's one live DEBUG sender."""

    def __init__(self, sessions: sessionmaker[Session], settings: Settings) -> None:
        self._sessions = sessions
        self._keys = SigningKeys(settings.callback_signing_key, SecretBox(settings.secret_key))
        self._policy = settings.egress_policy
        self._timeout = settings.callback_timeout_seconds
        self.sender = LiveSender(
            policy=self._policy,
            signing_key=settings.callback_signing_key,
            timeout=min(self._timeout, LIVE_TIMEOUT_SECONDS),
        )

    def dispatcher(
        self, callbacks: Sequence[CallbackSpec], *, account_alias: str | None = None
    ) -> CallbackDispatcher:
        """A run's dispatcher, posting DEBUG events through this worker's sender."""
        return CallbackDispatcher(
            callbacks, sender=self.sender, account_alias=account_alias, keys=self._keys
        )

    @activity.defn(name=DELIVER_CALLBACKS)
    def deliver_callbacks(self, inp: DeliverCallbacksInput) -> CallbackReport:
        """Deliver a run's pending callback rows; fails (to be retried) while any is left."""
        return deliver_pending(
            self._sessions,
            inp.run_id,
            keys=self._keys,
            policy=self._policy,
            timeout=self._timeout,
            heartbeat=activity.heartbeat,
        )

    @activity.defn(name=ABANDON_CALLBACKS)
    def abandon_callbacks(self, inp: AbandonCallbacksInput) -> CallbackReport:
        """Give up a run's pending callback rows: mark them failed with the reason."""
        return abandon_pending(self._sessions, inp.run_id, inp.reason)

    def close(self) -> None:
        """Stop the live sender (at worker shutdown)."""
        self.sender.close()
