"""A runwright whose API listens on a loopback port, and automation runs of a bash script:
what the live log's tests and its benchmark stream from."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from temporalio.client import Client

from api.app import create_app
from api.automations.ids import run_public_id
from api.deps import Services
from api.launch import LaunchRequest, launch
from core.settings import Settings
from core.store.models import Definition
from core.store.session import transaction
from core.store.users import create_token, get_by_email, upsert_user
from tests.http_server import serving
from tests.stack import ADMIN, Stack, stack_for
from workflows.contracts import ActionSpec

DIALECT = "automations"


@dataclass
class LiveStack:
    """A whole runwright (worker included) and a second API process-alike on a real port."""

    stack: Stack
    url: str  # the served API's base URL
    services: Services  # the served API's own (its feeds, its sessions)

    def token(self, email: str = ADMIN[0], role: str | None = None) -> str:
        """A fresh bearer token of `email` (created with `role` when given)."""
        with transaction(self.stack.sessions) as session:
            user = (
                upsert_user(session, email, password="pw", role=role)
                if role
                else get_by_email(session, email)
            )
            assert user is not None
            _, token = create_token(session, user, name="live log")
        return token

    def auth(self, email: str = ADMIN[0], role: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(email, role)}"}

    def stream_url(self, public_run_id: str) -> str:
        return f"{self.url}/api/automations/runs/{public_run_id}/stream"

    async def run_script(
        self,
        script: str,
        *,
        dialect: str = DIALECT,
        env: dict[str, Any] | None = None,
        secret_refs: list[str] | None = None,
    ) -> tuple[str, str]:
        """Launch a run of one `exec` action with `script`; (its engine id, its `run_…` id)."""
        with transaction(self.stack.sessions) as session:
            definition = Definition(dialect=dialect, name=f"s-{uuid.uuid4().hex[:8]}", spec={})
            session.add(definition)
            session.flush()
            definition_id = definition.id
        spec: dict[str, Any] = {"script": script}
        if env:
            spec["env"] = env
        request = LaunchRequest(
            definition_id=definition_id,
            dialect=dialect,
            title="live log",
            creator=None,
            actions=[ActionSpec(name="script", kind="exec", spec=spec, templated=False)],
            secret_refs=list(secret_refs or []),
        )
        run = await launch(self.services, request)
        return run.id, run_public_id(run.id)


@asynccontextmanager
async def live_stack(settings: Settings, temporal: Client) -> AsyncIterator[LiveStack]:
    """`stack_for(settings)` with its worker, and the API served on a loopback port."""
    async with stack_for(settings, temporal) as stack:
        app = create_app(settings, temporal_client=temporal)
        async with serving(app) as url:
            yield LiveStack(stack, url, app.state.services)
