"""What every benchmark shares: the Temporal dev server, statistics, tables and reports."""

from __future__ import annotations

import argparse
import asyncio
import math
import statistics
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from core.settings import generate_key
from core.temporal import data_converter
from workflows.contracts import SEARCH_ATTRIBUTES

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Engine:
    """One Temporal dev server, its encrypting client and the key the payloads use."""

    env: WorkflowEnvironment
    key: str

    @property
    def client(self) -> Client:
        return self.env.client

    @property
    def address(self) -> str:
        """host:port of the dev server's frontend, for processes of their own."""
        return self.env.client.service_client.config.target_host


@asynccontextmanager
async def temporal_dev_server() -> AsyncIterator[Engine]:
    """The venv's `temporal` dev server (in memory) with runwright's search attributes.

    Stopped (its process, by pid, inside the environment) when the block ends.
    """
    key = generate_key()
    extra: list[str] = []
    for name in SEARCH_ATTRIBUTES:
        extra += ["--search-attribute", f"{name}=Keyword"]
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(BIN / "temporal"),
        dev_server_log_level="error",
        dev_server_extra_args=extra,
        data_converter=data_converter(key),
    )
    try:
        yield Engine(env, key)
    finally:
        await env.shutdown()


async def bearer(api: httpx.AsyncClient, basic_auth: dict[str, str]) -> dict[str, str]:
    """An Authorization header with a fresh API token for the Basic-auth user.

    Basic auth costs a scrypt hash (tens of ms of CPU, by design) on every request; an
    automation client polling the API uses a token, and so do the benchmarks.
    """
    response = await api.post("/api/tokens", json={"name": "bench"}, headers=basic_auth)
    response.raise_for_status()
    return {"Authorization": f"Bearer {response.json()['token']}"}


def p95(values: Sequence[float]) -> float:
    """The 95th percentile, nearest rank (with few samples: the largest or next to it)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(0.95 * len(ordered)))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain text table, columns right-aligned except the first."""
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        parts = [row[0].ljust(widths[0])]
        parts += [c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)]
        return "  ".join(parts).rstrip()

    out = [line(cells[0]), "  ".join("-" * w for w in widths)]
    out += [line(row) for row in cells[1:]]
    return "\n".join(out)


@dataclass
class Ratio:
    """One headline figure: runwright's value against the baseline's."""

    name: str
    engine: str
    baseline: str
    ratio: float
    meaning: str


@dataclass
class Report:
    """What one benchmark prints: a title, its table(s), notes and the ratios."""

    title: str
    sections: list[str] = field(default_factory=list)
    ratios: list[Ratio] = field(default_factory=list)
    # One-line findings repeated in run.py's summary (not ratios: MB per 1000 runs, cache hits).
    headlines: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def render(self) -> str:
        out = [f"== {self.title} ({self.seconds:.1f} s)", *self.sections]
        if self.ratios:
            out.append(
                table(
                    ["ratio", "runwright", "baseline", "ratio", "meaning"],
                    [
                        [r.name, r.engine, r.baseline, f"{r.ratio:.2f}", r.meaning]
                        for r in self.ratios
                    ],
                )
            )
        return "\n\n".join(out) + "\n"


Measure = Callable[[Engine, bool], Awaitable[Report]]


async def timed(measure: Measure, engine: Engine, quick: bool) -> Report:
    """Run one measurement and note its wall time in the report."""
    start = time.monotonic()
    report = await measure(engine, quick)
    report.seconds = time.monotonic() - start
    return report


def quick_flag(description: str) -> bool:
    """The one option every benchmark takes."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="fewer runs (for CI or a laptop)")
    return bool(parser.parse_args().quick)


def run_alone(measure: Measure, description: str) -> None:
    """The `python bench/<name>.py [--quick]` entry point: own dev server, one report."""
    report_alone(measure, quick_flag(description))


def report_alone(measure: Measure, quick: bool) -> None:
    """Run one measurement on its own dev server and print its report."""

    async def main() -> None:
        async with temporal_dev_server() as engine:
            report = await timed(measure, engine, quick)
        print(report.render(), flush=True)

    asyncio.run(main())
