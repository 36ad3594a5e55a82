"""RunbookWorkflow: a runbook's durable life: its plan, its follow-ups, its steps' runs.

Deterministic code only: the checkout, the planning, the pull requests and the records are
activities, and each leaf step runs as a child `Run` workflow (one `runbook_step` action).

Planning: the workflow plans its pending prompts in order (the first prompt, then each
follow-up the `follow_up` signal brings), each on one worker: `reserve_worker` names the
worker, the checkout and `plan_runbook` run on that worker's own queue, so the planner reads
the files the checkout wrote. A lost worker costs a new reservation and a fresh checkout. A
follow-up is planned against the runbook's newest branch once steps have committed.

Execution: in one-shot mode every planned leaf is `queued` and runs at once; otherwise leaves
wait as `not_started` until an `execute` signal queues a step and the unexecuted leaves before
it. Queued leaves run one at a time in plan order; each commits to its group's branch
(`core.runbooks.execution`) and, unless the mode is manual, the group's pull request is opened
or updated after it. A failed step stops the rest, which return to `not_started`; so does a
`stop` signal, which kills the running step's run. In manual mode execution pauses after each
step (the rest stay queued until the next `execute`).

Durability: a step's run is a child workflow, so a lost worker is the run's business (it takes
its action to another worker; the step's action finds a commit that already landed), and this
workflow's history holds every finished step, so none runs twice. Every change of state is
recorded (`record_runbook`) at once.

The workflow stays open for follow-ups and executions. It continues as new when its history
grows, carrying its state, and ends after IDLE_TIMEOUT with nothing to do; a later request
starts it again from what the database holds (signal-with-start).
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from temporalio import workflow
from temporalio.common import (
    RetryPolicy,
    SearchAttributeKey,
    SearchAttributePair,
    TypedSearchAttributes,
)
from temporalio.exceptions import ActivityError, ChildWorkflowError

with workflow.unsafe.imports_passed_through():
    from core.runbooks.execution import (
        base_branch,
        branch_group,
        dequeue,
        next_queued,
        planning_branch,
    )
    from core.runbooks.model import Runbook, RunbookConflict, Step
    from core.runbooks.status import (
        COMPLETED,
        FAILED,
        IN_PROGRESS,
        MANUAL,
        NOT_STARTED,
        QUEUED,
        PullRequestRef,
        aggregate_status,
        branch_name,
        commit_message,
        enqueue,
        leaf_states,
    )
    from core.statuses import RunStatus
    from workflows.attempt import WORKER_PICKUP_TIMEOUT, failure_message, worker_lost
    from workflows.contracts import (
        CHECKOUT_RUNBOOK,
        CONTROL_SIGNAL,
        EXECUTE_SIGNAL,
        FOLLOW_UP_SIGNAL,
        PLAN_RUNBOOK,
        PUBLISH_RUNBOOK,
        RECORD_RUNBOOK,
        RESERVE_WORKER,
        RUN_WORKFLOW,
        RUNBOOK_STEP_KIND,
        RUNBOOK_WORKFLOW,
        SA_DEFINITION_ID,
        SA_DIALECT,
        SA_RESOURCE_ID,
        SA_STATUS,
        STOP_SIGNAL,
        ActionSpec,
        CheckoutRunbookInput,
        CheckoutRunbookResult,
        CommitAuthor,
        Control,
        ExecuteStep,
        FollowUp,
        PlanRunbookInput,
        PlanRunbookResult,
        PublishRunbookInput,
        RecordRunbookInput,
        Registration,
        RunbookInput,
        RunInput,
        StepSpec,
        StopSteps,
    )

STATUS_KEY = SearchAttributeKey.for_keyword(SA_STATUS)
DIALECT = "runbook"  # of the runbook's workflow and of its steps' runs
IDLE_TIMEOUT = timedelta(days=30)
MAX_WORKER_LOSSES = 3
RECORD_TIMEOUT = timedelta(seconds=30)
# The planner's own timeout (RUNWRIGHT_PLANNER_TIMEOUT_SECONDS, at most an hour) twice over:
# a model answer may be sent back once with its error.
PLAN_TIMEOUT = timedelta(hours=2, minutes=5)
# The planning activity heartbeats every 2 s: a worker lost mid-plan is noticed this soon.
PLAN_HEARTBEAT_TIMEOUT = timedelta(seconds=15)
# What one step's run may take: its commands or the coding agent, the checkout and the push.
STEP_TIMEOUT_SECONDS = 3600.0
PUBLISH_TIMEOUT = timedelta(minutes=2)
PUBLISH_RETRY = RetryPolicy(maximum_attempts=5, non_retryable_error_types=["ForgeError"])
ACTION_NAME_CHARS = 200
FALLBACK_AUTHOR = CommitAuthor("Runwright", "runwright@localhost")


def workflow_id(runbook_id: str) -> str:
    """The runbook's workflow id, derived from its database id."""
    return f"runbook-{runbook_id}"


class PlanFailed(Exception):
    """A prompt could not be planned; the message says why, for the user."""


@workflow.defn(name=RUNBOOK_WORKFLOW)
class RunbookWorkflow:
    """One runbook: plan its prompts, run its queued steps, wait for more."""

    @workflow.init
    def __init__(self, inp: RunbookInput) -> None:
        self._input = inp
        self._follow_ups: list[str] = []
        self._executions: list[ExecuteStep] = []
        self._stop: StopSteps | None = None
        self._runbook: Runbook | None = inp.runbook
        self._states: dict[str, str] = dict(inp.states)
        self._planned = inp.planned_prompts
        self._prs: list[PullRequestRef] = list(inp.pull_requests)
        self._executing = inp.executing
        # A leaf stored as running when the workflow started again from the database (its
        # workflow was lost, and the step's run with it) runs again: a step that had already
        # pushed its commit finds it and does not run twice.
        interrupted = [n for n, s in self._states.items() if s == IN_PROGRESS]
        for number in interrupted:
            self._states[number] = QUEUED
        self._executing = self._executing or bool(interrupted)
        self._step_run: workflow.ChildWorkflowHandle[object, str] | None = None

    @workflow.signal(name=FOLLOW_UP_SIGNAL)
    def follow_up(self, follow_up: FollowUp) -> None:
        """A follow-up prompt; planned after those before it."""
        self._follow_ups.append(follow_up.prompt)

    @workflow.signal(name=EXECUTE_SIGNAL)
    def execute(self, request: ExecuteStep) -> None:
        """Queue a step (and the unexecuted leaves before it) and run the queue."""
        self._executions.append(request)

    @workflow.signal(name=STOP_SIGNAL)
    async def stop(self, request: StopSteps) -> None:
        """Kill the running step (it fails) and dequeue the rest."""
        self._stop = request
        if self._step_run is not None:
            try:
                await self._step_run.signal(CONTROL_SIGNAL, Control(action="kill", by=request.by))
            except Exception as exc:  # noqa: BLE001  (the run ended meanwhile: nothing to kill)
                workflow.logger.info("runbook stop: the step's run did not take it: %s", exc)

    def _requests(self) -> bool:
        return bool(self._follow_ups or self._executions or self._stop)

    @workflow.run
    async def run(self, inp: RunbookInput) -> str:
        """Plan and execute as requests come; returns the last status when the runbook idles."""
        pending = list(inp.pending)
        while True:
            pending += self._follow_ups
            self._follow_ups.clear()
            while pending:
                await self._plan_prompt(pending.pop(0))
            if self._executions:
                # Taken before the await: a request arriving meanwhile waits for the next turn.
                requests, self._executions = self._executions, []
                await self._enqueue(requests)
            if self._stop is not None:
                self._stop = None
                self._executing = False
                self._states = dequeue(self._states)
                await self._record()
            if self._executing and next_queued(self._runbook, self._states) is not None:
                await self._execute_queue()
                continue
            if self._requests():
                continue
            if workflow.info().is_continue_as_new_suggested():
                workflow.continue_as_new(
                    dataclasses.replace(
                        inp,
                        pending=[],
                        runbook=self._runbook,
                        states=self._states,
                        planned_prompts=self._planned,
                        pull_requests=self._prs,
                        executing=self._executing,
                    )
                )
            try:
                await workflow.wait_condition(self._requests, timeout=IDLE_TIMEOUT)
            except TimeoutError:
                return self._status()

    # Planning

    async def _plan_prompt(self, prompt: str) -> None:
        """Plan one prompt onto the runbook and record it (or why it could not be planned)."""
        inp = self._input
        self._planned += 1
        error: str | None = None
        try:
            added = await self._plan(prompt)
            self._runbook = added if self._runbook is None else self._runbook.append(added)
            initial = QUEUED if inp.oneshot else NOT_STARTED
            for leaf in self._runbook.leaves():
                self._states.setdefault(leaf.number, initial)
            if inp.oneshot:
                self._executing = True
        except (PlanFailed, RunbookConflict) as exc:
            error = str(exc)
        await self._record(error=error)

    async def _plan(self, prompt: str) -> Runbook:
        """The plan of one prompt, made on one worker (a lost worker: another one)."""
        inp = self._input
        branch = planning_branch(
            self._runbook, self._states, inp.pr_mode, self._branch, inp.target_branch
        )
        losses = 0
        while True:
            queue: str = await workflow.execute_local_activity(
                RESERVE_WORKER, start_to_close_timeout=timedelta(seconds=10), result_type=str
            )
            try:
                checkout: CheckoutRunbookResult = await workflow.execute_activity(
                    CHECKOUT_RUNBOOK,
                    CheckoutRunbookInput(inp.runbook_id, inp.repository, branch),
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

    # Execution

    async def _enqueue(self, requests: list[ExecuteStep]) -> None:
        """Queue each requested step; a step the plan does not have (the API checked it, so
        only a stale request) is ignored."""
        if self._runbook is None:
            return
        for request in requests:
            try:
                self._states = enqueue(self._runbook, self._states, request.step)
            except ValueError:
                workflow.logger.warning("runbook: no step %s to execute", request.step)
                continue
            self._executing = True
        await self._record()

    async def _execute_queue(self) -> None:
        """Run queued leaves in order until none is left, one fails, a stop comes, or (manual
        mode) one has run."""
        inp = self._input
        while (leaf := next_queued(self._runbook, self._states)) is not None:
            if self._stop is not None:
                return  # the main loop dequeues the rest
            self._states[leaf.number] = IN_PROGRESS
            await self._record()
            run_id, succeeded = await self._run_step(leaf)
            error: str | None = None
            if succeeded:
                self._states[leaf.number] = COMPLETED
                error = await self._publish(leaf)
            else:
                self._states[leaf.number] = FAILED
                await self._publish(leaf, opened_only=True)
            if error is not None or not succeeded:
                self._executing = False
                self._states = dequeue(self._states)
            await self._record(
                error=error, failed_step=None if succeeded else leaf.number, failed_run=run_id
            )
            if not self._executing:
                return
            if inp.pr_mode == MANUAL:
                self._executing = False  # paused; the next `execute` goes on
                return

    async def _run_step(self, leaf: Step) -> tuple[str, bool]:
        """Run one leaf as a child Run workflow; its run id and whether it succeeded."""
        inp = self._input
        assert self._runbook is not None
        group = branch_group(inp.pr_mode, leaf.number)
        target = inp.repository
        spec = StepSpec(
            runbook_number=inp.runbook_number,
            step_number=leaf.number,
            text=leaf.text(),
            commands=list(leaf.commands),
            repository=target,
            branch=self._branch(group),
            base_branch=self._base(group),
            message=commit_message(inp.runbook_number, leaf),
            author=inp.author or FALLBACK_AUTHOR,
            protected=[inp.target_branch],
        )
        name = commit_message(inp.runbook_number, leaf)
        run_id = str(workflow.uuid4())
        secrets = [r for r in (target.password_ref, target.ssh_key_ref) if r]
        run_input = RunInput(
            run_id=run_id,
            definition_id=inp.definition_id,
            dialect=DIALECT,
            title=name,
            actions=[
                ActionSpec(
                    name=name[:ACTION_NAME_CHARS],
                    kind=RUNBOOK_STEP_KIND,
                    spec=spec.as_spec(),
                    timeout_seconds=STEP_TIMEOUT_SECONDS,
                    templated=False,
                )
            ],
            template_env={},
            created_at=workflow.now().isoformat(),
            resource_id=target.slug,
            secret_refs=secrets,
            registration=Registration(created_by=inp.author_id, account_id=inp.account_id),
        )
        attributes = [
            (SA_DEFINITION_ID, inp.definition_id),
            (SA_DIALECT, DIALECT),
            (SA_RESOURCE_ID, target.slug),
        ]
        handle: workflow.ChildWorkflowHandle[object, str] = await workflow.start_child_workflow(
            RUN_WORKFLOW,
            run_input,
            id=run_id,
            task_queue=workflow.info().task_queue,
            result_type=str,
            search_attributes=TypedSearchAttributes(
                [SearchAttributePair(SearchAttributeKey.for_keyword(k), v) for k, v in attributes]
            ),
            memo={"title": name},
        )
        self._step_run = handle
        try:
            status = await handle
        except ChildWorkflowError:
            status = RunStatus.FAILED
        finally:
            self._step_run = None
        return run_id, status == RunStatus.SUCCEEDED

    async def _publish(self, leaf: Step, *, opened_only: bool = False) -> str | None:
        """Open or update the pull request of the leaf's group (none in manual mode); with
        `opened_only`, only one that exists. Returns why it could not be done, if so."""
        inp = self._input
        if inp.pr_mode == MANUAL or self._runbook is None:
            return None
        group = branch_group(inp.pr_mode, leaf.number)
        if opened_only and not any(pr.group == group for pr in self._prs):
            return None
        try:
            ref: PullRequestRef = await workflow.execute_activity(
                PUBLISH_RUNBOOK,
                PublishRunbookInput(
                    runbook_id=inp.runbook_id,
                    repository=inp.repository,
                    runbook=self._runbook,
                    states=dict(self._states),
                    group=group,
                    head=self._branch(group),
                    base=self._base(group),
                    url=inp.url,
                ),
                start_to_close_timeout=PUBLISH_TIMEOUT,
                retry_policy=PUBLISH_RETRY,
                result_type=PullRequestRef,
            )
        except ActivityError as err:
            return f"step {leaf.number}: the pull request was not updated: {failure_message(err)}"
        self._prs = [pr for pr in self._prs if pr.group != group] + [ref]
        return None

    def _branch(self, group: str) -> str:
        return branch_name(self._input.runbook_number, group, workflow_id(self._input.runbook_id))

    def _base(self, group: str) -> str:
        inp = self._input
        assert self._runbook is not None
        return base_branch(
            self._runbook, self._states, inp.pr_mode, group, self._branch, inp.target_branch
        )

    # Records

    async def _record(
        self,
        *,
        error: str | None = None,
        failed_step: str | None = None,
        failed_run: str | None = None,
    ) -> None:
        await workflow.execute_activity(
            RECORD_RUNBOOK,
            RecordRunbookInput(
                self._input.runbook_id,
                self._runbook,
                dict(self._states),
                self._planned,
                error,
                pull_requests=list(self._prs),
                failed_step=failed_step,
                failed_run=failed_run if failed_step else None,
            ),
            start_to_close_timeout=RECORD_TIMEOUT,
        )
        status = "failed" if error and self._runbook is None else self._status()
        workflow.upsert_search_attributes([STATUS_KEY.value_set(status)])

    def _status(self) -> str:
        if self._runbook is None:
            return "generating_steps"
        return aggregate_status(leaf_states(self._runbook, self._states))
