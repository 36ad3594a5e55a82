"""RunbookWorkflow: a runbook's durable life, up to its plan and its follow-ups.

Deterministic code only: the checkout, the planning and the records are activities. The
workflow plans its pending prompts in order (the first prompt, then each follow-up the
`follow_up` signal brings), each on one worker: `reserve_worker` names the worker, the
checkout and `plan_runbook` run on that worker's own queue, so the planner reads the files
the checkout wrote. A lost worker costs a new reservation and a fresh checkout.

Each planned prompt is recorded at once (`record_runbook`): the plan so far and every leaf's
state, `queued` in one-shot mode and `not_started` otherwise; a prompt that cannot be planned
records its error and leaves the plan as it was.

The workflow stays open for follow-ups (and, later, for executing steps). It continues as new
when its history grows, carrying the plan and states, and ends after IDLE_TIMEOUT without a
follow-up; a later follow-up starts it again from what the database holds (signal-with-start).
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from core.runbooks.model import Runbook, RunbookConflict
    from core.runbooks.status import NOT_STARTED, QUEUED, aggregate_status, leaf_states
    from workflows.attempt import WORKER_PICKUP_TIMEOUT, failure_message, worker_lost
    from workflows.contracts import (
        CHECKOUT_RUNBOOK,
        FOLLOW_UP_SIGNAL,
        PLAN_RUNBOOK,
        RECORD_RUNBOOK,
        RESERVE_WORKER,
        RUNBOOK_WORKFLOW,
        SA_STATUS,
        CheckoutRunbookInput,
        CheckoutRunbookResult,
        FollowUp,
        PlanRunbookInput,
        PlanRunbookResult,
        RecordRunbookInput,
        RunbookInput,
    )

STATUS_KEY = SearchAttributeKey.for_keyword(SA_STATUS)
IDLE_TIMEOUT = timedelta(days=30)
MAX_WORKER_LOSSES = 3
RECORD_TIMEOUT = timedelta(seconds=30)
# The planner's own timeout (RUNWRIGHT_PLANNER_TIMEOUT_SECONDS, at most an hour) twice over:
# a model answer may be sent back once with its error.
PLAN_TIMEOUT = timedelta(hours=2, minutes=5)
# The planning activity heartbeats every 2 s: a worker lost mid-plan is noticed this soon.
PLAN_HEARTBEAT_TIMEOUT = timedelta(seconds=15)
FAILED = "failed"


def workflow_id(runbook_id: str) -> str:
    """The runbook's workflow id, derived from its database id."""
    return f"runbook-{runbook_id}"


class PlanFailed(Exception):
    """A prompt could not be planned; the message says why, for the user."""


@workflow.defn(name=RUNBOOK_WORKFLOW)
class RunbookWorkflow:
    """One runbook: plan its prompts, record the plan, wait for follow-ups."""

    def __init__(self) -> None:
        self._follow_ups: list[str] = []

    @workflow.signal(name=FOLLOW_UP_SIGNAL)
    def follow_up(self, follow_up: FollowUp) -> None:
        """A follow-up prompt; planned after those before it."""
        self._follow_ups.append(follow_up.prompt)

    @workflow.run
    async def run(self, inp: RunbookInput) -> str:
        """Plan every prompt as it comes; returns the last status when the runbook idles out."""
        runbook = inp.runbook
        states = dict(inp.states)
        planned = inp.planned_prompts
        pending = list(inp.pending)
        while True:
            pending += self._follow_ups
            self._follow_ups.clear()
            while pending:
                prompt = pending.pop(0)
                planned += 1
                error: str | None = None
                try:
                    added = await self._plan(inp, prompt)
                    runbook = added if runbook is None else runbook.append(added)
                    initial = QUEUED if inp.oneshot else NOT_STARTED
                    for leaf in runbook.leaves():
                        states.setdefault(leaf.number, initial)
                except (PlanFailed, RunbookConflict) as exc:
                    error = str(exc)
                await self._record(inp, runbook, states, planned, error)
                # Later: one-shot execution of the queued steps starts here.
            if workflow.info().is_continue_as_new_suggested():
                workflow.continue_as_new(
                    RunbookInput(
                        runbook_id=inp.runbook_id,
                        runbook_number=inp.runbook_number,
                        repository=inp.repository,
                        target_branch=inp.target_branch,
                        oneshot=inp.oneshot,
                        pending=list(self._follow_ups),
                        runbook=runbook,
                        states=states,
                        planned_prompts=planned,
                    )
                )
            try:
                await workflow.wait_condition(lambda: bool(self._follow_ups), timeout=IDLE_TIMEOUT)
            except TimeoutError:
                return _status(runbook, states)

    async def _plan(self, inp: RunbookInput, prompt: str) -> Runbook:
        """The plan of one prompt, made on one worker (a lost worker: another one)."""
        losses = 0
        while True:
            queue: str = await workflow.execute_local_activity(
                RESERVE_WORKER, start_to_close_timeout=timedelta(seconds=10), result_type=str
            )
            try:
                checkout: CheckoutRunbookResult = await workflow.execute_activity(
                    CHECKOUT_RUNBOOK,
                    CheckoutRunbookInput(inp.runbook_id, inp.repository, inp.target_branch),
                    task_queue=queue,
                    schedule_to_start_timeout=WORKER_PICKUP_TIMEOUT,
                    start_to_close_timeout=timedelta(minutes=10),
                    retry_policy=RetryPolicy(
                        maximum_attempts=3, non_retryable_error_types=["CheckoutError"]
                    ),
                    result_type=CheckoutRunbookResult,
                )
                result: PlanRunbookResult = await workflow.execute_activity(
                    PLAN_RUNBOOK,
                    PlanRunbookInput(checkout.checkout, prompt),
                    task_queue=queue,
                    schedule_to_start_timeout=WORKER_PICKUP_TIMEOUT,
                    start_to_close_timeout=PLAN_TIMEOUT,
                    heartbeat_timeout=PLAN_HEARTBEAT_TIMEOUT,
                    retry_policy=RetryPolicy(maximum_attempts=5),
                    result_type=PlanRunbookResult,
                )
            except ActivityError as err:
                if worker_lost(err) and losses < MAX_WORKER_LOSSES:
                    losses += 1
                    continue
                raise PlanFailed(failure_message(err)) from err
            return result.runbook

    async def _record(
        self,
        inp: RunbookInput,
        runbook: Runbook | None,
        states: dict[str, str],
        planned: int,
        error: str | None,
    ) -> None:
        await workflow.execute_activity(
            RECORD_RUNBOOK,
            RecordRunbookInput(inp.runbook_id, runbook, dict(states), planned, error),
            start_to_close_timeout=RECORD_TIMEOUT,
        )
        status = FAILED if error and runbook is None else _status(runbook, states)
        workflow.upsert_search_attributes([STATUS_KEY.value_set(status)])


def _status(runbook: Runbook | None, states: dict[str, str]) -> str:
    return (
        aggregate_status(leaf_states(runbook, states))
        if runbook is not None
        else "generating_steps"
    )
