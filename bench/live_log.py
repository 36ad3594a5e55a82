"""Live log: how soon a printed line reaches an SSE client, and what a hundred clients streaming
one chatty run cost that run.

Latency: an automation run of one `exec` action prints N lines, one every 0.1 s, each carrying
the epoch time `date` gave as it was printed; one SSE client (httpx-sse), connected to
`GET /api/automations/runs/{id}/stream` from the start, notes when each line arrives.
Baseline: the same script run by bare `bash`, its stdout read line by line from a pipe, as a
terminal shows it. N is 100 (30 with `--quick`).

Fan-out: one run printing M=20000 lines as fast as bash echoes them, timed by the script
itself, with K=100 SSE clients streaming it against the same run with none, alternating (2
of each, 1 with `--quick`). The clients live in a process of their own, connected before the
script starts printing; each must get every line and `done`. The worker is a `runwright
worker` process (its output cap raised so all M lines are stored); the API is served by
uvicorn in the bench's process, as `runwright api` serves it.

    python bench/live_log.py [--quick]
    python bench/live_log.py --clients K --url URL --token T   (the clients' process)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
from httpx_sse import aconnect_sse
from sqlalchemy import event, select

from api.app import create_app
from bench.approval_memory import stop_worker, wait_polling, worker_env
from bench.common import BIN, Engine, Ratio, Report, median, p95, report_alone, table
from core.settings import Settings
from core.store.models import Run, RunEvent
from tests.http_server import serving
from tests.live_log import LiveStack
from tests.stack import make_settings, stack_for

LINES = 100
QUICK_LINES = 30
PAUSE = 0.1
CHATTY_LINES = 20_000
CLIENTS = 100
ROUNDS = 2
QUICK_ROUNDS = 1
# The chatty script waits for this file in its working directory (the worker's, which the
# bench shares) before printing: the bench makes it once the clients are connected (at most
# 60 s).
GO = "go"
MAX_EVENTS = 50_000
MAX_OUTPUT_BYTES = 16 * 1024 * 1024
TICKS = 'for i in $(seq 1 {n}); do echo "tick $i $(date +%s.%N)"; sleep {pause}; done'
CHATTY = (
    "n=0; while [ ! -e " + GO + " ] && [ $n -lt 1200 ]; do sleep 0.05; n=$((n+1)); done; "
    's=$(date +%s.%N); for i in $(seq 1 {m}); do echo "line $i"; done; '
    'e=$(date +%s.%N); echo "elapsed $s $e"'
)
CLIENT_TIMEOUT = httpx.Timeout(30.0, read=None)
CLIENTS_NICENESS = 10


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f}"


def load_average() -> str:
    return Path("/proc/loadavg").read_text().split()[0]


def tick_delays(lines: list[tuple[str, float]]) -> list[float]:
    """Arrival minus printing time of each `tick i <epoch>` line."""
    delays = []
    for text, arrived in lines:
        parts = text.split()
        if len(parts) == 3 and parts[0] == "tick":
            delays.append(arrived - float(parts[2]))
    return delays


# ---- the clients ----------------------------------------------------------------------------


async def stream(
    client: httpx.AsyncClient, url: str, token: str, on_open: Any = None
) -> tuple[list[tuple[str, float]], str | None]:
    """Every line of the stream with its arrival time, and the status `done` reported."""
    lines: list[tuple[str, float]] = []
    headers = {"Authorization": f"Bearer {token}"}
    async with aconnect_sse(client, "GET", url, headers=headers) as source:
        if source.response.status_code != 200:
            raise RuntimeError(f"stream answered {source.response.status_code}")
        if on_open is not None:
            on_open()
        async for sse in source.aiter_sse():
            if sse.event == "done":
                return lines, json.loads(sse.data)["status"]
            lines.append((sse.data, time.time()))
    return lines, None


async def count_events(client: httpx.AsyncClient, url: str, token: str, on_open: Any) -> int:
    """How many events with an id the stream sent before `event: done`; -1 without done.

    Counts on the raw bytes: a full SSE parser per client would make the clients' own CPU the
    figure on a small machine (100 clients x 20000 events), and a browser does not share it.
    """
    events = 0
    tail = b"\n"  # the stream's first event starts a line too
    headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
    async with client.stream("GET", url, headers=headers) as response:
        if response.status_code != 200:
            raise RuntimeError(f"stream answered {response.status_code}")
        on_open()
        async for chunk in response.aiter_bytes():
            # The tail is shorter than either pattern, so nothing is counted twice.
            seen = tail + chunk
            events += seen.count(b"\nid: ")
            if b"\nevent: done" in seen:
                return events
            tail = seen[-4:]
    return -1


async def clients_main(count: int, url: str, token: str) -> None:
    """K clients on one stream; prints `ready` once all are connected, then a JSON summary."""
    opened = 0

    def on_open() -> None:
        nonlocal opened
        opened += 1
        if opened == count:
            print("ready", flush=True)

    limits = httpx.Limits(max_connections=count + 10, max_keepalive_connections=count + 10)
    async with httpx.AsyncClient(timeout=CLIENT_TIMEOUT, limits=limits) as client:
        counts = await asyncio.gather(
            *(count_events(client, url, token, on_open) for _ in range(count))
        )
    print(json.dumps({"events": counts, "last": time.time()}), flush=True)


# ---- the engine -----------------------------------------------------------------------------


def start_worker(settings: Settings, engine: Engine, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **worker_env(settings, engine),
        "RUNWRIGHT_RUN_MAX_EVENTS": str(MAX_EVENTS),
        "RUNWRIGHT_RUN_MAX_OUTPUT_BYTES": str(MAX_OUTPUT_BYTES),
    }
    with log.open("wb") as out:
        return subprocess.Popen(
            [str(BIN / "runwright"), "worker"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=settings.home,
        )


async def ended(live: LiveStack, run_id: str, timeout: float = 300.0) -> Run:
    row = await live.stack.wait_status(run_id, timeout=timeout)
    if row.status != "succeeded":
        raise RuntimeError(f"run {run_id} ended {row.status}")
    return row


@dataclass
class Chatty:
    clients: int
    printing: float  # the script's own time from its first line to its last
    run: float  # the run's start to end as recorded
    tail: float  # the run's end to the last client's `done` (0 without clients)
    reads: int  # queries of run_events by the API while the run ran
    ready_late: bool  # the clients were not all connected when printing began
    worker_cpu: float  # CPU seconds of the worker process during the run
    api_cpu: float  # CPU seconds of this process (the API) from launch to the last `done`
    clients_cpu: float  # CPU seconds of the clients' process


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a running process, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def elapsed_of(lines: list[str]) -> tuple[float, float]:
    for text in lines:
        parts = text.split()
        if len(parts) == 3 and parts[0] == "elapsed":
            return float(parts[1]), float(parts[2])
    raise RuntimeError("the chatty script printed no elapsed line")


def elapsed_lines(live: LiveStack, run_id: str) -> list[str]:
    with live.stack.sessions() as session:
        return list(
            session.scalars(
                select(RunEvent.message).where(
                    RunEvent.run_id == run_id,
                    RunEvent.event_type == "stdout",
                    RunEvent.message.startswith("elapsed "),
                )
            )
        )


async def chatty_run(live: LiveStack, clients: int, worker_pid: int) -> Chatty:
    engine = live.services.sessions.kw["bind"]
    reads = 0

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        nonlocal reads
        if "FROM run_events" in statement:
            reads += 1

    script = CHATTY.format(m=CHATTY_LINES)
    event.listen(engine, "before_cursor_execute", count)
    proc = None
    ready_at = 0.0
    cpu = (cpu_seconds(worker_pid), time.process_time(), children_cpu())
    try:
        run_id, public = await live.run_script(script)
        if clients:
            # At a lower priority: real clients are browsers on other machines, and on a small
            # machine their parsing would otherwise take CPU from the run they watch.
            proc = await asyncio.create_subprocess_exec(
                "nice",
                "-n",
                str(CLIENTS_NICENESS),
                sys.executable,
                str(Path(__file__).resolve()),
                "--clients",
                str(clients),
                "--url",
                live.stream_url(public),
                "--token",
                live.token(),
                stdout=asyncio.subprocess.PIPE,
            )
            assert proc.stdout is not None
            first = await asyncio.wait_for(proc.stdout.readline(), 60)
            if first.strip() != b"ready":
                raise RuntimeError(f"the clients said {first!r}")
            ready_at = time.time()
        # The action's working directory (ActionActivities: <workspace>/runs/<id>/work-<i>).
        workdir = live.stack.settings.workspace / "runs" / run_id / "work-0"
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / GO).touch()
        row = await ended(live, run_id)
        summary: dict[str, Any] = {}
        if proc is not None:
            assert proc.stdout is not None
            out = await asyncio.wait_for(proc.stdout.read(), 300)
            await proc.wait()
            summary = json.loads(out.decode().strip().splitlines()[-1])
            # Every line printed and the elapsed line, besides the engine's own lines.
            short = [n for n in summary["events"] if n < CHATTY_LINES + 1]
            if short:
                raise RuntimeError(f"clients missed lines or done: {sorted(set(short))}")
        spent = (cpu_seconds(worker_pid), time.process_time(), children_cpu())
    finally:
        event.remove(engine, "before_cursor_execute", count)
        if proc is not None and proc.returncode is None:
            proc.kill()
            await proc.wait()
    start, end = elapsed_of(elapsed_lines(live, run_id))
    assert row.start_time is not None and row.end_time is not None
    return Chatty(
        clients=clients,
        printing=end - start,
        run=(row.end_time - row.start_time).total_seconds(),
        tail=max(0.0, summary.get("last", 0.0) - row.end_time.timestamp()) if clients else 0.0,
        reads=reads,
        ready_late=bool(clients) and ready_at > start,
        worker_cpu=spent[0] - cpu[0],
        api_cpu=spent[1] - cpu[1],
        clients_cpu=spent[2] - cpu[2],
    )


# ---- latency --------------------------------------------------------------------------------


async def sse_delays(live: LiveStack, lines: int) -> list[float]:
    _, public = await live.run_script(TICKS.format(n=lines, pause=PAUSE))
    async with httpx.AsyncClient(timeout=CLIENT_TIMEOUT) as client:
        got, status = await stream(client, live.stream_url(public), live.token())
    if status != "done":
        raise RuntimeError(f"the latency run ended {status}")
    return tick_delays(got)


async def pipe_delays(lines: int) -> list[float]:
    proc = await asyncio.create_subprocess_exec(
        "bash", "-c", TICKS.format(n=lines, pause=PAUSE), stdout=asyncio.subprocess.PIPE
    )
    assert proc.stdout is not None
    got = []
    while raw := await proc.stdout.readline():
        got.append((raw.decode().rstrip("\n"), time.time()))
    await proc.wait()
    return tick_delays(got)


# ---- the measurement ------------------------------------------------------------------------


async def measure(engine: Engine, quick: bool) -> Report:
    lines = QUICK_LINES if quick else LINES
    rounds = QUICK_ROUNDS if quick else ROUNDS
    loads = [load_average()]
    with tempfile.TemporaryDirectory(prefix="bench-live-log-") as tmpdir:
        settings = make_settings(Path(tmpdir) / "home", secret_key=engine.key)
        async with stack_for(settings, engine.client, worker=False) as stack:
            log = Path(tmpdir) / "worker.log"
            worker = start_worker(settings, engine, log)
            try:
                await wait_polling(worker, log)
                app = create_app(settings, temporal_client=engine.client)
                async with serving(app) as url:
                    live = LiveStack(stack, url, app.state.services)
                    warm_id, _ = await live.run_script("echo warm")
                    await ended(live, warm_id)
                    bare = await pipe_delays(lines)
                    sse = await sse_delays(live, lines)
                    loads.append(load_average())
                    chatty: list[Chatty] = []
                    for _ in range(rounds):
                        chatty.append(await chatty_run(live, 0, worker.pid))
                        chatty.append(await chatty_run(live, CLIENTS, worker.pid))
                    loads.append(load_average())
            finally:
                stop_worker(worker)
    alone = [c for c in chatty if not c.clients]
    watched = [c for c in chatty if c.clients]
    alone_s = statistics.median(c.printing for c in alone)
    watched_s = statistics.median(c.printing for c in watched)
    latency = table(
        ["printed line to arrival", "p50 ms", "p95 ms", "min ms", "max ms", "lines"],
        [
            [
                label,
                ms(median(d)),
                ms(p95(d)),
                ms(min(d)),
                ms(max(d)),
                str(len(d)),
            ]
            for label, d in (("runwright: SSE client", sse), ("bare: bash stdout pipe", bare))
        ],
    )
    fan_out = table(
        [
            "chatty run",
            "clients",
            "printing s",
            "run s",
            "all done after end ms",
            "DB reads",
            "CPU s worker / API / clients",
        ],
        [
            [
                f"round {i // 2 + 1}" + (" (clients late)" if c.ready_late else ""),
                str(c.clients),
                f"{c.printing:.2f}",
                f"{c.run:.2f}",
                ms(c.tail) if c.clients else "-",
                str(c.reads),
                f"{c.worker_cpu:.1f} / {c.api_cpu:.1f} / {c.clients_cpu:.1f}",
            ]
            for i, c in enumerate(chatty)
        ],
    )
    notes = (
        f"latency: {lines} lines, one every {PAUSE} s, after one untimed run; the event log "
        "stores a quiet run's lines within 0.5 s and the API polls every 0.2 s\n"
        f"chatty: {CHATTY_LINES} lines; 'printing' is the script's own time from its first "
        "echo to its last (bash blocks when the worker reads slower); every client got every "
        "line and done; DB reads are the API's queries of run_events while the run ran "
        "(one poller per run, plus each client's catch-up)\n"
        f"1-minute load average: {loads[0]} before, {loads[1]} after the latency runs, "
        f"{loads[2]} after the chatty runs"
    )
    return Report(
        title=f"live log: line latency (N={lines}) and {CLIENTS} clients on a chatty run",
        sections=[latency, fan_out, notes],
        headlines=[
            f"live log: a printed line reaches an SSE client in p50 {ms(median(sse))} ms, "
            f"p95 {ms(p95(sse))} ms; a {CHATTY_LINES}-line run printed in {watched_s:.2f} s "
            f"with {CLIENTS} clients streaming it, {alone_s:.2f} s with none"
        ],
        ratios=[
            Ratio(
                "live log p50",
                f"{ms(median(sse))} ms",
                f"{ms(median(bare))} ms",
                median(sse) / median(bare),
                "printed line to SSE client / to a bash pipe reader",
            ),
            Ratio(
                "live log p95",
                f"{ms(p95(sse))} ms",
                f"{ms(p95(bare))} ms",
                p95(sse) / p95(bare),
                "same, p95",
            ),
            Ratio(
                "chatty run, 100 clients",
                f"{watched_s:.2f} s",
                f"{alone_s:.2f} s",
                watched_s / alone_s,
                f"{CHATTY_LINES}-line run with {CLIENTS} SSE clients / with none",
            ),
        ],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer lines and rounds")
    parser.add_argument("--clients", type=int, help="be the clients' process: K clients")
    parser.add_argument("--url", help="the stream to follow (with --clients)")
    parser.add_argument("--token", help="a bearer token (with --clients)")
    args = parser.parse_args()
    if args.clients:
        asyncio.run(clients_main(args.clients, args.url, args.token))
        return
    report_alone(measure, args.quick)


if __name__ == "__main__":
    main()
