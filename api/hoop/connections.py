"""hoop connections: named targets a runbook's text is run against, stored as definitions.

One normaliser serves the REST body (hoop's shape: `secret` with `envvar:NAME` keys and
base64 values) and `runwright apply` documents (`env` in plain text): both become one spec
whose secrets are references to encrypted values, never the values.
"""

from __future__ import annotations

import base64
import binascii
import re
import shlex
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.git_urls import PathEscapeError, validate_relative_path
from core.secrets import MASK, SECRET_REF, SecretBox, is_ref
from core.store.models import Definition, utcnow
from core.store.secret_values import put_secret

DIALECT = "hoop"
NAMESPACE = "default"
TYPES = ("database", "application", "custom")
DATABASE_SUBTYPES = ("postgres", "mysql", "sqlite")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_GROUP = re.compile(r"^[^\s,][^,]{0,199}$")
_FIELDS = (
    "name", "type", "subtype", "command", "env", "secret", "dsn", "password", "reviewers",
    "runbooks", "access_mode_runbooks", "allowed_client_args",
)  # fmt: skip


class ConnectionSpecError(ValueError):
    """A connection document that cannot be stored; the message names the field."""


def _strings(value: Any, field: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConnectionSpecError(f"{field}: must be a list of strings")
    return list(value)


def _command(value: Any) -> list[str]:
    if isinstance(value, str):
        try:
            return shlex.split(value)
        except ValueError as exc:
            raise ConnectionSpecError(f"command: {exc}") from exc
    command = _strings(value, "command")
    if any(not part or "\0" in part for part in command):
        raise ConnectionSpecError("command: an argument is empty or contains a NUL byte")
    return command


def _allowed_client_args(value: Any) -> list[str]:
    allowed = _strings(value, "allowed_client_args")
    if any(not arg or "\0" in arg for arg in allowed):
        raise ConnectionSpecError(
            "allowed_client_args: an argument is empty or contains a NUL byte"
        )
    return list(dict.fromkeys(allowed))


def _plain_env(doc: Mapping[str, Any]) -> dict[str, str | None]:
    """NAME → value from `env` (plain) and `secret` (hoop: `envvar:NAME` → base64).

    A masked value (what a read shows) means "keep the stored one": None here.
    """
    env: dict[str, str | None] = {}
    raw_env = doc.get("env") or {}
    if not isinstance(raw_env, dict):
        raise ConnectionSpecError("env: must be a mapping of names to values")
    for name, value in raw_env.items():
        if not isinstance(value, (str, int, float, bool)):
            raise ConnectionSpecError(f"env.{name}: must be a string")
        env[str(name)] = None if value == MASK else str(value)
    raw_secret = doc.get("secret") or {}
    if not isinstance(raw_secret, dict):
        raise ConnectionSpecError("secret: must be a mapping of envvar:NAME to base64 values")
    for key, value in raw_secret.items():
        kind, sep, name = str(key).partition(":")
        if kind != "envvar" or not sep:
            raise ConnectionSpecError(f"secret.{key}: keys must look like envvar:NAME")
        if not isinstance(value, str):
            raise ConnectionSpecError(f"secret.{key}: must be a base64 string")
        if value == MASK:
            env[name] = None
            continue
        try:
            env[name] = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, ValueError) as exc:
            raise ConnectionSpecError(f"secret.{key}: not valid base64 of UTF-8 text") from exc
    for name, value in env.items():
        if not _ENV_NAME.match(name):
            raise ConnectionSpecError(f"env.{name}: not a valid environment variable name")
        if value is not None and "\0" in value:
            raise ConnectionSpecError(f"env.{name}: contains a NUL byte")
    return env


def _runbooks(doc: Mapping[str, Any]) -> dict[str, Any]:
    raw = doc.get("runbooks")
    mode = doc.get("access_mode_runbooks", "enabled")
    if mode not in ("enabled", "disabled"):
        raise ConnectionSpecError("access_mode_runbooks: must be enabled or disabled")
    enabled, prefix = mode == "enabled", ""
    if raw is not None:
        if not isinstance(raw, dict):
            raise ConnectionSpecError("runbooks: must be a mapping {enabled, path_prefix}")
        enabled = raw.get("enabled", enabled)
        if not isinstance(enabled, bool):
            raise ConnectionSpecError("runbooks.enabled: must be true or false")
        prefix = raw.get("path_prefix") or ""
        if not isinstance(prefix, str):
            raise ConnectionSpecError("runbooks.path_prefix: must be a string")
        try:
            validate_relative_path(prefix)
        except PathEscapeError as exc:
            raise ConnectionSpecError(f"runbooks.path_prefix: {exc}") from exc
    return {"enabled": enabled, "path_prefix": prefix}


def connection_spec(
    doc: Mapping[str, Any],
    *,
    put_secret: Callable[[str], dict[str, str]],
    previous: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The stored spec of a connection document (without its name); secrets become refs.

    `previous` is the spec being replaced: a masked secret keeps its stored reference.
    """
    ctype = doc.get("type")
    if ctype not in TYPES:
        raise ConnectionSpecError(f"type: must be one of {', '.join(TYPES)}")
    subtype = doc.get("subtype") or ""
    if not isinstance(subtype, str):
        raise ConnectionSpecError("subtype: must be a string")
    command = _command(doc.get("command"))
    if ctype == "database" and subtype not in DATABASE_SUBTYPES:
        raise ConnectionSpecError(
            f"subtype: a database connection needs one of {', '.join(DATABASE_SUBTYPES)}"
        )
    if ctype != "database" and not command:
        raise ConnectionSpecError(f"command: a {ctype} connection needs the command to run")
    old_env: Mapping[str, Any] = (previous or {}).get("env") or {}
    env: dict[str, Any] = {}
    for name, value in _plain_env(doc).items():
        if value is None:
            if name not in old_env:
                raise ConnectionSpecError(f"env.{name}: masked, but no value is stored to keep")
            env[name] = old_env[name]
        else:
            env[name] = put_secret(value)
    dsn = doc.get("dsn")
    dsn_ref: Any = None
    if dsn not in (None, ""):
        if not isinstance(dsn, str):
            raise ConnectionSpecError("dsn: must be a string")
        if ctype != "database":
            raise ConnectionSpecError("dsn: only database connections have one")
        if dsn == MASK:
            dsn_ref = (previous or {}).get("dsn")
            if not is_ref(dsn_ref):
                raise ConnectionSpecError("dsn: masked, but no value is stored to keep")
        else:
            dsn_ref = put_secret(dsn)
    password = doc.get("password")
    if password not in (None, ""):
        # hoop's database convention: the password is the PASS secret of the connection.
        if not isinstance(password, str):
            raise ConnectionSpecError("password: must be a string")
        if ctype != "database":
            raise ConnectionSpecError("password: only database connections have one")
        if password == MASK:
            if not is_ref(old_env.get("PASS")):
                raise ConnectionSpecError("password: masked, but no value is stored to keep")
            env["PASS"] = old_env["PASS"]
        else:
            env["PASS"] = put_secret(password)
    reviewers = _strings(doc.get("reviewers"), "reviewers")
    for group in reviewers:
        if not _GROUP.match(group):
            raise ConnectionSpecError(f"reviewers: {group!r} is not a group name")
    return {
        "type": ctype,
        "subtype": subtype,
        "command": command,
        "env": env,
        "dsn": dsn_ref,
        "reviewers": list(dict.fromkeys(reviewers)),
        "runbooks": _runbooks(doc),
        "allowed_client_args": _allowed_client_args(doc.get("allowed_client_args")),
    }


def secret_writer(session: Session, box: SecretBox) -> Callable[[str], dict[str, str]]:
    """Stores a value encrypted and returns its reference."""
    return lambda value: {SECRET_REF: put_secret(session, box, value)}


def validate_name(name: Any) -> str:
    """A connection name: letters, digits, `.`, `_`, `-`; 400 naming `name` otherwise."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConnectionSpecError(
            "name: 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return name


def get_connection(session: Session, name: str) -> Definition | None:
    """The live connection called `name`."""
    return session.scalar(
        select(Definition).where(
            Definition.dialect == DIALECT,
            Definition.namespace == NAMESPACE,
            Definition.name == name,
            Definition.deleted_at.is_(None),
        )
    )


def save_connection(
    session: Session,
    doc: Mapping[str, Any],
    *,
    box: SecretBox,
    user_id: str | None,
    name: str | None = None,
    create_only: bool = False,
) -> tuple[Definition, bool]:
    """Create or replace the connection `doc` describes; (row, created). Flushes only."""
    unknown = sorted(set(doc) - set(_FIELDS) - {"id", "kind", "status"})
    if unknown and doc.get("kind") == "Connection":
        raise ConnectionSpecError(f"{unknown[0]}: not a field of a Connection")
    name = validate_name(name if name is not None else doc.get("name"))
    row = session.scalar(
        select(Definition).where(
            Definition.dialect == DIALECT,
            Definition.namespace == NAMESPACE,
            Definition.name == name,
        )
    )
    live = row is not None and row.deleted_at is None
    if live and create_only:
        raise ConnectionSpecError(f"name: a connection named {name!r} already exists")
    previous = row.spec if live and row is not None else None
    spec = connection_spec(doc, put_secret=secret_writer(session, box), previous=previous)
    if row is None:
        row = Definition(
            dialect=DIALECT, name=name, namespace=NAMESPACE, spec=spec, created_by=user_id
        )
        session.add(row)
    else:
        row.spec = spec
        row.deleted_at = None
        row.updated_at = utcnow()
    session.flush()
    return row, not live


def connection_view(row: Definition) -> dict[str, Any]:
    """A connection as the API shows it: secrets masked, both in hoop's form and ours."""
    spec = row.spec
    env_names = sorted(spec.get("env") or {})
    runbooks = spec.get("runbooks") or {"enabled": True, "path_prefix": ""}
    view: dict[str, Any] = {
        "id": row.id,
        "name": row.name,
        "type": spec["type"],
        "subtype": spec.get("subtype") or "",
        "command": list(spec.get("command") or []),
        "secret": {f"envvar:{name}": MASK for name in env_names},
        "env": {name: MASK for name in env_names},
        "reviewers": list(spec.get("reviewers") or []),
        "access_mode_runbooks": "enabled" if runbooks["enabled"] else "disabled",
        "runbooks": dict(runbooks),
        "allowed_client_args": list(spec.get("allowed_client_args") or []),
        "status": "online",
        "created_at": row.created_at.isoformat(),
        "updated_at": row.updated_at.isoformat(),
    }
    if spec.get("dsn"):
        view["dsn"] = MASK
    if spec["type"] == "database" and "PASS" in env_names:
        view["password"] = MASK
    return view
