"""Runner executions: many executions of a small job started at once through the Runner API.

Runwright: one job (a 2-task playbook on `localhost`, `ansible_connection: local`, from a git
repository served over file://), N executions started with `POST /jobs/{alias}/{id}/start`
all at once (at most HTTP_IN_FLIGHT requests in flight) against the one in-process worker. The
account runs at most four at a time (the engine's per-account slots); the rest wait PENDING.
Per execution: its start request's time to its end timer in the database (`timers[-1].end`).
Baseline: the same playbook run N times by bare `ansible_runner.run`, all N submitted at once
to a pool of four threads (the same concurrency); per run: submission to return.

    python bench/runner_executions.py [--quick] [--executions N]

N is 200 (40 with `--quick`): about 6 minutes on 2 quiet CPUs, 7.5 with other work running.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import ansible_runner
from sqlalchemy import func, select

from api.runner.executions import CONCURRENCY_LIMIT
from bench.common import (
    BIN,
    Engine,
    Ratio,
    Report,
    median,
    p95,
    report_alone,
    table,
)
from core.statuses import TERMINAL_RUN_STATUSES, RunStatus
from core.store.accounts import add_account_user, ensure_account
from core.store.models import Run
from core.store.session import transaction
from tests.stack import Stack, make_repo, make_settings, stack_for
from workers.main import ACTIVITY_THREADS

EXECUTIONS = 200
QUICK_EXECUTIONS = 40
# Start requests in flight at once; the API's database work runs on threads (api/db.py), so
# this is a client-side courtesy, not a limit the API needs.
HTTP_IN_FLIGHT = 16
WARMUP = CONCURRENCY_LIMIT  # one untimed round on each side: module cache, checkout cache, slots
POLL_SECONDS = 0.25
TIMEOUT_SECONDS = 900.0
ALIAS = "BENCH"
USER = ("bench@bench.test", "bench password")

SITE = """\
- hosts: all
  gather_facts: false
  tasks:
    - name: greet
      debug:
        msg: "hello from {{ inventory_hostname }}"
    - name: host name
      command: uname -n
      changed_when: false
"""


@dataclass
class Outcome:
    """One side's executions: per run, request (or submission) to done, and time in a slot."""

    latencies: list[float]  # seconds, start request to SUCCESS
    in_slot: list[float]  # seconds the run itself took, once it had one of the four places
    wall: float  # first request to last SUCCESS
    peak: int  # most runs in progress at the same moment
    statuses: str

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.wall


def load_average() -> str:
    """The 1-minute load average: the bench itself counts, and so does other work."""
    return Path("/proc/loadavg").read_text().split()[0]


def peak_overlap(intervals: Sequence[tuple[float, float]]) -> int:
    """The most intervals open at one instant (an end before a start at the same time)."""
    points = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    peak = current = 0
    for _, step in points:
        current += step
        peak = max(peak, current)
    return peak


# ---- baseline: bare ansible-runner ---------------------------------------------------------


def bare_env(private_dir: Path) -> dict[str, str]:
    """What the engine adds to ansible's environment (activities/ansible.py), minus its plugin."""
    config = private_dir / "ansible.cfg"
    config.write_text("[defaults]\n")
    path = os.environ.get("PATH", os.defpath)
    return {
        "PATH": os.pathsep.join([str(BIN), path]),
        "ANSIBLE_CONFIG": str(config),
        "ANSIBLE_HOST_KEY_CHECKING": "False",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
        "ANSIBLE_LOCAL_TEMP": str(private_dir / "local-tmp"),
    }


def bare_run(project: Path, private_root: Path) -> tuple[float, float]:
    """One `ansible_runner.run` of site.yml on localhost; (start, end) as epoch seconds."""
    private_dir = Path(tempfile.mkdtemp(prefix="bare-", dir=private_root))
    try:
        inventory: dict[str, Any] = {
            "all": {
                "hosts": {
                    "localhost": {
                        "ansible_connection": "local",
                        "ansible_python_interpreter": "{{ ansible_playbook_python }}",
                        "ansible_remote_tmp": str(private_dir / "remote-tmp"),
                    }
                }
            }
        }
        start = time.time()
        runner = ansible_runner.run(
            private_data_dir=str(private_dir),
            project_dir=str(project),
            playbook="site.yml",
            inventory=inventory,
            envvars=bare_env(private_dir),
            settings={"pexpect_timeout": 0.2, "suppress_ansible_output": True},
            ident=uuid.uuid4().hex,
            quiet=True,
        )
        end = time.time()
        if runner.status != "successful":
            raise RuntimeError(f"bare ansible-runner run ended {runner.status} (rc {runner.rc})")
        return start, end
    finally:
        shutil.rmtree(private_dir, ignore_errors=True)


def bare_batch(project: Path, private_root: Path, runs: int) -> list[tuple[float, float]]:
    """`runs` runs submitted at once to CONCURRENCY_LIMIT threads; (start, end) of each."""
    with ThreadPoolExecutor(max_workers=CONCURRENCY_LIMIT) as pool:
        futures = [pool.submit(bare_run, project, private_root) for _ in range(runs)]
        return [f.result() for f in futures]


def bare_outcome(project: Path, private_root: Path, runs: int) -> Outcome:
    bare_batch(project, private_root, WARMUP)  # untimed: compiles ansible's modules once
    submitted = time.time()
    spans = bare_batch(project, private_root, runs)
    ends = [end for _, end in spans]
    return Outcome(
        latencies=[end - submitted for end in ends],
        in_slot=[end - start for start, end in spans],
        wall=max(ends) - submitted,
        peak=peak_overlap(spans),
        statuses=f"{runs} successful",
    )


# ---- runwright: the Runner API -------------------------------------------------------------


def add_operator(stack: Stack) -> None:
    """Account BENCH and an operator of it (what `runwright account/user add` write)."""
    with transaction(stack.sessions) as session:
        account = ensure_account(session, ALIAS, location_alias="BE1")
        add_account_user(session, account, USER[0], password=USER[1], role="operator")


async def login(stack: Stack) -> dict[str, str]:
    response = await stack.api.post(
        "/v2/authentication/login", json={"username": USER[0], "password": USER[1]}
    )
    response.raise_for_status()
    return {"Authorization": f"Bearer {response.json()['bearerToken']}"}


async def create_job(stack: Stack, auth: dict[str, str], url: str) -> str:
    body = {
        "name": "bench-small",
        "description": "two tasks on localhost",
        "repository": {"url": url, "branch": "main", "defaultPlaybook": "site.yml"},
        "hosts": [{"id": "localhost", "hostVars": {"ansible_connection": "local"}}],
    }
    response = await stack.api.post(f"/jobs/{ALIAS}", json=body, headers=auth)
    response.raise_for_status()
    job_id: str = response.json()["id"]
    return job_id


async def start_all(
    stack: Stack, auth: dict[str, str], job_id: str, count: int
) -> dict[str, float]:
    """`count` start requests at once, HTTP_IN_FLIGHT at a time; execution id -> request time."""
    gate = asyncio.Semaphore(HTTP_IN_FLIGHT)

    async def one() -> tuple[str, float]:
        async with gate:
            sent = time.time()
            response = await stack.api.post(f"/jobs/{ALIAS}/{job_id}/start", json={}, headers=auth)
        if response.status_code != 201:
            raise RuntimeError(f"start answered {response.status_code}: {response.text}")
        body = response.json()
        if body["status"] != "PENDING":
            raise RuntimeError(f"a new execution reads {body['status']}, not PENDING")
        return body["execution_id"], sent

    return dict(await asyncio.gather(*(one() for _ in range(count))))


def statuses_of(stack: Stack, job_id: str) -> Counter[str]:
    """The job's executions per status (one query, however many there are)."""
    with stack.sessions() as session:
        rows = session.execute(
            select(Run.status, func.count()).where(Run.definition_id == job_id).group_by(Run.status)
        ).all()
    return Counter({status: count for status, count in rows})


async def wait_all(stack: Stack, job_id: str, total: int) -> Counter[str]:
    """Poll the database until `total` executions of the job have ended."""
    terminal = {str(s) for s in TERMINAL_RUN_STATUSES}
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while True:
        counts = await asyncio.to_thread(statuses_of, stack, job_id)
        done = sum(n for status, n in counts.items() if status in terminal)
        if done >= total:
            return counts
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {done} of {total} executions ended: {dict(counts)}")
        await asyncio.sleep(POLL_SECONDS)


def timers_of(stack: Stack, ids: Sequence[str]) -> dict[str, tuple[str, dict[str, Any]]]:
    """Execution id -> (status, its last timer)."""
    with stack.sessions() as session:
        rows = session.execute(select(Run.id, Run.status, Run.timers).where(Run.id.in_(ids)))
        return {run_id: (status, (timers or [{}])[-1]) for run_id, status, timers in rows}


async def engine_outcome(engine: Engine, url: str, home: Path, runs: int) -> Outcome:
    settings = make_settings(home, secret_key=engine.key)
    async with stack_for(settings, engine.client) as stack:
        add_operator(stack)
        auth = await login(stack)
        job_id = await create_job(stack, auth, url)
        await start_all(stack, auth, job_id, WARMUP)
        await wait_all(stack, job_id, WARMUP)
        sent = await start_all(stack, auth, job_id, runs)
        counts = await wait_all(stack, job_id, WARMUP + runs)
        rows = await asyncio.to_thread(timers_of, stack, list(sent))
    succeeded = str(RunStatus.SUCCEEDED)
    if counts[succeeded] != WARMUP + runs:
        raise RuntimeError(f"not every execution succeeded: {dict(counts)}")
    spans = [(t["start"] / 1000, t["end"] / 1000) for _, t in rows.values()]
    ends = {run_id: t["end"] / 1000 for run_id, (_, t) in rows.items()}
    return Outcome(
        latencies=[ends[run_id] - sent[run_id] for run_id in sent],
        in_slot=[end - start for start, end in spans],
        wall=max(ends.values()) - min(sent.values()),
        peak=peak_overlap(spans),
        statuses=f"{runs} SUCCESS (+{WARMUP} warm-up)",
    )


async def measure_executions(engine: Engine, runs: int) -> Report:
    with tempfile.TemporaryDirectory(prefix="bench-runner-") as tmpdir:
        tmp = Path(tmpdir)
        repo = tmp / "repo"
        url = make_repo(repo, {"site.yml": SITE})
        private_root = tmp / "bare"
        private_root.mkdir()
        loads = [load_average()]
        bare = await asyncio.to_thread(bare_outcome, repo, private_root, runs)
        loads.append(load_average())
        done = await engine_outcome(engine, url, tmp / "home", runs)
        loads.append(load_average())

    def row(name: str, o: Outcome) -> list[str]:
        return [
            name,
            f"{o.rate:.2f}",
            f"{median(o.latencies):.1f}",
            f"{p95(o.latencies):.1f}",
            f"{median(o.in_slot):.2f}",
            f"{o.wall:.1f}",
            str(o.peak),
        ]

    summary = table(
        ["", "completed/s", "p50 s", "p95 s", "in slot s", "wall s", "peak"],
        [
            row("runwright: POST .../start -> SUCCESS", done),
            row(f"bare ansible_runner.run, {CONCURRENCY_LIMIT} threads", bare),
        ],
    )
    notes = (
        "p50, p95: start request (bare: submission) to the end, queueing for a place included\n"
        "in slot: median time of one run once it started (runwright: its timer, checkout "
        "included)\n"
        "peak: most runs in progress at one instant (from the timers / the bare runs' spans)\n"
        f"runwright executions: {done.statuses}; bare runs: {bare.statuses}\n"
        f"1-minute load average: {loads[0]} before the bare runs, {loads[1]} after them, "
        f"{loads[2]} after runwright's (the bench's own runs count too)"
    )
    return Report(
        title=(
            f"runner executions: N={runs} started at once, {CONCURRENCY_LIMIT} per account, "
            f"{HTTP_IN_FLIGHT} requests in flight, one worker ({ACTIVITY_THREADS} activity "
            "threads)"
        ),
        sections=[summary, notes],
        ratios=[
            Ratio(
                "executions/s",
                f"{done.rate:.2f}/s",
                f"{bare.rate:.2f}/s",
                done.rate / bare.rate,
                f"completed per second / bare ansible-runner, {CONCURRENCY_LIMIT} at a time",
            ),
            Ratio(
                "execution p50",
                f"{median(done.latencies):.1f} s",
                f"{median(bare.latencies):.1f} s",
                median(done.latencies) / median(bare.latencies),
                "start request to SUCCESS / submission to done (queueing included)",
            ),
            Ratio(
                "execution p95",
                f"{p95(done.latencies):.1f} s",
                f"{p95(bare.latencies):.1f} s",
                p95(done.latencies) / p95(bare.latencies),
                "same, p95",
            ),
        ],
    )


async def measure(engine: Engine, quick: bool) -> Report:
    return await measure_executions(engine, QUICK_EXECUTIONS if quick else EXECUTIONS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help=f"N={QUICK_EXECUTIONS} instead of {EXECUTIONS}"
    )
    parser.add_argument("--executions", type=int, help="N (overrides --quick)")
    args = parser.parse_args()
    runs: int = args.executions or (QUICK_EXECUTIONS if args.quick else EXECUTIONS)

    async def go(engine: Engine, _quick: bool) -> Report:
        return await measure_executions(engine, runs)

    report_alone(go, args.quick)


if __name__ == "__main__":
    main()
