"""The worker process: the shared task queue (workflows, records) and this worker's own queue."""

from __future__ import annotations

import asyncio
import logging
import socket
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client
from temporalio.worker import Worker

from activities.admission import AdmissionActivities
from activities.callbacks import CallbackActivities
from activities.event_log import OutputCap
from activities.http_requests import HttpLimits
from activities.planning import PlannerConfig, PlanningActivities
from activities.records import RecordActivities
from activities.runbooks import RunbookActivities
from activities.runs import RunActivities
from activities.sandbox import SETTING as SANDBOX_SETTING
from activities.sandbox import Sandbox, detect
from activities.slots import SlotActivities
from core.artifacts import ArtifactStore, store_from_url
from core.secrets import SecretBox
from core.settings import Settings, scrub_environment
from core.store.session import make_engine, make_session_factory
from workflows.callbacks import DeliverCallbacksWorkflow
from workflows.run import RunWorkflow
from workflows.runbook import RunbookWorkflow
from workflows.slots import AccountSlotsWorkflow

log = logging.getLogger(__name__)
# Threads for sync activities: playbooks and scripts block a thread each while they run.
ACTIVITY_THREADS = 32
# Workflow tasks this process works on at once. A run's workflow task stays open until its
# local activities (the run's records) are done, and the SDK hands every local activity of
# the process to Python one at a time, in arrival order. With the SDK's default (100) a burst
# of runs put about 100 open tasks' records in that one line: each record waited behind all
# the others and workflow tasks took seconds (TMPRL1104) without the process doing any more
# work. Tasks beyond this bound wait in Temporal's task queue instead, where waiting is free.
WORKFLOW_TASK_SLOTS = 8


def worker_queue_name(shared: str) -> str:
    """A task queue only this worker process polls."""
    return f"{shared}-{socket.gethostname()}-{uuid.uuid4().hex[:8]}"


def sandbox_for(settings: Settings) -> Sandbox | None:
    """The sandbox this worker's actions run in, or None when RUNWRIGHT_SANDBOX=off.

    Raises SandboxUnavailable (naming the package and the setting) when it cannot be built.
    """
    if not settings.sandbox:
        return None
    hidden = [settings.home, settings.workspace]
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        hidden.append(Path(url.database).parent)
    return detect(hidden)


def build_workers(
    settings: Settings,
    client: Client,
    *,
    sessions: sessionmaker[Session],
    store: ArtifactStore,
    executor: ThreadPoolExecutor,
    worker_queue: str | None = None,
    sandbox: Sandbox | None = None,
) -> list[Worker]:
    """The two workers of one process: shared queue and this worker's own.

    `sandbox` defaults to the one the settings ask for (see `sandbox_for`).
    """
    if sandbox is None:
        sandbox = sandbox_for(settings)
    if sandbox is None:
        log.warning(
            "%s=off: actions run without a sandbox and can read this worker's files, "
            "processes and their environments",
            SANDBOX_SETTING,
        )
    box = SecretBox(settings.secret_key)
    queue = worker_queue or worker_queue_name(settings.task_queue)
    # One live DEBUG sender per process, shared by every run's dispatcher.
    callbacks = CallbackActivities(sessions, settings)
    runs = RunActivities(
        worker_queue=queue,
        workspace=settings.workspace.resolve(),
        allowed_schemes=settings.allowed_schemes,
        sessions=sessions,
        box=box,
        store=store,
        callbacks=callbacks,
        http=HttpLimits(settings.egress_policy, settings.http_body_cap_bytes),
        sandbox=sandbox,
        output_cap=OutputCap(settings.run_max_events, settings.run_max_output_bytes),
        step_agent=settings.step_agent_argv,
        step_agent_env=settings.step_agent_environment,
    )
    records = RecordActivities(sessions, callbacks)
    admission = AdmissionActivities(sessions)
    slots = SlotActivities()
    runbooks = RunbookActivities(
        workspace=settings.workspace.resolve(),
        sessions=sessions,
        box=box,
        allowed_schemes=settings.allowed_schemes,
        policy=settings.egress_policy,
    )
    planning = PlanningActivities(PlannerConfig.from_settings(settings))
    shared = Worker(
        client,
        task_queue=settings.task_queue,
        workflows=[RunWorkflow, DeliverCallbacksWorkflow, AccountSlotsWorkflow, RunbookWorkflow],
        activities=[
            slots.request_slot,
            slots.release_slot,
            slots.check_slot_holders,
            runs.reserve_worker,
            records.record_run,
            records.record_action,
            admission.admit_run,
            callbacks.deliver_callbacks,
            callbacks.abandon_callbacks,
            runbooks.record_runbook,
            runbooks.publish_runbook,
        ],
        activity_executor=executor,
        max_concurrent_workflow_tasks=WORKFLOW_TASK_SLOTS,
    )
    own = Worker(
        client,
        task_queue=queue,
        activities=[
            runs.checkout_repository,
            runs.execute_action,
            runs.upload_artifacts,
            runs.cleanup_run,
            runbooks.checkout_runbook,
            planning.plan_runbook,
        ],
        activity_executor=executor,
        max_concurrent_activities=ACTIVITY_THREADS - 4,
    )
    return [shared, own]


async def run_workers(workers: Sequence[Worker], stop: asyncio.Event) -> None:
    """Run workers until `stop` is set, then drain them (shut down before the loop closes)."""
    tasks = [asyncio.create_task(w.run()) for w in workers]
    stopper = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
    for w in workers:
        await w.shutdown()
    await asyncio.gather(*tasks, return_exceptions=True)
    stopper.cancel()
    for task in done:
        if task is not stopper and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]


async def serve_worker(
    settings: Settings, client: Client, stop: asyncio.Event, *, store: ArtifactStore | None = None
) -> None:
    """The worker process's main: build everything from settings and run until stopped.

    Refuses to start (SandboxUnavailable) when actions cannot be sandboxed and the settings
    do not opt out.
    """
    sandbox = sandbox_for(settings)
    engine = make_engine(settings.database_url)
    store = store or store_from_url(
        settings.artifact_store, endpoint_url=settings.s3_endpoint_url, region=settings.s3_region
    )
    # Clients are built: from here on nothing a play or script starts can read credentials.
    scrub_environment()
    with ThreadPoolExecutor(max_workers=ACTIVITY_THREADS) as executor:
        workers = build_workers(
            settings,
            client,
            sessions=make_session_factory(engine),
            store=store,
            executor=executor,
            sandbox=sandbox,
        )
        log.info("worker polling %s and %s", settings.task_queue, workers[1].task_queue)
        await run_workers(workers, stop)
    engine.dispose()
