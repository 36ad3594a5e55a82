"""An automation's `params`, checked and normalised per type (pure: no database, no network).

Each type's reader returns the params as stored: unknown keys refused, defaults filled in,
secret values (webhook header values, notification channels) replaced by references through
`put`. Read with the field kit (api/fields.py): errors name the field as `params.<key>`, and
the mask sent back on an update keeps the reference stored at the same place before.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from api.automations.ids import automation_engine_id
from api.fields import (
    FieldError,
    PutSecret,
    Read,
    array,
    choice,
    integer,
    kept_secret,
    number,
    obj,
    only_keys,
    secret,
    string_list,
    text,
)
from core.cron import CronError, parse_cron
from core.notify_urls import MASK as URL_MASK
from core.notify_urls import check_channel
from core.script_library import SCRIPTS
from core.secrets import MASK, SECRET_REF, is_ref

MAX_COMMAND = 64 * 1024
MAX_TEXT = 64 * 1024
MAX_NAME = 200
MAX_STEPS = 50
MAX_ARGS = 50
MAX_ARG = 4096
MAX_HEADERS = 50
MAX_HEADER_VALUE = 8192
MAX_URL = 4096
MAX_CHANNELS = 20
MAX_APPROVERS = 100
MAX_USERNAME = 320
DEFAULT_TIMEOUT = 300
WEBHOOK_TIMEOUT = 30
MAX_TIMEOUT = 7 * 24 * 3600
APPROVAL_MINUTES = 60  # NOBA's timeout_minutes default
MAX_APPROVAL_MINUTES = 43200  # 30 days
SERVICE_ACTIONS = ("start", "stop", "restart")
ON_TIMEOUT = ("approve", "reject")
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD")
# systemd unit names: letters, digits and `:-_.\@`; never an option (a leading `-`).
_UNIT = re.compile(r"^[A-Za-z0-9:_.\\@][A-Za-z0-9:_.\\@-]{0,255}$")
_HOST = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
_HEADER = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,200}$")

# The document's types, the guide's, and the alias NOBA's code uses for service_control.
TYPES = (
    "script",
    "service_control",
    "agent_command",
    "webhook",
    "notification",
    "workflow",
    "composite",
)
ALIASES = {"service": "service_control"}
ICONS = {
    "script": "fa-terminal",
    "service_control": "fa-cogs",
    "agent_command": "fa-server",
    "webhook": "fa-globe",
    "notification": "fa-bell",
    "workflow": "fa-project-diagram",
    "composite": "fa-layer-group",
}


@dataclass(frozen=True)
class Checked:
    """Params as stored, and whether setting them takes an admin (a custom command)."""

    params: dict[str, Any]
    admin_only: bool = False


def automation_type(value: Any) -> str:
    """The canonical type name; FieldError naming `type` otherwise."""
    if not isinstance(value, str) or not value:
        raise FieldError("type", "is required, one of " + ", ".join(TYPES))
    name = ALIASES.get(value, value)
    if name not in TYPES:
        raise FieldError("type", f"unknown type {value[:MAX_NAME]!r}; one of " + ", ".join(TYPES))
    return name


def check_schedule(value: Any) -> str | None:
    """A 5-field cron expression, or None for no schedule."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > MAX_NAME:
        raise FieldError("schedule", "must be a 5-field cron expression")
    try:
        parse_cron(value)
    except CronError as exc:
        raise FieldError("schedule", str(exc)) from exc
    return value


def _timeout(params: dict[str, Any], default: int = DEFAULT_TIMEOUT) -> int:
    return integer(
        params.get("timeout"),
        "params.timeout",
        low=1,
        high=MAX_TIMEOUT,
        default=default,
        unit="seconds",
    )


def _host(params: dict[str, Any], *keys: str, required: bool) -> str:
    """A host's name (the `kind: Host` it names), under the first of `keys` given."""
    key = next((k for k in keys if params.get(k) not in (None, "")), keys[0])
    path = f"params.{key}"
    value = text(params.get(key), path, required=required, max_len=MAX_NAME)
    if value and not _HOST.match(value):
        raise FieldError(path, "must be a host name (letters, digits, '.', '_', '-')")
    return value


def _script(params: dict[str, Any]) -> Checked:
    only_keys(params, "params", ("command", "script", "args", "timeout"))
    command = text(params.get("command"), "params.command", max_len=MAX_COMMAND, allow_nul=False)
    script = text(params.get("script"), "params.script", max_len=MAX_NAME)
    if bool(command) == bool(script):
        raise FieldError("params.command", "give either command (bash) or script (a library name)")
    out: dict[str, Any] = {"timeout": _timeout(params)}
    if command:
        if "args" in params:
            raise FieldError("params.args", "is taken only with script")
        return Checked({"command": command, **out}, admin_only=True)
    if script not in SCRIPTS:
        raise FieldError(
            "params.script", f"unknown script {script!r}; one of " + ", ".join(SCRIPTS)
        )
    args = string_list(params.get("args"), "params.args", max_items=MAX_ARGS, max_len=MAX_ARG)
    for i, arg in enumerate(args):
        text(arg, f"params.args[{i}]", allow_nul=False)
    return Checked({"script": script, "args": args, **out})


def _service(params: dict[str, Any]) -> Checked:
    only_keys(params, "params", ("service", "action", "host", "timeout"))
    service = text(params.get("service"), "params.service", required=True, max_len=256)
    if not _UNIT.match(service):
        raise FieldError("params.service", "must be a systemd unit name")
    action = choice(params.get("action"), "params.action", SERVICE_ACTIONS, default="restart")
    out: dict[str, Any] = {"service": service, "action": action, "timeout": _timeout(params)}
    host = _host(params, "host", required=False)
    if host:
        out["host"] = host
    return Checked(out)


def _agent_command(params: dict[str, Any]) -> Checked:
    only_keys(params, "params", ("host", "hostname", "agent", "command", "timeout"))
    host = _host(params, "host", "hostname", "agent", required=True)
    command = text(
        params.get("command"), "params.command", required=True, max_len=MAX_COMMAND,
        allow_nul=False,
    )  # fmt: skip
    return Checked({"host": host, "command": command, "timeout": _timeout(params)})


def _header_value(value: Any, path: str) -> str:
    if not isinstance(value, str) or any(c in value for c in "\r\n\0"):
        raise FieldError(path, "must be a one-line string")
    return text(value, path, max_len=MAX_HEADER_VALUE)


def _webhook(params: dict[str, Any], put: PutSecret, previous: dict[str, Any]) -> Checked:
    only_keys(params, "params", ("url", "method", "headers", "body", "timeout"))
    url = text(params.get("url"), "params.url", required=True, max_len=MAX_URL)
    try:
        parts = urlsplit(url)
        web = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:  # a malformed address part, such as an unclosed `[`
        web = False
    if not web:
        raise FieldError("params.url", "must be an http:// or https:// URL")
    method = text(params.get("method"), "params.method") or "POST"
    method = choice(method.upper(), "params.method", HTTP_METHODS)
    headers = obj(params.get("headers"), "params.headers")
    if len(headers) > MAX_HEADERS:
        raise FieldError("params.headers", f"must have at most {MAX_HEADERS} headers")
    stored = previous.get("headers")
    before: dict[str, Any] = stored if isinstance(stored, dict) else {}
    sealed: dict[str, Any] = {}
    for name, value in headers.items():
        path = f"params.headers.{name}"
        if not _HEADER.match(name):
            raise FieldError(path, "is not a header name")
        # Header values are often credentials (Authorization, tokens): all are sealed.
        ref = secret(value, path, put, previous=before.get(name), read=_header_value)
        if ref is not None:
            sealed[name] = ref
    out: dict[str, Any] = {"url": url, "method": method, "headers": sealed}
    body = text(params.get("body"), "params.body", max_len=MAX_TEXT)
    if body:
        out["body"] = body
    out["timeout"] = _timeout(params, WEBHOOK_TIMEOUT)
    return Checked(out)


def _automation_id(value: Any, path: str) -> str:
    if not isinstance(value, str) or automation_engine_id(value) is None:
        raise FieldError(path, "must be an automation id (auto_…)")
    return value


def _ids(params: dict[str, Any], key: str) -> list[str]:
    path = f"params.{key}"
    value = array(params.get(key), path, required=True, max_items=MAX_STEPS)
    if not value:
        raise FieldError(path, f"must list 1 to {MAX_STEPS} automation ids")
    return [_automation_id(item, f"{path}[{i}]") for i, item in enumerate(value)]


def approval_minutes(value: Any, path: str) -> float:
    """An approval's `timeout_minutes`: more than 0 (fractions allowed), at most 30 days."""
    minutes = number(value, path, low=-math.inf, high=math.inf, default=APPROVAL_MINUTES)
    if not 0 < minutes <= MAX_APPROVAL_MINUTES:
        raise FieldError(path, f"must be more than 0 and at most {MAX_APPROVAL_MINUTES} minutes")
    return minutes


def usernames(value: Any, path: str) -> list[str]:
    """A list of platform usernames (emails, any case), lower-cased."""
    names = string_list(value, path, max_items=MAX_APPROVERS, max_len=MAX_USERNAME)
    for i, name in enumerate(names):
        text(name, f"{path}[{i}]", required=True)
    return [name.lower() for name in names]


def _approval_step(raw: Any, path: str) -> dict[str, Any]:
    if not isinstance(raw, dict) or set(raw) != {"approval"}:
        raise FieldError(path, "must be an automation id or {approval: {...}}")
    path += ".approval"
    step = obj(raw["approval"], path, required=True)
    only_keys(step, path, ("message", "approvers", "timeout_minutes", "on_timeout"))
    message = text(step.get("message"), f"{path}.message", max_len=2000) or "Approval required"
    minutes = approval_minutes(step.get("timeout_minutes"), f"{path}.timeout_minutes")
    return {
        "approval": {
            "message": message,
            "approvers": usernames(step.get("approvers"), f"{path}.approvers"),
            # Whole minutes stay whole numbers in what is stored and shown.
            "timeout_minutes": int(minutes) if minutes.is_integer() else minutes,
            "on_timeout": choice(
                step.get("on_timeout"), f"{path}.on_timeout", ON_TIMEOUT, default="reject"
            ),
        }
    }


def _workflow(params: dict[str, Any]) -> Checked:
    only_keys(params, "params", ("steps",))
    steps = array(params.get("steps"), "params.steps", required=True, max_items=MAX_STEPS)
    if not steps:
        raise FieldError("params.steps", f"must have 1 to {MAX_STEPS} steps")
    out: list[Any] = []
    for i, step in enumerate(steps):
        path = f"params.steps[{i}]"
        if isinstance(step, str):
            out.append(_automation_id(step, path))
        else:
            out.append(_approval_step(step, path))
    return Checked({"steps": out})


def _composite(params: dict[str, Any]) -> Checked:
    only_keys(params, "params", ("automations",))
    return Checked({"automations": _ids(params, "automations")})


def channel_url(value: Any, path: str) -> str:
    """An Apprise URL the `notify` action can send to (the check it applies when sending);
    the reason otherwise quotes nothing of the URL but its scheme."""
    url = text(value, path, required=True, max_len=MAX_URL)
    reason = check_channel(url)
    if reason is not None:
        raise FieldError(path, reason)
    return url


def channels(
    value: Any,
    path: str,
    put: PutSecret,
    previous: Any = None,
    *,
    required: bool = False,
    read: Read = channel_url,
) -> list[dict[str, str]]:
    """Notification channels as stored: one reference per URL, each checked before sealing.

    Channel URLs carry tokens and passwords, so they are kept only as references; a mask (or
    the masked form shown, `json://***`) keeps the reference stored at the same index.
    """
    items = array(value, path, required=required, max_items=MAX_CHANNELS)
    if required and not items:
        raise FieldError(path, f"must list 1 to {MAX_CHANNELS} notification URLs")
    before = previous if isinstance(previous, list) else []
    sealed: list[dict[str, str]] = []
    for i, item in enumerate(items):
        where = f"{path}[{i}]"
        kept = before[i] if i < len(before) else None
        if isinstance(item, str) and masked_channel(item):
            sealed.append(kept_secret(kept, where))
            continue
        ref = secret(item, where, put, previous=kept, read=read)
        if ref is None:
            raise FieldError(where, "is required")
        sealed.append(ref)
    return sealed


def masked_channel(value: str) -> bool:
    """Whether `value` is a channel as shown: `json://***` (core.notify_urls.masked), `***`,
    or the kit's own mask."""
    return value.endswith("://" + URL_MASK) or value in (URL_MASK, MASK)


def _notification(params: dict[str, Any], put: PutSecret, previous: dict[str, Any]) -> Checked:
    only_keys(params, "params", ("channels", "message", "title"))
    sealed = channels(
        params.get("channels"), "params.channels", put, previous.get("channels"), required=True
    )
    message = text(params.get("message"), "params.message", required=True, max_len=MAX_TEXT)
    title = text(params.get("title"), "params.title", max_len=MAX_NAME)
    return Checked({"channels": sealed, "message": message, "title": title})


def check_params(kind: str, params: Any, put: PutSecret, previous: Any = None) -> Checked:
    """`params` of an automation of type `kind` (canonical), as stored; `previous` holds the
    params stored before (an update), whose references masked values keep."""
    params = obj(params, "params")
    before = previous if isinstance(previous, dict) else {}
    if kind == "script":
        return _script(params)
    if kind == "service_control":
        return _service(params)
    if kind == "agent_command":
        return _agent_command(params)
    if kind == "webhook":
        return _webhook(params, put, before)
    if kind == "notification":
        return _notification(params, put, before)
    if kind == "workflow":
        return _workflow(params)
    return _composite(params)


def refs_of(channels_stored: Any) -> list[str]:
    """The secret ids of stored channels, in order."""
    return [c[SECRET_REF] for c in channels_stored or [] if is_ref(c)]
