"""The run-feed service on both databases: followers joining early, late and resuming all get
each line once and in order; the end comes after the last line; one poller per run."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from api.run_stream import PAGE, LineBatch, LogLine, RunEnded, RunFeeds, line_of
from core.events import EventRecord
from core.statuses import RunStatus
from core.store.migrate import upgrade
from core.store.models import Definition, Run
from core.store.runs import append_events, update_run
from core.store.session import make_engine, make_session_factory, transaction

POLL = 0.02


@pytest.fixture(params=["sqlite", "postgres"])
def sessions(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    url = (
        f"sqlite:///{tmp_path / 'runwright.db'}"
        if request.param == "sqlite"
        else request.getfixturevalue("pg_database")
    )
    upgrade(url)
    engine = make_engine(url)
    yield make_session_factory(engine)
    engine.dispose()


def new_run(sessions: sessionmaker[Session]) -> str:
    with transaction(sessions) as session:
        definition = Definition(dialect="automations", name="d", spec={})
        session.add(definition)
        session.flush()
        run = Run(definition_id=definition.id, dialect="automations", status="running")
        session.add(run)
        session.flush()
        return run.id


def write(sessions: sessionmaker[Session], run_id: str, *events: EventRecord) -> None:
    with transaction(sessions) as session:
        append_events(session, run_id, list(events))


def out(*texts: str) -> list[EventRecord]:
    return [EventRecord("stdout", t) for t in texts]


def finish(sessions: sessionmaker[Session], run_id: str, status: RunStatus) -> None:
    # As the workflow's record does: the status and its event in one transaction.
    with transaction(sessions) as session:
        update_run(session, run_id, status=status)
        append_events(session, run_id, [EventRecord("run_status", f"run {status}")])


async def collect(feed: AsyncIterator[LogLine | RunEnded]) -> list[LogLine | RunEnded]:
    return [item async for item in feed]


async def until(condition: object, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():  # type: ignore[operator]
            await asyncio.sleep(0.01)


@pytest.mark.parametrize(
    ("event_type", "message", "line"),
    [
        ("stdout", "hello", "hello"),
        ("stderr", "oops", "oops"),
        ("output", "from a runbook", "from a runbook"),
        ("stdout", "", ""),  # a blank line the program printed is a line
        ("run_status", "run succeeded", "run succeeded"),
        ("action_started", "action 'x' (exec)", "action 'x' (exec)"),
        ("runner_on_ok", "\r\nok: [web1]\r\n", "ok: [web1]"),
        ("playbook_on_start", "", None),  # bookkeeping without text
        ("verbose", "\r\n", None),
    ],
)
def test_which_events_are_lines(event_type: str, message: str, line: str | None) -> None:
    assert line_of(event_type, message) == line


async def test_followers_early_late_and_resuming_get_each_line_once(
    sessions: sessionmaker[Session],
) -> None:
    """One follower from the start, one joining midway (replays what it missed from the store),
    one resuming after seq 2: each gets its lines once, in order, then the end."""
    feeds = RunFeeds(sessions, poll_seconds=POLL)
    run_id = new_run(sessions)
    write(sessions, run_id, *out("a", "b", "c"))
    early = asyncio.create_task(collect(feeds.follow(run_id)))
    await until(lambda: feeds.followed() == {run_id: 1})
    write(sessions, run_id, *out("d", "e"))
    await asyncio.sleep(POLL * 5)
    late = asyncio.create_task(collect(feeds.follow(run_id)))
    resumed = asyncio.create_task(collect(feeds.follow(run_id, after=2)))
    await until(lambda: feeds.followed() == {run_id: 3})
    write(sessions, run_id, *out("f"), EventRecord("playbook_on_start", ""))
    finish(sessions, run_id, RunStatus.SUCCEEDED)
    whole = [LogLine(i, t) for i, t in enumerate("abcdef", start=1)]
    whole.append(LogLine(8, "run succeeded"))
    ended = RunEnded(RunStatus.SUCCEEDED)
    async with asyncio.timeout(5):
        assert await early == [*whole, ended]
        assert await late == [*whole, ended]
        assert await resumed == [*whole[2:], ended]
    assert feeds.followed() == {}


async def test_a_finished_run_replays_in_pages_then_ends(sessions: sessionmaker[Session]) -> None:
    """More than a page of stored events: all of them, in order, then the end, whether the
    follower is the feed's first or joins one that is already paging."""
    feeds = RunFeeds(sessions, poll_seconds=POLL)
    run_id = new_run(sessions)
    total = PAGE * 2 + 7
    write(sessions, run_id, *out(*(str(n) for n in range(1, total + 1))))
    finish(sessions, run_id, RunStatus.FAILED)
    first, second = await asyncio.gather(
        collect(feeds.follow(run_id)), collect(feeds.follow(run_id, after=PAGE - 3))
    )
    numbers = [str(n) for n in range(1, total + 1)]
    assert [x.text for x in first if isinstance(x, LogLine)] == [*numbers, "run failed"]
    assert [x.text for x in second if isinstance(x, LogLine)] == [
        *numbers[PAGE - 3 :],
        "run failed",
    ]
    assert first[-1] == second[-1] == RunEnded(RunStatus.FAILED)


async def test_one_poller_whatever_the_followers_and_none_once_they_leave(
    sessions: sessionmaker[Session],
) -> None:
    """Five followers of one run share one feed; when the last one leaves, the feed and its
    polling stop, though the run goes on."""
    feeds = RunFeeds(sessions, poll_seconds=POLL)
    run_id = new_run(sessions)
    write(sessions, run_id, *out("x"))
    streams = [feeds.follow(run_id) for _ in range(5)]
    firsts = [await anext(s) for s in streams]
    assert firsts == [LogLine(1, "x")] * 5
    assert feeds.followed() == {run_id: 5}
    for stream in streams[:4]:
        await stream.aclose()
    assert feeds.followed() == {run_id: 1}
    await streams[4].aclose()
    assert feeds.followed() == {}


async def test_a_vanished_run_ends_the_stream_without_an_end(
    sessions: sessionmaker[Session],
) -> None:
    """A run whose row is deleted while followed: the stream stops, with no status to report."""
    feeds = RunFeeds(sessions, poll_seconds=POLL)
    run_id = new_run(sessions)
    write(sessions, run_id, *out("x"))
    following = asyncio.create_task(collect(feeds.follow(run_id)))
    await until(lambda: feeds.followed() == {run_id: 1})
    with transaction(sessions) as session:
        run = session.get(Run, run_id)
        assert run is not None
        session.delete(run)
    async with asyncio.timeout(5):
        assert await following == [LogLine(1, "x")]


async def test_level_followers_share_each_batch_so_it_renders_once(
    sessions: sessionmaker[Session],
) -> None:
    """Followers that are level get the same batch object: what it renders to is computed once
    for all of them."""
    feeds = RunFeeds(sessions, poll_seconds=POLL)
    run_id = new_run(sessions)
    streams = [feeds.follow_batches(run_id) for _ in range(3)]
    waiting = [asyncio.create_task(anext(s)) for s in streams]
    await until(lambda: feeds.followed() == {run_id: 3})
    write(sessions, run_id, *out("a", "b"))
    async with asyncio.timeout(5):
        batches = await asyncio.gather(*waiting)
    assert all(b is batches[0] for b in batches)
    renders: list[int] = []

    def render(lines: Sequence[LogLine]) -> bytes:
        renders.append(len(lines))
        return "".join(line.text for line in lines).encode()

    first = batches[0]
    assert isinstance(first, LineBatch)
    assert [first.rendered(render) for _ in batches] == [b"ab"] * 3
    assert renders == [2]
    for stream in streams:
        await stream.aclose()
