"""Scheduling runs: what the engine gives Temporal for each trigger and request, table by
table."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest
from temporalio.client import (
    ScheduleActionStartWorkflow,
    ScheduleCalendarSpec,
    ScheduleOverlapPolicy,
    ScheduleRange,
    ScheduleSpec,
)

from api.launch import LaunchRequest
from api.schedules import (
    CRON_CATCHUP,
    ONCE_CATCHUP,
    Cron,
    Once,
    Trigger,
    new_schedule_id,
    schedule_action,
    schedule_attributes,
    schedule_spec,
    scheduled_launch,
    temporal_schedule,
)
from workflows.contracts import (
    RUN_WORKFLOW,
    SA_ACCOUNT,
    SA_DEFINITION_ID,
    SA_DIALECT,
    SA_STATUS,
    ActionSpec,
    Registration,
)

NOW = datetime(2030, 1, 1, tzinfo=UTC)
AT = datetime(2030, 1, 31, 18, 5, 9, tzinfo=UTC)
REQUEST = LaunchRequest(
    definition_id="job-1",
    dialect="runner",
    title="acme/hello",
    creator="user-1",
    actions=[ActionSpec(name="echo", kind="exec", spec={"script": "echo hi"})],
    account_id="acct-1",
    account="acme",
)


def _at(value: int) -> list[ScheduleRange]:
    return [ScheduleRange(value)]


@pytest.mark.parametrize(
    ("trigger", "spec"),
    [
        (Cron(("* * * * *",)), ScheduleSpec(cron_expressions=["* * * * *"])),
        (
            Cron(("0 0 13 * *", "0 0 * * 5")),
            ScheduleSpec(cron_expressions=["0 0 13 * *", "0 0 * * 5"]),
        ),
        (
            Once(AT),
            ScheduleSpec(
                calendars=[
                    ScheduleCalendarSpec(
                        second=_at(9),
                        minute=_at(5),
                        hour=_at(18),
                        day_of_month=_at(31),
                        month=_at(1),
                        year=_at(2030),
                        comment="once at 2030-01-31T18:05:09Z",
                    )
                ],
                time_zone_name="UTC",
            ),
        ),
    ],
)
def test_each_trigger_becomes_a_spec(trigger: Trigger, spec: ScheduleSpec) -> None:
    """A cron trigger's expressions pass as they are; a one-off is a calendar for its second."""
    assert schedule_spec(trigger) == spec


@pytest.mark.parametrize(
    ("trigger", "catchup", "limited", "remaining"),
    [
        (Cron(("0 1 * * *",)), CRON_CATCHUP, False, 0),
        (Once(AT), ONCE_CATCHUP, True, 1),
    ],
)
def test_each_trigger_has_its_policy_and_state(
    trigger: Trigger, catchup: object, limited: bool, remaining: int
) -> None:
    """Firings may overlap; a one-off fires once and is taken later after an outage."""
    action = schedule_action(REQUEST, "s-000000000000", "runs", NOW)
    schedule = temporal_schedule(action, trigger, "x" * 600)
    assert schedule.spec == schedule_spec(trigger)
    assert schedule.policy.overlap == ScheduleOverlapPolicy.ALLOW_ALL
    assert schedule.policy.catchup_window == catchup
    assert schedule.state.note == "x" * 500
    assert (schedule.state.limited_actions, schedule.state.remaining_actions) == (
        limited,
        remaining,
    )


@pytest.mark.parametrize(
    ("account", "attributes"),
    [
        (
            "acme",
            {SA_DEFINITION_ID: "job-1", SA_DIALECT: "runner", SA_ACCOUNT: "acme"},
        ),
        ("", {SA_DEFINITION_ID: "job-1", SA_DIALECT: "runner"}),
    ],
)
def test_a_schedule_is_found_by_definition_dialect_and_account(
    account: str, attributes: dict[str, str]
) -> None:
    """The schedule's own search attributes; an empty value is left out, as for runs."""
    request = dataclasses.replace(REQUEST, account=account)
    found = schedule_attributes(request)
    assert {pair.key.name: pair.value for pair in found} == attributes


def test_the_action_starts_run_as_a_launch_would() -> None:
    """Run, with the scheduled input (no run id, a registration), the title as memo, the
    run's search attributes with status scheduled, under the schedule's id."""
    action = schedule_action(REQUEST, "s-000000000000", "runs", NOW)
    assert isinstance(action, ScheduleActionStartWorkflow)
    assert (action.workflow, action.id, action.task_queue) == (
        RUN_WORKFLOW,
        "s-000000000000",
        "runs",
    )
    (run_input,) = action.args
    assert run_input.run_id == ""
    assert run_input.created_at == NOW.isoformat()
    assert run_input.registration == Registration(created_by="user-1", account_id="acct-1")
    assert action.memo == {"title": "acme/hello"}
    attributes = action.typed_search_attributes
    assert attributes is not None
    assert {pair.key.name: pair.value for pair in attributes}[SA_STATUS] == "scheduled"


def test_a_scheduled_launch_bundles_what_temporal_is_given() -> None:
    """The schedule, its id, its search attributes and the dialect's memo."""
    memo = {"jobScheduleId": "row-1"}
    scheduled = scheduled_launch(
        REQUEST,
        Once(AT),
        schedule_id="s-000000000000",
        description="nightly",
        memo=memo,
        task_queue="runs",
        now=NOW,
    )
    assert scheduled.schedule_id == "s-000000000000"
    assert scheduled.memo == memo
    assert scheduled.search_attributes == schedule_attributes(REQUEST)
    assert scheduled.schedule.spec == schedule_spec(Once(AT))
    assert scheduled.schedule.state.note == "nightly"


def test_schedule_ids_leave_room_for_the_firing_time() -> None:
    """`<id>-<RFC 3339 time>` (21 characters of time) fits a run id of 36."""
    schedule_id = new_schedule_id()
    assert len(f"{schedule_id}-2030-01-31T18:05:09Z") <= 36
    assert schedule_id != new_schedule_id()
