"""Scheduling runs: the one engine service every dialect turns its schedules into.

A dialect checks its schedule body and translates it into a `LaunchRequest` and a `Trigger`;
the Temporal Schedule, its action and its search attributes are built here, and created,
replaced, retargeted and deleted here, the same way for every dialect.

Each firing starts `Run` under the workflow id `<schedule id>-<RFC 3339 time>`, with an empty
run id and a registration (`launch.scheduled_input`): the run takes its workflow id and writes
its own row, attributed to the request's creator. A `Cron` trigger repeats; a `Once` trigger
is a calendar for that one UTC second, limited to one action.

A refused request leaves nothing behind in Temporal: a create whose answer was lost is deleted
again, and retargeting puts back the actions it had already replaced.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from temporalio.client import (
    Client,
    Schedule,
    ScheduleAction,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleCalendarSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleRange,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes
from temporalio.service import RPCError, RPCStatusCode

from api import launch
from api.errors import ApiError, bad_request
from api.launch import LaunchRequest
from api.runs import search_attributes
from core.statuses import RunStatus
from workflows.contracts import RUN_WORKFLOW, SA_ACCOUNT, SA_DEFINITION_ID, SA_DIALECT

# A firing missed while Temporal was down is still taken this late; later ones are skipped.
# A one-off gets longer: it has no next firing to wait for.
CRON_CATCHUP = timedelta(minutes=1)
ONCE_CATCHUP = timedelta(hours=1)
MAX_NOTE = 500  # the schedule's note in the Temporal UI: a description, cut short
UNAVAILABLE = "the workflow service is unavailable"


@dataclass(frozen=True)
class Cron:
    """A repeating trigger: the cron expressions Temporal is given (already checked)."""

    expressions: tuple[str, ...]


@dataclass(frozen=True)
class Once:
    """A one-off trigger at a UTC time, to the second."""

    at: datetime


Trigger = Cron | Once


@dataclass(frozen=True)
class ScheduledLaunch:
    """A Temporal schedule as it is created or replaced, and what it is found by."""

    schedule_id: str
    schedule: Schedule
    search_attributes: TypedSearchAttributes
    memo: dict[str, Any]


def new_schedule_id() -> str:
    """A Temporal schedule id short enough for `<id>-<RFC 3339 time>` to fit a run id (36)."""
    return f"s-{uuid.uuid4().hex[:12]}"


# ---- what Temporal is given ------------------------------------------------------------------


def schedule_action(
    request: LaunchRequest, schedule_id: str, task_queue: str, now: datetime
) -> ScheduleAction:
    """Start `Run` as `launch` does (same memo, search attributes), once per firing."""
    run_input = launch.scheduled_input(request, now)
    return ScheduleActionStartWorkflow(
        RUN_WORKFLOW,
        run_input,
        id=schedule_id,
        task_queue=task_queue,
        memo={"title": run_input.title},
        typed_search_attributes=search_attributes(run_input, str(RunStatus.SCHEDULED)),
    )


def _one(value: int) -> list[ScheduleRange]:
    return [ScheduleRange(value)]


def schedule_spec(trigger: Trigger) -> ScheduleSpec:
    """When a trigger fires, in Temporal's words."""
    if isinstance(trigger, Cron):
        return ScheduleSpec(cron_expressions=list(trigger.expressions))
    at = trigger.at
    calendar = ScheduleCalendarSpec(
        second=_one(at.second),
        minute=_one(at.minute),
        hour=_one(at.hour),
        day_of_month=_one(at.day),
        month=_one(at.month),
        year=_one(at.year),
        comment=f"once at {at:%Y-%m-%dT%H:%M:%SZ}",
    )
    return ScheduleSpec(calendars=[calendar], time_zone_name="UTC")


def temporal_schedule(
    action: ScheduleAction, trigger: Trigger, description: str, *, paused: bool = False
) -> Schedule:
    """The whole Temporal schedule of a trigger. Firings may overlap: each is a run, queued
    by its concurrency limit like any other. A paused schedule does not fire."""
    once = isinstance(trigger, Once)
    return Schedule(
        action=action,
        spec=schedule_spec(trigger),
        policy=SchedulePolicy(
            overlap=ScheduleOverlapPolicy.ALLOW_ALL,
            catchup_window=ONCE_CATCHUP if once else CRON_CATCHUP,
        ),
        state=ScheduleState(
            note=description[:MAX_NOTE],
            paused=paused,
            limited_actions=once,
            remaining_actions=1 if once else 0,
        ),
    )


def schedule_attributes(request: LaunchRequest) -> TypedSearchAttributes:
    """What a schedule can be found by in Temporal: the definition, the dialect, the account."""
    pairs = [
        (SA_DEFINITION_ID, request.definition_id),
        (SA_DIALECT, request.dialect),
        (SA_ACCOUNT, request.account),
    ]
    return TypedSearchAttributes(
        [SearchAttributePair(SearchAttributeKey.for_keyword(k), v) for k, v in pairs if v]
    )


def scheduled_launch(
    request: LaunchRequest,
    trigger: Trigger,
    *,
    schedule_id: str,
    description: str,
    memo: dict[str, Any],
    task_queue: str,
    now: datetime,
    paused: bool = False,
) -> ScheduledLaunch:
    """The Temporal schedule that launches `request` whenever `trigger` fires (not while
    `paused`)."""
    action = schedule_action(request, schedule_id, task_queue, now)
    return ScheduledLaunch(
        schedule_id=schedule_id,
        schedule=temporal_schedule(action, trigger, description, paused=paused),
        search_attributes=schedule_attributes(request),
        memo=memo,
    )


# ---- create, replace, delete -----------------------------------------------------------------


def refused(exc: Exception, verb: str) -> ApiError:
    """Temporal's refusal as the client's error: a spec it will not take is 400, else 503."""
    if isinstance(exc, RPCError) and exc.status == RPCStatusCode.INVALID_ARGUMENT:
        return bad_request(f"trigger: the workflow service refused it: {exc.message}")
    return ApiError(503, f"{UNAVAILABLE}; the schedule was not {verb}")


async def forget(temporal: Client, schedule_id: str) -> None:
    """Delete a Temporal schedule that may or may not exist (a create whose answer was lost)."""
    try:
        await temporal.get_schedule_handle(schedule_id).delete()
    except RPCError:
        pass  # not there, or Temporal is unreachable: there is nothing more to do


async def create(
    temporal: Client,
    scheduled: ScheduledLaunch,
    *,
    verb: str = "created",
    undo: Callable[[], Awaitable[object]] | None = None,
) -> None:
    """Create the Temporal schedule. If Temporal refuses, `undo` removes what the caller
    stored for it, a schedule that was made after all is deleted, and the client gets 400
    or 503 (the schedule was not `verb`)."""
    try:
        await temporal.create_schedule(
            scheduled.schedule_id,
            scheduled.schedule,
            memo=scheduled.memo,
            search_attributes=scheduled.search_attributes,
        )
    except (RPCError, ScheduleAlreadyRunningError) as exc:
        if undo is not None:
            await undo()
        # An id already taken is another schedule's: only a lost answer is ours to delete.
        if not isinstance(exc, ScheduleAlreadyRunningError):
            await forget(temporal, scheduled.schedule_id)
        raise refused(exc, verb) from exc


async def replace(temporal: Client, scheduled: ScheduledLaunch) -> bool:
    """Replace a Temporal schedule's trigger, action and note; False if it does not exist."""
    handle = temporal.get_schedule_handle(scheduled.schedule_id)
    try:
        await handle.update(lambda _: ScheduleUpdate(schedule=scheduled.schedule))
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return False
        raise refused(exc, "updated") from exc
    return True


async def delete(temporal: Client, schedule_id: str, what: str = "the schedule") -> None:
    """Delete a Temporal schedule so it no longer fires (one already gone is fine); 503 when
    Temporal cannot be reached (`what` was not deleted)."""
    try:
        await temporal.get_schedule_handle(schedule_id).delete()
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise ApiError(503, f"{UNAVAILABLE}; {what} was not deleted") from exc


# ---- schedules follow the definition they launch ---------------------------------------------


@dataclass(frozen=True)
class Retargeted:
    """A schedule whose action was replaced, and the action it had (to put back)."""

    schedule_id: str
    previous: ScheduleAction


async def _set_action(temporal: Client, schedule_id: str, action: ScheduleAction) -> ScheduleAction:
    """Replace a Temporal schedule's action (its trigger and state stay); the previous one."""
    previous: list[ScheduleAction] = []

    def updater(update: ScheduleUpdateInput) -> ScheduleUpdate:
        schedule = update.description.schedule
        previous.append(schedule.action)
        return ScheduleUpdate(schedule=dataclasses.replace(schedule, action=action))

    await temporal.get_schedule_handle(schedule_id).update(updater)
    return previous[0]


async def revert(temporal: Client, done: list[Retargeted]) -> None:
    """Put back the actions `retarget` replaced (best effort: Temporal may be gone)."""
    for item in reversed(done):
        try:
            await _set_action(temporal, item.schedule_id, item.previous)
        except RPCError:
            pass  # nothing more can be done; the next retarget sets the action again


async def retarget(
    temporal: Client, actions: list[tuple[str, ScheduleAction]], what: str
) -> list[Retargeted]:
    """Give each schedule its new action (a definition was just updated).

    On failure the actions already replaced are put back and the client gets 503 (`what` was
    not updated)."""
    done: list[Retargeted] = []
    for schedule_id, action in actions:
        try:
            previous = await _set_action(temporal, schedule_id, action)
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                continue  # never made it to Temporal: replacing the schedule makes it
            await revert(temporal, done)
            raise ApiError(503, f"{UNAVAILABLE}; {what} was not updated") from exc
        done.append(Retargeted(schedule_id, previous))
    return done


async def forget_all(temporal: Client, schedule_ids: list[str]) -> None:
    """Delete Temporal schedules whose records are gone already (best effort)."""
    for schedule_id in schedule_ids:
        await forget(temporal, schedule_id)
