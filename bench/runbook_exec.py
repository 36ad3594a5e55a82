"""Runbook exec latency: a trivial bash runbook through the hoop runbooks API, against bash.

Runwright: N sequential `POST /api/plugins/runbooks/connections/bench/exec` calls running
`ops/trivial.runbook.sh` (`echo hello {{ .name | squote }}`) from a git repository served over
file:// on a `custom` connection whose command is `bash`; each timed from sending the request
to its 200 answer (the run ended: rendered, started as a run of the engine, executed by the
in-process worker, recorded). Baseline: the same rendered text (`echo hello 'bench'`) fed to
`bash` on its stdin N times, sequentially, as the engine feeds it; each timed around
`subprocess.run`. N is 100 (20 with `--quick`), after a few untimed calls on each side.

    python bench/runbook_exec.py [--quick]
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import Engine, Ratio, Report, median, p95, run_alone, table
from core.store.session import transaction
from core.store.users import create_token, get_by_email
from tests.stack import ADMIN, Stack, make_repo, make_settings, stack_for

CALLS = 100
QUICK_CALLS = 20
WARMUP = 3
CONNECTION = "bench"
RUNBOOK = "ops/trivial.runbook.sh"
TEMPLATE = "echo hello {{ .name | squote }}\n"
PARAMETERS = {"name": "bench"}
SCRIPT = "echo hello 'bench'\n"  # TEMPLATE rendered with PARAMETERS
EXPECTED = "hello bench\n"


@dataclass
class Outcome:
    """One side's calls: seconds per call, and what the engine says the action itself took."""

    latencies: list[float]
    action_ms: list[int]  # the exec answer's `execution_time`: the program's run time


def load_average() -> str:
    """The 1-minute load average: the bench itself counts, and so does other work."""
    return Path("/proc/loadavg").read_text().split()[0]


# ---- baseline: bash -------------------------------------------------------------------------


def bash_once(workdir: Path) -> float:
    """The rendered script on bash's stdin; seconds from the call to its return."""
    start = time.perf_counter()
    result = subprocess.run(["bash"], input=SCRIPT, capture_output=True, text=True, cwd=workdir)
    seconds = time.perf_counter() - start
    if result.returncode != 0 or result.stdout != EXPECTED:
        raise RuntimeError(f"bash answered {result.returncode}: {result.stdout!r}")
    return seconds


def bash_outcome(workdir: Path, calls: int) -> Outcome:
    for _ in range(WARMUP):
        bash_once(workdir)
    return Outcome([bash_once(workdir) for _ in range(calls)], [])


# ---- runwright: the hoop runbooks API -------------------------------------------------------


def admin_bearer(stack: Stack) -> dict[str, str]:
    """A Bearer header for the admin, its token made in the database (no scrypt per request)."""
    with transaction(stack.sessions) as session:
        user = get_by_email(session, ADMIN[0])
        if user is None:
            raise RuntimeError(f"no user {ADMIN[0]}")
        _, plain = create_token(session, user, name="bench")
    return {"Authorization": f"Bearer {plain}"}


async def create_connection(stack: Stack, auth: dict[str, str]) -> None:
    body = {
        "name": CONNECTION,
        "type": "custom",
        "command": ["bash"],
        "runbooks": {"path_prefix": "ops/"},
    }
    response = await stack.api.post("/api/connections", json=body, headers=auth)
    if response.status_code != 201:
        raise RuntimeError(f"creating the connection: {response.status_code} {response.text}")


async def exec_once(stack: Stack, auth: dict[str, str]) -> tuple[float, int]:
    """One exec; (seconds from sending to the 200 answer, the answer's execution_time)."""
    url = f"/api/plugins/runbooks/connections/{CONNECTION}/exec"
    body = {"file_name": RUNBOOK, "parameters": PARAMETERS}
    start = time.perf_counter()
    response = await stack.api.post(url, json=body, headers=auth)
    seconds = time.perf_counter() - start
    if response.status_code != 200:
        raise RuntimeError(f"exec answered {response.status_code}: {response.text}")
    answer: dict[str, Any] = response.json()
    if answer["exit_code"] != 0 or answer["output"] != EXPECTED:
        raise RuntimeError(f"exec answered exit {answer['exit_code']}: {answer['output']!r}")
    return seconds, int(answer["execution_time"])


async def engine_outcome(engine: Engine, home: Path, url: str, calls: int) -> Outcome:
    # The default runbooks_refresh_seconds (5) stays, as in a deployment: the API asks the
    # repository for its head at most every 5 s, so a few of the timed calls include that.
    settings = make_settings(
        home, secret_key=engine.key, runbooks_git_url=url, runbooks_git_branch="main"
    )
    async with stack_for(settings, engine.client) as stack:
        auth = admin_bearer(stack)
        await create_connection(stack, auth)
        for _ in range(WARMUP):
            await exec_once(stack, auth)
        timed = [await exec_once(stack, auth) for _ in range(calls)]
    return Outcome([s for s, _ in timed], [ms for _, ms in timed])


async def measure(engine: Engine, quick: bool) -> Report:
    calls = QUICK_CALLS if quick else CALLS
    with tempfile.TemporaryDirectory(prefix="bench-runbook-") as tmpdir:
        tmp = Path(tmpdir)
        url = make_repo(tmp / "runbooks", {RUNBOOK: TEMPLATE})
        workdir = tmp / "bash"
        workdir.mkdir()
        loads = [load_average()]
        bare = await asyncio.to_thread(bash_outcome, workdir, calls)
        loads.append(load_average())
        done = await engine_outcome(engine, tmp / "home", url, calls)
        loads.append(load_average())

    def ms(seconds: float) -> str:
        return f"{seconds * 1000:.1f}"

    def row(name: str, o: Outcome, action: str) -> list[str]:
        lat = o.latencies
        return [name, ms(median(lat)), ms(p95(lat)), ms(min(lat)), ms(max(lat)), action]

    summary = table(
        ["", "p50 ms", "p95 ms", "min ms", "max ms", "action p50 ms"],
        [
            row(
                f"runwright: POST .../connections/{CONNECTION}/exec -> 200",
                done,
                f"{median(done.action_ms):.0f}",
            ),
            row("bare: bash with the rendered script on stdin", bare, "-"),
        ],
    )
    notes = (
        "action p50: the answer's execution_time, the program's own run time as the worker "
        "measured it (the rest of the total is the engine's and the API's)\n"
        f"every call answered 200, exit_code 0, {EXPECTED!r}; {WARMUP} untimed calls first on "
        "each side\n"
        "runbooks_refresh_seconds is the default 5 s: a few timed calls ask the repository "
        "for its head\n"
        f"1-minute load average: {loads[0]} before the bash calls, {loads[1]} after them, "
        f"{loads[2]} after runwright's"
    )
    return Report(
        title=f"runbook exec: N={calls} sequential calls, trivial bash runbook",
        sections=[summary, notes],
        ratios=[
            Ratio(
                "runbook exec p50",
                f"{ms(median(done.latencies))} ms",
                f"{ms(median(bare.latencies))} ms",
                median(done.latencies) / median(bare.latencies),
                "exec request to 200 / bash with the script on stdin",
            ),
            Ratio(
                "runbook exec p95",
                f"{ms(p95(done.latencies))} ms",
                f"{ms(p95(bare.latencies))} ms",
                p95(done.latencies) / p95(bare.latencies),
                "same, p95",
            ),
        ],
    )


if __name__ == "__main__":
    run_alone(measure, __doc__ or "")
