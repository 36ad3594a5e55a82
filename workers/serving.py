"""Running the API and handling stop signals inside an asyncio process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Iterator

import uvicorn
from fastapi import FastAPI
from sse_starlette.sse import AppStatus

from core.secrets import install_log_redaction


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the process stops its parts in order."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def configure_logging(level: str) -> None:
    """Plain log lines on stderr, secrets redacted."""
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    install_log_redaction()


def stop_on_signals(stop: asyncio.Event) -> None:
    """Set `stop` on SIGINT (Ctrl-C) and SIGTERM."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)


async def serve_api(
    app: FastAPI,
    host: str,
    port: int,
    stop: asyncio.Event,
    on_ready: Callable[[], None] | None = None,
) -> None:
    """Serve `app` until `stop` is set (or the server fails), then close gracefully.

    `on_ready` is called once the socket accepts connections (not merely once it is asked to).
    """
    server = _Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
    # uvicorn's config just gave its loggers handlers of their own: redact those too.
    install_log_redaction(
        [logging.getLogger(n) for n in ("uvicorn", "uvicorn.error", "uvicorn.access")]
    )
    task = asyncio.create_task(server.serve())
    while not server.started and not task.done() and not stop.is_set():
        await asyncio.sleep(0.02)
    if server.started and on_ready is not None:
        on_ready()
    waiter = asyncio.create_task(stop.wait())
    await asyncio.wait([task, waiter], return_when=asyncio.FIRST_COMPLETED)
    # Event streams (the live logs) would hold a graceful shutdown open for as long as their
    # runs last: end them (their clients resume elsewhere with Last-Event-ID). The flag is
    # process-wide and this server does not install the signal handler that sets it.
    AppStatus.should_exit = True
    server.should_exit = True
    waiter.cancel()
    try:
        await task
    finally:
        # Cleared once this server is gone, so a later server in the process streams again.
        AppStatus.should_exit = False
    if not server.started:
        raise RuntimeError(f"the API could not listen on {host}:{port}")
