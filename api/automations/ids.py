"""The Automations API's ids: `auto_<hex>`, `run_<hex>` and `apr_<hex>` over the engine's UUIDs
(of a definition, a run, and a run's approval gate).

A bijection, so no second id is stored: the hex is the UUID of the definition or run. A
schedule's firing runs under the workflow id Temporal gives it, `<schedule id>-<RFC 3339
second>` (see api.schedules), so its public id is `run_` and that workflow id as it is.
"""

from __future__ import annotations

import re
import uuid

AUTOMATION_PREFIX = "auto_"
RUN_PREFIX = "run_"
APPROVAL_PREFIX = "apr_"
FIRING_ID = re.compile(r"s-[0-9a-f]{12}-[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")


def _public(prefix: str, engine_id: str) -> str:
    return prefix + uuid.UUID(engine_id).hex


def _engine(prefix: str, public_id: str) -> str | None:
    if not public_id.startswith(prefix) or len(public_id) != len(prefix) + 32:
        return None
    tail = public_id[len(prefix) :]
    try:
        parsed = uuid.UUID(hex=tail)
    except ValueError:
        return None
    # Only the one spelling we hand out (lower-case hex, no dashes or braces) names a thing.
    return str(parsed) if parsed.hex == tail else None


def automation_public_id(definition_id: str) -> str:
    """`auto_<hex>` of a definition's UUID."""
    return _public(AUTOMATION_PREFIX, definition_id)


def automation_engine_id(public_id: str) -> str | None:
    """The definition UUID behind `auto_<hex>`; None for anything else."""
    return _engine(AUTOMATION_PREFIX, public_id)


def run_public_id(run_id: str) -> str:
    """`run_<hex>` of a run's UUID (`run_<workflow id>` of a schedule's firing)."""
    if FIRING_ID.fullmatch(run_id):
        return RUN_PREFIX + run_id
    return _public(RUN_PREFIX, run_id)


def run_engine_id(public_id: str) -> str | None:
    """The run id behind `run_<hex>` or `run_<firing's workflow id>`; None for anything else."""
    tail = public_id[len(RUN_PREFIX) :] if public_id.startswith(RUN_PREFIX) else ""
    if FIRING_ID.fullmatch(tail):
        return tail
    return _engine(RUN_PREFIX, public_id)


def approval_public_id(gate_id: str) -> str:
    """`apr_<hex>` of a gate's UUID: an approval request is one gate of a run."""
    return _public(APPROVAL_PREFIX, gate_id)


def approval_engine_id(public_id: str) -> str | None:
    """The gate UUID behind `apr_<hex>`; None for anything else."""
    return _engine(APPROVAL_PREFIX, public_id)
