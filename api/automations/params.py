"""An automation's `params`, checked and normalised per type (pure: no database, no network).

Each type's reader returns the params as stored: unknown keys refused, defaults filled in,
secret values (webhook header values) replaced by references through `put`. Errors name
the field as `params.<key>`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from api.automations.ids import automation_engine_id
from core.cron import CronError, parse_cron
from core.script_library import SCRIPTS

PutSecret = Callable[[str], dict[str, str]]

MAX_COMMAND = 64 * 1024
MAX_TEXT = 64 * 1024
MAX_NAME = 200
MAX_STEPS = 50
MAX_ARGS = 50
MAX_HEADERS = 50
DEFAULT_TIMEOUT = 300
WEBHOOK_TIMEOUT = 30
MAX_TIMEOUT = 7 * 24 * 3600
SERVICE_ACTIONS = ("start", "stop", "restart")
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


class ParamsError(ValueError):
    """A bad field; its text names it."""


@dataclass(frozen=True)
class Checked:
    """Params as stored, and whether setting them takes an admin (a custom command)."""

    params: dict[str, Any]
    admin_only: bool = False


def automation_type(value: Any) -> str:
    """The canonical type name; ParamsError naming `type` otherwise."""
    if not isinstance(value, str) or not value:
        raise ParamsError("type: required, one of " + ", ".join(TYPES))
    name = ALIASES.get(value, value)
    if name not in TYPES:
        raise ParamsError(f"type: unknown type {value!r}; one of " + ", ".join(TYPES))
    return name


def check_schedule(value: Any) -> str | None:
    """A 5-field cron expression, or None for no schedule."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > MAX_NAME:
        raise ParamsError("schedule: a 5-field cron expression")
    try:
        parse_cron(value)
    except CronError as exc:
        raise ParamsError(f"schedule: {exc}") from exc
    return value


def _known(params: dict[str, Any], allowed: tuple[str, ...]) -> None:
    for key in params:
        if key not in allowed:
            raise ParamsError(f"params.{key}: unknown field; allowed: " + ", ".join(allowed))


def _text(params: dict[str, Any], key: str, *, required: bool, limit: int = MAX_TEXT) -> str:
    value = params.get(key)
    if value is None or value == "":
        if required:
            raise ParamsError(f"params.{key}: required")
        return ""
    if not isinstance(value, str):
        raise ParamsError(f"params.{key}: must be a string")
    if len(value) > limit:
        raise ParamsError(f"params.{key}: at most {limit} characters")
    if "\x00" in value:
        raise ParamsError(f"params.{key}: must not contain NUL")
    return value


def _timeout(params: dict[str, Any]) -> int:
    value = params.get("timeout", DEFAULT_TIMEOUT)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_TIMEOUT:
        raise ParamsError(f"params.timeout: whole seconds from 1 to {MAX_TIMEOUT}")
    return value


def _host(params: dict[str, Any], *keys: str, required: bool) -> str:
    """A host's name (the `kind: Host` it names), under the first of `keys` given."""
    key = next((k for k in keys if params.get(k) not in (None, "")), keys[0])
    value = _text(params, key, required=required, limit=MAX_NAME)
    if value and not _HOST.match(value):
        raise ParamsError(f"params.{key}: a host name (letters, digits, '.', '_', '-')")
    return value


def _script(params: dict[str, Any]) -> Checked:
    _known(params, ("command", "script", "args", "timeout"))
    command = _text(params, "command", required=False, limit=MAX_COMMAND)
    script = _text(params, "script", required=False, limit=MAX_NAME)
    if bool(command) == bool(script):
        raise ParamsError("params.command: give either command (bash) or script (a library name)")
    out: dict[str, Any] = {"timeout": _timeout(params)}
    if command:
        if "args" in params:
            raise ParamsError("params.args: only with script")
        return Checked({"command": command, **out}, admin_only=True)
    if script not in SCRIPTS:
        raise ParamsError(f"params.script: unknown script {script!r}; one of " + ", ".join(SCRIPTS))
    args = params.get("args") or []
    if not isinstance(args, list) or len(args) > MAX_ARGS:
        raise ParamsError(f"params.args: a list of at most {MAX_ARGS} strings")
    for i, arg in enumerate(args):
        if not isinstance(arg, str) or len(arg) > 4096 or "\x00" in arg:
            raise ParamsError(f"params.args[{i}]: a string of at most 4096 characters")
    return Checked({"script": script, "args": list(args), **out})


def _service(params: dict[str, Any]) -> Checked:
    _known(params, ("service", "action", "host"))
    service = _text(params, "service", required=True, limit=256)
    if not _UNIT.match(service):
        raise ParamsError("params.service: a systemd unit name")
    action = params.get("action", "restart")
    if action not in SERVICE_ACTIONS:
        raise ParamsError("params.action: one of " + ", ".join(SERVICE_ACTIONS))
    out: dict[str, Any] = {"service": service, "action": action}
    host = _host(params, "host", required=False)
    if host:
        out["host"] = host
    return Checked(out)


def _agent_command(params: dict[str, Any]) -> Checked:
    _known(params, ("host", "hostname", "agent", "command", "timeout"))
    host = _host(params, "host", "hostname", "agent", required=True)
    command = _text(params, "command", required=True, limit=MAX_COMMAND)
    return Checked({"host": host, "command": command, "timeout": _timeout(params)})


def _webhook(params: dict[str, Any], put: PutSecret) -> Checked:
    _known(params, ("url", "method", "headers", "body", "timeout"))
    url = _text(params, "url", required=True, limit=4096)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ParamsError("params.url: an http:// or https:// URL")
    method = params.get("method", "POST")
    if not isinstance(method, str) or method.upper() not in HTTP_METHODS:
        raise ParamsError("params.method: one of " + ", ".join(HTTP_METHODS))
    headers = params.get("headers") or {}
    if not isinstance(headers, dict) or len(headers) > MAX_HEADERS:
        raise ParamsError(f"params.headers: an object of at most {MAX_HEADERS} headers")
    sealed: dict[str, Any] = {}
    for name, value in headers.items():
        if not _HEADER.match(name):
            raise ParamsError(f"params.headers.{name}: not a header name")
        if isinstance(value, dict) and set(value) == {"secretRef"}:
            sealed[name] = value  # kept from before: an update that did not change it
            continue
        if not isinstance(value, str) or len(value) > 8192 or any(c in value for c in "\r\n\0"):
            raise ParamsError(f"params.headers.{name}: a one-line string")
        # Header values are often credentials (Authorization, tokens): all are sealed.
        sealed[name] = put(value)
    body = params.get("body")
    if body is not None and not isinstance(body, str):
        raise ParamsError("params.body: must be a string")
    out: dict[str, Any] = {"url": url, "method": method.upper(), "headers": sealed}
    if body:
        out["body"] = _text(params, "body", required=False)
    out["timeout"] = _timeout(params) if "timeout" in params else WEBHOOK_TIMEOUT
    return Checked(out)


def _automation_id(value: Any, where: str) -> str:
    if not isinstance(value, str) or automation_engine_id(value) is None:
        raise ParamsError(f"{where}: an automation id (auto_…)")
    return value


def _ids(params: dict[str, Any], key: str) -> list[str]:
    value = params.get(key)
    if not isinstance(value, list) or not value or len(value) > MAX_STEPS:
        raise ParamsError(f"params.{key}: a list of 1 to {MAX_STEPS} automation ids")
    return [_automation_id(item, f"params.{key}[{i}]") for i, item in enumerate(value)]


def _approval_step(raw: Any, where: str) -> dict[str, Any]:
    step = raw.get("approval") if isinstance(raw, dict) and set(raw) == {"approval"} else None
    if not isinstance(step, dict):
        raise ParamsError(f"{where}: an automation id or {{approval: {{...}}}}")
    allowed = ("message", "approvers", "timeout_minutes", "on_timeout")
    for key in step:
        if key not in allowed:
            raise ParamsError(f"{where}.approval.{key}: unknown field")
    message = step.get("message", "Approval required")
    if not isinstance(message, str) or not message or len(message) > 2000:
        raise ParamsError(f"{where}.approval.message: 1 to 2000 characters")
    approvers = step.get("approvers") or []
    if not isinstance(approvers, list) or len(approvers) > 100:
        raise ParamsError(f"{where}.approval.approvers: a list of usernames")
    for i, name in enumerate(approvers):
        if not isinstance(name, str) or not name or len(name) > 320:
            raise ParamsError(f"{where}.approval.approvers[{i}]: a username")
    minutes = step.get("timeout_minutes", 60)
    if isinstance(minutes, bool) or not isinstance(minutes, int) or not 1 <= minutes <= 43200:
        raise ParamsError(f"{where}.approval.timeout_minutes: whole minutes from 1 to 43200")
    on_timeout = step.get("on_timeout", "reject")
    if on_timeout not in ("approve", "reject"):
        raise ParamsError(f"{where}.approval.on_timeout: approve or reject")
    return {
        "approval": {
            "message": message,
            "approvers": [a.lower() for a in approvers],
            "timeout_minutes": minutes,
            "on_timeout": on_timeout,
        }
    }


def _workflow(params: dict[str, Any]) -> Checked:
    _known(params, ("steps",))
    steps = params.get("steps")
    if not isinstance(steps, list) or not steps or len(steps) > MAX_STEPS:
        raise ParamsError(f"params.steps: a list of 1 to {MAX_STEPS} steps")
    out: list[Any] = []
    for i, step in enumerate(steps):
        where = f"params.steps[{i}]"
        if isinstance(step, str):
            out.append(_automation_id(step, where))
        else:
            out.append(_approval_step(step, where))
    return Checked({"steps": out})


def _composite(params: dict[str, Any]) -> Checked:
    _known(params, ("automations",))
    return Checked({"automations": _ids(params, "automations")})


def _notification(params: dict[str, Any], put: PutSecret) -> Checked:
    _known(params, ("channels", "message", "title"))
    channels = params.get("channels")
    if not isinstance(channels, list) or not channels or len(channels) > 20:
        raise ParamsError("params.channels: a list of 1 to 20 notification URLs")
    sealed: list[Any] = []
    for i, url in enumerate(channels):
        if isinstance(url, dict) and set(url) == {"secretRef"}:
            sealed.append(url)
            continue
        if not isinstance(url, str) or not url or len(url) > 4096 or "://" not in url:
            raise ParamsError(f"params.channels[{i}]: a notification URL (scheme://…)")
        # Channel URLs carry tokens and passwords: kept only as references.
        sealed.append(put(url))
    message = _text(params, "message", required=True)
    title = _text(params, "title", required=False, limit=MAX_NAME)
    return Checked({"channels": sealed, "message": message, "title": title})


def check_params(kind: str, params: Any, put: PutSecret) -> Checked:
    """`params` of an automation of type `kind` (canonical), as stored."""
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise ParamsError("params: must be an object")
    if kind == "script":
        return _script(params)
    if kind == "service_control":
        return _service(params)
    if kind == "agent_command":
        return _agent_command(params)
    if kind == "webhook":
        return _webhook(params, put)
    if kind == "notification":
        return _notification(params, put)
    if kind == "workflow":
        return _workflow(params)
    return _composite(params)
