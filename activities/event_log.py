"""Batched writes of a run's events: one transaction per batch, not per line."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from activities.callbacks import CallbackDispatcher, dispatch_stored
from core.events import EventLevel, EventRecord
from core.secrets import Redactor
from core.store.runs import append_events, event_usage
from core.store.session import transaction

FLUSH_EVERY_SECONDS = 0.5
FLUSH_EVERY_EVENTS = 200

TRUNCATED = "output_truncated"
# Runwright's own account of a run: kept past the cap, so a flooded run still shows how it ended.
ALWAYS_KEPT = frozenset(
    {"action_started", "action_finished", "checkout", "checkout_failed", "playbook_result"}
)


@dataclass(frozen=True)
class OutputCap:
    """How much output one run may store as events; the rest is dropped behind one marker."""

    events: int = 10_000
    bytes: int = 4 * 1024 * 1024

    def marker(self) -> EventRecord:
        """The event that says where a run's stored output stops."""
        return EventRecord(
            TRUNCATED,
            f"output truncated: the run reached its cap of {self.events} events or "
            f"{self.bytes} bytes of output (RUNWRIGHT_RUN_MAX_EVENTS, "
            "RUNWRIGHT_RUN_MAX_OUTPUT_BYTES); later output is not stored",
            EventLevel.INFO,
        )


class EventLog:
    """Collects a run's events from any thread and stores them in order, redacted.

    `redactor` is the run's own: it masks the secrets this run opened, and only those.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        run_id: str,
        action_idx: int | None,
        dispatcher: CallbackDispatcher | None = None,
        cap: OutputCap | None = None,
        *,
        redactor: Redactor,
    ) -> None:
        self.redactor = redactor
        self._sessions = sessions
        self._cap = cap or OutputCap()
        # (events, bytes, marked) of the whole run; read from the DB at the first event, as
        # earlier actions and attempts of the run count too.
        self._usage: list[int] | None = None
        self._marked = False
        self._dispatcher = dispatcher
        self._run_id = run_id
        self._action_idx = action_idx
        self._pending: list[EventRecord] = []
        self._lock = threading.Lock()
        self._last_flush = time.monotonic()

    def emit(self, event: EventRecord) -> None:
        """Queue an event; stores the batch when it is big or old enough.

        Output past the run's cap is dropped (before redaction costs anything), once marked.
        """
        admitted, mark = self._admit(event)
        if mark:
            self._queue(self._cap.marker())
        if admitted:
            self._queue(event)

    def _admit(self, event: EventRecord) -> tuple[bool, bool]:
        """Whether to keep `event`, and whether the truncation marker is due first."""
        size = len(event.message.encode("utf-8", errors="replace"))
        with self._lock:
            if self._usage is None:
                with transaction(self._sessions) as session:
                    count, chars, self._marked = event_usage(session, self._run_id, TRUNCATED)
                self._usage = [count, chars]
            count, used = self._usage
            within = count < self._cap.events and used + size <= self._cap.bytes
            keep = within or event.event_type in ALWAYS_KEPT
            mark = not keep and not self._marked
            if mark:
                self._marked = True
                self._usage[0] += 1
            if keep:
                self._usage[0] += 1
                self._usage[1] += size
            return keep, mark

    def _queue(self, event: EventRecord) -> None:
        redactor = self.redactor
        clean = EventRecord(
            event_type=event.event_type,
            message=redactor.redact(event.message),
            level=event.level,
            # Ansible renders task names (and may render hosts) from variables: redact them too.
            host=redactor.redact(event.host) if event.host else event.host,
            task=redactor.redact(event.task) if event.task else event.task,
            data=redactor.redact_any(event.data),
        )
        with self._lock:
            self._pending.append(clean)
            due = (
                len(self._pending) >= FLUSH_EVERY_EVENTS
                or time.monotonic() - self._last_flush >= FLUSH_EVERY_SECONDS
            )
        if due:
            self.flush()

    def flush_if_due(self) -> None:
        """Store queued events that have waited long enough (called while output is quiet)."""
        with self._lock:
            due = self._pending and time.monotonic() - self._last_flush >= FLUSH_EVERY_SECONDS
        if due:
            self.flush()

    def flush(self) -> None:
        """Store every queued event now."""
        with self._lock:
            batch, self._pending = self._pending, []
            self._last_flush = time.monotonic()
            if not batch:
                return
            # Under the lock, so two threads' batches keep their order.
            with transaction(self._sessions) as session:
                last = append_events(session, self._run_id, batch, action_idx=self._action_idx)
                # The callback outbox rows are written with their events, or not at all.
                dispatch_stored(self._dispatcher, session, self._run_id, last - len(batch))
