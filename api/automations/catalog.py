"""Automations as stored: a `Definition` of dialect `automations` each, its fields in the spec.

The definition's name is its own id, so two automations may share a display name (NOBA's
do). Bodies are checked whole before anything is written; secrets in params are written as
references in the same transaction as the automation.
"""

from __future__ import annotations

import secrets as token_source
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.automations.ids import automation_engine_id, automation_public_id
from api.automations.params import (
    APPROVAL_MINUTES,
    ICONS,
    ON_TIMEOUT,
    approval_minutes,
    automation_type,
    channel_url,
    channels,
    check_params,
    check_schedule,
    usernames,
)
from api.errors import ApiError, bad_request, not_found
from api.fields import (
    FieldError,
    PutSecret,
    as_bad_request,
    choice,
    flag,
    obj,
    only_keys,
    secret,
    text,
)
from core.notify_urls import masked
from core.secrets import MASK, is_ref
from core.statuses import automation_run_status
from core.store.models import Definition, Run, User, utcnow

DIALECT = "automations"
NAMESPACE = "default"
AUTONOMY = ("execute", "approve", "notify", "disabled")
FIELDS = (
    "name", "type", "params", "config", "icon", "schedule", "enabled", "autonomy",
    "approvers", "description", "webhook_secret", "channels", "approval",
)  # fmt: skip
MAX_SECRET = 1024
# How long a run of an `approve` automation waits for a decision, and what then: NOBA's
# defaults. Minutes may be fractions (a short wait is how a timeout is tried out).
APPROVAL_DEFAULTS: dict[str, Any] = {"timeout_minutes": APPROVAL_MINUTES, "on_timeout": "reject"}


def _label(raw: Mapping[str, Any], key: str, limit: int, *, required: bool = False) -> str | None:
    """A non-blank string (None when absent and not required)."""
    value = raw.get(key)
    if value is None and not required:
        return None
    label = text(value, key, required=True, max_len=limit)
    if not label.strip():
        raise FieldError(key, "must not be blank")
    return label


def _signing_secret(value: Any, path: str) -> str:
    return text(value, path, max_len=MAX_SECRET)


def _notify_channels(
    raw: Mapping[str, Any], put: PutSecret, spec: dict[str, Any]
) -> tuple[list[dict[str, str]], list[str]]:
    """The automation's own channels (`notify` autonomy) as stored, and as shown: each URL's
    masked form, taken before it is sealed; a kept channel keeps what was shown for it."""
    shown_now: dict[str, str] = {}  # path -> masked URL, for the URLs given in clear

    def read(value: Any, path: str) -> str:
        url = channel_url(value, path)
        shown_now[path] = masked(url)
        return url

    before = spec.get("channels_shown") or []
    sealed = channels(raw["channels"], "channels", put, spec.get("channels"), read=read)
    shown = [
        shown_now.get(f"channels[{i}]") or (before[i] if i < len(before) else MASK)
        for i in range(len(sealed))
    ]
    return sealed, shown


def check_approval(value: Any) -> dict[str, Any]:
    """An automation's `approval` policy `{timeout_minutes, on_timeout}`, defaults filled in."""
    policy = {**APPROVAL_DEFAULTS, **obj(value, "approval", required=True)}
    only_keys(policy, "approval", tuple(APPROVAL_DEFAULTS))
    minutes = approval_minutes(policy["timeout_minutes"], "approval.timeout_minutes")
    return {
        "timeout_minutes": int(minutes) if minutes.is_integer() else minutes,
        "on_timeout": choice(policy["on_timeout"], "approval.on_timeout", ON_TIMEOUT),
    }


def approval_policy(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The automation's approval policy, its defaults where it sets none."""
    return {**APPROVAL_DEFAULTS, **(spec.get("approval") or {})}


def merged_spec(
    raw: Any, put: PutSecret, current: Mapping[str, Any] | None = None
) -> tuple[dict[str, Any], bool]:
    """The spec after applying body `raw` (a create, or a partial update of `current`), and
    whether it sets a custom command (admins only). Pure but for `put`."""
    if not isinstance(raw, dict):
        raise FieldError("body", "must be a JSON object")
    only_keys_of_body(raw)
    if "params" in raw and "config" in raw:
        raise FieldError("config", "give params or config (its older name), not both")
    if "config" in raw:
        raw = {**{k: v for k, v in raw.items() if k != "config"}, "params": raw["config"]}
    spec = dict(current or {})
    creating = current is None
    name = _label(raw, "name", 200, required=creating)
    if name is not None:
        spec["name"] = name.strip()
    kind = automation_type(raw.get("type")) if "type" in raw or creating else spec["type"]
    retyped = kind != spec.get("type")
    spec["type"] = kind
    admin_only = False
    stored = spec.get("params")
    if "params" in raw:
        checked = check_params(kind, raw["params"], put, stored)
    elif retyped:
        # The stored params again, under the new type: their references stay as they are.
        checked = check_params(kind, shown_params(stored or {}), put, stored)
    if "params" in raw or retyped:
        spec["params"] = checked.params
        admin_only = checked.admin_only
    for key, limit in (("icon", 100), ("description", 2000)):
        value = _label(raw, key, limit) if raw.get(key) != "" else None
        if value is not None:
            spec[key] = value
    spec.setdefault("icon", ICONS[kind])
    if "schedule" in raw:
        spec["schedule"] = check_schedule(raw["schedule"])
    if raw.get("enabled") is not None:
        spec["enabled"] = flag(raw["enabled"], "enabled")
    if "autonomy" in raw:
        spec["autonomy"] = choice(raw["autonomy"], "autonomy", AUTONOMY, default="execute")
    if raw.get("approvers") is not None:
        spec["approvers"] = usernames(raw["approvers"], "approvers")
    if "approval" in raw:
        # Partial like the rest of an update: the keys given replace those set; null resets.
        if raw["approval"] is None:
            spec.pop("approval", None)
        else:
            given = raw["approval"]
            current_policy = spec.get("approval") or {}
            merged = {**current_policy, **given} if isinstance(given, dict) else given
            spec["approval"] = check_approval(merged)
    if "webhook_secret" in raw:
        sealed = secret(
            raw["webhook_secret"], "webhook_secret", put,
            previous=spec.get("webhook_secret"), read=_signing_secret,
        )  # fmt: skip
        if sealed is None:
            spec.pop("webhook_secret", None)
        else:
            spec["webhook_secret"] = sealed
    if "channels" in raw:
        spec["channels"], spec["channels_shown"] = _notify_channels(raw, put, spec)
    for key, default in (("schedule", None), ("enabled", True), ("autonomy", "execute")):
        spec.setdefault(key, default)
    if spec["autonomy"] == "notify" and not spec.get("channels"):
        raise FieldError("channels", "autonomy notify needs at least one notification URL")
    spec.setdefault("approvers", [])
    spec.setdefault("webhook_token", new_webhook_token())
    return spec, admin_only


def only_keys_of_body(raw: Mapping[str, Any]) -> None:
    """FieldError naming the first field of an automation body that is not one."""
    for key in raw:
        if key not in FIELDS:
            raise FieldError(str(key), "unknown field; allowed: " + ", ".join(FIELDS))


def new_webhook_token() -> str:
    """A webhook URL's secret part: 256 bits, as NOBA's tokens are."""
    return token_source.token_hex(32)


def check_approvers(session: Session, spec: Mapping[str, Any]) -> None:
    """Every approver named (on the automation and its approval steps) is a platform user."""
    named = [("approvers", i, n) for i, n in enumerate(spec.get("approvers") or [])]
    for s, step in enumerate((spec.get("params") or {}).get("steps") or []):
        if isinstance(step, dict):
            approval = step["approval"]
            where = f"params.steps[{s}].approval.approvers"
            named += [(where, i, n) for i, n in enumerate(approval["approvers"])]
    for where, i, name in named:
        user = session.scalar(select(User).where(func.lower(User.email) == name))
        if user is None or user.role is None:
            raise bad_request(f"{where}[{i}]: no platform user {name!r}")


def _live(session: Session, engine_id: str | None) -> Definition | None:
    if engine_id is None:
        return None
    row = session.get(Definition, engine_id)
    if row is None or row.dialect != DIALECT or row.deleted_at is not None:
        return None
    return row


def automation_or_404(session: Session, public_id: str) -> Definition:
    """The live automation `auto_…`, or 404."""
    row = _live(session, automation_engine_id(public_id))
    if row is None:
        raise not_found(f"automation {public_id} not found")
    return row


def require_admin_for(user: User, admin_only: bool) -> None:
    """A custom command is set by admins only (operators pick library scripts)."""
    if admin_only and user.role != "admin":
        raise ApiError(403, "params.command: only an admin may set a custom command")


def check_body(session: Session, user: User, raw: Any) -> None:
    """What `create` checks, without writing anything (not even the body's secrets)."""
    try:
        spec, admin_only = merged_spec(raw, lambda _: "unwritten")
    except FieldError as exc:
        raise as_bad_request(exc) from exc
    require_admin_for(user, admin_only)
    check_approvers(session, spec)


def create(session: Session, user: User, raw: Any, put: PutSecret) -> Definition:
    """Store a new automation; the caller commits."""
    try:
        spec, admin_only = merged_spec(raw, put)
    except FieldError as exc:
        raise as_bad_request(exc) from exc
    require_admin_for(user, admin_only)
    check_approvers(session, spec)
    engine_id = str(uuid.uuid4())
    row = Definition(
        id=engine_id,
        dialect=DIALECT,
        namespace=NAMESPACE,
        name=engine_id,
        spec=spec,
        source="API",
        created_by=user.id,
    )
    session.add(row)
    session.flush()
    return row


def update(session: Session, user: User, public_id: str, raw: Any, put: PutSecret) -> Definition:
    """Merge `raw` into the automation; the caller commits."""
    row = automation_or_404(session, public_id)
    try:
        spec, admin_only = merged_spec(raw, put, row.spec)
    except FieldError as exc:
        raise as_bad_request(exc) from exc
    require_admin_for(user, admin_only)
    check_approvers(session, spec)
    row.spec = spec
    row.updated_at = utcnow()
    session.flush()
    return row


def delete(session: Session, public_id: str) -> Definition:
    """Retire the automation (its runs stay readable); the caller commits."""
    row = automation_or_404(session, public_id)
    row.deleted_at = utcnow()
    session.flush()
    return row


def live_automations(session: Session) -> list[Definition]:
    """Every live automation, oldest first."""
    return list(
        session.scalars(
            select(Definition)
            .where(Definition.dialect == DIALECT, Definition.deleted_at.is_(None))
            .order_by(Definition.created_at, Definition.id)
        )
    )


def epoch(value: datetime | None) -> int | None:
    """Epoch seconds, as NOBA reports times."""
    return int(value.timestamp()) if value is not None else None


def last_runs(session: Session, definition_ids: list[str]) -> dict[str, Run]:
    """Each automation's latest run."""
    if not definition_ids:
        return {}
    latest = (
        select(Run.definition_id, func.max(Run.created_at).label("at"))
        .where(Run.definition_id.in_(definition_ids))
        .group_by(Run.definition_id)
        .subquery()
    )
    rows = session.scalars(
        select(Run).join(
            latest, (Run.definition_id == latest.c.definition_id) & (Run.created_at == latest.c.at)
        )
    )
    return {run.definition_id: run for run in rows}


def shown_params(value: Any) -> Any:
    """Params as read back: secret references masked."""
    if is_ref(value):
        return MASK
    if isinstance(value, dict):
        return {k: shown_params(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shown_params(v) for v in value]
    return value


def item(row: Definition, last: Run | None, *, operator: bool) -> dict[str, Any]:
    """An automation as listed; operators also see how it runs and its webhook token."""
    spec = row.spec
    out: dict[str, Any] = {
        "id": automation_public_id(row.id),
        "name": spec["name"],
        "type": spec["type"],
        "icon": spec["icon"],
        "schedule": spec.get("schedule"),
        "last_run": epoch(last.created_at) if last is not None else None,
        "last_status": automation_run_status(last.status) if last is not None else None,
    }
    if operator:
        out |= {
            "params": shown_params(spec.get("params") or {}),
            "enabled": spec.get("enabled", True),
            "autonomy": spec.get("autonomy", "execute"),
            "approvers": spec.get("approvers") or [],
            "channels": list(spec.get("channels_shown") or []),
            "approval": approval_policy(spec),
            "description": spec.get("description", ""),
            "webhook_token": spec.get("webhook_token"),
            "webhook_signed": "webhook_secret" in spec,
        }
    return out
