"""hoop sessions: an exec renders a runbook and runs it as a durable run; reads show the run.

A session is a run of the connection's definition whose one action (kind `runbook`) sends the
rendered text to the connection's command. Every value that becomes an environment variable
or a file (request env_vars, `asenv` parameters, the connection's own secrets) travels to the
worker as a reference to an encrypted value.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from temporalio.client import WorkflowFailureError
from temporalio.service import RPCError

from api.db import read, write
from api.deps import Services
from api.errors import ApiError, bad_request, not_found
from api.hoop import schemas
from api.hoop.client_args import ClientArgsError, check_client_args
from api.hoop.connections import DIALECT, get_connection, secret_writer
from api.hoop.env_vars import EnvVarsError, parse_env_vars
from api.hoop.repository import RepositoryUnavailable, Snapshot
from api.hoop.runbooks import check_ref_hash, find_runbook, plugin_enabled
from api.launch import LaunchRequest, launch
from core.runbook_templates import Rendered, RunbookInputError, RunbookTemplate
from core.secrets import MASK, SecretBox, refs_in
from core.statuses import (
    TERMINAL_RUN_STATUSES,
    hoop_output_status,
    hoop_session_status,
)
from core.store.models import Definition, Run, RunAction, User
from core.store.users import team_names_of
from workflows.contracts import ActionSpec, GateSpec

NO_EXIT_CODE = -2  # the gateway has no exit code (upstream's nilExitCode)
GROUP_KEY = "group:"


def group_key(group: str) -> str:
    """The gate's approver key of a reviewer group."""
    return GROUP_KEY + group


def connection_or_404(session: Session, name: str) -> Definition:
    """The live connection called `name`, or 404 as upstream words it."""
    row = get_connection(session, name)
    if row is None:
        raise not_found("connection not found")
    return row


def _sensitive(template_params: dict[str, Any], name: str) -> bool:
    spec = template_params.get(name)
    return spec is not None and (spec.asenv is not None or spec.type == "password")


def prepare_exec(
    session: Session,
    box: SecretBox,
    user: User,
    name: str,
    body: schemas.ExecRequest,
    snapshot: Snapshot,
    output_cap: int,
) -> LaunchRequest:
    """Check an exec request and write its secrets; the caller launches the run."""
    connection = connection_or_404(session, name)
    plugin_enabled(connection)
    check_ref_hash(snapshot, body.ref_hash)
    template = find_runbook(snapshot, connection, body.file_name)
    parameters = body.parameters or {}
    client_args = body.client_args or []
    try:
        check_client_args(
            client_args, connection.spec.get("allowed_client_args") or [], connection.name
        )
        env_vars = parse_env_vars(body.env_vars)
        rendered = template.render(parameters)
    except (ClientArgsError, RunbookInputError, EnvVarsError) as exc:
        raise bad_request(str(exc)) from exc

    secret = secret_writer(session, box)
    return launch_request(
        connection,
        user.id,
        body,
        template,
        rendered,
        commit=snapshot.commit,
        client_args=client_args,
        env_vars={k: secret(v) for k, v in env_vars.env.items()},
        files={k: secret(v) for k, v in env_vars.files.items()},
        template_env={k: secret(v) for k, v in rendered.env.items()},
        output_cap=output_cap,
    )


def launch_request(
    connection: Definition,
    creator: str,
    body: schemas.ExecRequest,
    template: RunbookTemplate,
    rendered: Rendered,
    *,
    commit: str,
    client_args: list[str],
    env_vars: dict[str, Any],
    files: dict[str, Any],
    template_env: dict[str, Any],
    output_cap: int,
) -> LaunchRequest:
    """A checked exec in the engine's words: one `runbook` action sending the rendered text to
    the connection's command, gated by the connection's reviewer groups. The values of
    `env_vars`, `files` and `template_env` (what the template's `asenv` sets) are sealed."""
    spec = connection.spec
    action_spec: dict[str, Any] = {
        "connection": {
            "name": connection.name,
            "type": spec["type"],
            "subtype": spec.get("subtype") or "",
            "command": list(spec.get("command") or []),
            "env": dict(spec.get("env") or {}),
            "dsn": spec.get("dsn"),
        },
        "input": rendered.text,
        "client_args": client_args,
        "env_vars": env_vars,
        "files": files,
        # Upstream: a request's env vars never override what the template's asenv sets.
        "template_env": template_env,
        "output_cap": output_cap,
    }
    reviewers = list(spec.get("reviewers") or [])
    parameters = body.parameters or {}
    return LaunchRequest(
        definition_id=connection.id,
        dialect=DIALECT,
        title=f"{connection.name}: {template.file_name}",
        creator=creator,
        # The runbook was rendered here already: rendering it again would evaluate `{{` in
        # the values substituted into it.
        actions=[
            ActionSpec(name=template.file_name, kind="runbook", spec=action_spec, templated=False)
        ],
        gate=GateSpec(rule="all", people=[], teams=[group_key(g) for g in reviewers])
        if reviewers
        else None,
        resource_id=connection.id,
        parameters={
            "file_name": template.file_name,
            "commit": commit,
            "parameters": {
                k: MASK if _sensitive(template.params, k) else v for k, v in parameters.items()
            },
            "metadata": body.metadata or {},
            "client_args": client_args,
            "env_var_names": sorted(
                [f"envvar:{k}" for k in env_vars] + [f"filesystem:{k}" for k in files]
            ),
            "input": rendered.text,
            "reviewed": bool(reviewers),
            "review_groups": reviewers,
        },
        secret_refs=refs_in(action_spec),
    )


async def snapshot_of(services: Services) -> Snapshot:
    """The runbook repository's current snapshot (git work runs on a thread)."""
    try:
        return await run_in_threadpool(services.runbooks.snapshot)
    except RepositoryUnavailable as exc:
        message = str(exc)
        status = 404 if message.startswith("plugin not found") else 503
        raise ApiError(status, message) from exc


async def exec_runbook(
    services: Services, user: User, name: str, body: schemas.ExecRequest, base_url: str
) -> tuple[int, schemas.ExecResponse]:
    """Run a runbook on a connection; (200, result) when it ended or awaits review, (202,
    running) when it outlasted the wait."""
    await read(services.sessions, connection_or_404, name)
    snapshot = await snapshot_of(services)
    settings = services.settings
    request = await write(
        services.sessions,
        prepare_exec,
        services.box,
        user,
        name,
        body,
        snapshot,
        settings.runbooks_output_cap_bytes,
    )
    run = await launch(services, request)
    session_id = run.id
    if run.parameters["reviewed"]:
        return 200, schemas.ExecResponse(
            execution_time=0,
            exit_code=0,
            has_review=True,
            output=f"{base_url.rstrip('/')}/api/reviews/{session_id}",
            output_status="success",
            session_id=session_id,
            truncated=False,
        )
    handle = services.temporal.get_workflow_handle(session_id)
    try:
        await asyncio.wait_for(handle.result(), timeout=settings.runbooks_exec_wait_seconds)
    except TimeoutError:
        return 202, running_response(session_id)
    except WorkflowFailureError:
        pass  # terminated from outside: the recorded state says what there is to say
    except RPCError as exc:
        raise ApiError(503, "the workflow service is unavailable; poll the session") from exc
    view = await read(services.sessions, session_outcome, session_id)
    return 200, view


def running_response(session_id: str) -> schemas.ExecResponse:
    """The 202 answer: the session goes on; its id is how to follow it."""
    return schemas.ExecResponse(
        execution_time=0,
        exit_code=NO_EXIT_CODE,
        has_review=False,
        output="",
        output_status="running",
        session_id=session_id,
        truncated=False,
    )


def _action_of(session: Session, run_id: str) -> RunAction | None:
    return session.scalar(select(RunAction).where(RunAction.run_id == run_id, RunAction.idx == 0))


def _outcome(run: Run, action: RunAction | None) -> schemas.ExecResponse:
    result = (action.result if action is not None else None) or {}
    reviewed = bool(run.parameters.get("reviewed"))
    if run.status not in TERMINAL_RUN_STATUSES:
        response = running_response(run.id)
        return response.model_copy(update={"has_review": reviewed})
    # The stored result is Mission Control's `{stdout, stderr, exitCode}` plus the executor's data.
    exit_code = result.get("exitCode")
    output = result.get("stdout") or ""
    error = (action.error if action is not None else None) or run.error
    if exit_code is None and not output and error:
        output = error  # upstream puts an internal failure's text in the output
    elapsed = result.get("elapsed_ms")
    if elapsed is None and action is not None and action.start_time and action.end_time:
        elapsed = int((action.end_time - action.start_time).total_seconds() * 1000)
    return schemas.ExecResponse(
        execution_time=int(elapsed or 0),
        exit_code=NO_EXIT_CODE if exit_code is None else int(exit_code),
        has_review=reviewed,
        output=output,
        output_status=hoop_output_status(run.status),
        session_id=run.id,
        truncated=bool(result.get("truncated")),
    )


def session_outcome(session: Session, session_id: str) -> schemas.ExecResponse:
    """A finished (or still running) session as an exec answers it."""
    run = session.get(Run, session_id)
    if run is None:
        raise not_found("session not found")
    return _outcome(run, _action_of(session, session_id))


def may_see(session: Session, user: User, run: Run) -> bool:
    """Whether `user` may read a session (and its review): admins, its owner, its reviewers."""
    if user.role == "admin" or run.created_by == user.id:
        return True
    return bool(set(run.parameters.get("review_groups") or []) & team_names_of(session, user.id))


def session_view(session: Session, user: User, session_id: str) -> dict[str, Any]:
    """`GET /api/sessions/{id}`: hoop's session document, with the exec outcome."""
    run = session.get(Run, session_id) if is_uuid(session_id) else None
    connection = session.get(Definition, run.definition_id) if run is not None else None
    if run is None or run.dialect != DIALECT or connection is None:
        raise not_found("session not found")
    if not may_see(session, user, run):
        raise not_found("session not found")
    owner = session.get(User, run.created_by) if run.created_by else None
    params = run.parameters
    outcome = _outcome(run, _action_of(session, run.id))
    reviewed = bool(params.get("reviewed"))
    return {
        "id": run.id,
        "connection": connection.name,
        "connection_subtype": connection.spec.get("subtype") or "",
        "type": connection.spec["type"],
        "verb": "exec",
        "status": hoop_session_status(run.status, reviewed=reviewed),
        "user": owner.email if owner else None,
        "user_id": run.created_by,
        "user_name": (owner.name or owner.email) if owner else None,
        "script": {"data": params.get("input", "")},
        "labels": {
            "runbookFile": params.get("file_name", ""),
            "runbookParameters": params.get("parameters", {}),
            "runbookCommit": params.get("commit", ""),
        },
        "metadata": params.get("metadata", {}),
        "client_args": params.get("client_args", []),
        "env_vars": params.get("env_var_names", []),
        "start_date": run.created_at.isoformat(),
        "end_date": run.end_time.isoformat() if run.end_time else None,
        "exit_code": None if run.status not in TERMINAL_RUN_STATUSES else outcome.exit_code,
        "output": outcome.output,
        "output_status": outcome.output_status,
        "truncated": outcome.truncated,
        "execution_time": outcome.execution_time,
    }


def is_uuid(value: str) -> bool:
    """Whether `value` is a UUID (ids of runs are)."""
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
