"""`apply`: create or update definitions, catalog items, people and teams from YAML documents.

All documents of one request are applied in one transaction: one bad document, nothing written.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.fields import FieldError
from api.hoop.connections import save_connection
from api.mission_control.playbooks import normalize_spec
from api.mission_control.service import DIALECT
from core.hosts import HostSpecError
from core.repositories import RepositorySpecError
from core.secrets import SecretBox
from core.store.hosts import save_host
from core.store.models import Definition, Resource, Team, User, utcnow
from core.store.repositories import save_repository
from core.store.secret_values import put_secret
from core.store.users import ROLES, get_by_email, role_at_least, upsert_team, upsert_user
from core.yaml_input import AliasRefused, load_all

MISSION_CONTROL_API = "mission-control.flanksource.com/v1"
RESOURCE_KINDS = {"ConfigItem": "config", "Check": "check", "Component": "component"}


class DocumentError(ValueError):
    """A document that cannot be applied; the message names the document and field."""


@dataclass(frozen=True)
class Applied:
    """What one document did."""

    kind: str
    name: str
    id: str
    result: str  # created | updated


def parse_documents(text: str) -> list[dict[str, Any]]:
    """The documents in a YAML (or JSON) text; a JSON list counts as several documents."""
    try:
        loaded = [d for d in load_all(text) if d is not None]
    except AliasRefused as exc:
        raise DocumentError(f"body: {exc}") from exc
    except yaml.YAMLError as exc:
        raise DocumentError(f"body is not valid YAML or JSON: {exc}") from exc
    except RecursionError as exc:
        raise DocumentError("body is nested too deeply") from exc
    docs: list[Any] = []
    for item in loaded:
        docs.extend(item if isinstance(item, list) else [item])
    if not docs:
        raise DocumentError("no documents given")
    for i, doc in enumerate(docs):
        if not isinstance(doc, dict):
            raise DocumentError(f"document {i}: must be a mapping with a kind")
    return docs


def _field(doc: dict[str, Any], key: str, where: str, *, required: bool = True) -> str:
    value = doc.get(key)
    if value in (None, ""):
        if required:
            raise DocumentError(f"{where}: {key} is required")
        return ""
    if not isinstance(value, str):
        raise DocumentError(f"{where}: {key} must be a string")
    return value


def _uuid(value: Any, where: str) -> str | None:
    if value in (None, ""):
        return None
    try:
        return str(uuid.UUID(str(value)))
    except ValueError as exc:
        raise DocumentError(f"{where}: id must be a UUID") from exc


class Applier:
    """Applies documents within one session; the caller commits."""

    def __init__(
        self, session: Session, box: SecretBox, allowed_schemes: list[str], caller: User
    ) -> None:
        self._session = session
        self._box = box
        self._schemes = allowed_schemes
        self._caller = caller
        self._user_id = caller.id
        self._kinds: dict[str, Callable[[dict[str, Any], str], Applied]] = {
            "Playbook": self._playbook,
            "ConfigItem": self._resource,
            "Check": self._resource,
            "Component": self._resource,
            "Person": self._person,
            "Team": self._team,
            "Connection": self._connection,
            "Host": self._host,
            "Repository": self._repository,
        }

    def apply(self, docs: list[dict[str, Any]]) -> list[Applied]:
        """Apply every document in order."""
        out = []
        for i, doc in enumerate(docs):
            kind = doc.get("kind")
            where = f"document {i} ({kind or 'no kind'})"
            handler = self._kinds.get(str(kind))
            if handler is None:
                known = ", ".join(self._kinds)
                problem = f"unknown kind {kind!r}" if kind else "kind is required"
                raise DocumentError(f"{where}: {problem} (known: {known})")
            out.append(handler(doc, where))
        return out

    def _playbook(self, doc: dict[str, Any], where: str) -> Applied:
        if doc.get("apiVersion") != MISSION_CONTROL_API:
            raise DocumentError(f"{where}: apiVersion must be {MISSION_CONTROL_API}")
        metadata = doc.get("metadata") or {}
        if not isinstance(metadata, dict):
            raise DocumentError(f"{where}: metadata must be a mapping")
        name = _field(metadata, "name", f"{where} metadata")
        namespace = _field(metadata, "namespace", f"{where} metadata", required=False) or "default"
        wanted_id = _uuid(doc.get("id") or metadata.get("uid"), where)
        try:
            spec = normalize_spec(
                doc.get("spec"),
                allowed_schemes=self._schemes,
                put_secret=lambda value: put_secret(self._session, self._box, value),
            )
        except FieldError as exc:
            raise DocumentError(f"{where} {name}: {exc}") from exc
        existing = self._session.scalar(
            select(Definition).where(
                Definition.dialect == DIALECT,
                Definition.namespace == namespace,
                Definition.name == name,
            )
        )
        if existing is not None and wanted_id and existing.id != wanted_id:
            raise DocumentError(f"{where}: {namespace}/{name} already exists with id {existing.id}")
        if existing is None and wanted_id and self._session.get(Definition, wanted_id):
            raise DocumentError(f"{where}: id {wanted_id} belongs to another definition")
        if existing is None:
            existing = Definition(
                id=wanted_id or str(uuid.uuid4()),
                dialect=DIALECT,
                name=name,
                namespace=namespace,
                spec=spec,
                source="KubernetesCRD" if doc.get("metadata") else "UI",
                created_by=self._user_id,
            )
            self._session.add(existing)
            result = "created"
        else:
            existing.spec = spec
            existing.deleted_at = None
            existing.updated_at = utcnow()
            result = "updated"
        self._session.flush()
        return Applied("Playbook", f"{namespace}/{name}", existing.id, result)

    def _resource(self, doc: dict[str, Any], where: str) -> Applied:
        kind = RESOURCE_KINDS[doc["kind"]]
        name = _field(doc, "name", where)
        rtype = _field(doc, "type", where, required=False)
        tags = doc.get("tags", doc.get("labels")) or {}
        if not isinstance(tags, dict):
            raise DocumentError(f"{where}: tags must be a mapping")
        tags = {str(k): str(v) for k, v in tags.items()}
        wanted_id = _uuid(doc.get("id"), where)
        row = None
        if wanted_id:
            row = self._session.get(Resource, wanted_id)
            if row is not None and row.kind != kind:
                raise DocumentError(f"{where}: id {wanted_id} is a {row.kind}, not a {kind}")
        else:
            row = self._session.scalar(
                select(Resource).where(
                    Resource.kind == kind, Resource.name == name, Resource.type == rtype
                )
            )
        result = "updated" if row is not None else "created"
        if row is None:
            row = Resource(id=wanted_id or str(uuid.uuid4()), kind=kind)
            self._session.add(row)
        row.name, row.type, row.tags = name, rtype, tags
        self._session.flush()
        return Applied(doc["kind"], name, row.id, result)

    def _person(self, doc: dict[str, Any], where: str) -> Applied:
        email = _field(doc, "email", where)
        if "@" not in email:
            raise DocumentError(f"{where}: email {email!r} is not an email address")
        role = _field(doc, "role", where, required=False) or None
        if role and role not in ROLES:
            raise DocumentError(f"{where}: role must be one of {', '.join(ROLES)}")
        password = doc.get("password")
        if password is not None and not isinstance(password, str):
            raise DocumentError(f"{where}: password must be a string")
        existing = get_by_email(self._session, email)
        self._check_person_change(existing, role, where)
        user = upsert_user(
            self._session,
            email,
            name=_field(doc, "name", where, required=False),
            password=password,
            role=role,
        )
        return Applied("Person", user.email, user.id, "updated" if existing else "created")

    def _check_person_change(self, existing: User | None, role: str | None, where: str) -> None:
        """A Person document manages platform people only, and never above the caller."""
        if existing is not None and existing.is_system:
            raise DocumentError(f"{where}: {existing.email} is a system user")
        if existing is not None and existing.account_id is not None:
            raise DocumentError(
                f"{where}: {existing.email} is a user of a Runner account; "
                "change it with the Runner API or `runwright user add --account`"
            )
        if role and not role_at_least(self._caller.role, role):
            raise DocumentError(f"{where}: role {role} is above your own")

    def _team(self, doc: dict[str, Any], where: str) -> Applied:
        name = _field(doc, "name", where)
        members = doc.get("members") or []
        if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
            raise DocumentError(f"{where}: members must be a list of emails")
        existed = self._session.scalar(select(Team).where(Team.name == name)) is not None
        team = upsert_team(self._session, name, members)
        return Applied("Team", name, team.id, "updated" if existed else "created")

    def _connection(self, doc: dict[str, Any], where: str) -> Applied:
        try:
            row, created = save_connection(self._session, doc, box=self._box, user_id=self._user_id)
        except FieldError as exc:
            raise DocumentError(f"{where}: {exc}") from exc
        return Applied("Connection", row.name, row.id, "created" if created else "updated")

    def _host(self, doc: dict[str, Any], where: str) -> Applied:
        try:
            row, created = save_host(self._session, doc, box=self._box, user_id=self._user_id)
        except HostSpecError as exc:
            raise DocumentError(f"{where}: {exc}") from exc
        return Applied("Host", row.name, row.id, "created" if created else "updated")

    def _repository(self, doc: dict[str, Any], where: str) -> Applied:
        try:
            row, created = save_repository(
                self._session,
                doc,
                box=self._box,
                allowed_schemes=self._schemes,
                user_id=self._user_id,
            )
        except RepositorySpecError as exc:
            raise DocumentError(f"{where}: {exc}") from exc
        slug = f"{row.namespace}/{row.name}"
        return Applied("Repository", slug, row.id, "created" if created else "updated")
