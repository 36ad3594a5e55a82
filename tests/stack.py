"""A whole runwright in the test's event loop: real Temporal, real worker, the API over ASGI.

Each test gets its own task queue, database and artifact store, against the session's one
Temporal dev server.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client
from temporalio.service import RetryConfig
from temporalio.testing import WorkflowEnvironment

from activities.sandbox import Sandbox, detect
from api.app import create_app
from api.mission_control.playbooks import action_specs
from core.artifacts import ArtifactStore, store_from_url
from core.settings import Settings
from core.statuses import TERMINAL_RUN_STATUSES, RunStatus
from core.store.migrate import upgrade
from core.store.models import Definition, Run, utcnow
from core.store.session import make_engine, make_session_factory, transaction
from core.store.users import upsert_user
from workers.main import ACTIVITY_THREADS, build_workers, run_workers
from workflows.contracts import RunInput

ADMIN = ("admin@local", "admin")


def basic(email: str, password: str) -> dict[str, str]:
    """An Authorization header for HTTP Basic."""
    token = base64.b64encode(f"{email}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@functools.cache
def machine_sandbox() -> Sandbox:
    """This machine's action sandbox, detected once per test session."""
    return detect()


def make_settings(home: Path, **overrides: Any) -> Settings:
    """Dev-mode settings under `home` (file and http git URLs allowed, a key generated)."""
    values: dict[str, Any] = {
        "dev_mode": True,
        "home": home,
        "task_queue": f"test-{uuid.uuid4().hex[:10]}",
        **overrides,
    }
    return Settings(**values)


class Stack:
    """Handles to one test's runwright: API client, DB sessions, settings, store."""

    def __init__(
        self,
        settings: Settings,
        client: httpx.AsyncClient,
        sessions: sessionmaker[Session],
        temporal: Client,
        store: ArtifactStore,
        app: Any = None,
    ) -> None:
        self.settings = settings
        self.api = client
        # The ASGI app itself, for clients that must come from another address.
        self.app = app
        self.sessions = sessions
        self.temporal = temporal
        self.store = store

    async def apply(self, text: str, *, auth: dict[str, str] | None = None) -> list[dict[str, Any]]:
        """Apply YAML documents through the API as the admin; fails the test on an error."""
        response = await self.api.post(
            "/api/apply",
            content=text.encode(),
            headers={**(auth or basic(*ADMIN)), "Content-Type": "application/yaml"},
        )
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        return items

    async def run(self, body: dict[str, Any], *, auth: dict[str, str] | None = None) -> str:
        """Start a playbook run through the API; returns the run id."""
        response = await self.api.post("/playbook/run", json=body, headers=auth or basic(*ADMIN))
        assert response.status_code == 201, response.text
        run_id: str = response.json()["run_id"]
        return run_id

    async def get_run(self, run_id: str) -> dict[str, Any]:
        """The run as `GET /playbook/run/{id}` shows it."""
        response = await self.api.get(f"/playbook/run/{run_id}", headers=basic(*ADMIN))
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def wait_status(
        self, run_id: str, statuses: set[RunStatus] | None = None, timeout: float = 60.0
    ) -> Run:
        """Poll the DB until the run reaches one of `statuses` (default: any terminal one)."""
        wanted = statuses or set(TERMINAL_RUN_STATUSES)
        deadline = time.monotonic() + timeout
        row: Run | None = None
        while time.monotonic() < deadline:
            with self.sessions() as session:
                row = session.get(Run, run_id)
                if row is not None and RunStatus(row.status) in wanted:
                    return row
            await asyncio.sleep(0.05)
        raise AssertionError(
            f"run {run_id} did not reach {sorted(wanted)} in {timeout}s "
            f"(last: {row.status if row else 'missing'})"
        )


@asynccontextmanager
async def running_worker(
    settings: Settings, temporal: Client, sessions: sessionmaker[Session], store: ArtifactStore
) -> AsyncIterator[None]:
    """A worker on the settings' task queue for the duration of the block."""
    stop = asyncio.Event()
    with ThreadPoolExecutor(max_workers=ACTIVITY_THREADS) as executor:
        workers = build_workers(
            settings, temporal, sessions=sessions, store=store, executor=executor
        )
        task = asyncio.create_task(run_workers(workers, stop))
        try:
            yield
        finally:
            stop.set()
            await task


@asynccontextmanager
async def stack_for(
    settings: Settings, temporal: Client, *, worker: bool = True
) -> AsyncIterator[Stack]:
    """A migrated DB with the dev admin, an API client and (optionally) a worker."""
    upgrade(settings.database_url)
    engine = make_engine(settings.database_url)
    sessions = make_session_factory(engine)
    with transaction(sessions) as session:
        upsert_user(session, ADMIN[0], name="Admin", password=ADMIN[1], role="admin")
    store = store_from_url(
        settings.artifact_store, endpoint_url=settings.s3_endpoint_url, region=settings.s3_region
    )
    app = create_app(settings, temporal_client=temporal)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://runwright") as client:
            stack = Stack(settings, client, sessions, temporal, store, app)
            if worker:
                async with running_worker(settings, temporal, sessions, store):
                    yield stack
            else:
                yield stack
    engine.dispose()


async def client_of_a_stopped_temporal() -> Client:
    """A client connected to a Temporal dev server that has then stopped: every call fails fast."""
    server = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(Path(sys.executable).parent / "temporal"),
        dev_server_extra_args=["--log-level", "error"],
    )
    client = await Client.connect(
        server.client.service_client.config.target_host,
        # Give up at once (with max_retries=0 the SDK still retried ten times, ~7 s a call).
        retry_config=RetryConfig(
            initial_interval_millis=10,
            max_interval_millis=20,
            max_elapsed_time_millis=200,
            max_retries=1,
        ),
    )
    await server.shutdown()
    return client


def git(cwd: Path, *args: str) -> str:
    """Run git in `cwd` with a fixed identity; returns stdout."""
    result = subprocess.run(
        ["git", "-c", "user.name=Ops Author", "-c", "user.email=ops@example.com", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    )
    return result.stdout.strip()


def make_repo(root: Path, files: dict[str, str], branch: str = "main") -> str:
    """A git repository at `root` with `files` committed on `branch`; returns its file:// URL."""
    root.mkdir(parents=True, exist_ok=True)
    git(root, "init", "-q", "-b", branch)
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "initial playbooks")
    return f"file://{root}"


def worker_process(
    settings: Settings,
    temporal: Client,
    log: Path,
    *,
    extra_env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """`runwright worker` as its own process, configured only through the environment
    (`extra_env` added to it last)."""
    env = {
        **os.environ,
        "RUNWRIGHT_DEV_MODE": "true",
        "RUNWRIGHT_HOME": str(settings.home),
        "RUNWRIGHT_DATABASE_URL": settings.database_url,
        "RUNWRIGHT_ARTIFACT_STORE": settings.artifact_store,
        "RUNWRIGHT_SECRET_KEY": settings.secret_key,
        "RUNWRIGHT_TASK_QUEUE": settings.task_queue,
        "RUNWRIGHT_TEMPORAL_ADDRESS": temporal.service_client.config.target_host,
        **(extra_env or {}),
    }
    runwright = Path(sys.executable).parent / "runwright"
    return subprocess.Popen(
        [str(runwright), "worker"], env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT
    )


def engine_run(
    definition_id: str, playbook_spec: dict[str, object], **overrides: object
) -> tuple[Run, RunInput]:
    """A run row and its workflow input for a spec, without any dialect's API."""
    now = utcnow()
    run = Run(
        id=str(uuid.uuid4()),
        definition_id=definition_id,
        dialect="test",
        status=str(RunStatus.SCHEDULED),
        created_at=now,
        scheduled_time=now,
    )
    values: dict[str, object] = {
        "run_id": run.id,
        "definition_id": definition_id,
        "dialect": "test",
        "title": "engine",
        "actions": action_specs(playbook_spec),
        "template_env": {"params": {}},
        "created_at": now.isoformat(),
        **overrides,
    }
    return run, RunInput(**values)  # type: ignore[arg-type]


def add_definition(stack: Stack, spec: dict[str, object]) -> str:
    """Store a test definition; returns its id."""
    with stack.sessions() as session, session.begin():
        definition = Definition(dialect="test", name=f"d-{uuid.uuid4().hex[:6]}", spec=spec)
        session.add(definition)
        session.flush()
        return definition.id
