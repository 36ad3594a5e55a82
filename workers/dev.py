"""`runwright dev`: Temporal dev server, worker, API, SQLite and the file store, in one tree."""

from __future__ import annotations

import asyncio
import logging

from api.app import create_app
from core.artifacts import store_from_url
from core.settings import Settings
from core.store.accounts import ensure_account
from core.store.migrate import upgrade
from core.store.session import make_engine, make_session_factory, transaction
from core.store.users import upsert_user
from core.temporal import connect
from workers.main import sandbox_for, serve_worker
from workers.serving import serve_api, stop_on_signals
from workers.temporal_dev import start_dev_server, stop_dev_server, wait_until_ready

log = logging.getLogger(__name__)
DEV_ADMIN = ("admin@local", "admin")
DEV_ACCOUNT = "DEV"


def seed_dev_admin(database_url: str) -> None:
    """The dev-only admin the documents' examples use: a platform admin, and admin of the
    Runner account `DEV` too."""
    engine = make_engine(database_url)
    with transaction(make_session_factory(engine)) as session:
        admin = upsert_user(
            session, DEV_ADMIN[0], name="Admin", password=DEV_ADMIN[1], role="admin"
        )
        if admin.account_id is None:
            admin.account_id = ensure_account(session, DEV_ACCOUNT).id
        admin.account_role = "admin"
    engine.dispose()


async def run_dev(settings: Settings) -> None:
    """Start every part, print where they are, and stop them all on Ctrl-C."""
    sandbox_for(settings)  # a worker that cannot sandbox refuses before anything starts
    stop = asyncio.Event()
    stop_on_signals(stop)
    home = settings.home.resolve()
    upgrade(settings.database_url)
    seed_dev_admin(settings.database_url)
    address = f"127.0.0.1:{settings.temporal_port}"
    codec_url = f"http://{settings.api_host}:{settings.api_port}/codec"
    proc = start_dev_server(home, settings.temporal_port, settings.ui_port, codec_url)
    try:
        await wait_until_ready(proc, address, settings.temporal_namespace, home / "temporal.log")
        settings.temporal_address = address
        client = await connect(address, settings.temporal_namespace, settings.secret_key)
        # One store for API and worker, built before the worker drops credentials.
        store = store_from_url(
            settings.artifact_store,
            endpoint_url=settings.s3_endpoint_url,
            region=settings.s3_region,
        )
        app = create_app(settings, temporal_client=client, store=store)
        worker_task = asyncio.create_task(serve_worker(settings, client, stop, store=store))
        banner = (
            "runwright dev is up:\n"
            f"  API          http://{settings.api_host}:{settings.api_port}"
            "   (admin@local / admin)\n"
            f"  Temporal UI  http://127.0.0.1:{settings.ui_port}\n"
            f"  Temporal     {address}\n"
            f"  data         {home}\n"
            "Ctrl-C stops everything."
        )
        try:
            await serve_api(
                app,
                settings.api_host,
                settings.api_port,
                stop,
                on_ready=lambda: print(banner, flush=True),
            )
        finally:
            stop.set()
            await worker_task
    finally:
        stop_dev_server(proc)
        print("runwright dev stopped.", flush=True)
