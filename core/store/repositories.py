"""Connected repositories (`kind: Repository`), stored as definitions of the `repository` dialect.

The namespace is the repository's org and the name its name, so `(org, name)` is unique. The
password, ssh key and forge token are stored encrypted as secret rows; the spec keeps only
their references. `repository_view` is what answers show: the document's own field names,
each secret as `********`, so a shown document can be applied back unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core import hosts, repositories
from core.repositories import RepositorySpecError, RepositoryTarget
from core.secrets import MASK, SecretBox
from core.store.models import Definition, utcnow
from core.store.secret_values import put_secret

DIALECT = "repository"
FIELDS = (
    "kind",
    "org",
    "name",
    "url",
    "defaultBranch",
    "username",
    "password",
    "sshKey",
    "forge",
    "forgeToken",
    "githubUrl",
)
# document field -> spec key of its secret reference
_SECRETS = {"password": "password_ref", "sshKey": "ssh_key_ref", "forgeToken": "forge_token_ref"}
_KEEP = object()  # the stored secret stays: the field is absent or masked


def _row(session: Session, org: str, name: str) -> Definition | None:
    return session.scalar(
        select(Definition).where(
            Definition.dialect == DIALECT,
            Definition.namespace == org,
            Definition.name == name,
        )
    )


def _secret_value(doc: Mapping[str, Any], field: str) -> object | str | None:
    """_KEEP, None (remove it: given as null or ""), or the checked new value."""
    if field not in doc or doc[field] == MASK:
        return _KEEP
    given = doc[field]
    if given is None or given == "":
        return None
    if field == "sshKey":
        try:
            return hosts.private_key(given, field)
        except hosts.HostSpecError as exc:
            raise RepositorySpecError(field, exc.reason) from exc
    if field == "forgeToken":
        return repositories.secret_text(given, field, repositories.MAX_TOKEN_BYTES)
    return repositories.secret_text(given, field, repositories.MAX_PASSWORD_BYTES)


def save_repository(
    session: Session,
    doc: Mapping[str, Any],
    *,
    box: SecretBox,
    allowed_schemes: Sequence[str],
    user_id: str | None,
) -> tuple[Definition, bool]:
    """Create or update the repository `doc` describes; (row, created). Flushes only.

    A secret field left out or masked keeps the stored secret; null or "" removes it. Raises
    RepositorySpecError naming the field before anything is written.
    """
    unknown = sorted(set(doc) - set(FIELDS))
    if unknown:
        fields = ", ".join(FIELDS[1:])
        raise RepositorySpecError(unknown[0], f"not a field of a Repository (fields: {fields})")
    org = repositories.org(doc.get("org"))
    name = repositories.name(doc.get("name"))
    forge = repositories.forge(doc.get("forge"))
    spec: dict[str, Any] = {
        "org": org,
        "name": name,
        "url": repositories.git_url(doc.get("url"), allowed_schemes),
        "default_branch": repositories.branch(doc.get("defaultBranch")),
        "forge": forge,
        "github_url": repositories.github_url(doc.get("githubUrl")),
        "username": repositories.username(doc.get("username")),
    }
    if forge != "github" and doc.get("githubUrl") not in (None, ""):
        raise RepositorySpecError("githubUrl", "is only for forge: github")
    values = {field: _secret_value(doc, field) for field in _SECRETS}
    if forge != "github" and isinstance(values["forgeToken"], str):
        raise RepositorySpecError("forgeToken", "is only for forge: github")

    row = _row(session, org, name)
    live = row is not None and row.deleted_at is None
    stored = row.spec if live and row is not None else {}
    refs: dict[str, str | None] = {}
    for field, key in _SECRETS.items():
        value = values[field]
        if value is _KEEP:
            if doc.get(field) == MASK and not stored.get(key):
                raise RepositorySpecError(
                    field, "is masked, and none is stored for this repository"
                )
            refs[key] = stored.get(key)
        else:
            refs[key] = None  # a new value is stored once every check has passed
    new_token = isinstance(values["forgeToken"], str)
    if forge == "github" and not (refs["forge_token_ref"] or new_token):
        raise RepositorySpecError("forgeToken", "is required for forge: github")
    if forge != "github":
        refs["forge_token_ref"] = None

    for field, key in _SECRETS.items():
        value = values[field]
        if isinstance(value, str):
            refs[key] = put_secret(session, box, value)
    spec.update(refs)
    if row is None:
        row = Definition(dialect=DIALECT, name=name, namespace=org, spec=spec, created_by=user_id)
        session.add(row)
    else:
        row.spec = spec
        row.deleted_at = None
        row.updated_at = utcnow()
    session.flush()
    return row, not live


def _target(spec: Mapping[str, Any]) -> RepositoryTarget:
    return RepositoryTarget(
        org=spec["org"],
        name=spec["name"],
        url=spec["url"],
        default_branch=spec["default_branch"],
        forge=spec["forge"],
        github_url=spec["github_url"],
        username=spec.get("username"),
        password_ref=spec.get("password_ref"),
        ssh_key_ref=spec.get("ssh_key_ref"),
        forge_token_ref=spec.get("forge_token_ref"),
    )


def repository(session: Session, org: str, name: str) -> RepositoryTarget | None:
    """The connected repository `org/name`; None when no Repository document created it."""
    row = _row(session, org, name)
    if row is None or row.deleted_at is not None:
        return None
    return _target(row.spec)


def repository_id(session: Session, org: str, name: str) -> str | None:
    """The row id of the connected repository `org/name` (what its pull requests belong to)."""
    row = _row(session, org, name)
    return None if row is None or row.deleted_at is not None else row.id


def repository_view(target: RepositoryTarget) -> dict[str, Any]:
    """The repository as a document, secrets masked; fields not set are left out."""
    view: dict[str, Any] = {
        "kind": "Repository",
        "org": target.org,
        "name": target.name,
        "url": target.url,
        "defaultBranch": target.default_branch,
        "forge": target.forge,
    }
    if target.forge == "github":
        view["githubUrl"] = target.github_url
    if target.username:
        view["username"] = target.username
    for field, ref in (
        ("password", target.password_ref),
        ("sshKey", target.ssh_key_ref),
        ("forgeToken", target.forge_token_ref),
    ):
        if ref:
            view[field] = MASK
    return view


def list_repositories(session: Session, *, limit: int, offset: int) -> list[RepositoryTarget]:
    """Connected repositories ordered by org and name."""
    rows = session.scalars(
        select(Definition)
        .where(Definition.dialect == DIALECT, Definition.deleted_at.is_(None))
        .order_by(Definition.namespace, Definition.name)
        .limit(limit)
        .offset(offset)
    )
    return [_target(row.spec) for row in rows]
