"""A run's output as it is written: what is stored first, then each new line, then the end.

Any dialect streams a run through `RunFeeds.follow`. One feed per run per API process polls
the store for the run's new events and hands every batch to all of that run's followers
through their own queues, so a hundred clients watching one run cost one query per poll
interval, not a hundred; the feed stops when its last follower leaves, or once the run has
ended and every event was handed out.

What counts as a line of output (`line_of`): every line a program printed (`stdout` and
`stderr` of scripts, commands and ssh, `output` of runbooks), blank lines included, and every
other event that carries a message: the engine's own account of the run (status changes,
actions starting and finishing, checkouts, the truncation marker) and ansible's display text.
Events with no message (ansible's bookkeeping) are not lines. Output is stored redacted, so
nothing here sees a secret.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Callable, Iterator, Sequence
from dataclasses import dataclass, field

from sqlalchemy.orm import Session, sessionmaker

from api.db import read
from core.statuses import TERMINAL_RUN_STATUSES
from core.store.runs import event_texts, run_status

log = logging.getLogger(__name__)

# How often a followed run's store is asked for new events. The event log stores a quiet
# run's output within half a second of its printing; with this a line reaches a client in
# well under a second end to end.
POLL_SECONDS = 0.2
# Events per query: a long run's history is replayed and fanned out in pages, never whole.
PAGE = 500
# Event types that are a program's own output lines: kept even when blank.
PROGRAM_OUTPUT = frozenset({"stdout", "stderr", "output"})
# A failing store is asked again after a pause that grows to this many poll intervals.
MAX_BACKOFF_POLLS = 25

# (seq, event_type, message) of stored events, as the store reads them for a follower.
Rows = list[tuple[int, str, str]]


@dataclass(frozen=True)
class LogLine:
    """One line of a run's output and the seq of the event that holds it (its resume point)."""

    seq: int
    text: str


@dataclass(frozen=True)
class RunEnded:
    """The run is over and every line before this was sent: its canonical status."""

    status: str


@dataclass(frozen=True, eq=False)
class LineBatch:
    """Lines stored together, handed to every follower of the run as one object: a dialect
    renders it for the wire once (`rendered`) and sends the same bytes to every client."""

    lines: tuple[LogLine, ...]
    _rendered: dict[Callable[[Sequence[LogLine]], bytes], bytes] = field(
        default_factory=dict, repr=False
    )

    def __iter__(self) -> Iterator[LogLine]:
        return iter(self.lines)

    def __len__(self) -> int:
        return len(self.lines)

    def rendered(self, render: Callable[[Sequence[LogLine]], bytes]) -> bytes:
        """`render(lines)`, computed once per batch and render function."""
        out = self._rendered.get(render)
        if out is None:
            out = self._rendered[render] = render(self.lines)
        return out


def line_of(event_type: str, message: str) -> str | None:
    """The line an event shows in the live log, or None for events that show nothing."""
    if event_type in PROGRAM_OUTPUT:
        return message
    # Ansible's display text comes framed in blank lines; the engine's messages are one line.
    text = message.strip("\r\n")
    return text or None


def is_terminal(status: str) -> bool:
    """Whether a run in `status` writes no more events."""
    return status in {str(s) for s in TERMINAL_RUN_STATUSES}


@dataclass(frozen=True)
class _Batch:
    """What the poller hands every follower at once."""

    lines: LineBatch
    ended: str | None = None  # the terminal status, once the batch holds the last events
    gone: bool = False  # the run's row no longer exists


def _lines(rows: Rows) -> list[LogLine]:
    return [
        LogLine(seq, text)
        for seq, event_type, message in rows
        if (text := line_of(event_type, message)) is not None
    ]


def _poll(session: Session, run_id: str, after: int) -> tuple[str | None, Rows]:
    # The status first: the terminal status is written after (or with) the run's last events,
    # so events read after a terminal status are all there will ever be.
    status = run_status(session, run_id)
    return status, event_texts(session, run_id, after, limit=PAGE)


class _Feed:
    """One run's poller and its followers' queues."""

    def __init__(self, feeds: RunFeeds, run_id: str, after: int) -> None:
        self._feeds = feeds
        self.run_id = run_id
        # The last seq handed to the queues: a follower that joins now gets everything after
        # it from its queue, and reads what it lacks up to it from the store itself.
        self.last_seq = after
        self.queues: set[asyncio.Queue[_Batch]] = set()
        self.task: asyncio.Task[None] | None = None

    def join(self) -> asyncio.Queue[_Batch]:
        queue: asyncio.Queue[_Batch] = asyncio.Queue()
        self.queues.add(queue)
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self._poll_until_done())
        return queue

    def leave(self, queue: asyncio.Queue[_Batch]) -> None:
        self.queues.discard(queue)
        if not self.queues:
            self._feeds._drop(self)
            if self.task is not None:
                self.task.cancel()

    def _publish(self, batch: _Batch) -> None:
        for queue in self.queues:
            queue.put_nowait(batch)

    async def _poll_until_done(self) -> None:
        try:
            failures = 0
            while True:
                try:
                    status, rows = await read(
                        self._feeds.sessions, _poll, self.run_id, self.last_seq
                    )
                except Exception:  # logged: a store hiccup must not end every stream
                    failures += 1
                    log.warning("reading the events of run %s failed", self.run_id, exc_info=True)
                    await asyncio.sleep(self._feeds.poll_seconds * min(failures, MAX_BACKOFF_POLLS))
                    continue
                failures = 0
                # From here to the publish nothing awaits: a follower joins either before this
                # batch reaches the queues or after last_seq covers it, never in between.
                if status is None:
                    self._publish(_Batch(LineBatch(()), gone=True))
                    return
                if rows:
                    self.last_seq = rows[-1][0]
                full = len(rows) == PAGE
                ended = status if is_terminal(status) and not full else None
                lines = LineBatch(tuple(_lines(rows)))
                if lines.lines or ended is not None:
                    self._publish(_Batch(lines, ended))
                if ended is not None:
                    return
                if not full:
                    await asyncio.sleep(self._feeds.poll_seconds)
        finally:
            # Before any await: a follower arriving later starts a fresh feed.
            self._feeds._drop(self)


class RunFeeds:
    """Every feed of one API process; `follow` is the service dialects call."""

    def __init__(
        self, sessions: sessionmaker[Session], *, poll_seconds: float = POLL_SECONDS
    ) -> None:
        self.sessions = sessions
        self.poll_seconds = poll_seconds
        self._feeds: dict[str, _Feed] = {}

    def followed(self) -> dict[str, int]:
        """Runs followed now and how many follow each (what the pollers cost)."""
        return {run_id: len(feed.queues) for run_id, feed in self._feeds.items()}

    def _drop(self, feed: _Feed) -> None:
        if self._feeds.get(feed.run_id) is feed:
            del self._feeds[feed.run_id]

    async def follow_batches(
        self, run_id: str, after: int = 0
    ) -> AsyncGenerator[LineBatch | RunEnded, None]:
        """The run's output lines after event seq `after`, in the batches they were stored or
        paged in: the stored ones, then each new batch as it is stored, then `RunEnded` once
        the run is over and every line was yielded.

        Each line comes once, in order (seqs increase); no batch is empty. Ends without
        `RunEnded` if the run's row disappears. The caller checks that the run exists and who
        may read it. A batch is one write to a client, not one per line, and followers that
        are level share each batch object: what a dialect renders of it is rendered once.
        """
        feed = self._feeds.get(run_id)
        if feed is None:
            feed = self._feeds[run_id] = _Feed(self, run_id, after)
        queue = feed.join()
        joined_at = feed.last_seq
        sent = after
        try:
            # What the feed had handed out before this follower joined: read here, in pages.
            while sent < joined_at:
                rows = await read(
                    self.sessions, event_texts, run_id, sent, limit=PAGE, upto=joined_at
                )
                if not rows:
                    break
                if lines := _lines(rows):
                    yield LineBatch(tuple(lines))
                sent = rows[-1][0]
            sent = max(sent, joined_at)
            while True:
                batch = await queue.get()
                fresh = batch.lines
                if fresh.lines and fresh.lines[0].seq <= sent:  # a follower that resumed ahead
                    fresh = LineBatch(tuple(line for line in fresh if line.seq > sent))
                if fresh.lines:
                    yield fresh
                    sent = fresh.lines[-1].seq
                if batch.ended is not None:
                    yield RunEnded(batch.ended)
                    return
                if batch.gone:
                    return
        finally:
            feed.leave(queue)

    async def follow(self, run_id: str, after: int = 0) -> AsyncGenerator[LogLine | RunEnded, None]:
        """`follow_batches`, one line at a time."""
        batches = self.follow_batches(run_id, after)
        try:
            async for item in batches:
                if isinstance(item, RunEnded):
                    yield item
                else:
                    for line in item:
                        yield line
        finally:
            await batches.aclose()
