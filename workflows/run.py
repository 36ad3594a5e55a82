"""RunWorkflow: one run of a definition, from approval gate to final status.

Deterministic code only: every side effect is an activity, every time is workflow.now().
A run waits at its start gate (if it has one) and at each `approval` action; both are gates
decided through the `decide` update, one open at a time, and each is recorded as it opens
and closes (GateRecord, riding on the run's or the action's record).
The checkout, execution and upload of an attempt run on one worker (its own task queue,
returned by `reserve_worker`); a lost worker costs a new reservation and the interrupted
action runs again on another one. Stop and kill arrive as the `control` update: the run's
recorded status (stopping, killing) tells the executing activity what to do.
"""

from __future__ import annotations

import asyncio
import builtins
import dataclasses
from datetime import timedelta

from temporalio import workflow
from temporalio.common import SearchAttributeKey
from temporalio.exceptions import ApplicationError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from core.callbacks import OUTBOX_LEVELS
    from core.statuses import KILLABLE, STOPPABLE, ActionStatus, GateStatus, RunStatus
    from workflows import attempt
    from workflows.admission import held_gate, refusal
    from workflows.callbacks import (
        DELIVER_CALLBACKS_WORKFLOW,
        DeliverCallbacksInput,
        callbacks_workflow_id,
    )
    from workflows.conditions import should_run
    from workflows.contracts import (
        ADMIT_RUN,
        CONTROL_SIGNAL,
        CONTROL_UPDATE,
        DECIDE_UPDATE,
        RECORD_ACTION,
        RECORD_RUN,
        RESERVE_WORKER,
        RUN_WORKFLOW,
        SA_STATUS,
        STATE_QUERY,
        ActionResult,
        ActionSpec,
        ActionState,
        Admission,
        AdmitInput,
        Admitted,
        CommitInfo,
        Control,
        Decision,
        GateRecord,
        GateSpec,
        GateState,
        RecordActionInput,
        RecordRunInput,
        RunInput,
        RunState,
    )
    from workflows.gate import (
        APPROVAL_KIND,
        START_GATE_IDX,
        approval_gate,
        approver_keys,
        gate_opening,
        gate_satisfied,
        timeout_ending,
    )
    from workflows.slots import DEFAULT_SLOT_LIMIT, SLOT_GRANTED_SIGNAL, SlotClaim, SlotGrant

STATUS_KEY = SearchAttributeKey.for_keyword(SA_STATUS)
MAX_WORKER_LOSSES = 3
RECORD_TIMEOUT = timedelta(seconds=30)
CONTROL_STATUS = {"stop": RunStatus.STOPPING, "kill": RunStatus.KILLING}
# Ending in one of these fails the workflow when the run asks for it (so it can be restarted).
FAILED_ENDINGS = (RunStatus.FAILED, RunStatus.INIT_FAILED)


@workflow.defn(name=RUN_WORKFLOW)
class RunWorkflow:
    """Executes a definition's actions in order, behind an optional approval gate."""

    @workflow.init
    def __init__(self, inp: RunInput) -> None:
        # State the handlers need exists from construction: on a worker that has not seen
        # this run before, an update can be validated before run() reaches the gate.
        if not inp.run_id:
            inp = dataclasses.replace(inp, run_id=workflow.info().workflow_id)
        self._input = inp
        self._status = RunStatus.SCHEDULED
        self._actions = [
            ActionState(i, a.name, ActionStatus.SCHEDULED) for i, a in enumerate(inp.actions)
        ]
        self._approved: set[str] = set(inp.gate.approved) if inp.gate else set()
        self._rejected = False
        needs_start_gate = inp.gate is not None and not gate_satisfied(inp.gate, self._approved)
        self._start_gate = inp.gate if needs_start_gate else None
        # The gate open now (the start gate, or the approval action at `_gate_idx`), and the
        # decision that closed the last one, with when.
        self._gate: GateSpec | None = self._start_gate
        self._gate_idx = START_GATE_IDX
        self._closing: Decision | None = None
        self._decided_at: str | None = None
        self._has_gates = inp.gate is not None or any(a.kind == APPROVAL_KIND for a in inp.actions)
        self._started = False
        self._cleaned = False  # the last action's activity removed the run's files
        self._control: Control | None = None
        self._ttl_expired = False
        self._finished = False
        self._failed_hosts: list[str] = []
        self._timers: list[asyncio.Task[None]] = []
        # A run of an account waits for one of the account's slots before it executes. The
        # slots belong to the deployment (its task queue): deployments sharing a namespace
        # never share a queue of waiting runs.
        self._slot = SlotClaim(
            f"{workflow.info().task_queue}/{inp.account}",
            inp.concurrency_limit or DEFAULT_SLOT_LIMIT,
        )

    @workflow.run
    async def run(self, inp: RunInput) -> str:
        """Run the gate, then the actions; returns the final canonical status."""
        inp = self._input  # with the run id filled in
        if inp.registration is not None:
            await self._set_status(RunStatus.SCHEDULED, event="started by a schedule")
        try:
            admission = inp.registration.admission if inp.registration is not None else None
            if admission is not None:
                refused = await self._admit(admission)
                if refused is not None:
                    return refused
            if self._start_gate is not None:
                outcome = await self._pass_start_gate(self._start_gate)
                if outcome is not None:
                    return outcome
            if inp.account and inp.concurrency_limit:
                await self._slot.acquire(
                    on_pending=lambda: self._set_status(
                        RunStatus.PENDING, event="waiting for a free slot"
                    ),
                    give_up=lambda: self._control is not None,
                )
            return await self._execute_actions(inp)
        finally:
            for timer in self._timers:
                timer.cancel()
            await self._slot.release()
            # A stop or kill that ended the run may still be writing its status: the run ends
            # after it, never with a handler's command behind its completion.
            await workflow.wait_condition(workflow.all_handlers_finished)

    async def _admit(self, admission: Admission) -> str | None:
        """Decide, now, whether the run starts, waits for approval or ends without running
        (the final status then). Only runs whose registration asks for it get here, so the
        histories of older runs never schedule this activity."""
        admitted = await workflow.execute_local_activity(
            ADMIT_RUN,
            AdmitInput(run_id=self._input.run_id, admission=admission),
            start_to_close_timeout=RECORD_TIMEOUT,
            result_type=Admitted,
        )
        reason = refusal(admitted)
        if reason is not None:
            return await self._finish(RunStatus.SKIPPED, error=reason)
        gate = held_gate(admission.gate, admitted)
        if gate is not None:
            self._start_gate = self._gate = gate
            self._gate_idx = START_GATE_IDX
            self._has_gates = True
        return None

    async def _pass_start_gate(self, gate: GateSpec) -> str | None:
        """Wait at the start gate; the final status when the run ends there, else None."""
        opened = self._gate_opened(START_GATE_IDX, gate)
        await self._set_status(
            RunStatus.PENDING_APPROVAL, event="waiting for approval", gate=opened
        )
        closed = await self._wait_at_gate(opened, gate)
        if self._control is not None:
            return await self._finish_controlled(gate=closed)
        if closed.status == GateStatus.REJECTED:
            return await self._finish(RunStatus.REJECTED, error="approval rejected", gate=closed)
        event = "approved"
        if closed.status == GateStatus.TIMED_OUT:
            ending = timeout_ending(gate.on_timeout, start=True)
            if ending is not None:
                return await self._finish(ending[0], error=ending[1], gate=closed)
            event = "approved on timeout"
        await self._set_status(RunStatus.SCHEDULED, event=event, gate=closed)
        return None

    async def _pass_approval(self, index: int, action: ActionSpec) -> tuple[RunStatus, str] | None:
        """Wait at an approval action; the run's final status and error when it ends there.

        A stop or kill while waiting returns None: the caller sees the control and finishes.
        """
        now = workflow.now().isoformat()
        try:
            gate = approval_gate(action.spec)
        except ValueError as bad:
            invalid = f"approval {action.name!r}: {bad}"
            failed = ActionResult(status=ActionStatus.FAILED, error=invalid)
            await self._record_action(
                index, action, ActionStatus.FAILED, start_time=now, end_time=now, result=failed
            )
            return RunStatus.FAILED, invalid
        opened = self._gate_opened(index, gate)
        await self._record_action(index, action, ActionStatus.RUNNING, start_time=now, gate=opened)
        await self._set_status(
            RunStatus.PENDING_APPROVAL, event=f"waiting for approval: {action.name}"
        )
        closed = await self._wait_at_gate(opened, gate)
        end = workflow.now().isoformat()
        ending: tuple[RunStatus, str] | None = None
        if self._control is not None:
            verb = "killed" if self._control.action == "kill" else "stopped"
            error: str | None = f"run {verb} while waiting for approval"
        elif closed.status == GateStatus.REJECTED:
            ending = RunStatus.REJECTED, "approval rejected"
            error = ending[1]
        elif closed.status == GateStatus.TIMED_OUT:
            ending = timeout_ending(gate.on_timeout, start=False)
            error = ending[1] if ending else None
        else:
            error = None
        data = {
            "approval": closed.status,
            "decided_by": closed.decided_by,
            "comment": closed.comment,
        }
        status = ActionStatus.FAILED if error else ActionStatus.COMPLETED
        result = ActionResult(status=status, error=error, data=data)
        await self._record_action(index, action, status, end_time=end, result=result, gate=closed)
        if error is None:
            timed_out = closed.status == GateStatus.TIMED_OUT
            event = "approved on timeout" if timed_out else "approved"
            await self._set_status(RunStatus.RUNNING, event=f"{event}: {action.name}")
        return ending

    def _gate_opened(self, idx: int, gate: GateSpec) -> GateRecord:
        """Make `gate` the open one (the start gate already is); its record as it opens."""
        if idx != START_GATE_IDX:
            self._gate, self._gate_idx = gate, idx
            self._approved, self._rejected = set(), False
            self._closing = self._decided_at = None
        inp = self._input
        return gate_opening(inp.run_id, inp.attempt, idx, gate, workflow.now())

    async def _wait_at_gate(self, opened: GateRecord, gate: GateSpec) -> GateRecord:
        """Wait until the open gate is decided, runs out of time, or the run is stopped;
        the gate's record as it closed."""
        timeout = timedelta(seconds=gate.timeout_seconds) if gate.timeout_seconds else None
        try:
            await workflow.wait_condition(
                lambda: self._gate is None or self._control is not None, timeout=timeout
            )
        except builtins.TimeoutError:
            if self._gate is not None:  # else decided in the same instant: the decision holds
                self._gate = None
                return dataclasses.replace(
                    opened, status=GateStatus.TIMED_OUT, decided_at=workflow.now().isoformat()
                )
        if self._gate is not None:  # stopped or killed before anyone decided
            self._gate = None
            return dataclasses.replace(
                opened, status=GateStatus.CANCELLED, decided_at=workflow.now().isoformat()
            )
        decision = self._closing
        return dataclasses.replace(
            opened,
            status=GateStatus.REJECTED if self._rejected else GateStatus.APPROVED,
            decided_at=self._decided_at or workflow.now().isoformat(),
            decided_by=decision.by if decision else None,
            comment=decision.comment if decision else "",
        )

    @workflow.update(name=DECIDE_UPDATE)
    async def decide(self, decision: Decision) -> GateState:
        """Record an approver's decision on the open gate; it opens once its rule is met."""
        gate = self._gate
        assert gate is not None  # the validator refused the decision otherwise
        idx = self._gate_idx
        if decision.approve:
            self._approved.add(decision.approver_key)
            closes = gate_satisfied(gate, self._approved)
        else:
            self._rejected = closes = True
        if closes:
            self._gate, self._closing = None, decision
            self._decided_at = workflow.now().isoformat()
        return GateState(
            status=str(self._status),
            approved=sorted(self._approved),
            open=self._gate is not None,
            idx=idx,
            rejected=self._rejected,
        )

    @decide.validator
    def _validate_decision(self, decision: Decision) -> None:
        # Refused here, a decision never enters the history.
        if not self._has_gates:
            raise ApplicationError("this run does not require approval", type="NoGate")
        gate = self._gate
        if gate is None or decision.gate_idx not in (None, self._gate_idx):
            raise ApplicationError(
                f"run is not pending approval (status {self._status})", type="GateClosed"
            )
        if decision.approver_key not in approver_keys(gate):
            raise ApplicationError("not an approver of this run", type="NotApprover")

    @workflow.update(name=CONTROL_UPDATE)
    async def control(self, control: Control) -> RunState:
        """Stop the run after the step in progress, or kill it at once."""
        await self._apply_control(control)
        return self.state()

    @control.validator
    def _validate_control(self, control: Control) -> None:
        if control.action not in CONTROL_STATUS:
            raise ApplicationError(f"unknown control {control.action!r}", type="BadControl")
        allowed = STOPPABLE if control.action == "stop" else KILLABLE
        # A run waiting at a gate can be stopped too (a dialect may refuse that itself).
        if self._finished or (self._status not in allowed and self._gate is None):
            raise ApplicationError(
                f"cannot {control.action} a run in status {self._status}", type="NotAllowed"
            )

    @workflow.signal(name=CONTROL_SIGNAL)
    async def control_signal(self, control: Control) -> None:
        """The control update's effect, sent by a parent workflow (a runbook's stop); one the
        update would refuse is ignored."""
        try:
            self._validate_control(control)
        except ApplicationError:
            return
        await self._apply_control(control)

    @workflow.signal(name=SLOT_GRANTED_SIGNAL)
    def slot_granted(self, grant: SlotGrant) -> None:
        """The account's slots workflow lets this run execute."""
        self._slot.grant(grant)

    @workflow.query(name=STATE_QUERY)
    def state(self) -> RunState:
        """The live status of the run and its actions."""
        return RunState(
            status=str(self._status), actions=list(self._actions), approved=sorted(self._approved)
        )

    async def _apply_control(self, control: Control) -> None:
        current = self._control
        if current is not None and (current.action == "kill" or control.action == "stop"):
            return  # a kill is final; a second stop changes nothing
        self._control = control
        await self._set_status(CONTROL_STATUS[control.action], event=f"{control.action} requested")
        if control.action == "stop" and control.expiry_seconds > 0:
            self._timers.append(asyncio.create_task(self._escalate(control.expiry_seconds)))

    async def _escalate(self, seconds: float) -> None:
        """A stop that has not finished in time becomes a kill."""
        await workflow.sleep(timedelta(seconds=seconds))
        if not self._finished:
            await self._apply_control(Control(action="kill", by="expiry"))

    async def _ttl(self, seconds: float) -> None:
        """Past its time to live a run is stopped gracefully."""
        await workflow.sleep(timedelta(seconds=seconds))
        if not self._finished and self._control is None:
            self._ttl_expired = True
            await self._apply_control(Control(action="stop", by="ttl"))

    async def _execute_actions(self, inp: RunInput) -> str:
        if inp.ttl_seconds:
            self._timers.append(asyncio.create_task(self._ttl(inp.ttl_seconds)))
        any_failed = False
        init_error: str | None = None
        ending: tuple[RunStatus, str] | None = None  # a gate that ended the run
        # The outcome the last final action was told: the run ends with it, whatever that
        # action's own result or a stop that came while it ran.
        settled: tuple[RunStatus, str | None] | None = None
        queue: str | None = None
        losses = 0
        index = 0
        while index < len(inp.actions):
            action = inp.actions[index]
            halted = self._control is not None or ending is not None
            if halted and not any(a.final for a in inp.actions[index:]):
                break  # the rest is recorded skipped below
            runs = should_run(action.condition, any_failed, halted=halted, final=action.final)
            if not runs or (halted and action.kind == APPROVAL_KIND):
                await self._record_action(index, action, ActionStatus.SKIPPED)
                index += 1
                continue
            if action.delay_seconds > 0 and not halted:
                await self._record_action(index, action, ActionStatus.SLEEPING)
                await self._set_status(RunStatus.SLEEPING)
                if await self._interrupted_within(action.delay_seconds):
                    continue  # halted now: only final actions still run
            if action.kind == APPROVAL_KIND:
                # The workflow itself waits here: no worker is reserved for a gate.
                ending = await self._pass_approval(index, action)
                index += 1
                continue  # a refused gate stops the rest, whatever their filters
            if queue is None:
                # Local: the worker running this workflow task takes the attempt, with no
                # server round trip for the reservation.
                queue = await workflow.execute_local_activity(
                    RESERVE_WORKER,
                    start_to_close_timeout=timedelta(seconds=10),
                    result_type=str,
                )
            outcome = self._outcome(any_failed, init_error, ending) if action.final else None
            try:
                result = await self._run_action(
                    inp, index, action, queue, outcome=str(outcome[0]) if outcome else None
                )
            except attempt.WorkerLost:
                losses += 1
                queue = None
                if losses < MAX_WORKER_LOSSES:
                    continue  # the same action again, on another worker
                result = ActionResult(
                    status=ActionStatus.FAILED, error=f"worker lost {losses} times; giving up"
                )
            except attempt.CheckoutFailed as failed:
                if init_error is None and not self._any_completed() and not action.final:
                    init_error = f"checkout failed: {failed}"
                result = ActionResult(status=ActionStatus.FAILED, error=str(failed))
            if outcome is None:
                any_failed = any_failed or result.status == ActionStatus.FAILED
            settled = outcome
            for host in result.data.get("failedHosts") or []:
                if host not in self._failed_hosts:
                    self._failed_hosts.append(host)
            await self._record_action(
                index,
                action,
                ActionStatus(result.status),
                end_time=workflow.now().isoformat(),
                result=result,
            )
            index += 1
        for skipped in range(index, len(inp.actions)):  # left undone by a stop, kill or gate
            await self._record_action(skipped, inp.actions[skipped], ActionStatus.SKIPPED)
        if queue is not None and not self._cleaned:
            await attempt.cleanup(inp.run_id, queue)
        status, error = settled or self._outcome(any_failed, init_error, ending)
        return await self._finish(status, error=error)

    def _outcome(
        self, any_failed: bool, init_error: str | None, ending: tuple[RunStatus, str] | None
    ) -> tuple[RunStatus, str | None]:
        """The status (and error) the run ends with if it ends now."""
        if self._control is not None:
            return self._controlled_ending()
        if ending is not None:
            return ending
        if init_error is not None:
            return RunStatus.INIT_FAILED, init_error
        return (RunStatus.FAILED if any_failed else RunStatus.SUCCEEDED), None

    async def _run_action(
        self, inp: RunInput, index: int, action: ActionSpec, queue: str, *, outcome: str | None
    ) -> ActionResult:
        now = workflow.now().isoformat()
        opening = None if self._started else now  # the start of this attempt's timer
        self._started = True
        workdir: str | None = None
        commit: CommitInfo | None = None
        if action.checkout is not None:
            await self._set_status(RunStatus.INITIALIZING, start_time=opening)
            opening = None
            checkout = await attempt.checkout(inp, index, action, queue)
            workdir, commit = checkout.workdir, checkout.commit
        await self._set_status(RunStatus.RUNNING, start_time=opening, commit=commit)
        await self._record_action(index, action, ActionStatus.RUNNING, start_time=now)
        attempted = await attempt.run_action(inp, index, action, queue, workdir, outcome=outcome)
        self._cleaned = attempted.cleaned
        return attempted.result

    async def _interrupted_within(self, seconds: float) -> bool:
        """Wait `seconds` (an action's delay); True when a stop or kill cut it short."""
        try:
            await workflow.wait_condition(
                lambda: self._control is not None, timeout=timedelta(seconds=seconds)
            )
        except builtins.TimeoutError:
            return False
        return True

    def _any_completed(self) -> bool:
        return any(a.status == ActionStatus.COMPLETED for a in self._actions)

    async def _set_status(
        self,
        status: RunStatus,
        *,
        start_time: str | None = None,
        event: str | None = None,
        error: str | None = None,
        end_time: str | None = None,
        commit: CommitInfo | None = None,
        gate: GateRecord | None = None,
    ) -> None:
        stopping = self._control is not None and status not in (
            RunStatus.STOPPING,
            RunStatus.KILLING,
        )
        if stopping and end_time is None:
            return  # once stopping, only the stop itself and the final status are recorded
        changed = status != self._status
        self._status = status
        if changed or start_time or end_time:
            workflow.upsert_search_attributes([STATUS_KEY.value_set(str(status))])
        if changed and event is None:
            event = f"status {status}"  # the log carries every status change
        await workflow.execute_local_activity(
            RECORD_RUN,
            RecordRunInput(
                run_id=self._input.run_id,
                status=str(status),
                start_time=start_time,
                end_time=end_time,
                error=error,
                event=event,
                attempt=self._input.attempt,
                failed_hosts=list(self._failed_hosts) if end_time else None,
                commit=commit,
                callbacks=self._input.callbacks,
                registration=self._input.registration,
                definition_id=self._input.definition_id,
                dialect=self._input.dialect,
                gate=gate,
            ),
            start_to_close_timeout=RECORD_TIMEOUT,
        )

    async def _record_action(
        self,
        index: int,
        action: ActionSpec,
        status: ActionStatus,
        *,
        start_time: str | None = None,
        end_time: str | None = None,
        result: ActionResult | None = None,
        gate: GateRecord | None = None,
    ) -> None:
        self._actions[index] = ActionState(
            index, action.name, str(status), result.error if result else None
        )
        # Scheduled when it starts to wait (a delay) or, without one, when it starts.
        first_record = status == ActionStatus.SLEEPING or (
            status == ActionStatus.RUNNING and action.delay_seconds <= 0
        )
        scheduled = workflow.now().isoformat() if first_record else None
        await workflow.execute_local_activity(
            RECORD_ACTION,
            RecordActionInput(
                run_id=self._input.run_id,
                index=index,
                name=action.name,
                status=str(status),
                scheduled_time=scheduled,
                start_time=start_time,
                end_time=end_time,
                result=result,
                error=result.error if result else None,
                gate=gate,
            ),
            start_to_close_timeout=RECORD_TIMEOUT,
        )

    def _controlled_ending(self) -> tuple[RunStatus, str | None]:
        """How a stopped or killed run ends (a TTL's stop says so)."""
        assert self._control is not None
        if self._ttl_expired:
            return RunStatus.TIMED_OUT, "execution TTL exceeded"
        return (RunStatus.KILLED if self._control.action == "kill" else RunStatus.STOPPED), None

    async def _finish_controlled(self, *, gate: GateRecord | None = None) -> str:
        status, error = self._controlled_ending()
        return await self._finish(status, error=error, gate=gate)

    async def _finish(
        self, status: RunStatus, *, error: str | None = None, gate: GateRecord | None = None
    ) -> str:
        self._finished = True
        await self._set_status(
            status,
            end_time=workflow.now().isoformat(),
            error=error,
            event=f"run {status}",
            gate=gate,
        )
        if any(c.level.upper() in OUTBOX_LEVELS for c in self._input.callbacks):
            # Abandoned: a dead endpoint is retried for a day without holding the run open.
            await workflow.start_child_workflow(
                DELIVER_CALLBACKS_WORKFLOW,
                DeliverCallbacksInput(run_id=self._input.run_id),
                id=callbacks_workflow_id(self._input.run_id, self._input.attempt),
                parent_close_policy=ParentClosePolicy.ABANDON,
            )
        if self._input.fail_workflow and status in FAILED_ENDINGS:
            # A Failed workflow can be started again under the same id: a restart.
            raise ApplicationError(f"run {status}: {error or 'an action failed'}", type="RunFailed")
        return str(status)
