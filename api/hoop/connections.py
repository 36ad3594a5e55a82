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
from functools import partial
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.fields import (
    FieldError,
    PutSecret,
    choice,
    flag,
    kept_secret,
    secret,
    secret_ref,
    string_list,
    text,
)
from core.git_urls import PathEscapeError, validate_relative_path
from core.secrets import MASK, SecretBox
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


def _command(value: Any) -> list[str]:
    if isinstance(value, str):
        try:
            return shlex.split(value)
        except ValueError as exc:
            raise FieldError("command", str(exc)) from exc
    command = string_list(value, "command")
    if any(not part or "\0" in part for part in command):
        raise FieldError("command", "an argument is empty or contains a NUL byte")
    return command


def _allowed_client_args(value: Any) -> list[str]:
    allowed = string_list(value, "allowed_client_args")
    if any(not arg or "\0" in arg for arg in allowed):
        raise FieldError("allowed_client_args", "an argument is empty or contains a NUL byte")
    return list(dict.fromkeys(allowed))


def _plain_env(doc: Mapping[str, Any]) -> dict[str, str]:
    """NAME → value from `env` (plain) and `secret` (hoop: `envvar:NAME` → base64).

    A masked value (what a read shows) stays the mask: it keeps the stored secret.
    """
    env: dict[str, str] = {}
    raw_env = doc.get("env") or {}
    if not isinstance(raw_env, dict):
        raise FieldError("env", "must be a mapping of names to values")
    for name, value in raw_env.items():
        if not isinstance(value, (str, int, float, bool)):
            raise FieldError(f"env.{name}", "must be a string")
        env[str(name)] = str(value)
    raw_secret = doc.get("secret") or {}
    if not isinstance(raw_secret, dict):
        raise FieldError("secret", "must be a mapping of envvar:NAME to base64 values")
    for key, value in raw_secret.items():
        kind, sep, name = str(key).partition(":")
        if kind != "envvar" or not sep:
            raise FieldError(f"secret.{key}", "keys must look like envvar:NAME")
        if not isinstance(value, str):
            raise FieldError(f"secret.{key}", "must be a base64 string")
        if value == MASK:
            env[name] = value
            continue
        try:
            env[name] = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, ValueError) as exc:
            raise FieldError(f"secret.{key}", "not valid base64 of UTF-8 text") from exc
    for name, value in env.items():
        if not _ENV_NAME.match(name):
            raise FieldError(f"env.{name}", "not a valid environment variable name")
        if "\0" in value:
            raise FieldError(f"env.{name}", "contains a NUL byte")
    return env


def _runbooks(doc: Mapping[str, Any]) -> dict[str, Any]:
    raw = doc.get("runbooks")
    modes = ("enabled", "disabled")
    mode = choice(doc.get("access_mode_runbooks"), "access_mode_runbooks", modes, default="enabled")
    enabled, prefix = mode == "enabled", ""
    if raw is not None:
        if not isinstance(raw, dict):
            raise FieldError("runbooks", "must be a mapping {enabled, path_prefix}")
        enabled = flag(raw.get("enabled"), "runbooks.enabled", default=enabled)
        prefix = text(raw.get("path_prefix"), "runbooks.path_prefix")
        try:
            validate_relative_path(prefix)
        except PathEscapeError as exc:
            raise FieldError("runbooks.path_prefix", str(exc)) from exc
    return {"enabled": enabled, "path_prefix": prefix}


def _database_only(value: str, field: str, ctype: str) -> str:
    if value and ctype != "database":
        raise FieldError(field, "only database connections have one")
    return value


def connection_spec(
    doc: Mapping[str, Any], *, put_secret: PutSecret, previous: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The stored spec of a connection document (without its name); secrets become refs.

    `previous` is the spec being replaced: a masked secret keeps its stored reference.
    """
    ctype = doc.get("type")
    if ctype not in TYPES:
        raise FieldError("type", f"must be one of {', '.join(TYPES)}")
    subtype = text(doc.get("subtype"), "subtype")
    command = _command(doc.get("command"))
    if ctype == "database" and subtype not in DATABASE_SUBTYPES:
        raise FieldError(
            "subtype", f"a database connection needs one of {', '.join(DATABASE_SUBTYPES)}"
        )
    if ctype != "database" and not command:
        raise FieldError("command", f"a {ctype} connection needs the command to run")
    before = previous or {}
    old_env: Mapping[str, Any] = before.get("env") or {}
    # An empty value is a value here: the variable is set, to "".
    env: dict[str, Any] = {
        name: kept_secret(old_env.get(name), f"env.{name}")
        if value == MASK
        else secret_ref(value, put_secret)
        for name, value in _plain_env(doc).items()
    }
    dsn = _database_only(text(doc.get("dsn"), "dsn"), "dsn", ctype)
    dsn_ref = secret(dsn, "dsn", put_secret, previous=before.get("dsn"))
    # hoop's database convention: the password is the PASS secret of the connection.
    password = _database_only(text(doc.get("password"), "password"), "password", ctype)
    if password:
        env["PASS"] = secret(password, "password", put_secret, previous=old_env.get("PASS"))
    reviewers = string_list(doc.get("reviewers"), "reviewers")
    for group in reviewers:
        if not _GROUP.match(group):
            raise FieldError("reviewers", f"{group!r} is not a group name")
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
    return lambda value: secret_ref(value, partial(put_secret, session, box))


def validate_name(name: Any) -> str:
    """A connection name: letters, digits, `.`, `_`, `-`; 400 naming `name` otherwise."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise FieldError(
            "name", "1-128 letters, digits, '.', '_' or '-', starting with a letter or digit"
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
        raise FieldError(unknown[0], "not a field of a Connection")
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
        raise FieldError("name", f"a connection named {name!r} already exists")
    previous = row.spec if live and row is not None else None
    spec = connection_spec(doc, put_secret=partial(put_secret, session, box), previous=previous)
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
