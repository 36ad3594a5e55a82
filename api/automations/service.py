"""What the automation routes do: read and write through the catalog, launch through the engine."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from temporalio.client import WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from api.automations import catalog, runs, schemas
from api.automations.ids import run_public_id
from api.db import read, write
from api.deps import Services
from api.errors import ApiError
from api.launch import LaunchRequest, launch
from core.secrets import SECRET_REF, SecretBox
from core.statuses import TERMINAL_RUN_STATUSES, RunStatus, automation_run_status
from core.store.models import Definition, Run, User
from core.store.secret_values import open_secret
from workflows.contracts import CONTROL_UPDATE, Control

CONTROL_TIMEOUT = timedelta(seconds=10)


def is_operator(user: User) -> bool:
    """Whether `user` may see how automations run (operators and admins)."""
    return user.role in ("operator", "admin")


def list_items(session: Session, user: User) -> list[dict[str, Any]]:
    """`GET /api/automations`."""
    rows = catalog.live_automations(session)
    last = catalog.last_runs(session, [row.id for row in rows])
    return [catalog.item(row, last.get(row.id), operator=is_operator(user)) for row in rows]


def one_item(session: Session, user: User, automation_id: str) -> dict[str, Any]:
    """`GET /api/automations/{id}`."""
    row = catalog.automation_or_404(session, automation_id)
    last = catalog.last_runs(session, [row.id]).get(row.id)
    return catalog.item(row, last, operator=is_operator(user))


def run_document(session: Session, run_id: str) -> dict[str, Any]:
    """`GET /api/automations/runs/{run_id}`."""
    return runs.run_view(session, runs.automation_run(session, run_id))


def busy(session: Session, exclude: str) -> int:
    """How many automation runs hold or wait for a slot now (approval holds none)."""
    idle = {str(s) for s in TERMINAL_RUN_STATUSES} | {str(RunStatus.PENDING_APPROVAL)}
    count = session.scalar(
        select(func.count())
        .select_from(Run)
        .where(Run.dialect == catalog.DIALECT, Run.status.not_in(idle), Run.id != exclude)
    )
    return int(count or 0)


async def run_now(services: Services, user: User, automation_id: str, body: Any) -> schemas.Started:
    """Start a run of the automation now; `queued` when every slot is taken."""
    variables = runs.check_variables(body)
    trigger = runs.Trigger("manual", user, variables)
    request = await write(
        services.sessions,
        runs.prepare_run,
        automation_id,
        trigger,
        services.settings.automation_max_runs,
    )
    return await started(services, request)


async def started(services: Services, request: LaunchRequest) -> schemas.Started:
    """Launch the run; `running`, `queued` when every slot is taken, or `pending_approval`."""
    run = await launch(services, request)
    status = automation_run_status(run.status)
    if status == "queued":
        ahead = await read(services.sessions, busy, run.id)
        status = "queued" if ahead >= services.settings.automation_max_runs else "running"
    return schemas.Started(run_id=run_public_id(run.id), status=status)


async def cancel(services: Services, user: User, run_id: str) -> dict[str, str]:
    """Kill the run's process tree now (a queued run ends before it starts)."""
    run = await read(services.sessions, runs.automation_run, run_id)
    if run.status in TERMINAL_RUN_STATUSES:
        raise ApiError(409, f"run {run_id} has already ended ({automation_run_status(run.status)})")
    handle = services.temporal.get_workflow_handle(run.id)
    try:
        await handle.execute_update(
            CONTROL_UPDATE,
            Control(action="kill", by=user.id),
            rpc_timeout=CONTROL_TIMEOUT,
        )
    except WorkflowUpdateFailedError as exc:
        raise ApiError(409, f"run {run_id} cannot be cancelled now: {exc.cause}") from exc
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise ApiError(409, f"run {run_id} has already ended") from exc
        raise ApiError(503, "the workflow service is unavailable; try again") from exc
    return {"run_id": run_id, "status": "cancelled"}


def automation_of_token(session: Session, token: str) -> Definition:
    """The live automation whose webhook token is `token`, or 404 (compared in constant time,
    so a probe learns nothing from how long a miss takes)."""
    found = None
    for row in catalog.live_automations(session):
        known = str(row.spec.get("webhook_token") or "")
        if known and hmac.compare_digest(known.encode(), token.encode()[:128]):
            found = row
    if found is None:
        raise ApiError(404, "unknown webhook")
    return found


def signature_ok(secret: str, body: bytes, header: str | None) -> bool:
    """Whether `X-Hub-Signature-256` is `sha256=<hex HMAC-SHA256 of the body>` under `secret`."""
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return header is not None and hmac.compare_digest(expected.encode(), header.strip().encode())


def prepare_webhook(
    session: Session, box: SecretBox, token: str, body: bytes, signature: str | None, max_runs: int
) -> LaunchRequest:
    """Check a webhook call (token, then signature when the automation has a secret) and
    build its run, attributed to the automation's creator."""
    row = automation_of_token(session, token)
    sealed = row.spec.get("webhook_secret")
    if sealed is not None:
        secret = open_secret(session, box, sealed[SECRET_REF])
        if not signature_ok(secret, body, signature):
            raise ApiError(401, "X-Hub-Signature-256: missing or wrong signature")
    payload = webhook_payload(body)
    owner = session.get(User, row.created_by) if row.created_by else None
    if owner is None:
        raise ApiError(409, "the automation's owner no longer exists; recreate its webhook")
    trigger = runs.Trigger("webhook", owner, {}, payload)
    return runs.prepare_row_run(session, row, trigger, max_runs)


def webhook_payload(body: bytes) -> Any:
    """The JSON body of a webhook call (None when empty); 400 when it is not JSON."""
    if not body.strip():
        return None
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise ApiError(400, f"body: invalid JSON: {exc}") from exc


async def run_webhook(
    services: Services, token: str, body: bytes, signature: str | None
) -> schemas.Started:
    """`POST /api/automations/webhook/{token}`."""
    request = await write(
        services.sessions,
        prepare_webhook,
        services.box,
        token,
        body,
        signature,
        services.settings.automation_max_runs,
    )
    return await started(services, request)


def new_token(session: Session, automation_id: str) -> dict[str, str]:
    """Replace the automation's webhook token; the old URL stops working at once."""
    row = catalog.automation_or_404(session, automation_id)
    token = catalog.new_webhook_token()
    row.spec = {**row.spec, "webhook_token": token}
    session.flush()
    return {"webhook_token": token}
