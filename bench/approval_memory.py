"""Approval memory: a worker process's RSS with K runs waiting for approval, against idle.

A `runwright worker` process of its own (SQLite, the bench's dev server) and the API in this
process. The playbook needs someone@example.com's approval; the admin who starts the runs is
not an approver, so every run waits in `pending`. RSS (VmRSS) and peak RSS (VmHWM) come from
/proc/<pid>/status: idle, after a few warm-up runs, while the K runs arrive, once all wait.
A run counts as waiting once its workflow recorded "waiting for approval" (the run row says
pending from the POST on, before the worker has seen it).

    python bench/approval_memory.py [--quick] [--runs K]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import func, select

from bench.common import (
    BIN,
    Engine,
    Ratio,
    Report,
    bearer,
    report_alone,
    table,
)
from core.settings import Settings
from core.store.models import RunEvent
from tests.stack import ADMIN, Stack, basic, make_settings, stack_for
from workflows.contracts import STATE_QUERY

PLAYBOOK_ID = str(uuid.uuid4())
WAITING_EVENT = "waiting for approval"
WARMUP = 10
# Below the API's database pool (5 + 10 connections): more POSTs in flight than that can stall
# the event loop on a pool checkout for 30 s and fail (see README).
CONCURRENCY = 8
CHECKPOINTS = 5
POLL_SECONDS = 0.25
SETTLE_SECONDS = 2.0
TIMEOUT_SECONDS = 300.0
# Temporal's Worker(max_cached_workflows=...) default, which runwright keeps.
STICKY_CACHE = 1000

PLAYBOOK = f"""
apiVersion: mission-control.flanksource.com/v1
kind: Playbook
id: {PLAYBOOK_ID}
metadata: {{name: bench-approval}}
spec:
  description: waits for an approver who never comes
  approval:
    type: any
    approvers: {{people: [someone@example.com]}}
  actions:
    - name: echo
      exec: {{script: "echo approved"}}
"""


@dataclass
class Sample:
    phase: str
    waiting: int
    rss_mb: float
    hwm_mb: float


def memory_mb(pid: int) -> tuple[float, float]:
    """VmRSS and VmHWM of `pid`, in MB."""
    fields: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0]) / 1024  # kB
    return fields["VmRSS"], fields["VmHWM"]


def waiting_runs(stack: Stack) -> int:
    """Runs whose workflow has recorded that it waits for approval."""
    with stack.sessions() as session:
        count = session.scalar(
            select(func.count(func.distinct(RunEvent.run_id))).where(
                RunEvent.event_type == "run_status", RunEvent.message == WAITING_EVENT
            )
        )
    return int(count or 0)


def worker_env(settings: Settings, engine: Engine) -> dict[str, str]:
    return {
        **os.environ,
        "RUNWRIGHT_TEMPORAL_ADDRESS": engine.address,
        "RUNWRIGHT_DATABASE_URL": settings.database_url,
        "RUNWRIGHT_SECRET_KEY": engine.key,
        "RUNWRIGHT_TASK_QUEUE": settings.task_queue,
        "RUNWRIGHT_ARTIFACT_STORE": settings.artifact_store,
        "RUNWRIGHT_DEV_MODE": "true",
        "RUNWRIGHT_HOME": str(settings.home),
    }


def start_worker(settings: Settings, engine: Engine, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [str(BIN / "runwright"), "worker"],
            env=worker_env(settings, engine),
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=settings.home,
        )


def stop_worker(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM (the worker drains), SIGKILL if it has not exited after 20 s."""
    if proc.poll() is not None:
        return
    os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()


async def wait_polling(proc: subprocess.Popen[bytes], log: Path) -> None:
    """Until the worker logged that it polls its task queues."""
    deadline = time.monotonic() + 60
    while b"worker polling" not in log.read_bytes():
        if proc.poll() is not None:
            raise RuntimeError(f"the worker exited ({proc.returncode}):\n{log.read_text()}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the worker did not start polling:\n{log.read_text()}")
        await asyncio.sleep(0.1)


async def start_runs(stack: Stack, auth: dict[str, str], count: int) -> list[str]:
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one() -> str:
        async with gate:
            response = await stack.api.post("/playbook/run", json={"id": PLAYBOOK_ID}, headers=auth)
            response.raise_for_status()
            body = response.json()
            run_id: str = body["run_id"]
            return run_id

    return await asyncio.gather(*(one() for _ in range(count)))


async def wait_waiting(
    stack: Stack,
    proc: subprocess.Popen[bytes],
    total: int,
    on_progress: list[int],
    samples: list[Sample],
    starting: asyncio.Task[list[str]] | None = None,
) -> None:
    """Until `total` runs wait; a sample each time the count passes a mark in `on_progress`.

    Stops early with the error if `starting` (the task POSTing the runs) failed.
    """
    marks = list(on_progress)
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while True:
        waiting = await asyncio.to_thread(waiting_runs, stack)
        while marks and waiting >= marks[0]:
            rss, hwm = memory_mb(proc.pid)
            samples.append(Sample("arriving", waiting, rss, hwm))
            marks.pop(0)
        if waiting >= total:
            return
        if proc.poll() is not None:
            raise RuntimeError(f"the worker exited ({proc.returncode})")
        if starting is not None and starting.done() and starting.exception() is not None:
            raise RuntimeError("starting the runs failed") from starting.exception()
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {waiting} of {total} runs waiting after {TIMEOUT_SECONDS}s")
        await asyncio.sleep(POLL_SECONDS)


async def settled(proc: subprocess.Popen[bytes], phase: str, waiting: int) -> Sample:
    await asyncio.sleep(SETTLE_SECONDS)
    rss, hwm = memory_mb(proc.pid)
    return Sample(phase, waiting, rss, hwm)


async def query_ms(stack: Stack, run_id: str) -> float:
    """Milliseconds for one state query of a waiting run (replayed if not in the cache)."""
    handle = stack.temporal.get_workflow_handle(run_id)
    start = time.monotonic()
    await handle.query(STATE_QUERY)
    return (time.monotonic() - start) * 1000


async def measure_runs(engine: Engine, runs: int) -> Report:
    samples: list[Sample] = []
    with tempfile.TemporaryDirectory(prefix="bench-approval-") as tmpdir:
        settings = make_settings(Path(tmpdir) / "home", secret_key=engine.key)
        async with stack_for(settings, engine.client, worker=False) as stack:
            await stack.apply(PLAYBOOK)
            auth = await bearer(stack.api, basic(*ADMIN))
            log = Path(tmpdir) / "worker.log"
            proc = start_worker(settings, engine, log)
            try:
                await wait_polling(proc, log)
                samples.append(await settled(proc, "idle (polling)", 0))
                warm = await start_runs(stack, auth, WARMUP)
                await wait_waiting(stack, proc, WARMUP, [], samples)
                samples.append(await settled(proc, "warm-up runs waiting", WARMUP))
                began = time.monotonic()
                starting = asyncio.create_task(start_runs(stack, auth, runs))
                marks = [WARMUP + runs * i // CHECKPOINTS for i in range(1, CHECKPOINTS)]
                try:
                    await wait_waiting(stack, proc, WARMUP + runs, marks, samples, starting)
                except BaseException:
                    starting.cancel()
                    raise
                arrival = time.monotonic() - began
                ids = await starting
                samples.append(await settled(proc, "all waiting", WARMUP + runs))
                oldest = [await query_ms(stack, r) for r in warm[:5]]
                newest = [await query_ms(stack, r) for r in ids[-5:]]
                problems = [
                    line
                    for line in log.read_text().splitlines()
                    if " ERROR " in line or " WARNING " in line or line.startswith("Traceback")
                ]
            finally:
                stop_worker(proc)
    idle, warmed, final = samples[0], samples[1], samples[-1]
    per_1000 = (final.rss_mb - warmed.rss_mb) / runs * 1000
    rows = [[s.phase, str(s.waiting), f"{s.rss_mb:.0f}", f"{s.hwm_mb:.0f}"] for s in samples]
    notes = [
        f"K={runs} runs reached pending in {arrival:.1f} s ({runs / arrival:.0f} runs/s).",
        f"growth: {final.rss_mb - warmed.rss_mb:.0f} MB for {runs} waiting runs "
        f"= {per_1000:.0f} MB per 1000 (idle -> warm-up: {warmed.rss_mb - idle.rss_mb:.0f} MB, "
        "the first workflows' one-off cost).",
        f"sticky cache: max_cached_workflows={STICKY_CACHE}; "
        + (
            f"at most {STICKY_CACHE} of the {WARMUP + runs} waiting workflows stay cached, "
            "the least recently used are evicted (an evicted run costs only its history on "
            "the server; the next signal, update or query replays it)."
            if WARMUP + runs > STICKY_CACHE
            else f"all {WARMUP + runs} waiting workflows fit in the cache."
        ),
        f"state query, 5 oldest waiting runs: median {statistics.median(oldest):.0f} ms; "
        f"5 newest: median {statistics.median(newest):.0f} ms"
        + (
            " (the oldest are past the cache size: evicted, replayed from history to answer)."
            if WARMUP + runs > STICKY_CACHE
            else " (all within the cache size)."
        ),
    ]
    if problems:
        notes.append(f"worker log: {len(problems)} warnings/errors, first:\n{problems[0]}")
    return Report(
        title=f"approval memory: K={runs} runs waiting for approval in a worker process",
        sections=[table(["phase", "waiting runs", "VmRSS MB", "VmHWM MB"], rows), *notes],
        headlines=[
            f"approval memory: {per_1000:.0f} MB per 1000 waiting runs "
            f"(worker idle {idle.rss_mb:.0f} MB, {final.rss_mb:.0f} MB with "
            f"{WARMUP + runs} waiting)"
        ],
        ratios=[
            Ratio(
                "waiting memory",
                f"{final.rss_mb:.0f} MB",
                f"{idle.rss_mb:.0f} MB",
                final.rss_mb / idle.rss_mb,
                f"worker RSS with {WARMUP + runs} runs waiting / the same worker idle",
            ),
            Ratio(
                "peak memory",
                f"{final.hwm_mb:.0f} MB",
                f"{idle.hwm_mb:.0f} MB",
                final.hwm_mb / idle.hwm_mb,
                "worker peak RSS (VmHWM) at the end / idle",
            ),
        ],
    )


async def measure(engine: Engine, quick: bool) -> Report:
    return await measure_runs(engine, 200 if quick else 1000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="K=200 instead of 1000")
    parser.add_argument("--runs", type=int, help="K: how many runs wait (overrides --quick)")
    args = parser.parse_args()
    runs: int = args.runs or (200 if args.quick else 1000)

    async def go(engine: Engine, _quick: bool) -> Report:
        return await measure_runs(engine, runs)

    report_alone(go, args.quick)


if __name__ == "__main__":
    main()
