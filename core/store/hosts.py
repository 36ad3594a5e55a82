"""Hosts reached over SSH (`kind: Host`), stored as definitions of the `host` dialect.

A host's private key is stored encrypted, as a secret row; its spec keeps the reference (the
row id) in `ssh_key_ref`, never the key. The `ssh` action takes these fields as they are and
opens the reference at execution, on the worker.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core import hosts
from core.secrets import MASK, SecretBox
from core.store.models import Definition, utcnow
from core.store.secret_values import put_secret

DIALECT = "host"
NAMESPACE = "default"
FIELDS = ("kind", "name", "address", "port", "user", "sshKey", "hostKey")
# What an action needs of a host, as `host_target` returns it.
TARGET_FIELDS = ("address", "port", "user", "ssh_key_ref", "host_key")


def _row(session: Session, name: str) -> Definition | None:
    return session.scalar(
        select(Definition).where(
            Definition.dialect == DIALECT,
            Definition.namespace == NAMESPACE,
            Definition.name == name,
        )
    )


def save_host(
    session: Session, doc: Mapping[str, Any], *, box: SecretBox, user_id: str | None
) -> tuple[Definition, bool]:
    """Create or update the host `doc` describes; (row, created). Flushes only.

    Re-applying without `sshKey` (or with it masked) keeps the stored key. Raises
    hosts.HostSpecError naming the field before anything is written.
    """
    unknown = sorted(set(doc) - set(FIELDS))
    if unknown:
        fields = ", ".join(FIELDS[1:])
        raise hosts.HostSpecError(unknown[0], f"not a field of a Host (fields: {fields})")
    name = hosts.host_name(doc.get("name"))
    row = _row(session, name)
    live = row is not None and row.deleted_at is None
    spec: dict[str, Any] = {
        "address": hosts.address(doc.get("address")),
        "port": hosts.port(doc.get("port")),
        "user": hosts.user(doc.get("user")),
        "host_key": None,
    }
    if doc.get("hostKey") not in (None, ""):
        keys = hosts.host_keys(doc.get("hostKey"))
        spec["host_key"] = "\n".join(f"{k.key_type} {k.blob}" for k in keys)
    given = doc.get("sshKey")
    if given in (None, "", MASK) and live and row is not None:
        spec["ssh_key_ref"] = row.spec["ssh_key_ref"]
    else:
        if given == MASK:
            raise hosts.HostSpecError("sshKey", "is masked, and no key is stored for this host")
        spec["ssh_key_ref"] = put_secret(session, box, hosts.private_key(given))
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


def host_target(session: Session, name: str) -> dict[str, Any] | None:
    """What an `ssh` action needs to reach host `name`; None when there is no such host.

    `{"address", "port", "user", "ssh_key_ref", "host_key"}`: `ssh_key_ref` is the id of the
    secret holding the private key, `host_key` the pinned public keys (`TYPE KEY` lines) or
    None when the host's key is not pinned.
    """
    row = _row(session, name)
    if row is None or row.deleted_at is not None:
        return None
    return {field: row.spec.get(field) for field in TARGET_FIELDS}
