"""Schedules of automations: an automation's `schedule` is a Temporal Schedule that follows it.

The dialect only translates: a scheduled automation becomes the `LaunchRequest` of a run
triggered by "schedule", attributed to the automation's creator (as a webhook's run is), whose
autonomy is decided as each firing starts (an `Admission`: the maintenance windows open then
override it). The engine (`api.schedules`) builds, creates, replaces and deletes the Temporal
schedule; its id is kept in the automation's spec under `schedule_id`, which no body may set and
no document shows. A disabled automation's schedule is paused.

Nothing is left half-written: the automation is written first and put back (or removed, with
the secrets the write stored) when Temporal refuses; a delete deletes the schedule first.
"""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete
from sqlalchemy.orm import Session

from api import schedules as engine
from api.automations import catalog, runs, transfer
from api.automations.ids import automation_public_id
from api.db import read, write
from api.deps import Services
from api.errors import ApiError, bad_request
from api.fields import FieldError, PutSecret
from api.launch import LaunchRequest
from core.cron import CronError, temporal_expressions
from core.maintenance import Autonomy
from core.secrets import SecretBox
from core.store.models import Definition, Secret, User, utcnow
from core.store.secret_values import put_secret
from workflows.contracts import Admission

SPEC_KEY = "schedule_id"
# What a firing's run is built from: a change to any other field leaves the schedule alone.
SCHEDULED_FIELDS = (
    "name", "type", "params", "schedule", "enabled", "autonomy", "approvers", "approval",
    "channels",
)  # fmt: skip


@dataclass(frozen=True)
class Limits:
    """What every scheduled run of this deployment is built with."""

    task_queue: str
    max_runs: int


def limits_of(services: Services) -> Limits:
    return Limits(services.settings.task_queue, services.settings.automation_max_runs)


@dataclass
class Written:
    """An automation just written, and what Temporal must now be told about it."""

    row_id: str
    before: dict[str, Any] | None  # its spec before the write (None: the write created it)
    previous: str | None = None  # the Temporal schedule to delete (it has none any more)
    scheduled: engine.ScheduledLaunch | None = None  # the schedule to create or replace
    secrets: list[str] = field(default_factory=list)  # secrets the write stored

    @property
    def replaces(self) -> bool:
        """Whether the automation had this schedule before the write."""
        return self.before is not None and self.before.get(SPEC_KEY) is not None


def recording(session: Session, box: SecretBox, written: list[str]) -> PutSecret:
    """A secret writer that notes each secret it stores (to remove them if undone)."""

    def put(value: str) -> str:
        ref = put_secret(session, box, value)
        written.append(ref)
        return ref

    return put


# ---- what a firing starts --------------------------------------------------------------------


def owner_of(session: Session, row: Definition) -> User:
    """The user the automation's scheduled runs are attributed to: its creator."""
    owner = session.get(User, row.created_by) if row.created_by else None
    if owner is None:
        raise ApiError(409, "schedule: the automation's owner no longer exists; recreate it")
    return owner


def scheduled_request(
    session: Session, row: Definition, owner: User, max_runs: int
) -> LaunchRequest:
    """The run a firing starts: triggered by "schedule", admitted when it fires."""
    request = runs.launch_request(session, row, runs.Trigger("schedule", owner, {}), max_runs)
    autonomy = str(row.spec.get("autonomy", "execute"))
    if autonomy == "notify":
        request = runs.reported(request, row, "schedule")
    admission = Admission(
        autonomy=autonomy,
        subjects=runs.subjects_of(session, row),
        gate=runs.start_gate(session, row, Autonomy("approve")),
    )
    return dataclasses.replace(request, admission=admission)


def scheduled_launch(session: Session, row: Definition, limits: Limits) -> engine.ScheduledLaunch:
    """The Temporal schedule of automation `row` (which has a schedule and its id)."""
    spec = row.spec
    public_id = automation_public_id(row.id)
    return engine.scheduled_launch(
        scheduled_request(session, row, owner_of(session, row), limits.max_runs),
        engine.Cron(tuple(engine_expressions(spec["schedule"]))),
        schedule_id=spec[SPEC_KEY],
        description=f"{spec['name']} ({public_id})",
        memo={"automationId": public_id},
        task_queue=limits.task_queue,
        now=utcnow(),
        paused=not spec.get("enabled", True),
    )


def engine_expressions(expression: str) -> list[str]:
    """A checked schedule in Temporal's words."""
    try:
        return temporal_expressions(expression)
    except CronError as exc:  # checked when stored; a row edited by hand still gets a 400
        raise bad_request(f"schedule: {exc}") from exc


def follow(session: Session, row: Definition, before: dict[str, Any] | None, limits: Limits,
           secrets: list[str]) -> Written:  # fmt: skip
    """Give the just-written automation its schedule id (or drop it) and plan what Temporal
    must be told; a 400 here rolls the write back."""
    written = Written(row.id, before, secrets=secrets)
    spec = dict(row.spec)
    old_id = before.get(SPEC_KEY) if before is not None else None
    if before is not None:
        relevant = [k for k in SCHEDULED_FIELDS if spec.get(k) != before.get(k)]
        if not relevant:
            return written
    if not spec.get("schedule"):
        spec.pop(SPEC_KEY, None)
        row.spec = spec
        written.previous = old_id
        return written
    spec[SPEC_KEY] = old_id or engine.new_schedule_id()
    row.spec = spec
    session.flush()
    written.scheduled = scheduled_launch(session, row, limits)
    return written


def undo(session: Session, written: Written) -> None:
    """Put an automation back as it was before the write (a created one goes), secrets too."""
    row = session.get(Definition, written.row_id)
    if row is not None:
        if written.before is None:
            session.delete(row)
        else:
            row.spec = written.before
    session.flush()
    if written.secrets:
        session.execute(delete(Secret).where(Secret.id.in_(written.secrets)))


async def tell_temporal(services: Services, changes: list[Written]) -> None:
    """Create, replace or delete each automation's Temporal schedule; if Temporal refuses,
    the schedules already made go and every write is undone (400 or 503)."""
    made: list[str] = []
    try:
        for written in changes:
            scheduled = written.scheduled
            if scheduled is not None and written.replaces:
                if not await engine.replace(services.temporal, scheduled):
                    await engine.create(services.temporal, scheduled, verb="updated")
            elif scheduled is not None:
                await engine.create(services.temporal, scheduled)
                made.append(scheduled.schedule_id)
            elif written.previous is not None:
                await engine.delete(services.temporal, written.previous, "the schedule")
    except ApiError:
        await engine.forget_all(services.temporal, made)
        for written in changes:
            await write(services.sessions, undo, written)
        raise


# ---- create, update, delete, import ----------------------------------------------------------


def _create(session: Session, box: SecretBox, user: User, raw: Any, limits: Limits) -> Written:
    secrets: list[str] = []
    row = catalog.create(session, user, raw, recording(session, box, secrets))
    return follow(session, row, None, limits, secrets)


async def create(services: Services, user: User, raw: Any) -> str:
    """Store a new automation and, when it has a schedule, its Temporal schedule; its id."""
    written = await write(services.sessions, _create, services.box, user, raw, limits_of(services))
    await tell_temporal(services, [written])
    return automation_public_id(written.row_id)


def _update(
    session: Session, box: SecretBox, user: User, public_id: str, raw: Any, limits: Limits
) -> Written:
    before = dict(catalog.automation_or_404(session, public_id).spec)
    secrets: list[str] = []
    row = catalog.update(session, user, public_id, raw, recording(session, box, secrets))
    return follow(session, row, before, limits, secrets)


async def update(services: Services, user: User, public_id: str, raw: Any) -> None:
    """Merge a body into the automation; its schedule is replaced, made, paused or deleted."""
    written = await write(
        services.sessions, _update, services.box, user, public_id, raw, limits_of(services)
    )
    await tell_temporal(services, [written])


def _schedule_id(session: Session, public_id: str) -> str | None:
    return catalog.automation_or_404(session, public_id).spec.get(SPEC_KEY)


def _delete(session: Session, public_id: str) -> None:
    catalog.delete(session, public_id)


async def remove(services: Services, public_id: str) -> None:
    """Delete the automation: its Temporal schedule first (so it no longer fires)."""
    schedule_id = await read(services.sessions, _schedule_id, public_id)
    if schedule_id is not None:
        await engine.delete(services.temporal, schedule_id, "the automation")
    await write(services.sessions, _delete, public_id)


def schedulable(session: Session, user: User, raw: Any, max_runs: int) -> None:
    """What an import checks before writing an item: its firing's run can be built (its
    steps and hosts exist)."""
    try:
        spec, _ = catalog.merged_spec(raw, lambda _: "unwritten")
    except FieldError:
        return  # the item's own check names the field
    if not spec.get("schedule"):
        return
    draft = Definition(id=str(uuid.uuid4()), dialect=catalog.DIALECT, spec=spec, created_by=user.id)
    scheduled_request(session, draft, user, max_runs)


def _import(
    session: Session, box: SecretBox, user: User, items: list[Any], limits: Limits
) -> tuple[dict[str, Any], list[Written]]:
    secrets: list[str] = []
    created: list[Definition] = []
    answer = transfer.import_items(
        session,
        user,
        items,
        recording(session, box, secrets),
        check=lambda raw: schedulable(session, user, raw, limits.max_runs),
        created=created,
    )
    changes = [follow(session, row, None, limits, []) for row in created]
    if changes:
        changes[0].secrets = secrets  # undone together: one list is enough
    return answer, changes


async def import_all(services: Services, user: User, items: list[Any]) -> dict[str, Any]:
    """Import `items` (one transaction) and make the schedules of those that have one."""
    answer, changes = await write(
        services.sessions, _import, services.box, user, items, limits_of(services)
    )
    await tell_temporal(services, changes)
    return answer
