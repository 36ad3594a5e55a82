"""Runner jobs: the documented job body checked field by field and stored with secret
references (`credentials.password`, and the base64 `sshPrivateKey` of the job, of its
repository credentials and of each host). Pure functions.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from api.fields import (
    FieldError,
    PutSecret,
    array,
    choice,
    flag,
    integer,
    obj,
    plain_data,
    secret,
    text,
)
from api.runner.fields import decode_key, host_id
from core.egress import EgressPolicy
from core.git_urls import (
    GitUrlError,
    PathEscapeError,
    validate_git_url,
    validate_ref,
    validate_relative_path,
)

DEFAULT_TTL_MINUTES = 180
MAX_TTL_MINUTES = 525_600  # a year
DEFAULT_PLAYBOOK = "playbook.yml"
CALLBACK_LEVELS = ("DEBUG", "ERROR", "RESULT")


def _tags(value: Any, path: str) -> list[str] | None:
    """Tags as a list of strings; a comma-separated string is taken too."""
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else array(value, path)
    tags: list[str] = []
    for i, item in enumerate(items):
        entry = text(item, f"{path}[{i}]") if not isinstance(value, str) else item
        tags += [t.strip() for t in entry.split(",") if t.strip()]
    return tags


def _callback(raw: Any, path: str, egress: EgressPolicy | None) -> dict[str, str]:
    entry = {"url": raw} if isinstance(raw, str) else obj(raw, path, required=True)
    url = text(entry.get("url"), f"{path}.url", required=True)
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError as exc:
        raise FieldError(f"{path}.url", "is not a valid URL") from exc
    if parts.scheme not in ("http", "https") or not host:
        raise FieldError(f"{path}.url", "must be an http or https URL")
    # Early and partial: names are checked when the worker resolves them, at connect time.
    refused = egress.literal_refusal(host) if egress is not None else None
    if refused is not None:
        raise FieldError(f"{path}.url", f"{host} is {refused}: not an allowed destination")
    level = entry.get("level") or "DEBUG"
    level = choice(
        level.upper() if isinstance(level, str) else level, f"{path}.level", CALLBACK_LEVELS
    )
    return {"url": url, "level": level}


def _playbook(value: Any, path: str) -> str:
    playbook = text(value, path) or DEFAULT_PLAYBOOK
    try:
        validate_relative_path(playbook)
    except PathEscapeError as exc:
        raise FieldError(path, "must be a path inside the repository") from exc
    if ".." in playbook.replace("\\", "/").split("/") or playbook.endswith("/"):
        raise FieldError(path, "must be a path inside the repository")
    return playbook


def _credentials(
    raw: Any, path: str, put: PutSecret, previous: Mapping[str, Any]
) -> dict[str, Any] | None:
    creds = obj(raw, path)
    if not any(creds.get(k) for k in ("username", "password", "sshPrivateKey")):
        return None
    return {
        "username": text(creds.get("username"), f"{path}.username") or None,
        "password": secret(
            creds.get("password"), f"{path}.password", put, previous=previous.get("password")
        ),
        "sshPrivateKey": secret(
            creds.get("sshPrivateKey"),
            f"{path}.sshPrivateKey",
            put,
            previous=previous.get("sshPrivateKey"),
            read=decode_key,
        ),
    }


def _repository(
    raw: Any, allowed: list[str], put: PutSecret, previous: Mapping[str, Any]
) -> dict[str, Any]:
    repo = obj(raw, "repository", required=True)
    url = text(repo.get("url"), "repository.url", required=True)
    try:
        validate_git_url(url, allowed)
    except GitUrlError as exc:
        raise FieldError("repository.url", str(exc)) from exc
    # The FAQ's example names the branch `ref`.
    key = "branch" if repo.get("branch") not in (None, "") else "ref"
    branch = text(repo.get(key), f"repository.{key}") or None
    if branch is not None:
        try:
            validate_ref(branch)
        except GitUrlError as exc:
            raise FieldError(f"repository.{key}", str(exc)) from exc
    return {
        "url": url,
        "branch": branch,
        "defaultPlaybook": _playbook(repo.get("defaultPlaybook"), "repository.defaultPlaybook"),
        "credentials": _credentials(
            repo.get("credentials"),
            "repository.credentials",
            put,
            previous.get("credentials") or {},
        ),
        "playbookTags": _tags(repo.get("playbookTags"), "repository.playbookTags"),
    }


def _hosts(raw: Any, put: PutSecret, previous: list[dict[str, Any]]) -> list[dict[str, Any]]:
    before = {h["id"]: h for h in previous}
    hosts: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, item in enumerate(array(raw, "hosts", required=True)):
        path = f"hosts[{i}]"
        entry = obj(item, path, required=True)
        hid = host_id(entry.get("id"), f"{path}.id")
        if hid in seen:
            raise FieldError(f"{path}.id", f"host {hid!r} is listed twice")
        seen.add(hid)
        old = before.get(hid) or {}
        hosts.append(
            {
                "id": hid,
                "hostVars": plain_data(
                    obj(entry.get("hostVars"), f"{path}.hostVars"), f"{path}.hostVars"
                ),
                "sshPrivateKey": secret(
                    entry.get("sshPrivateKey"),
                    f"{path}.sshPrivateKey",
                    put,
                    previous=old.get("sshPrivateKey"),
                    read=decode_key,
                ),
            }
        )
    return hosts


def normalize_job(
    raw: Any,
    *,
    allowed_schemes: list[str],
    put_secret: PutSecret,
    previous: Mapping[str, Any] | None = None,
    egress: EgressPolicy | None = None,
) -> dict[str, Any]:
    """A job body checked field by field: the spec to store (secrets as references).

    `previous` is the stored spec a PUT replaces: masked secrets keep its references.
    `egress`, when given, refuses callback URLs whose host is a refused IP address.
    """
    body = obj(raw, "body", required=True)
    before = previous or {}
    if body.get("playbook") not in (None, ""):
        raise FieldError("playbook", "inline playbooks are not supported; use repository")
    return {
        "name": text(body.get("name"), "name") or None,
        "description": text(body.get("description"), "description") or None,
        "executionTtl": integer(
            body.get("executionTtl"),
            "executionTtl",
            low=1,
            high=MAX_TTL_MINUTES,
            default=DEFAULT_TTL_MINUTES,
            unit="minutes",
        ),
        "callbacks": [
            _callback(c, f"callbacks[{i}]", egress)
            for i, c in enumerate(array(body.get("callbacks"), "callbacks"))
        ],
        "playbookTags": _tags(body.get("playbookTags"), "playbookTags") or [],
        "repository": _repository(
            body.get("repository"), allowed_schemes, put_secret, before.get("repository") or {}
        ),
        "hosts": _hosts(body.get("hosts"), put_secret, list(before.get("hosts") or [])),
        "properties": plain_data(obj(body.get("properties"), "properties"), "properties"),
        "sshPrivateKey": secret(
            body.get("sshPrivateKey"),
            "sshPrivateKey",
            put_secret,
            previous=before.get("sshPrivateKey"),
            read=decode_key,
        ),
        "useDynamicInventory": flag(body.get("useDynamicInventory"), "useDynamicInventory"),
    }
