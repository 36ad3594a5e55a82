"""The app on a real HTTP server (uvicorn on loopback), for what httpx's ASGI transport cannot
show: it hands a response over only once the app has sent all of it, so a stream never streams.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from tests.servers import free_port
from workers.serving import serve_api


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[str]:
    """`app` served by `runwright api`'s server on a free loopback port; yields its base URL.

    The app's lifespan runs with the server, so it has services of its own.
    """
    port = free_port()
    stop = asyncio.Event()
    ready = asyncio.Event()
    task = asyncio.create_task(serve_api(app, "127.0.0.1", port, stop, on_ready=ready.set))
    try:
        await asyncio.wait_for(ready.wait(), 10)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop.set()
        await task
