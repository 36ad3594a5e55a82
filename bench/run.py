"""All six benchmarks on one Temporal dev server, then every ratio in one table.

    python bench/run.py [--quick]

Each ratio compares runwright with a bare baseline measured in the same run on the same
machine, so the figures travel better than absolute times. See bench/README.md.
"""

from __future__ import annotations

import asyncio
import os
import platform
import sys
import time
from importlib.metadata import version
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import (
    ansible_overhead,
    approval_memory,
    live_log,
    runbook_exec,
    runner_executions,
    throughput,
)
from bench.common import Measure, Report, quick_flag, table, temporal_dev_server, timed

MEASURES: list[Measure] = [
    ansible_overhead.measure,
    throughput.measure,
    # Before approval_memory: the runs it leaves waiting stay open on the dev server.
    runner_executions.measure,
    runbook_exec.measure,
    live_log.measure,
    approval_memory.measure,
]


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def machine() -> str:
    versions = ", ".join(
        f"{name} {version(name)}" for name in ("temporalio", "ansible-core", "ansible-runner")
    )
    return (
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, {versions}"
    )


async def main(quick: bool) -> None:
    start = time.monotonic()
    print(f"runwright bench{' --quick' if quick else ''}: {machine()}", flush=True)
    print(f"load average before: {load_average()}\n", flush=True)
    reports: list[Report] = []
    async with temporal_dev_server() as engine:
        for measure in MEASURES:
            report = await timed(measure, engine, quick)
            print(report.render(), flush=True)
            reports.append(report)
    rows = [[r.name, r.engine, r.baseline, f"{r.ratio:.2f}"] for rep in reports for r in rep.ratios]
    print("== summary\n", flush=True)
    print(table(["ratio", "runwright", "baseline", "runwright / baseline"], rows))
    print()
    for line in (h for rep in reports for h in rep.headlines):
        print(line)
    print(
        f"\nload average after: {load_average()}; total {time.monotonic() - start:.0f} s",
        flush=True,
    )


if __name__ == "__main__":
    asyncio.run(main(quick_flag(__doc__ or "")))
