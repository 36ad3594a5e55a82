"""Export and import: a JSON array of automations, or NOBA's own YAML `{automations: [...]}`.

Exports carry no secret: sealed values (webhook header values, notification channels, the
automation's own channels, the webhook signing secret) come out masked, and an imported item
still holding a mask is skipped, so a copy never runs with a placeholder for a credential.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import yaml
from sqlalchemy.orm import Session

from api.automations import catalog
from api.automations.params import masked_channel
from api.errors import ApiError, bad_request
from api.fields import FieldError, PutSecret
from core.secrets import MASK
from core.store.models import Definition, User
from core.yaml_input import load_all

MAX_ITEMS = 1000
# What an export or a list shows that a new automation never takes over.
NOT_IMPORTED = frozenset({"id", "webhook_token", "webhook_signed", "last_run", "last_status"})
EXPORTED = ("name", "type", "icon", "schedule", "params", "enabled", "autonomy", "approvers",
            "description", "channels", "approval")  # fmt: skip


def export_items(session: Session) -> list[dict[str, Any]]:
    """Every live automation, whole but for its secrets and webhook token."""
    rows = catalog.live_automations(session)
    items = []
    for row in rows:
        shown = catalog.item(row, None, operator=True)
        items.append({"id": shown["id"], **{k: shown[k] for k in EXPORTED if k in shown}})
    return items


def parse_items(raw: bytes, content_type: str) -> list[Any]:
    """The items of an import body: a JSON array, or YAML (a list or `{automations: [...]}`)."""
    try:
        if "yaml" in content_type:
            documents = list(load_all(raw.decode("utf-8")))
            data: Any = documents[0] if len(documents) == 1 else documents
        else:
            data = json.loads(raw)
    except (ValueError, UnicodeDecodeError, yaml.YAMLError, RecursionError) as exc:
        raise bad_request(f"body: not valid JSON or YAML: {str(exc)[:200]}") from exc
    if isinstance(data, dict) and set(data) == {"automations"}:
        data = data["automations"]
    if not isinstance(data, list):
        raise bad_request("body: a JSON array of automations (or YAML {automations: [...]})")
    if len(data) > MAX_ITEMS:
        raise bad_request(f"body: at most {MAX_ITEMS} automations at once")
    return data


def _holds_mask(value: Any) -> bool:
    if value == MASK or (isinstance(value, str) and masked_channel(value)):
        return True
    if isinstance(value, dict):
        return any(_holds_mask(v) for v in value.values())
    if isinstance(value, list):
        return any(_holds_mask(v) for v in value)
    return False


def import_items(
    session: Session,
    user: User,
    items: list[Any],
    put: PutSecret,
    *,
    check: Callable[[Any], None] | None = None,
    created: list[Definition] | None = None,
) -> dict[str, Any]:
    """Store each valid item as a new automation (new id, new webhook token); skip the rest,
    saying why. `check` refuses an item too (before anything of it is written); `created`
    collects the new rows. One transaction: the caller commits."""
    imported = 0
    skipped: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        if isinstance(item, dict):
            # Ids and tokens are never taken over: every import gets its own.
            item = {k: v for k, v in item.items() if k not in NOT_IMPORTED}
        try:
            if _holds_mask(item):
                raise FieldError("params", "holds a masked secret; set it again after importing")
            catalog.check_body(session, user, item)  # before anything of it is written
            if check is not None:
                check(item)
            row = catalog.create(session, user, item, put)
        except (FieldError, ApiError) as exc:
            skipped.append({"index": index, "error": getattr(exc, "message", str(exc))})
            continue
        imported += 1
        if created is not None:
            created.append(row)
    return {"imported": imported, "skipped": len(skipped), "errors": skipped}
