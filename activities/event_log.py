"""Batched writes of a run's events: one transaction per batch, not per line."""

from __future__ import annotations

import threading
import time

from sqlalchemy.orm import Session, sessionmaker

from activities.callbacks import CallbackDispatcher, dispatch_stored
from core.events import EventRecord
from core.secrets import Redactor
from core.store.runs import append_events
from core.store.session import transaction

FLUSH_EVERY_SECONDS = 0.5
FLUSH_EVERY_EVENTS = 200


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
        *,
        redactor: Redactor,
    ) -> None:
        self.redactor = redactor
        self._sessions = sessions
        self._dispatcher = dispatcher
        self._run_id = run_id
        self._action_idx = action_idx
        self._pending: list[EventRecord] = []
        self._lock = threading.Lock()
        self._last_flush = time.monotonic()

    def emit(self, event: EventRecord) -> None:
        """Queue an event; stores the batch when it is big or old enough."""
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
