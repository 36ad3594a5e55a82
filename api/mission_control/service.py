"""Mission Control operations: what each route does, between parsing and the response."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.db import read, write
from api.deps import Services
from api.errors import ApiError, bad_request, not_found
from api.fields import FieldError
from api.launch import RESOURCE_KINDS, LaunchRequest, launch
from api.mission_control import schemas
from api.mission_control.filters import playbook_applies
from api.mission_control.parameters import resolve_params, seal_params
from api.mission_control.playbooks import (
    action_specs,
    gate_for,
    has_approvers,
    secret_refs,
)
from api.runs import GateRefused, send_decisions
from core.artifacts import ArtifactNotFound, ArtifactStore
from core.secrets import MASK, SecretBox, is_ref, mask_refs, refs_in, resolve_refs
from core.statuses import RunStatus, mission_control_run_status
from core.store.models import Artifact, Definition, Resource, Run, Team, User
from core.store.runs import actions_of, approvals_of
from core.store.secret_values import open_secret, put_secret
from core.store.users import team_ids_of
from core.timefmt import rfc3339
from workflows.contracts import Decision

DIALECT = "mission_control"


def parse_uuid(value: str, field: str) -> str:
    """The canonical form of a UUID, or 400 naming the field."""
    try:
        return str(uuid.UUID(value))
    except (ValueError, AttributeError, TypeError) as exc:
        raise bad_request(f"{field}: invalid UUID {value!r}") from exc


def get_playbook(session: Session, playbook_id: str) -> Definition:
    """A live playbook, or 404 in Mission Control's words."""
    playbook = session.get(Definition, playbook_id)
    if playbook is None or playbook.dialect != DIALECT or playbook.deleted_at is not None:
        raise not_found(f"playbook(id={playbook_id}) not found")
    return playbook


def get_resource(session: Session, kind: str, resource_id: str) -> Resource:
    """A catalog item of `kind`, or 404 `config(id=...) not found`."""
    resource = session.get(Resource, resource_id)
    if resource is None or resource.kind != kind:
        raise not_found(f"{kind}(id={resource_id}) not found")
    return resource


def resource_env(resource: Resource) -> dict[str, Any]:
    """A resource as templates see it (`.config.name`, `.check.labels.pod`)."""
    return {
        "id": resource.id,
        "name": resource.name,
        "type": resource.type,
        "tags": dict(resource.tags),
        "labels": dict(resource.tags),
    }


def approver_keys_of(session: Session, user: User, spec: dict[str, Any]) -> list[str]:
    """The gate keys `user` may approve under: their email, and each listed team of theirs."""
    approvers = (spec.get("approval") or {}).get("approvers") or {}
    keys = []
    if user.email.lower() in approvers.get("people", []):
        keys.append(f"person:{user.email.lower()}")
    listed = approvers.get("teams") or []
    if listed:
        team_ids = team_ids_of(session, user.id)
        names = session.scalars(select(Team.name).where(Team.id.in_(team_ids))).all()
        keys += [f"team:{name}" for name in listed if name in names]
    return keys


async def create_run(
    services: Services, user: User, body: schemas.RunRequest
) -> schemas.RunCreated:
    """Validate a run request, store the run and start its workflow."""
    # A write: the values of secret parameters are stored (encrypted) as the run is prepared.
    request = await write(services.sessions, prepare_run, services.box, user, body)
    run = await launch(services, request)
    starts_at = rfc3339(run.scheduled_time, fraction=False) or ""
    return schemas.RunCreated(run_id=run.id, starts_at=starts_at)


def prepare_run(
    session: Session, box: SecretBox, user: User, body: schemas.RunRequest
) -> LaunchRequest:
    """Check a run request against the playbook, its resource and parameters.

    The only rows it writes are the secret parameters' encrypted values; the run row itself
    is written when the request is launched.
    """
    if not body.id:
        raise bad_request("playbook id is required")
    playbook = get_playbook(session, parse_uuid(body.id, "id"))
    given = {
        kind: getattr(body, f"{kind}_id") for kind in RESOURCE_KINDS if getattr(body, f"{kind}_id")
    }
    if len(given) > 1:
        raise bad_request("provide none or exactly one of config_id, component_id, or check_id")
    env: dict[str, Any] = {"config": None, "check": None, "component": None}
    resource: Resource | None = None
    for kind, value in given.items():
        resource = get_resource(session, kind, parse_uuid(value, f"{kind}_id"))
        env[kind] = resource_env(resource)
    spec = playbook.spec
    # Secret defaults are stored as references: open them, since other defaults may use them.
    declared = resolve_refs(
        spec.get("parameters") or [], lambda ref: open_secret(session, box, ref)
    )
    try:
        values = resolve_params(declared, body.params or {}, env)
    except FieldError as exc:
        raise bad_request(f"invalid parameters: {exc}") from exc
    params = seal_params(declared, values, lambda value: put_secret(session, box, value))
    return launch_request(
        playbook,
        resource,
        {**env, "params": params},
        user.id,
        approver_keys_of(session, user, spec),
    )


def launch_request(
    playbook: Definition,
    resource: Resource | None,
    env: dict[str, Any],
    creator: str,
    approved: list[str],
) -> LaunchRequest:
    """A checked run of `playbook` in the engine's words: its actions templated with `env`
    (whose `params` are the run's sealed parameters), gated by its approvers, the creator's
    own approver keys already `approved`."""
    params: dict[str, Any] = env.get("params") or {}
    return LaunchRequest(
        definition_id=playbook.id,
        dialect=DIALECT,
        title=f"{playbook.namespace}/{playbook.name}",
        creator=creator,
        actions=action_specs(playbook.spec),
        gate=gate_for(playbook.spec, approved),
        resource_kind=resource.kind if resource else "",
        resource_id=resource.id if resource else "",
        parameters=params,
        template_env=env,
        secret_refs=secret_refs(playbook.spec) + refs_in(params),
    )


async def approve_run(services: Services, user: User, playbook_id: str, run_id: str) -> None:
    """Record `user`'s approval of a pending run, opening its gate once the rule is met."""
    run_key, fresh = await read(services.sessions, approvals_to_give, user, playbook_id, run_id)
    decisions = [Decision(approve=True, approver_key=key, by=user.id) for key in fresh]
    try:
        await send_decisions(services.sessions, services.temporal, run_key, decisions)
    except GateRefused as exc:
        if exc.kind == "NotApprover":
            raise ApiError(403, "you are not allowed to approve this playbook run") from exc
        raise ApiError(409, "playbook run is not pending approval") from exc


def approvals_to_give(
    session: Session, user: User, playbook_id: str, run_id: str
) -> tuple[str, list[str]]:
    """The run and the approver keys `user` has not yet given it (none: nothing to do)."""
    playbook = get_playbook(session, parse_uuid(playbook_id, "playbook_id"))
    run = session.get(Run, parse_uuid(run_id, "run_id"))
    if run is None or run.definition_id != playbook.id:
        raise not_found(f"playbook run(id={run_id}) not found")
    if not has_approvers(playbook.spec):
        raise bad_request("this playbook does not require approval")
    keys = approver_keys_of(session, user, playbook.spec)
    if not keys:
        raise ApiError(403, "you are not allowed to approve this playbook run")
    already = {a.approver_key for a in approvals_of(session, run.id)}
    fresh = [k for k in keys if k not in already]
    if run.status != RunStatus.PENDING_APPROVAL:
        if not fresh:
            return run.id, []  # a repeated approval by the same principal changes nothing
        raise ApiError(
            409,
            f"playbook run is not pending approval (status: "
            f"{mission_control_run_status(run.status)})",
        )
    return run.id, fresh


def run_view(session: Session, run_id: str) -> schemas.PlaybookRun:
    """A run as `GET /playbook/run/{id}` shows it."""
    run = session.get(Run, parse_uuid(run_id, "id"))
    if run is None or run.dialect != DIALECT:
        raise not_found(f"playbook run(id={run_id}) not found")
    actions = [
        schemas.RunAction(
            id=a.id,
            name=a.name,
            playbook_run_id=run.id,
            status=a.status,
            scheduled_time=rfc3339(a.scheduled_time),
            start_time=rfc3339(a.start_time),
            end_time=rfc3339(a.end_time),
            result=a.result,
            error=a.error,
        )
        for a in actions_of(session, run.id)
    ]
    return schemas.PlaybookRun(
        id=run.id,
        playbook_id=run.definition_id,
        status=mission_control_run_status(run.status),
        created_at=rfc3339(run.created_at) or "",
        scheduled_time=rfc3339(run.scheduled_time) or "",
        start_time=rfc3339(run.start_time),
        end_time=rfc3339(run.end_time),
        created_by=run.created_by,
        component_id=run.component_id,
        check_id=run.check_id,
        config_id=run.config_id,
        parameters={
            str(k): MASK if is_ref(v) else str(v) for k, v in (run.parameters or {}).items()
        },
        agent_id=run.agent_id,
        error=run.error,
        queue_ms=run.queue_ms,
        actions=actions,
    )


def playbook_view(playbook: Definition) -> schemas.Playbook:
    """A playbook row, its secrets masked."""
    spec = mask_refs(playbook.spec)
    return schemas.Playbook(
        id=playbook.id,
        name=playbook.name,
        namespace=playbook.namespace,
        spec=spec,
        parameters=spec.get("parameters") or [],
        source=playbook.source,
        created_by=playbook.created_by,
        created_at=rfc3339(playbook.created_at) or "",
        updated_at=rfc3339(playbook.updated_at) or "",
        deleted_at=rfc3339(playbook.deleted_at),
    )


def playbooks_for(session: Session, query: dict[str, str | None]) -> list[schemas.Playbook]:
    """The playbooks whose filters match exactly one named resource."""
    given = {kind: value for kind, value in query.items() if value}
    if len(given) != 1:
        raise bad_request("provide exactly one of config_id, check_id or component_id")
    kind, value = next(iter(given.items()))
    resource = get_resource(session, kind, parse_uuid(value, f"{kind}_id"))
    playbooks = session.scalars(
        select(Definition)
        .where(Definition.dialect == DIALECT, Definition.deleted_at.is_(None))
        .order_by(Definition.name)
    )
    return [
        playbook_view(p)
        for p in playbooks
        if playbook_applies(p.spec, kind, resource.type, resource.tags)
    ]


def artifact_view(artifact: Artifact) -> schemas.Artifact:
    """An artifact row."""
    created = rfc3339(artifact.created_at) or ""
    return schemas.Artifact(
        id=artifact.id,
        playbook_run_action_id=artifact.run_action_id,
        path=artifact.path,
        filename=artifact.filename,
        size=artifact.size,
        content_type=artifact.content_type,
        checksum=artifact.checksum,
        created_at=created,
        updated_at=created,
    )


def artifacts_of_run(session: Session, run_id: str) -> list[schemas.Artifact]:
    """The artifacts of a run ([] when it has none; 404 when there is no such playbook run:
    the runs of other APIs, Runner accounts' among them, are not shown here)."""
    run = session.get(Run, parse_uuid(run_id, "run_id"))
    if run is None or run.dialect != DIALECT:
        raise not_found(f"playbook run(id={run_id}) not found")
    rows = session.scalars(
        select(Artifact).where(Artifact.run_id == run.id).order_by(Artifact.created_at)
    )
    return [artifact_view(a) for a in rows]


def get_artifact(session: Session, artifact_id: str) -> Artifact:
    """An artifact of a playbook run, or 404."""
    artifact = session.get(Artifact, parse_uuid(artifact_id, "artifact_id"))
    run = session.get(Run, artifact.run_id) if artifact is not None else None
    if artifact is None or run is None or run.dialect != DIALECT:
        raise not_found(f"artifact(id={artifact_id}) not found")
    return artifact


def open_artifact(store: ArtifactStore, artifact: Artifact) -> Iterator[bytes]:
    """An artifact's bytes from the store, or 404 when the store no longer has them."""
    try:
        return store.open(artifact.storage_key)
    except ArtifactNotFound as exc:
        raise not_found(f"artifact(id={artifact.id}) content not found") from exc


def content_disposition(filename: str) -> str:
    """An attachment header for any file name (RFC 6266: an ASCII fallback and UTF-8 form)."""
    fallback = "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "_" for c in filename)
    header = f'attachment; filename="{fallback}"'
    if fallback != filename:
        header += f"; filename*=UTF-8''{quote(filename, safe='')}"
    return header


def download_headers(artifact: Artifact) -> dict[str, str]:
    """The headers of an artifact download: its stored type exactly, length and name."""
    return {
        "Content-Type": artifact.content_type,
        "Content-Length": str(artifact.size),
        "Content-Disposition": content_disposition(artifact.filename),
    }
