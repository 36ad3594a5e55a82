"""The FastAPI app: every dialect's routes over one set of services."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from temporalio.client import Client

from api.auth import AuthPolicy
from api.automations import live_log
from api.automations import routes as automations
from api.body_limit import BodyLimitMiddleware
from api.catalog.repositories import router as repositories_router
from api.catalog.routes import router as catalog_router
from api.codec import router as codec_router
from api.content_types import ContentTypeMiddleware
from api.deps import Services
from api.errors import install_error_handlers
from api.hoop import routes as hoop
from api.hoop.repository import RunbookRepository
from api.mission_control.routes import router as mission_control_router
from api.run_stream import RunFeeds
from api.runbooks import routes as runbooks
from api.runner import routes as runner
from core.artifacts import ArtifactStore, store_from_url
from core.secrets import SecretBox
from core.settings import Settings
from core.store.session import make_engine, make_session_factory
from core.temporal import connect


def create_app(
    settings: Settings,
    *,
    temporal_client: Client | None = None,
    store: ArtifactStore | None = None,
) -> FastAPI:
    """An app for `settings`; connects to Temporal and the store at startup unless given them."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings.database_url)
        sessions = make_session_factory(engine)
        client = temporal_client or await connect(
            settings.temporal_address, settings.temporal_namespace, settings.secret_key
        )
        app.state.services = Services(
            settings=settings,
            sessions=sessions,
            temporal=client,
            store=store
            or store_from_url(
                settings.artifact_store,
                endpoint_url=settings.s3_endpoint_url,
                region=settings.s3_region,
            ),
            box=SecretBox(settings.secret_key),
            runbooks=RunbookRepository(settings, settings.home / "runbooks"),
            auth=AuthPolicy.from_settings(settings),
            feeds=RunFeeds(sessions),
        )
        yield
        engine.dispose()

    app = FastAPI(
        title="Runwright",
        description="Operations automation from git, run as durable workflows.",
        lifespan=lifespan,
    )
    shapes = {prefix: runner.error_body for prefix in runner.PATH_PREFIXES}
    shapes |= {prefix: hoop.error_body for prefix in hoop.PATH_PREFIXES}
    shapes |= {prefix: automations.error_body for prefix in automations.PATH_PREFIXES}
    shapes |= {prefix: runbooks.error_body for prefix in runbooks.PATH_PREFIXES}
    install_error_handlers(app, shapes)
    app.include_router(mission_control_router)
    app.include_router(runner.router)
    app.include_router(hoop.router)
    app.include_router(automations.router)
    app.include_router(runbooks.router)
    app.include_router(live_log.router)
    app.include_router(catalog_router)
    app.include_router(repositories_router)
    app.include_router(codec_router)
    if settings.cors_origins:
        # The Temporal UI calls the codec endpoints from the browser, from its own origin.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origin_list,
            allow_methods=["POST"],
            allow_headers=["*"],
            allow_credentials=True,
        )
    # Added last, so these run first: a refused body costs no CORS, auth or parsing work.
    app.add_middleware(ContentTypeMiddleware, shapes=shapes)
    app.add_middleware(BodyLimitMiddleware, limit=settings.max_body_bytes, shapes=shapes)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
